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

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const mx_sql[MX__COUNT] = {
	[MX_STATE_GET] = "SELECT state FROM mx_state WHERE instrument = ?1",
	[MX_STATE_PUT] = "INSERT INTO mx_state(instrument, state) VALUES(?1, ?2)"
			 " ON CONFLICT(instrument) DO UPDATE SET state = excluded.state",
	[MX_STATE_SET] = "UPDATE mx_state SET state = ?2 WHERE instrument = ?1",
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
			    " WHERE instrument = ?1 AND start >= ?4 AND start < ?3 AND end > ?2"
			    " ORDER BY start, end",
	[MX_FRONTIER] = "SELECT MAX(day) FROM mx_daily WHERE instrument = ?1",
	[MX_LONGEST_SESSION] = "SELECT MAX(end - start) FROM mx_sessions WHERE instrument = ?1",
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
	[MX_LAST_SLOT] = "SELECT MAX(slot) FROM mx_slots WHERE instrument = ?1",
	/* Moves when another connection (`record`, `flush` beside the daemon) committed. */
	[MX_DATA_VERSION] = "PRAGMA data_version",
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
	if (rc != STMT_DONE)
		return stmt_error(s, rc, "marking a day");
	struct inst_mem *im = mem_of(m, ic);
	if (im)
		im->dirty = true;
	return 0;
}

void first_seen(struct metrics *m, const struct instrument_cfg *ic, int64_t t)
{
	struct inst_mem *im = mem_of(m, ic);
	if (im && im->first_known && (!im->have_first || t < im->first)) {
		im->have_first = true;
		im->first = t;
	}
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
	first_seen(m, ic, s->start);
	struct inst_mem *im = mem_of(m, ic);
	if (im && im->longest_known && s->end - s->start > im->longest)
		im->longest = s->end - s->start;
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
	bool stored;
	struct store_stmt *s = NULL;
	if ((r = state_read(m, inst, &st, &legacy, &stored)) == 0 &&
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

/* What memory holds of the days is good while this process alone writes the file: when another
 * committed since the last tick (a session recorded, days marked), it is read again. */
static int days_check_others(struct metrics *m)
{
	struct store_stmt *s = mx(m, MX_DATA_VERSION);
	int rc = stmt_step(s);
	int64_t v = rc == STMT_ROW ? stmt_int64(s, 0) : 0;
	stmt_reset(s);
	if (rc != STMT_ROW)
		return stmt_error(s, rc, "reading the file's data version");
	if (!m->dv_known || v != m->data_version)
		for (size_t i = 0; i < m->n_mem; i++)
			m->mem[i].days_known = m->mem[i].longest_known = false;
	m->dv_known = true;
	m->data_version = v;
	return 0;
}

int metrics_tick(struct metrics *m, int64_t now)
{
	int sealed = 0;
	int r = buffer_begin(m->buf);
	if (r < 0)
		return r;
	r = days_check_others(m);
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
	bool stored;
	int r = state_read(m, inst, &st, &legacy, &stored);
	return r == 0 && st.run.have ? st.run.last * ic->modbus.run_counter.scale : -1;
}

double metrics_run_counted(struct metrics *m, const char *inst)
{
	if (buffer_read_begin(m->buf) < 0)
		return -1;
	struct inst_state st;
	int64_t legacy = 0;
	double run = -1;
	bool stored;
	struct store_stmt *s = NULL;
	if (state_read(m, inst, &st, &legacy, &stored) == 0 &&
	    stmt_read(m->buf, "SELECT TOTAL(run) FROM mx_slots WHERE instrument = ?1", &s) == 0) {
		stmt_bind_text(s, 1, inst);
		if (stmt_step(s) == STMT_ROW)
			run = stmt_double(s, 0) + (st.acc ? st.acc_run : 0);
		stmt_done(s);
	}
	buffer_read_end(m->buf);
	return run;
}
