/* plausible.c — the plausibility rule of a session, pure so drivers and the core share it. */
#include "plausible.h"

#include <errno.h>

static int no(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

int plausible_session(int64_t start, int64_t end, int64_t samples, int64_t now, const char **why)
{
	if (start < PLAUSIBLE_EPOCH)
		return no(why, "start before 2000-01-01");
	if (end < PLAUSIBLE_EPOCH)
		return no(why, "end before 2000-01-01");
	/* now + a day can't overflow for any clock this side of year 292 billion; checked anyway. */
	int64_t limit = now > INT64_MAX - PLAUSIBLE_AHEAD_S ? INT64_MAX : now + PLAUSIBLE_AHEAD_S;
	if (start > limit)
		return no(why, "start more than 24 h ahead of the agent's clock");
	if (end > limit)
		return no(why, "end more than 24 h ahead of the agent's clock");
	if (end < start)
		return no(why, "end before start");
	if (end - start > PLAUSIBLE_SPAN_S)
		return no(why, "session longer than 31 days");
	if (samples != -1 && (samples < 0 || samples > PLAUSIBLE_SAMPLES_MAX))
		return no(why, "samples outside 0..1000000");
	return 0;
}
