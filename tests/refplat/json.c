/* json.c — a strict validating JSON scanner (RFC 8259, UTF-8 checked) that builds nothing: each
 * record line is checked and its top-level "seq" and "kind" found without a tree. cJSON's tree of
 * small allocations cost a quarter of the ingest time at 1,000-record batches. */
#include "refplat.h"

#include <string.h>

#define DEPTH_MAX 64

struct scan {
	const unsigned char *p, *end;
};

static bool is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned c)
{
	return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

bool json_raw_equals(const char *raw, size_t n, const char *want)
{
	const unsigned char *r = (const unsigned char *)raw;
	size_t i = 0, j = 0, wl = strlen(want);
	while (i < n) {
		unsigned c = r[i];
		if (c == '\\' && i + 1 < n) {
			unsigned e = r[i + 1];
			if (e == 'u' && i + 5 < n) {
				c = hex_val(r[i + 2]) << 12 | hex_val(r[i + 3]) << 8 | hex_val(r[i + 4]) << 4 | hex_val(r[i + 5]);
				i += 6;
			} else {
				c = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
				i += 2;
			}
		} else {
			i++;
		}
		if (j >= wl || c != (unsigned char)want[j])
			return false;
		j++;
	}
	return j == wl;
}

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* Length of the UTF-8 sequence at p (lead byte >= 0x80), 0 when malformed: overlong forms,
 * surrogates and code points past U+10FFFF are refused (RFC 3629). GBK bytes land here. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
	    (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/* At '"': the raw bytes between the quotes; *escaped when any backslash was seen. */
static bool string(struct scan *s, const unsigned char **start, size_t *len, bool *escaped)
{
	s->p++;
	const unsigned char *b = s->p;
	*escaped = false;
	while (s->p < s->end) {
		unsigned c = *s->p;
		if (c == '"') {
			*start = b;
			*len = (size_t)(s->p - b);
			s->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			*escaped = true;
			if (s->end - s->p < 2)
				return false;
			unsigned e = s->p[1];
			if (e == 'u') {
				if (s->end - s->p < 6)
					return false;
				for (int i = 2; i < 6; i++)
					if (!is_hex(s->p[i]))
						return false;
				s->p += 6;
			} else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
				   e == 't') {
				s->p += 2;
			} else {
				return false;
			}
			continue;
		}
		if (c < 0x80) {
			s->p++;
			continue;
		}
		size_t n = utf8_len(s->p, s->end);
		if (n == 0)
			return false;
		s->p += n;
	}
	return false;
}

static bool number(struct scan *s)
{
	const unsigned char *p = s->p, *e = s->end;
	if (p < e && *p == '-')
		p++;
	if (p >= e)
		return false;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < e && is_digit(*p))
			p++;
	} else {
		return false;
	}
	if (p < e && *p == '.') {
		p++;
		if (p >= e || !is_digit(*p))
			return false;
		while (p < e && is_digit(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !is_digit(*p))
			return false;
		while (p < e && is_digit(*p))
			p++;
	}
	s->p = p;
	return true;
}

static bool literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool value(struct scan *s, int depth, struct json_top *top);

static bool object(struct scan *s, int depth, struct json_top *top)
{
	if (depth > DEPTH_MAX)
		return false;
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return true;
	}
	for (;;) {
		const unsigned char *k;
		size_t kl;
		bool esc;
		ws(s);
		if (s->p >= s->end || *s->p != '"' || !string(s, &k, &kl, &esc))
			return false;
		ws(s);
		if (s->p >= s->end || *s->p != ':')
			return false;
		s->p++;
		ws(s);
		const unsigned char *v = s->p;
		if (!value(s, depth, NULL))
			return false;
		/* The first occurrence counts, as with cJSON_GetObjectItem; keys compare decoded. */
		if (top) {
			const char *key = (const char *)k;
			if (!top->seq && (esc ? json_raw_equals(key, kl, "seq") : kl == 3 && memcmp(k, "seq", 3) == 0)) {
				top->seq = (const char *)v;
				top->seq_len = (size_t)(s->p - v);
			} else if (!top->kind &&
				   (esc ? json_raw_equals(key, kl, "kind") : kl == 4 && memcmp(k, "kind", 4) == 0)) {
				top->kind = (const char *)v;
				top->kind_len = (size_t)(s->p - v);
			}
		}
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return true;
		}
		return false;
	}
}

static bool array(struct scan *s, int depth)
{
	if (depth > DEPTH_MAX)
		return false;
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return true;
	}
	for (;;) {
		if (!value(s, depth, NULL))
			return false;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return true;
		}
		return false;
	}
}

static bool value(struct scan *s, int depth, struct json_top *top)
{
	ws(s);
	if (s->p >= s->end)
		return false;
	const unsigned char *k;
	size_t kl;
	bool esc;
	switch (*s->p) {
	case '{': return object(s, depth + 1, top);
	case '[': return array(s, depth + 1);
	case '"': return string(s, &k, &kl, &esc);
	case 't': return literal(s, "true");
	case 'f': return literal(s, "false");
	case 'n': return literal(s, "null");
	default: return number(s);
	}
}

bool json_scan(const char *text, size_t len, struct json_top *top)
{
	struct scan s = { (const unsigned char *)text, (const unsigned char *)text + len };
	memset(top, 0, sizeof(*top));
	ws(&s);
	top->is_object = s.p < s.end && *s.p == '{';
	if (!value(&s, 0, top->is_object ? top : NULL))
		return false;
	ws(&s);
	return s.p == s.end;
}

bool json_span_seq(const char *span, size_t len, long long *out)
{
	/* An integer literal, 1 .. 2^53: "1.0", "1e0" and "-1" are not sequence numbers. */
	if (!span || len == 0 || len > 16)
		return false;
	long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((unsigned char)span[i]))
			return false;
		v = v * 10 + (span[i] - '0');
	}
	if (v < 1 || v > (1LL << 53))
		return false;
	*out = v;
	return true;
}
