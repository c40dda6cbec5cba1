/* submit.h — what a driver may call of the core: hand in observations with its cursor (one
 * buffer transaction), seal an event, read its cursor back, check a session first, and see
 * back-pressure. Drivers compile with this folder and lib/ only (Makefile). */
#ifndef LABSHARE_SUBMIT_H
#define LABSHARE_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

struct config;
struct core;

/* Commit observations and the cursor that produced them atomically (cursor_key NULL: none).
 * The batch is all or nothing, so a cursor never moves past an observation that was not
 * handled. Returns 0, -ENOSPC when the buffer is full (nothing was committed: pause and
 * retry), or, with nothing committed (the whole batch and its cursor refused):
 *   -EINVAL  an observation is malformed or implausible (SPEC §3: a session before
 *            2000-01-01 or more than 24 h ahead of clock_wall(), not ending after it starts,
 *            over 31 days, samples outside -1 (unknown) and 0..1,000,000; see plausible.h),
 *   -EILSEQ  a string of it (instrument, user, org, way, fee, project, operator, note) is
 *            not valid UTF-8,
 * or another -errno. Drivers check each session with core_check_session before batching
 * it (and report a refused one as log_malformed), so a refusal here means a driver bug and
 * a batch refused is logged; retrying it unchanged fails the same way.
 * A session equal to one already kept (instrument, start, end and user) is not sealed
 * again: it counts as a repeat (core_sessions_repeated) and the batch goes on; this is
 * also what makes a log re-read after a crash or rewritten in place harmless.
 * Event details are the agent's own words: bytes of them that are not UTF-8 are sealed
 * as the text "\xNN" rather than refused. */
int core_submit(struct core *c, const struct obs *v, size_t n, const char *cursor_key,
		const void *cursor, size_t cursor_len);

/* A single event, sealed at once. */
int core_event(struct core *c, const char *instrument, const char *type, const char *detail);
/* A driver's saved cursor; -ENOENT when there is none. Caller frees *data. */
int core_cursor(struct core *c, const char *key, void **data, size_t *len);

/* Whether a session would be accepted (0), or -EINVAL / -EILSEQ with *why a static reason
 * naming the field ("start before 2000-01-01", "user: not valid UTF-8"). now is the agent's
 * clock (clock_wall()). The same rules core_submit applies. core_check_session is the
 * drivers' form: the core's own configuration, which a driver never sees. */
int core_session_check(const struct config *cfg, const char *instrument, const struct obs_session *s,
		       int64_t now, const char **why);
int core_check_session(struct core *c, const char *instrument, const struct obs_session *s,
		       int64_t now, const char **why);

/* Back-pressure (SPEC §5): true while the buffer is at max_mb; sources stop reading. */
bool core_paused(struct core *c);

#endif
