/* core.h — the core's life and chores as the daemon drives them; what drivers call is in
 * contract/submit.h. */
#ifndef LABSHARE_CORE_H
#define LABSHARE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "submit.h"

struct buffer;
struct config;

struct core;

struct core *core_new(const struct config *cfg, struct buffer *buf);
void core_free(struct core *c);
/* The config may be swapped on reload; drivers are restarted around it. */
void core_set_config(struct core *c, const struct config *cfg);
struct buffer *core_buffer(struct core *c);

/* Seal run records of closed slots and daily records of closed days (the metrics step);
 * returns how many records were sealed or a negative errno. */
int core_tick(struct core *c);
/* A clean stop: seal what is open up to now. */
int core_stop(struct core *c);
struct metrics *core_metrics(struct core *c);

/* Sessions of the instrument seen again and sealed once (SPEC §3), or -errno. */
int64_t core_sessions_repeated(struct core *c, const char *instrument);

/* Re-measure the buffer against max_mb; logs and seals `buffer_full` on the way in. */
void core_check_space(struct core *c);

/* The user name as it leaves the lab (SPEC §3 user_ids): plain, HMAC hex, or NULL (omit).
 * Caller frees. */
char *core_user_id(const struct config *cfg, const char *user);
/* Whether org counts as external under internal_orgs (an empty org is internal). */
bool core_org_external(const struct config *cfg, const char *org);

#endif
