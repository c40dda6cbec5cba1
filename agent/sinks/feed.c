/* feed.c — the chained feed of SPEC §6 over HTTPS with libcurl: one batch in flight at a time
 * while the next is read and gzipped beside it (feed_batch.c), every reply class handled as
 * the SPEC says, nothing ever dropped. */
#include "feed.h"
#include "feed_batch.h"
#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "sink.h"
#include "timeutil.h"
#include "transfer.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SINK_NAME "platform"
#define REPLY_MAX (64 * 1024)
#define BACKOFF_MAX_S 300
#define REFUSED_RETRY_S 3600
#define AUTH_RETRY_S 300
#define RETRY_AFTER_MAX_S 3600
#define SEQ_LIMIT 9007199254740992.0   /* 2^53: past it a JSON number is no exact seq */
#define GROW_EVERY 4                   /* successes in a row before the batch grows by 1/8 */
#define FORGET_413_AFTER 64            /* successes in a row before a refused size may be tried again */
#define SAVE_EVERY_MS 1000             /* acks of a backlog written at most this often (below) */

struct feed {
	const struct config *cfg;
	struct buffer *buf;
	struct transfer http;
	char *url;
	/* The batch size (SPEC §6 413): halved on a 413 (or back to the last size that passed),
	 * grown by 1/8 every GROW_EVERY successes, never to a size refused in the last
	 * FORGET_413_AFTER batches, never past batch_max_records. */
	int batch;
	int good;                   /* records in the last batch that passed, 0 none yet */
	int refused;                /* smallest batch refused with 413 lately, 0 none */
	int streak;                 /* successes since the last 413 */
	struct feed_body cur;       /* the batch in flight */
	struct feed_prep *prep;     /* makes the next one meanwhile; started at the first backlog */
	bool prep_failed;
	/* While a backlog drains, acks are written with the next outcome that is not plain
	 * progress, when caught up, at the end, or after SAVE_EVERY_MS: a commit (an fsync)
	 * per batch would cost as much as the batch's transfer. An ack lost in a crash only
	 * sends its batches again, which the platform answers as already stored (409, SPEC §6). */
	int64_t mem_acked;          /* acknowledged, not written yet; -1 none */
	int64_t mem_ok;             /* when (last_ok) */
	int64_t saved_ms;           /* monotonic ms of the last write */
};

static bool feed_configured(const struct config *cfg)
{
	return cfg->platform.present;
}

static void save_pending(struct feed *f, int64_t now);

static void feed_destroy(void *state)
{
	struct feed *f = state;
	if (!f)
		return;
	save_pending(f, clock_wall());
	feed_prep_stop(f->prep);
	transfer_cleanup(&f->http);
	free(f->url);
	feed_body_free(&f->cur);
	free(f);
}

static int feed_create(const struct config *cfg, struct buffer *b, void **state)
{
	struct feed *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = cfg;
	f->buf = b;
	f->batch = cfg->platform.batch_max_records;
	f->mem_acked = -1;
	feed_body_init(&f->cur);
	if (asprintf(&f->url, "%s/v1/feeds", cfg->platform.url) < 0) {
		f->url = NULL;
		feed_destroy(f);
		return -ENOMEM;
	}
	const struct platform_cfg *p = &cfg->platform;
	struct transfer_opts o = { .url = f->url, .protocols = "https,http", .timeout_s = p->timeout_s,
				   .ca_file = p->ca_file, .client_cert = p->client_cert,
				   .client_key = p->client_key, .proxy = p->proxy, .reply_max = REPLY_MAX };
	if (transfer_init(&f->http, &o) < 0) {
		feed_destroy(f);
		return -ENOMEM;
	}
	*state = f;
	return 0;
}

static void feed_abort(void *state)
{
	struct feed *f = state;
	transfer_abort(&f->http);
}

/* The sink's row, changed under a transaction so `flush` and the daemon can't interleave. */
struct outcome {
	enum sink_result result;
	int64_t acked;              /* -1: unchanged */
	int64_t next_attempt;
	bool ok;                    /* last_ok = now */
	char error[512];            /* "" clears last_error */
	char alarm[512];            /* "" none */
};

static int save_outcome(struct feed *f, const struct outcome *o, int64_t now)
{
	int64_t acked = o->acked, ok = o->ok ? now : 0;
	if (acked < 0 && f->mem_acked >= 0) { /* acks not written yet go with it */
		acked = f->mem_acked;
		ok = ok ? ok : f->mem_ok;
	}
	int r = buffer_begin(f->buf);
	if (r < 0)
		return r;
	r = buffer_sink_update(f->buf, SINK_NAME, acked, ok, o->next_attempt,
			       o->error[0] ? o->error : NULL, o->alarm[0] ? o->alarm : NULL);
	if (r < 0) {
		buffer_rollback(f->buf);
		return r;
	}
	if ((r = buffer_commit(f->buf)) == 0) {
		f->mem_acked = -1;
		f->saved_ms = clock_mono_ms();
	}
	return r;
}

/* Writes acks held back, if any. */
static void save_pending(struct feed *f, int64_t now)
{
	if (f->mem_acked < 0)
		return;
	struct outcome o = { .result = SINK_PROGRESS, .acked = -1 };
	if (save_outcome(f, &o, now) < 0)
		log_warnx("upload: cannot record acknowledged seq %" PRId64 " yet: it is sent again if need be",
			  f->mem_acked);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A seq from the network: an exact integer 0 ≤ N < 2^53, checked before any cast (a cast of
 * 1e300 or NaN to an integer is undefined behaviour). */
static bool jint(const cJSON *o, const char *k, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	if (!isfinite(d) || d < 0 || d >= SEQ_LIMIT || d != floor(d))
		return false;
	*out = (int64_t)d;
	return true;
}

/* The size after a success of `sent` records that makes streak successes in a row. */
static int grown(const struct feed *f, int streak, int refused, int sent)
{
	int max = f->cfg->platform.batch_max_records;
	if (f->batch >= max || streak % GROW_EVERY != 0 || sent < f->batch)
		return f->batch;
	int next = f->batch + (f->batch / 8 > 0 ? f->batch / 8 : 1);
	if (refused && next >= refused)
		next = refused - 1;
	return next > max ? max : next > f->batch ? next : f->batch;
}

static void batch_passed(struct feed *f, int sent)
{
	f->good = sent;
	f->streak++;
	if (f->streak % FORGET_413_AFTER == 0)
		f->refused = 0; /* the platform's limit may have been raised: probe again */
	f->batch = grown(f, f->streak, f->refused, sent);
}

/* What the next batch will be if this one (first..last after acked) is acknowledged whole. */
static int batch_if_passed(const struct feed *f, int sent)
{
	int streak = f->streak + 1;
	return grown(f, streak, streak % FORGET_413_AFTER == 0 ? 0 : f->refused, sent);
}

static void batch_too_large(struct feed *f, int sent)
{
	f->refused = sent;
	f->streak = 0;
	if (f->good > 0 && f->good < sent) {
		f->batch = f->good;
	} else {
		f->good = 0;
		f->batch = sent > 1 ? sent / 2 : 1;
	}
}

static void temp_failure(struct feed *f, struct outcome *o, int64_t now, const char *what)
{
	f->http.failures++;
	o->result = SINK_RETRY;
	o->next_attempt = transfer_backoff(&f->http, now, BACKOFF_MAX_S);
	snprintf(o->error, sizeof(o->error), "%s", what);
	log_warnx("upload: %s, retrying in %lld s", what, (long long)(o->next_attempt - now));
}

/* 200 {"ack":N,"hash":H}. */
static void on_ack(struct feed *f, const cJSON *reply, int64_t acked, int64_t last, struct outcome *o,
		   int64_t now)
{
	int64_t n;
	const char *hash = jstr(reply, "hash");
	if (!reply || !jint(reply, "ack", &n) || !hash) {
		temp_failure(f, o, now, "platform replied 200 without \"ack\" and \"hash\"");
		return;
	}
	/* N may be past what this batch carried (an earlier reply was lost); it only has to
	 * be a record of ours, with our hash. Mostly it is the batch's last, whose hash the body
	 * was read with: no read of the buffer between the reply and the next batch then. */
	char ours[HASH_HEX_LEN + 1];
	bool mismatch;
	if (n == last && f->cur.last == last && f->cur.last_hash[0]) {
		mismatch = strcmp(f->cur.last_hash, hash) != 0;
	} else {
		struct chain_head head;
		buffer_head(f->buf, &head);
		mismatch = n > head.seq || buffer_hash_of(f->buf, n, ours) < 0 || strcmp(ours, hash) != 0;
	}
	if (mismatch) {
		o->result = SINK_ALARM;
		snprintf(o->alarm, sizeof(o->alarm),
			 "integrity alarm: the platform acknowledged seq %" PRId64 " with hash %.64s, which is not "
			 "this agent's record %" PRId64 "; upload stopped. Ask the platform operator to compare "
			 "chains, then restart the agent",
			 n, hash, n);
		snprintf(o->error, sizeof(o->error), "%s", o->alarm);
		log_errx("upload: %s", o->alarm);
		return;
	}
	o->ok = true;
	o->acked = n;
	if (n <= acked) {
		/* Nothing new held: don't spin on the same batch. */
		temp_failure(f, o, now, "platform acknowledged nothing new");
		return;
	}
	f->http.failures = 0;
	batch_passed(f, (int)(last - acked));
	o->next_attempt = 0;
	o->result = SINK_PROGRESS;
	if (n < last)
		log_info("upload: platform acknowledged through %" PRId64 " of %" PRId64, n, last);
}

/* 409 {"error":"sequence","expected_seq":M,"hash":H}. */
static void on_conflict(struct feed *f, const cJSON *reply, int64_t last, struct outcome *o, int64_t now)
{
	int64_t m;
	const char *hash = jstr(reply, "hash");
	if (!reply || !jint(reply, "expected_seq", &m) || m < 1 || !hash) {
		temp_failure(f, o, now, "platform replied 409 without \"expected_seq\" and \"hash\"");
		return;
	}
	struct chain_head head;
	buffer_head(f->buf, &head);
	char ours[HASH_HEX_LEN + 1];
	bool have = m - 1 <= head.seq && buffer_hash_of(f->buf, m - 1, ours) == 0;
	if (have && strcmp(ours, hash) == 0) {
		/* Same chain. At or before what we sent: resend from M; past it: a lost reply,
		 * those records are stored already. */
		o->acked = m - 1;
		o->result = SINK_PROGRESS;
		o->next_attempt = 0;
		f->http.failures = 0;
		log_notice("upload: platform expects seq %" PRId64 " (sent up to %" PRId64 "), %s", m, last,
			   m <= last + 1 ? "resending from there" : "already stored, moving on");
		return;
	}
	o->result = SINK_ALARM;
	if (m - 1 > head.seq)
		snprintf(o->alarm, sizeof(o->alarm),
			 "integrity alarm: the platform holds records up to seq %" PRId64 " but this agent has "
			 "only sealed %" PRId64 " (was the buffer restored from an old backup?); upload stopped. "
			 "Do not delete anything: give the platform operator buffer.db and this message",
			 m - 1, head.seq);
	else if (!have)
		snprintf(o->alarm, sizeof(o->alarm),
			 "integrity alarm: the platform expects seq %" PRId64 " but record %" PRId64
			 " was already pruned here; upload stopped. Contact the platform operator",
			 m, m - 1);
	else
		snprintf(o->alarm, sizeof(o->alarm),
			 "integrity alarm: the platform's hash of seq %" PRId64 " (%.64s) differs from this "
			 "agent's (%s): it holds a different chain; upload stopped. Do not delete anything: "
			 "give the platform operator buffer.db and this message",
			 m - 1, hash, ours);
	snprintf(o->error, sizeof(o->error), "%s", o->alarm);
	log_errx("upload: %s", o->alarm);
}

static enum sink_result feed_step(void *state, int64_t now, bool force)
{
	struct feed *f = state;
	struct sink_state st;
	struct outcome o = { .result = SINK_RETRY, .acked = -1 };
	/* The sink's row, the head and the previous hash in one snapshot: one read transaction
	 * per batch, not one per question. */
	bool snap = buffer_read_begin(f->buf) == 0;
	if (buffer_sink_get(f->buf, SINK_NAME, &st) < 0) {
		if (snap)
			buffer_read_end(f->buf);
		return SINK_RETRY;
	}
	int64_t acked = st.acked_seq, next_attempt = st.next_attempt;
	bool alarm = st.alarm != NULL;
	buffer_sink_clear(&st);
	if (f->mem_acked > acked)
		acked = f->mem_acked;
	struct chain_head head = { 0 };
	if (!alarm && (force || now >= next_attempt))
		buffer_head(f->buf, &head);
	/* The batch acknowledged last ended at acked: its last hash is the next one's prev. */
	char prev[HASH_HEX_LEN + 1];
	int have_prev = 0;
	if (acked < head.seq && acked == f->cur.last && f->cur.last_hash[0])
		memcpy(prev, f->cur.last_hash, sizeof(prev));
	else if (acked < head.seq)
		have_prev = buffer_hash_of(f->buf, acked, prev);
	if (snap)
		buffer_read_end(f->buf);
	if (alarm)
		return SINK_ALARM;
	if (!force && now < next_attempt)
		return SINK_RETRY;
	if (acked >= head.seq) {
		save_pending(f, now);
		return SINK_IDLE;
	}

	int64_t first = acked + 1;
	int64_t last = head.seq < acked + f->batch ? head.seq : acked + f->batch;
	if (have_prev < 0) {
		o.result = SINK_ALARM;
		snprintf(o.alarm, sizeof(o.alarm),
			 "integrity alarm: record %" PRId64 " is missing from the buffer, the feed can't continue",
			 acked);
		snprintf(o.error, sizeof(o.error), "%s", o.alarm);
		save_outcome(f, &o, now);
		return o.result;
	}

	/* The body: made beside the last one's transfer when that was guessed right, else now. */
	int r = 0;
	if (!(f->prep && feed_prep_take(f->prep, first, last, prev, &f->cur)))
		r = feed_body_build(&f->cur, f->cfg, f->buf, NULL, first, last, prev);
	if (r < 0) {
		snprintf(o.error, sizeof(o.error), "cannot read records %" PRId64 "..%" PRId64 ": %s", first,
			 last, strerror(-r));
		o.next_attempt = now + 60;
		log_errx("upload: %s", o.error);
		save_outcome(f, &o, now);
		return SINK_RETRY;
	}
	/* A backlog past this batch: the next one is read and gzipped while this one is in flight. */
	if (last < head.seq && !f->prep && !f->prep_failed && feed_prep_start(f->cfg, f->buf, &f->prep) < 0)
		f->prep_failed = true;
	if (last < head.seq && f->prep) {
		int64_t next = batch_if_passed(f, (int)(last - acked));
		feed_prep_ask(f->prep, last + 1, head.seq < last + next ? head.seq : last + next, f->cur.last_hash);
	}
	size_t payload_len;
	const char *payload = feed_body_payload(&f->cur, &payload_len);
	bool gz = f->cur.gzipped;
	/* As long as the token is: a fixed buffer would cut a long one silently. */
	char *auth = transfer_bearer(f->cfg->platform.token), idem[256];
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s:%" PRId64 "-%" PRId64, f->cfg->agent.id, first, last);
	if (!auth) {
		snprintf(o.error, sizeof(o.error), "out of memory building the request");
		o.next_attempt = now + 60;
		save_outcome(f, &o, now);
		return SINK_RETRY;
	}
	struct curl_slist *hdrs = NULL;
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/x-ndjson");
	if (gz)
		hdrs = curl_slist_append(hdrs, "Content-Encoding: gzip");
	hdrs = curl_slist_append(hdrs, idem);
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
	long status = 0;
	CURLcode cc = transfer_post(&f->http, hdrs, payload, payload_len, &status);
	curl_slist_free_all(hdrs);
	explicit_bzero(auth, strlen(auth));
	free(auth);

	char what[600];
	/* A reply cut at the cap is not read at all: its start alone may look like a whole one. */
	bool cut = f->http.reply_cut;
	cJSON *reply = f->http.reply.p && !cut ? cJSON_Parse(f->http.reply.p) : NULL;
	int sent = (int)(last - first + 1);
	if (cc != CURLE_OK) {
		snprintf(what, sizeof(what), "cannot reach \"%s\": %s", f->url, transfer_error(&f->http, cc));
		temp_failure(f, &o, now, what);
	} else if (cut && status != 413) {
		snprintf(what, sizeof(what), "platform replied HTTP %ld with more than %d bytes", status, REPLY_MAX);
		temp_failure(f, &o, now, what);
	} else if (status == 200) {
		on_ack(f, reply, acked, last, &o, now);
	} else if (status == 409) {
		on_conflict(f, reply, last, &o, now);
	} else if (status == 413) {
		batch_too_large(f, sent);
		snprintf(o.error, sizeof(o.error), "platform: batch of %d records too large, trying %d", sent,
			 f->batch);
		log_notice("upload: %s", o.error);
		o.result = sent > 1 ? SINK_PROGRESS : SINK_RETRY;
		if (sent == 1) {
			f->http.failures++;
			o.next_attempt = transfer_backoff(&f->http, now, BACKOFF_MAX_S);
		}
	} else if (status == 400 || status == 422) {
		int64_t bad = 0;
		const char *err = jstr(reply, "error");
		jint(reply, "seq", &bad);
		snprintf(o.error, sizeof(o.error), "platform refused record %" PRId64 " (HTTP %ld): %s; "
			 "nothing is dropped, retrying hourly", bad, status, err ? err : "no reason given");
		log_errx("upload: %s", o.error);
		o.result = SINK_REFUSED;
		o.next_attempt = now + REFUSED_RETRY_S;
	} else if (status == 401 || status == 403) {
		snprintf(o.error, sizeof(o.error), "platform refused the credentials (HTTP %ld): check "
			 "platform.token_file; retrying in 5 min", status);
		log_errx("upload: %s", o.error);
		o.result = SINK_RETRY;
		o.next_attempt = now + AUTH_RETRY_S;
	} else if ((status == 429 || status == 503) && f->http.retry_after >= 0) {
		long wait = f->http.retry_after < RETRY_AFTER_MAX_S ? f->http.retry_after : RETRY_AFTER_MAX_S;
		snprintf(o.error, sizeof(o.error), "platform busy (HTTP %ld), retrying after %ld s", status, wait);
		log_notice("upload: %s", o.error);
		o.result = SINK_RETRY;
		o.next_attempt = now + (wait > 0 ? wait : 0);
	} else {
		snprintf(what, sizeof(what), "platform replied HTTP %ld", status);
		temp_failure(f, &o, now, what);
	}
	cJSON_Delete(reply);
	/* Plain progress through a backlog: the ack is held back a little (struct feed). */
	if (o.result == SINK_PROGRESS && o.acked > acked && o.acked < head.seq && !o.error[0] && !o.alarm[0] &&
	    o.next_attempt == 0 && clock_mono_ms() - f->saved_ms < SAVE_EVERY_MS) {
		f->mem_acked = o.acked;
		f->mem_ok = o.ok ? now : f->mem_ok;
		return o.result;
	}
	if (save_outcome(f, &o, now) < 0)
		return SINK_RETRY;
	return o.result;
}

const struct sink_ops feed_sink = {
	.name = SINK_NAME,
	.configured = feed_configured,
	.create = feed_create,
	.step = feed_step,
	.abort = feed_abort,
	.destroy = feed_destroy,
};
