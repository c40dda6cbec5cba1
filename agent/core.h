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
 * Returns 0, -ENOSPC when the buffer is full (nothing was committed: pause and retry),
 * -EINVAL when an observation is malformed (nothing committed), or another -errno. */
int core_submit(struct core *c, const struct obs *v, size_t n, const char *cursor_key,
		const void *cursor, size_t cursor_len);
/* Seal run records of closed slots and daily records of closed days (the metrics step);
 * returns how many records were sealed or a negative errno. */
int core_tick(struct core *c);
/* A clean stop: seal what is open up to now. */
int core_stop(struct core *c);
struct metrics *core_metrics(struct core *c);

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
