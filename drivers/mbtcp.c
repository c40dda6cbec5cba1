/* mbtcp.c — Modbus/TCP without blocking. libmodbus (3.1.6 here) sends every raw request with
 * transaction id 0 and checks no id in a reply, so a gateway that answers twice, or late,
 * would hand one request the previous one's reply. Each request goes out with an id of our
 * own; only a reply with that id, protocol id 0 and an MBAP length that frames it is taken.
 * A stale reply is skipped and the next one read; bytes that are no Modbus/TCP frame leave the
 * stream in doubt: discarded, and the request sent again under a new id (reads are
 * idempotent). All within the bus's time-out; past it, or after too many, the request fails
 * and the connection is dropped: a wrong value is never returned. */
#include "mbtcp.h"

#include <errno.h>
#include <modbus/modbus.h> /* for its error codes and strings */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCP_SKIP_MAX 8
#define TCP_RESEND_MAX 2
#define MBAP_MAX 260

enum conn_state { C_IDLE, C_CONNECTING, C_WAITING };

struct mb_conn {
	const struct bus_cfg *cfg;
	int fd;
	enum conn_state st;
	bool refused;
	uint64_t tag;
	uint16_t tid;
	int unit;
	const struct mb_req *rq;
	int64_t deadline;
	int skipped, resent;
	char last[80];
	size_t rx_len;
	uint8_t rx[2 * MBAP_MAX];
};

int64_t mb_real_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mb_conn *mb_conn_new(const struct bus_cfg *cfg)
{
	struct mb_conn *c = calloc(1, sizeof(*c));
	if (c) {
		c->cfg = cfg;
		c->fd = -1;
	}
	return c;
}

void mb_conn_close(struct mb_conn *c, int epfd)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->st = C_IDLE;
	c->rx_len = 0;
}

void mb_conn_free(struct mb_conn *c, int epfd)
{
	if (!c)
		return;
	mb_conn_close(c, epfd);
	free(c);
}

int64_t mb_conn_deadline(const struct mb_conn *c)
{
	return c->st == C_IDLE ? INT64_MAX : c->deadline;
}

bool mb_conn_refused(const struct mb_conn *c)
{
	return c->refused;
}

static int fail_connect(struct mb_conn *c, int epfd, int e, struct mb_values *out)
{
	snprintf(out->error, sizeof(out->error), "bus \"%s\" (%s): cannot connect: %s", c->cfg->id, c->cfg->url,
		 modbus_strerror(e));
	mb_conn_close(c, epfd);
	c->refused = true;
	return -e;
}

static int fail_request(struct mb_conn *c, int epfd, int e, const char *why, struct mb_values *out)
{
	char buf[200] = "";
	if (!why && c->skipped) {
		snprintf(buf, sizeof(buf), "no reply with transaction id %u (%s): %d dropped, the last %s", c->tid,
			 modbus_strerror(e), c->skipped, c->last);
		why = buf;
	}
	mb_req_error(out, c->unit, c->rq, why, e);
	if (mb_is_exception(e))
		c->st = C_IDLE;
	else
		mb_conn_close(c, epfd);
	return -e;
}

static int send_request(struct mb_conn *c)
{
	uint8_t adu[6 + 6];
	c->tid++;
	adu[0] = (uint8_t)(c->tid >> 8);
	adu[1] = (uint8_t)c->tid;
	adu[2] = adu[3] = 0;
	adu[4] = 0;
	adu[5] = 6;
	mb_req_frame(c->unit, c->rq, adu + 6);
	for (;;) {
		ssize_t w = send(c->fd, adu, sizeof(adu), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w == (ssize_t)sizeof(adu))
			return 0;
		if (w < 0 && errno == EINTR)
			continue;
		/* 12 bytes on an idle socket: anything short of all of them is a broken link. */
		return w < 0 ? -errno : -EIO;
	}
}

static int start_connect(struct mb_conn *c, int epfd, uint64_t tag, struct mb_values *out)
{
	char port[8];
	snprintf(port, sizeof(port), "%d", c->cfg->port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
	int g = getaddrinfo(c->cfg->host, port, &hints, &ai);
	if (g != 0) {
		snprintf(out->error, sizeof(out->error), "bus \"%s\" (%s): cannot connect: %s", c->cfg->id,
			 c->cfg->url, gai_strerror(g));
		c->refused = true;
		return -EHOSTUNREACH;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		freeaddrinfo(ai);
		return fail_connect(c, epfd, e, out);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	int e = errno;
	freeaddrinfo(ai);
	c->fd = fd;
	if (r < 0 && e != EINPROGRESS)
		return fail_connect(c, epfd, e, out);
	struct epoll_event ev = { .events = r == 0 ? EPOLLIN : EPOLLOUT, .data.u64 = tag };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return fail_connect(c, epfd, errno, out);
	c->rx_len = 0;
	c->deadline = mb_real_mono_ms() + c->cfg->timeout_ms;
	c->st = C_CONNECTING;
	return r == 0 ? 0 : MB_IO_WAIT;
}

static int begin_send(struct mb_conn *c, int epfd, struct mb_values *out)
{
	c->skipped = c->resent = 0;
	c->last[0] = '\0';
	int r = send_request(c);
	if (r < 0)
		return fail_request(c, epfd, -r, NULL, out);
	c->deadline = mb_real_mono_ms() + c->cfg->timeout_ms;
	c->st = C_WAITING;
	return MB_IO_WAIT;
}

int mb_conn_start(struct mb_conn *c, int epfd, uint64_t tag, int unit, const struct mb_req *rq,
		  struct mb_values *out)
{
	c->unit = unit;
	c->rq = rq;
	c->refused = false;
	c->tag = tag;
	if (c->fd < 0) {
		int r = start_connect(c, epfd, tag, out);
		if (r != 0)
			return r;
	}
	return begin_send(c, epfd, out);
}

/* Bytes in doubt: whatever the socket holds goes too. */
static void discard(struct mb_conn *c)
{
	uint8_t junk[512];
	c->rx_len = 0;
	while (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
}

/* The frames received so far: MB_IO_WAIT for more, 0 or < 0 for the request. */
static int take_frames(struct mb_conn *c, int epfd, uint16_t *regs, uint8_t *bits, struct mb_values *out)
{
	while (c->rx_len >= 6) {
		const uint8_t *f = c->rx;
		unsigned tid = (unsigned)f[0] << 8 | f[1], proto = (unsigned)f[2] << 8 | f[3];
		unsigned len = (unsigned)f[4] << 8 | f[5];
		if (proto != 0 || len < 2 || len > MBAP_MAX - 6) {
			snprintf(c->last, sizeof(c->last), "protocol id %u, length %u in %zu bytes", proto, len,
				 c->rx_len);
			c->skipped++;
			discard(c);
			if (c->resent++ == TCP_RESEND_MAX || c->skipped == TCP_SKIP_MAX)
				return fail_request(c, epfd, EMBBADDATA, NULL, out);
			int r = send_request(c);
			if (r < 0)
				return fail_request(c, epfd, -r, NULL, out);
			return MB_IO_WAIT;
		}
		size_t n = 6 + len;
		if (c->rx_len < n)
			return MB_IO_WAIT;
		if (tid == c->tid) {
			char why[160] = "";
			int r = mb_reply_check(f, (int)n, 7, c->unit, c->rq, regs, bits, why, sizeof(why));
			c->rx_len -= n;
			memmove(c->rx, c->rx + n, c->rx_len);
			if (r < 0)
				return fail_request(c, epfd, -r, why, out);
			c->st = C_IDLE;
			return 0;
		}
		snprintf(c->last, sizeof(c->last), "stale, transaction id %u", tid);
		c->rx_len -= n;
		memmove(c->rx, c->rx + n, c->rx_len);
		if (++c->skipped == TCP_SKIP_MAX)
			return fail_request(c, epfd, EMBBADDATA, NULL, out);
	}
	return MB_IO_WAIT;
}

int mb_conn_step(struct mb_conn *c, int epfd, bool timed_out, uint16_t *regs, uint8_t *bits,
		 struct mb_values *out)
{
	if (c->st == C_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof(e);
		if (timed_out)
			return fail_connect(c, epfd, ETIMEDOUT, out);
		/* An event may be left over from the lane's previous socket: only a writable
		 * socket has finished connecting. */
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		if (poll(&pf, 1, 0) == 0)
			return MB_IO_WAIT;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
		if (e == EINPROGRESS)
			return MB_IO_WAIT;
		if (e)
			return fail_connect(c, epfd, e, out);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = c->tag };
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		return begin_send(c, epfd, out);
	}
	if (c->st != C_WAITING)
		return MB_IO_WAIT;
	if (!timed_out) {
		for (;;) {
			ssize_t n = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
			if (n > 0) {
				c->rx_len += (size_t)n;
				break;
			}
			if (n == 0)
				return fail_request(c, epfd, ECONNRESET, NULL, out);
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return MB_IO_WAIT;
			return fail_request(c, epfd, errno, NULL, out);
		}
		int r = take_frames(c, epfd, regs, bits, out);
		if (r != MB_IO_WAIT)
			return r;
	}
	if (mb_real_mono_ms() >= c->deadline)
		return fail_request(c, epfd, ETIMEDOUT, NULL, out);
	return MB_IO_WAIT;
}
