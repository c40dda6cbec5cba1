/* counter.h — the counter rules of SPEC §4, as a pure function over a persisted state:
 * wraps, resets confirmed by the next reading, lone glitches discarded, clamping. */
#ifndef LABSHARE_COUNTER_H
#define LABSHARE_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

struct counter_state {
	bool have;              /* a good baseline is known */
	double last;            /* last accepted raw value */
	int64_t last_us;        /* wall time of it */
	bool pending;           /* a lower reading waits for the next one to confirm it */
	double pend_value;
	int64_t pend_us;
};

enum counter_flag {
	COUNTER_WRAP = 1 << 0,      /* counted across the wrap */
	COUNTER_RESET = 1 << 1,     /* a confirmed reset: counted from zero */
	COUNTER_GLITCH = 1 << 2,    /* a lone lower reading was discarded */
	COUNTER_CLAMPED = 1 << 3,   /* more than the wall time allows: clamped */
	COUNTER_PENDING = 1 << 4,   /* a lower reading is held for confirmation */
	COUNTER_BASELINE = 1 << 5,  /* first reading: nothing to count yet */
	COUNTER_BACKWARDS = 1 << 6, /* reading older than the last: ignored */
	COUNTER_INVALID = 1 << 7,   /* NaN or infinite: no reading, ignored */
};

struct counter_step {
	double delta;           /* raw units gained, ≥ 0 */
	int64_t from_us, to_us; /* the wall interval it accrued over (spread evenly) */
	unsigned flags;
	double unclamped;       /* the delta before clamping */
	double glitch_value;    /* the discarded reading, with COUNTER_GLITCH */
};

/* Apply one good reading. range: 2^16/2^32/2^64 for unsigned counters (a drop of more
 * than half of it is a wrap), 0 when the type can't wrap. A gain above max_delta (the
 * wall time since the last good reading plus one interval, in raw units; < 0 for no limit)
 * is clamped to clamp_to (the wall time itself). */
void counter_apply(struct counter_state *st, double value, double range, int64_t at_us,
		   double max_delta, double clamp_to, struct counter_step *out);

#endif
