/* hysteresis.h — an instrument metered by power (SPEC §3 "profile"): in use from power with
 * hysteresis, and the import-energy counter per run slot. The state lives in the core's
 * per-instrument state (metrics_priv.h, struct inst_state) and is saved with what it produced.
 *
 * Where a run lies: a run starts at the first reading above above_w of the stretch that stayed
 * above it for min_on_s (backdated: it is counted from there once confirmed, not min_on_s
 * later) and ends at the first reading below below_w of the stretch that stayed below it for
 * min_off_s. Each reading stands for the time up to the next one, so the run time is the time
 * between those two readings. Between the thresholds the state holds. A stretch shorter than
 * min_on_s (a pump cycling, a spike at power-up) creates no run; a dip shorter than min_off_s
 * (a meter reading 0 for one poll) splits none: the run goes on through it. Readings further
 * apart than the gap (three intervals and 5 s) count nothing across the gap (offline_s does)
 * and start a pending stretch over. */
#ifndef LABSHARE_HYSTERESIS_H
#define LABSHARE_HYSTERESIS_H

#include <stdbool.h>
#include <stdint.h>

#include "counter.h"

struct mb_hysteresis;

struct hyst_state {
	bool known;             /* a power reading was seen */
	bool on;                /* in use */
	bool pend;              /* a stretch across the other threshold waits for its minimum */
	int64_t pend_us;        /* its first reading */
	int64_t acc_us;         /* in use: run time is counted up to here */
	int64_t last_us;        /* the last power reading */
};

/* What the core keeps of a meter (a part of struct inst_state). */
struct meter_state {
	struct hyst_state hy;
	struct counter_state nrg;   /* the import-energy counter (raw) */
	double nrg_carry;           /* Wh not sealed yet: a fraction of one, carried to the next record */
};

#define METER_BLOB_LEN (1 + 10 * 8)
/* A fixed-size little-endian form for the state blob (metrics.c). */
void meter_state_to_blob(const struct meter_state *ms, unsigned char out[METER_BLOB_LEN]);
void meter_state_from_blob(const unsigned char in[METER_BLOB_LEN], struct meter_state *ms);

/* One power reading at t_us. Sets [*from_us, *to_us) to the run time it confirms (empty when
 * *to_us <= *from_us). gap_us: readings further apart count nothing across. */
void hyst_step(struct hyst_state *h, const struct mb_hysteresis *cfg, double power_w, int64_t t_us,
	       int64_t gap_us, int64_t *from_us, int64_t *to_us);

/* While a stretch is pending, the slots from its first reading on are not complete: what it
 * confirms may still be counted there. Returns that time (µs), or 0 when nothing is pending
 * or the last power reading is more than gap_us before now_us (the stretch can only start
 * over: a device offline for long does not hold its slots). */
int64_t hyst_pending_since(const struct hyst_state *h, int64_t now_us, int64_t gap_us);

struct metrics;
struct instrument_cfg;
struct obs_reading;
struct inst_state;

/* The energy per run slot, in a table of its own (mx_energy, owner "meter" in the store's
 * migration registry): made and opened by metrics_new and metrics_set_config when the config
 * has a meter, closed by metrics_free. */
struct store_schema;
extern const struct store_schema meter_schema;
void meter_open(struct metrics *m);
void meter_close(struct metrics *m);
/* kWh added to the instrument's slot (inside the caller's transaction). 0 or -errno. */
int meter_slot_add(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, double kwh);
/* The kWh of the slot not sealed yet, marked sealed (before the slot's run record). */
int meter_slot_take(struct metrics *m, const struct instrument_cfg *ic, int64_t slot, double *kwh);
/* Forget sealed slots that ended before `before` (with the metrics' own pruning). */
int meter_prune(struct metrics *m, int64_t before);

/* A good reading of a metered instrument (inside the caller's transaction): in-use run time
 * from power (when the instrument has no run counter) and the energy counter's gain, spread
 * over the run slots; counter events sealed like run_counter's. 0 or -errno. */
int meter_reading(struct metrics *m, const struct instrument_cfg *ic, struct inst_state *st,
		  const struct obs_reading *rd);

#endif
