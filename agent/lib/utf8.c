/* utf8.c — see utf8.h. */
#include "utf8.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint32_t utf8_decode(const char *str, size_t n, size_t *len)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0];
	*len = 1;
	if (c < 0x80)
		return c;
	size_t k;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		cp = c & 0x07;
	} else {
		return UTF8_INVALID;
	}
	if (n < k)
		return UTF8_INVALID;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return UTF8_INVALID;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return UTF8_INVALID;
	*len = k;
	return cp;
}

size_t utf8_char_len(const char *s, size_t n)
{
	size_t len;
	return utf8_decode(s, n, &len) == UTF8_INVALID ? 0 : len;
}

size_t utf8_cut(const char *s, size_t len, size_t max_chars)
{
	size_t off = 0;
	for (size_t chars = 0; off < len && chars < max_chars; chars++) {
		size_t k;
		utf8_decode(s + off, len - off, &k);
		off += k;
	}
	return off;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = utf8_char_len(s + i, len - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

bool utf8_str_valid(const char *s)
{
	return !s || utf8_valid(s, strlen(s));
}

char *utf8_repair(const char *s)
{
	size_t len = strlen(s);
	/* Each bad byte grows to 4 ("\xNN"). */
	char *out = malloc(4 * len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t l = utf8_char_len(s + i, len - i);
		if (l) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			snprintf(out + o, 5, "\\x%02x", (unsigned char)s[i]);
			o += 4;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

static bool is_utf8_name(const char *cs)
{
	return strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "UTF8") == 0;
}

static bool is_ascii_name(const char *cs)
{
	return strcasecmp(cs, "ANSI_X3.4-1968") == 0 || strcasecmp(cs, "ASCII") == 0 ||
	       strcasecmp(cs, "US-ASCII") == 0;
}

int utf8_from_charset(const char *charset, const char *in, char **out)
{
	*out = NULL;
	size_t len = strlen(in);
	if (is_utf8_name(charset) || is_ascii_name(charset)) {
		if (!utf8_valid(in, len))
			return -EILSEQ;
		*out = strdup(in);
		return *out ? 0 : -ENOMEM;
	}
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return -EINVAL;
	/* No charset iconv knows takes more than 4 UTF-8 bytes per input byte. */
	size_t cap = 4 * len + 1;
	char *buf = malloc(cap);
	if (!buf) {
		iconv_close(cd);
		return -ENOMEM;
	}
	char *src = (char *)in, *dst = buf;
	size_t src_left = len, dst_left = cap - 1;
	size_t r = iconv(cd, &src, &src_left, &dst, &dst_left);
	/* Flush any shift state (stateful charsets); a cut character is EINVAL here. */
	if (r != (size_t)-1)
		r = iconv(cd, NULL, NULL, &dst, &dst_left);
	int e = r == (size_t)-1 ? errno : 0;
	iconv_close(cd);
	*dst = '\0';
	if (r == (size_t)-1 || src_left || !utf8_valid(buf, (size_t)(dst - buf))) {
		free(buf);
		return e == ENOMEM ? -ENOMEM : -EILSEQ;
	}
	*out = buf;
	return 0;
}
