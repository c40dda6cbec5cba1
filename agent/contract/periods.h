/* periods.h — what readers (the report, the NRII yearly totals) may ask of the core's figures:
 * one rule for a period's sums, so that the auditors' report and what NRII is told can never
 * disagree (SPEC §4: a period is the sum of its days, the latest revision of each;
 * external_users is distinct over the whole period). Implemented in core/. */
#ifndef LABSHARE_PERIODS_H
#define LABSHARE_PERIODS_H

#include <stddef.h>
#include <stdint.h>

struct buffer;

struct period_sums {
	int64_t effective_s, service_s, external_s, internal_s;
	int64_t sessions, external_sessions, samples, external_users;
	int64_t unattributed_s, overclaimed_s, offline_s;
	int64_t manual_sessions, auto_closed_sessions;
	int64_t days_sealed;     /* days with a sealed daily record in the period */
};

/* The sums for instrument over the local days [from_day, end_day) (unix times of local
 * midnights). Each sum stops at 2^53 − 1 rather than overflowing. day (may be NULL) is called
 * with each counted daily record's sealed JSON text, in day order; a non-zero return stops
 * and is returned. Returns 0 or a negative errno. */
int period_sums(struct buffer *b, const char *instrument, int64_t from_day, int64_t end_day,
		struct period_sums *out, int (*day)(const char *line, size_t len, void *arg), void *arg);

/* 0.33333 → 0.3333: sharing rates travel with four decimals. */
double round4(double x);

#endif
