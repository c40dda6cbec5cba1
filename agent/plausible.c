/* plausible.c — see plausible.h. Every comparison is written so that it cannot overflow,
 * whatever int64_t a source hands in. */
#include "plausible.h"

#include <errno.h>
#include <stddef.h>

static int refuse(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

int plausible_session(int64_t start, int64_t end, int64_t samples, int64_t now, const char **why)
{
	if (why)
		*why = NULL;
	if (start < PLAUSIBLE_MIN_TIME)
		return refuse(why, "starts before 2000-01-01");
	if (end < PLAUSIBLE_MIN_TIME)
		return refuse(why, "ends before 2000-01-01");
	/* now + 24 h, computed without overflow for any clock value. */
	int64_t limit = now > INT64_MAX - PLAUSIBLE_AHEAD_S ? INT64_MAX : now + PLAUSIBLE_AHEAD_S;
	if (start > limit)
		return refuse(why, "starts more than 24 h ahead of the agent's clock");
	if (end > limit)
		return refuse(why, "ends more than 24 h ahead of the agent's clock");
	if (end <= start)
		return refuse(why, "does not end after it starts");
	/* Both are ≥ 2000-01-01 here, so end - start cannot overflow. */
	if (end - start > PLAUSIBLE_MAX_DURATION_S)
		return refuse(why, "lasts more than 31 days");
	if (samples < -1 || samples > PLAUSIBLE_MAX_SAMPLES)
		return refuse(why, "samples outside 0..1,000,000");
	return 0;
}
