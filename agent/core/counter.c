/* counter.c — turns successive counter readings into gains, never inventing or losing any. */
#include "counter.h"

#include <math.h>
#include <string.h>

static bool is_wrap(double last, double value, double range)
{
	return range > 0 && value < last && last - value > range / 2;
}

void counter_apply(struct counter_state *st, double value, double range, int64_t at_us,
		   double max_delta, double clamp_to, struct counter_step *out)
{
	memset(out, 0, sizeof(*out));
	/* The decoders refuse these already; a NaN kept as the baseline would make every later
	 * reading look like a reset, an infinite one a gain that no sum can hold. */
	if (!isfinite(value)) {
		out->flags = COUNTER_INVALID;
		out->from_us = out->to_us = st->last_us;
		return;
	}
	if (!st->have) {
		st->have = true;
		st->last = value;
		st->last_us = at_us;
		st->pending = false;
		out->flags = COUNTER_BASELINE;
		out->from_us = out->to_us = at_us;
		return;
	}
	if (at_us <= st->last_us) {
		out->flags = COUNTER_BACKWARDS;
		out->from_us = out->to_us = st->last_us;
		return;
	}
	out->from_us = st->last_us;
	out->to_us = at_us;

	double delta;
	if (value >= st->last) {
		/* The old series goes on: a held lower reading was a glitch. */
		if (st->pending) {
			out->flags |= COUNTER_GLITCH;
			out->glitch_value = st->pend_value;
			st->pending = false;
		}
		delta = value - st->last;
	} else if (is_wrap(st->last, value, range)) {
		if (st->pending) {
			out->flags |= COUNTER_GLITCH;
			out->glitch_value = st->pend_value;
			st->pending = false;
		}
		out->flags |= COUNTER_WRAP;
		delta = value + range - st->last;
	} else if (!st->pending) {
		/* Lower: hold it until the next reading says reset or glitch. */
		st->pending = true;
		st->pend_value = value;
		st->pend_us = at_us;
		out->flags |= COUNTER_PENDING;
		out->to_us = out->from_us;
		return;
	} else if (value >= st->pend_value) {
		/* Two consistent lower readings: a reset, counted from zero. */
		out->flags |= COUNTER_RESET;
		st->pending = false;
		delta = value;
	} else {
		/* Lower again than the held one: the held one was a glitch, hold this one. */
		out->flags |= COUNTER_GLITCH | COUNTER_PENDING;
		out->glitch_value = st->pend_value;
		st->pend_value = value;
		st->pend_us = at_us;
		out->to_us = out->from_us;
		return;
	}
	out->unclamped = delta;
	if (max_delta >= 0 && delta > max_delta) {
		out->flags |= COUNTER_CLAMPED;
		delta = clamp_to;
	}
	out->delta = delta;
	st->last = value;
	st->last_us = at_us;
}
