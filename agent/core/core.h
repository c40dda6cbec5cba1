/* core.h — where drivers hand in observations: each batch, with the driver's cursor, is
 * turned into sealed records in one buffer transaction. */
#ifndef LABSHARE_CORE_H
#define LABSHARE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

struct buffer;
struct config;

struct core;

struct core *core_new(const struct config *cfg, struct buffer *buf);
void core_free(struct core *c);
/* The config may be swapped on reload; drivers are restarted around it. */
void core_set_config(struct core *c, const struct config *cfg);
struct buffer *core_buffer(struct core *c);
const struct config *core_config(struct core *c);

/* Commit observations and the cursor that produced them atomically (cursor_key NULL: none).
 * The batch is all or nothing, so a cursor never moves past an observation that was not
 * handled. Returns 0, -ENOSPC when the buffer is full (nothing was committed: pause and
 * retry), or, with nothing committed (the whole batch and its cursor refused):
 *   -EINVAL  an observation is malformed or implausible (SPEC §3: a session before
 *            2000-01-01 or more than 24 h ahead of clock_wall(), not ending after it starts,
 *            over 31 days, samples outside -1 (unknown) and 0..1,000,000; see plausible.h),
 *   -EILSEQ  a string of it (instrument, user, org, way, fee, project, operator, note) is
 *            not valid UTF-8,
 * or another -errno. Drivers check each session with core_session_check before batching
 * it (and report a refused one as log_malformed), so a refusal here means a driver bug and
 * a batch refused is logged; retrying it unchanged fails the same way.
 * A session equal to one already kept (instrument, start, end and user) is not sealed
 * again: it counts as a repeat (core_sessions_repeated) and the batch goes on; this is
 * also what makes a log re-read after a crash or rewritten in place harmless.
 * Event details are the agent's own words: bytes of them that are not UTF-8 are sealed
 * as the text "\xNN" rather than refused. */
int core_submit(struct core *c, const struct obs *v, size_t n, const char *cursor_key,
		const void *cursor, size_t cursor_len);
/* Seal run records of closed slots and daily records of closed days (the metrics step);
 * returns how many records were sealed or a negative errno. */
int core_tick(struct core *c);
/* A clean stop: seal what is open up to now. */
int core_stop(struct core *c);
struct metrics *core_metrics(struct core *c);

/* Whether a session would be accepted (0), or -EINVAL / -EILSEQ with *why a static reason
 * naming the field ("start before 2000-01-01", "user: not valid UTF-8"). now is the agent's
 * clock (clock_wall()). The same rules core_submit applies. */
int core_session_check(const struct config *cfg, const char *instrument, const struct obs_session *s,
		       int64_t now, const char **why);
/* Sessions of the instrument seen again and sealed once (SPEC §3), or -errno. */
int64_t core_sessions_repeated(struct core *c, const char *instrument);

/* A single event, sealed at once. */
int core_event(struct core *c, const char *instrument, const char *type, const char *detail);
/* A driver's saved cursor; -ENOENT when there is none. Caller frees *data. */
int core_cursor(struct core *c, const char *key, void **data, size_t *len);

/* Back-pressure (SPEC §5): true while the buffer is at max_mb; sources stop reading. */
bool core_paused(struct core *c);
/* Re-measure the buffer against max_mb; logs and seals `buffer_full` on the way in. */
void core_check_space(struct core *c);

/* The user name as it leaves the lab (SPEC §3 user_ids): plain, HMAC hex, or NULL (omit).
 * Caller frees. */
char *core_user_id(const struct config *cfg, const char *user);
/* Whether org counts as external under internal_orgs (an empty org is internal). */
bool core_org_external(const struct config *cfg, const char *org);

#endif
