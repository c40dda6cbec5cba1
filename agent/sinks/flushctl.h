/* flushctl.h — `flush` beside a running daemon (SPEC §2): the daemon serves
 * {state_dir}/control.sock and its own uploader does the work, so no second uploader ever runs;
 * the command asks there and prints the daemon's answer. */
#ifndef LABSHARE_FLUSHCTL_H
#define LABSHARE_FLUSHCTL_H

#include <stdio.h>

#define CONTROL_SOCKET "control.sock"

struct flushctl;

/* Runs a flush for one request: writes "ok TEXT\n" / "err TEXT\n" lines to out and returns the
 * exit code (0, 75, 76). Called on the server's thread, one request at a time. */
typedef int (*flushctl_handler)(void *arg, FILE *out);

/* Serves {state_dir}/control.sock (mode 0660) on a thread of its own. Only the holder of the
 * daemon's lock may call this: a leftover socket file is removed. NULL (logged) on failure. */
struct flushctl *flushctl_start(const char *state_dir, flushctl_handler handler, void *arg);
/* Stops the thread (a request under way is finished first) and removes the socket. NULL-safe. */
void flushctl_stop(struct flushctl *fc);

/* The command's side: asks the daemon and prints its answer (ok lines on out, err lines on
 * stderr). Returns the exit code: the daemon's, or 75 when it can't be asked or stops. */
int flushctl_request(const char *state_dir, FILE *out);

#endif
