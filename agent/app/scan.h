/* scan.h — `labshare-agent profiles` and `labshare-agent scan BUS [--units A-B]` (SPEC §2). */
#ifndef LABSHARE_SCAN_H
#define LABSHARE_SCAN_H

#include <stdio.h>

struct config;

/* Every built-in meter profile with its map and public source. 0. */
int profiles_list(FILE *out);

/* Probes units A..B (default 1-247) of the configured bus BUS, read-only: one request per
 * unit with the bus's time-out and no retry tells whether it answers, then each profile's
 * voltage and frequency registers say which profiles fit. argv[0] is "scan". Returns 0 when
 * a unit answered, 1 when none did, 73 when a daemon owns the bus, 64 on a usage error. */
int scan_run(const struct config *cfg, int argc, char **argv, FILE *out);

#endif
