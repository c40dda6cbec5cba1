/* status.h — the state an operator sees (`status`, SPEC §7), built from the buffer, the
 * config and, while the daemon runs, the live snapshot it writes to {state_dir}/status.json. */
#ifndef LABSHARE_STATUS_H
#define LABSHARE_STATUS_H

#include <stdbool.h>
#include <stdio.h>

struct buffer;
struct config;
struct cJSON;

#define STATUS_FILE "status.json"

/* live: the daemon's snapshot ({"instruments":[…], "upload":{…}}) or NULL. b may be NULL
 * (no buffer yet). Returns a new object. */
struct cJSON *status_build(const struct config *cfg, struct buffer *b, const struct cJSON *live,
			   bool running, long pid);
/* The daemon's live snapshot, {state_dir}/status.json, read whole; NULL when absent or
 * unreadable. */
struct cJSON *status_read_live(const char *state_dir);
void status_print_text(const struct cJSON *st, FILE *out);

/* The same state as Prometheus text format (for node_exporter's textfile collector).
 * Caller frees. */
char *status_prometheus(const struct cJSON *st);

/* Write data to path whole or not at all (temp file, rename; no fsync: for views). 0 or -errno. */
int write_file_atomic(const char *path, const char *data, size_t len, int mode);

#endif
