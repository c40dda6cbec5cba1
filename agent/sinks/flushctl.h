/* flushctl.h — `flush` beside a running daemon (SPEC §2): the daemon serves
 * {state_dir}/control.sock and its own uploader does the work, so no second uploader ever runs;
 * the command asks there and prints the daemon's answer. */
#ifndef LABSHARE_FLUSHCTL_H
#define LABSHARE_FLUSHCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONTROL_SOCKET "control.sock"
/* Held (exclusive) by a `flush` that uploads on its own: a second one waits for it. */
#define FLUSH_LOCK "flush.lock"

/* What a flush waits in all for the platform to come back (Retry-After and back-offs, summed):
 * a wait that would end past it is not begun, and the flush answers 75. The daemon's own
 * back-off is not this: after the flush it goes on as before (README). */
#define FLUSH_WAIT_TOTAL_S 5
/* What `flush` waits for a daemon that is reloading (or starting) to serve control.sock again. */
#define FLUSH_RECONNECT_S 15

/* Whether a flush that has waited *waited seconds so far may wait t more (at least 1: so a
 * flush makes at most FLUSH_WAIT_TOTAL_S + 1 attempts); if so, counted. */
bool flush_may_wait(int64_t *waited, int64_t t);

/* flushctl_handler's answer when the uploader stopped before it finished (a reload, a stop):
 * the command asks again once the daemon serves again, or uploads itself if it is gone. */
#define FLUSHCTL_AGAIN (-1)

struct flushctl;

/* Runs a flush for one request: writes "ok TEXT\n" / "err TEXT\n" lines to out and returns the
 * exit code (0, 75, 76) or FLUSHCTL_AGAIN. Called on the server's thread, one request at a time. */
typedef int (*flushctl_handler)(void *arg, FILE *out);

/* Serves {state_dir}/control.sock (mode 0660) on a thread of its own. Only the holder of the
 * daemon's lock may call this: a leftover socket file is removed. NULL (logged) on failure. */
struct flushctl *flushctl_start(const char *state_dir, flushctl_handler handler, void *arg);
/* Stops the thread (a request under way is finished first) and removes the socket. NULL-safe. */
void flushctl_stop(struct flushctl *fc);

/* The command's side: asks the daemon and prints its answer (ok lines on out, err lines on
 * stderr). Returns the exit code: the daemon's; FLUSHCTL_AGAIN when the daemon does not serve
 * control.sock (yet) or answered that its uploader stopped; 75 when it went away mid-answer. */
int flushctl_request(const char *state_dir, FILE *out);

/* A `flush` on its own (no daemon): takes {state_dir}/FLUSH_LOCK, waiting (and saying so on
 * stderr) while another flush holds it, so no two upload at once. The fd to close when done,
 * or -errno. */
int flushctl_lock_standalone(const char *state_dir);

#endif
