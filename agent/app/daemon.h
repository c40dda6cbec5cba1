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

#endif
