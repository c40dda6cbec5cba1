/* logtail.c — the log source driver: one thread polls every configured log path or glob,
 * follows files by device, inode and a fingerprint of their first bytes (rename, copytruncate,
 * truncation, inode reuse), frames and parses their records (drivers/logparse.c) and hands each
 * batch to the core with a cursor that says where every file was read to, in one transaction.
 * This file: the thread, status and the driver's ops; the rest in logtail_*.c. */
#include "logtail_priv.h"
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct logtail_tuning logtail_tuning = {
	.poll_ms = 250,
	.rotate_wait_ms = 5000,
	.idle_close_ms = 300000,
	.batch_obs = 4096,
	.batch_bytes = 4 << 20,
	.racy_ms = 2000,
};

/* ---- status ---- */

void lt_publish(struct tail *t)
{
	const struct tfile *cur = NULL;
	size_t present = 0;
	for (size_t i = 0; i < t->n_files; i++) {
		const struct tfile *f = t->files[i];
		if (f->missing_since)
			continue;
		present++;
		if (!cur || (!f->gone && cur->gone) ||
		    (f->gone == cur->gone && (f->mtime_ns > cur->mtime_ns ||
					      (f->mtime_ns == cur->mtime_ns && f->order > cur->order))))
			cur = f;
	}
	char *path = cur ? strdup(cur->path) : NULL;
	pthread_mutex_lock(&t->lt->mu);
	free(t->st_file);
	t->st_file = path;
	t->st_off = cur ? cur->off : 0;
	t->st_lines = t->lines;
	t->st_malformed = t->malformed;
	t->st_files = present;
	t->st_open = t->pairs ? lp_pairs_count(t->pairs) : 0;
	t->st_paused = t->paused;
	t->st_broken = t->broken;
	pthread_mutex_unlock(&t->lt->mu);
}

static void logtail_status(void *state, struct inst_status *insts, size_t n)
{
	struct logtail *lt = state;
	size_t hint = 0;
	pthread_mutex_lock(&lt->mu);
	for (size_t i = 0; i < lt->n_tails; i++) {
		const struct tail *t = lt->tails[i];
		struct inst_status *in = inst_status_find(insts, n, t->instrument, &hint);
		struct log_status *l = in ? inst_status_log(in, t->cfg->path) : NULL;
		if (!l)
			continue;
		/* Tails of one instrument come one after another: look at it again first. */
		hint = hint ? hint - 1 : 0;
		l->live = true;
		inst_status_set(&l->file, t->st_file);
		l->has_offset = true;
		l->offset = t->st_off;
		l->lines = t->st_lines;
		l->malformed = t->st_malformed;
		l->files = (int64_t)t->st_files;
		l->has_open_sessions = t->pairs != NULL;
		l->open_sessions = (int64_t)t->st_open;
		snprintf(l->state, sizeof(l->state), "%s", t->st_broken ? "error" : t->st_paused ? "paused" : "ok");
	}
	pthread_mutex_unlock(&lt->mu);
}

void logtail_cursor_status(const void *data, size_t len, struct log_status *l)
{
	cJSON *cur = data ? cJSON_ParseWithLength(data, len) : NULL;
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(cur, "files");
	const cJSON *last = cJSON_GetArrayItem(files, cJSON_GetArraySize(files) - 1);
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(last, "off");
	const cJSON *lines = cJSON_GetObjectItemCaseSensitive(cur, "lines");
	const cJSON *bad = cJSON_GetObjectItemCaseSensitive(cur, "malformed");
	l->has_offset = cJSON_IsNumber(off);
	l->offset = l->has_offset ? (int64_t)off->valuedouble : 0;
	l->lines = cJSON_IsNumber(lines) ? (int64_t)lines->valuedouble : 0;
	l->malformed = cJSON_IsNumber(bad) ? (int64_t)bad->valuedouble : 0;
	cJSON_Delete(cur);
}

/* ---- the driver ---- */

char *logtail_cursor_key(const char *instrument, const char *path)
{
	char *key = NULL;
	if (asprintf(&key, "log:%s:%s", instrument, path) < 0)
		return NULL;
	return key;
}

char *logtail_cursor_delta_key(const char *instrument, const char *path)
{
	char *key = NULL;
	if (asprintf(&key, "log:%s:%s#delta", instrument, path) < 0)
		return NULL;
	return key;
}

uint64_t logtail_rounds(void *state)
{
	struct logtail *lt = state;
	return lt ? atomic_load(&lt->rounds) : 0;
}

uint64_t logtail_quick_looks(void *state)
{
	struct logtail *lt = state;
	return lt ? atomic_load(&lt->quick_looks) : 0;
}

static void tail_free(struct tail *t)
{
	if (!t)
		return;
	lt_files_free(t->files, t->n_files);
	lt_files_free(t->dropped, t->n_dropped);
	free(t->index);
	lp_parser_free(t->parser);
	lp_pairs_free(t->pairs);
	lp_arena_free(t->arena);
	free(t->obs);
	free(t->key);
	free(t->dkey);
	free(t->committed);
	free(t->committed_base);
	free(t->drops);
	free(t->open_err_path);
	for (size_t i = 0; i < t->n_refused; i++)
		free(t->refused[i]);
	free(t->refused);
	free(t->st_file);
	lt_look_free(t);
	free(t);
}

static struct tail *tail_new(struct logtail *lt, const struct source_instrument *in,
			     const struct log_cfg *cfg)
{
	struct tail *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->lt = lt;
	t->instrument = in->id;
	t->cfg = cfg;
	t->is_glob = strpbrk(cfg->path, "*?[") != NULL;
	t->key = logtail_cursor_key(in->id, cfg->path);
	t->dkey = logtail_cursor_delta_key(in->id, cfg->path);
	t->arena = lp_arena_new();
	t->parser = lp_parser_new(cfg);
	if (!t->parser)
		log_warn("log \"%s\": cannot decode %s", cfg->path,
			 cfg->encoding == LOG_ENC_GBK ? "GB18030" : "UTF-8");
	if (cfg->format == LOG_FMT_EVENTS)
		t->pairs = lp_pairs_new(cfg->max_session_h);
	if (!t->key || !t->dkey || !t->arena || !t->parser || (cfg->format == LOG_FMT_EVENTS && !t->pairs)) {
		tail_free(t);
		return NULL;
	}
	return t;
}

static void logtail_destroy(void *state);

static int logtail_create(const struct source_conf *cfg, struct core *core, void **state)
{
	*state = NULL;
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_instruments; i++)
		n += cfg->instruments[i].n_logs;
	if (n == 0)
		return 0;
	struct logtail *lt = calloc(1, sizeof(*lt));
	if (!lt)
		return -ENOMEM;
	lt->core = core;
	pthread_mutex_init(&lt->mu, NULL);
	if (clock_cond_init(&lt->cv) < 0) {
		pthread_mutex_destroy(&lt->mu);
		free(lt);
		return -ENOMEM;
	}
	lt->tails = calloc(n, sizeof(*lt->tails));
	lt->rbuf = malloc(READ_BUF);
	lt->fpbuf = malloc(FP_MAX);
	lt->own = own_files_new(cfg);
	if (!lt->tails || !lt->rbuf || !lt->fpbuf || !lt->own)
		goto fail;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct source_instrument *in = &cfg->instruments[i];
		for (size_t j = 0; j < in->n_logs; j++) {
			struct tail *t = tail_new(lt, in, &in->logs[j]);
			if (!t)
				goto fail;
			lt->tails[lt->n_tails++] = t;
		}
	}
	*state = lt;
	return 0;
fail:
	logtail_destroy(lt);
	return -ENOMEM;
}

static void *logtail_run(void *arg)
{
	struct logtail *lt = arg;
	pthread_mutex_lock(&lt->mu);
	while (!lt->stop) {
		pthread_mutex_unlock(&lt->mu);
		if (own_files_refresh(lt->own) < 0)
			log_warnx("logs: out of memory listing the agent's own files");
		for (size_t i = 0; i < lt->n_tails && !atomic_load(&lt->stopping); i++)
			lt_poll_tail(lt->tails[i]);
		atomic_fetch_add(&lt->rounds, 1);
		atomic_store(&lt->beat_ms, clock_mono_ms());
		pthread_mutex_lock(&lt->mu);
		if (lt->stop)
			break;
		/* One wait, through the clock seam: a stop or a test advancing its fake clock
		 * starts the next round at once, and a frozen fake clock does not stop polling
		 * (its waits end after a short real slice). */
		clock_wait_until(&lt->cv, &lt->mu, clock_mono_us() + (int64_t)logtail_tuning.poll_ms * 1000);
	}
	pthread_mutex_unlock(&lt->mu);
	return NULL;
}

static int logtail_start(void *state)
{
	struct logtail *lt = state;
	if (lt->started)
		return 0;
	atomic_store(&lt->beat_ms, clock_mono_ms());
	for (size_t i = 0; i < lt->n_tails; i++) {
		struct tail *t = lt->tails[i];
		void *data = NULL, *delta = NULL;
		size_t len = 0, dlen = 0;
		int r = core_cursor(lt->core, t->key, &data, &len);
		if (r < 0 && r != -ENOENT)
			return r;
		int rd = core_cursor(lt->core, t->dkey, &delta, &dlen);
		if (rd < 0 && rd != -ENOENT) {
			free(data);
			return rd;
		}
		if (r == -ENOENT && rd == -ENOENT)
			continue;
		/* A cursor that can't be read would mean reading every file again: better to
		 * stop this log loudly than to seal its sessions twice. */
		free(t->committed_base);
		free(t->committed);
		t->committed_base = r == 0 ? data : NULL;
		t->committed = rd == 0 ? delta : NULL;
		if ((t->committed_base && memchr(t->committed_base, '\0', len)) ||
		    (t->committed && memchr(t->committed, '\0', dlen)) ||
		    lt_state_load(t, t->committed_base, t->committed) < 0) {
			log_errx("log \"%s\": its cursor \"%s\" is unreadable: log not followed", t->cfg->path,
				 t->key);
			t->broken = true;
		}
		lt_publish(t); /* loaded files have size -1: each one's identity is checked first */
	}
	lt->stop = false;
	atomic_store(&lt->stopping, false);
	int r = pthread_create(&lt->thread, NULL, logtail_run, lt);
	if (r != 0)
		return -r;
	lt->started = true;
	return 0;
}

static void logtail_stop(void *state)
{
	struct logtail *lt = state;
	if (!lt || !lt->started)
		return;
	pthread_mutex_lock(&lt->mu);
	lt->stop = true;
	atomic_store(&lt->stopping, true);
	pthread_cond_signal(&lt->cv);
	pthread_mutex_unlock(&lt->mu);
	pthread_join(lt->thread, NULL);
	lt->started = false;
	/* Open logins stay in the cursor, committed with the last batch: nothing to hand over. */
}

static void logtail_destroy(void *state)
{
	struct logtail *lt = state;
	if (!lt)
		return;
	logtail_stop(lt);
	for (size_t i = 0; i < lt->n_tails; i++)
		tail_free(lt->tails[i]);
	free(lt->tails);
	free(lt->rbuf);
	free(lt->fpbuf);
	own_files_free(lt->own);
	pthread_cond_destroy(&lt->cv);
	pthread_mutex_destroy(&lt->mu);
	free(lt);
}

/* Stuck is a round that neither ends nor commits for a minute (a share that hangs reads). */
static bool logtail_healthy(void *state, char *why, size_t whylen)
{
	struct logtail *lt = state;
	int64_t silent = clock_mono_ms() - atomic_load(&lt->beat_ms);
	if (lt->started && silent > 60000) {
		snprintf(why, whylen, "logs: no round finished for %lld s", (long long)(silent / 1000));
		return false;
	}
	return true;
}

const struct source_ops logtail_source = {
	.name = "logtail",
	.create = logtail_create,
	.start = logtail_start,
	.stop = logtail_stop,
	.status = logtail_status,
	.healthy = logtail_healthy,
	.destroy = logtail_destroy,
};
