/* records.h — the record kinds of SPEC §6 (event, session, run, daily) built as JSON in
 * their wire order and sealed into the chain. Callers hold a buffer transaction. */
#ifndef LABSHARE_RECORDS_H
#define LABSHARE_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

struct buffer;
struct config;
struct obs_session;

/* One day's figures (SPEC §4), all durations in integer seconds. */
struct daily_figures {
	int64_t effective_s, service_s, external_s, internal_s;
	double sharing_rate;        /* rounded to 4 decimals */
	int64_t sessions, external_sessions, samples, external_users;
	int64_t unattributed_s, overclaimed_s, offline_s;
};

bool event_type_valid(const char *type);

/* Each returns the new seq or a negative errno; -EILSEQ when a string is not valid UTF-8
 * (nothing is sealed). record_event instead writes bad bytes of its detail as "\xNN". */
int64_t record_event(struct buffer *b, int64_t at, const char *instrument, const char *type,
		     const char *detail);
/* user_id: as it leaves the lab (NULL: omitted). */
int64_t record_session(struct buffer *b, const char *instrument, const struct obs_session *s,
		       const char *user_id, bool external);
/* samples < 0, energy_kwh < 0: not sent (energy_kwh only for a metered instrument). */
int64_t record_run(struct buffer *b, const char *instrument, int64_t from, int64_t to, int64_t run_s,
		   int64_t samples, double energy_kwh);
int64_t record_daily(struct buffer *b, const char *instrument, const char *date, int revision,
		     const struct daily_figures *f);

#endif
