/* source.h — the whole contract between the core and a source driver (Modbus, log tail, a
 * future OPC UA one): a struct of callbacks and a NULL-terminated registry. A driver turns a
 * source into observations and hands them, with its cursor, to the core; it knows nothing of
 * SQLite, HTTP or metrics. */
#ifndef LABSHARE_SOURCE_H
#define LABSHARE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inst_status.h"

struct source_conf;
struct core;

/* What a driver can observe. Strings are borrowed for the duration of core_submit. */
enum obs_type { OBS_EVENT, OBS_SESSION, OBS_READING };

struct obs_event {
	int64_t at;                 /* unix seconds */
	const char *type;           /* one of SPEC §6's event types */
	const char *detail;         /* free text (may be NULL) */
};

struct obs_session {
	int64_t start, end;         /* unix seconds, end > start */
	const char *user, *org;     /* user as seen in the source; the core applies user_ids */
	int external;               /* 1 / 0 from the source, -1: decide by internal_orgs */
	int64_t samples;            /* -1 when unknown */
	const char *way, *fee, *project; /* NULL when not mapped */
	bool closed_auto;           /* an orphan closed by rule */
	bool manual;                /* entered with `record` */
	const char *operator_name, *note; /* manual only */
};

/* One counter/flag value as decoded from the device (before counter rules). */
struct obs_value {
	bool present;
	double value;               /* raw decoded value (before scale) */
	double scale;               /* to hours for run counters, to units for samples */
	double range;               /* 2^16, 2^32, 2^64 for unsigned counters; 0 when it can't wrap */
};

struct obs_reading {
	int64_t at_us;              /* wall time of the reading */
	bool ok;                    /* false: the device could not be read */
	const char *error;          /* why, when !ok */
	struct obs_value run, samples;
	bool has_in_use, in_use;
	/* A meter (SPEC §3 "profile"): active power in W (scaled), import energy as a counter
	 * (scale to kWh); in use from power with the instrument's hysteresis. */
	bool has_power;
	double power_w;
	struct obs_value energy;
};

struct obs {
	enum obs_type type;
	const char *instrument;     /* NULL for agent-wide events */
	union {
		struct obs_event event;
		struct obs_session session;
		struct obs_reading reading;
	} u;
};

struct source_ops {
	const char *name;
	/* Build the driver's state for the configured instruments; *state stays NULL when
	 * nothing in the config is for this driver. sc is the drivers' part of the configuration
	 * (conf/part/source_conf.h, never the token or keys): it outlives the state. 0 or -errno. */
	int (*create)(const struct source_conf *sc, struct core *core, void **state);
	/* Start reading (own threads or event sources); returns at once. */
	int (*start)(void *state);
	/* Stop reading and join, within a bounded time; what is open is handed to the core. */
	void (*stop)(void *state);
	/* Fill its instruments' parts of the status (SPEC §7): insts is every configured
	 * instrument in the config's order (inst_status_find), logs laid out per configured
	 * path; set `live` on what it fills. Called every second: copy, don't query. NULL:
	 * nothing to add. */
	void (*status)(void *state, struct inst_status *insts, size_t n);
	/* False when a thread of the driver stopped making progress (the daemon then stops
	 * sending WATCHDOG=1, so systemd restarts it); why gets a short reason. NULL: healthy. */
	bool (*healthy)(void *state, char *why, size_t whylen);
	void (*destroy)(void *state);
};

/* Every driver compiled in; NULL-terminated. */
extern const struct source_ops *const source_registry[];

#endif
