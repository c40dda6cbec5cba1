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
		size_t l = utf8_char_len(in + i, len - i);
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
