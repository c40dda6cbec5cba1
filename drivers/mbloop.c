/* mbloop.c — the threads that poll. Every TCP bus is served by one event loop: idle buses sit
 * in a heap by when each can start its next poll (its first instrument due, gap_ms after its
 * last frame), a bus with a request out is watched by epoll until its reply or its time-out,
 * and nothing wakes the thread but a due time, a socket or stop. A bus still carries one
 * request at a time (SPEC §3); different buses overlap. RTU lines block in libmodbus, one
 * thread each, on the same heaps. Everything but the epoll wait runs under d->mu. */
#include "clock.h"
#include "log.h"
#include "mbpriv.h"

#include <errno.h>
#include <modbus/modbus.h> /* error codes */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EV_STOP UINT64_MAX
#define PAUSED_RETRY_MS 250
#define IDLE_WAIT_MAX_MS 60000
#define RTU_PROBE_DEFER_MAX_MS 5000
/* How early an idle TCP bus may start a poll: the time in which GATHER_POLLS polls fall due over
 * all TCP buses, at most its shortest interval ÷ LOOKAHEAD_DIV (16 ms at 500 polls a second,
 * 250 ms for 200 instruments at 10 s). */
#define GATHER_POLLS 8
#define LOOKAHEAD_DIV 40

int mb_loop_init(struct modbus_driver *d)
{
	size_t n_tcp = 0;
	for (size_t i = 0; i < d->n_lanes; i++)
		n_tcp += d->lanes[i].tcp;
	if (n_tcp == 0)
		return 0;
	if (mb_heap_init(&d->ready, n_tcp) < 0 || !(d->flight = calloc(n_tcp, sizeof(*d->flight))))
		return -ENOMEM;
	for (size_t i = 0; i < d->n_lanes; i++) {
		struct lane *l = &d->lanes[i];
		if (!l->tcp)
			continue;
		if (!(l->conn = mb_conn_new(&d->cfg->buses[i])))
			return -ENOMEM;
		if (l->due.n)
			mb_heap_push(&d->ready, mb_lane_next(l), (uint32_t)i);
	}
	/* Polls a second over all TCP instruments: gather_ms is GATHER_POLLS of them. */
	double per_s = 0;
	for (size_t i = 0; i < d->n_insts; i++)
		if (d->lanes[d->insts[i].bus].tcp)
			per_s += 1.0 / d->insts[i].cfg->modbus->interval_s;
	d->gather_ms = per_s > 0 ? (int64_t)(GATHER_POLLS * 1000 / per_s) : 0;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->epfd < 0 || d->evfd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_STOP };
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->evfd, &ev) < 0)
		return -errno;
	return 0;
}

void mb_loop_destroy(struct modbus_driver *d)
{
	for (size_t i = 0; d->lanes && i < d->n_lanes; i++) {
		mb_conn_free(d->lanes[i].conn, d->epfd);
		d->lanes[i].conn = NULL;
	}
	mb_heap_free(&d->ready);
	free(d->flight);
	d->flight = NULL;
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->evfd >= 0)
		close(d->evfd);
	d->epfd = d->evfd = -1;
}

static size_t lane_index(const struct modbus_driver *d, const struct lane *l)
{
	return (size_t)(l - d->lanes);
}

static void flight_add(struct modbus_driver *d, struct lane *l)
{
	l->flight_at = d->n_flight;
	d->flight[d->n_flight++] = (uint32_t)lane_index(d, l);
}

static void flight_remove(struct modbus_driver *d, struct lane *l)
{
	size_t at = l->flight_at;
	uint32_t last = d->flight[--d->n_flight];
	d->flight[at] = last;
	d->lanes[last].flight_at = at;
}

static void poll_finish(struct modbus_driver *d, struct lane *l)
{
	struct inst *in = &d->insts[l->cur];
	mb_poll_done(d, l, in, &l->v);
	l->busy = false;
	d->n_busy--;
	mb_heap_push(&d->ready, mb_lane_next(l), (uint32_t)lane_index(d, l));
}

static void request_done(struct modbus_driver *d, struct lane *l, int r, const uint16_t *regs,
			 const uint8_t *bits);

static void issue(struct modbus_driver *d, struct lane *l)
{
	struct inst *in = &d->insts[l->cur];
	const struct mb_req *rq = &in->plan.req[l->req];
	int r = mb_conn_start(l->conn, d->epfd, lane_index(d, l), in->cfg->modbus->unit, rq, &l->v);
	if (r == MB_IO_WAIT)
		flight_add(d, l);
	else
		request_done(d, l, r < 0 ? r : -EIO, NULL, NULL);
}

static void request_done(struct modbus_driver *d, struct lane *l, int r, const uint16_t *regs,
			 const uint8_t *bits)
{
	struct inst *in = &d->insts[l->cur];
	const struct modbus_cfg *m = in->cfg->modbus;
	const struct mb_req *rq = &in->plan.req[l->req];
	int64_t now = clock_mono_ms();
	int gap = d->cfg->buses[lane_index(d, l)].gap_ms;
	if (gap > 0)
		l->ready_ms = now + gap;
	if (r < 0 && mb_conn_refused(l->conn)) {
		/* The gateway is away: its instruments fail without a connect until the next
		 * probe, which comes sooner than any of their intervals. */
		l->down_backoff = l->down_backoff ? l->down_backoff * 2 : 1000;
		if (l->down_backoff > l->min_interval_ms)
			l->down_backoff = l->min_interval_ms;
		l->down_until = now + l->down_backoff;
		memcpy(l->down_error, l->v.error, sizeof(l->down_error));
		poll_finish(d, l);
		return;
	}
	l->down_backoff = 0;
	if (r == -EMBXILADD && rq->gapped && !in->exact) {
		/* No register between its points: one request per point from now on, and this
		 * poll starts over that way (the device is fine: no failure to record). */
		in->exact = true;
		mb_plan_make(m, true, false, &in->plan);
		l->req = 0;
		memset(&l->v, 0, sizeof(l->v));
		if (gap > 0)
			mb_heap_push(&d->ready, l->ready_ms, (uint32_t)lane_index(d, l));
		else
			issue(d, l);
		return;
	}
	if (r < 0) {
		poll_finish(d, l);
		return;
	}
	if (!mb_plan_take(m, rq, regs, bits, &l->v)) {
		poll_finish(d, l);
		return;
	}
	if (++l->req < in->plan.n_req) {
		if (gap > 0) /* back in the heap, busy, until gap_ms has passed */
			mb_heap_push(&d->ready, l->ready_ms, (uint32_t)lane_index(d, l));
		else
			issue(d, l);
		return;
	}
	l->v.error[0] = '\0';
	mb_plan_finish(m, &l->v);
	poll_finish(d, l);
}

static void start_poll(struct modbus_driver *d, struct lane *l, int64_t now)
{
	struct mb_hent e = mb_heap_pop(&l->due);
	struct inst *in = &d->insts[e.id];
	l->cur = e.id;
	l->req = 0;
	memset(&l->v, 0, sizeof(l->v));
	l->busy = true;
	d->n_busy++;
	mb_poll_begin(d, in, now);
	if (l->down_until > now) {
		memcpy(l->v.error, l->down_error, sizeof(l->v.error));
		poll_finish(d, l);
		return;
	}
	issue(d, l);
}

static void step(struct modbus_driver *d, struct lane *l, bool timed_out)
{
	uint16_t regs[MB_REGS_MAX];
	uint8_t bits[MB_REGS_MAX];
	int r = mb_conn_step(l->conn, d->epfd, timed_out, regs, bits, &l->v);
	if (r == MB_IO_WAIT)
		return;
	flight_remove(d, l);
	request_done(d, l, r, regs, bits);
}

/* Whether the bus at the top of the ready heap may start its next poll now: due already, or
 * (an idle bus past its gap) due within gather_ms, at most a fortieth of its interval. Polls
 * that fall due close together start together, so one wake-up serves several and their replies
 * come back to one epoll_wait: a poll starts at most that early, never late, and keeps its grid. */
static bool top_startable(const struct modbus_driver *d, int64_t now)
{
	int64_t key = mb_heap_min(&d->ready);
	if (key <= now)
		return true;
	const struct lane *l = &d->lanes[d->ready.e[0].id];
	int64_t ahead = l->min_interval_ms / LOOKAHEAD_DIV;
	if (ahead > d->gather_ms)
		ahead = d->gather_ms;
	return !l->busy && l->ready_ms <= now && key - now <= ahead;
}

static void *loop_main(void *arg)
{
	struct modbus_driver *d = arg;
	struct epoll_event evs[64];
	/* A test's fake clock ends its waits on the clock seam's condition variable; the system
	 * clock lets epoll_wait time out by itself (no futex, no second sleep per poll). */
	bool fake = !clock_is_system();
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		int64_t now = clock_mono_ms();
		bool paused = core_paused(d->core);
		/* Every bus whose time has come starts its poll (or its next request). */
		while (!paused && d->ready.n && top_startable(d, now)) {
			struct lane *l = &d->lanes[mb_heap_pop(&d->ready).id];
			if (l->busy)
				issue(d, l);
			else
				start_poll(d, l, now);
		}
		int64_t next = mb_heap_min(&d->ready);
		if (paused && next <= now)
			next = now + PAUSED_RETRY_MS; /* the buffer is full: counters keep counting */
		if (next > now + IDLE_WAIT_MAX_MS)
			next = now + IDLE_WAIT_MAX_MS;
		atomic_store(&d->loop_wake_by, next);
		if (d->n_flight == 0 && fake) {
			clock_wait_until(&d->cv, &d->mu, next * 1000);
			continue;
		}
		/* Requests out: wait on their sockets, for their time-outs (real time) and for the
		 * next due bus, whichever comes first; nothing out: for the next due bus (or stop). */
		int64_t rnow = mb_real_mono_ms(), io = INT64_MAX;
		for (size_t i = 0; i < d->n_flight; i++) {
			int64_t t = mb_conn_deadline(d->lanes[d->flight[i]].conn);
			if (t < io)
				io = t;
		}
		int64_t wait = next - now;
		if (io - rnow < wait)
			wait = io - rnow;
		if (wait < 0)
			wait = 0;
		if (wait > IDLE_WAIT_MAX_MS)
			wait = IDLE_WAIT_MAX_MS;
		pthread_mutex_unlock(&d->mu);
		int n = epoll_wait(d->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), (int)wait);
		pthread_mutex_lock(&d->mu);
		for (int i = 0; i < n && !d->stopping; i++) {
			if (evs[i].data.u64 == EV_STOP)
				continue;
			struct lane *l = &d->lanes[evs[i].data.u64];
			if (l->busy && d->n_flight > l->flight_at && d->flight[l->flight_at] == (uint32_t)lane_index(d, l))
				step(d, l, false);
		}
		rnow = mb_real_mono_ms();
		for (size_t i = d->n_flight; i-- > 0 && !d->stopping;) {
			if (i >= d->n_flight)
				continue;
			struct lane *l = &d->lanes[d->flight[i]];
			if (mb_conn_deadline(l->conn) <= rnow)
				step(d, l, true);
		}
	}
	/* Stopped: what is out is dropped with its connection (reads are idempotent). */
	for (size_t i = 0; i < d->n_flight; i++)
		mb_conn_close(d->lanes[d->flight[i]].conn, d->epfd);
	d->n_flight = 0;
	for (size_t i = 0; i < d->n_lanes; i++) {
		if (d->lanes[i].tcp && d->lanes[i].busy) {
			d->lanes[i].busy = false;
			d->n_busy--;
		}
		if (d->lanes[i].conn)
			mb_conn_close(d->lanes[i].conn, d->epfd);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int mb_loop_start(struct modbus_driver *d)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	atomic_store(&d->loop_wake_by, clock_mono_ms());
	int r = pthread_create(&d->loop, &attr, loop_main, d);
	pthread_attr_destroy(&attr);
	if (r != 0)
		return -EAGAIN;
	d->loop_started = true;
	return 0;
}

void mb_loop_stop(struct modbus_driver *d)
{
	if (!d->loop_started)
		return;
	uint64_t one = 1;
	if (write(d->evfd, &one, sizeof(one)) < 0)
		log_warn("modbus: cannot wake the polling loop");
	pthread_join(d->loop, NULL);
	d->loop_started = false;
}

/* A failing unit's probe costs the line a time-out, which the others on it would wait out:
 * it goes where no other instrument is due within that time, or once it has waited
 * RTU_PROBE_DEFER_MAX_MS for such a gap (with the back-off of 20 s at most, a unit that comes
 * back is read within 30 s). Back in the heap behind the next one when deferred. */
static bool probe_deferred(struct modbus_driver *d, struct lane *l, struct inst *in, int64_t key, int64_t now)
{
	if (in->failures == 0)
		return false;
	const struct bus_cfg *bc = &d->cfg->buses[lane_index(d, l)];
	int64_t other = mb_heap_min(&l->due); /* the top is popped: this is the next one */
	if (other >= now + bc->timeout_ms + bc->gap_ms || now - in->due_ms >= RTU_PROBE_DEFER_MAX_MS)
		return false;
	mb_heap_push(&l->due, other + 1 > key ? other + 1 : key, (uint32_t)(in - d->insts));
	return true;
}

/* One RTU line: a blocking libmodbus context, its instruments in due order. */
void *mb_rtu_line(void *arg)
{
	struct lane *l = arg;
	struct modbus_driver *d = l->d;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		int64_t now = clock_mono_ms();
		int64_t next = mb_lane_next(l);
		bool paused = core_paused(d->core);
		if (paused || next > now) {
			if (paused)
				next = now + PAUSED_RETRY_MS;
			if (next > now + IDLE_WAIT_MAX_MS)
				next = now + IDLE_WAIT_MAX_MS;
			clock_wait_until(&d->cv, &d->mu, next * 1000);
			continue;
		}
		struct mb_hent top = mb_heap_pop(&l->due);
		struct inst *in = &d->insts[top.id];
		if (probe_deferred(d, l, in, top.key, now))
			continue;
		l->busy = true;
		d->n_busy++;
		mb_poll_begin(d, in, now);
		pthread_mutex_unlock(&d->mu);
		struct mb_values v;
		mb_read_instrument(l->bus, in->cfg->modbus, &v);
		pthread_mutex_lock(&d->mu);
		mb_poll_done(d, l, in, &v);
		l->busy = false;
		d->n_busy--;
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}
