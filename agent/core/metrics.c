/* metrics.c — the figures auditors are given (SPEC §4): counter readings become run time per
 * 15-minute slot with fractions carried (metrics_slots.c), sessions are kept for unions, and
 * closed days become daily records (metrics_days.c). Here: every SQL statement of the module,
 * the per-instrument state kept in memory, readings and sessions. */
#include "metrics.h"
#include "metrics_priv.h"
#include "buffer.h"
#include "config.h"
#include "counter.h"
#include "le64.h"
#include "log.h"
#include "records.h"
#include "schema.h"
#include "source.h"
#include "stmt.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mx_sql[MX__COUNT] = {
	[MX_STATE_GET] = "SELECT state FROM mx_state WHERE instrument = ?1",
	[MX_STATE_PUT] = "INSERT INTO mx_state(instrument, state) VALUES(?1, ?2)"
			 " ON CONFLICT(instrument) DO UPDATE SET state = excluded.state",
	/* Repeats have a row of their own ("<id>/repeats": '/' is not in an id), counted in SQL:
	 * `record` adds to it beside a daemon that holds the state row in memory. */
	[MX_REPEATS_ADD] = "INSERT INTO mx_state(instrument, state) VALUES(?1 || '/repeats', ?2)"
			   " ON CONFLICT(instrument) DO UPDATE SET"
			   " state = MIN(CAST(state AS INTEGER) + excluded.state, 9007199254740991)",
	[MX_REPEATS_GET] = "SELECT CAST(state AS INTEGER) FROM mx_state WHERE instrument = ?1 || '/repeats'",
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
	/* The key is the same session (SPEC §3): equal instrument, start, end and user, so the
	 * one insert is the repeat check too (no row changed: kept already). No user is 0 (a key
	 * holds no NULL; the column has no affinity, so no name reads as 0). */
	[MX_SESSION_PUT] = "INSERT INTO mx_sessions(seq, instrument, start, end, user, org, external, samples,"
			   " closed_auto, manual) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
			   " ON CONFLICT DO NOTHING",
	/* Sessions are at most 31 days long (record, logs), so the scan is bounded. */
	[MX_DAY_SESSIONS] = "SELECT start, end, external, CASE WHEN typeof(user) = 'text' THEN user END, org,"
			    " samples FROM mx_sessions"
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
	[MX_PRUNE_SESSIONS] = "DELETE FROM mx_sessions WHERE end < ?1",
	/* Only slots whose records are out: an open one still waits for its readings. */
	[MX_PRUNE_SLOTS] = "DELETE FROM mx_slots WHERE slot + 900 < ?1 AND sealed_to >= slot + 900 AND late_from IS NULL",
	/* The newest daily of each instrument stays: it is the frontier the next day follows. */
	[MX_PRUNE_DAILY] = "DELETE FROM mx_daily WHERE day < ?1 AND day < (SELECT MAX(day) FROM mx_daily d"
			   " WHERE d.instrument = mx_daily.instrument)",
};

/* ---- bounded arithmetic (SPEC §3: sums never overflow) ------------------------------ */

/* A count or sum in [0, METRICS_SUM_MAX]: a + b saturating, negatives counted as 0. */
int64_t sat_add(int64_t a, int64_t b)
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
int64_t sat_from_double(double x)
{
	if (!(x > 0)) /* NaN, negatives, zero */
		return 0;
	if (x >= (double)METRICS_SUM_MAX)
		return METRICS_SUM_MAX;
	return llround(x);
}

int64_t floor_s(int64_t us)
{
	int64_t q = us / 1000000;
	return us % 1000000 < 0 ? q - 1 : q;
}

int64_t slot_of(int64_t t)
{
	/* Every zone offset in use is a multiple of 15 minutes, so UTC-aligned slots are the
	 * local wall-clock slots too. */
	int64_t r = t % SLOT_S;
	return t - (r < 0 ? r + SLOT_S : r);
}

struct store_stmt *mx(struct metrics *m, enum mx_stmt id)
{
	struct store_stmt *s = m->st[id];
	stmt_reset(s);
	return s;
}

static void metrics_undone(void *arg);

struct metrics *metrics_new(struct buffer *b, const struct config *cfg)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->buf = b;
	m->cfg = cfg;
	if (buffer_schema(b, &metrics_schema) < 0) {
		free(m);
		return NULL;
	}
	/* The store's: they follow the buffer when its file is written back and reopened. */
	for (int i = 0; i < MX__COUNT; i++) {
		if (stmt_prepare(b, mx_sql[i], &m->st[i]) < 0) {
			metrics_free(m);
			return NULL;
		}
	}
	/* A transaction undone takes what memory holds of it along, under the writer. */
	if (buffer_on_undo(b, metrics_undone, m) < 0) {
		metrics_free(m);
		return NULL;
	}
	m->undo = true;
	meter_open(m);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	if (m->undo)
		buffer_undo_remove(m->buf, metrics_undone, m);
	for (int i = 0; i < MX__COUNT; i++)
		stmt_free(m->st[i]);
	meter_close(m);
	free(m->mem);
	free(m);
}

void metrics_set_config(struct metrics *m, const struct config *cfg)
{
	/* No lock: the daemon stops every source before a reload, so nobody is inside a
	 * transaction that uses m meanwhile. */
	m->cfg = cfg;
	/* Instruments may come, go or move: read them again from the file, which holds it all. */
	free(m->mem);
	m->mem = NULL;
	m->n_mem = 0;
	meter_open(m); /* a meter may have come with the new config */
}

void metrics_forget(struct metrics *m)
{
	for (size_t i = 0; i < m->n_mem; i++)
		m->mem[i] = (struct inst_mem){ 0 };
}

/* The store's undo hook: called under the writer when a transaction is undone. */
static void metrics_undone(void *arg)
{
	metrics_forget(arg);
}

/* ---- per-instrument state ---------------------------------------------------------- */

/* The instrument's slot in memory (cfg->instruments is an array, ic points into it). */
static struct inst_mem *mem_of(struct metrics *m, const struct instrument_cfg *ic)
{
	size_t i = (size_t)(ic - m->cfg->instruments);
	if (!m->mem) {
		if (!(m->mem = calloc(m->cfg->n_instruments ? m->cfg->n_instruments : 1, sizeof(*m->mem))))
			return NULL;
		m->n_mem = m->cfg->n_instruments;
	}
	return i < m->n_mem ? &m->mem[i] : NULL;
}

/* The stored form: a version byte, a byte of flags, then 13 little-endian 8-byte values
 * (integers, and doubles by their bits). No parsing per reading, the same on every host.
 * Version 2 appends a meter's state (hysteresis.c); version 1 is read as a meter never seen. */
#define STATE_BLOB_V1 1
#define STATE_BLOB_V1_LEN (2 + 13 * 8)
#define STATE_BLOB_V2 2
#define STATE_BLOB_LEN (STATE_BLOB_V1_LEN + METER_BLOB_LEN)

enum state_flag {
	SF_RUN_HAVE = 1 << 0, SF_RUN_PENDING = 1 << 1, SF_SMP_HAVE = 1 << 2, SF_SMP_PENDING = 1 << 3,
	SF_IU_KNOWN = 1 << 4, SF_IU = 1 << 5, SF_POLL_OK = 1 << 6,
};

static void state_to_blob(const struct inst_state *st, unsigned char out[STATE_BLOB_LEN])
{
	unsigned char *p = out + 2;
	out[0] = STATE_BLOB_V2;
	out[1] = (unsigned char)((st->run.have ? SF_RUN_HAVE : 0) | (st->run.pending ? SF_RUN_PENDING : 0) |
				 (st->smp.have ? SF_SMP_HAVE : 0) | (st->smp.pending ? SF_SMP_PENDING : 0) |
				 (st->iu_known ? SF_IU_KNOWN : 0) | (st->iu ? SF_IU : 0) |
				 (st->poll_ok ? SF_POLL_OK : 0));
	const struct counter_state *c[2] = { &st->run, &st->smp };
	for (int i = 0; i < 2; i++) {
		le64_put_dbl(&p, c[i]->last);
		le64_put_i64(&p, c[i]->last_us);
		le64_put_dbl(&p, c[i]->pend_value);
		le64_put_i64(&p, c[i]->pend_us);
	}
	le64_put_i64(&p, st->iu_us);
	le64_put_i64(&p, st->poll_us);
	le64_put_i64(&p, st->cov);
	le64_put_dbl(&p, st->run_carry);
	le64_put_dbl(&p, st->smp_carry);
	meter_state_to_blob(&st->meter, p);
}

static int state_from_blob(const unsigned char *in, size_t len, struct inst_state *st)
{
	if (!(len == STATE_BLOB_V1_LEN && in[0] == STATE_BLOB_V1) &&
	    !(len == STATE_BLOB_LEN && in[0] == STATE_BLOB_V2))
		return -EBADMSG;
	const unsigned char *p = in + 2;
	unsigned f = in[1];
	st->run.have = f & SF_RUN_HAVE;
	st->run.pending = f & SF_RUN_PENDING;
	st->smp.have = f & SF_SMP_HAVE;
	st->smp.pending = f & SF_SMP_PENDING;
	st->iu_known = f & SF_IU_KNOWN;
	st->iu = f & SF_IU;
	st->poll_ok = f & SF_POLL_OK;
	struct counter_state *c[2] = { &st->run, &st->smp };
	for (int i = 0; i < 2; i++) {
		c[i]->last = le64_get_dbl(&p);
		c[i]->last_us = le64_get_i64(&p);
		c[i]->pend_value = le64_get_dbl(&p);
		c[i]->pend_us = le64_get_i64(&p);
	}
	st->iu_us = le64_get_i64(&p);
	st->poll_us = le64_get_i64(&p);
	st->cov = le64_get_i64(&p);
	st->run_carry = le64_get_dbl(&p);
	st->smp_carry = le64_get_dbl(&p);
	if (in[0] == STATE_BLOB_V2)
		meter_state_from_blob(p, &st->meter);
	return 0;
}

/* Buffers written before the state was kept in memory hold it as JSON text; it is read once
 * and written back as a blob at the next save. */
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

static int state_from_json(const char *text, struct inst_state *st, int64_t *repeats)
{
	cJSON *o = text ? cJSON_Parse(text) : NULL;
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
	*repeats = jint(o, "repeats");
	cJSON_Delete(o);
	return 0;
}

/* The stored state of inst (zeros when none), and the repeats an old JSON row still holds:
 * inside a transaction as it stands in it, outside one as committed (on a reader). */
static int state_read(struct metrics *m, const char *inst, struct inst_state *st, int64_t *legacy_repeats)
{
	memset(st, 0, sizeof(*st));
	*legacy_repeats = 0;
	struct store_stmt *s;
	int r = stmt_read(m->buf, mx_sql[MX_STATE_GET], &s);
	if (r < 0)
		return r;
	stmt_bind_text(s, 1, inst);
	int rc = stmt_step(s);
	if (rc == STMT_DONE) {
		stmt_done(s);
		return 0;
	}
	if (rc != STMT_ROW) {
		r = stmt_error(s, rc, "reading metrics state");
		stmt_done(s);
		return r;
	}
	r = stmt_is_blob(s, 0) ?
		state_from_blob(stmt_blob(s, 0), stmt_bytes(s, 0), st) :
		state_from_json(stmt_text(s, 0), st, legacy_repeats);
	stmt_done(s);
	return r;
}

int state_get(struct metrics *m, const struct instrument_cfg *ic, struct inst_state **st)
{
	struct inst_mem *im = mem_of(m, ic);
	if (!im)
		return -ENOMEM;
	if (!im->loaded) {
		int r = state_read(m, ic->id, &im->st, &im->legacy_repeats);
		if (r < 0)
			return r;
		im->loaded = true;
	}
	*st = &im->st;
	return 0;
}

int state_save(struct metrics *m, const struct instrument_cfg *ic)
{
	struct inst_mem *im = mem_of(m, ic);
	if (!im || !im->loaded)
		return -EINVAL;
	unsigned char blob[STATE_BLOB_LEN];
	state_to_blob(&im->st, blob);
	struct store_stmt *s = mx(m, MX_STATE_PUT);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_blob(s, 2, blob, sizeof(blob));
	int rc = stmt_step(s);
	stmt_reset(s);
	if (rc != STMT_DONE)
		return stmt_error(s, rc, "writing metrics state");
	if (im->legacy_repeats > 0) {
		s = mx(m, MX_REPEATS_ADD);
		stmt_bind_text(s, 1, ic->id);
		stmt_bind_int64(s, 2, im->legacy_repeats);
		rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			return stmt_error(s, rc, "moving repeats");
		/* Rolled back with the rest: the cache is forgotten then, and read again. */
		im->legacy_repeats = 0;
	}
	return 0;
}

int frontier_get(struct metrics *m, const struct instrument_cfg *ic, bool *have, int64_t *day)
{
	struct inst_mem *im = mem_of(m, ic);
	if (!im)
		return -ENOMEM;
	if (!im->frontier_known) {
		struct store_stmt *s = mx(m, MX_FRONTIER);
		stmt_bind_text(s, 1, ic->id);
		int rc = stmt_step(s);
		/* No sentinel value: a day before 1970 is negative, and must not read as "none". */
		im->have_frontier = rc == STMT_ROW && !stmt_is_null(s, 0);
		im->frontier = im->have_frontier ? stmt_int64(s, 0) : 0;
		stmt_reset(s);
		if (rc != STMT_ROW)
			return stmt_error(s, rc, "reading the newest daily record");
		im->frontier_known = true;
	}
	*have = im->have_frontier;
	*day = im->frontier;
	return 0;
}

void frontier_set(struct metrics *m, const struct instrument_cfg *ic, int64_t day)
{
	struct inst_mem *im = mem_of(m, ic);
	if (im && im->frontier_known && (!im->have_frontier || day > im->frontier)) {
		im->have_frontier = true;
		im->frontier = day;
	}
}

int mark_dirty_if_sealed(struct metrics *m, const struct instrument_cfg *ic, int64_t day)
{
	bool have;
	int64_t frontier;
	int r = frontier_get(m, ic, &have, &frontier);
	if (r < 0)
		return r;
	if (!have || day > frontier)
		return 0; /* not sealed yet: it will be computed when it closes */
	struct store_stmt *s = mx(m, MX_DIRTY_ADD);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, day);
	int rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : stmt_error(s, rc, "marking a day");
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
	struct inst_state *st;
	int r = state_get(m, ic, &st);
	if (r < 0)
		return r;
	int64_t t_us = rd->at_us, t = t_us / 1000000;
	int64_t interval_us = (int64_t)ic->modbus.interval_s * 1000000;
	int64_t gap_us = 3 * interval_us + 5000000;
	bool run_source = ic->modbus.run_counter.present;

	if (st->poll_us > 0 && t_us <= st->poll_us)
		return 0; /* a reading from the past (clock stepped back): ignore it */

	/* Offline time: both polls failed → the whole interval, one of them → half. */
	if (st->poll_us > 0 && t_us - st->poll_us <= gap_us && (!st->poll_ok || !rd->ok)) {
		double frac = !st->poll_ok && !rd->ok ? 1.0 : 0.5;
		r = spread(m, ic, AMT_OFFLINE, frac * (double)(t_us - st->poll_us) / 1e6, st->poll_us, t_us);
		if (r < 0)
			return r;
	}
	if (rd->ok) {
		if (rd->has_in_use) {
			if (!run_source && st->iu_known && t_us - st->iu_us <= gap_us && (st->iu || rd->in_use)) {
				double frac = st->iu && rd->in_use ? 1.0 : 0.5;
				r = spread(m, ic, AMT_RUN, frac * (double)(t_us - st->iu_us) / 1e6, st->iu_us, t_us);
				if (r < 0)
					return r;
			}
			st->iu_known = true;
			st->iu = rd->in_use;
			st->iu_us = t_us;
		}
		if (rd->run.present && rd->run.scale > 0) {
			double unit_s = rd->run.scale * 3600.0; /* seconds per raw unit */
			double elapsed = st->run.have ? (double)(t_us - st->run.last_us) / 1e6 : 0;
			double last = st->run.last;
			struct counter_step step;
			counter_apply(&st->run, rd->run.value, rd->run.range, t_us,
				      (elapsed + ic->modbus.interval_s) / unit_s, elapsed / unit_s, &step);
			if ((r = counter_events(m, inst, "run_counter", &step, rd->run.value, last, t, unit_s)) < 0)
				return r;
			if (step.delta > 0 && step.to_us - step.from_us > gap_us &&
			    (r = seal_event(m, t, inst, "gap",
					    "run_counter: %.0f s of run time over a %.0f s gap in readings, spread evenly",
					    step.delta * unit_s, (double)(step.to_us - step.from_us) / 1e6)) < 0)
				return r;
			if ((r = spread(m, ic, AMT_RUN, step.delta * unit_s, step.from_us, step.to_us)) < 0)
				return r;
		}
		if (rd->samples.present && rd->samples.scale > 0) {
			double last = st->smp.last;
			struct counter_step step;
			counter_apply(&st->smp, rd->samples.value, rd->samples.range, t_us, -1, -1, &step);
			if ((r = counter_events(m, inst, "samples_counter", &step, rd->samples.value, last, t,
						0)) < 0)
				return r;
			if ((r = spread(m, ic, AMT_SAMPLES, step.delta * rd->samples.scale, step.from_us,
					step.to_us)) < 0)
				return r;
		}
		if ((r = meter_reading(m, ic, st, rd)) < 0)
			return r;
	}
	st->poll_us = t_us;
	st->poll_ok = rd->ok;
	/* A meter's pending stretch may still count run time from its start: hold the slots. */
	int64_t held = hyst_pending_since(&st->meter.hy, t_us, gap_us);
	if (held > 0 && floor_s(held) < t)
		t = floor_s(held);
	if (t > st->cov)
		st->cov = t;
	return state_save(m, ic);
}

/* ---- sessions ---------------------------------------------------------------------- */

int metrics_session(struct metrics *m, int64_t seq, const char *inst, const struct obs_session *s,
		    bool external)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic)
		return -EINVAL;
	struct store_stmt *q = mx(m, MX_SESSION_PUT);
	stmt_bind_int64(q, 1, seq);
	stmt_bind_text(q, 2, inst);
	stmt_bind_int64(q, 3, s->start);
	stmt_bind_int64(q, 4, s->end);
	if (s->user)
		stmt_bind_text(q, 5, s->user);
	else
		stmt_bind_int64(q, 5, 0);
	stmt_bind_text(q, 6, s->org ? s->org : "");
	stmt_bind_int64(q, 7, external);
	if (s->samples >= 0)
		stmt_bind_int64(q, 8, s->samples);
	stmt_bind_int64(q, 9, s->closed_auto);
	stmt_bind_int64(q, 10, s->manual);
	int rc = stmt_step(q);
	int64_t stored = rc == STMT_DONE ? stmt_changes(q) : 0;
	stmt_reset(q);
	if (rc != STMT_DONE)
		return stmt_error(q, rc, "storing a session");
	if (stored == 0) { /* the same session again: counted, sealed once */
		q = mx(m, MX_REPEATS_ADD);
		stmt_bind_text(q, 1, inst);
		stmt_bind_int64(q, 2, 1);
		rc = stmt_step(q);
		stmt_reset(q);
		return rc == STMT_DONE ? 1 : stmt_error(q, rc, "counting a repeat");
	}
	for (int64_t day = time_day_start(s->start); day < s->end; day = time_next_day(day)) {
		if (m->batch && m->marked_ic == ic && m->marked_day == day)
			continue; /* marked by an earlier session of the batch */
		int r = mark_dirty_if_sealed(m, ic, day);
		if (r < 0)
			return r;
		m->marked_ic = ic;
		m->marked_day = day;
	}
	return 0;
}

void metrics_batch(struct metrics *m, bool on)
{
	m->batch = on;
	m->marked_ic = NULL;
}

int64_t metrics_sessions_repeated(struct metrics *m, const char *inst)
{
	/* From the file, not from memory: `record` counts repeats beside a running daemon. One
	 * snapshot (a reader's, or the caller's transaction) for both rows. */
	int r = buffer_read_begin(m->buf);
	if (r < 0)
		return r;
	struct inst_state st;
	int64_t legacy = 0, n = 0;
	struct store_stmt *s = NULL;
	if ((r = state_read(m, inst, &st, &legacy)) == 0 &&
	    (r = stmt_read(m->buf, mx_sql[MX_REPEATS_GET], &s)) == 0) {
		stmt_bind_text(s, 1, inst);
		int rc = stmt_step(s);
		if (rc == STMT_ROW)
			n = stmt_int64(s, 0);
		else if (rc != STMT_DONE)
			r = stmt_error(s, rc, "reading repeats");
		stmt_done(s);
	}
	buffer_read_end(m->buf);
	return r < 0 ? r : sat_add(n, legacy);
}

/* ---- the tick ---------------------------------------------------------------------- */

/* Commits, or rolls back and forgets what memory holds of the undone transaction. */
static int finish(struct metrics *m, int r)
{
	if (r < 0) {
		metrics_forget(m);
		buffer_rollback(m->buf);
		return r;
	}
	if ((r = buffer_commit(m->buf)) < 0)
		metrics_forget(m);
	return r;
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
	int64_t grace = m->cfg->platform.present ? m->cfg->platform.upload_interval_s : 60;
	/* A wall clock set back by more than the grace must not hold revisions back. */
	bool redo = now >= m->redo_after || now + grace < m->redo_after;
	m->redone = 0;
	for (size_t i = 0; i < m->cfg->n_instruments && r == 0; i++)
		r = seal_days(m, &m->cfg->instruments[i], now, redo, &sealed);
	r = finish(m, r);
	if (r >= 0 && redo && m->redone > 0)
		m->redo_after = now + grace;
	return r < 0 ? r : sealed;
}

int metrics_stop(struct metrics *m, int64_t now)
{
	m->redo_after = 0; /* a clean stop leaves no revision waiting */
	int r = metrics_tick(m, now);
	if (r < 0)
		return r;
	int sealed = 0;
	if ((r = buffer_begin(m->buf)) < 0)
		return r;
	for (size_t i = 0; i < m->cfg->n_instruments && r == 0; i++) {
		const struct instrument_cfg *ic = &m->cfg->instruments[i];
		if (ic->modbus.present)
			r = seal_open_slot(m, ic, now, &sealed);
	}
	r = finish(m, r);
	return r < 0 ? r : sealed;
}

int metrics_prune(struct metrics *m, int64_t before)
{
	int r = buffer_begin(m->buf);
	if (r < 0)
		return r;
	static const enum mx_stmt order[] = { MX_PRUNE_SESSIONS, MX_PRUNE_SLOTS, MX_PRUNE_DAILY };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && r == 0; i++) {
		struct store_stmt *s = mx(m, order[i]);
		stmt_bind_int64(s, 1, before);
		int rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			r = stmt_error(s, rc, "pruning metrics");
	}
	if (r == 0)
		r = meter_prune(m, before);
	/* The newest daily of each instrument stays, so the frontiers held in memory do too. */
	return finish(m, r);
}

double metrics_run_hours_total(struct metrics *m, const char *inst)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic || !ic->modbus.run_counter.present)
		return -1;
	/* As committed (memory is the same outside a transaction), without touching memory
	 * another thread's transaction may be changing. */
	struct inst_state st;
	int64_t legacy = 0;
	int r = state_read(m, inst, &st, &legacy);
	return r == 0 && st.run.have ? st.run.last * ic->modbus.run_counter.scale : -1;
}
