/* metrics.c — the figures auditors are given (SPEC §4): counter readings become run time per
 * 15-minute slot with fractions carried, sessions are kept for unions, and closed days become
 * daily records, revised when late data changes them. All SQL of the module is below. */
#include "metrics.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "counter.h"
#include "log.h"
#include "records.h"
#include "periods.h"
#include "source.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mx_stmt {
	MX_STATE_GET, MX_STATE_PUT, MX_SLOT_ADD, MX_SLOT_LATE, MX_SLOTS_DUE, MX_SLOT_SEALED,
	MX_SLOT_OPEN, MX_DAY_SUMS, MX_SESSION_PUT, MX_DAY_SESSIONS, MX_FRONTIER, MX_FIRST_SLOT,
	MX_FIRST_SESSION, MX_DAILY_GET, MX_DAILY_PUT, MX_DIRTY_ADD, MX_DIRTY_LIST, MX_DIRTY_DEL,
	MX_RECORD_LINE, MX_PRUNE_SESSIONS, MX_PRUNE_SLOTS, MX_PRUNE_DAILY, MX_SESSION_SAME, MX__COUNT
};

static const char *const mx_sql[MX__COUNT] = {
	[MX_STATE_GET] = "SELECT state FROM mx_state WHERE instrument = ?1",
	[MX_STATE_PUT] = "INSERT INTO mx_state(instrument, state) VALUES(?1, ?2)"
			 " ON CONFLICT(instrument) DO UPDATE SET state = excluded.state",
	/* ?3 run, ?4 samples, ?5 offline seconds added to a slot. */
	[MX_SLOT_ADD] = "INSERT INTO mx_slots(instrument, slot, run, samples, offline) VALUES(?1, ?2, ?3, ?4, ?5)"
			" ON CONFLICT(instrument, slot) DO UPDATE SET run = run + excluded.run,"
			" samples = samples + excluded.samples, offline = offline + excluded.offline"
			" RETURNING sealed_to",
	[MX_SLOT_LATE] = "UPDATE mx_slots SET late_from = MIN(COALESCE(late_from, ?3), ?3),"
			 " late_to = MAX(COALESCE(late_to, ?4), ?4) WHERE instrument = ?1 AND slot = ?2",
	[MX_SLOTS_DUE] = "SELECT slot, run, run_done, samples, samples_done, sealed_to, late_from, late_to"
			 " FROM mx_slots WHERE instrument = ?1 AND ((sealed_to < slot + 900 AND slot + 900 <= ?2)"
			 " OR late_from IS NOT NULL) ORDER BY slot",
	[MX_SLOT_SEALED] = "UPDATE mx_slots SET run_done = run, samples_done = samples,"
			   " run_sealed = run_sealed + ?3, samples_sealed = samples_sealed + ?4,"
			   " sealed_to = MAX(sealed_to, ?5), late_from = NULL, late_to = NULL"
			   " WHERE instrument = ?1 AND slot = ?2",
	[MX_SLOT_OPEN] = "SELECT slot, run, run_done, samples, samples_done, sealed_to FROM mx_slots"
			 " WHERE instrument = ?1 AND slot = ?2",
	/* TOTAL, not SUM: SUM stops with an error when integers overflow; the doubles are
	 * bounded on the way out (sat_from_double). */
	[MX_DAY_SUMS] = "SELECT TOTAL(run_sealed), TOTAL(samples_sealed), TOTAL(offline)"
			" FROM mx_slots WHERE instrument = ?1 AND slot >= ?2 AND slot < ?3",
	[MX_SESSION_PUT] = "INSERT INTO mx_sessions(seq, instrument, start, end, user, org, external, samples,"
			   " closed_auto, manual) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	/* Sessions are at most 31 days long (record, logs), so the scan is bounded. */
	[MX_DAY_SESSIONS] = "SELECT start, end, external, user, org, samples FROM mx_sessions"
			    " WHERE instrument = ?1 AND start >= ?2 - 2764800 AND start < ?3 AND end > ?2"
			    " ORDER BY start, end",
	[MX_FRONTIER] = "SELECT MAX(day) FROM mx_daily WHERE instrument = ?1",
	[MX_FIRST_SLOT] = "SELECT MIN(slot) FROM mx_slots WHERE instrument = ?1",
	[MX_FIRST_SESSION] = "SELECT MIN(start) FROM mx_sessions WHERE instrument = ?1",
	[MX_DAILY_GET] = "SELECT revision, seq FROM mx_daily WHERE instrument = ?1 AND day = ?2",
	[MX_DAILY_PUT] = "INSERT INTO mx_daily(instrument, day, date, revision, seq) VALUES(?1, ?2, ?3, ?4, ?5)"
			 " ON CONFLICT(instrument, day) DO UPDATE SET revision = excluded.revision,"
			 " seq = excluded.seq",
	[MX_DIRTY_ADD] = "INSERT OR IGNORE INTO mx_dirty(instrument, day) VALUES(?1, ?2)",
	[MX_DIRTY_LIST] = "SELECT day FROM mx_dirty WHERE instrument = ?1 ORDER BY day",
	[MX_DIRTY_DEL] = "DELETE FROM mx_dirty WHERE instrument = ?1 AND day = ?2",
	[MX_RECORD_LINE] = "SELECT line FROM records WHERE seq = ?1",
	[MX_PRUNE_SESSIONS] = "DELETE FROM mx_sessions WHERE end < ?1",
	/* Only slots whose records are out: an open one still waits for its readings. */
	[MX_PRUNE_SLOTS] = "DELETE FROM mx_slots WHERE slot + 900 < ?1 AND sealed_to >= slot + 900 AND late_from IS NULL",
	/* The newest daily of each instrument stays: it is the frontier the next day follows. */
	[MX_PRUNE_DAILY] = "DELETE FROM mx_daily WHERE day < ?1 AND day < (SELECT MAX(day) FROM mx_daily d"
			   " WHERE d.instrument = mx_daily.instrument)",
	/* The same session (SPEC §3): equal instrument, start, end and user. Sessions are kept
	 * here until metrics_prune, so that is how far back a repeat is recognised. */
	[MX_SESSION_SAME] = "SELECT 1 FROM mx_sessions WHERE instrument = ?1 AND start = ?2 AND end = ?3"
			    " AND user IS ?4 LIMIT 1",
};

struct metrics {
	struct buffer *buf;
	const struct config *cfg;
	sqlite3_stmt *st[MX__COUNT];
};

/* What is kept per instrument between readings (mx_state, as JSON). */
struct inst_state {
	struct counter_state run, smp;
	bool iu_known, iu;
	int64_t iu_us;
	int64_t poll_us;        /* last poll attempt */
	bool poll_ok;
	int64_t cov;            /* coverage: readings are in up to here (seconds) */
	double run_carry, smp_carry;
	int64_t repeats;        /* sessions seen again and not sealed (SPEC §3) */
};

/* ---- bounded arithmetic (SPEC §3: sums never overflow) ------------------------------ */

/* A count or sum in [0, METRICS_SUM_MAX]: a + b saturating, negatives counted as 0. */
static int64_t sat_add(int64_t a, int64_t b)
{
	if (a < 0)
		a = 0;
	if (b < 0)
		b = 0;
	if (a > METRICS_SUM_MAX)
		a = METRICS_SUM_MAX;
	return b > METRICS_SUM_MAX - a ? METRICS_SUM_MAX : a + b;
}

/* A double to [0, METRICS_SUM_MAX], rounded; the range is checked before any conversion
 * (converting an out-of-range double or NaN to an integer is undefined). */
static int64_t sat_from_double(double x)
{
	if (!(x > 0)) /* NaN, negatives, zero */
		return 0;
	if (x >= (double)METRICS_SUM_MAX)
		return METRICS_SUM_MAX;
	return llround(x);
}

/* Microseconds to whole seconds, rounding down also before 1970. */
static int64_t floor_s(int64_t us)
{
	int64_t q = us / 1000000;
	return us % 1000000 < 0 ? q - 1 : q;
}

static sqlite3_stmt *mx(struct metrics *m, enum mx_stmt id)
{
	sqlite3_stmt *s = m->st[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

struct metrics *metrics_new(struct buffer *b, const struct config *cfg)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->buf = b;
	m->cfg = cfg;
	buffer_lock(b);
	/* Registered with the buffer: they follow it when its file is written back and reopened. */
	for (int i = 0; i < MX__COUNT; i++) {
		if (buffer_prepare(b, mx_sql[i], &m->st[i]) < 0) {
			buffer_unlock(b);
			metrics_free(m);
			return NULL;
		}
	}
	buffer_unlock(b);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < MX__COUNT; i++)
		buffer_finalize(m->buf, &m->st[i]);
	free(m);
}

void metrics_set_config(struct metrics *m, const struct config *cfg)
{
	m->cfg = cfg;
}

/* ---- per-instrument state ---------------------------------------------------------- */

static void counter_to_json(cJSON *o, const char *key, const struct counter_state *c)
{
	cJSON *j = cJSON_AddObjectToObject(o, key);
	cJSON_AddBoolToObject(j, "have", c->have);
	cJSON_AddNumberToObject(j, "last", c->last);
	cJSON_AddNumberToObject(j, "last_us", (double)c->last_us);
	cJSON_AddBoolToObject(j, "pending", c->pending);
	cJSON_AddNumberToObject(j, "pend", c->pend_value);
	cJSON_AddNumberToObject(j, "pend_us", (double)c->pend_us);
}

static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool jbool(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* An integer kept as a JSON number; the range is checked before the conversion, so a damaged
 * state gives 0, not undefined behaviour. */
static int64_t jint(const cJSON *o, const char *key)
{
	double v = jnum(o, key);
	return isfinite(v) && v > -9.2e18 && v < 9.2e18 ? (int64_t)v : 0;
}

static void counter_from_json(const cJSON *o, struct counter_state *c)
{
	c->have = jbool(o, "have");
	c->last = jnum(o, "last");
	c->last_us = jint(o, "last_us");
	c->pending = jbool(o, "pending");
	c->pend_value = jnum(o, "pend");
	c->pend_us = jint(o, "pend_us");
}

static int state_load(struct metrics *m, const char *inst, struct inst_state *st)
{
	memset(st, 0, sizeof(*st));
	sqlite3_stmt *s = mx(m, MX_STATE_GET);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return buffer_sqlite_error(m->buf, rc, "reading metrics state");
	cJSON *o = cJSON_Parse((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (!o)
		return -EBADMSG;
	counter_from_json(cJSON_GetObjectItemCaseSensitive(o, "run"), &st->run);
	counter_from_json(cJSON_GetObjectItemCaseSensitive(o, "smp"), &st->smp);
	st->iu_known = jbool(o, "iu_known");
	st->iu = jbool(o, "iu");
	st->iu_us = jint(o, "iu_us");
	st->poll_us = jint(o, "poll_us");
	st->poll_ok = jbool(o, "poll_ok");
	st->cov = jint(o, "cov");
	st->run_carry = jnum(o, "run_carry");
	st->smp_carry = jnum(o, "smp_carry");
	st->repeats = jint(o, "repeats");
	cJSON_Delete(o);
	return 0;
}

static int state_save(struct metrics *m, const char *inst, const struct inst_state *st)
{
	cJSON *o = cJSON_CreateObject();
	counter_to_json(o, "run", &st->run);
	counter_to_json(o, "smp", &st->smp);
	cJSON_AddBoolToObject(o, "iu_known", st->iu_known);
	cJSON_AddBoolToObject(o, "iu", st->iu);
	cJSON_AddNumberToObject(o, "iu_us", (double)st->iu_us);
	cJSON_AddNumberToObject(o, "poll_us", (double)st->poll_us);
	cJSON_AddBoolToObject(o, "poll_ok", st->poll_ok);
	cJSON_AddNumberToObject(o, "cov", (double)st->cov);
	cJSON_AddNumberToObject(o, "run_carry", st->run_carry);
	cJSON_AddNumberToObject(o, "smp_carry", st->smp_carry);
	cJSON_AddNumberToObject(o, "repeats", (double)st->repeats);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return -ENOMEM;
	sqlite3_stmt *s = mx(m, MX_STATE_PUT);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	cJSON_free(text);
	return rc == SQLITE_DONE ? 0 : buffer_sqlite_error(m->buf, rc, "writing metrics state");
}

/* ---- spreading amounts over slots -------------------------------------------------- */

static int64_t slot_of(int64_t t)
{
	/* Every zone offset in use is a multiple of 15 minutes, so UTC-aligned slots are the
	 * local wall-clock slots too. */
	int64_t r = t % SLOT_S;
	return t - (r < 0 ? r + SLOT_S : r);
}

static int mark_dirty_if_sealed(struct metrics *m, const char *inst, int64_t day)
{
	sqlite3_stmt *s = mx(m, MX_FRONTIER);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	/* No sentinel value: a day before 1970 is negative, and must not read as "none". */
	bool have = false;
	int64_t frontier = 0;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		frontier = sqlite3_column_int64(s, 0);
		have = true;
	}
	sqlite3_reset(s);
	if (!have || day > frontier)
		return 0; /* not sealed yet: it will be computed when it closes */
	s = mx(m, MX_DIRTY_ADD);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, day);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : buffer_sqlite_error(m->buf, rc, "marking a day");
}

enum amount { AMT_RUN, AMT_SAMPLES, AMT_OFFLINE };

static int slot_add(struct metrics *m, const char *inst, int64_t slot, enum amount what, double v,
		    int64_t ov_from, int64_t ov_to)
{
	sqlite3_stmt *s = mx(m, MX_SLOT_ADD);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, slot);
	sqlite3_bind_double(s, 3, what == AMT_RUN ? v : 0);
	sqlite3_bind_double(s, 4, what == AMT_SAMPLES ? v : 0);
	sqlite3_bind_double(s, 5, what == AMT_OFFLINE ? v : 0);
	int rc = sqlite3_step(s);
	int64_t sealed_to = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	if (rc == SQLITE_ROW)
		rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return buffer_sqlite_error(m->buf, rc, "adding to a slot");
	if (what != AMT_OFFLINE && sealed_to >= slot + SLOT_S) {
		/* The slot's record is out: what arrives now follows in a record of its own. */
		s = mx(m, MX_SLOT_LATE);
		sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, slot);
		sqlite3_bind_int64(s, 3, ov_from);
		sqlite3_bind_int64(s, 4, ov_to);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return buffer_sqlite_error(m->buf, rc, "marking a late slot");
	}
	return mark_dirty_if_sealed(m, inst, time_day_start(slot));
}

/* Spread `amount` evenly over [from_us, to_us] into the slots it covers. */
static int spread(struct metrics *m, const char *inst, enum amount what, double amount,
		  int64_t from_us, int64_t to_us)
{
	if (amount <= 0)
		return 0;
	if (to_us <= from_us) {
		int64_t t = floor_s(from_us);
		return slot_add(m, inst, slot_of(t), what, amount, t, t);
	}
	double total = (double)(to_us - from_us);
	int64_t first = slot_of(floor_s(from_us));
	for (int64_t slot = first; slot * 1000000 < to_us; slot += SLOT_S) {
		int64_t a = slot * 1000000 > from_us ? slot * 1000000 : from_us;
		int64_t b = (slot + SLOT_S) * 1000000 < to_us ? (slot + SLOT_S) * 1000000 : to_us;
		if (b <= a)
			continue;
		int r = slot_add(m, inst, slot, what, amount * (double)(b - a) / total, floor_s(a),
				 -floor_s(-b));
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- readings ---------------------------------------------------------------------- */

static int seal_event(struct metrics *m, int64_t at, const char *inst, const char *type,
		      const char *fmt, ...) PRINTF_LIKE(5, 6);

static int seal_event(struct metrics *m, int64_t at, const char *inst, const char *type,
		      const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	int64_t seq = record_event(m->buf, at, inst, type, detail);
	return seq < 0 ? (int)seq : 0;
}

static int counter_events(struct metrics *m, const char *inst, const char *name,
			  const struct counter_step *step, double value, double last, int64_t at,
			  double unit_s)
{
	int r = 0;
	if (step->flags & COUNTER_GLITCH)
		r = seal_event(m, at, inst, "counter_reset",
			       "%s: glitch: a lone lower reading %.17g was discarded", name, step->glitch_value);
	if (r == 0 && (step->flags & COUNTER_WRAP))
		r = seal_event(m, at, inst, "counter_wrap", "%s: wrapped from %.17g to %.17g", name, last, value);
	if (r == 0 && (step->flags & COUNTER_RESET))
		r = seal_event(m, at, inst, "counter_reset",
			       "%s: reset from %.17g to %.17g, confirmed by the next reading; counted from zero",
			       name, last, value);
	if (r == 0 && (step->flags & COUNTER_CLAMPED))
		r = seal_event(m, at, inst, "counter_clamped",
			       "%s: gain of %.0f s over %.0f s of wall time clamped to %.0f s", name,
			       step->unclamped * unit_s, (double)(step->to_us - step->from_us) / 1e6,
			       step->delta * unit_s);
	return r;
}

int metrics_reading(struct metrics *m, const char *inst, const struct obs_reading *rd)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic || !ic->modbus.present)
		return -EINVAL;
	struct inst_state st;
	int r = state_load(m, inst, &st);
	if (r < 0)
		return r;
	int64_t t_us = rd->at_us, t = t_us / 1000000;
	int64_t interval_us = (int64_t)ic->modbus.interval_s * 1000000;
	int64_t gap_us = 3 * interval_us + 5000000;
	bool run_source = ic->modbus.run_counter.present;

	if (st.poll_us > 0 && t_us <= st.poll_us)
		return 0; /* a reading from the past (clock stepped back): ignore it */

	/* Offline time: both polls failed → the whole interval, one of them → half. */
	if (st.poll_us > 0 && t_us - st.poll_us <= gap_us && (!st.poll_ok || !rd->ok)) {
		double frac = !st.poll_ok && !rd->ok ? 1.0 : 0.5;
		r = spread(m, inst, AMT_OFFLINE, frac * (double)(t_us - st.poll_us) / 1e6, st.poll_us, t_us);
		if (r < 0)
			return r;
	}
	if (rd->ok) {
		if (rd->has_in_use) {
			if (!run_source && st.iu_known && t_us - st.iu_us <= gap_us && (st.iu || rd->in_use)) {
				double frac = st.iu && rd->in_use ? 1.0 : 0.5;
				r = spread(m, inst, AMT_RUN, frac * (double)(t_us - st.iu_us) / 1e6, st.iu_us, t_us);
				if (r < 0)
					return r;
			}
			st.iu_known = true;
			st.iu = rd->in_use;
			st.iu_us = t_us;
		}
		if (rd->run.present && rd->run.scale > 0) {
			double unit_s = rd->run.scale * 3600.0; /* seconds per raw unit */
			double elapsed = st.run.have ? (double)(t_us - st.run.last_us) / 1e6 : 0;
			double last = st.run.last;
			struct counter_step step;
			counter_apply(&st.run, rd->run.value, rd->run.range, t_us,
				      (elapsed + ic->modbus.interval_s) / unit_s, elapsed / unit_s, &step);
			if ((r = counter_events(m, inst, "run_counter", &step, rd->run.value, last, t, unit_s)) < 0)
				return r;
			if (step.delta > 0 && step.to_us - step.from_us > gap_us &&
			    (r = seal_event(m, t, inst, "gap",
					    "run_counter: %.0f s of run time over a %.0f s gap in readings, spread evenly",
					    step.delta * unit_s, (double)(step.to_us - step.from_us) / 1e6)) < 0)
				return r;
			if ((r = spread(m, inst, AMT_RUN, step.delta * unit_s, step.from_us, step.to_us)) < 0)
				return r;
		}
		if (rd->samples.present && rd->samples.scale > 0) {
			double last = st.smp.last;
			struct counter_step step;
			counter_apply(&st.smp, rd->samples.value, rd->samples.range, t_us, -1, -1, &step);
			if ((r = counter_events(m, inst, "samples_counter", &step, rd->samples.value, last, t,
						0)) < 0)
				return r;
			if ((r = spread(m, inst, AMT_SAMPLES, step.delta * rd->samples.scale, step.from_us,
					step.to_us)) < 0)
				return r;
		}
	}
	st.poll_us = t_us;
	st.poll_ok = rd->ok;
	if (t > st.cov)
		st.cov = t;
	return state_save(m, inst, &st);
}

/* ---- sessions ---------------------------------------------------------------------- */

int metrics_session(struct metrics *m, int64_t seq, const char *inst, const struct obs_session *s,
		    bool external)
{
	sqlite3_stmt *q = mx(m, MX_SESSION_PUT);
	sqlite3_bind_int64(q, 1, seq);
	sqlite3_bind_text(q, 2, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, s->start);
	sqlite3_bind_int64(q, 4, s->end);
	if (s->user)
		sqlite3_bind_text(q, 5, s->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, s->org ? s->org : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 7, external);
	if (s->samples >= 0)
		sqlite3_bind_int64(q, 8, s->samples);
	sqlite3_bind_int(q, 9, s->closed_auto);
	sqlite3_bind_int(q, 10, s->manual);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return buffer_sqlite_error(m->buf, rc, "storing a session");
	for (int64_t day = time_day_start(s->start); day < s->end; day = time_next_day(day)) {
		int r = mark_dirty_if_sealed(m, inst, day);
		if (r < 0)
			return r;
	}
	return 0;
}

int metrics_session_repeat(struct metrics *m, const char *inst, const struct obs_session *s)
{
	sqlite3_stmt *q = mx(m, MX_SESSION_SAME);
	sqlite3_bind_text(q, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, s->start);
	sqlite3_bind_int64(q, 3, s->end);
	if (s->user)
		sqlite3_bind_text(q, 4, s->user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return buffer_sqlite_error(m->buf, rc, "looking for the same session");
	struct inst_state st;
	int r = state_load(m, inst, &st);
	if (r < 0)
		return r;
	st.repeats = sat_add(st.repeats, 1);
	r = state_save(m, inst, &st);
	return r < 0 ? r : 1;
}

int64_t metrics_sessions_repeated(struct metrics *m, const char *inst)
{
	struct inst_state st;
	buffer_lock(m->buf);
	int r = state_load(m, inst, &st);
	buffer_unlock(m->buf);
	return r < 0 ? r : st.repeats;
}

/* ---- days -------------------------------------------------------------------------- */

struct span {
	int64_t a, b;
};

static int cmp_span(const void *x, const void *y)
{
	const struct span *p = x, *q = y;
	return p->a < q->a ? -1 : p->a > q->a ? 1 : (p->b < q->b ? -1 : p->b > q->b);
}

/* Length of the union of spans (sorted here). */
static int64_t union_len(struct span *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_span);
	int64_t total = 0, cur_a = 0, cur_b = 0;
	bool open = false;
	for (size_t i = 0; i < n; i++) {
		if (!open || v[i].a > cur_b) {
			if (open)
				total += cur_b - cur_a;
			cur_a = v[i].a;
			cur_b = v[i].b;
			open = true;
		} else if (v[i].b > cur_b) {
			cur_b = v[i].b;
		}
	}
	if (open)
		total += cur_b - cur_a;
	return total;
}

struct pair {
	char *user, *org;
};

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *p = x, *q = y;
	int c = strcmp(p->user, q->user);
	return c ? c : strcmp(p->org, q->org);
}

int metrics_day(struct metrics *m, const char *inst, int64_t day, struct daily_figures *f)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic)
		return -EINVAL;
	int64_t end = time_next_day(day);
	memset(f, 0, sizeof(*f));

	sqlite3_stmt *s = mx(m, MX_DAY_SUMS);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, day);
	sqlite3_bind_int64(s, 3, end);
	int64_t run_sealed = 0, smp_sealed = 0, offline = 0;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		run_sealed = sat_from_double(sqlite3_column_double(s, 0));
		smp_sealed = sat_from_double(sqlite3_column_double(s, 1));
		offline = sat_from_double(sqlite3_column_double(s, 2));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return buffer_sqlite_error(m->buf, rc, "summing a day");

	size_t cap = 64, n = 0, ne = 0, np = 0;
	struct span *all = malloc(cap * sizeof(*all)), *ext = malloc(cap * sizeof(*ext));
	struct pair *pairs = malloc(cap * sizeof(*pairs));
	int64_t session_samples = 0;
	int ret = 0;
	if (!all || !ext || !pairs) {
		ret = -ENOMEM;
		goto out;
	}
	s = mx(m, MX_DAY_SESSIONS);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, day);
	sqlite3_bind_int64(s, 3, end);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t a = sqlite3_column_int64(s, 0), b = sqlite3_column_int64(s, 1);
		bool external = sqlite3_column_int(s, 2);
		if (n == cap) {
			cap *= 2;
			struct span *na = realloc(all, cap * sizeof(*all));
			struct span *ne2 = na ? realloc(ext, cap * sizeof(*ext)) : NULL;
			struct pair *np2 = ne2 ? realloc(pairs, cap * sizeof(*pairs)) : NULL;
			if (na)
				all = na;
			if (ne2)
				ext = ne2;
			if (np2)
				pairs = np2;
			if (!na || !ne2 || !np2) {
				ret = -ENOMEM;
				break;
			}
		}
		struct span clip = { a > day ? a : day, b < end ? b : end };
		all[n++] = clip;
		if (external)
			ext[ne++] = clip;
		if (a >= day) { /* counts and users go to the day a session starts */
			f->sessions = sat_add(f->sessions, 1);
			if (sqlite3_column_type(s, 5) != SQLITE_NULL)
				session_samples = sat_add(session_samples, sqlite3_column_int64(s, 5));
			if (external) {
				f->external_sessions = sat_add(f->external_sessions, 1);
				const char *u = (const char *)sqlite3_column_text(s, 3);
				const char *o = (const char *)sqlite3_column_text(s, 4);
				pairs[np].user = strdup(u ? u : "");
				pairs[np].org = strdup(o ? o : "");
				np++;
			}
		}
	}
	sqlite3_reset(s);
	if (ret == 0 && rc != SQLITE_DONE)
		ret = buffer_sqlite_error(m->buf, rc, "reading a day's sessions");
	if (ret < 0)
		goto out;

	f->service_s = union_len(all, n);
	f->external_s = union_len(ext, ne);
	f->internal_s = f->service_s - f->external_s;
	qsort(pairs, np, sizeof(*pairs), cmp_pair);
	for (size_t i = 0; i < np; i++)
		if (i == 0 || cmp_pair(&pairs[i - 1], &pairs[i]) != 0)
			f->external_users = sat_add(f->external_users, 1);
	bool run_source = ic->modbus.present && (ic->modbus.run_counter.present || ic->modbus.in_use.present);
	f->effective_s = run_source ? run_sealed : f->service_s;
	f->samples = ic->modbus.present && ic->modbus.samples_counter.present ? smp_sealed : session_samples;
	f->unattributed_s = f->effective_s > f->service_s ? f->effective_s - f->service_s : 0;
	f->overclaimed_s = run_source && f->service_s > f->effective_s ? f->service_s - f->effective_s : 0;
	f->offline_s = offline;
	f->sharing_rate = f->effective_s > 0 ? round4((double)f->external_s / (double)f->effective_s) : 0;
out:
	for (size_t i = 0; i < np; i++) {
		free(pairs[i].user);
		free(pairs[i].org);
	}
	free(pairs);
	free(all);
	free(ext);
	return ret;
}

/* ---- sealing ----------------------------------------------------------------------- */

/* Whole units to seal now; the fraction is carried to the next record of this counter.
 * Bounded: what a counter claims past METRICS_SUM_MAX in one slot is not carried (the
 * counter_clamped rules bound run time; a samples counter has no wall-time bound). */
static int64_t take_whole(double amount, double *carry)
{
	double x = amount + *carry;
	if (isnan(x)) {
		*carry = 0;
		return 0;
	}
	if (x < 0) {
		/* A hair below zero after an earlier rounding up is kept; anything else (a
		 * damaged state, -inf) would hold the counter at zero for good. */
		*carry = x > -1 ? x : 0;
		return 0;
	}
	double whole = floor(x + 1e-9);
	if (whole >= (double)METRICS_SUM_MAX) { /* +inf too */
		*carry = 0;
		return METRICS_SUM_MAX;
	}
	int64_t n = (int64_t)whole;
	*carry = x - whole;
	return n;
}

static int seal_slot_part(struct metrics *m, const struct instrument_cfg *ic, struct inst_state *st,
			  int64_t slot, double run, double run_done, double smp, double smp_done,
			  int64_t from, int64_t to, int *sealed)
{
	int64_t n_run = take_whole(run - run_done, &st->run_carry);
	int64_t n_smp = take_whole(smp - smp_done, &st->smp_carry);
	bool smp_source = ic->modbus.samples_counter.present;
	if (n_run > 0 || n_smp > 0) {
		int64_t seq = record_run(m->buf, ic->id, from, to, n_run, smp_source ? n_smp : -1);
		if (seq < 0)
			return (int)seq;
		(*sealed)++;
	}
	sqlite3_stmt *s = mx(m, MX_SLOT_SEALED);
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, slot);
	sqlite3_bind_int64(s, 3, n_run);
	sqlite3_bind_int64(s, 4, n_smp);
	sqlite3_bind_int64(s, 5, to);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : buffer_sqlite_error(m->buf, rc, "sealing a slot");
}

static int seal_slots(struct metrics *m, const struct instrument_cfg *ic, int *sealed)
{
	struct inst_state st;
	int r = state_load(m, ic->id, &st);
	if (r < 0)
		return r;
	/* Collect first: sealing updates the rows being walked. */
	struct due {
		int64_t slot, sealed_to, late_from, late_to;
		double run, run_done, smp, smp_done;
		bool late;
	} *due = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s = mx(m, MX_SLOTS_DUE);
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, st.cov);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct due *nd = realloc(due, cap * sizeof(*due));
			if (!nd) {
				free(due);
				sqlite3_reset(s);
				return -ENOMEM;
			}
			due = nd;
		}
		struct due *d = &due[n++];
		d->slot = sqlite3_column_int64(s, 0);
		d->run = sqlite3_column_double(s, 1);
		d->run_done = sqlite3_column_double(s, 2);
		d->smp = sqlite3_column_double(s, 3);
		d->smp_done = sqlite3_column_double(s, 4);
		d->sealed_to = sqlite3_column_int64(s, 5);
		d->late = sqlite3_column_type(s, 6) != SQLITE_NULL;
		d->late_from = sqlite3_column_int64(s, 6);
		d->late_to = sqlite3_column_int64(s, 7);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(due);
		return buffer_sqlite_error(m->buf, rc, "reading due slots");
	}
	if (n == 0) {
		free(due);
		return 0; /* nothing closed: the state is as it was, no need to write it back */
	}

	for (size_t i = 0; i < n && r == 0; i++) {
		struct due *d = &due[i];
		int64_t from, to;
		if (d->sealed_to >= d->slot + SLOT_S) {
			from = d->late_from;
			to = d->late_to > d->late_from ? d->late_to : d->late_from + 1;
		} else {
			from = d->sealed_to > d->slot ? d->sealed_to : d->slot;
			to = d->slot + SLOT_S;
		}
		r = seal_slot_part(m, ic, &st, d->slot, d->run, d->run_done, d->smp, d->smp_done, from,
				   to < d->slot + SLOT_S ? to : d->slot + SLOT_S, sealed);
	}
	free(due);
	return r < 0 ? r : state_save(m, ic->id, &st);
}

/* The single value of a query on one instrument; false when there is none (NULL). No value
 * stands for "none": any int64_t is a time, before 1970 too. */
static bool query_i64(struct metrics *m, enum mx_stmt id, const char *inst, int64_t *v)
{
	sqlite3_stmt *s = mx(m, id);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	bool have = false;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*v = sqlite3_column_int64(s, 0);
		have = true;
	}
	sqlite3_reset(s);
	return have;
}

static bool same_figures(const char *line, const struct daily_figures *f)
{
	cJSON *o = cJSON_Parse(line);
	if (!o)
		return false;
	bool same = jnum(o, "effective_s") == (double)f->effective_s &&
		    jnum(o, "service_s") == (double)f->service_s &&
		    jnum(o, "external_s") == (double)f->external_s &&
		    jnum(o, "internal_s") == (double)f->internal_s &&
		    jnum(o, "sharing_rate") == round4(f->sharing_rate) &&
		    jnum(o, "sessions") == (double)f->sessions &&
		    jnum(o, "external_sessions") == (double)f->external_sessions &&
		    jnum(o, "samples") == (double)f->samples &&
		    jnum(o, "external_users") == (double)f->external_users &&
		    jnum(o, "unattributed_s") == (double)f->unattributed_s &&
		    jnum(o, "overclaimed_s") == (double)f->overclaimed_s &&
		    jnum(o, "offline_s") == (double)f->offline_s;
	cJSON_Delete(o);
	return same;
}

/* Seal day's figures as revision 1, or as the next revision when they changed. */
static int seal_day(struct metrics *m, const char *inst, int64_t day, int *sealed)
{
	struct daily_figures f;
	int r = metrics_day(m, inst, day, &f);
	if (r < 0)
		return r;
	int revision = 1;
	sqlite3_stmt *s = mx(m, MX_DAILY_GET);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, day);
	if (sqlite3_step(s) == SQLITE_ROW) {
		revision = sqlite3_column_int(s, 0) + 1;
		int64_t prev_seq = sqlite3_column_int64(s, 1);
		sqlite3_reset(s);
		sqlite3_stmt *l = mx(m, MX_RECORD_LINE);
		sqlite3_bind_int64(l, 1, prev_seq);
		bool same = false;
		if (sqlite3_step(l) == SQLITE_ROW)
			same = same_figures((const char *)sqlite3_column_text(l, 0), &f);
		sqlite3_reset(l);
		if (same)
			return 0;
	}
	sqlite3_reset(s);
	char date[DATE_LEN];
	time_date(day, date);
	int64_t seq = record_daily(m->buf, inst, date, revision, &f);
	if (seq < 0)
		return (int)seq;
	(*sealed)++;
	s = mx(m, MX_DAILY_PUT);
	sqlite3_bind_text(s, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, day);
	sqlite3_bind_text(s, 3, date, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 4, revision);
	sqlite3_bind_int64(s, 5, seq);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : buffer_sqlite_error(m->buf, rc, "storing a daily record");
}

#define MAX_DAYS_PER_TICK 400

static int seal_days(struct metrics *m, const struct instrument_cfg *ic, int64_t now, int *sealed)
{
	int64_t grace = m->cfg->platform.present ? m->cfg->platform.upload_interval_s : 60;
	struct inst_state st;
	int r = state_load(m, ic->id, &st);
	if (r < 0)
		return r;

	/* Days already sealed that late data touched. */
	int64_t dirty[64];
	size_t nd = 0;
	sqlite3_stmt *s = mx(m, MX_DIRTY_LIST);
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	while (nd < 64 && sqlite3_step(s) == SQLITE_ROW)
		dirty[nd++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	for (size_t i = 0; i < nd && r == 0; i++) {
		if ((r = seal_day(m, ic->id, dirty[i], sealed)) < 0)
			break;
		s = mx(m, MX_DIRTY_DEL);
		sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, dirty[i]);
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			r = buffer_sqlite_error(m->buf, rc, "clearing a day");
	}
	if (r < 0)
		return r;

	/* Then the days that closed since the last one sealed. */
	/* A frontier before 1970 is negative: it once read as "no frontier", so every tick
	 * started again from the first session and stopped MAX_DAYS_PER_TICK days later. */
	int64_t frontier, day;
	if (query_i64(m, MX_FRONTIER, ic->id, &frontier)) {
		day = time_next_day(frontier);
	} else {
		int64_t a, b;
		bool have_a = query_i64(m, MX_FIRST_SLOT, ic->id, &a);
		bool have_b = query_i64(m, MX_FIRST_SESSION, ic->id, &b);
		if (!have_a && !have_b)
			return 0; /* nothing observed yet */
		day = time_day_start(!have_b || (have_a && a < b) ? a : b);
	}
	for (int k = 0; k < MAX_DAYS_PER_TICK; k++) {
		int64_t end = time_next_day(day);
		if (now < end + grace)
			break;
		/* Wait for the readings that close the day, unless the day is long gone. */
		if (ic->modbus.present && st.cov < end && now < end + 86400)
			break;
		if ((r = seal_day(m, ic->id, day, sealed)) < 0)
			return r;
		day = end;
	}
	return 0;
}

int metrics_tick(struct metrics *m, int64_t now)
{
	int sealed = 0;
	int r = buffer_begin(m->buf);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->cfg->n_instruments && r == 0; i++) {
		const struct instrument_cfg *ic = &m->cfg->instruments[i];
		if (ic->modbus.present)
			r = seal_slots(m, ic, &sealed);
	}
	for (size_t i = 0; i < m->cfg->n_instruments && r == 0; i++)
		r = seal_days(m, &m->cfg->instruments[i], now, &sealed);
	if (r < 0) {
		buffer_rollback(m->buf);
		return r;
	}
	r = buffer_commit(m->buf);
	return r < 0 ? r : sealed;
}

int metrics_stop(struct metrics *m, int64_t now)
{
	int r = metrics_tick(m, now);
	if (r < 0)
		return r;
	int sealed = 0;
	if ((r = buffer_begin(m->buf)) < 0)
		return r;
	for (size_t i = 0; i < m->cfg->n_instruments && r == 0; i++) {
		const struct instrument_cfg *ic = &m->cfg->instruments[i];
		if (!ic->modbus.present)
			continue;
		struct inst_state st;
		if ((r = state_load(m, ic->id, &st)) < 0)
			break;
		int64_t slot = slot_of(now);
		sqlite3_stmt *s = mx(m, MX_SLOT_OPEN);
		sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, slot);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			continue;
		}
		double run = sqlite3_column_double(s, 1), run_done = sqlite3_column_double(s, 2);
		double smp = sqlite3_column_double(s, 3), smp_done = sqlite3_column_double(s, 4);
		int64_t sealed_to = sqlite3_column_int64(s, 5);
		sqlite3_reset(s);
		int64_t from = sealed_to > slot ? sealed_to : slot;
		if (now <= from)
			continue;
		if ((r = seal_slot_part(m, ic, &st, slot, run, run_done, smp, smp_done, from, now, &sealed)) < 0)
			break;
		r = state_save(m, ic->id, &st);
	}
	if (r < 0) {
		buffer_rollback(m->buf);
		return r;
	}
	r = buffer_commit(m->buf);
	return r < 0 ? r : sealed;
}

int metrics_prune(struct metrics *m, int64_t before)
{
	int r = buffer_begin(m->buf);
	if (r < 0)
		return r;
	static const enum mx_stmt order[] = { MX_PRUNE_SESSIONS, MX_PRUNE_SLOTS, MX_PRUNE_DAILY };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		sqlite3_stmt *s = mx(m, order[i]);
		sqlite3_bind_int64(s, 1, before);
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			r = buffer_sqlite_error(m->buf, rc, "pruning metrics");
			buffer_rollback(m->buf);
			return r;
		}
	}
	return buffer_commit(m->buf);
}

double metrics_run_hours_total(struct metrics *m, const char *inst)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic || !ic->modbus.run_counter.present)
		return -1;
	struct inst_state st;
	buffer_lock(m->buf);
	int r = state_load(m, inst, &st);
	buffer_unlock(m->buf);
	if (r < 0 || !st.run.have)
		return -1;
	return st.run.last * ic->modbus.run_counter.scale;
}
