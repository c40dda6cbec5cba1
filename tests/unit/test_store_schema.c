/* test_store_schema.c — the store's migration registry on real files: a buffer written by
 * the agent before the registry (schema 3) carries on with nothing re-created or lost, a
 * fresh file gets every owner's tables, a second open changes nothing, a newer file is
 * refused, the store's step 2 drops the contiguity trigger, and one owner's steps commit
 * together or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "chain.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "nrii.h"
#include "schema.h"

/* The migrations of buffer.c as shipped before the registry, verbatim: entry i took
 * PRAGMA user_version i to i + 1. */
static const char *const legacy_ddl[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE records(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, line TEXT NOT NULL,"
	"  hash TEXT NOT NULL, sealed_at INTEGER NOT NULL);"
	"CREATE TRIGGER records_sealed BEFORE UPDATE ON records"
	"  BEGIN SELECT RAISE(ABORT, 'sealed records never change'); END;"
	"CREATE TRIGGER records_contiguous BEFORE INSERT ON records"
	"  WHEN NEW.seq != COALESCE((SELECT MAX(seq) FROM records),"
	"    (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'pruned_seq'), 0) + 1"
	"  BEGIN SELECT RAISE(ABORT, 'seq must follow the chain head'); END;"
	"CREATE TABLE sinks(name TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL DEFAULT 0,"
	"  last_ok INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT, alarm TEXT);"
	"CREATE TABLE cursors(key TEXT PRIMARY KEY, state BLOB NOT NULL, updated_at INTEGER NOT NULL);",
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
	"CREATE TABLE nrii_records(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK(state IN ('pending', 'sent', 'parked')), code INTEGER, text TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, line TEXT, updated_at INTEGER NOT NULL);"
	"CREATE INDEX nrii_records_state ON nrii_records(state, seq);"
	"CREATE TABLE nrii_totals(instrument TEXT NOT NULL, year INTEGER NOT NULL, month INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK(state IN ('pending', 'sent', 'parked')), code INTEGER, text TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, run_h TEXT, service_h TEXT, updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY(instrument, year, month)) WITHOUT ROWID;",
};

static char *tmp, *path;
static char head_hash[HASH_HEX_LEN + 1];

static int setup(void **state)
{
	(void)state;
	tmp = h_mkdtemp("test_store_schema");
	path = tmp ? h_path(tmp, BUFFER_FILE) : NULL;
	return path ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	h_rmtree(tmp);
	free(tmp);
	free(path);
	return 0;
}

static void raw_exec(const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_close(db);
}

/* The first column of the first row, as text ("" for none). Caller frees. */
static char *raw_text(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	const unsigned char *t = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	char *v = strdup(t ? (const char *)t : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void assert_raw(const char *sql, const char *want)
{
	char *v = raw_text(sql);
	if (strcmp(v, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", sql, v, want);
	free(v);
}

/* Every table, index and trigger with the page it lives on: a table made again gets a new
 * page, so an equal snapshot means nothing was re-created. Not mx_sessions: metrics' step 2
 * makes it again under its new key (test_sessions_rekeyed); not records_contiguous: the
 * store's step 2 drops it (test_contiguous_without_trigger). */
static char *objects(void)
{
	return raw_text("SELECT group_concat(type || ' ' || name || ' @' || rootpage || ' ' || IFNULL(sql, ''), "
			"char(10)) FROM (SELECT * FROM sqlite_master WHERE name != 'schema_owners'"
			" AND tbl_name != 'mx_sessions' AND name != 'records_contiguous' ORDER BY name)");
}

/* A buffer as the agent wrote it before the registry: the DDL of schema 1..version, a chain
 * of three records, both sinks' cursors, a driver cursor, and rows in the metrics and NRII
 * tables. */
static void make_legacy(int version)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;"
				      " BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int v = 0; v < version; v++)
		assert_int_equal(sqlite3_exec(db, legacy_ddl[v], NULL, NULL, NULL), SQLITE_OK);
	char prev[HASH_HEX_LEN + 1];
	memset(prev, '0', HASH_HEX_LEN);
	prev[HASH_HEX_LEN] = '\0';
	for (int seq = 1; seq <= 3; seq++) {
		char line[96], hash[HASH_HEX_LEN + 1], *sql;
		int n = snprintf(line, sizeof(line), "{\"seq\":%d,\"kind\":\"event\",\"i\":%d}", seq, seq);
		chain_hash(prev, line, (size_t)n, hash);
		sql = sqlite3_mprintf("INSERT INTO records VALUES(%d, 'event', %Q, %Q, %d)", seq, line, hash,
				      1700000000 + seq);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_free(sql);
		memcpy(prev, hash, sizeof(prev));
	}
	memcpy(head_hash, prev, sizeof(head_hash));
	assert_int_equal(sqlite3_exec(db,
		"INSERT INTO meta VALUES('sealed_seq', '3'), ('agent_id', 'agent-7');"
		"INSERT INTO sinks VALUES('platform', 2, 1700000100, 0, NULL, NULL),"
		" ('nrii', 1, 0, 1700000200, 'busy', NULL);"
		"INSERT INTO cursors VALUES('log:/var/log/x', X'010203', 1700000003);", NULL, NULL, NULL),
		SQLITE_OK);
	if (version >= 2)
		assert_int_equal(sqlite3_exec(db,
			"INSERT INTO mx_state VALUES('i1', '{\"v\":1}');"
			"INSERT INTO mx_slots(instrument, slot, run) VALUES('i1', 1699999200, 300.5);"
			"INSERT INTO mx_sessions VALUES(2, 'i1', 1699990000, 1699993600, 'ann', 'lab', 1, NULL, 0, 1);"
			"INSERT INTO mx_daily VALUES('i1', 19675, '2023-11-14', 1, 3);"
			"INSERT INTO mx_dirty VALUES('i1', 19676);", NULL, NULL, NULL), SQLITE_OK);
	if (version >= 3)
		assert_int_equal(sqlite3_exec(db,
			"INSERT INTO nrii_records VALUES(2, 'session', 'parked', 500, 'refused', 4, '{}', 1700000300);"
			"INSERT INTO nrii_totals(instrument, year, month, state, updated_at)"
			" VALUES('i1', 2023, 10, 'sent', 1700000400);", NULL, NULL, NULL), SQLITE_OK);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; COMMIT", version);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void assert_rows_intact(int version)
{
	assert_raw("SELECT group_concat(seq || ':' || line, ' ') FROM records WHERE seq <= 3",
		   "1:{\"seq\":1,\"kind\":\"event\",\"i\":1} 2:{\"seq\":2,\"kind\":\"event\",\"i\":2} "
		   "3:{\"seq\":3,\"kind\":\"event\",\"i\":3}");
	assert_raw("SELECT group_concat(name || '=' || acked_seq || '/' || next_attempt, ' ') FROM"
		   " (SELECT * FROM sinks ORDER BY name)", "nrii=1/1700000200 platform=2/0");
	assert_raw("SELECT hex(state) FROM cursors WHERE key = 'log:/var/log/x'", "010203");
	assert_raw("SELECT value FROM meta WHERE key = 'agent_id'", "agent-7");
	if (version >= 2) {
		assert_raw("SELECT (SELECT COUNT(*) FROM mx_state) || (SELECT COUNT(*) FROM mx_slots) ||"
			   " (SELECT COUNT(*) FROM mx_sessions) || (SELECT COUNT(*) FROM mx_daily) ||"
			   " (SELECT COUNT(*) FROM mx_dirty)", "11111");
		assert_raw("SELECT run FROM mx_slots", "300.5");
		assert_raw("SELECT user || '@' || start FROM mx_sessions WHERE seq = 2", "ann@1699990000");
	}
	if (version >= 3) {
		assert_raw("SELECT state || ' ' || code || ' ' || attempts FROM nrii_records", "parked 500 4");
		assert_raw("SELECT state FROM nrii_totals WHERE year = 2023 AND month = 10", "sent");
	}
}

static void open_all(int flags, struct buffer **b)
{
	assert_int_equal(buffer_open(tmp, flags, b, NULL), 0);
	assert_int_equal(buffer_schema(*b, &metrics_schema), 0);
	assert_int_equal(buffer_schema(*b, &nrii_schema), 0);
}

static void test_legacy_v3_carries_on(void **state)
{
	(void)state;
	make_legacy(3);
	char *before = objects();
	struct buffer *b;
	open_all(0, &b);
	struct metrics *m = metrics_new(b, NULL);
	assert_non_null(m);
	metrics_free(m);

	struct chain_head head;
	buffer_head(b, &head);
	assert_int_equal(head.seq, 3);
	assert_string_equal(head.hash, head_hash);
	struct chain_verify v;
	assert_int_equal(chain_verify(b, &v), 0);
	assert_int_equal(v.records, 3);
	struct sink_state st;
	assert_int_equal(buffer_sink_get(b, "platform", &st), 0);
	assert_int_equal(st.acked_seq, 2);
	buffer_sink_clear(&st);
	/* The chain goes on from the old head. */
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(chain_seal_text(b, "event", "{\"kind\":\"event\"}", 16, NULL), 4);
	assert_int_equal(buffer_commit(b), 0);
	buffer_close(b);

	char *after = objects();
	assert_string_equal(after, before);
	free(before);
	free(after);
	assert_rows_intact(3);
	assert_raw("PRAGMA user_version", "4");
	assert_raw("SELECT group_concat(owner || '=' || version, ' ') FROM"
		   " (SELECT * FROM schema_owners ORDER BY owner)", "metrics=2 nrii=1 store=2");
	assert_raw("SELECT MAX(seq) FROM records", "4");
	assert_raw("SELECT value FROM meta WHERE key = 'sealed_seq'", "4");
}

static void test_legacy_readonly_untouched(void **state)
{
	(void)state;
	make_legacy(3);
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), 0);
	/* Metrics' tables are behind (step 2, the sessions' key): a reader refuses to guess. */
	assert_int_equal(buffer_schema(b, &metrics_schema), -EROFS);
	struct chain_head head;
	buffer_head(b, &head);
	assert_int_equal(head.seq, 3);
	buffer_close(b);
	/* Read as it is: adopted only by a writer. */
	assert_raw("PRAGMA user_version", "3");
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_owners'", "0");
	assert_rows_intact(3);
}

static void test_legacy_v2_gets_nrii(void **state)
{
	(void)state;
	make_legacy(2);
	char *before = objects();
	struct buffer *b;
	/* Read-only, the NRII tables are not there yet: nothing to read, not an error to log;
	 * metrics' are behind (step 2). */
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), 0);
	assert_int_equal(buffer_schema(b, &metrics_schema), -EROFS);
	assert_int_equal(buffer_schema(b, &nrii_schema), -ENOENT);
	buffer_close(b);
	open_all(0, &b);
	buffer_close(b);
	char *after = objects();
	/* What was there is untouched (same pages, same SQL); the NRII tables are new. */
	for (char *line = before, *end; *line; line = *end ? end + 1 : end) {
		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		char *one = strndup(line, (size_t)(end - line));
		if (!strstr(after, one))
			fail_msg("\"%s\" re-created or lost", one);
		free(one);
	}
	assert_non_null(strstr(after, "table nrii_records"));
	free(before);
	free(after);
	assert_rows_intact(2);
	assert_raw("SELECT group_concat(owner || '=' || version, ' ') FROM"
		   " (SELECT * FROM schema_owners ORDER BY owner)", "metrics=2 nrii=1 store=2");
	assert_raw("SELECT COUNT(*) FROM nrii_records", "0");
}

static const char *const every_object[] = {
	"meta", "records", "records_sealed", "sinks", "cursors", "schema_owners",
	"mx_state", "mx_slots", "mx_sessions", "mx_daily", "mx_dirty",
	"nrii_records", "nrii_records_state", "nrii_totals",
};

static void test_fresh_file_gets_every_table(void **state)
{
	(void)state;
	struct buffer *b;
	open_all(0, &b);
	buffer_close(b);
	for (size_t i = 0; i < sizeof(every_object) / sizeof(every_object[0]); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM sqlite_master WHERE name = '%s'", every_object[i]);
		assert_raw(sql, "1");
	}
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_contiguous'", "0");
	assert_raw("SELECT group_concat(owner || '=' || version, ' ') FROM"
		   " (SELECT * FROM schema_owners ORDER BY owner)", "metrics=2 nrii=1 store=2");
	assert_raw("SELECT COUNT(*) FROM meta", "0");
}

static void test_second_open_changes_nothing(void **state)
{
	(void)state;
	make_legacy(3);
	struct buffer *b;
	open_all(0, &b);
	buffer_close(b);
	/* The schema cookie moves with any CREATE, DROP or ALTER. */
	char *cookie = raw_text("PRAGMA schema_version"), *before = objects();
	open_all(0, &b);
	assert_int_equal(buffer_schema(b, &metrics_schema), 0); /* and again on the same buffer */
	struct metrics *m = metrics_new(b, NULL);
	assert_non_null(m);
	metrics_free(m);
	buffer_close(b);
	char *after = objects();
	assert_raw("PRAGMA schema_version", cookie);
	assert_string_equal(after, before);
	free(cookie);
	free(before);
	free(after);
	assert_rows_intact(3);
}

static void test_newer_refused(void **state)
{
	(void)state;
	struct buffer *b;
	open_all(0, &b);
	buffer_close(b);
	/* One owner newer: that module refuses, the others carry on. */
	raw_exec("UPDATE schema_owners SET version = 3 WHERE owner = 'metrics'");
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	assert_int_equal(buffer_schema(b, &metrics_schema), -EPROTO);
	assert_null(metrics_new(b, NULL));
	assert_int_equal(buffer_schema(b, &nrii_schema), 0);
	buffer_close(b);
	assert_raw("SELECT version FROM schema_owners WHERE owner = 'metrics'", "3");
	/* The store's own tables newer: the file is not opened at all. */
	raw_exec("UPDATE schema_owners SET version = 3 WHERE owner = 'store'");
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), -EPROTO);
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), -EPROTO);
	raw_exec("UPDATE schema_owners SET version = 2 WHERE owner = 'store'; PRAGMA user_version = 5");
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), -EPROTO);
	assert_raw("PRAGMA user_version", "5");
}

/* Metrics' step 2 on a file of the old layout (rowid table + index) holding sessions: every
 * row kept with its seq under the key (instrument, start, end, user), no user as 0 (apart
 * from a user named "0"), a row kept twice before kept once (the first sealed), the old
 * index gone; the key then refuses the same session and takes one differing in the user. */
static void test_sessions_rekeyed(void **state)
{
	(void)state;
	make_legacy(3);
	raw_exec("INSERT INTO mx_sessions VALUES(5, 'i1', 1699993600, 1699997200, NULL, '', 0, 3, 1, 0);"
		 "INSERT INTO mx_sessions VALUES(6, 'i1', 1699993600, 1699997200, '0', 'lab', 1, NULL, 0, 0);"
		 "INSERT INTO mx_sessions VALUES(7, 'i2', 1699990000, 1699993600, 'ann', 'lab', 1, NULL, 0, 1);"
		 "INSERT INTO mx_sessions VALUES(8, 'i2', 1699990000, 1699993600, 'ann', 'lab', 1, NULL, 0, 1);");
	struct buffer *b;
	open_all(0, &b);
	buffer_close(b);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'mx_sessions_start' OR name = 'mx_sessions_1'",
		   "0");
	assert_raw("SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info("
		   "(SELECT name FROM pragma_index_list('mx_sessions') WHERE origin = 'pk')) ORDER BY seqno)",
		   "instrument,start,end,user");
	assert_raw("SELECT COUNT(*) FROM pragma_index_list('mx_sessions')", "1");
	assert_raw("SELECT group_concat(seq || ':' || instrument || '/' || typeof(user) || '/' || user || '/' ||"
		   " org || '/' || external || '/' || IFNULL(samples, '-') || '/' || closed_auto || manual, ' ')"
		   " FROM (SELECT * FROM mx_sessions ORDER BY seq)",
		   "2:i1/text/ann/lab/1/-/01 5:i1/integer/0//0/3/10 6:i1/text/0/lab/1/-/00 7:i2/text/ann/lab/1/-/01");
	/* The same session is refused by the key; another user (none vs "0" vs "bob") is new. */
	raw_exec("INSERT INTO mx_sessions(seq, instrument, start, end, user, org, external, closed_auto, manual)"
		 " VALUES(9, 'i1', 1699993600, 1699997200, 0, '', 0, 0, 0) ON CONFLICT DO NOTHING;"
		 "INSERT INTO mx_sessions(seq, instrument, start, end, user, org, external, closed_auto, manual)"
		 " VALUES(10, 'i1', 1699993600, 1699997200, 'bob', '', 0, 0, 0) ON CONFLICT DO NOTHING");
	assert_raw("SELECT group_concat(seq, ',') FROM (SELECT seq FROM mx_sessions ORDER BY seq)", "2,5,6,7,10");
	assert_raw("SELECT version FROM schema_owners WHERE owner = 'metrics'", "2");
}

/* The store's step 2 on a file of schema 3 and on one of the registry at store version 1:
 * the records_contiguous trigger is dropped (it cost as much as the insert), nothing else
 * changes, and the writer still refuses a seq that does not follow the head. */
static void test_contiguous_without_trigger(void **state)
{
	(void)state;
	make_legacy(3);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_contiguous'", "1");
	struct buffer *b;
	open_all(0, &b);
	buffer_close(b);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_contiguous'", "0");
	assert_raw("SELECT version FROM schema_owners WHERE owner = 'store'", "2");
	/* A file of the registry at store version 1, the trigger back as it shipped. */
	raw_exec("CREATE TRIGGER records_contiguous BEFORE INSERT ON records"
		 "  WHEN NEW.seq != COALESCE((SELECT MAX(seq) FROM records),"
		 "    (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'pruned_seq'), 0) + 1"
		 "  BEGIN SELECT RAISE(ABORT, 'seq must follow the chain head'); END;"
		 "UPDATE schema_owners SET version = 1 WHERE owner = 'store'");
	/* Read as it is by a reader (`status` before the daemon's restart), not migrated. */
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), 0);
	struct chain_head head;
	buffer_head(b, &head);
	assert_int_equal(head.seq, 3);
	buffer_close(b);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_contiguous'", "1");
	char *before = objects();
	open_all(0, &b);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records_contiguous'", "0");
	assert_raw("SELECT version FROM schema_owners WHERE owner = 'store'", "2");
	char *after = objects();
	assert_string_equal(after, before);
	free(before);
	free(after);

	/* The head is 3: 5 (a gap), 3 (again) and 1 are refused, 4 is taken. */
	const char *line = "{\"seq\":5,\"kind\":\"event\"}";
	char hash[HASH_HEX_LEN + 1];
	chain_hash(head_hash, line, strlen(line), hash);
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(buffer_append_record(b, 5, "event", line, strlen(line), hash, 1700000005), -EINVAL);
	assert_int_equal(buffer_append_record(b, 3, "event", line, strlen(line), hash, 1700000005), -EINVAL);
	assert_int_equal(buffer_append_record(b, 1, "event", line, strlen(line), hash, 1700000005), -EINVAL);
	assert_int_equal(chain_seal_text(b, "event", "{\"kind\":\"event\"}", 16, NULL), 4);
	assert_int_equal(buffer_append_record(b, 4, "event", line, strlen(line), hash, 1700000005), -EINVAL);
	assert_int_equal(buffer_commit(b), 0);
	struct chain_verify v;
	assert_int_equal(chain_verify(b, &v), 0);
	assert_int_equal(v.records, 4);
	buffer_close(b);
	assert_raw("SELECT group_concat(seq, ',') FROM records", "1,2,3,4");
}

/* A module of the future: its steps land together or not at all, and a later binary with
 * one more step takes the file from where it was. */
static const char *const bad_steps[] = {
	"CREATE TABLE zz_one(x INTEGER);",
	"CREATE TABLE zz_two(y INTEGER); CREATE TABLE zz_one(again);",
};
static const char *const good_steps[] = {
	"CREATE TABLE zz_one(x INTEGER);",
	"CREATE TABLE zz_two(y INTEGER);",
	"ALTER TABLE zz_two ADD COLUMN z TEXT;",
};

static void test_steps_atomic_and_appended(void **state)
{
	(void)state;
	const struct store_schema bad = { .owner = "zz", .steps = bad_steps, .n = 2 };
	const struct store_schema v2 = { .owner = "zz", .steps = good_steps, .n = 2 };
	const struct store_schema v3 = { .owner = "zz", .steps = good_steps, .n = 3 };
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	assert_true(buffer_schema(b, &bad) < 0);
	buffer_close(b);
	assert_raw("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'zz%'", "0");
	assert_raw("SELECT COUNT(*) FROM schema_owners WHERE owner = 'zz'", "0");

	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	assert_int_equal(buffer_schema(b, &v2), 0);
	buffer_close(b);
	raw_exec("INSERT INTO zz_two VALUES(42)");
	/* A read-only reader of an owner behind refuses to guess. */
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), 0);
	assert_int_equal(buffer_schema(b, &v3), -EROFS);
	buffer_close(b);
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	assert_int_equal(buffer_schema(b, &v3), 0);
	/* The older binary meets the newer file. */
	assert_int_equal(buffer_schema(b, &v2), -EPROTO);
	buffer_close(b);
	assert_raw("SELECT y || IFNULL(z, '-') FROM zz_two", "42-");
	assert_raw("SELECT version FROM schema_owners WHERE owner = 'zz'", "3");
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING - 1); /* the refusals are expected here */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_legacy_v3_carries_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_readonly_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_v2_gets_nrii, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_file_gets_every_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions_rekeyed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contiguous_without_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_steps_atomic_and_appended, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
