/* jsonw.c — see jsonw.h. */
#include "jsonw.h"
#include "utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct jsonw *w, const char *s, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n + 1)
			cap *= 2;
		char *q = realloc(w->p, cap);
		if (!q) {
			w->failed = true;
			return;
		}
		w->p = q;
		w->cap = cap;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

/* The escapes cJSON uses: the short ones, \u00XX for other control characters, and UTF-8
 * passed through as it is — once checked: bytes that are not UTF-8 fail the object. */
static void put_string(struct jsonw *w, const char *s)
{
	put(w, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x80) {
			/* A NUL ends the check early (it is no continuation byte), so 4 is safe. */
			size_t l = utf8_char_len(s, 4);
			if (!l) {
				w->invalid = true;
				return;
			}
			s += l - 1;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(w, run, (size_t)(s - run));
		char esc[8];
		switch (c) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\b': put(w, "\\b", 2); break;
		case '\f': put(w, "\\f", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
		}
		run = s + 1;
	}
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
		put_string(w, k);
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

void jw_begin(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
	w->empty = true;
	put(w, "{", 1);
}

void jw_str(struct jsonw *w, const char *k, const char *val)
{
	key(w, k);
	if (val)
		put_string(w, val);
	else
		put(w, "null", 4);
}

void jw_int(struct jsonw *w, const char *k, int64_t val)
{
	char buf[24], *p = buf + sizeof(buf);
	uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (val < 0)
		*--p = '-';
	key(w, k);
	put(w, p, (size_t)(buf + sizeof(buf) - p));
}

void jw_num(struct jsonw *w, const char *k, double val)
{
	char buf[64];
	int n;
	/* Range first: converting a double outside int64_t's range (or NaN) is undefined. */
	if (!isfinite(val))
		n = snprintf(buf, sizeof(buf), "null");
	else if (fabs(val) < 1e15 && val == trunc(val))
		n = snprintf(buf, sizeof(buf), "%lld", (long long)val);
	else {
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

char *jw_end(struct jsonw *w, size_t *len)
{
	put(w, "}", 1);
	if (w->failed || w->invalid) {
		free(w->p);
		w->p = NULL;
		return NULL;
	}
	if (len)
		*len = w->len;
	char *p = w->p;
	w->p = NULL;
	return p;
}
