/* nrii_schema.c — the NRII sink's tables in the buffer's file, its entry in the store's
 * migration registry (schema.h). Append steps; never edit a shipped one. */
#include "nrii.h"
#include "schema.h"

static const char *const nrii_steps[] = {
	/* 0 → 1: the sink's state per session record and per (instrument, year, month) of
	 * type-4 totals; `line` keeps a parked record for its re-send (schema 3 of the files
	 * from before the registry). */
	"CREATE TABLE nrii_records(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK(state IN ('pending', 'sent', 'parked')), code INTEGER, text TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, line TEXT, updated_at INTEGER NOT NULL);"
	"CREATE INDEX nrii_records_state ON nrii_records(state, seq);"
	"CREATE TABLE nrii_totals(instrument TEXT NOT NULL, year INTEGER NOT NULL, month INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK(state IN ('pending', 'sent', 'parked')), code INTEGER, text TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, run_h TEXT, service_h TEXT, updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY(instrument, year, month)) WITHOUT ROWID;",
};

const struct store_schema nrii_schema = {
	.owner = "nrii", .steps = nrii_steps, .n = sizeof(nrii_steps) / sizeof(nrii_steps[0]),
	.legacy_from = 3,
};
