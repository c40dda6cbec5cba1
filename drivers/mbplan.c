/* mbplan.c — an instrument's points as few requests, and the replies checked by hand: a value
 * only ever comes from the reply to its own request (unit, function, byte count, length). */
#include "mbplan.h"
#include "mbdecode.h"

#include <errno.h>
#include <modbus/modbus.h> /* not <modbus.h>: that would find drivers/modbus.h */
#include <stdio.h>
#include <string.h>

static const struct mb_point *slot_point(const struct modbus_cfg *m, int slot)
{
	switch (slot) {
	case MB_SLOT_RUN: return &m->run_counter;
	case MB_SLOT_SAMPLES: return &m->samples_counter;
	case MB_SLOT_IN_USE: return &m->in_use;
	case MB_SLOT_POWER: return &m->power;
	case MB_SLOT_ENERGY: return &m->energy;
	case MB_SLOT_VOLTAGE: return &m->voltage;
	case MB_SLOT_FREQUENCY: return &m->frequency;
	}
	return NULL;
}

static void slot_value(struct mb_values *v, int slot, double **raw, bool **has)
{
	switch (slot) {
	case MB_SLOT_RUN: *raw = &v->run_raw; *has = &v->has_run; return;
	case MB_SLOT_SAMPLES: *raw = &v->samples_raw; *has = &v->has_samples; return;
	case MB_SLOT_IN_USE: *raw = &v->in_use_raw; *has = &v->has_in_use; return;
	case MB_SLOT_POWER: *raw = &v->power_raw; *has = &v->has_power; return;
	case MB_SLOT_ENERGY: *raw = &v->energy_raw; *has = &v->has_energy; return;
	case MB_SLOT_VOLTAGE: *raw = &v->voltage_raw; *has = &v->has_voltage; return;
	case MB_SLOT_FREQUENCY: *raw = &v->frequency_raw; *has = &v->has_frequency; return;
	}
	*raw = NULL;
	*has = NULL;
}

static bool is_bits(enum mb_table t)
{
	return t == MB_TABLE_COIL || t == MB_TABLE_DISCRETE;
}

void mb_plan_make(const struct modbus_cfg *m, bool exact, bool extras, struct mb_plan *pl)
{
	const struct mb_point *pts[MB_SLOTS];
	int slot_of[MB_SLOTS], n = 0;
	for (int s = 0; s < MB_SLOTS; s++) {
		if (!extras && (s == MB_SLOT_VOLTAGE || s == MB_SLOT_FREQUENCY))
			continue;
		const struct mb_point *p = slot_point(m, s);
		if (p && p->present) {
			/* by table, then address: a group is a run of neighbours */
			int k = n++;
			while (k > 0 && (pts[k - 1]->table > p->table ||
					 (pts[k - 1]->table == p->table && pts[k - 1]->address > p->address))) {
				pts[k] = pts[k - 1];
				slot_of[k] = slot_of[k - 1];
				k--;
			}
			pts[k] = p;
			slot_of[k] = s;
		}
	}
	pl->n_req = 0;
	for (int i = 0; i < n; i++) {
		const struct mb_point *p = pts[i];
		int mult = is_bits(p->table) ? 16 : 1;
		int gap = exact ? 0 : MB_COALESCE_GAP * mult;
		int lo = p->address, hi = p->address + mb_type_width(p->type) - 1;
		struct mb_req *rq = pl->n_req ? &pl->req[pl->n_req - 1] : NULL;
		int rhi = rq ? rq->lo + rq->count - 1 : 0;
		if (rq && rq->table == p->table && lo <= rhi + 1 + gap &&
		    (hi > rhi ? hi : rhi) - rq->lo + 1 <= MB_SPAN_MAX * mult) {
			if (lo > rhi + 1)
				rq->gapped = true;
			if (hi > rhi)
				rq->count = hi - rq->lo + 1;
		} else {
			rq = &pl->req[pl->n_req++];
			*rq = (struct mb_req){ .table = p->table, .lo = lo, .count = hi - lo + 1 };
		}
		rq->slots[rq->n_slots++] = (uint8_t)slot_of[i];
	}
}

void mb_req_frame(int unit, const struct mb_req *rq, uint8_t out[6])
{
	static const uint8_t fc_of[] = { [MB_TABLE_HOLDING] = 0x03, [MB_TABLE_INPUT] = 0x04,
					 [MB_TABLE_COIL] = 0x01, [MB_TABLE_DISCRETE] = 0x02 };
	out[0] = (uint8_t)unit;
	out[1] = fc_of[rq->table];
	out[2] = (uint8_t)(rq->lo >> 8);
	out[3] = (uint8_t)rq->lo;
	out[4] = (uint8_t)(rq->count >> 8);
	out[5] = (uint8_t)rq->count;
}

int mb_reply_check(const uint8_t *rsp, int n, int hl, int unit, const struct mb_req *rq, uint16_t *regs,
		   uint8_t *bits, char *why, size_t whylen)
{
	uint8_t req[6];
	mb_req_frame(unit, rq, req);
	uint8_t fc = req[1];
	if (n < hl + 2) {
		snprintf(why, whylen, "reply of %d bytes is too short", n);
		return -EMBBADDATA;
	}
	if (rsp[hl - 1] != unit) {
		snprintf(why, whylen, "reply from unit %d, not %d", rsp[hl - 1], unit);
		return -EMBBADSLAVE;
	}
	if (rsp[hl] == (fc | 0x80)) {
		int code = rsp[hl + 1];
		return code >= 1 && code <= 11 ? -(MODBUS_ENOBASE + code) : -EMBBADEXC;
	}
	int count = rq->count;
	int expect = is_bits(rq->table) ? (count + 7) / 8 : 2 * count;
	if (rsp[hl] != fc || rsp[hl + 1] != expect || n < hl + 2 + expect) {
		snprintf(why, whylen, "malformed reply (function %#x, %d data bytes, %d bytes in all)", rsp[hl],
			 rsp[hl + 1], n);
		return -EMBBADDATA;
	}
	const uint8_t *data = rsp + hl + 2;
	for (int i = 0; i < count; i++) {
		if (!is_bits(rq->table))
			regs[i] = (uint16_t)((data[2 * i] << 8) | data[2 * i + 1]);
		else
			bits[i] = (data[i / 8] >> (i % 8)) & 1;
	}
	return 0;
}

void mb_req_error(struct mb_values *out, int unit, const struct mb_req *rq, const char *why, int err)
{
	snprintf(out->error, sizeof(out->error), "unit %d %s %d..%d: %s", unit, mb_table_name(rq->table), rq->lo,
		 rq->lo + rq->count - 1, why && why[0] ? why : modbus_strerror(err));
}

bool mb_plan_take(const struct modbus_cfg *m, const struct mb_req *rq, const uint16_t *regs,
		  const uint8_t *bits, struct mb_values *out)
{
	for (int j = 0; j < rq->n_slots; j++) {
		const struct mb_point *q = slot_point(m, rq->slots[j]);
		double *raw;
		bool *has, ok = true;
		slot_value(out, rq->slots[j], &raw, &has);
		int off = q->address - rq->lo;
		if (is_bits(q->table))
			*raw = bits[off] ? 1 : 0;
		else
			*raw = mb_decode(regs + off, q->type, q->word_order, &ok);
		if (!ok) {
			snprintf(out->error, sizeof(out->error), "unit %d %s %d: %s is not a number", m->unit,
				 mb_table_name(q->table), q->address, mb_type_name(q->type));
			return false;
		}
		*has = true;
	}
	return true;
}

void mb_plan_finish(const struct modbus_cfg *m, struct mb_values *out)
{
	if (out->has_in_use) {
		const struct mb_point *p = &m->in_use;
		out->in_use = is_bits(p->table) ? out->in_use_raw != 0 : out->in_use_raw * p->scale > p->above;
	}
	out->ok = true;
}

bool mb_is_exception(int e)
{
	return e >= EMBXILFUN && e <= EMBXGTAR;
}
