/* mbbus.c — one Modbus bus (TCP or RTU on libmodbus): a context that carries one request at
 * a time, with gap_ms of silence between frames; every request made by hand and every reply
 * checked (unit, function, byte count, and on TCP the transaction and protocol ids), so that
 * a value only ever comes from the reply to its own request. */
#include "modbus.h"
#include "clock.h"
#include "mbdecode.h"
#include "mbplan.h"

#include <errno.h>
#include <modbus/modbus.h> /* not <modbus.h>: that would find drivers/modbus.h */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* ---- one bus: a libmodbus context and who may use it ------------------------------- */

struct mb_bus {
	const struct bus_cfg *cfg;
	modbus_t *ctx;
	bool connected;
	int64_t ready_ms;            /* monotonic: no request before this (gap_ms, reconnects) */
	uint16_t tid;                /* Modbus/TCP: the transaction id of the last request sent */
};

struct mb_bus *mb_bus_new(const struct bus_cfg *bc)
{
	struct mb_bus *b = calloc(1, sizeof(*b));
	if (b)
		b->cfg = bc;
	return b;
}

static void bus_drop(struct mb_bus *b)
{
	if (b->ctx) {
		modbus_close(b->ctx);
		modbus_free(b->ctx);
	}
	b->ctx = NULL;
	b->connected = false;
}

void mb_bus_close(struct mb_bus *b)
{
	bus_drop(b);
}

int64_t mb_bus_ready_ms(const struct mb_bus *b)
{
	return b->ready_ms;
}

void mb_bus_free(struct mb_bus *b)
{
	if (!b)
		return;
	bus_drop(b);
	free(b);
}

static int bus_connect(struct mb_bus *b, char *err, size_t errlen)
{
	if (b->connected)
		return 0;
	const struct bus_cfg *c = b->cfg;
	if (!b->ctx) {
		if (c->kind == BUS_TCP) {
			char port[8];
			snprintf(port, sizeof(port), "%d", c->port);
			b->ctx = modbus_new_tcp_pi(c->host, port);
		} else {
			b->ctx = modbus_new_rtu(c->device, c->baud, c->parity, c->data_bits, c->stop_bits);
		}
		if (!b->ctx) {
			snprintf(err, errlen, "bus \"%s\": %s", c->id, modbus_strerror(errno));
			return -errno;
		}
		uint32_t ms = (uint32_t)c->timeout_ms;
		modbus_set_response_timeout(b->ctx, ms / 1000, (ms % 1000) * 1000);
		modbus_set_byte_timeout(b->ctx, ms / 1000, (ms % 1000) * 1000);
		modbus_set_error_recovery(b->ctx, MODBUS_ERROR_RECOVERY_NONE);
	}
	if (modbus_connect(b->ctx) < 0) {
		int e = errno;
		snprintf(err, errlen, "bus \"%s\" (%s): cannot connect: %s", c->id, c->url, modbus_strerror(e));
		/* A fresh context next time: libmodbus can keep failing on a reused one. */
		bus_drop(b);
		return -e;
	}
	b->connected = true;
	return 0;
}

static void set_response_ms(modbus_t *ctx, int64_t ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

/* Network time-outs are real time, whatever clock the scheduler is given. */
static int64_t real_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One Modbus/TCP request and the reply that belongs to it. libmodbus (3.1.6 here) sends every
 * raw request with transaction id 0, and modbus_receive_confirmation checks no id at all, so
 * a gateway that answers twice, or late, hands the next request the previous one's reply: it
 * fits when both asked one unit for as many registers, and one counter reads another's value.
 * So the request goes out with an id of our own and only a reply with that id, protocol id 0
 * and an MBAP length matching its frame is taken. A stale reply is skipped and the next one
 * read: the right one is usually right behind it. A frame that is no Modbus/TCP reply at all
 * leaves the stream in doubt: flushed, and the request sent again under a new id (reads are
 * idempotent). All within the bus's time-out; past it, or after too many, the read fails and
 * the caller reconnects: a wrong value is never returned. */
#define TCP_SKIP_MAX 8
#define TCP_RESEND_MAX 2
static int tcp_exchange(struct mb_bus *b, const uint8_t *pdu, size_t pdulen, uint8_t *rsp, char *why,
			size_t whylen)
{
	modbus_t *ctx = b->ctx;
	int fd = modbus_get_socket(ctx);
	int64_t deadline = real_mono_ms() + b->cfg->timeout_ms;
	uint8_t adu[6 + 8];
	int skipped = 0, resent = 0, r = 0;
	char last[80] = "";
	bool send = true;
	/* Bytes no request is waiting for (a duplicate that came after its twin was taken). */
	modbus_flush(ctx);
	for (;;) {
		if (send) {
			b->tid++;
			adu[0] = (uint8_t)(b->tid >> 8);
			adu[1] = (uint8_t)b->tid;
			adu[2] = adu[3] = 0;
			adu[4] = (uint8_t)(pdulen >> 8);
			adu[5] = (uint8_t)pdulen;
			memcpy(adu + 6, pdu, pdulen);
			if ((r = send_all(fd, adu, 6 + pdulen)) < 0)
				break;
			send = false;
		}
		int64_t left = deadline - real_mono_ms();
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		set_response_ms(ctx, left);
		int n = modbus_receive_confirmation(ctx, rsp);
		if (n < 0) {
			r = -errno;
			break;
		}
		unsigned tid = (unsigned)rsp[0] << 8 | rsp[1], proto = (unsigned)rsp[2] << 8 | rsp[3];
		unsigned len = (unsigned)rsp[4] << 8 | rsp[5];
		bool framed = n >= 8 && proto == 0 && len == (unsigned)n - 6;
		if (framed && tid == b->tid) {
			r = n;
			break;
		}
		skipped++;
		if (!framed) {
			snprintf(last, sizeof(last), "protocol id %u, length %u in %d bytes", proto, len, n);
			modbus_flush(ctx);
			if (resent++ == TCP_RESEND_MAX) {
				r = -EMBBADDATA;
				break;
			}
			send = true;
		} else {
			snprintf(last, sizeof(last), "stale, transaction id %u", tid);
		}
		if (skipped == TCP_SKIP_MAX) {
			r = -EMBBADDATA;
			break;
		}
	}
	set_response_ms(ctx, b->cfg->timeout_ms);
	if (r < 0 && skipped)
		snprintf(why, whylen, "no reply with transaction id %u (%s): %d dropped, the last %s", b->tid,
			 modbus_strerror(-r), skipped, last);
	return r;
}

/* One read request, checked by hand: libmodbus's own read calls accept a Modbus/TCP reply
 * that carries another unit's id (a misconfigured gateway), so the request goes out raw and
 * the reply's unit, function, byte count and length are all checked (mb_reply_check). */
static int raw_read(struct mb_bus *b, int unit, const struct mb_req *rq, uint16_t *regs, uint8_t *bits,
		    char *why, size_t whylen)
{
	modbus_t *ctx = b->ctx;
	uint8_t req[6];
	mb_req_frame(unit, rq, req);
	uint8_t rsp[MODBUS_MAX_ADU_LENGTH];
	int n;
	if (b->cfg->kind == BUS_TCP) {
		n = tcp_exchange(b, req, sizeof(req), rsp, why, whylen);
		if (n < 0)
			return n;
	} else {
		/* RTU has no transaction ids: unit, function, CRC and the checks must do. */
		if (modbus_send_raw_request(ctx, req, (int)sizeof(req)) < 0)
			return -errno;
		n = modbus_receive_confirmation(ctx, rsp);
		if (n < 0)
			return -errno;
	}
	return mb_reply_check(rsp, n, modbus_get_header_length(ctx), unit, rq, regs, bits, why, whylen);
}

/* One request of the plan. */
static int bus_read(struct mb_bus *b, int unit, const struct mb_req *rq, uint16_t *regs, uint8_t *bits,
		    struct mb_values *out)
{
	int r = bus_connect(b, out->error, sizeof(out->error));
	if (r < 0)
		return r;
	modbus_set_slave(b->ctx, unit);
	char why[160] = "";
	r = raw_read(b, unit, rq, regs, bits, why, sizeof(why));
	if (b->cfg->gap_ms > 0)
		b->ready_ms = clock_mono_ms() + b->cfg->gap_ms;
	if (r == 0)
		return 0;
	int e = -r;
	mb_req_error(out, unit, rq, why, e);
	if (mb_is_exception(e))
		return r;
	/* Time-outs, bad frames, a gateway that went away: the stream can't be trusted
	 * (a late reply would be taken for the next one), so start over. */
	if (b->cfg->kind == BUS_TCP || (e != ETIMEDOUT && e != EMBBADCRC && e != EMBBADDATA &&
					e != EMBBADSLAVE))
		bus_drop(b);
	else
		modbus_flush(b->ctx);
	return r;
}

void mb_read_points(struct mb_bus *b, const struct modbus_cfg *m, bool extras, struct mb_values *out)
{
	memset(out, 0, sizeof(*out));
	struct mb_plan pl;
	bool exact = false;
	mb_plan_make(m, exact, extras, &pl);
	for (int i = 0; i < pl.n_req; i++) {
		uint16_t regs[MB_REGS_MAX];
		uint8_t bits[MB_REGS_MAX];
		clock_sleep_until(b->ready_ms * 1000); /* gap_ms after the last request */
		int r = bus_read(b, m->unit, &pl.req[i], regs, bits, out);
		if (r == -EMBXILADD && pl.req[i].gapped && !exact) {
			/* No register between the points: read them one by one. */
			exact = true;
			mb_plan_make(m, exact, extras, &pl);
			memset(out, 0, sizeof(*out));
			i = -1;
			continue;
		}
		if (r < 0 || !mb_plan_take(m, &pl.req[i], regs, bits, out))
			return;
	}
	out->error[0] = '\0';
	mb_plan_finish(m, out);
}

void mb_read_instrument(struct mb_bus *b, const struct modbus_cfg *m, struct mb_values *out)
{
	mb_read_points(b, m, false, out);
}

int mb_read_point(struct mb_bus *b, int unit, const struct mb_point *p, double *raw, char *err, size_t errlen)
{
	uint16_t regs[4] = { 0 };
	uint8_t bits[1] = { 0 };
	struct mb_req rq = { .table = p->table, .lo = p->address, .count = mb_type_width(p->type) };
	struct mb_values v = { 0 };
	clock_sleep_until(b->ready_ms * 1000);
	int r = bus_read(b, unit, &rq, regs, bits, &v);
	if (r < 0) {
		snprintf(err, errlen, "%s", v.error);
		return r;
	}
	bool ok = true;
	*raw = p->table == MB_TABLE_COIL || p->table == MB_TABLE_DISCRETE ? bits[0] :
	       mb_decode(regs, p->type, p->word_order, &ok);
	if (!ok) {
		snprintf(err, errlen, "unit %d %s %d: %s is not a number", unit, mb_table_name(p->table),
			 p->address, mb_type_name(p->type));
		return -EINVAL;
	}
	return 0;
}
