/* jsonw.c — see jsonw.h. */
#include "jsonw.h"
#include "utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most pieces fit the room left: copied in place (the dbuf's invariants kept: len + 1 within
 * both cap and max, NUL after the text); dbuf_add grows it, or fails past max, otherwise. */
static inline void put(struct jsonw *w, const char *s, size_t n)
{
	struct dbuf *b = &w->b;
	if (!w->failed && b->p && b->cap - b->len > n && b->max - b->len > n) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
		return;
	}
	if (!w->failed && dbuf_add(b, s, n) < 0)
		w->failed = true;
}

/* The length of the well-formed UTF-8 sequence at s (lead byte >= 0x80), 0 when it is not
 * one: the rules of utf8_decode (no overlong form, no surrogate, nothing past U+10FFFF) by
 * the ranges of the second byte, without building the code point. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[2] & 0xc0) != 0x80)
			return 0;
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return s[1] >= lo && s[1] <= hi ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return s[1] >= lo && s[1] <= hi ? 4 : 0;
	}
	return 0;
}

static void put_u16(struct jsonw *w, uint32_t unit)
{
	static const char hx[] = "0123456789abcdef";
	char e[6] = { '\\', 'u', hx[unit >> 12 & 15], hx[unit >> 8 & 15], hx[unit >> 4 & 15], hx[unit & 15] };
	put(w, e, sizeof(e));
}

/* Bytes written as they are in any mode: printable ASCII but the quote and the backslash. */
static const unsigned char plain[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* The escapes cJSON uses: the short ones, \u00XX for other control characters, and UTF-8
 * passed through as it is — once checked: bytes that are not UTF-8 fail the object. With
 * JW_ASCII, DEL and everything past it as \uXXXX (a surrogate pair past U+FFFF). */
static void put_string(struct jsonw *w, const char *s, size_t n)
{
	put(w, "\"", 1);
	const char *run = s, *end = s + n;
	for (; s < end; s++) {
		while (plain[(unsigned char)*s])
			if (++s == end)
				goto done;
		unsigned char c = (unsigned char)*s;
		if (c >= 0x80 && !w->ascii) {
			size_t l = utf8_seq((const unsigned char *)s, (size_t)(end - s));
			if (!l) {
				w->invalid = true;
				return;
			}
			s += l - 1;
			continue;
		}
		if (c >= 0x80 || (c == 0x7f && w->ascii)) {
			size_t l;
			uint32_t cp = utf8_decode(s, (size_t)(end - s), &l);
			if (cp == UTF8_INVALID) {
				w->invalid = true;
				return;
			}
			if (w->ascii) {
				put(w, run, (size_t)(s - run));
				if (cp < 0x10000) {
					put_u16(w, cp);
				} else {
					put_u16(w, 0xd800 + ((cp - 0x10000) >> 10));
					put_u16(w, 0xdc00 + ((cp - 0x10000) & 0x3ff));
				}
				run = s + l;
			}
			s += l - 1;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(w, run, (size_t)(s - run));
		switch (c) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\b': put(w, "\\b", 2); break;
		case '\f': put(w, "\\f", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		default: put_u16(w, c);
		}
		run = s + 1;
	}
done:
	put(w, run, (size_t)(s - run));
	put(w, "\"", 1);
}

/* k NULL: an array's element, no key. */
static void key(struct jsonw *w, const char *k)
{
	if (!w->empty)
		put(w, ",", 1);
	w->empty = false;
	if (k) {
		put_string(w, k, strlen(k));
		put(w, ":", 1);
	}
}

/* No stack of "empty" flags is needed: a container just closed is a member of its parent, so
 * the parent is never empty after it. */
void jw_object(struct jsonw *w, const char *k)
{
	key(w, k);
	put(w, "{", 1);
	w->empty = true;
}

void jw_array(struct jsonw *w, const char *k)
{
	key(w, k);
	put(w, "[", 1);
	w->empty = true;
}

void jw_close_object(struct jsonw *w)
{
	put(w, "}", 1);
	w->empty = false;
}

void jw_close_array(struct jsonw *w)
{
	put(w, "]", 1);
	w->empty = false;
}

void jw_begin_opt(struct jsonw *w, unsigned flags, size_t max)
{
	*w = (struct jsonw){ .empty = true, .ascii = flags & JW_ASCII };
	dbuf_init(&w->b, max);
	put(w, "{", 1);
}

void jw_begin(struct jsonw *w)
{
	jw_begin_opt(w, 0, DBUF_NO_MAX);
}

void jw_str(struct jsonw *w, const char *k, const char *val)
{
	key(w, k);
	if (val)
		put_string(w, val, strlen(val));
	else
		put(w, "null", 4);
}

void jw_str_cut(struct jsonw *w, const char *k, const char *val, size_t max_chars)
{
	key(w, k);
	if (val)
		put_string(w, val, utf8_cut(val, strlen(val), max_chars));
	else
		put(w, "null", 4);
}

/* Digits of val ending at end (no terminator); returns where they start. Without snprintf:
 * status writes thousands of these a second. */
static char *int_text(char *end, int64_t val)
{
	char *p = end;
	uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (val < 0)
		*--p = '-';
	return p;
}

void jw_int(struct jsonw *w, const char *k, int64_t val)
{
	char buf[24];
	char *p = int_text(buf + sizeof(buf), val);
	key(w, k);
	put(w, p, (size_t)(buf + sizeof(buf) - p));
}

void jw_num(struct jsonw *w, const char *k, double val)
{
	/* Range first: converting a double outside int64_t's range (or NaN) is undefined. */
	if (isfinite(val) && fabs(val) < 1e15 && val == trunc(val)) {
		jw_int(w, k, (int64_t)val);
		return;
	}
	char buf[64];
	int n;
	if (!isfinite(val)) {
		n = snprintf(buf, sizeof(buf), "null");
	} else {
		/* 15 digits when they give the same double back, else 17 (as cJSON does). */
		n = snprintf(buf, sizeof(buf), "%1.15g", val);
		if (strtod(buf, NULL) != val)
			n = snprintf(buf, sizeof(buf), "%1.17g", val);
	}
	key(w, k);
	put(w, buf, (size_t)n);
}

void jw_bool(struct jsonw *w, const char *k, bool val)
{
	key(w, k);
	put(w, val ? "true" : "false", val ? 4 : 5);
}

void jw_null(struct jsonw *w, const char *k)
{
	key(w, k);
	put(w, "null", 4);
}

void jw_raw(struct jsonw *w, const char *k, const char *json)
{
	key(w, k);
	put(w, json, strlen(json));
}

char *jw_end(struct jsonw *w, size_t *len)
{
	put(w, "}", 1);
	if (w->failed || w->invalid) {
		dbuf_free(&w->b);
		return NULL;
	}
	return dbuf_take(&w->b, len);
}
