/* http_conn.h — one connection of the reference platform's HTTP server (http_conn.c): the
 * transport (TLS, or the socket on the --listen-http listener), buffered reading, writing a reply,
 * and the lingering close. Private to http.c and http_conn.c; refplat.h stays the contract. */
#ifndef LABSHARE_REFPLAT_HTTP_CONN_H
#define LABSHARE_REFPLAT_HTTP_CONN_H

#include "refplat.h"

struct conn {
	SSL *ssl;                     /* NULL on the plain-HTTP listener */
	int fd;
	unsigned long id;
	unsigned char buf[16384];     /* bytes read but not yet consumed */
	size_t off, len;
	bool eof;
};

/* One byte, or -1 at EOF or on an error. */
int conn_getc(struct conn *c);
/* Exactly n bytes into dst (or discarded when dst is NULL); 0 or -1. */
int conn_read(struct conn *c, unsigned char *dst, size_t n);
/* A line without its CR LF into dst (cap dstlen); -1 on EOF, -2 when longer than the cap. */
int conn_line(struct conn *c, char *dst, size_t dstlen);
/* All of data, or -1. */
int conn_write(struct conn *c, const void *data, size_t len);
/* Status line, headers and body (with fault pad_reply's leading spaces); 0 or -1. */
int send_response(struct conn *c, const struct rp_response *resp);
/* Stop writing, then discard what the client still sends until it closes, for a while. */
void linger_close(int fd);

#endif
