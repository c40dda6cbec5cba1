/* profiles.h — the built-in meter profiles (SPEC §3 "profile"): one JSON file per meter model in
 * agent/conf/profiles/, compiled in as data by the Makefile (an assembler .incbin per file),
 * parsed once with the config's own JSONC reader and point checks. */
#ifndef LABSHARE_PROFILES_H
#define LABSHARE_PROFILES_H

#include <stddef.h>

#include "part/source_conf.h"

struct meter_profile {
	char *name;                 /* [a-z0-9-]+, the file's name */
	char *model;
	int phases;                 /* 1 or 3 */
	char *source;               /* the public document the map comes from */
	int baud;                   /* "defaults": informational; 0 when not given */
	char parity;                /* 'N', 'E', 'O'; 0 when not given */
	struct mb_point power, energy, voltage, frequency; /* power and energy always present */
};

/* Every profile that parsed, sorted by name; parsed at the first call (thread-safe) and kept
 * for the life of the process. */
const struct meter_profile *profiles_all(size_t *n);
/* NULL when there is none of that name (or it is broken: profiles_problems says why). */
const struct meter_profile *profile_find(const char *name);
/* What is wrong in the compiled-in files (a defect of the build, caught by test_profiles):
 * "profiles/NAME.json:LINE:COL: path: why"; *n of them. */
const char *const *profiles_problems(size_t *n);
/* The first problem of the named file, or NULL when it has none. */
const char *profile_problem(const char *name);
/* "a, b, c": the names of every profile (static storage). */
const char *profiles_names(void);

#endif
