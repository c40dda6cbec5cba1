/* hysteresis.c — a metered instrument (hysteresis.h): in use from power with hysteresis, and
 * the import-energy counter under the counter rules of SPEC §4, both spread over run slots. */
#include "hysteresis.h"
#include "le64.h"
#include "metrics_priv.h"
#include "config.h"
#include "buffer.h"
#include "records.h"
#include "schema.h"
#include "source.h"
#include "stmt.h"

#include <errno.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

/* No lab instrument draws more: a gain of energy beyond this over the wall time since the last
 * reading (plus one interval) is clamped, as run time is to the wall time (SPEC §4). */
#define METER_MAX_KW 2000.0

/* ---- the state's stored form -------------------------------------------------------- */

enum meter_flag {
	MF_KNOWN = 1 << 0, MF_ON = 1 << 1, MF_PEND = 1 << 2, MF_NRG_HAVE = 1 << 3, MF_NRG_PENDING = 1 << 4,
};

void meter_state_to_blob(const struct meter_state *ms, unsigned char out[METER_BLOB_LEN])
{
	const struct hyst_state *h = &ms->hy;
	unsigned char *p = out + 1;
	out[0] = (unsigned char)((h->known ? MF_KNOWN : 0) | (h->on ? MF_ON : 0) | (h->pend ? MF_PEND : 0) |
				 (ms->nrg.have ? MF_NRG_HAVE : 0) | (ms->nrg.pending ? MF_NRG_PENDING : 0));
	le64_put(&p, (uint64_t)h->pend_us);
	le64_put(&p, (uint64_t)h->acc_us);
	le64_put(&p, (uint64_t)h->last_us);
	le64_put_dbl(&p, ms->nrg.last);
	le64_put(&p, (uint64_t)ms->nrg.last_us);
	le64_put_dbl(&p, ms->nrg.pend_value);
	le64_put(&p, (uint64_t)ms->nrg.pend_us);
	le64_put_dbl(&p, ms->nrg_carry);
	le64_put(&p, 0); /* spare */
	le64_put(&p, 0);
}

void meter_state_from_blob(const unsigned char in[METER_BLOB_LEN], struct meter_state *ms)
{
	struct hyst_state *h = &ms->hy;
	const unsigned char *p = in + 1;
	unsigned f = in[0];
	h->known = f & MF_KNOWN;
	h->on = f & MF_ON;
	h->pend = f & MF_PEND;
	ms->nrg.have = f & MF_NRG_HAVE;
	ms->nrg.pending = f & MF_NRG_PENDING;
	h->pend_us = (int64_t)le64_get(&p);
	h->acc_us = (int64_t)le64_get(&p);
	h->last_us = (int64_t)le64_get(&p);
	ms->nrg.last = le64_get_dbl(&p);
	ms->nrg.last_us = (int64_t)le64_get(&p);
	ms->nrg.pend_value = le64_get_dbl(&p);
	ms->nrg.pend_us = (int64_t)le64_get(&p);
	ms->nrg_carry = le64_get_dbl(&p);
}

/* ---- in use from power ---------------------------------------------------------------- */

void hyst_step(struct hyst_state *h, const struct mb_hysteresis *cfg, double power_w, int64_t t_us,
	       int64_t gap_us, int64_t *from_us, int64_t *to_us)
{
	*from_us = *to_us = 0;
	if (!isfinite(power_w) || (h->known && t_us <= h->last_us))
		return; /* no reading, or one from the past (the clock stepped back) */
	if (!h->known) {
		*h = (struct hyst_state){ .known = true };
	} else if (t_us - h->last_us > gap_us) {
		/* Nothing is counted across a gap (offline_s has it), and a stretch that was
		 * waiting for its minimum starts over: we don't know it held meanwhile. */
		h->pend = false;
		h->acc_us = t_us;
	}
	h->last_us = t_us;
	if (!h->on) {
		if (!(power_w > cfg->above_w)) {
			h->pend = false;
			return;
		}
		if (!h->pend) {
			h->pend = true;
			h->pend_us = t_us;
		}
		if (t_us - h->pend_us >= (int64_t)cfg->min_on_s * 1000000) {
			/* Stayed above long enough: in use since the stretch's first reading. */
			h->on = true;
			h->pend = false;
			*from_us = h->pend_us;
			*to_us = h->acc_us = t_us;
		}
		return;
	}
	if (!(power_w < cfg->below_w)) {
		/* At or above below_w: in use goes on, through a dip that did not last. */
		h->pend = false;
		*from_us = h->acc_us;
		*to_us = h->acc_us = t_us;
		return;
	}
	if (!h->pend) {
		/* The first reading below: counted up to here, held from here. */
		*from_us = h->acc_us;
		*to_us = h->acc_us = t_us;
		h->pend = true;
		h->pend_us = t_us;
	}
	if (t_us - h->pend_us >= (int64_t)cfg->min_off_s * 1000000) {
		h->on = false; /* idle since the stretch's first reading */
		h->pend = false;
	}
}

int64_t hyst_pending_since(const struct hyst_state *h, int64_t now_us, int64_t gap_us)
{
	return h->pend && now_us - h->last_us <= gap_us ? h->pend_us : 0;
}

/* ---- the metrics' side ---------------------------------------------------------------- */

static int event(struct metrics *m, int64_t at, const char *inst, const char *type, const char *detail)
{
	int64_t seq = record_event(m->buf, at, inst, type, detail);
	return seq < 0 ? (int)seq : 0;
}

static int energy_events(struct metrics *m, const char *inst, const struct counter_step *step, double value,
			 double last, double scale, int64_t at)
{
	char d[256];
	int r = 0;
	if (step->flags & COUNTER_GLITCH) {
		snprintf(d, sizeof(d), "energy: glitch: a lone lower reading %.17g was discarded", step->glitch_value);
		r = event(m, at, inst, "counter_reset", d);
	}
	if (r == 0 && (step->flags & COUNTER_WRAP)) {
		snprintf(d, sizeof(d), "energy: wrapped from %.17g to %.17g", last, value);
		r = event(m, at, inst, "counter_wrap", d);
	}
	if (r == 0 && (step->flags & COUNTER_RESET)) {
		snprintf(d, sizeof(d), "energy: reset from %.17g to %.17g, confirmed by the next reading; "
			 "counted from zero", last, value);
		r = event(m, at, inst, "counter_reset", d);
	}
	if (r == 0 && (step->flags & COUNTER_CLAMPED)) {
		snprintf(d, sizeof(d), "energy: gain of %.3f kWh over %.0f s of wall time clamped to %.3f kWh "
			 "(%.0f kW at most)", step->unclamped * scale, (double)(step->to_us - step->from_us) / 1e6,
			 step->delta * scale, METER_MAX_KW);
		r = event(m, at, inst, "counter_clamped", d);
	}
	return r;
}

int meter_reading(struct metrics *m, const struct instrument_cfg *ic, struct inst_state *st,
		  const struct obs_reading *rd)
{
	const struct modbus_cfg *mc = &ic->modbus;
	struct meter_state *ms = &st->meter;
	int64_t t_us = rd->at_us, interval_us = (int64_t)mc->interval_s * 1000000;
	int r;
	if (rd->has_power && mc->hyst.present && !mc->run_counter.present) {
		int64_t from, to;
		hyst_step(&ms->hy, &mc->hyst, rd->power_w, t_us, 3 * interval_us + 5000000, &from, &to);
		if (to > from && (r = spread(m, ic, AMT_RUN, (double)(to - from) / 1e6, from, to)) < 0)
			return r;
	}
	if (rd->energy.present && rd->energy.scale > 0) {
		double kwh_per_h = METER_MAX_KW / rd->energy.scale; /* raw units an hour at most */
		double elapsed_h = ms->nrg.have ? (double)(t_us - ms->nrg.last_us) / 3.6e9 : 0;
		double last = ms->nrg.last;
		struct counter_step step;
		counter_apply(&ms->nrg, rd->energy.value, rd->energy.range, t_us,
			      (elapsed_h + (double)mc->interval_s / 3600.0) * kwh_per_h, elapsed_h * kwh_per_h, &step);
		if ((r = energy_events(m, ic->id, &step, rd->energy.value, last, rd->energy.scale, t_us / 1000000)) < 0)
			return r;
		if ((r = spread(m, ic, AMT_ENERGY, step.delta * rd->energy.scale, step.from_us, step.to_us)) < 0)
			return r;
	}
	return 0;
}

/* ---- energy per slot ------------------------------------------------------------------ */

static const char *const meter_steps[] = {
	/* 0 → 1: kWh per instrument and slot; done: what its run records carry so far, taken:
	 * the last part handed to a record (an UPDATE's RETURNING sees the new values only). */
	"CREATE TABLE mx_energy(instrument TEXT NOT NULL, slot INTEGER NOT NULL,"
	"  energy REAL NOT NULL DEFAULT 0, done REAL NOT NULL DEFAULT 0, taken REAL NOT NULL DEFAULT 0,"
	"  PRIMARY KEY(instrument, slot)) WITHOUT ROWID;",
};

const struct store_schema meter_schema = {
	.owner = "meter", .steps = meter_steps, .n = sizeof(meter_steps) / sizeof(meter_steps[0]),
	.legacy_from = 0,
};

enum { ME_ADD, ME_TAKE, ME_PRUNE };
static const char *const meter_sql[] = {
	[ME_ADD] = "INSERT INTO mx_energy(instrument, slot, energy) VALUES(?1, ?2, ?3)"
		   " ON CONFLICT(instrument, slot) DO UPDATE SET energy = energy + excluded.energy",
	[ME_TAKE] = "UPDATE mx_energy SET taken = energy - done, done = energy"
		    " WHERE instrument = ?1 AND slot = ?2 RETURNING taken",
	[ME_PRUNE] = "DELETE FROM mx_energy WHERE slot + 900 < ?1 AND done = energy",
};

void meter_open(struct metrics *m)
{
	bool metered = false;
	for (size_t i = 0; m->cfg && i < m->cfg->n_instruments; i++)
		metered = metered || m->cfg->instruments[i].modbus.energy.present;
	/* Only for a config with a meter, once. A READONLY buffer (report, status) never seals:
	 * without the table there is nothing to do. */
	if (!metered || m->meter_st[0] || buffer_schema(m->buf, &meter_schema) < 0)
		return;
	for (size_t i = 0; i < sizeof(meter_sql) / sizeof(meter_sql[0]); i++) {
		if (stmt_prepare(m->buf, meter_sql[i], &m->meter_st[i]) < 0) {
			meter_close(m);
			return;
		}
	}
}

void meter_close(struct metrics *m)
{
	for (size_t i = 0; i < sizeof(m->meter_st) / sizeof(m->meter_st[0]); i++) {
		stmt_free(m->meter_st[i]);
		m->meter_st[i] = NULL;
	}
}

static struct store_stmt *me(struct metrics *m, int id)
{
	struct store_stmt *s = m->meter_st[id];
	if (s)
		stmt_reset(s);
	return s;
}

int meter_slot_add(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, double kwh)
{
	struct store_stmt *s = me(m, ME_ADD);
	if (!s)
		return -EROFS;
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, slot);
	stmt_bind_double(s, 3, kwh);
	int rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : stmt_error(s, rc, "adding energy to a slot");
}

int meter_slot_take(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, double *kwh)
{
	*kwh = 0;
	struct store_stmt *s = me(m, ME_TAKE);
	if (!s)
		return -EROFS;
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, slot);
	int rc = stmt_step(s);
	if (rc == STMT_ROW) {
		*kwh = stmt_double(s, 0);
		rc = stmt_step(s);
	}
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : stmt_error(s, rc, "sealing a slot's energy");
}

int meter_prune(struct metrics *m, int64_t before)
{
	struct store_stmt *s = me(m, ME_PRUNE);
	if (!s)
		return 0;
	stmt_bind_int64(s, 1, before);
	int rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : stmt_error(s, rc, "pruning energy");
}
