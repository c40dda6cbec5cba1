/* metrics_priv.h — the insides of metrics, shared by metrics.c (state, readings, sessions),
 * metrics_slots.c (run slots) and metrics_days.c (daily records); nothing else includes it. */
#ifndef LABSHARE_METRICS_PRIV_H
#define LABSHARE_METRICS_PRIV_H

#include "counter.h"
#include "hysteresis.h"
#include "metrics.h"
#include "stmt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct instrument_cfg;

enum mx_stmt {
	MX_STATE_GET, MX_STATE_PUT, MX_STATE_SET, MX_REPEATS_ADD, MX_REPEATS_GET, MX_SLOT_ADD, MX_SLOT_LATE,
	MX_SLOTS_DUE, MX_SLOT_SEALED, MX_SLOT_OPEN, MX_DAY_SUMS, MX_SESSION_PUT, MX_DAY_SESSIONS,
	MX_FRONTIER, MX_FIRST_SLOT, MX_FIRST_SESSION, MX_DAILY_GET, MX_DAILY_PUT, MX_DIRTY_ADD,
	MX_DIRTY_LIST, MX_DIRTY_DEL, MX_PRUNE_SESSIONS, MX_PRUNE_SLOTS,
	MX_PRUNE_DAILY, MX_LAST_SLOT, MX_DATA_VERSION, MX_LONGEST_SESSION, MX__COUNT
};

/* What is kept per instrument between readings: in memory, and in mx_state as a compact
 * blob written in the transaction of what it produced (metrics.c, state_blob). */
struct inst_state {
	struct counter_state run, smp;
	bool iu_known, iu;
	int64_t iu_us;
	int64_t poll_us;        /* last poll attempt */
	bool poll_ok;
	int64_t cov;            /* coverage: readings are in up to here (seconds) */
	double run_carry, smp_carry;
	struct meter_state meter; /* a metered instrument (hysteresis.c) */
	/* The open slot's amounts not yet in mx_slots (metrics_slots.c): a reading adds to them
	 * in memory, and they reach the slot's row when another slot is touched, when the slot is
	 * due for sealing, or at a clean stop. Saved with the rest, so a crash loses none. The
	 * slot's row exists (its first amount was written there) and is not sealed. */
	bool acc;
	int64_t acc_slot;
	double acc_run, acc_smp, acc_off;
};

/* One instrument of the config, as the core holds it between transactions. */
struct inst_mem {
	bool loaded;
	bool stored;            /* its mx_state row exists: saved with an UPDATE, cheaper than the upsert */
	struct inst_state st;
	/* Repeats still inside an old JSON row, moved to their own row at the first save. */
	int64_t legacy_repeats;
	bool frontier_known, have_frontier;
	int64_t frontier;       /* the newest day with a daily record (before 1970: negative) */
	/* What seal_slots may find in mx_slots, so that a tick with nothing due runs no query:
	 * slots_known false: unknown (read at the next seal_slots); late: a row was marked late;
	 * sql_hi: the newest slot with a row; recheck_cov: coverage at which a row not due at the
	 * last look may be (INT64_MAX: none). */
	bool slots_known, late;
	int64_t sql_hi, recheck_cov;
	/* What seal_days may find, so that a tick with no day to seal runs no query: days_known
	 * false: unknown (also after another process wrote the file, metrics_tick); dirty: mx_dirty
	 * may hold days of it; first_known/have_first/first: its first observation (a slot or a
	 * session), needed while it has no daily record. */
	bool days_known, dirty, first_known, have_first;
	int64_t first;
	/* The longest session stored (end - start, s): how far back a day's sessions can start.
	 * longest_known false: read at the next day sealed (also after another process wrote). */
	bool longest_known;
	int64_t longest;
};

struct metrics {
	struct buffer *buf;
	const struct config *cfg;
	struct store_stmt *st[MX__COUNT];
	bool undo;              /* registered with the buffer's undo hooks */
	/* Indexed like cfg->instruments; dropped on a reload and when a transaction is undone. */
	struct inst_mem *mem;
	size_t n_mem;
	struct store_stmt *meter_st[3]; /* a meter's energy per slot (hysteresis.c); NULL: none */
	/* Once days a late line changed were sealed again, the next such pass waits a grace
	 * (upload interval): not before this wall time. A log read from far behind touches the
	 * same days all the time, and each pass reads every session of each such day again
	 * (issue #15). A first late line is sealed again at the next tick, as before. */
	int64_t redo_after;
	int redone;                 /* days sealed again by the current tick */
	bool dv_known;
	int64_t data_version;   /* PRAGMA data_version at the last tick: moves when others commit */
	/* Inside a batch of observations (metrics_batch, one transaction, no tick meanwhile):
	 * the last day a session marked, so a batch of sessions marks each day once. */
	bool batch;
	const struct instrument_cfg *marked_ic;
	int64_t marked_day;
};

/* Every SQL text of the module (metrics.c), indexed by mx_stmt. */
extern const char *const mx_sql[MX__COUNT];


/* The statement, reset and unbound. */
struct store_stmt *mx(struct metrics *m, enum mx_stmt id);

/* The instrument's state, read from the file at first use and held in memory after; change it
 * in place, then state_save inside the same transaction (a rollback must metrics_forget).
 * 0 or -errno. */
int state_get(struct metrics *m, const struct instrument_cfg *ic, struct inst_state **st);
int state_save(struct metrics *m, const struct instrument_cfg *ic);
/* The stored state of inst (zeros when none; *stored: its row exists) and the repeats an old
 * JSON row still holds: inside a transaction as it stands in it, outside one as committed. */
int state_read(struct metrics *m, const char *inst, struct inst_state *st, int64_t *legacy_repeats,
	       bool *stored);
/* The instrument's slot in memory; NULL when out of memory. */
struct inst_mem *mem_of(struct metrics *m, const struct instrument_cfg *ic);
/* The newest day sealed as a daily record; false when none. */
int frontier_get(struct metrics *m, const struct instrument_cfg *ic, bool *have, int64_t *day);
void frontier_set(struct metrics *m, const struct instrument_cfg *ic, int64_t day);

/* Marks day for a new revision when its daily record is already out. */
int mark_dirty_if_sealed(struct metrics *m, const struct instrument_cfg *ic, int64_t day);
/* An observation at t (a slot's start, a session's start): the first one known moves back. */
void first_seen(struct metrics *m, const struct instrument_cfg *ic, int64_t t);

/* Bounded arithmetic (SPEC §3: sums never overflow): [0, METRICS_SUM_MAX]. */
int64_t sat_add(int64_t a, int64_t b);
int64_t sat_from_double(double x);
/* Microseconds to whole seconds, rounding down also before 1970. */
int64_t floor_s(int64_t us);
int64_t slot_of(int64_t t);

/* metrics_slots.c */
enum amount { AMT_RUN, AMT_SAMPLES, AMT_OFFLINE, AMT_ENERGY };
/* Spread `amount` evenly over [from_us, to_us] into the slots it covers. */
int spread(struct metrics *m, const struct instrument_cfg *ic, enum amount what, double amount,
	   int64_t from_us, int64_t to_us);
int seal_slots(struct metrics *m, const struct instrument_cfg *ic, int *sealed);
/* A clean stop: seal the open slot of now. */
/* The open slot's amounts held in memory written to its row (the state is then to be saved). */
int acc_flush(struct metrics *m, const struct instrument_cfg *ic, struct inst_state *st);
int seal_open_slot(struct metrics *m, const struct instrument_cfg *ic, int64_t now, int *sealed);

/* metrics_days.c */
int seal_days(struct metrics *m, const struct instrument_cfg *ic, int64_t now, bool redo_dirty, int *sealed);

#endif
