/* metrics.h — turns observations into the figures of SPEC §4: run time per 15-minute slot
 * (sealed as `run` records), sessions kept for daily unions, and `daily` records per
 * instrument and closed local day, revised when late data changes a day. */
#ifndef LABSHARE_METRICS_H
#define LABSHARE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "records.h"

struct buffer;
struct config;
struct obs_reading;
struct obs_session;

#define SLOT_S 900

struct metrics;

struct metrics *metrics_new(struct buffer *b, const struct config *cfg);
void metrics_free(struct metrics *m);
void metrics_set_config(struct metrics *m, const struct config *cfg);

/* Inside the caller's transaction. */
int metrics_session(struct metrics *m, int64_t seq, const char *instrument,
		    const struct obs_session *s, bool external);
int metrics_reading(struct metrics *m, const char *instrument, const struct obs_reading *r);

/* Seal run records of closed slots and daily records of closed days (own transaction).
 * Returns how many records were sealed, or a negative errno. */
int metrics_tick(struct metrics *m, int64_t now);
/* A clean stop: seal each open slot up to now. */
int metrics_stop(struct metrics *m, int64_t now);

/* The figures of one local day as they stand (for daily records and tests). */
int metrics_day(struct metrics *m, const char *instrument, int64_t day_start,
		struct daily_figures *f);

/* Forget what only served days before `before` (sessions that ended, slots, day marks): those
 * days' records are sealed, and pruned with the chain. Own transaction; 0 or -errno. */
int metrics_prune(struct metrics *m, int64_t before);

/* Run hours counted so far for status (the run counter's last value × scale), < 0 unknown. */
double metrics_run_hours_total(struct metrics *m, const char *instrument);

#endif
