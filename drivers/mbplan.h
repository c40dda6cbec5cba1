/* mbplan.h — an instrument's read as requests: the points it has, grouped per table into as few
 * requests as their addresses allow, and the checks every reply passes before a value is taken.
 * Shared by the blocking bus (mbbus.c: RTU, `poll`) and the TCP event loop (mbloop.c). */
#ifndef LABSHARE_MBPLAN_H
#define LABSHARE_MBPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modbus.h"

/* The points a read can have; a new point is one more slot here and one case in each of
 * mbplan.c's slot_point and slot_value. */
enum mb_slot {
	MB_SLOT_RUN, MB_SLOT_SAMPLES, MB_SLOT_IN_USE, MB_SLOT_POWER, MB_SLOT_ENERGY,
	MB_SLOT_VOLTAGE, MB_SLOT_FREQUENCY, /* the extras: `poll` and `scan` only */
	MB_SLOTS
};

/* Points of one table closer than this (registers; bits ×16) share one request, as long as it
 * spans at most MB_SPAN_MAX registers (bits ×16): a run counter at input 100 and an in-use
 * register at input 102 are one request, where polling them one by one takes two. A device
 * that has no register in the gap answers "illegal data address": the instrument then reads
 * its points exactly (mb_plan_make with exact). */
#define MB_COALESCE_GAP 4
#define MB_SPAN_MAX 32
#define MB_REGS_MAX (MB_SPAN_MAX * 16) /* bits; registers need less */

struct mb_req {
	enum mb_table table;
	int lo, count;
	bool gapped;                 /* reads addresses no point asked for */
	uint8_t slots[MB_SLOTS];
	int n_slots;
};

struct mb_plan {
	struct mb_req req[MB_SLOTS];
	int n_req;
};

/* The points the daemon needs each poll (counters, in-use, a meter's power and energy); with
 * extras a meter's voltage and frequency too (`poll`). exact: one request per point. */
void mb_plan_make(const struct modbus_cfg *m, bool exact, bool extras, struct mb_plan *pl);

/* The request's PDU with its unit in front (6 bytes: unit, function, address, count). */
void mb_req_frame(int unit, const struct mb_req *rq, uint8_t out[6]);

/* Checks a reply (hl bytes of header, the unit last; then the PDU) to rq for unit: unit,
 * function, byte count and length; the values into regs or bits (rq->count of them).
 * 0, or a negative errno (libmodbus's for exceptions) with the reason in why when it has one. */
int mb_reply_check(const uint8_t *rsp, int n, int hl, int unit, const struct mb_req *rq, uint16_t *regs,
		   uint8_t *bits, char *why, size_t whylen);

/* The error of a failed request in out->error: "unit U TABLE LO..HI: why". */
void mb_req_error(struct mb_values *out, int unit, const struct mb_req *rq, const char *why, int err);

/* Decodes one request's values into out; false (and out->error) for a value that is no number. */
bool mb_plan_take(const struct modbus_cfg *m, const struct mb_req *rq, const uint16_t *regs,
		  const uint8_t *bits, struct mb_values *out);

/* Every request taken: in_use from its point, out->ok. */
void mb_plan_finish(const struct modbus_cfg *m, struct mb_values *out);

/* A device answered with an exception: the link is fine. */
bool mb_is_exception(int err);

#endif
