/* daemon.h — `labshare-agent run`: threads, signals, sd_notify, the periodic chores. */
#ifndef LABSHARE_DAEMON_H
#define LABSHARE_DAEMON_H

#include <stdbool.h>

#define LOCK_FILE "agent.lock"
#define METRICS_FILE "metrics.prom"

/* Runs until SIGTERM/SIGINT; returns a sysexits code (0 after a clean stop). */
int daemon_run(const char *config_path);

/* Whether a daemon holds {state_dir}/agent.lock; *pid gets its pid when known. */
bool daemon_running(const char *state_dir, long *pid);

/* For `flush` without a daemon: a shared hold on the daemon's lock file for as long as the
 * flush runs, so a daemon can't start its uploader meanwhile (and `status` still says no
 * daemon runs). Returns the fd (close it to let go), -EWOULDBLOCK when a daemon holds the lock,
 * or another negative errno. */
int daemon_hold_lock_shared(const char *state_dir);

#endif
