/* modbus.c — polls instruments over Modbus TCP and RTU. A small pool of workers takes buses
 * from a queue ordered by when each is next ready, so one bus carries one request at a time
 * (with gap_ms of silence between frames) while different buses are polled concurrently.
 * Readings are handed to the core in batches by a flusher thread. */
#include "modbus.h"
#include "clock.h"
#include "core.h"
#include "log.h"
#include "mbdecode.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <modbus/modbus.h> /* not <modbus.h>: that would find drivers/modbus.h */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A poll holds a worker for a request's round trip (two with in-use on another table): at 20 ms
 * per reply and 1,000 polls a second that is ~40 busy workers. Stacks are small. */
#define MAX_WORKERS 64
#define BACKOFF_MAX_MS (300 * 1000)
#define FLUSH_EVERY_MS 200
#define QUEUE_MAX 65536

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

/* A device answered with an exception: the link is fine. */
static bool is_exception(int e)
{
	return e >= EMBXILFUN && e <= EMBXGTAR;
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
 * the reply's unit, function, byte count and length are all checked here. */
static int raw_read(struct mb_bus *b, int unit, enum mb_table table, int address, int count,
		    uint16_t *regs, uint8_t *bits, char *why, size_t whylen)
{
	static const uint8_t fc_of[] = { [MB_TABLE_HOLDING] = 0x03, [MB_TABLE_INPUT] = 0x04,
					 [MB_TABLE_COIL] = 0x01, [MB_TABLE_DISCRETE] = 0x02 };
	modbus_t *ctx = b->ctx;
	uint8_t fc = fc_of[table];
	uint8_t req[6] = { (uint8_t)unit, fc, (uint8_t)(address >> 8), (uint8_t)address,
			   (uint8_t)(count >> 8), (uint8_t)count };
	uint8_t rsp[MODBUS_MAX_ADU_LENGTH];
	int n;
	if (b->cfg->kind == BUS_TCP) {
		n = tcp_exchange(b, req, sizeof(req), rsp, why, whylen);
		if (n < 0)
			return n;
	} else {
		/* RTU has no transaction ids: unit, function, CRC and the checks below must do. */
		if (modbus_send_raw_request(ctx, req, (int)sizeof(req)) < 0)
			return -errno;
		n = modbus_receive_confirmation(ctx, rsp);
		if (n < 0)
			return -errno;
	}
	int hl = modbus_get_header_length(ctx);
	if (n < hl + 2) {
		snprintf(why, whylen, "reply of %d bytes is too short", n);
		return -EMBBADDATA;
	}
	if (rsp[hl - 1] != unit) {
		snprintf(why, whylen, "reply from unit %d, not %d", rsp[hl - 1], unit);
		return -EMBBADSLAVE;
	}
	if (rsp[hl] == (fc | 0x80)) {
		int code = rsp[hl + 1];
		return code >= 1 && code <= 11 ? -(MODBUS_ENOBASE + code) : -EMBBADEXC;
	}
	int expect = table == MB_TABLE_HOLDING || table == MB_TABLE_INPUT ? 2 * count : (count + 7) / 8;
	if (rsp[hl] != fc || rsp[hl + 1] != expect || n < hl + 2 + expect) {
		snprintf(why, whylen, "malformed reply (function %#x, %d data bytes, %d bytes in all)", rsp[hl],
			 rsp[hl + 1], n);
		return -EMBBADDATA;
	}
	const uint8_t *data = rsp + hl + 2;
	for (int i = 0; i < count; i++) {
		if (regs)
			regs[i] = (uint16_t)((data[2 * i] << 8) | data[2 * i + 1]);
		else
			bits[i] = (data[i / 8] >> (i % 8)) & 1;
	}
	return 0;
}

/* A request of count registers or bits starting at address. */
static int bus_read(struct mb_bus *b, int unit, enum mb_table table, int address, int count,
		    uint16_t *regs, uint8_t *bits, char *err, size_t errlen)
{
	int r = bus_connect(b, err, errlen);
	if (r < 0)
		return r;
	modbus_set_slave(b->ctx, unit);
	bool registers = table == MB_TABLE_HOLDING || table == MB_TABLE_INPUT;
	char why[160] = "";
	r = raw_read(b, unit, table, address, count, registers ? regs : NULL, registers ? NULL : bits, why,
		     sizeof(why));
	if (b->cfg->gap_ms > 0)
		b->ready_ms = clock_mono_ms() + b->cfg->gap_ms;
	if (r == 0)
		return 0;
	int e = -r;
	snprintf(err, errlen, "unit %d %s %d..%d: %s", unit, mb_table_name(table), address,
		 address + count - 1, why[0] ? why : modbus_strerror(e));
	if (is_exception(e))
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

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct point_ref {
	const struct mb_point *p;
	double *raw;
	bool *has;
};

void mb_read_instrument(struct mb_bus *b, const struct instrument_cfg *ic, struct mb_values *out)
{
	memset(out, 0, sizeof(*out));
	const struct modbus_cfg *m = &ic->modbus;
	struct point_ref pts[3];
	int n = 0;
	if (m->run_counter.present)
		pts[n++] = (struct point_ref){ &m->run_counter, &out->run_raw, &out->has_run };
	if (m->samples_counter.present)
		pts[n++] = (struct point_ref){ &m->samples_counter, &out->samples_raw, &out->has_samples };
	if (m->in_use.present)
		pts[n++] = (struct point_ref){ &m->in_use, &out->in_use_raw, &out->has_in_use };

	bool done[3] = { false, false, false };
	for (int i = 0; i < n; i++) {
		if (done[i])
			continue;
		/* Gather the points of the same table that touch or overlap this one. */
		const struct mb_point *p = pts[i].p;
		int lo = p->address, hi = p->address + mb_type_width(p->type) - 1;
		bool group[3] = { false, false, false };
		group[i] = true;
		for (bool grew = true; grew;) {
			grew = false;
			for (int j = 0; j < n; j++) {
				const struct mb_point *q = pts[j].p;
				int qlo = q->address, qhi = q->address + mb_type_width(q->type) - 1;
				if (group[j] || done[j] || q->table != p->table || qlo > hi + 1 || qhi < lo - 1)
					continue;
				group[j] = grew = true;
				if (qlo < lo)
					lo = qlo;
				if (qhi > hi)
					hi = qhi;
			}
		}
		int count = hi - lo + 1;
		uint16_t regs[8] = { 0 };
		uint8_t bits[8] = { 0 };
		if (b->ready_ms > clock_mono_ms())
			sleep_ms(b->ready_ms - clock_mono_ms());
		if (bus_read(b, m->unit, p->table, lo, count, regs, bits, out->error, sizeof(out->error)) < 0)
			return;
		for (int j = 0; j < n; j++) {
			if (!group[j])
				continue;
			const struct mb_point *q = pts[j].p;
			int off = q->address - lo;
			bool ok = true;
			if (q->table == MB_TABLE_COIL || q->table == MB_TABLE_DISCRETE)
				*pts[j].raw = bits[off] ? 1 : 0;
			else
				*pts[j].raw = mb_decode(regs + off, q->type, q->word_order, &ok);
			if (!ok) {
				snprintf(out->error, sizeof(out->error), "unit %d %s %d: %s is not a number",
					 m->unit, mb_table_name(q->table), q->address, mb_type_name(q->type));
				return;
			}
			*pts[j].has = true;
			done[j] = true;
		}
	}
	if (out->has_in_use) {
		const struct mb_point *p = &m->in_use;
		bool bit = p->table == MB_TABLE_COIL || p->table == MB_TABLE_DISCRETE;
		out->in_use = bit ? out->in_use_raw != 0 : out->in_use_raw * p->scale > p->above;
	}
	out->ok = true;
}

/* ---- the driver -------------------------------------------------------------------- */

struct inst {
	const struct instrument_cfg *cfg;
	size_t bus;
	int64_t due_ms;              /* monotonic, on the instrument's grid */
	int failures;
	bool offline;                /* device_offline sealed, device_online not yet */
	bool started;
	int64_t offline_since;
	/* status, under the driver's lock */
	int64_t last_ok;
	struct mb_values last;       /* the latest good reading */
	char last_error[192];
	int64_t last_at_us;          /* wall time of the latest poll, good or not; 0: none yet */
	bool last_poll_ok;
	uint64_t polls, late_polls;
};

struct lane {                    /* a bus and the instruments on it */
	struct mb_bus *bus;
	size_t *insts;
	size_t n_insts;
	bool busy;
	int64_t ready_ms;            /* when its next instrument is due (or the bus free) */
};

struct qitem {
	struct obs obs;
	char detail[256];
};

struct modbus_driver {
	const struct config *cfg;
	struct core *core;
	struct inst *insts;
	size_t n_insts;
	struct lane *lanes;
	size_t n_lanes;
	pthread_t workers[MAX_WORKERS];
	size_t n_workers;
	pthread_t flusher;
	bool flusher_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* lanes became ready, or stop */
	pthread_cond_t flush_cv;
	bool stopping;
	bool timer_kept;             /* a sleeping worker waits for the next due lane */
	_Atomic int64_t flusher_beat; /* monotonic ms of the flusher's last round */
	struct qitem *queue;         /* readings and events waiting for the core */
	size_t q_len, q_cap;
	uint64_t q_dropped;
};

static int64_t lane_next(struct modbus_driver *d, struct lane *l)
{
	int64_t t = INT64_MAX;
	for (size_t i = 0; i < l->n_insts; i++)
		if (d->insts[l->insts[i]].due_ms < t)
			t = d->insts[l->insts[i]].due_ms;
	return t > l->bus->ready_ms ? t : l->bus->ready_ms;
}

/* Under d->mu. */
static void enqueue(struct modbus_driver *d, const struct obs *o, const char *detail)
{
	if (d->q_len == d->q_cap) {
		if (d->q_cap >= QUEUE_MAX) {
			/* Counters are cumulative: a dropped reading only coarsens the next delta. */
			d->q_dropped++;
			return;
		}
		size_t cap = d->q_cap ? d->q_cap * 2 : 256;
		struct qitem *q = realloc(d->queue, cap * sizeof(*q));
		if (!q) {
			d->q_dropped++;
			return;
		}
		d->queue = q;
		d->q_cap = cap;
	}
	struct qitem *it = &d->queue[d->q_len++];
	it->obs = *o;
	it->detail[0] = '\0';
	if (detail) {
		snprintf(it->detail, sizeof(it->detail), "%s", detail);
		it->obs.u.event.detail = NULL; /* fixed up at flush: the queue may move */
	}
	if (d->q_len >= 256)
		pthread_cond_signal(&d->flush_cv);
}

static void record_result(struct modbus_driver *d, struct inst *in, const struct mb_values *v,
			  int64_t at_us)
{
	const struct modbus_cfg *m = &in->cfg->modbus;
	int64_t now = at_us / 1000000;
	char detail[256];
	in->polls++;
	in->last_at_us = at_us;
	in->last_poll_ok = v->ok;
	if (v->ok) {
		in->last = *v;
		in->last_ok = now;
		in->last_error[0] = '\0';
		if (in->offline || !in->started) {
			if (in->offline) {
				snprintf(detail, sizeof(detail), "readable again after %lld s",
					 (long long)(now - in->offline_since));
				struct obs e = { .type = OBS_EVENT, .instrument = in->cfg->id,
						 .u.event = { .at = now, .type = "device_online" } };
				enqueue(d, &e, detail);
				log_info("modbus: \"%s\" is readable again", in->cfg->id);
			}
			in->offline = false;
		}
		in->failures = 0;
	} else {
		snprintf(in->last_error, sizeof(in->last_error), "%s", v->error);
		in->failures++;
		if (!in->offline) {
			in->offline = true;
			in->offline_since = now;
			struct obs e = { .type = OBS_EVENT, .instrument = in->cfg->id,
					 .u.event = { .at = now, .type = "device_offline" } };
			enqueue(d, &e, v->error);
			log_warnx("modbus: \"%s\" cannot be read: %s; backing off", in->cfg->id, v->error);
		}
	}
	in->started = true;
	struct obs o = { .type = OBS_READING, .instrument = in->cfg->id };
	struct obs_reading *r = &o.u.reading;
	r->at_us = at_us;
	r->ok = v->ok;
	r->error = NULL;
	if (v->ok && v->has_run)
		r->run = (struct obs_value){ true, v->run_raw, m->run_counter.scale, mb_type_range(m->run_counter.type) };
	if (v->ok && v->has_samples)
		r->samples = (struct obs_value){ true, v->samples_raw, m->samples_counter.scale,
						 mb_type_range(m->samples_counter.type) };
	r->has_in_use = v->ok && v->has_in_use;
	r->in_use = v->in_use;
	enqueue(d, &o, NULL);
}

static void schedule_next(struct inst *in, int64_t now_ms)
{
	int64_t interval = (int64_t)in->cfg->modbus.interval_s * 1000;
	if (in->failures > 0) {
		/* Back off on its own: the others on the bus keep their schedule. */
		int64_t backoff = interval;
		for (int i = 1; i < in->failures && backoff < BACKOFF_MAX_MS; i++)
			backoff *= 2;
		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		if (backoff < interval)
			backoff = interval;
		in->due_ms = now_ms + backoff;
		return;
	}
	/* Stay on the grid; skip slots that are already past. */
	in->due_ms += interval;
	if (in->due_ms <= now_ms) {
		int64_t behind = (now_ms - in->due_ms) / interval + 1;
		in->due_ms += behind * interval;
	}
}

/* A deadline for pthread_cond_timedwait on the driver's conditions, which wait on
 * CLOCK_MONOTONIC: a wall-clock step (NTP, an operator) must neither stall polling for the
 * length of the step nor make the waits return at once and spin. */
static struct timespec mono_after(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void *worker(void *arg)
{
	struct modbus_driver *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		/* The ready lane that was due first. */
		struct lane *best = NULL;
		int64_t best_t = INT64_MAX;
		for (size_t i = 0; i < d->n_lanes; i++) {
			struct lane *l = &d->lanes[i];
			if (l->busy || l->n_insts == 0)
				continue;
			int64_t t = lane_next(d, l);
			if (t < best_t) {
				best_t = t;
				best = l;
			}
		}
		int64_t now = clock_mono_ms();
		if (!best || best_t > now || core_paused(d->core)) {
			/* Nothing due (or the buffer is full: counters keep counting in the device).
			 * One worker keeps the time of the next due lane; the others sleep until
			 * woken, so that a due time does not wake the whole pool at once. */
			bool keeper = !d->timer_kept;
			int64_t wait = 1000;
			if (keeper) {
				d->timer_kept = true;
				wait = !best ? 1000 : best_t > now ? best_t - now : 250;
			}
			if (wait > 1000)
				wait = 1000;
			struct timespec ts = mono_after(wait);
			pthread_cond_timedwait(&d->cv, &d->mu, &ts);
			if (keeper)
				d->timer_kept = false;
			continue;
		}
		struct inst *in = NULL;
		for (size_t i = 0; i < best->n_insts; i++) {
			struct inst *c = &d->insts[best->insts[i]];
			if (!in || c->due_ms < in->due_ms)
				in = c;
		}
		best->busy = true;
		if (now - in->due_ms > (int64_t)in->cfg->modbus.interval_s * 100)
			in->late_polls++; /* started more than a tenth of an interval late */
		/* Another lane may be due too: pass the turn on to one sleeping worker. */
		pthread_cond_signal(&d->cv);
		pthread_mutex_unlock(&d->mu);

		struct mb_values v;
		mb_read_instrument(best->bus, in->cfg, &v);
		int64_t at_us = clock_wall_us();

		pthread_mutex_lock(&d->mu);
		record_result(d, in, &v, at_us);
		schedule_next(in, clock_mono_ms());
		best->busy = false;
		/* One bus came free: one waiting worker is enough to look at it. */
		pthread_cond_signal(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Hands queued readings to the core; on a full buffer they wait (nothing is dropped). */
static void flush_queue(struct modbus_driver *d)
{
	pthread_mutex_lock(&d->mu);
	size_t n = d->q_len;
	struct qitem *items = d->queue;
	d->queue = NULL;
	d->q_len = d->q_cap = 0;
	pthread_mutex_unlock(&d->mu);
	if (n == 0) {
		free(items);
		return;
	}
	struct obs *v = malloc(n * sizeof(*v));
	if (!v) {
		free(items);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = items[i].obs;
		if (v[i].type == OBS_EVENT)
			v[i].u.event.detail = items[i].detail[0] ? items[i].detail : NULL;
	}
	int r = core_submit(d->core, v, n, NULL, NULL, 0);
	free(v);
	if (r == -ENOSPC || r == -EBUSY) {
		/* Put them back in front of what came meanwhile. */
		pthread_mutex_lock(&d->mu);
		size_t total = n + d->q_len;
		struct qitem *merged = realloc(items, total * sizeof(*merged));
		if (merged) {
			if (d->q_len)
				memcpy(merged + n, d->queue, d->q_len * sizeof(*merged));
			free(d->queue);
			d->queue = merged;
			d->q_len = d->q_cap = total;
			items = NULL;
		}
		pthread_mutex_unlock(&d->mu);
	} else if (r < 0) {
		log_errx("modbus: %zu readings could not be stored: %s", n, strerror(-r));
	}
	free(items);
}

static void *flusher(void *arg)
{
	struct modbus_driver *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		struct timespec ts = mono_after(FLUSH_EVERY_MS);
		pthread_cond_timedwait(&d->flush_cv, &d->mu, &ts);
		pthread_mutex_unlock(&d->mu);
		flush_queue(d);
		atomic_store(&d->flusher_beat, clock_mono_ms());
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	flush_queue(d);
	return NULL;
}

static void driver_destroy(void *state)
{
	struct modbus_driver *d = state;
	if (!d)
		return;
	for (size_t i = 0; i < d->n_lanes; i++) {
		mb_bus_free(d->lanes[i].bus);
		free(d->lanes[i].insts);
	}
	free(d->lanes);
	free(d->insts);
	free(d->queue);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->flush_cv);
	free(d);
}

static int driver_create(const struct config *cfg, struct core *core, void **state)
{
	size_t n = 0;
	*state = NULL;
	for (size_t i = 0; i < cfg->n_instruments; i++)
		n += cfg->instruments[i].modbus.present;
	if (n == 0)
		return 0;
	struct modbus_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_cond_init(&d->flush_cv, &ca);
	pthread_condattr_destroy(&ca);
	d->cfg = cfg;
	d->core = core;
	d->insts = calloc(n, sizeof(*d->insts));
	d->lanes = calloc(cfg->n_buses, sizeof(*d->lanes));
	if (!d->insts || !d->lanes)
		goto nomem;
	d->n_lanes = cfg->n_buses;
	for (size_t i = 0; i < cfg->n_buses; i++) {
		size_t on_bus = 0;
		for (size_t k = 0; k < cfg->n_instruments; k++)
			on_bus += cfg->instruments[k].modbus.present && cfg->instruments[k].modbus.bus_index == i;
		d->lanes[i].bus = mb_bus_new(&cfg->buses[i]);
		d->lanes[i].insts = calloc(on_bus ? on_bus : 1, sizeof(size_t));
		if (!d->lanes[i].bus || !d->lanes[i].insts)
			goto nomem;
	}
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (!ic->modbus.present)
			continue;
		struct inst *in = &d->insts[d->n_insts];
		in->cfg = ic;
		in->bus = ic->modbus.bus_index;
		struct lane *l = &d->lanes[in->bus];
		l->insts[l->n_insts++] = d->n_insts;
		d->n_insts++;
	}
	/* Spread each bus's instruments evenly over their interval (a bus carries one request
	 * at a time), and the buses against each other, so that a bus per instrument does not
	 * make one burst either. */
	for (size_t i = 0; i < d->n_lanes; i++) {
		struct lane *l = &d->lanes[i];
		for (size_t k = 0; k < l->n_insts; k++) {
			struct inst *in = &d->insts[l->insts[k]];
			int64_t interval = (int64_t)in->cfg->modbus.interval_s * 1000;
			double place = ((double)k + (double)i / (double)d->n_lanes) / (double)l->n_insts;
			in->due_ms = now + (int64_t)((double)interval * place);
		}
	}
	*state = d;
	return 0;
nomem:
	driver_destroy(d);
	return -ENOMEM;
}

static int driver_start(void *state)
{
	struct modbus_driver *d = state;
	size_t used = 0;
	for (size_t i = 0; i < d->n_lanes; i++)
		used += d->lanes[i].n_insts > 0;
	d->n_workers = used < MAX_WORKERS ? used : MAX_WORKERS;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (size_t i = 0; i < d->n_workers; i++) {
		if (pthread_create(&d->workers[i], &attr, worker, d) != 0) {
			d->n_workers = i;
			pthread_attr_destroy(&attr);
			return -EAGAIN;
		}
	}
	if (pthread_create(&d->flusher, &attr, flusher, d) != 0) {
		pthread_attr_destroy(&attr);
		return -EAGAIN;
	}
	d->flusher_started = true;
	atomic_store(&d->flusher_beat, clock_mono_ms());
	pthread_attr_destroy(&attr);
	log_info("modbus: polling %zu instruments on %zu buses with %zu workers", d->n_insts, used,
		 d->n_workers);
	return 0;
}

static void driver_stop(void *state)
{
	struct modbus_driver *d = state;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_broadcast(&d->cv);
	pthread_cond_broadcast(&d->flush_cv);
	pthread_mutex_unlock(&d->mu);
	for (size_t i = 0; i < d->n_workers; i++)
		pthread_join(d->workers[i], NULL);
	d->n_workers = 0;
	if (d->flusher_started)
		pthread_join(d->flusher, NULL);
	d->flusher_started = false;
	for (size_t i = 0; i < d->n_lanes; i++)
		bus_drop(d->lanes[i].bus);
}

static cJSON *instrument_obj(cJSON *arr, const char *id)
{
	cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "id");
		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
			return it;
	}
	it = cJSON_CreateObject();
	cJSON_AddStringToObject(it, "id", id);
	cJSON_AddItemToArray(arr, it);
	return it;
}

/* The latest poll, raw as read: beside a running daemon `poll` opens no bus and prints
 * these the way it prints its own reads (SPEC §2). */
static void add_reading(cJSON *s, const struct inst *in)
{
	if (in->last_at_us <= 0) {
		cJSON_AddNullToObject(s, "reading");
		return;
	}
	cJSON *r = cJSON_AddObjectToObject(s, "reading");
	char t[RFC3339_LEN];
	time_rfc3339(in->last_at_us / 1000000, t);
	cJSON_AddStringToObject(r, "at", t);
	cJSON_AddBoolToObject(r, "ok", in->last_poll_ok);
	if (!in->last_poll_ok) {
		cJSON_AddStringToObject(r, "error", in->last_error);
		return;
	}
	if (in->last.has_run)
		cJSON_AddNumberToObject(r, "run_raw", in->last.run_raw);
	if (in->last.has_samples)
		cJSON_AddNumberToObject(r, "samples_raw", in->last.samples_raw);
	if (in->last.has_in_use) {
		cJSON_AddNumberToObject(r, "in_use_raw", in->last.in_use_raw);
		cJSON_AddBoolToObject(r, "in_use", in->last.in_use);
	}
}

static void driver_status(void *state, cJSON *arr)
{
	struct modbus_driver *d = state;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->n_insts; i++) {
		struct inst *in = &d->insts[i];
		const struct modbus_cfg *m = &in->cfg->modbus;
		cJSON *o = instrument_obj(arr, in->cfg->id);
		cJSON *s = cJSON_AddObjectToObject(o, "modbus");
		const char *state_name = !in->started ? "starting" : in->offline ? "offline" : "ok";
		if (core_paused(d->core))
			state_name = "paused";
		cJSON_AddStringToObject(s, "state", state_name);
		if (in->last_ok > 0) {
			char t[RFC3339_LEN];
			time_rfc3339(in->last_ok, t);
			cJSON_AddStringToObject(s, "last_ok", t);
		} else {
			cJSON_AddNullToObject(s, "last_ok");
		}
		if (in->last_ok > 0 && in->last.has_run)
			cJSON_AddNumberToObject(s, "run_hours_total", in->last.run_raw * m->run_counter.scale);
		else
			cJSON_AddNullToObject(s, "run_hours_total");
		if (in->last_ok > 0 && in->last.has_samples)
			cJSON_AddNumberToObject(s, "samples_total", in->last.samples_raw * m->samples_counter.scale);
		if (in->last_ok > 0 && in->last.has_in_use)
			cJSON_AddBoolToObject(s, "in_use", in->last.in_use);
		if (in->last_error[0])
			cJSON_AddStringToObject(s, "last_error", in->last_error);
		cJSON_AddStringToObject(s, "bus", d->cfg->buses[in->bus].id);
		cJSON_AddNumberToObject(s, "unit", m->unit);
		add_reading(s, in);
		cJSON_AddNumberToObject(s, "polls", (double)in->polls);
		cJSON_AddNumberToObject(s, "late_polls", (double)in->late_polls);
	}
	pthread_mutex_unlock(&d->mu);
}

/* Readings reach the buffer: the flusher went round lately (a commit can wait on a busy
 * buffer for up to its busy timeout, so allow for that). */
static bool driver_healthy(void *state, char *why, size_t whylen)
{
	struct modbus_driver *d = state;
	int64_t silent = clock_mono_ms() - atomic_load(&d->flusher_beat);
	if (d->flusher_started && silent > 30000) {
		snprintf(why, whylen, "modbus: no readings stored for %lld s", (long long)(silent / 1000));
		return false;
	}
	return true;
}

const struct source_ops modbus_source = {
	.name = "modbus",
	.create = driver_create,
	.start = driver_start,
	.stop = driver_stop,
	.status = driver_status,
	.healthy = driver_healthy,
	.destroy = driver_destroy,
};
