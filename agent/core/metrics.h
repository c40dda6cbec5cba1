/* metrics.h — turns observations into the figures of SPEC §4: run time per 15-minute slot
 * (sealed as `run` records), sessions kept for daily unions, and `daily` records per
 * instrument and closed local day, revised when late data changes a day. Each instrument's
 * state is held in memory and written in the transaction of what it produced; calls that
 * write are made inside the caller's transaction, reads for status on a reader. */
#ifndef LABSHARE_METRICS_H
#define LABSHARE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "records.h"

struct buffer;
struct config;
struct store_schema;
struct obs_reading;
struct obs_session;

#define SLOT_S 900
/* Every count and sum of a day is bounded to [0, 2^53 − 1] (SPEC §3: sums never overflow):
 * the largest integer a JSON reader that keeps numbers as doubles (cJSON, JavaScript) holds
 * exactly, so a bounded figure also reads back as what was sealed. */
#define METRICS_SUM_MAX 9007199254740991LL

struct metrics;

/* The module's tables (mx_*), fed to the store's migration registry (metrics_schema.c):
 * metrics_new and period_sums bring them up to date at their first use of a buffer. */
extern const struct store_schema metrics_schema;

/* NULL on failure, logged; also on a READONLY buffer whose file has no metrics tables. */
struct metrics *metrics_new(struct buffer *b, const struct config *cfg);
void metrics_free(struct metrics *m);
/* While no other thread uses m (the daemon stops its sources for a reload). */
void metrics_set_config(struct metrics *m, const struct config *cfg);

/* Inside the caller's transaction, before the session's record is sealed as seq (the chain
 * head + 1: the caller seals it next, in the same transaction): keeps the session and marks
 * the sealed days it touches, 0; or, when the same session (equal instrument, start, end and
 * user, SPEC §3) is kept already, counts the repeat and keeps nothing, 1 — the caller then
 * seals nothing; or -errno. Sessions are kept until metrics_prune (keep_acked_days), which
 * bounds both the table and how far back a repeat is recognised. */
int metrics_session(struct metrics *m, int64_t seq, const char *instrument,
		    const struct obs_session *s, bool external);
int metrics_reading(struct metrics *m, const char *instrument, const struct obs_reading *r);
/* Around the observations of one transaction (core_submit): on, the days sessions touch are
 * marked once per batch (nothing else changes mx_dirty before the transaction ends); off
 * before the commit or rollback. */
void metrics_batch(struct metrics *m, bool on);
/* How many repeated sessions of the instrument were not sealed (for status), or -errno: as
 * committed (on a reader), or inside the caller's transaction as it stands there. */
int64_t metrics_sessions_repeated(struct metrics *m, const char *instrument);

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

/* What memory holds of the instruments' state is read again from the file at next use. Done
 * by the store itself under the writer whenever a transaction is undone (buffer_on_undo);
 * call it only inside the transaction. */
void metrics_forget(struct metrics *m);

/* Run hours counted so far for status (the run counter's last value × scale) as committed,
 * < 0 unknown. */
double metrics_run_hours_total(struct metrics *m, const char *instrument);

/* Run seconds counted so far for the instrument, sealed or not (the slots' rows and the open
 * slot's amounts held with the state), as committed; < 0 on failure. For tests and checks. */
double metrics_run_counted(struct metrics *m, const char *instrument);

#endif
