/* dynbuf.c — see dynbuf.h. */
#include "dynbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBUF_FIRST 256

void dbuf_init(struct dbuf *b, size_t max)
{
	*b = (struct dbuf){ .max = max };
}

int dbuf_add(struct dbuf *b, const void *data, size_t n)
{
	/* len + n + 1 <= max, written so that nothing overflows (max may be SIZE_MAX). */
	if (b->len >= b->max || n > b->max - b->len - 1) {
		dbuf_free(b);
		return -E2BIG;
	}
	size_t need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : DBUF_FIRST;
		while (cap < need)
			cap = cap > b->max / 2 ? b->max : cap * 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			dbuf_free(b);
			return -ENOMEM;
		}
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int dbuf_str(struct dbuf *b, const char *s)
{
	return dbuf_add(b, s, strlen(s));
}

int dbuf_vaddf(struct dbuf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n < 0) {
		va_end(again);
		dbuf_free(b);
		return -EINVAL;
	}
	if ((size_t)n < sizeof(small)) {
		va_end(again);
		return dbuf_add(b, small, (size_t)n);
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		va_end(again);
		dbuf_free(b);
		return -ENOMEM;
	}
	vsnprintf(big, (size_t)n + 1, fmt, again);
	va_end(again);
	int r = dbuf_add(b, big, (size_t)n);
	free(big);
	return r;
}

int dbuf_addf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = dbuf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void dbuf_free(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *dbuf_take(struct dbuf *b, size_t *len)
{
	char *p = b->p ? b->p : strdup("");
	if (len)
		*len = p ? b->len : 0;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
