/* dynbuf.h — the agent's one growable buffer (curl's dynbuf is the model): bytes appended at
 * the end, always NUL-terminated after them, and a hard cap given at init. Past the cap
 * (-E2BIG) or out of memory (-ENOMEM) the buffer frees what it held, so a caller that checks
 * only the last call still never sends a cut text as if whole. */
#ifndef LABSHARE_DYNBUF_H
#define LABSHARE_DYNBUF_H

#include <stdarg.h>
#include <stddef.h>

/* No cap but memory (a caller's own limit is better: say one). */
#define DBUF_NO_MAX ((size_t)-1)

struct dbuf {
	char *p;                    /* NULL until the first byte, and again after a failure */
	size_t len, cap;
	size_t max;                 /* len + 1 (the NUL) never exceeds it */
};

/* An empty buffer holding at most max - 1 bytes. `struct dbuf b = { .max = M }` is the same. */
void dbuf_init(struct dbuf *b, size_t max);
/* Appends n bytes: 0, -E2BIG (past max) or -ENOMEM; after a failure b is empty (freed). */
int dbuf_add(struct dbuf *b, const void *data, size_t n);
int dbuf_str(struct dbuf *b, const char *s);
/* printf-style (never truncated: the text is formatted to its full length first). */
int dbuf_addf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dbuf_vaddf(struct dbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Empty again, memory kept. */
void dbuf_reset(struct dbuf *b);
void dbuf_free(struct dbuf *b);
/* The text, handed to the caller (who frees it), and b empty; an empty buffer gives "" (NULL
 * only when out of memory). *len (may be NULL) gets its length. */
char *dbuf_take(struct dbuf *b, size_t *len);

#endif
