/* inst_status.h — one instrument's part of the status (SPEC §7) as a typed struct: the app
 * lays out one per configured instrument, in the config's order, and each driver's status op
 * fills what it knows of its own (source.h). No caps: strings are the driver's, copied whole. */
#ifndef LABSHARE_INST_STATUS_H
#define LABSHARE_INST_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The latest poll, raw as read: `poll` beside a running daemon prints these (SPEC §2). */
struct modbus_reading {
	int64_t at;                 /* unix seconds; 0: no poll yet */
	bool ok;
	char *error;                /* when !ok */
	bool has_run, has_samples, has_in_use, in_use;
	double run_raw, samples_raw, in_use_raw;
	bool has_power, has_energy;   /* a meter (raw, before scale) */
	double power_raw, energy_raw;
};

struct modbus_status {
	bool present;               /* configured with a modbus part */
	bool live;                  /* filled by the running driver this round */
	char state[16];             /* starting, ok, offline, paused, stopped */
	int64_t last_ok;            /* unix seconds; 0: never */
	bool has_run_hours;
	double run_hours_total;
	bool has_samples_total, has_in_use, in_use;
	double samples_total;
	char *last_error;           /* NULL: none */
	char *bus;                  /* NULL: not known (not live) */
	int unit;
	struct modbus_reading reading;
	uint64_t polls, late_polls;
	double power_scale, energy_scale; /* a meter's (profile or config), to W and kWh; 0: none */
};

struct log_status {
	char *path;                 /* as configured (a path or a glob) */
	bool live;                  /* filled by the running driver this round */
	char *file;                 /* the file read now; NULL: none */
	bool has_offset;
	int64_t offset, lines, malformed, files, open_sessions;
	bool has_open_sessions;
	char state[8];              /* ok, paused, error */
};

struct inst_status {
	char *id, *name;
	struct modbus_status modbus;
	struct log_status *logs;    /* one per configured log, in the config's order */
	size_t n_logs;
	int64_t sessions_repeated;
};

/* Replace *dst by a copy of src (NULL clears); the copy is kept when equal, so a status
 * refreshed every second allocates only what changed. */
static inline void inst_status_set(char **dst, const char *src)
{
	if (src && *dst && strcmp(*dst, src) == 0)
		return;
	free(*dst);
	*dst = src ? strdup(src) : NULL;
}

/* The instrument's entry; *hint is where to look first (the one after the last found), so
 * a driver that walks its instruments in the config's order finds each in one comparison. */
static inline struct inst_status *inst_status_find(struct inst_status *v, size_t n, const char *id,
						   size_t *hint)
{
	for (size_t k = 0; k < n; k++) {
		size_t i = (*hint + k) % n;
		if (strcmp(v[i].id, id) == 0) {
			*hint = i + 1;
			return &v[i];
		}
	}
	return NULL;
}

/* The log's entry by its configured path; NULL when the instrument has no such log. */
static inline struct log_status *inst_status_log(struct inst_status *in, const char *path)
{
	for (size_t j = 0; j < in->n_logs; j++)
		if (strcmp(in->logs[j].path, path) == 0)
			return &in->logs[j];
	return NULL;
}

#endif
