/* metrics_schema.c — the metrics module's tables in the buffer's file, its entry in the
 * store's migration registry (schema.h). Append steps; never edit a shipped one. */
#include "metrics.h"
#include "schema.h"

static const char *const metrics_steps[] = {
	/* 0 → 1: what metrics.c needs to build run and daily records (schema 2 of the files
	 * from before the registry). */
	"CREATE TABLE mx_state(instrument TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE mx_slots(instrument TEXT NOT NULL, slot INTEGER NOT NULL,"
	"  run REAL NOT NULL DEFAULT 0, run_done REAL NOT NULL DEFAULT 0, run_sealed INTEGER NOT NULL DEFAULT 0,"
	"  samples REAL NOT NULL DEFAULT 0, samples_done REAL NOT NULL DEFAULT 0,"
	"  samples_sealed INTEGER NOT NULL DEFAULT 0, offline REAL NOT NULL DEFAULT 0,"
	"  sealed_to INTEGER NOT NULL DEFAULT 0, late_from INTEGER, late_to INTEGER,"
	"  PRIMARY KEY(instrument, slot)) WITHOUT ROWID;"
	"CREATE TABLE mx_sessions(seq INTEGER PRIMARY KEY, instrument TEXT NOT NULL, start INTEGER NOT NULL,"
	"  end INTEGER NOT NULL, user TEXT, org TEXT, external INTEGER NOT NULL, samples INTEGER,"
	"  closed_auto INTEGER NOT NULL, manual INTEGER NOT NULL);"
	"CREATE INDEX mx_sessions_start ON mx_sessions(instrument, start);"
	"CREATE TABLE mx_daily(instrument TEXT NOT NULL, day INTEGER NOT NULL, date TEXT NOT NULL,"
	"  revision INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(instrument, day)) WITHOUT ROWID;"
	"CREATE TABLE mx_dirty(instrument TEXT NOT NULL, day INTEGER NOT NULL,"
	"  PRIMARY KEY(instrument, day)) WITHOUT ROWID;",
	/* 1 → 2: sessions keyed by what makes the same session (SPEC §3: instrument, start, end,
	 * user), so a session costs one b-tree insert that is its repeat check too, and the day
	 * and period queries (instrument, start range) read the key's prefix. No user is 0 in
	 * the key (which holds no NULL); user has no affinity, so a name stays text and never
	 * reads as 0. Rows kept twice before (none should be) are kept once, the first sealed. */
	"ALTER TABLE mx_sessions RENAME TO mx_sessions_1;"
	"CREATE TABLE mx_sessions(instrument TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,"
	"  user BLOB NOT NULL, org TEXT, external INTEGER NOT NULL, samples INTEGER,"
	"  closed_auto INTEGER NOT NULL, manual INTEGER NOT NULL, seq INTEGER NOT NULL,"
	"  PRIMARY KEY(instrument, start, end, user)) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO mx_sessions(instrument, start, end, user, org, external, samples,"
	"  closed_auto, manual, seq) SELECT instrument, start, end, COALESCE(user, 0), org, external,"
	"  samples, closed_auto, manual, seq FROM mx_sessions_1 ORDER BY seq;"
	"DROP TABLE mx_sessions_1;",
};

const struct store_schema metrics_schema = {
	.owner = "metrics", .steps = metrics_steps,
	.n = sizeof(metrics_steps) / sizeof(metrics_steps[0]), .legacy_from = 2,
};
