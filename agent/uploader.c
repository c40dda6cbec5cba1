/* uploader.c — the loop around each sink: back-to-back batches while there is a backlog, a
 * pause of upload_interval_s when caught up, next_attempt honoured after failures. */
#include "uploader.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
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
#include <time.h>

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
};

struct uploader {
	const struct config *cfg;
	struct buffer *buf;
	struct runner run[MAX_SINKS];
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
};

static int64_t next_attempt_of(struct buffer *b, const char *sink)
{
	struct sink_state st;
	if (buffer_sink_get(b, sink, &st) < 0)
		return 0;
	int64_t t = st.next_attempt;
	buffer_sink_clear(&st);
	return t;
}

/* Sleeps until `secs` pass or the uploader stops; false when stopping. */
static bool pause_for(struct uploader *u, int64_t secs)
{
	pthread_mutex_lock(&u->mu);
	if (!u->stopping && secs > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += secs;
		pthread_cond_timedwait(&u->cv, &u->mu, &ts);
	}
	bool go_on = !u->stopping;
	pthread_mutex_unlock(&u->mu);
	return go_on;
}

static void *runner_main(void *arg)
{
	struct runner *r = arg;
	struct uploader *u = r->u;
	int64_t idle_s = u->cfg->platform.present ? u->cfg->platform.upload_interval_s : 60;
	for (;;) {
		atomic_store(&r->beat, clock_mono_ms());
		enum sink_result res = r->ops->step(r->state, clock_wall(), false);
		atomic_store(&r->beat, clock_mono_ms());
		int64_t wait = 0;
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
		if (!pause_for(u, wait))
			break;
	}
	return NULL;
}

struct uploader *uploader_start(const struct config *cfg, struct buffer *b)
{
	struct uploader *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->cfg = cfg;
	u->buf = b;
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	for (size_t i = 0; sink_registry[i] && u->n < MAX_SINKS; i++) {
		const struct sink_ops *ops = sink_registry[i];
		if (!ops->configured(cfg))
			continue;
		struct runner *r = &u->run[u->n];
		r->ops = ops;
		r->u = u;
		int e = ops->create(cfg, b, &r->state);
		if (e < 0) {
			log_errx("upload: %s: cannot start: %s", ops->name, strerror(-e));
			continue;
		}
		if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
			ops->destroy(r->state);
			continue;
		}
		atomic_store(&r->beat, clock_mono_ms());
		r->started = true;
		u->n++;
	}
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
	for (size_t i = 0; i < u->n; i++)
		if (u->run[i].ops->abort)
			u->run[i].ops->abort(u->run[i].state);
	for (size_t i = 0; i < u->n; i++) {
		if (u->run[i].started)
			pthread_join(u->run[i].thread, NULL);
		u->run[i].ops->destroy(u->run[i].state);
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
		if (buffer_sink_get(b, sink_registry[i]->name, &st) == 0 && st.alarm) {
			log_warnx("upload: %s: clearing the alarm of the last run to check again: %s",
				  sink_registry[i]->name, st.alarm);
			free(st.alarm);
			st.alarm = NULL;
			st.next_attempt = 0;
			buffer_sink_put(b, sink_registry[i]->name, &st);
		}
		buffer_sink_clear(&st);
	}
}

#define FLUSH_WAIT_MAX_S 10

int uploader_flush(const struct config *cfg, struct buffer *b, FILE *out)
{
	int code = 0;
	for (size_t i = 0; sink_registry[i]; i++) {
		const struct sink_ops *ops = sink_registry[i];
		if (!ops->configured(cfg))
			continue;
		void *state = NULL;
		int e = ops->create(cfg, b, &state);
		if (e < 0) {
			fprintf(stderr, "labshare-agent: flush: %s: %s\n", ops->name, strerror(-e));
			code = EX_SOFTWARE;
			continue;
		}
		bool force = true;
		int sink_code = -1;
		while (sink_code < 0) {
			enum sink_result r = ops->step(state, clock_wall(), force);
			force = false;
			if (r == SINK_PROGRESS)
				continue;
			struct sink_state st;
			buffer_sink_get(b, ops->name, &st);
			if (r == SINK_IDLE) {
				fprintf(out, "%s: everything acknowledged (through seq %lld)\n", ops->name,
					(long long)st.acked_seq);
				sink_code = 0;
			} else if (r == SINK_RETRY && st.next_attempt - clock_wall() <= FLUSH_WAIT_MAX_S) {
				/* A short Retry-After or the first back-off steps: wait it out. */
				int64_t wait = st.next_attempt - clock_wall();
				if (wait > 0) {
					struct timespec ts = { (time_t)wait, 0 };
					nanosleep(&ts, NULL);
				}
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
		ops->destroy(state);
		if (sink_code > code)
			code = sink_code;
	}
	return code;
}
