/* plausible.h — the one rule for what a session may look like (SPEC §3): what fails it is a
 * malformed line (drivers) or a refused observation (the core), never a figure. */
#ifndef LABSHARE_PLAUSIBLE_H
#define LABSHARE_PLAUSIBLE_H

#include <stdint.h>

#define PLAUSIBLE_EPOCH       946684800      /* 2000-01-01T00:00:00Z: no earlier time is a session */
#define PLAUSIBLE_AHEAD_S     86400          /* a time further ahead of the agent's clock is not one */
#define PLAUSIBLE_SAMPLES_MAX 1000000
#define PLAUSIBLE_SPAN_S      (31 * 86400)   /* longer is a typo in a date, not a session */

/* 0 when the session [start, end] with samples (-1: not given) can be true at now (the agent's
 * wall clock); -EINVAL with *why (may be NULL) a static reason otherwise. end == start passes
 * (a login or logout mark is checked as one instant); end before start does not. */
int plausible_session(int64_t start, int64_t end, int64_t samples, int64_t now, const char **why);

#endif
