/* sim-net.c — the simulator's wire side: TCP listeners and clients, serial lines with our own
 * RTU framing, the reply pipeline (libmodbus's modbus_reply computes every answer, then the
 * unit's faults bend it) and the queue of replies held back by `delay`. Nothing here blocks. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENT_OUT_MAX (256 * 1024)   /* a client this far behind on reading is cut off */
#define HEAP_MAX 65536                /* delayed replies held at once; more are dropped, counted */

uint16_t sim_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

static int buf_append(struct sim_buf *b, const uint8_t *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_consume(struct sim_buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void buf_free(struct sim_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

/* ---- the reply engine ---------------------------------------------------------------- */

/* modbus_reply() writes its answer straight to ctx's socket. Pointing that socket at one end
 * of a socketpair lets us take the answer back, so that delay, short and wrongunit can act on
 * it and a slow client never blocks the loop; SEQPACKET keeps one reply per read. */
int sim_engine_open(struct sim *s)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	s->engine = modbus_new_tcp("127.0.0.1", MODBUS_TCP_DEFAULT_PORT);
	if (!s->engine) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	s->cap_wr = sv[0];
	s->cap_rd = sv[1];
	modbus_set_socket(s->engine, s->cap_wr);
	return 0;
}

void sim_engine_close(struct sim *s)
{
	if (s->engine) {
		/* the socket is ours: detach it so modbus_free can't touch it */
		modbus_set_socket(s->engine, -1);
		modbus_free(s->engine);
		s->engine = NULL;
	}
	if (s->cap_wr >= 0)
		close(s->cap_wr);
	if (s->cap_rd >= 0)
		close(s->cap_rd);
	s->cap_wr = s->cap_rd = -1;
}

/* The answer of a unit's image to a request in TCP form; its length, 0 when none came. */
static size_t engine_reply(struct sim *s, const uint8_t *adu, size_t len, modbus_mapping_t *map,
			   uint8_t *rsp, size_t cap)
{
	if (modbus_reply(s->engine, adu, (int)len, map) < 0) {
		sim_log("reply engine: modbus_reply: %s", modbus_strerror(errno));
		return 0;
	}
	ssize_t n = recv(s->cap_rd, rsp, cap, MSG_DONTWAIT);
	if (n <= 0) {
		sim_log("reply engine: recv: %s", n < 0 ? strerror(errno) : "nothing");
		return 0;
	}
	return (size_t)n;
}

/* An exception reply in TCP form: the request's transaction id and unit, function | 0x80. */
static size_t build_exception(const uint8_t *adu, int code, uint8_t *rsp)
{
	memcpy(rsp, adu, 4);
	rsp[4] = 0;
	rsp[5] = 3;
	rsp[6] = adu[6];
	rsp[7] = (uint8_t)(adu[7] | 0x80);
	rsp[8] = (uint8_t)code;
	return 9;
}

/* ---- delivery and the delay queue ----------------------------------------------------- */

static struct sim_client *client_at(struct sim *s, int ci, uint32_t gen)
{
	if (ci < 0 || (size_t)ci >= s->nclients)
		return NULL;
	struct sim_client *c = &s->clients[ci];
	return c->fd >= 0 && c->gen == gen ? c : NULL;
}

static void client_send(struct sim *s, size_t ci, const uint8_t *p, size_t n)
{
	struct sim_client *c = &s->clients[ci];
	if (c->out.len == 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			sim_client_close(s, ci);  /* the peer went away; nothing to report */
			return;
		}
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	if (n == 0)
		return;
	if (c->out.len + n > CLIENT_OUT_MAX || buf_append(&c->out, p, n) < 0) {
		sim_log("endpoint %d: client %zu: not reading its replies, closing", c->ep, ci);
		sim_client_close(s, ci);
	}
}

static void rtu_send(struct sim_endpoint *ep, const uint8_t *p, size_t n)
{
	if (ep->fd < 0)
		return;
	if (ep->rout.len == 0) {
		ssize_t w = write(ep->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			sim_log("endpoint %d (%s): write: %s", ep->index, ep->device, strerror(errno));
			return;
		}
	}
	/* a line nobody reads can't grow this without bound: keep the last few replies only */
	if (n && (ep->rout.len + n > 64 * 1024 || buf_append(&ep->rout, p, n) < 0))
		sim_log("endpoint %d (%s): output backed up, reply dropped", ep->index, ep->device);
}

static void deliver(struct sim *s, int ep, int ci, uint32_t gen, const uint8_t *p, size_t n)
{
	if (ci < 0) {
		rtu_send(&s->eps[ep], p, n);
		return;
	}
	if (client_at(s, ci, gen))
		client_send(s, (size_t)ci, p, n);
}

static bool heap_less(const struct sim_pending *a, const struct sim_pending *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_swap(struct sim_pending *a, struct sim_pending *b)
{
	struct sim_pending t = *a;
	*a = *b;
	*b = t;
}

static void heap_push(struct sim *s, int64_t due, int ep, int ci, uint32_t gen,
		      const uint8_t *p, size_t n)
{
	if (s->heap_len == s->heap_cap) {
		size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
		struct sim_pending *h = cap <= HEAP_MAX ? realloc(s->heap, cap * sizeof(*h)) : NULL;
		if (!h) {
			if (s->replies_dropped++ == 0)
				sim_log("delay queue full (%zu replies), dropping replies", s->heap_len);
			return;
		}
		s->heap = h;
		s->heap_cap = cap;
	}
	size_t i = s->heap_len++;
	struct sim_pending *e = &s->heap[i];
	e->due_ns = due;
	e->seq = s->heap_seq++;
	e->ep = ep;
	e->client = ci;
	e->gen = gen;
	e->len = (uint16_t)n;
	memcpy(e->data, p, n);
	while (i > 0 && heap_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
		heap_swap(&s->heap[i], &s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static void heap_pop(struct sim *s)
{
	s->heap[0] = s->heap[--s->heap_len];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->heap_len && heap_less(&s->heap[l], &s->heap[m]))
			m = l;
		if (r < s->heap_len && heap_less(&s->heap[r], &s->heap[m]))
			m = r;
		if (m == i)
			break;
		heap_swap(&s->heap[i], &s->heap[m]);
		i = m;
	}
}

int64_t sim_timers_run(struct sim *s, int64_t now_ns)
{
	while (s->heap_len && s->heap[0].due_ns <= now_ns) {
		struct sim_pending e = s->heap[0];
		heap_pop(s);
		deliver(s, e.ep, e.client, e.gen, e.data, e.len);
	}
	return s->heap_len ? s->heap[0].due_ns : -1;
}

/* ---- the request pipeline -------------------------------------------------------------- */

/* Now, or after the unit's delay (in order: equal due times leave by arrival). */
static void send_reply(struct sim *s, const struct sim_unit *u, int ep, int ci, uint32_t gen,
		       int64_t now, const uint8_t *p, size_t n)
{
	if (u->delay_ms)
		heap_push(s, now + (int64_t)u->delay_ms * 1000000, ep, ci, gen, p, n);
	else
		deliver(s, ep, ci, gen, p, n);
}

/* adu: one request in TCP form (MBAP + unit + PDU), zero-padded to SIM_MAX_ADU so that
 * modbus_reply can never read past it whatever counts the request claims. */
static void serve(struct sim *s, struct sim_endpoint *ep, const uint8_t *adu, size_t len,
		  int ci, uint32_t gen)
{
	uint8_t rsp[SIM_MAX_ADU + 8];
	size_t rlen;
	int unit = adu[6];
	int64_t now = sim_now_ns();

	if (ep->kind == SIM_RTU && unit == 0) {
		/* a broadcast: every unit on the line obeys (writes), none answers */
		for (int i = 0; i < SIM_NO_UNITS; i++) {
			struct sim_unit *u = ep->units[i];
			if (!u || u->silence)
				continue;
			sim_unit_advance(u, now);
			u->requests++;
			ep->requests++;
			s->requests++;
			engine_reply(s, adu, len, u->map, rsp, sizeof(rsp));
		}
		return;
	}

	struct sim_unit *u = ep->units[unit];
	if (!u) {
		ep->unserved++;
		s->unserved++;
		/* a TCP endpoint plays a gateway: it says the target didn't answer; a serial
		 * line stays silent as a real bus does */
		if (ep->kind == SIM_TCP) {
			rlen = build_exception(adu, MODBUS_EXCEPTION_GATEWAY_TARGET, rsp);
			deliver(s, ep->index, ci, gen, rsp, rlen);
		}
		return;
	}
	u->requests++;
	ep->requests++;
	s->requests++;
	sim_unit_advance(u, now);
	if (u->silence)
		return;

	if (u->exception)
		rlen = build_exception(adu, u->exception, rsp);
	else
		rlen = engine_reply(s, adu, len, u->map, rsp, sizeof(rsp));
	if (rlen < 8)
		return;
	if (u->wrongunit)
		rsp[6] = (uint8_t)(rsp[6] % 247 + 1);   /* 1..247 and never the same */
	if (ep->kind == SIM_RTU) {
		/* unit + PDU, then the CRC (low byte first) over them */
		memmove(rsp, rsp + 6, rlen - 6);
		rlen -= 6;
		uint16_t crc = sim_crc16(rsp, rlen);
		rsp[rlen++] = (uint8_t)(crc & 0xFF);
		rsp[rlen++] = (uint8_t)(crc >> 8);
	}
	if (ep->kind == SIM_TCP && u->badproto)
		rsp[3] = 1;   /* protocol id 1: not Modbus */
	if (u->shortreply)
		rlen -= 3;   /* every reply is at least 5 bytes: the client always gets a stump */
	struct sim_client *c = ci >= 0 ? client_at(s, ci, gen) : NULL;
	if (u->stale && c) {
		/* a gateway replaying what it sent before: the connection's previous reply, with
		 * its older transaction id, goes first (for a first reply: this one, id - 1) */
		uint8_t old[SIM_MAX_ADU + 8];
		size_t olen = c->last_len;
		if (olen) {
			memcpy(old, c->last, olen);
		} else {
			memcpy(old, rsp, rlen);
			olen = rlen;
			uint16_t tid = (uint16_t)((rsp[0] << 8 | rsp[1]) - 1);
			old[0] = (uint8_t)(tid >> 8);
			old[1] = (uint8_t)tid;
		}
		send_reply(s, u, ep->index, ci, gen, now, old, olen);
	}
	if (c) {
		memcpy(c->last, rsp, rlen);
		c->last_len = rlen;
	}
	send_reply(s, u, ep->index, ci, gen, now, rsp, rlen);
	if (u->twice && c)
		send_reply(s, u, ep->index, ci, gen, now, rsp, rlen);
}

/* ---- TCP ------------------------------------------------------------------------------- */

/* The library's listener first (it handles names and IPv6); it asks getaddrinfo for
 * AI_ADDRCONFIG, which on a host with only loopback addresses finds nothing, so then we bind
 * the numeric address ourselves. */
static int tcp_listen(struct sim_endpoint *ep)
{
	char port[16];
	int n = snprintf(port, sizeof(port), "%d", ep->port);
	if (n < 0 || (size_t)n >= sizeof(port))
		return -EINVAL;
	int fd = -1;
	modbus_t *ctx = modbus_new_tcp_pi(ep->host, port);
	if (ctx) {
		fd = modbus_tcp_pi_listen(ctx, SOMAXCONN);
		modbus_free(ctx);
	}
	if (fd < 0 && errno != EADDRINUSE && errno != EACCES) {
		struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
					  .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai = NULL;
		if (getaddrinfo(ep->host, port, &hints, &ai) != 0)
			return -EADDRNOTAVAIL;
		int err = EADDRNOTAVAIL;
		for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
			fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
			if (fd < 0)
				continue;
			int one = 1;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
				err = errno;
				close(fd);
				fd = -1;
			}
		}
		freeaddrinfo(ai);
		if (fd < 0)
			return -err;
	}
	if (fd < 0)
		return -errno;
	int r = set_nonblock(fd);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (r == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	/* keep the bound port: `open` after `close` must come back on the same one */
	ep->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	ep->listen_fd = fd;
	return 0;
}

static int rtu_open(struct sim_endpoint *ep)
{
	ep->rtu = modbus_new_rtu(ep->device, ep->baud, ep->parity, ep->data_bits, ep->stop_bits);
	if (!ep->rtu)
		return -errno ? -errno : -EINVAL;
	if (modbus_connect(ep->rtu) < 0) {
		int err = errno;
		modbus_free(ep->rtu);
		ep->rtu = NULL;
		return -err;
	}
	ep->fd = modbus_get_socket(ep->rtu);
	int r = set_nonblock(ep->fd);
	if (r < 0) {
		modbus_close(ep->rtu);
		modbus_free(ep->rtu);
		ep->rtu = NULL;
		ep->fd = -1;
		return r;
	}
	/* 3.5 characters is the standard's silence, but USB adapters deliver a frame in
	 * chunks a few milliseconds apart; frame length comes from the function code
	 * anyway, so this only ends garbage and unknown functions, and may be generous */
	int bits = 1 + ep->data_bits + (ep->parity == 'N' ? 0 : 1) + ep->stop_bits;
	int64_t char_ns = (int64_t)bits * 1000000000 / ep->baud;
	ep->gap_ns = 35 * char_ns / 10;
	if (ep->gap_ns < 50 * 1000000LL)
		ep->gap_ns = 50 * 1000000LL;
	ep->rin_len = 0;
	return 0;
}

int sim_ep_open(struct sim *s, struct sim_endpoint *ep)
{
	(void)s;
	if (ep->kind == SIM_TCP)
		return ep->listen_fd >= 0 ? -EALREADY : tcp_listen(ep);
	return ep->fd >= 0 ? -EALREADY : rtu_open(ep);
}

void sim_ep_close(struct sim *s, struct sim_endpoint *ep)
{
	if (ep->kind == SIM_TCP) {
		if (ep->listen_fd >= 0)
			close(ep->listen_fd);
		ep->listen_fd = -1;
		sim_ep_drop_clients(s, ep);
		return;
	}
	if (ep->rtu) {
		modbus_close(ep->rtu);
		modbus_free(ep->rtu);
		ep->rtu = NULL;
	}
	ep->fd = -1;
	ep->rin_len = 0;
	buf_free(&ep->rout);
}

void sim_client_close(struct sim *s, size_t ci)
{
	struct sim_client *c = &s->clients[ci];
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->gen++;
	s->nlive--;
	c->in_len = 0;
	free(c->in);
	c->in = NULL;
	c->last = NULL;
	c->last_len = 0;
	buf_free(&c->out);
}

void sim_ep_drop_clients(struct sim *s, struct sim_endpoint *ep)
{
	for (size_t i = 0; i < s->nclients; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].ep == ep->index)
			sim_client_close(s, i);
}

size_t sim_ep_clients(const struct sim *s, const struct sim_endpoint *ep)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nclients; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].ep == ep->index)
			n++;
	return n;
}

static long client_slot(struct sim *s)
{
	for (size_t i = 0; i < s->nclients; i++)
		if (s->clients[i].fd < 0)
			return (long)i;
	size_t n = s->nclients ? 2 * s->nclients : 16;
	struct sim_client *c = realloc(s->clients, n * sizeof(*c));
	if (!c)
		return -1;
	for (size_t i = s->nclients; i < n; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].fd = -1;
	}
	s->clients = c;
	long slot = (long)s->nclients;
	s->nclients = n;
	return slot;
}

void sim_accept(struct sim *s, struct sim_endpoint *ep)
{
	for (;;) {
		int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* the connection waits in the backlog; stop polling the listener a
				 * moment instead of spinning on it */
				int64_t now = sim_now_ns();
				ep->accept_resume_ns = now + 100 * 1000000LL;
				if (now - ep->accept_err_logged_ns > 10 * 1000000000LL) {
					sim_log("endpoint %d (%s): accept: %s, retrying in 100 ms",
						ep->index, ep->spec, strerror(errno));
					ep->accept_err_logged_ns = now;
				}
			}
			return;
		}
		long slot = client_slot(s);
		uint8_t *in = slot < 0 ? NULL : malloc(SIM_CLIENT_IN + SIM_MAX_ADU + 8);
		if (!in) {
			sim_log("endpoint %d (%s): no memory for a client, refusing it", ep->index, ep->spec);
			close(fd);
			return;
		}
		/* replies are small and must leave at once, not wait for the next ACK */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct sim_client *c = &s->clients[slot];
		c->fd = fd;
		c->ep = ep->index;
		c->in = in;
		c->in_len = 0;
		c->last = in + SIM_CLIENT_IN;
		c->last_len = 0;
		s->nlive++;
		ep->accepted++;
	}
}

void sim_client_readable(struct sim *s, size_t ci)
{
	struct sim_client *c = &s->clients[ci];
	uint32_t gen = c->gen;
	ssize_t n = recv(c->fd, c->in + c->in_len, SIM_CLIENT_IN - c->in_len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		sim_client_close(s, ci);
		return;
	}
	if (n < 0)
		return;
	c->in_len += (size_t)n;
	size_t off = 0;
	while (c->in_len - off >= 7) {
		const uint8_t *h = c->in + off;
		unsigned proto = (unsigned)h[2] << 8 | h[3];
		unsigned len = (unsigned)h[4] << 8 | h[5];
		if (proto != 0 || len < 2 || len > SIM_MAX_ADU - 6) {
			sim_log("endpoint %d: client %zu: not a modbus tcp header (protocol %u, length %u), closing",
				c->ep, ci, proto, len);
			sim_client_close(s, ci);
			return;
		}
		if (c->in_len - off < 6 + len)
			break;
		uint8_t adu[SIM_MAX_ADU] = { 0 };
		memcpy(adu, h, 6 + len);
		off += 6 + len;
		serve(s, &s->eps[c->ep], adu, 6 + len, (int)ci, gen);
		if (!client_at(s, (int)ci, gen))
			return;   /* closed while answering */
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

void sim_client_writable(struct sim *s, size_t ci)
{
	struct sim_client *c = &s->clients[ci];
	if (c->out.len == 0)
		return;
	ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			sim_client_close(s, ci);
		return;
	}
	buf_consume(&c->out, (size_t)w);
}

/* ---- RTU ------------------------------------------------------------------------------- */

/* The length of a request frame (with CRC) from its function code: >0 known, 0 need more
 * bytes, -1 a function whose length only the line's silence tells. */
static long rtu_request_len(const uint8_t *b, size_t n)
{
	if (n < 2)
		return 0;
	switch (b[1]) {
	case 0x01: case 0x02: case 0x03: case 0x04: case 0x05: case 0x06: case 0x08:
		return 8;
	case 0x07: case 0x0B: case 0x0C: case 0x11:
		return 4;
	case 0x0F: case 0x10:
		return n < 7 ? 0 : 9 + (long)b[6];
	case 0x16:
		return 10;
	case 0x17:
		return n < 11 ? 0 : 13 + (long)b[10];
	default:
		return -1;
	}
}

static bool crc_ok(const uint8_t *b, size_t n)
{
	if (n < 4)
		return false;
	uint16_t crc = sim_crc16(b, n - 2);
	return b[n - 2] == (crc & 0xFF) && b[n - 1] == (crc >> 8);
}

static void rtu_frame(struct sim *s, struct sim_endpoint *ep, const uint8_t *f, size_t n)
{
	/* as TCP: MBAP (transaction 0, protocol 0, length), then unit and PDU without CRC */
	uint8_t adu[SIM_MAX_ADU] = { 0 };
	size_t body = n - 2;
	adu[4] = (uint8_t)(body >> 8);
	adu[5] = (uint8_t)body;
	memcpy(adu + 6, f, body);
	serve(s, ep, adu, 6 + body, -1, 0);
}

/* A complete request with a known length and a good CRC at b; its length in *len. */
static bool frame_at(const uint8_t *b, size_t n, size_t *len)
{
	long need = rtu_request_len(b, n);
	if (need < 4 || need > 256 || (size_t)need > n || !crc_ok(b, (size_t)need))
		return false;
	*len = (size_t)need;
	return true;
}

static void rtu_consume(struct sim_endpoint *ep, size_t n)
{
	memmove(ep->rin, ep->rin + n, ep->rin_len - n);
	ep->rin_len -= n;
}

/* Takes every complete frame off the front of the input. Bytes that can't start a good frame
 * (noise, a torn or corrupted frame) are skipped up to the next good frame found behind them.
 * silent: the line has been quiet for the gap, so what is left is all there is. */
static void rtu_parse(struct sim *s, struct sim_endpoint *ep, bool silent)
{
	while (ep->rin_len > 0) {
		size_t len;
		if (frame_at(ep->rin, ep->rin_len, &len)) {
			rtu_frame(s, ep, ep->rin, len);
			rtu_consume(ep, len);
			continue;
		}
		long need = rtu_request_len(ep->rin, ep->rin_len);
		bool full = ep->rin_len == sizeof(ep->rin);
		bool front_bad = need < 0 || need > 256 || (need > 0 && ep->rin_len >= (size_t)need);
		if (front_bad || silent || full) {
			size_t k;
			for (k = 1; k < ep->rin_len; k++)
				if (frame_at(ep->rin + k, ep->rin_len - k, &len))
					break;
			if (k < ep->rin_len) {
				ep->bad_frames++;
				rtu_consume(ep, k);
				continue;
			}
		}
		if (!silent && !full)
			return;   /* a frame still arriving, or one whose end only silence tells */
		if (need < 0 && ep->rin_len <= 256 && crc_ok(ep->rin, ep->rin_len))
			rtu_frame(s, ep, ep->rin, ep->rin_len);   /* the library answers "illegal function" */
		else
			ep->bad_frames++;
		ep->rin_len = 0;
	}
}

void sim_rtu_readable(struct sim *s, struct sim_endpoint *ep, int64_t now_ns)
{
	ssize_t n = read(ep->fd, ep->rin + ep->rin_len, sizeof(ep->rin) - ep->rin_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* a pty whose other side closed reads EIO forever: close rather than spin */
		sim_log("endpoint %d (%s): read: %s, closing the port (`open %d` reopens it)",
			ep->index, ep->device, n < 0 ? strerror(errno) : "hang-up", ep->index);
		sim_ep_close(s, ep);
		return;
	}
	ep->rin_len += (size_t)n;
	ep->last_rx_ns = now_ns;
	rtu_parse(s, ep, false);
}

void sim_rtu_writable(struct sim *s, struct sim_endpoint *ep)
{
	(void)s;
	if (ep->fd < 0 || ep->rout.len == 0)
		return;
	ssize_t w = write(ep->fd, ep->rout.p, ep->rout.len);
	if (w > 0)
		buf_consume(&ep->rout, (size_t)w);
	else if (w < 0 && errno != EAGAIN && errno != EINTR)
		sim_log("endpoint %d (%s): write: %s", ep->index, ep->device, strerror(errno));
}

int64_t sim_rtu_tick(struct sim *s, struct sim_endpoint *ep, int64_t now_ns)
{
	if (ep->fd < 0 || ep->rin_len == 0)
		return -1;
	if (now_ns - ep->last_rx_ns >= ep->gap_ns) {
		rtu_parse(s, ep, true);
		return -1;
	}
	return ep->last_rx_ns + ep->gap_ns;
}
