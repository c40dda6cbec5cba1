/* http_conn.c — one connection of the reference platform's HTTP server: the transport (TLS, or
 * the socket itself on the --listen-http listener), buffered reading, writing a reply, and the
 * lingering close after Connection: close. Requests are parsed in http.c. */
#include "http_conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#define LINGER_MS 2000

/* ---- the transport: TLS, or the socket itself ---- */

/* Up to n bytes; > 0 read, -1 at EOF or on an error. */
static int io_read(struct conn *c, void *dst, size_t n)
{
	int want = n > (1u << 30) ? (1 << 30) : (int)n;
	if (c->ssl) {
		int r = SSL_read(c->ssl, dst, want);
		if (r <= 0) {
			ERR_clear_error();
			return -1;
		}
		return r;
	}
	for (;;) {
		ssize_t r = read(c->fd, dst, (size_t)want);
		if (r < 0 && errno == EINTR)
			continue;
		return r > 0 ? (int)r : -1;
	}
}

static int io_write(struct conn *c, const void *src, size_t n)
{
	int want = n > (1u << 30) ? (1 << 30) : (int)n;
	if (c->ssl) {
		int w = SSL_write(c->ssl, src, want);
		if (w <= 0) {
			ERR_clear_error();
			return -1;
		}
		return w;
	}
	for (;;) {
		ssize_t w = write(c->fd, src, (size_t)want);
		if (w < 0 && errno == EINTR)
			continue;
		return w > 0 ? (int)w : -1;
	}
}

/* ---- buffered reading ---- */

static int conn_fill(struct conn *c)
{
	if (c->eof)
		return -1;
	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->len == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	int n = io_read(c, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0) {
		c->eof = true;
		return -1;
	}
	c->len += (size_t)n;
	return n;
}

int conn_getc(struct conn *c)
{
	if (c->off == c->len && conn_fill(c) < 0)
		return -1;
	return c->buf[c->off++];
}

/* Exactly n bytes into dst (or discarded when dst is NULL); 0 or -1. */
int conn_read(struct conn *c, unsigned char *dst, size_t n)
{
	size_t have = c->len - c->off;
	size_t take = have < n ? have : n;
	if (dst && take)
		memcpy(dst, c->buf + c->off, take);
	c->off += take;
	n -= take;
	if (dst)
		dst += take;
	while (n > 0) {
		if (dst && n >= sizeof(c->buf)) {
			/* Large bodies go straight into their buffer. */
			int r = io_read(c, dst, n);
			if (r <= 0) {
				c->eof = true;
				return -1;
			}
			dst += r;
			n -= (size_t)r;
			continue;
		}
		if (conn_fill(c) < 0)
			return -1;
		have = c->len - c->off;
		take = have < n ? have : n;
		if (dst) {
			memcpy(dst, c->buf + c->off, take);
			dst += take;
		}
		c->off += take;
		n -= take;
	}
	return 0;
}

/* A line without its CR LF into dst (cap dstlen); -1 on EOF, -2 when longer than the cap. */
int conn_line(struct conn *c, char *dst, size_t dstlen)
{
	size_t n = 0;
	for (;;) {
		int ch = conn_getc(c);
		if (ch < 0)
			return -1;
		if (ch == '\n')
			break;
		if (n + 1 >= dstlen)
			return -2;
		dst[n++] = (char)ch;
	}
	if (n > 0 && dst[n - 1] == '\r')
		n--;
	dst[n] = '\0';
	return (int)n;
}

/* ---- writing ---- */

int conn_write(struct conn *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len > 0) {
		int w = io_write(c, p, len);
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

int send_response(struct conn *c, const struct rp_response *resp)
{
	char head[512];
	char retry[48] = "";
	if (resp->retry_after >= 0) {
		int r = snprintf(retry, sizeof(retry), "Retry-After: %d\r\n", resp->retry_after);
		if (r < 0 || (size_t)r >= sizeof(retry))
			return -1;
	}
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nServer: refplat\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
			 resp->status, reason(resp->status),
			 resp->content_type ? resp->content_type : "application/json", resp->pad + resp->body_len,
			 retry, resp->close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (resp->pad) {
		/* fault pad_reply: leading spaces (still valid JSON), written apart from the body so
		 * that the client meets them as several pieces before the body's own. */
		char spaces[4096];
		memset(spaces, ' ', sizeof(spaces));
		if (conn_write(c, head, (size_t)n) < 0)
			return -1;
		for (size_t left = resp->pad; left > 0;) {
			size_t k = left < sizeof(spaces) ? left : sizeof(spaces);
			if (conn_write(c, spaces, k) < 0)
				return -1;
			left -= k;
		}
		return resp->body_len ? conn_write(c, resp->body, resp->body_len) : 0;
	}
	/* One TLS record for small replies: fewer packets, no Nagle interplay. */
	if (resp->body_len <= 16384) {
		unsigned char one[512 + 16384];
		memcpy(one, head, (size_t)n);
		if (resp->body_len)
			memcpy(one + n, resp->body, resp->body_len);
		return conn_write(c, one, (size_t)n + resp->body_len);
	}
	if (conn_write(c, head, (size_t)n) < 0)
		return -1;
	return conn_write(c, resp->body, resp->body_len);
}

/* After a final reply with Connection: close, the client may still be sending a body we did not
 * read; closing now would reset the connection and could destroy our reply before the client
 * reads it. So: stop writing, then discard what arrives until the client closes, for a while. */
void linger_close(int fd)
{
	if (fd < 0 || shutdown(fd, SHUT_WR) < 0)
		return;
	int64_t until = rp_now_ms() + LINGER_MS;
	char sink[16384];
	for (;;) {
		int64_t left = until - rp_now_ms();
		if (left <= 0)
			return;
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		ssize_t n = read(fd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}
