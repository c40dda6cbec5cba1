/* encoding.c — log lines to UTF-8 (iconv for GBK/GB18030) and printable text for messages. */
#include "encoding.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct enc_conv {
	enum log_encoding enc;
	iconv_t cd;
	char *out;
	size_t cap;
};

struct enc_conv *enc_conv_new(enum log_encoding enc)
{
	struct enc_conv *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->enc = enc;
	c->cd = (iconv_t)-1;
	if (enc == LOG_ENC_GBK) {
		/* GB18030 is a superset of GBK (and of GB2312), so one decoder serves all three. */
		c->cd = iconv_open("UTF-8", "GB18030");
		if (c->cd == (iconv_t)-1) {
			int e = errno;
			free(c);
			errno = e;
			return NULL;
		}
	}
	return c;
}

void enc_conv_free(struct enc_conv *c)
{
	if (!c)
		return;
	if (c->cd != (iconv_t)-1)
		iconv_close(c->cd);
	free(c->out);
	free(c);
}

static int reserve(struct enc_conv *c, size_t need)
{
	if (need <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (!p)
		return -ENOMEM;
	c->out = p;
	c->cap = cap;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
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
		size_t l = utf8_seq(p + i, len - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

const char *enc_to_utf8(struct enc_conv *c, const char *in, size_t len, size_t *out_len)
{
	if (memchr(in, '\0', len))
		return NULL;
	if (c->enc == LOG_ENC_UTF8) {
		if (!utf8_valid(in, len) || reserve(c, len + 1) < 0)
			return NULL;
		memcpy(c->out, in, len);
		c->out[len] = '\0';
		*out_len = len;
		return c->out;
	}
	/* GB18030 never takes more than 4 UTF-8 bytes for 2 of its own (1.5x for GBK's two-byte
	 * characters, 1x for its four-byte ones), so twice the input always fits. */
	if (reserve(c, 2 * len + 4) < 0)
		return NULL;
	iconv(c->cd, NULL, NULL, NULL, NULL); /* a bad line must not leave state behind */
	char *src = (char *)in;
	size_t src_left = len;
	char *dst = c->out;
	size_t dst_left = c->cap - 1;
	if (iconv(c->cd, &src, &src_left, &dst, &dst_left) == (size_t)-1)
		return NULL; /* EILSEQ: invalid bytes; EINVAL: a character cut at the line's end */
	*dst = '\0';
	*out_len = (size_t)(dst - c->out);
	return c->out;
}

size_t enc_printable(const char *in, size_t len, char *out, size_t cap, bool *cut)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, i = 0;
	if (cut)
		*cut = false;
	if (cap == 0)
		return 0;
	while (i < len) {
		size_t l = utf8_seq(p + i, len - i);
		char esc[5];
		const char *piece;
		size_t plen;
		if (l == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
			l = 0; /* control characters would break the one-line message */
		}
		if (l) {
			piece = in + i;
			plen = l;
		} else {
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			piece = esc;
			plen = 4;
			l = 1;
		}
		if (o + plen >= cap) {
			if (cut)
				*cut = true;
			break;
		}
		memcpy(out + o, piece, plen);
		o += plen;
		i += l;
	}
	out[o] = '\0';
	return o;
}
