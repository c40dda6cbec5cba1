/* plausible.h — what SPEC §3 calls implausible: values that are malformed, not figures. One
 * rule for every source (logs, `record`) and for the core that seals them. */
#ifndef LABSHARE_PLAUSIBLE_H
#define LABSHARE_PLAUSIBLE_H

#include <stdint.h>

#define PLAUSIBLE_MIN_TIME 946684800LL          /* 2000-01-01T00:00:00Z */
#define PLAUSIBLE_AHEAD_S 86400LL               /* at most 24 h ahead of the agent's clock */
#define PLAUSIBLE_MAX_DURATION_S (31LL * 86400) /* 31 days */
#define PLAUSIBLE_MAX_SAMPLES 1000000LL

/* A session [start, end) with samples (-1: unknown) seen at now (the agent's clock,
 * clock_wall()). 0 when plausible, else -EINVAL and *why (may be NULL) a static reason
 * such as "starts before 2000-01-01". */
int plausible_session(int64_t start, int64_t end, int64_t samples, int64_t now, const char **why);

#endif
