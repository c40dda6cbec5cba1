/* logtail.h — the log source driver: follows instrument session logs (a path or a glob) across
 * rotation and turns their lines into sessions and events, each batch committed to the core
 * together with the file positions that produced it, so every line counts exactly once. */
#ifndef LABSHARE_LOGTAIL_H
#define LABSHARE_LOGTAIL_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

extern const struct source_ops logtail_source;

/* Timings and batch sizes; tests and the benchmark may change them before create(). */
struct logtail_tuning {
	int poll_ms;          /* 250: how often paths are looked at */
	int rotate_wait_ms;   /* 5000: a renamed or deleted file is read until quiet this long */
	int idle_close_ms;    /* 300000: a quiet file's descriptor is closed (reopened on change) */
	size_t batch_obs;     /* 4096 observations per transaction at most (a backlog: fewer fsyncs) */
	size_t batch_bytes;   /* 4 MiB of log per transaction at most */
	int racy_ms;          /* 2000: a glob's folder changed this recently is listed again next
			       * round (a change within its timestamp's granularity looks like none) */
};
extern struct logtail_tuning logtail_tuning;

/* The cursor key of one configured log: "log:<instrument>:<path>". Caller frees. */
char *logtail_cursor_key(const char *instrument, const char *path);
/* The key of what changed since the cursor under logtail_cursor_key was written (a large glob's
 * batches write only that): its totals are the latest. Caller frees. */
char *logtail_cursor_delta_key(const char *instrument, const char *path);

/* A stopped agent's figures for one log (status without a daemon): what its cursor, as last
 * committed (data, len: the cursor under logtail_cursor_delta_key, else logtail_cursor_key), says of offset, lines and
 * malformed. The cursor's format is the driver's own; nothing else reads it. */
void logtail_cursor_status(const void *data, size_t len, struct log_status *l);

/* Poll rounds completed since start (all logs looked at once per round): a test waits for
 * this to move on instead of sleeping when it checks that nothing happened. */
uint64_t logtail_rounds(void *state);
/* Rounds of a glob that looked only at the files that may change (logtail_look.c). */
uint64_t logtail_quick_looks(void *state);

#endif
