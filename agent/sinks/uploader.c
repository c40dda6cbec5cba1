/* uploader.c — the loop around each sink: back-to-back batches while there is a backlog, a
 * pause of upload_interval_s when caught up, next_attempt honoured after failures. */
#include "uploader.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "feed.h"
#include "flushctl.h"
#include "log.h"
#include "nrii.h"
#include "sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

/* The sinks compiled in, in the order `flush` reports them (sink.h). */
const struct sink_ops *const sink_registry[] = {
	&feed_sink,
	&nrii_sink,
	NULL,
};

#define MAX_SINKS 4

struct runner {
	const struct sink_ops *ops;
	void *state;
	pthread_t thread;
	bool started;
	struct uploader *u;
	_Atomic int64_t beat;       /* monotonic ms when the loop last went round */
	/* `flush` requests (under u->mu): the last one this runner took, the last one it
	 * finished, and how (0, 75, 76). */
	uint64_t flush_taken, flush_done;
	int flush_code;
	int64_t flush_waited;       /* seconds the flush under way has waited (FLUSH_WAIT_TOTAL_S) */
};

struct uploader {
	const struct config *cfg;
	struct buffer *buf;
	struct runner run[MAX_SINKS];
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	uint64_t flush_gen;         /* `flush` requests made so far */
	struct flushctl *ctl;       /* serves those requests on control.sock */
};

/* The optional callbacks (sink.h): NULL means nothing to do. */
static int sink_create(const struct sink_ops *ops, const struct config *cfg, struct buffer *b, void **state)
{
	*state = NULL;
	return ops->create ? ops->create(cfg, b, state) : 0;
}

static void sink_destroy(const struct sink_ops *ops, void *state)
{
	if (ops->destroy)
		ops->destroy(state);
}

static int64_t next_attempt_of(struct buffer *b, const char *sink)
{
	struct sink_state st;
	if (buffer_sink_get(b, sink, &st) < 0)
		return 0;
	int64_t t = st.next_attempt;
	buffer_sink_clear(&st);
	return t;
}

/* Sleeps until `secs` pass, the uploader stops or a flush is requested that r has not
 * taken yet; false when stopping. Monotonic, through the clock seam: a wall-clock step
 * neither stalls nor hurries it, and a test's fake clock drives it. */
static bool pause_for(struct runner *r, int64_t secs)
{
	struct uploader *u = r->u;
	pthread_mutex_lock(&u->mu);
	if (secs > 0) {
		int64_t until = clock_mono_us() + secs * 1000000;
		while (!u->stopping && u->flush_gen == r->flush_taken &&
		       clock_wait_until(&u->cv, &u->mu, until) != ETIMEDOUT)
			;
	}
	bool go_on = !u->stopping;
	pthread_mutex_unlock(&u->mu);
	return go_on;
}

/* While r serves a flush: the step's result as flush's exit code, -1 to go on (records
 * acknowledged, or a short wait), with *wait set. */
static int flush_outcome(struct runner *r, enum sink_result res, int64_t *wait)
{
	*wait = 0;
	switch (res) {
	case SINK_PROGRESS:
		return -1;
	case SINK_IDLE:
		return 0;
	case SINK_RETRY: {
		int64_t t = next_attempt_of(r->u->buf, r->ops->name) - clock_wall();
		if (t < 1)
			t = 1; /* never spin on a state that can't be read */
		if (!flush_may_wait(&r->flush_waited, t))
			return EX_TEMPFAIL;
		*wait = t;
		return -1;
	}
	case SINK_REFUSED:
	case SINK_ALARM:
		break;
	}
	return EX_PROTOCOL;
}

static void *runner_main(void *arg)
{
	struct runner *r = arg;
	struct uploader *u = r->u;
	int64_t idle_s = u->cfg->platform.present ? u->cfg->platform.upload_interval_s : 60;
	for (;;) {
		/* A new flush request: the first step ignores next_attempt, as `flush` always did. */
		pthread_mutex_lock(&u->mu);
		bool force = u->flush_gen > r->flush_taken;
		if (force)
			r->flush_waited = 0;
		r->flush_taken = u->flush_gen;
		bool flushing = r->flush_taken > r->flush_done;
		pthread_mutex_unlock(&u->mu);
		atomic_store(&r->beat, clock_mono_ms());
		enum sink_result res = r->ops->step(r->state, clock_wall(), force);
		atomic_store(&r->beat, clock_mono_ms());
		int64_t wait = 0;
		if (flushing) {
			int code = flush_outcome(r, res, &wait);
			if (code < 0) {
				if (!pause_for(r, wait))
					break;
				continue;
			}
			pthread_mutex_lock(&u->mu);
			r->flush_code = code;
			r->flush_done = r->flush_taken;
			pthread_cond_broadcast(&u->cv);
			pthread_mutex_unlock(&u->mu);
		}
		switch (res) {
		case SINK_PROGRESS:
			wait = 0;
			break;
		case SINK_IDLE:
			wait = idle_s;
			break;
		case SINK_RETRY:
		case SINK_REFUSED: {
			int64_t t = next_attempt_of(u->buf, r->ops->name) - clock_wall();
			wait = t < 1 ? 1 : t > idle_s ? idle_s : t;
			break;
		}
		case SINK_ALARM:
			wait = 60; /* stays stopped; woken only to stop */
			break;
		}
		if (!pause_for(r, wait))
			break;
	}
	return NULL;
}

/* What each sink came to, as `flush` prints it: "ok …" to its stdout, "err …" to its stderr. */
static void report_sink(struct buffer *b, const char *name, int code, FILE *out)
{
	struct sink_state st;
	if (buffer_sink_get(b, name, &st) < 0) {
		fprintf(out, "err %s: cannot read the upload state\n", name);
		return;
	}
	if (code == 0)
		fprintf(out, "ok %s: everything acknowledged (through seq %lld)\n", name, (long long)st.acked_seq);
	else if (code == EX_TEMPFAIL)
		fprintf(out, "err %s: %s\n", name, st.last_error ? st.last_error : "platform unreachable");
	else
		fprintf(out, "err %s: %s\n", name, st.alarm ? st.alarm : st.last_error ? st.last_error : "refused");
	buffer_sink_clear(&st);
}

/* A `flush` request from control.sock: the running sinks do it, each in its own thread, and
 * this waits for all of them. */
static int serve_flush(void *arg, FILE *out)
{
	struct uploader *u = arg;
	pthread_mutex_lock(&u->mu);
	uint64_t gen = ++u->flush_gen;
	pthread_cond_broadcast(&u->cv);
	for (;;) {
		bool done = true;
		for (size_t i = 0; i < u->n; i++)
			done = done && u->run[i].flush_done >= gen;
		if (done || u->stopping)
			break;
		pthread_cond_wait(&u->cv, &u->mu);
	}
	int code = 0, codes[MAX_SINKS];
	bool stopped = false;
	for (size_t i = 0; i < u->n; i++) {
		stopped = stopped || u->run[i].flush_done < gen;
		codes[i] = u->run[i].flush_done >= gen ? u->run[i].flush_code : EX_TEMPFAIL;
		if (codes[i] > code)
			code = codes[i];
	}
	pthread_mutex_unlock(&u->mu);
	if (stopped)
		return FLUSHCTL_AGAIN; /* a reload or a stop: the command asks again or uploads itself */
	for (size_t i = 0; i < u->n; i++)
		report_sink(u->buf, u->run[i].ops->name, codes[i], out);
	return code;
}

struct uploader *uploader_start(const struct config *cfg, struct buffer *b)
{
	struct uploader *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->cfg = cfg;
	u->buf = b;
	pthread_mutex_init(&u->mu, NULL);
	if (clock_cond_init(&u->cv) < 0) {
		pthread_mutex_destroy(&u->mu);
		free(u);
		return NULL;
	}
	for (size_t i = 0; sink_registry[i] && u->n < MAX_SINKS; i++) {
		const struct sink_ops *ops = sink_registry[i];
		if (!ops->configured(cfg))
			continue;
		struct runner *r = &u->run[u->n];
		r->ops = ops;
		r->u = u;
		int e = sink_create(ops, cfg, b, &r->state);
		if (e < 0) {
			log_errx("upload: %s: cannot start: %s", ops->name, strerror(-e));
			continue;
		}
		if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
			sink_destroy(ops, r->state);
			continue;
		}
		atomic_store(&r->beat, clock_mono_ms());
		r->started = true;
		u->n++;
	}
	u->ctl = flushctl_start(cfg->agent.state_dir, serve_flush, u);
	return u;
}

void uploader_stop(struct uploader *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->mu);
	u->stopping = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	flushctl_stop(u->ctl); /* a flush waiting has been woken above: it answers and ends */
	for (size_t i = 0; i < u->n; i++)
		if (u->run[i].ops->abort)
			u->run[i].ops->abort(u->run[i].state);
	for (size_t i = 0; i < u->n; i++) {
		if (u->run[i].started)
			pthread_join(u->run[i].thread, NULL);
		sink_destroy(u->run[i].ops, u->run[i].state);
	}
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}

bool uploader_healthy(struct uploader *u, char *why, size_t whylen)
{
	if (!u)
		return true;
	/* A round is at most a wait of upload_interval_s plus one transfer of timeout_s. */
	int64_t idle = u->cfg->platform.present ? u->cfg->platform.upload_interval_s : 60;
	int64_t timeout = u->cfg->platform.present ? u->cfg->platform.timeout_s : 30;
	int64_t limit_ms = (idle + 2 * timeout + 30) * 1000;
	for (size_t i = 0; i < u->n; i++) {
		int64_t silent = clock_mono_ms() - atomic_load(&u->run[i].beat);
		if (silent > limit_ms) {
			snprintf(why, whylen, "upload: %s stuck for %lld s", u->run[i].ops->name,
				 (long long)(silent / 1000));
			return false;
		}
	}
	return true;
}

void uploader_clear_alarms(const struct config *cfg, struct buffer *b)
{
	for (size_t i = 0; sink_registry[i]; i++) {
		if (!sink_registry[i]->configured(cfg))
			continue;
		struct sink_state st;
		if (buffer_begin(b) < 0)
			continue;
		if (buffer_sink_get(b, sink_registry[i]->name, &st) == 0 && st.alarm) {
			log_warnx("upload: %s: clearing the alarm of the last run to check again: %s",
				  sink_registry[i]->name, st.alarm);
			free(st.alarm);
			st.alarm = NULL;
			st.next_attempt = 0;
			buffer_sink_put(b, sink_registry[i]->name, &st);
		}
		buffer_sink_clear(&st);
		buffer_commit(b);
	}
}

int uploader_flush(const struct config *cfg, struct buffer *b, FILE *out)
{
	int code = 0;
	for (size_t i = 0; sink_registry[i]; i++) {
		const struct sink_ops *ops = sink_registry[i];
		if (!ops->configured(cfg))
			continue;
		void *state = NULL;
		int e = sink_create(ops, cfg, b, &state);
		if (e < 0) {
			fprintf(stderr, "labshare-agent: flush: %s: %s\n", ops->name, strerror(-e));
			code = EX_SOFTWARE;
			continue;
		}
		bool force = true;
		int sink_code = -1;
		int64_t waited = 0;
		while (sink_code < 0) {
			/* `flush` checks the file beside its first batches (flushcmd.c): none goes out
			 * once that failed, and a step that did not go through hears its verdict first
			 * (a damaged page may be why). */
			if (buffer_check_poll(b) < 0) {
				sink_code = EX_IOERR;
				break;
			}
			enum sink_result r = ops->step(state, clock_wall(), force);
			force = false;
			if (r == SINK_PROGRESS)
				continue;
			if (r != SINK_IDLE && buffer_check_wait(b) < 0) {
				sink_code = EX_IOERR;
				break;
			}
			struct sink_state st;
			buffer_sink_get(b, ops->name, &st);
			if (r == SINK_IDLE) {
				fprintf(out, "%s: everything acknowledged (through seq %lld)\n", ops->name,
					(long long)st.acked_seq);
				sink_code = 0;
			} else if (r == SINK_RETRY && flush_may_wait(&waited, st.next_attempt - clock_wall())) {
				/* A short Retry-After or the first back-off steps: wait it out. */
				int64_t wait = st.next_attempt - clock_wall();
				clock_sleep_until(clock_mono_us() + (wait > 1 ? wait : 1) * 1000000);
			} else if (r == SINK_RETRY) {
				fprintf(stderr, "labshare-agent: flush: %s: %s\n", ops->name,
					st.last_error ? st.last_error : "platform unreachable");
				sink_code = EX_TEMPFAIL;
			} else {
				fprintf(stderr, "labshare-agent: flush: %s: %s\n", ops->name,
					st.alarm ? st.alarm : st.last_error ? st.last_error : "refused");
				sink_code = EX_PROTOCOL;
			}
			buffer_sink_clear(&st);
		}
		sink_destroy(ops, state);
		if (sink_code > code)
			code = sink_code;
	}
	return code;
}
