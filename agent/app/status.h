/* status.h — the state an operator sees (`status`, SPEC §7) as one typed struct, filled from
 * the buffer, the sinks and the drivers' status ops, and printed three ways: text, JSON
 * (`status --json`, {state_dir}/status.json) and Prometheus ({state_dir}/metrics.prom).
 * The daemon keeps one for its whole run and refreshes it every second; `status` beside a
 * running daemon takes the instruments' live parts from the daemon's status.json. */
#ifndef LABSHARE_STATUS_H
#define LABSHARE_STATUS_H

#include "inst_status.h"
#include "nrii.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct buffer;
struct config;
struct metrics;
struct cJSON;

#define STATUS_FILE "status.json"

/* One delivery cursor (the platform's or NRII's). Times are unix seconds, 0: none. */
struct sink_status {
	int64_t acked_seq, pending, last_ok, next_attempt;
	char *last_error, *alarm;
};

struct status {
	char *agent_id;
	bool running;
	long pid;                       /* 0: none */
	struct {
		char *path;
		int64_t last_seq, acked_seq, pending, bytes, max_bytes;
		bool full;
		char head_hash[65];
		int64_t oldest_pending_age_s; /* -1: nothing pending */
	} buffer;
	struct sink_status upload;
	bool has_nrii;
	struct sink_status nrii;
	struct nrii_status nrii_parked;
	struct inst_status *insts;      /* every configured instrument, in the config's order */
	size_t n_insts;
};

/* Laid out from cfg: ids, names, which parts each instrument has, its logs' paths. NULL when
 * out of memory. */
struct status *status_new(const struct config *cfg);
void status_free(struct status *st);

/* The buffer's, the upload's and NRII's parts (a few queries, none per instrument); b may be
 * NULL (no buffer yet). */
void status_fill_buffer(struct status *st, const struct config *cfg, struct buffer *b, bool running,
			long pid);
/* Before the drivers' status ops: nothing is live until a driver says so. */
void status_begin_round(struct status *st);
/* What no driver filled: a Modbus part "starting" (running) or "stopped" with the counter
 * metrics kept, a log's figures from the cursor it last committed. mx and b may be NULL. */
void status_fill_idle(struct status *st, struct buffer *b, struct metrics *mx);
/* SPEC §3: the same session seen again, sealed once, counted per instrument (from the file:
 * `record` counts repeats beside a running daemon). mx may be NULL. */
void status_fill_repeats(struct status *st, struct buffer *b, struct metrics *mx);

/* The instruments' live parts (Modbus and logs) from the daemon's {state_dir}/status.json.
 * 0, or -errno (-ENOENT: no file; -EINVAL: not what the daemon writes). */
int status_read_live(struct status *st, const char *state_dir);

/* As JSON (SPEC §7), one line without a newline; caller frees; NULL when out of memory or
 * a string was not UTF-8. */
char *status_json(const struct status *st, size_t *len);
void status_text(const struct status *st, FILE *out);
/* Prometheus text format (node_exporter's textfile collector); caller frees. */
char *status_prometheus(const struct status *st, size_t *len);

/* The other way round: a status from what status_json wrote (NULL: not that, or out of
 * memory), and the instruments' live parts of st from a daemon's status.json, matched by id
 * (0 or -EINVAL). */
struct status *status_from_json(const struct cJSON *j);
int status_live_from_json(struct status *st, const struct cJSON *j);

/* For tests: one driver's status op alone over a status laid out from cfg, as the tree
 * status_json writes (its "instruments" holds what the driver filled). */
struct source_ops;
struct cJSON *status_of_source(const struct config *cfg, const struct source_ops *ops, void *state);

/* Write data to path whole or not at all (temp file, rename; no fsync: for views). 0 or -errno. */
int write_file_atomic(const char *path, const char *data, size_t len, int mode);

#endif
