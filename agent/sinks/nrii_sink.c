/* nrii_sink.c — the NRII SOAP sink of SPEC §8: each sealed session goes to the national or
 * provincial platform as one type-6 call, each closed month's year-to-date totals as one type-4
 * call, with its own cursor and per-record state beside the chained feed, nothing ever dropped.
 * What is sent is nrii_format.c, how a reply reads nrii_reply.c; here: what to send next, the
 * verdict on each answer, and the sink's tables. */
#include "nrii.h"
#include "periods.h"
#include "buffer.h"
#include "schema.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "nrii_format.h"
#include "nrii_reply.h"
#include "sink.h"
#include "stmt.h"
#include "timeutil.h"
#include "transfer.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SINK_NAME "nrii"
#define META_CONFIG "nrii_config_hash"
#define REPLY_MAX (64 * 1024)
#define BACKOFF_MAX_S 300
#define BUSY_ATTEMPTS 4             /* 203: the first try and 3 retries, then parked */
#define WALK_MAX 5000               /* records skipped per step: keeps one transaction short */
#define PARKED_RECHECK_S 60
#define NO_CODE 0                   /* parked here, before any call: the config lacks something */

/* ---- the sink's tables (made by nrii_schema.c), every statement here ---- */

enum nst {
	N_REC_GET, N_REC_PUT, N_REC_REDO, N_REC_REQUEUE, N_TOT_DUE, N_TOT_REDUE, N_TOT_NEXT, N_TOT_PUT,
	N_TOT_REQUEUE, N_PARKED, N__COUNT
};

static const char *const nst_sql[N__COUNT] = {
	[N_REC_GET] = "SELECT state, attempts, line FROM nrii_records WHERE seq = ?1",
	/* ?7 line: kept for parked records, so a correction can re-send them even after the
	 * sealed record was pruned; NULL keeps what is there. */
	[N_REC_PUT] = "INSERT INTO nrii_records(seq, kind, state, code, text, attempts, line, updated_at)"
		      " VALUES(?1, 'session', ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(seq) DO UPDATE SET"
		      " state = excluded.state, code = excluded.code, text = excluded.text,"
		      " attempts = excluded.attempts, line = COALESCE(excluded.line, line),"
		      " updated_at = excluded.updated_at",
	/* Re-sends (parked records after a config change) behind the cursor, oldest first. */
	[N_REC_REDO] = "SELECT seq, attempts, line FROM nrii_records WHERE state = 'pending' AND seq <= ?1"
		       " ORDER BY seq LIMIT 1",
	[N_REC_REQUEUE] = "UPDATE nrii_records SET state = 'pending', attempts = 0, updated_at = ?1"
			  " WHERE state = 'parked'",
	[N_TOT_DUE] = "INSERT INTO nrii_totals(instrument, year, month, state, attempts, updated_at)"
		      " VALUES(?1, ?2, ?3, 'pending', 0, ?4) ON CONFLICT(instrument, year, month) DO UPDATE"
		      " SET state = 'pending', attempts = 0, updated_at = excluded.updated_at",
	/* A revised day: the year's latest send at or after its month goes again. */
	[N_TOT_REDUE] = "UPDATE nrii_totals SET state = 'pending', attempts = 0, updated_at = ?4"
			" WHERE instrument = ?1 AND year = ?2 AND month >= ?3 AND month ="
			" (SELECT MAX(month) FROM nrii_totals WHERE instrument = ?1 AND year = ?2)",
	[N_TOT_NEXT] = "SELECT instrument, year, month, attempts FROM nrii_totals WHERE state = 'pending'"
		       " ORDER BY year, month, instrument LIMIT 1",
	[N_TOT_PUT] = "UPDATE nrii_totals SET state = ?4, code = ?5, text = ?6, attempts = ?7, run_h = ?8,"
		      " service_h = ?9, updated_at = ?10 WHERE instrument = ?1 AND year = ?2 AND month = ?3",
	[N_TOT_REQUEUE] = "UPDATE nrii_totals SET state = 'pending', attempts = 0, updated_at = ?1"
			  " WHERE state = 'parked'",
	[N_PARKED] = "SELECT (SELECT COUNT(*) FROM nrii_records WHERE state = 'parked')"
		     " + (SELECT COUNT(*) FROM nrii_totals WHERE state = 'parked')",
};

/* Read on a reader (stmt_read), never prepared on the writer. */
static const bool nst_reads[N__COUNT] = {
	[N_REC_GET] = true, [N_REC_REDO] = true, [N_TOT_NEXT] = true, [N_PARKED] = true,
};

struct nrii {
	const struct config *cfg;
	struct buffer *buf;
	struct transfer http;
	struct store_stmt *st[N__COUNT];
};

static struct store_stmt *nst(struct nrii *n, enum nst id)
{
	struct store_stmt *s = n->st[id];
	stmt_reset(s);
	return s;
}

static int step_done(struct store_stmt *s, const char *what)
{
	int rc = stmt_step(s);
	int r = rc == STMT_DONE ? 0 : stmt_error(s, rc, what);
	stmt_reset(s);
	return r;
}

static bool nrii_configured(const struct config *cfg)
{
	return cfg->nrii.present;
}

static void nrii_destroy(void *state)
{
	struct nrii *n = state;
	if (!n)
		return;
	transfer_cleanup(&n->http);
	for (int i = 0; i < N__COUNT; i++)
		stmt_free(n->st[i]);
	free(n);
}

/* On a changed config: parked records and totals go back to pending, and an alarm (a refused
 * institution code) is lifted, all in one transaction with the new digest. */
static int requeue_on_change(struct nrii *n)
{
	char digest[65];
	int r = nrii_config_digest(n->cfg, digest);
	if (r < 0)
		return r;
	if ((r = buffer_begin(n->buf)) < 0)
		return r;
	char *old = NULL;
	buffer_meta_get(n->buf, META_CONFIG, &old);
	if (old && strcmp(old, digest) != 0) {
		int64_t now = clock_wall();
		struct store_stmt *s = nst(n, N_REC_REQUEUE);
		stmt_bind_int64(s, 1, now);
		r = step_done(s, "re-queueing parked records");
		int recs = (int)stmt_changes(s);
		int tots = 0;
		if (r == 0) {
			s = nst(n, N_TOT_REQUEUE);
			stmt_bind_int64(s, 1, now);
			r = step_done(s, "re-queueing parked totals");
			tots = (int)stmt_changes(s);
		}
		struct sink_state st;
		if (r == 0 && (r = buffer_sink_get(n->buf, SINK_NAME, &st)) == 0) {
			if (st.alarm)
				log_notice("nrii: configuration changed, lifting the alarm: %s", st.alarm);
			free(st.alarm);
			st.alarm = NULL;
			st.next_attempt = 0;
			r = buffer_sink_put(n->buf, SINK_NAME, &st);
			buffer_sink_clear(&st);
		}
		if (r == 0 && recs + tots > 0)
			log_notice("nrii: configuration changed: re-sending %d parked records and %d parked totals",
				   recs, tots);
	}
	if (r == 0 && (!old || strcmp(old, digest) != 0))
		r = buffer_meta_put(n->buf, META_CONFIG, digest);
	free(old);
	if (r < 0) {
		buffer_rollback(n->buf);
		return r;
	}
	return buffer_commit(n->buf);
}

static int nrii_create(const struct config *cfg, struct buffer *b, void **state)
{
	nrii_reply_init(); /* before this sink's thread: libxml2 wants it so */
	struct nrii *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cfg = cfg;
	n->buf = b;
	int r = buffer_schema(b, &nrii_schema);
	/* The store's: they follow the buffer when its file is written back and reopened. */
	for (int i = 0; i < N__COUNT && r == 0; i++)
		if (!nst_reads[i])
			r = stmt_prepare(b, nst_sql[i], &n->st[i]);
	if (r == 0)
		r = requeue_on_change(n);
	/* NRII has no transport keys of its own: the platform section's, when there is one.
	 * Plain HTTP only when the config allowed it (config.c refuses it otherwise). */
	const struct platform_cfg *p = &cfg->platform;
	struct transfer_opts o = { .url = cfg->nrii.url,
				   .protocols = cfg->nrii.insecure_http ? "https,http" : "https",
				   .timeout_s = p->present ? p->timeout_s : 30,
				   .ca_file = p->present ? p->ca_file : NULL,
				   .proxy = p->present ? p->proxy : NULL, .reply_max = REPLY_MAX };
	if (r == 0 && transfer_init(&n->http, &o) < 0)
		r = -ENOMEM;
	if (r < 0) {
		nrii_destroy(n);
		return r;
	}
	*state = n;
	return 0;
}

static void nrii_abort(void *state)
{
	struct nrii *n = state;
	transfer_abort(&n->http);
}

/* ---- what to send next ---- */

struct item {
	bool totals;
	/* a session */
	int64_t seq;
	bool at_cursor;             /* seq == acked + 1: sending it moves the cursor */
	char *line;                 /* malloc'd */
	/* totals */
	char *instrument;           /* malloc'd */
	int year, month;
	int64_t effective_s, service_s;
	int attempts;               /* 203 replies so far */
};

static void item_clear(struct item *it)
{
	free(it->line);
	free(it->instrument);
	memset(it, 0, sizeof(*it));
}

static int days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : d[m - 1];
}

/* A daily record the cursor passes: the last day of a month makes that month's totals due; a
 * revision of a day already reported makes the year's latest totals due again. Inside the
 * walk's transaction, so a crash can neither skip nor repeat the trigger. */
static int daily_due(struct nrii *n, const char *line, int64_t now)
{
	cJSON *rec = cJSON_Parse(line);
	const char *inst = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "instrument"));
	const char *date = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "date"));
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(rec, "revision");
	int y, m, d, r = 0;
	char tail;
	const struct instrument_cfg *ic = inst ? config_instrument(n->cfg, inst) : NULL;
	if (!ic || !ic->nrii_profile || !date || !cJSON_IsNumber(rev) ||
	    sscanf(date, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 ||
	    d > days_in_month(y, m))
		goto out; /* no profile: this instrument sends no type 4 */
	int changed = 0;
	if (rev->valuedouble > 1) {
		struct store_stmt *s = nst(n, N_TOT_REDUE);
		stmt_bind_text(s, 1, inst);
		stmt_bind_int64(s, 2, y);
		stmt_bind_int64(s, 3, m);
		stmt_bind_int64(s, 4, now);
		if ((r = step_done(s, "marking totals due")) < 0)
			goto out;
		changed = (int)stmt_changes(s);
	}
	if (!changed && d == days_in_month(y, m)) {
		struct store_stmt *s = nst(n, N_TOT_DUE);
		stmt_bind_text(s, 1, inst);
		stmt_bind_int64(s, 2, y);
		stmt_bind_int64(s, 3, m);
		stmt_bind_int64(s, 4, now);
		r = step_done(s, "marking totals due");
	}
out:
	cJSON_Delete(rec);
	return r;
}

struct walk {
	struct nrii *n;
	int64_t expect, pruned_below, last_skipped, session, now;
	int count, err;
	char **daily;               /* the daily records passed, for what they make due */
	size_t n_daily, cap_daily;
};

static int walk_one(const struct stored_record *r, void *arg)
{
	struct walk *w = arg;
	/* Records pruned before this sink was configured are simply not there to report. */
	if (r->seq != w->expect && !(w->expect < w->pruned_below && r->seq == w->pruned_below)) {
		w->err = -EBADMSG;
		return 1;
	}
	if (strcmp(r->kind, "session") == 0) {
		w->session = r->seq;
		return 1;
	}
	if (strcmp(r->kind, "daily") == 0) {
		if (w->n_daily == w->cap_daily) {
			size_t cap = w->cap_daily ? w->cap_daily * 2 : 16;
			char **v = reallocarray(w->daily, cap, sizeof(*v));
			if (!v) {
				w->err = -ENOMEM;
				return 1;
			}
			w->daily = v;
			w->cap_daily = cap;
		}
		if (!(w->daily[w->n_daily] = strdup(r->line))) {
			w->err = -ENOMEM;
			return 1;
		}
		w->n_daily++;
	}
	w->last_skipped = r->seq;
	w->expect = r->seq + 1;
	return ++w->count >= WALK_MAX;
}

/* What the records passed come to, in one transaction: the totals their daily records make
 * due and the cursor moved past exactly what was read, so a crash can neither skip nor repeat
 * a trigger. 1 when the cursor moved meanwhile (a `flush` beside the daemon): read again. */
static int walk_commit(struct nrii *n, const struct walk *w, int64_t acked)
{
	int r = buffer_begin(n->buf);
	if (r < 0)
		return r;
	struct sink_state st;
	if ((r = buffer_sink_get(n->buf, SINK_NAME, &st)) == 0) {
		if (st.acked_seq != acked)
			r = 1;
		for (size_t i = 0; i < w->n_daily && r == 0; i++)
			r = daily_due(n, w->daily[i], w->now);
		if (r == 0) {
			st.acked_seq = w->last_skipped;
			r = buffer_sink_put(n->buf, SINK_NAME, &st);
		}
		buffer_sink_clear(&st);
	}
	if (r != 0) {
		buffer_rollback(n->buf);
		return r;
	}
	return buffer_commit(n->buf);
}

/* Moves the cursor over records this sink doesn't send, up to the next session: read on a
 * reader in one snapshot (sealing goes on meanwhile), then written in a short transaction.
 * Returns 1 with *session set when one follows the (new) cursor, 0 when none, 2 when capped
 * or the cursor moved meanwhile, or -errno. */
static int walk(struct nrii *n, int64_t acked, int64_t head, int64_t now, int64_t *session, int64_t *new_acked)
{
	struct walk w = { .n = n, .expect = acked + 1, .last_skipped = acked, .now = now };
	int64_t to = head < acked + WALK_MAX + 1 ? head : acked + WALK_MAX + 1;
	int r = buffer_read_begin(n->buf);
	if (r < 0)
		return r;
	w.pruned_below = buffer_first_seq(n->buf);
	if (w.pruned_below == 0 || w.pruned_below > to) {
		w.last_skipped = to; /* all of it pruned before this sink saw it */
		w.expect = to + 1;
	} else {
		r = buffer_each_record(n->buf, acked + 1, to, walk_one, &w);
	}
	buffer_read_end(n->buf);
	if (r == 0 && w.err == 0 && w.session == 0 && w.expect <= to && w.count < WALK_MAX)
		w.err = -EBADMSG; /* a hole: never report around it */
	if (r >= 0)
		r = 0; /* the walk stops at a session with 1 */
	if (r == 0 && w.err == 0 && w.last_skipped > acked)
		r = walk_commit(n, &w, acked);
	for (size_t i = 0; i < w.n_daily; i++)
		free(w.daily[i]);
	free(w.daily);
	if (r < 0 || w.err < 0)
		return r < 0 ? r : w.err;
	if (r == 1)
		return 2;
	*new_acked = w.last_skipped;
	*session = w.session;
	return w.session ? 1 : w.count >= WALK_MAX ? 2 : 0;
}

static int year_sums(struct nrii *n, struct item *it)
{
	char a[32], b[32];
	if (it->year < 1970 || it->year > 9998 || it->month < 1 || it->month > 12)
		return -EINVAL;
	snprintf(a, sizeof(a), "%04d-01-01", it->year);
	if (it->month == 12)
		snprintf(b, sizeof(b), "%04d-01-01", it->year + 1);
	else
		snprintf(b, sizeof(b), "%04d-%02d-01", it->year, it->month + 1);
	int64_t from = time_parse_date(a), to = time_parse_date(b);
	if (from < 0 || to < 0)
		return -EINVAL;
	/* The same rule as the auditors' report (contract/periods.h): they can never disagree. */
	struct period_sums sums;
	int r = period_sums(n->buf, it->instrument, from, to, &sums, NULL, NULL);
	if (r == 0) {
		it->effective_s = sums.effective_s;
		it->service_s = sums.service_s;
	}
	return r;
}

static char *dup_text(struct store_stmt *s, int col)
{
	const char *t = stmt_text(s, col);
	return t ? strdup(t) : NULL;
}

/* A session's line: kept with a parked record, else the sealed record itself. */
static int session_line(struct nrii *n, struct item *it)
{
	if (it->line)
		return 0;
	struct stored_record r;
	int e = buffer_get_record(n->buf, it->seq, &r);
	if (e == 0) {
		it->line = r.line;
		r.line = NULL;
	}
	buffer_record_clear(&r);
	return e;
}

enum next { NEXT_NONE, NEXT_ITEM, NEXT_MORE };

static int next_item(struct nrii *n, int64_t acked, int64_t now, struct item *it)
{
	memset(it, 0, sizeof(*it));
	int r = 0;
	/* 1. A record re-queued by a config change; 2. totals that fell due. Committed rows, on
	 * a reader, in one snapshot. */
	if ((r = buffer_read_begin(n->buf)) < 0)
		return r;
	struct store_stmt *s;
	if ((r = stmt_read(n->buf, nst_sql[N_REC_REDO], &s)) == 0) {
		stmt_bind_int64(s, 1, acked);
		int rc = stmt_step(s);
		if (rc == STMT_ROW) {
			it->seq = stmt_int64(s, 0);
			it->attempts = stmt_int(s, 1);
			it->line = dup_text(s, 2);
		} else if (rc != STMT_DONE) {
			r = stmt_error(s, rc, "reading re-sends");
		}
		stmt_done(s);
	}
	if (r == 0 && !it->seq && (r = stmt_read(n->buf, nst_sql[N_TOT_NEXT], &s)) == 0) {
		int rc = stmt_step(s);
		if (rc == STMT_ROW) {
			it->totals = true;
			it->instrument = dup_text(s, 0);
			it->year = stmt_int(s, 1);
			it->month = stmt_int(s, 2);
			it->attempts = stmt_int(s, 3);
			if (!it->instrument)
				r = -ENOMEM;
		} else if (rc != STMT_DONE) {
			r = stmt_error(s, rc, "reading due totals");
		}
		stmt_done(s);
	}
	buffer_read_end(n->buf);
	if (r < 0)
		return r;
	if (it->seq)
		return (r = session_line(n, it)) < 0 ? r : NEXT_ITEM;
	if (it->totals)
		return (r = year_sums(n, it)) < 0 ? r : NEXT_ITEM;

	/* 3. The cursor: past what isn't a session, to the next one. */
	struct chain_head head;
	buffer_head(n->buf, &head);
	if (acked >= head.seq)
		return NEXT_NONE;
	int64_t session = 0, moved = acked;
	r = walk(n, acked, head.seq, now, &session, &moved);
	if (r < 0)
		return r;
	if (r == 2 || (r == 0 && moved > acked))
		return NEXT_MORE; /* moved: totals may have fallen due, look again */
	if (r == 0)
		return NEXT_NONE;
	it->seq = session;
	it->at_cursor = true;
	if (stmt_read(n->buf, nst_sql[N_REC_GET], &s) == 0) {
		stmt_bind_int64(s, 1, session);
		if (stmt_step(s) == STMT_ROW)
			it->attempts = stmt_int(s, 1);
		stmt_done(s);
	}
	return (r = session_line(n, it)) < 0 ? r : NEXT_ITEM;
}

/* ---- one call and what it came to ---- */

enum verdict { V_SENT, V_PARK, V_RETRY, V_ALARM };

struct outcome {
	enum verdict v;
	int code;                   /* the platform's code, NO_CODE before any call, -1 none */
	char text[512];             /* the reply's text: for the record's row */
	char error[768];            /* for the sink's last_error ("" clears) */
	char alarm[768];
	int64_t next_attempt;
};

static void what_of(const struct item *it, char *out, size_t len)
{
	if (it->totals)
		snprintf(out, len, "totals of \"%s\" for %04d-%02d", it->instrument, it->year, it->month);
	else
		snprintf(out, len, "record %" PRId64, it->seq);
}

static void retry(struct nrii *n, struct outcome *o, int64_t now, const char *what)
{
	n->http.failures++;
	o->v = V_RETRY;
	o->next_attempt = transfer_backoff(&n->http, now, BACKOFF_MAX_S);
	snprintf(o->error, sizeof(o->error), "%s", what);
	log_warnx("nrii: %s, retrying in %lld s", what, (long long)(o->next_attempt - now));
}

static void post(struct nrii *n, const struct item *it, const char *env, int64_t now, struct outcome *o)
{
	char what[96], msg[1024];
	what_of(it, what, sizeof(what));
	struct curl_slist *hdrs = NULL;
	hdrs = curl_slist_append(hdrs, "Content-Type: text/xml; charset=utf-8");
	hdrs = curl_slist_append(hdrs, "SOAPAction: \"\"");
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
	long status = 0;
	CURLcode cc = transfer_post(&n->http, hdrs, env, strlen(env), &status);
	curl_slist_free_all(hdrs);

	struct nrii_reply rep;
	nrii_parse_reply(n->http.reply.p, n->http.reply.len, &rep);
	o->code = -1;
	if (cc != CURLE_OK) {
		snprintf(msg, sizeof(msg), "%s: cannot reach \"%s\": %s", what, n->cfg->nrii.url,
			 transfer_error(&n->http, cc));
		retry(n, o, now, msg);
		return;
	}
	/* 5xx, SOAP faults, replies without a readable `return`: the platform's trouble, not the
	 * record's (CXF sends its faults as HTTP 500). Retried, never parked. */
	if (status < 200 || status > 299) {
		snprintf(msg, sizeof(msg), "%s: platform replied HTTP %ld%s%s", what, status,
			 rep.kind == NRII_REPLY_FAULT ? " with a SOAP fault: " : "",
			 rep.kind == NRII_REPLY_FAULT ? rep.text : "");
		retry(n, o, now, msg);
		return;
	}
	if (rep.kind == NRII_REPLY_FAULT) {
		snprintf(msg, sizeof(msg), "%s: platform replied with a SOAP fault: %s", what, rep.text);
		retry(n, o, now, msg);
		return;
	}
	if (rep.kind != NRII_REPLY_RETURN) {
		snprintf(msg, sizeof(msg), "%s: %s", what, rep.text[0] ? rep.text : "unreadable reply");
		retry(n, o, now, msg);
		return;
	}
	o->code = rep.code;
	snprintf(o->text, sizeof(o->text), "%s", rep.text);
	switch (rep.code) {
	case 100:
		n->http.failures = 0;
		o->v = V_SENT;
		log_debug("nrii: %s sent", what);
		return;
	case 200:
		o->v = V_ALARM;
		snprintf(o->alarm, sizeof(o->alarm),
			 "the platform refused the institution code \"%s\" (return \"%s\"): NRII reporting "
			 "stopped; correct nrii.ins_code and reload (nothing is dropped)",
			 n->cfg->nrii.ins_code, rep.text);
		snprintf(o->error, sizeof(o->error), "%s", o->alarm);
		log_errx("nrii: %s", o->alarm);
		return;
	case 101: case 201: case 202: case 204:
		o->v = V_PARK;
		n->http.failures = 0;
		log_warnx("nrii: %s parked: the platform answered \"%s\"; nothing is dropped: correct the "
			  "configuration and reload to re-send it", what, rep.text);
		return;
	case 203:
		if (it->attempts + 1 >= BUSY_ATTEMPTS) {
			o->v = V_PARK;
			n->http.failures = 0;
			log_warnx("nrii: %s parked after %d tries: the platform answered \"%s\"", what,
				  BUSY_ATTEMPTS, rep.text);
			return;
		}
		snprintf(msg, sizeof(msg), "%s: platform answered \"%s\" (try %d of %d)", what, rep.text,
			 it->attempts + 1, BUSY_ATTEMPTS);
		retry(n, o, now, msg);
		return;
	default: /* 301 and anything the platform may add: temporary, never parked */
		snprintf(msg, sizeof(msg), "%s: platform answered \"%s\"", what, rep.text);
		retry(n, o, now, msg);
		return;
	}
}

/* The record's (or totals') row and the sink's row change together: a crash before this
 * commit re-sends the same recordInnerId, never skips. */
static int save(struct nrii *n, const struct item *it, const struct outcome *o, int64_t now)
{
	int r = buffer_begin(n->buf);
	if (r < 0)
		return r;
	bool settled = o->v == V_SENT || o->v == V_PARK;
	bool counted = settled || (o->v == V_RETRY && o->code == 203);
	const char *state = o->v == V_SENT ? "sent" : o->v == V_PARK ? "parked" : "pending";
	int attempts = it->attempts + (o->code == 203 ? 1 : 0);
	if (counted && !it->totals) {
		struct store_stmt *s = nst(n, N_REC_PUT);
		stmt_bind_int64(s, 1, it->seq);
		stmt_bind_text(s, 2, state);
		stmt_bind_int64(s, 3, o->code);
		stmt_bind_text(s, 4, o->text);
		stmt_bind_int64(s, 5, attempts);
		if (o->v == V_PARK)
			stmt_bind_text(s, 6, it->line);
		stmt_bind_int64(s, 7, now);
		r = step_done(s, "recording a record's state");
	} else if (counted) {
		char run[32], svc[32]; /* as sent */
		nrii_hours2(it->effective_s, run);
		nrii_hours2(it->service_s, svc);
		struct store_stmt *s = nst(n, N_TOT_PUT);
		stmt_bind_text(s, 1, it->instrument);
		stmt_bind_int64(s, 2, it->year);
		stmt_bind_int64(s, 3, it->month);
		stmt_bind_text(s, 4, state);
		stmt_bind_int64(s, 5, o->code);
		stmt_bind_text(s, 6, o->text);
		stmt_bind_int64(s, 7, attempts);
		stmt_bind_text(s, 8, run);
		stmt_bind_text(s, 9, svc);
		stmt_bind_int64(s, 10, now);
		r = step_done(s, "recording totals' state");
	}
	struct sink_state st;
	if (r == 0 && (r = buffer_sink_get(n->buf, SINK_NAME, &st)) == 0) {
		int64_t acked = settled && it->at_cursor && it->seq == st.acked_seq + 1 ? it->seq : -1;
		buffer_sink_clear(&st);
		r = buffer_sink_update(n->buf, SINK_NAME, acked, settled ? now : 0, o->next_attempt,
				       o->error[0] ? o->error : NULL, o->alarm[0] ? o->alarm : NULL);
	}
	if (r < 0) {
		buffer_rollback(n->buf);
		return r;
	}
	return buffer_commit(n->buf);
}

static int64_t parked_count(struct nrii *n)
{
	struct store_stmt *s;
	int64_t c = 0;
	if (stmt_read(n->buf, nst_sql[N_PARKED], &s) == 0) {
		c = stmt_step(s) == STMT_ROW ? stmt_int64(s, 0) : 0;
		stmt_done(s);
	}
	return c;
}

static int save_sink(struct nrii *n, int64_t next_attempt, const char *error)
{
	int r = buffer_begin(n->buf);
	if (r < 0)
		return r;
	struct sink_state st;
	if ((r = buffer_sink_get(n->buf, SINK_NAME, &st)) == 0) {
		st.next_attempt = next_attempt;
		free(st.last_error);
		st.last_error = error ? strdup(error) : NULL;
		r = buffer_sink_put(n->buf, SINK_NAME, &st);
		buffer_sink_clear(&st);
	}
	if (r < 0) {
		buffer_rollback(n->buf);
		return r;
	}
	return buffer_commit(n->buf);
}

static enum sink_result nrii_step(void *state, int64_t now, bool force)
{
	struct nrii *n = state;
	struct sink_state st;
	if (buffer_sink_get(n->buf, SINK_NAME, &st) < 0)
		return SINK_RETRY;
	int64_t acked = st.acked_seq, next_attempt = st.next_attempt;
	bool alarm = st.alarm != NULL, had_error = st.last_error != NULL;
	buffer_sink_clear(&st);
	if (alarm)
		return SINK_ALARM;
	if (!force && now < next_attempt)
		return SINK_RETRY;

	struct item it;
	int r = next_item(n, acked, now, &it);
	if (r < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot read what to send next: %s", strerror(-r));
		log_errx("nrii: %s, retrying in 60 s", msg);
		save_sink(n, now + 60, msg);
		item_clear(&it);
		return SINK_RETRY;
	}
	if (r == NEXT_MORE)
		return SINK_PROGRESS;
	if (r == NEXT_NONE) {
		int64_t parked = parked_count(n);
		if (parked > 0) {
			/* Caught up, but the platform refused some: `flush` says so (76), and the
			 * daemon looks again once a minute. */
			char msg[256];
			snprintf(msg, sizeof(msg), "%" PRId64 " record%s parked by the platform (see status); nothing "
				 "is dropped: correct the configuration and reload to re-send", parked,
				 parked == 1 ? "" : "s");
			save_sink(n, now + PARKED_RECHECK_S, msg);
			return SINK_REFUSED;
		}
		if (had_error)
			save_sink(n, 0, NULL);
		return SINK_IDLE;
	}

	struct outcome o = { .v = V_RETRY, .code = -1 };
	char why[256] = "";
	char *env = NULL;
	if (it.totals) {
		const struct instrument_cfg *ic = config_instrument(n->cfg, it.instrument);
		if (ic && ic->nrii_profile && ic->inner_id)
			env = nrii_envelope_profile(n->cfg, ic, it.effective_s, it.service_s);
		else
			snprintf(why, sizeof(why), "instrument \"%s\" has no nrii_profile in the configuration",
				 it.instrument);
	} else {
		env = nrii_envelope_session(n->cfg, it.seq, it.line, why, sizeof(why));
	}
	if (!env && strcmp(why, "out of memory") != 0) {
		/* Nothing the platform could take: parked here, re-sent once the config changes. */
		if (!why[0])
			snprintf(why, sizeof(why), "cannot build the request");
		o.v = V_PARK;
		o.code = NO_CODE;
		snprintf(o.text, sizeof(o.text), "%s", why);
		log_warnx("nrii: %s; parked until the configuration changes", why);
	} else if (!env) {
		retry(n, &o, now, "out of memory building a request");
	} else {
		post(n, &it, env, now, &o);
	}
	free(env);
	r = save(n, &it, &o, now);
	item_clear(&it);
	if (r < 0)
		return SINK_RETRY;
	switch (o.v) {
	case V_SENT: case V_PARK: return SINK_PROGRESS;
	case V_ALARM: return SINK_ALARM;
	default: return SINK_RETRY;
	}
}

const struct sink_ops nrii_sink = {
	.name = SINK_NAME,
	.configured = nrii_configured,
	.create = nrii_create,
	.step = nrii_step,
	.abort = nrii_abort,
	.destroy = nrii_destroy,
};
