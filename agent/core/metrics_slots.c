/* metrics_slots.c — run time, samples and offline time per 15-minute slot: amounts spread
 * over the slots they cover, and `run` records sealed for closed slots with fractions carried
 * (SPEC §4); what arrives for a slot already out follows in a record of its own. */
#include "metrics_priv.h"
#include "buffer.h"
#include "config.h"
#include "records.h"
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* One upsert of a slot's row; *sealed_to: how far its record is out. */
static int slot_write(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, double run,
		      double smp, double off, int64_t *sealed_to)
{
	struct store_stmt *s = mx(m, MX_SLOT_ADD);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, slot);
	stmt_bind_double(s, 3, run);
	stmt_bind_double(s, 4, smp);
	stmt_bind_double(s, 5, off);
	int rc = stmt_step(s);
	*sealed_to = rc == STMT_ROW ? stmt_int64(s, 0) : 0;
	if (rc == STMT_ROW)
		rc = stmt_step(s);
	stmt_reset(s);
	if (rc != STMT_DONE)
		return stmt_error(s, rc, "adding to a slot");
	struct inst_mem *im = mem_of(m, ic);
	first_seen(m, ic, slot);
	if (im) {
		if (slot > im->sql_hi)
			im->sql_hi = slot;
		if (*sealed_to < slot + SLOT_S && slot + SLOT_S < im->recheck_cov)
			im->recheck_cov = slot + SLOT_S;
	}
	return 0;
}

int acc_flush(struct metrics *m, const struct instrument_cfg *ic, struct inst_state *st)
{
	if (!st->acc)
		return 0;
	int64_t sealed_to;
	int r = 0;
	if (st->acc_run != 0 || st->acc_smp != 0 || st->acc_off != 0)
		r = slot_write(m, ic, st->acc_slot, st->acc_run, st->acc_smp, st->acc_off, &sealed_to);
	if (r == 0) {
		st->acc = false;
		st->acc_run = st->acc_smp = st->acc_off = 0;
	}
	return r;
}

static int slot_add(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, enum amount what, double v,
		    int64_t ov_from, int64_t ov_to)
{
	struct inst_state *st;
	int rc = state_get(m, ic, &st);
	if (rc < 0)
		return rc;
	if (st->acc && st->acc_slot == slot) {
		/* The open slot: in memory, saved with the state in this transaction (a meter's
		 * energy has a table of its own; the slot's row is there already). */
		if (what == AMT_ENERGY)
			rc = meter_slot_add(m, ic, slot, v);
		else
			*(what == AMT_RUN ? &st->acc_run : what == AMT_SAMPLES ? &st->acc_smp : &st->acc_off) += v;
		return rc < 0 ? rc : mark_dirty_if_sealed(m, ic, time_day_start(slot));
	}
	if ((rc = acc_flush(m, ic, st)) < 0)
		return rc;
	int64_t sealed_to;
	if ((rc = slot_write(m, ic, slot, what == AMT_RUN ? v : 0, what == AMT_SAMPLES ? v : 0,
			     what == AMT_OFFLINE ? v : 0, &sealed_to)) < 0)
		return rc;
	if (what == AMT_ENERGY && (rc = meter_slot_add(m, ic, slot, v)) < 0)
		return rc;
	if (sealed_to < slot + SLOT_S) {
		/* Its row exists and its record is not out: what follows for it is held in memory. */
		st->acc = true;
		st->acc_slot = slot;
	}
	if (what != AMT_OFFLINE && sealed_to >= slot + SLOT_S) {
		/* The slot's record is out: what arrives now follows in a record of its own. */
		struct store_stmt *s = mx(m, MX_SLOT_LATE);
		stmt_bind_text(s, 1, ic->id);
		stmt_bind_int64(s, 2, slot);
		stmt_bind_int64(s, 3, ov_from);
		stmt_bind_int64(s, 4, ov_to);
		rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			return stmt_error(s, rc, "marking a late slot");
		struct inst_mem *im = mem_of(m, ic);
		if (im)
			im->late = true;
	}
	return mark_dirty_if_sealed(m, ic, time_day_start(slot));
}

int spread(struct metrics *m, const struct instrument_cfg *ic, enum amount what, double amount,
		  int64_t from_us, int64_t to_us)
{
	if (amount <= 0)
		return 0;
	if (to_us <= from_us) {
		int64_t t = floor_s(from_us);
		return slot_add(m, ic, slot_of(t), what, amount, t, t);
	}
	double total = (double)(to_us - from_us);
	int64_t first = slot_of(floor_s(from_us));
	for (int64_t slot = first; slot * 1000000 < to_us; slot += SLOT_S) {
		int64_t a = slot * 1000000 > from_us ? slot * 1000000 : from_us;
		int64_t b = (slot + SLOT_S) * 1000000 < to_us ? (slot + SLOT_S) * 1000000 : to_us;
		if (b <= a)
			continue;
		int r = slot_add(m, ic, slot, what, amount * (double)(b - a) / total, floor_s(a),
				 -floor_s(-b));
		if (r < 0)
			return r;
	}
	return 0;
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
	bool smp_source = ic->modbus.samples_counter.present, meter = ic->modbus.energy.present;
	/* A meter's energy in whole Wh, the rest carried like run time's fractions. */
	double kwh = 0;
	int r = meter ? meter_slot_take(m, ic, slot, &kwh) : 0;
	if (r < 0)
		return r;
	int64_t n_wh = take_whole(kwh * 1000.0, &st->meter.nrg_carry);
	if (n_run > 0 || n_smp > 0 || (meter && n_wh > 0)) {
		int64_t seq = record_run(m->buf, ic->id, from, to, n_run, smp_source ? n_smp : -1,
					 meter ? (double)n_wh / 1000.0 : -1);
		if (seq < 0)
			return (int)seq;
		(*sealed)++;
	}
	struct store_stmt *s = mx(m, MX_SLOT_SEALED);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, slot);
	stmt_bind_int64(s, 3, n_run);
	stmt_bind_int64(s, 4, n_smp);
	stmt_bind_int64(s, 5, to);
	int rc = stmt_step(s);
	stmt_reset(s);
	return rc == STMT_DONE ? 0 : stmt_error(s, rc, "sealing a slot");
}

int seal_slots(struct metrics *m, const struct instrument_cfg *ic, int *sealed)
{
	struct inst_state *st;
	int r = state_get(m, ic, &st);
	if (r < 0)
		return r;
	struct inst_mem *im = mem_of(m, ic);
	if (!im)
		return -ENOMEM;
	if (!im->slots_known) {
		/* The newest row, once after the state was read: rows past the coverage (a meter's
		 * pending stretch) become due later. */
		struct store_stmt *q = mx(m, MX_LAST_SLOT);
		stmt_bind_text(q, 1, ic->id);
		int qrc = stmt_step(q);
		im->sql_hi = qrc == STMT_ROW && !stmt_is_null(q, 0) ? stmt_int64(q, 0) : INT64_MIN / 2;
		stmt_reset(q);
		if (qrc != STMT_ROW)
			return stmt_error(q, qrc, "reading the newest slot");
		im->slots_known = true;
		im->late = true; /* unknown: look */
	}
	bool acc_due = st->acc && st->acc_slot + SLOT_S <= st->cov;
	if (!acc_due && !im->late && st->cov < im->recheck_cov)
		return 0; /* nothing can be due: no query */
	/* The open slot's amounts go to its row before it is sealed (the state is saved below:
	 * a flushed slot is due, so something is sealed). */
	if (acc_due && (r = acc_flush(m, ic, st)) < 0)
		return r;
	/* Collect first: sealing updates the rows being walked. */
	struct due {
		int64_t slot, sealed_to, late_from, late_to;
		double run, run_done, smp, smp_done;
		bool late;
	} *due = NULL;
	size_t n = 0, cap = 0;
	struct store_stmt *s = mx(m, MX_SLOTS_DUE);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, st->cov);
	int rc;
	while ((rc = stmt_step(s)) == STMT_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct due *nd = realloc(due, cap * sizeof(*due));
			if (!nd) {
				free(due);
				stmt_reset(s);
				return -ENOMEM;
			}
			due = nd;
		}
		struct due *d = &due[n++];
		d->slot = stmt_int64(s, 0);
		d->run = stmt_double(s, 1);
		d->run_done = stmt_double(s, 2);
		d->smp = stmt_double(s, 3);
		d->smp_done = stmt_double(s, 4);
		d->sealed_to = stmt_int64(s, 5);
		d->late = !stmt_is_null(s, 6);
		d->late_from = stmt_int64(s, 6);
		d->late_to = stmt_int64(s, 7);
	}
	stmt_reset(s);
	if (rc != STMT_DONE) {
		free(due);
		return stmt_error(s, rc, "reading due slots");
	}
	/* Rows left unsealed are not due: slot + SLOT_S > cov, so none is before cov's slot ends. */
	im->late = false;
	im->recheck_cov = im->sql_hi + SLOT_S > st->cov ? slot_of(st->cov) + SLOT_S : INT64_MAX;
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
		r = seal_slot_part(m, ic, st, d->slot, d->run, d->run_done, d->smp, d->smp_done, from,
				   to < d->slot + SLOT_S ? to : d->slot + SLOT_S, sealed);
	}
	free(due);
	return r < 0 ? r : state_save(m, ic);
}

int seal_open_slot(struct metrics *m, const struct instrument_cfg *ic, int64_t now, int *sealed)
{
	struct inst_state *st;
	int r = state_get(m, ic, &st);
	if (r < 0)
		return r;
	int64_t slot = slot_of(now);
	if ((r = acc_flush(m, ic, st)) < 0)
		return r;
	struct store_stmt *s = mx(m, MX_SLOT_OPEN);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_int64(s, 2, slot);
	if (stmt_step(s) != STMT_ROW) {
		stmt_reset(s);
		return state_save(m, ic);
	}
	double run = stmt_double(s, 1), run_done = stmt_double(s, 2);
	double smp = stmt_double(s, 3), smp_done = stmt_double(s, 4);
	int64_t sealed_to = stmt_int64(s, 5);
	stmt_reset(s);
	int64_t from = sealed_to > slot ? sealed_to : slot;
	if (now <= from)
		return state_save(m, ic); /* what was held is in its row now */
	if ((r = seal_slot_part(m, ic, st, slot, run, run_done, smp, smp_done, from, now, sealed)) < 0)
		return r;
	return state_save(m, ic);
}
