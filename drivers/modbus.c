/* modbus.c — polls instruments over Modbus TCP and RTU. A small pool of workers takes buses
 * from a queue ordered by when each is next ready, so one bus carries one request at a time
 * (with gap_ms of silence between frames) while different buses are polled concurrently.
 * Readings are handed to the core in batches by a flusher thread. */
#include "modbus.h"
#include "clock.h"
#include "submit.h"
#include "log.h"
#include "mbdecode.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A poll holds a worker for a request's round trip (two with in-use on another table): at 20 ms
 * per reply and 1,000 polls a second that is ~40 busy workers. Stacks are small. */
#define MAX_WORKERS 64
#define BACKOFF_MAX_MS (300 * 1000)
#define FLUSH_EVERY_MS 200
#define QUEUE_MAX 65536

/* ---- the driver -------------------------------------------------------------------- */

struct inst {
	const struct source_instrument *cfg;
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
	const struct source_conf *cfg;
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
	bool flushing;               /* the flusher holds readings taken from the queue */
	uint64_t q_dropped;
};

static int64_t lane_next(struct modbus_driver *d, struct lane *l)
{
	int64_t t = INT64_MAX;
	for (size_t i = 0; i < l->n_insts; i++)
		if (d->insts[l->insts[i]].due_ms < t)
			t = d->insts[l->insts[i]].due_ms;
	int64_t ready = mb_bus_ready_ms(l->bus);
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
	if (d->q_len >= 256)
		pthread_cond_signal(&d->flush_cv);
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

static void schedule_next(struct inst *in, int64_t now_ms)
{
	int64_t interval = (int64_t)in->cfg->modbus->interval_s * 1000;
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
			/* Through the clock seam, on CLOCK_MONOTONIC: a wall-clock step (NTP, an
			 * operator) neither stalls polling nor makes the wait spin; a test's
			 * fake clock ends it when advanced. */
			clock_wait_until(&d->cv, &d->mu, (now + wait) * 1000);
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
		if (now - in->due_ms > (int64_t)in->cfg->modbus->interval_s * 100)
			in->late_polls++; /* started more than a tenth of an interval late */
		/* Another lane may be due too: pass the turn on to one sleeping worker. */
		pthread_cond_signal(&d->cv);
		pthread_mutex_unlock(&d->mu);

		struct mb_values v;
		mb_read_instrument(best->bus, in->cfg->modbus, &v);
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

static void flushed(struct modbus_driver *d)
{
	pthread_mutex_lock(&d->mu);
	d->flushing = false;
	pthread_mutex_unlock(&d->mu);
}

/* Hands queued readings to the core; on a full buffer they wait (nothing is dropped). */
static void flush_queue(struct modbus_driver *d)
{
	pthread_mutex_lock(&d->mu);
	size_t n = d->q_len;
	struct qitem *items = d->queue;
	d->queue = NULL;
	d->q_len = d->q_cap = 0;
	d->flushing = n > 0;
	pthread_mutex_unlock(&d->mu);
	if (n == 0) {
		free(items);
		return;
	}
	struct obs *v = malloc(n * sizeof(*v));
	if (!v) {
		free(items);
		flushed(d);
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
	flushed(d);
}

static void *flusher(void *arg)
{
	struct modbus_driver *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		/* Woken early (a full queue, stop, a fake clock's slice): flush all the same. */
		clock_wait_until(&d->flush_cv, &d->mu, clock_mono_us() + FLUSH_EVERY_MS * 1000);
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
	d->lanes = calloc(cfg->n_buses, sizeof(*d->lanes));
	if (!d->insts || !d->lanes)
		goto nomem;
	d->n_lanes = cfg->n_buses;
	for (size_t i = 0; i < cfg->n_buses; i++) {
		size_t on_bus = 0;
		for (size_t k = 0; k < cfg->n_instruments; k++)
			on_bus += cfg->instruments[k].modbus->present && cfg->instruments[k].modbus->bus_index == i;
		d->lanes[i].bus = mb_bus_new(&cfg->buses[i]);
		d->lanes[i].insts = calloc(on_bus ? on_bus : 1, sizeof(size_t));
		if (!d->lanes[i].bus || !d->lanes[i].insts)
			goto nomem;
	}
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct source_instrument *ic = &cfg->instruments[i];
		if (!ic->modbus->present)
			continue;
		struct inst *in = &d->insts[d->n_insts];
		in->cfg = ic;
		in->bus = ic->modbus->bus_index;
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
			int64_t interval = (int64_t)in->cfg->modbus->interval_s * 1000;
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

bool modbus_settled(void *state)
{
	struct modbus_driver *d = state;
	if (!d)
		return true;
	pthread_mutex_lock(&d->mu);
	int64_t now = clock_mono_ms();
	bool settled = d->q_len == 0 && !d->flushing;
	for (size_t i = 0; settled && i < d->n_lanes; i++) {
		struct lane *l = &d->lanes[i];
		if (l->n_insts && (l->busy || lane_next(d, l) <= now))
			settled = false;
	}
	pthread_mutex_unlock(&d->mu);
	return settled;
}
