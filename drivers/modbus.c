/* modbus.c — polls instruments over Modbus TCP and RTU. Every TCP bus is driven by one event
 * loop (mbloop.c: non-blocking sockets, a heap of buses by when each is next due), every RTU
 * line by a thread of its own; a bus carries one request at a time, with gap_ms of silence
 * between frames. Here: the instruments, their back-off, their readings queued and handed to
 * the core in batches by a flusher thread, and their status. */
#include "modbus.h"
#include "clock.h"
#include "log.h"
#include "mbdecode.h"
#include "mbpriv.h"
#include "timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

/* A failing instrument is read again at its interval doubled per failure, up to: on TCP twice
 * its interval less the bus's time-out and a tenth (a unit behind a gateway that answers costs
 * one time-out per probe, counted from the end of the probe before: a unit that comes back
 * while a probe is out is read again within two intervals); on an RTU line, where its time-outs
 * take the line from the others, the larger of its interval and RTU_BACKOFF_MAX_MS. */
#define TCP_BACKOFF_INTERVALS 2
#define RTU_BACKOFF_MAX_MS (20 * 1000)
/* Readings reach the core in one transaction per batch: a batch closes FLUSH_EVERY_MS after its
 * first reading or at FLUSH_BATCH readings, whichever comes first (every 2 s at 1,000 polls a
 * second, every 4 s at 500: each is a commit, and each writes every page of instrument state it
 * touched once, so fewer commits write fewer pages: ~0.1 a reading at 5,000 instruments). Where readings are few (under FLUSH_FEW_PER_S in the last batch)
 * a batch gathers for FLUSH_SLOW_MS instead: an idle lab commits every 5 s, not every second.
 * No figure moves: counters are cumulative, and what a crash loses of the batch is counted by
 * the next reading after the restart. */
#define FLUSH_EVERY_MS 4000
#define FLUSH_SLOW_MS 5000
#define FLUSH_FEW_PER_S 64
#define FLUSH_BATCH 2048
#define QUEUE_MAX 65536

int64_t mb_lane_next(const struct lane *l)
{
	int64_t t = mb_heap_min(&l->due);
	int64_t ready = l->tcp ? l->ready_ms : mb_bus_ready_ms(l->bus);
	return t > ready ? t : ready;
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
	/* The flusher waits untimed while there is nothing: the first reading wakes it, and it
	 * gathers for FLUSH_EVERY_MS; a long queue wakes it early. */
	if (d->q_len == 1 && !d->flushing) {
		d->pending_since = clock_mono_ms();
		pthread_cond_signal(&d->flush_cv);
	} else if (d->q_len == FLUSH_BATCH) {
		pthread_cond_signal(&d->flush_cv);
	}
}

static void record_result(struct modbus_driver *d, struct inst *in, const struct mb_values *v,
			  int64_t at_us)
{
	const struct modbus_cfg *m = in->cfg->modbus;
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
	r->has_power = v->ok && v->has_power;
	r->power_w = v->power_raw * m->power.scale;
	if (v->ok && v->has_energy)
		r->energy = (struct obs_value){ true, v->energy_raw, m->energy.scale, mb_type_range(m->energy.type) };
	enqueue(d, &o, NULL);
}

static void schedule_next(const struct lane *l, struct inst *in, int64_t now_ms)
{
	int64_t interval = (int64_t)in->cfg->modbus->interval_s * 1000;
	if (in->failures > 0) {
		/* Back off on its own: the others on the bus keep their schedule. */
		int64_t cap = interval > RTU_BACKOFF_MAX_MS ? interval : RTU_BACKOFF_MAX_MS;
		if (l->tcp) {
			/* a tenth of an interval to spare for the loop's own lateness */
			cap = TCP_BACKOFF_INTERVALS * interval - l->timeout_ms - interval / 10;
			if (cap < interval)
				cap = interval;
		}
		int64_t backoff = interval;
		for (int i = 1; i < in->failures && backoff < cap; i++)
			backoff *= 2;
		if (backoff > cap)
			backoff = cap;
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

void mb_poll_begin(struct modbus_driver *d, struct inst *in, int64_t now_ms)
{
	(void)d;
	/* A failing instrument's probes keep no grid: only polls on it count. */
	if (in->failures == 0 && now_ms - in->due_ms > (int64_t)in->cfg->modbus->interval_s * 100)
		in->late_polls++; /* started more than a tenth of an interval late */
}

void mb_poll_done(struct modbus_driver *d, struct lane *l, struct inst *in, const struct mb_values *v)
{
	record_result(d, in, v, clock_wall_us());
	schedule_next(l, in, clock_mono_ms());
	mb_heap_push(&l->due, in->due_ms, (uint32_t)(in - d->insts));
}

/* Hands queued readings to the core; on a full buffer they wait (nothing is dropped). The
 * queue's array comes back for reuse when nothing was queued meanwhile. */
static size_t flush_queue(struct modbus_driver *d, struct obs **vbuf, size_t *vcap)
{
	pthread_mutex_lock(&d->mu);
	size_t n = d->q_len, cap = d->q_cap;
	struct qitem *items = d->queue;
	d->queue = NULL;
	d->q_len = d->q_cap = 0;
	d->flushing = n > 0;
	pthread_mutex_unlock(&d->mu);
	int r = 0;
	if (n > *vcap) {
		struct obs *nv = realloc(*vbuf, n * sizeof(**vbuf));
		if (nv) {
			*vbuf = nv;
			*vcap = n;
		}
	}
	if (n > 0 && n <= *vcap) {
		struct obs *v = *vbuf;
		for (size_t i = 0; i < n; i++) {
			v[i] = items[i].obs;
			if (v[i].type == OBS_EVENT)
				v[i].u.event.detail = items[i].detail[0] ? items[i].detail : NULL;
		}
		r = core_submit(d->core, v, n, NULL, NULL, 0);
	} else if (n > 0) {
		r = -EBUSY; /* no memory for the batch: try again next round */
	}
	if (r < 0 && r != -ENOSPC && r != -EBUSY)
		log_errx("modbus: %zu readings could not be stored: %s", n, strerror(-r));
	pthread_mutex_lock(&d->mu);
	if (r == -ENOSPC || r == -EBUSY) {
		/* Put them back in front of what came meanwhile. */
		size_t total = n + d->q_len;
		struct qitem *merged = total <= cap ? items : realloc(items, total * sizeof(*merged));
		if (merged) {
			if (d->q_len)
				memcpy(merged + n, d->queue, d->q_len * sizeof(*merged));
			free(d->queue);
			d->queue = merged;
			d->q_len = total;
			d->q_cap = total > cap ? total : cap;
			items = NULL;
		}
	} else if (!d->queue) {
		d->queue = items;
		d->q_cap = cap;
		items = NULL;
	}
	d->flushing = false;
	pthread_mutex_unlock(&d->mu);
	free(items);
	return n;
}

static void *flusher(void *arg)
{
	struct modbus_driver *d = arg;
	struct obs *vbuf = NULL;
	size_t vcap = 0;
	int64_t window = FLUSH_EVERY_MS;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		if (d->q_len == 0) {
			/* Nothing to hand on: no timer either (an idle agent does not wake for it). */
			pthread_cond_wait(&d->flush_cv, &d->mu);
			continue;
		}
		/* Gather for a while. Woken early (a long queue, stop, a fake clock's slice):
		 * flush all the same. */
		clock_wait_until(&d->flush_cv, &d->mu, (d->pending_since + window) * 1000);
		int64_t gathered = clock_mono_ms() - d->pending_since;
		pthread_mutex_unlock(&d->mu);
		size_t n = flush_queue(d, &vbuf, &vcap);
		/* The next batch's window from this one's rate: few readings, a longer wait. */
		window = (int64_t)n * 1000 < (int64_t)FLUSH_FEW_PER_S * (gathered > 0 ? gathered : 1) ?
			FLUSH_SLOW_MS : FLUSH_EVERY_MS;
		pthread_mutex_lock(&d->mu);
		int64_t now = clock_mono_ms();
		atomic_store(&d->flusher_beat, now);
		if (d->q_len)
			d->pending_since = now;
	}
	pthread_mutex_unlock(&d->mu);
	flush_queue(d, &vbuf, &vcap);
	free(vbuf);
	return NULL;
}

static void driver_destroy(void *state)
{
	struct modbus_driver *d = state;
	if (!d)
		return;
	mb_loop_destroy(d);
	for (size_t i = 0; d->lanes && i < d->n_lanes; i++) {
		mb_bus_free(d->lanes[i].bus);
		mb_heap_free(&d->lanes[i].due);
	}
	free(d->lanes);
	free(d->insts);
	free(d->queue);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->flush_cv);
	free(d);
}

static int driver_create(const struct source_conf *cfg, struct core *core, void **state)
{
	size_t n = 0;
	*state = NULL;
	for (size_t i = 0; i < cfg->n_instruments; i++)
		n += cfg->instruments[i].modbus->present;
	if (n == 0)
		return 0;
	struct modbus_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->epfd = d->evfd = -1;
	pthread_mutex_init(&d->mu, NULL);
	if (clock_cond_init(&d->cv) < 0) {
		pthread_mutex_destroy(&d->mu);
		free(d);
		return -ENOMEM;
	}
	if (clock_cond_init(&d->flush_cv) < 0) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return -ENOMEM;
	}
	d->cfg = cfg;
	d->core = core;
	d->insts = calloc(n, sizeof(*d->insts));
	d->lanes = calloc(cfg->n_buses ? cfg->n_buses : 1, sizeof(*d->lanes));
	if (!d->insts || !d->lanes)
		goto nomem;
	d->n_lanes = cfg->n_buses;
	/* Each bus's heap sized to its own instruments. */
	size_t *on_bus = calloc(cfg->n_buses ? cfg->n_buses : 1, sizeof(size_t));
	if (!on_bus)
		goto nomem;
	for (size_t k = 0; k < cfg->n_instruments; k++)
		if (cfg->instruments[k].modbus->present && cfg->instruments[k].modbus->bus_index < cfg->n_buses)
			on_bus[cfg->instruments[k].modbus->bus_index]++;
	for (size_t i = 0; i < cfg->n_buses; i++) {
		struct lane *l = &d->lanes[i];
		l->d = d;
		l->tcp = cfg->buses[i].kind == BUS_TCP;
		l->timeout_ms = cfg->buses[i].timeout_ms;
		l->min_interval_ms = INT64_MAX;
		int r = mb_heap_init(&l->due, on_bus[i]);
		if (!l->tcp)
			l->bus = mb_bus_new(&cfg->buses[i]);
		if (r < 0 || (!l->tcp && !l->bus)) {
			free(on_bus);
			goto nomem;
		}
	}
	free(on_bus);
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct source_instrument *ic = &cfg->instruments[i];
		if (!ic->modbus->present)
			continue;
		struct inst *in = &d->insts[d->n_insts++];
		in->cfg = ic;
		in->bus = ic->modbus->bus_index;
		mb_plan_make(ic->modbus, false, false, &in->plan);
		struct lane *l = &d->lanes[in->bus];
		int64_t iv = (int64_t)ic->modbus->interval_s * 1000;
		if (iv < l->min_interval_ms)
			l->min_interval_ms = iv;
	}
	/* Spread each bus's instruments evenly over their interval (a bus carries one request
	 * at a time), and the buses against each other, so that a bus per instrument does not
	 * make one burst either. */
	int64_t now = clock_mono_ms();
	size_t *k_of = calloc(d->n_lanes ? d->n_lanes : 1, sizeof(size_t));
	if (!k_of)
		goto nomem;
	for (size_t j = 0; j < d->n_insts; j++) {
		struct inst *in = &d->insts[j];
		struct lane *l = &d->lanes[in->bus];
		size_t i = in->bus, k = k_of[i]++;
		int64_t interval = (int64_t)in->cfg->modbus->interval_s * 1000;
		double place = ((double)k + (double)i / (double)d->n_lanes) / (double)l->due.cap;
		in->due_ms = now + (int64_t)((double)interval * place);
		mb_heap_push(&l->due, in->due_ms, (uint32_t)j);
	}
	free(k_of);
	if (mb_loop_init(d) < 0)
		goto nomem;
	*state = d;
	return 0;
nomem:
	driver_destroy(d);
	return -ENOMEM;
}

static int driver_start(void *state)
{
	struct modbus_driver *d = state;
	size_t rtu = 0, tcp = 0;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	atomic_store(&d->flusher_beat, clock_mono_ms());
	int r = 0;
	if (pthread_create(&d->flusher, &attr, flusher, d) != 0)
		r = -EAGAIN;
	else
		d->flusher_started = true;
	for (size_t i = 0; r == 0 && i < d->n_lanes; i++) {
		struct lane *l = &d->lanes[i];
		if (l->due.n == 0)
			continue;
		if (l->tcp) {
			tcp++;
			continue;
		}
		if (pthread_create(&l->th, &attr, mb_rtu_line, l) != 0)
			r = -EAGAIN;
		else
			l->th_started = true;
		rtu++;
	}
	if (r == 0 && tcp)
		r = mb_loop_start(d);
	pthread_attr_destroy(&attr);
	if (r == 0)
		log_info("modbus: polling %zu instruments on %zu TCP buses (one event loop) and %zu RTU lines",
			 d->n_insts, tcp, rtu);
	return r;
}

static void driver_stop(void *state)
{
	struct modbus_driver *d = state;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_broadcast(&d->cv);
	pthread_cond_broadcast(&d->flush_cv);
	pthread_mutex_unlock(&d->mu);
	mb_loop_stop(d);
	for (size_t i = 0; i < d->n_lanes; i++) {
		if (d->lanes[i].th_started)
			pthread_join(d->lanes[i].th, NULL);
		d->lanes[i].th_started = false;
	}
	if (d->flusher_started)
		pthread_join(d->flusher, NULL);
	d->flusher_started = false;
	for (size_t i = 0; i < d->n_lanes; i++)
		if (d->lanes[i].bus)
			mb_bus_close(d->lanes[i].bus);
}

/* The latest poll, raw as read: beside a running daemon `poll` opens no bus and prints
 * these the way it prints its own reads (SPEC §2). */
static void fill_reading(struct modbus_reading *r, const struct inst *in)
{
	r->at = in->last_at_us > 0 ? in->last_at_us / 1000000 : 0;
	r->ok = in->last_at_us > 0 && in->last_poll_ok;
	inst_status_set(&r->error, r->at && !r->ok ? in->last_error : NULL);
	r->has_run = r->ok && in->last.has_run;
	r->has_samples = r->ok && in->last.has_samples;
	r->has_in_use = r->ok && in->last.has_in_use;
	r->run_raw = in->last.run_raw;
	r->samples_raw = in->last.samples_raw;
	r->in_use_raw = in->last.in_use_raw;
	r->in_use = in->last.in_use;
	r->has_power = r->ok && in->last.has_power;
	r->has_energy = r->ok && in->last.has_energy;
	r->power_raw = in->last.power_raw;
	r->energy_raw = in->last.energy_raw;
}

static void driver_status(void *state, struct inst_status *insts, size_t n)
{
	struct modbus_driver *d = state;
	bool paused = core_paused(d->core);
	size_t hint = 0;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->n_insts; i++) {
		struct inst *in = &d->insts[i];
		const struct modbus_cfg *m = in->cfg->modbus;
		struct inst_status *o = inst_status_find(insts, n, in->cfg->id, &hint);
		if (!o)
			continue;
		struct modbus_status *s = &o->modbus;
		s->present = s->live = true;
		const char *state_name = !in->started ? "starting" : in->offline ? "offline" : "ok";
		snprintf(s->state, sizeof(s->state), "%s", paused ? "paused" : state_name);
		s->last_ok = in->last_ok > 0 ? in->last_ok : 0;
		s->has_run_hours = in->last_ok > 0 && in->last.has_run;
		s->run_hours_total = in->last.run_raw * m->run_counter.scale;
		s->has_samples_total = in->last_ok > 0 && in->last.has_samples;
		s->samples_total = in->last.samples_raw * m->samples_counter.scale;
		s->has_in_use = in->last_ok > 0 && in->last.has_in_use;
		s->in_use = in->last.in_use;
		inst_status_set(&s->last_error, in->last_error[0] ? in->last_error : NULL);
		inst_status_set(&s->bus, d->cfg->buses[in->bus].id);
		s->unit = m->unit;
		fill_reading(&s->reading, in);
		s->polls = in->polls;
		s->late_polls = in->late_polls;
	}
	pthread_mutex_unlock(&d->mu);
}

/* Readings reach the buffer: the flusher went round lately when it had anything to do (a
 * commit can wait on a busy buffer for up to its busy timeout, so allow for that), and the
 * event loop went round when it meant to. */
static bool driver_healthy(void *state, char *why, size_t whylen)
{
	struct modbus_driver *d = state;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&d->mu);
	bool pending = d->q_len > 0 || d->flushing;
	int64_t since = d->pending_since;
	pthread_mutex_unlock(&d->mu);
	int64_t beat = atomic_load(&d->flusher_beat);
	int64_t silent = now - (beat > since ? beat : since);
	if (d->flusher_started && pending && silent > 30000) {
		snprintf(why, whylen, "modbus: no readings stored for %lld s", (long long)(silent / 1000));
		return false;
	}
	int64_t late = now - atomic_load(&d->loop_wake_by);
	if (d->loop_started && late > 30000) {
		snprintf(why, whylen, "modbus: the polling loop is %lld s late", (long long)(late / 1000));
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

bool modbus_settled(void *state)
{
	struct modbus_driver *d = state;
	if (!d)
		return true;
	pthread_mutex_lock(&d->mu);
	int64_t now = clock_mono_ms();
	bool settled = d->q_len == 0 && !d->flushing && d->n_busy == 0;
	for (size_t i = 0; settled && i < d->n_lanes; i++) {
		struct lane *l = &d->lanes[i];
		if (l->due.n && mb_lane_next(l) <= now)
			settled = false;
	}
	pthread_mutex_unlock(&d->mu);
	return settled;
}
