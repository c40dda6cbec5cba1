/* test_verify_remote.c — `verify --remote` (SPEC §2, §6 checkpoints): the built agent against the
 * reference platform over real HTTPS, after the three attacks a local `verify` cannot see (a
 * record changed and every later hash recomputed, the acknowledged tail cut, records deleted
 * and passed off as pruned), and on the happy paths and with the platform down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "platfix.h"
#include "timeutil.h"
#include "uploader.h"

struct fx {
	char *dir, *certs, *cfg_path;
	struct platfix plat;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	FILE *devnull;
	int64_t next_session;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = platfix_folder("test_verify_remote", &f->certs);
	assert_non_null(f->dir);
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	char *plat = platfix_config(&f->plat);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/state\" },"
		"  \"platform\": { %s, \"batch_max_records\": 7, \"timeout_s\": 5 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\","
		"    \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->dir, plat);
	free(plat);
	f->cfg_path = h_path(f->dir, "agent.json");
	h_write_file(f->cfg_path, text, (size_t)-1, 0644);
	free(text);
	struct config_errors errs = { 0 };
	if (config_load(f->cfg_path, &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	timeutil_set_zone("Asia/Shanghai");
	f->devnull = fopen("/dev/null", "w");
	*state = f;
	return 0;
}

static void close_buffer(struct fx *f)
{
	core_free(f->core);
	f->core = NULL;
	buffer_close(f->buf);
	f->buf = NULL;
}

static void open_buffer(struct fx *f)
{
	if (f->buf)
		return;
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
	assert_non_null(f->core);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close_buffer(f);
	config_free(f->cfg);
	platfix_free(&f->plat);
	fclose(f->devnull);
	h_done_dir(f->dir);
	free(f->certs);
	free(f->cfg_path);
	free(f);
	return 0;
}

static void seal_sessions(struct fx *f, int n)
{
	open_buffer(f);
	for (int i = 0; i < n; i++, f->next_session++) {
		struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
		char user[32];
		snprintf(user, sizeof(user), "user-%lld", (long long)f->next_session);
		int64_t start = 1793577600 + f->next_session * 3600;
		o.u.session = (struct obs_session){ .start = start, .end = start + 1800, .user = user,
						    .org = "太原理工大学", .external = 1, .samples = 1 };
		assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	}
}

static void upload(struct fx *f)
{
	open_buffer(f);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
}

struct run {
	int code;
	char *out, *err;
};

static void verify(struct fx *f, bool remote, struct run *r)
{
	close_buffer(f); /* the agent reads the file as it is on disk */
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"verify",
			 remote ? (char *)"--remote" : NULL, NULL };
	r->code = h_run(argv, NULL, &r->out, &r->err, 30000);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void expect(struct fx *f, bool remote, int code, const char *text)
{
	struct run r;
	verify(f, remote, &r);
	if (r.code != code || !r.out || !strstr(r.out, text))
		fail_msg("verify%s: exit %d (want %d), stdout \"%s\" (want \"%s\"), stderr \"%s\"",
			 remote ? " --remote" : "", r.code, code, r.out ? r.out : "", text, r.err ? r.err : "");
	run_free(&r);
}

/* ---- the attacker's edits, straight on the SQLite file with the agent stopped ---- */

static sqlite3 *db_open(struct fx *f)
{
	close_buffer(f);
	char *path = h_strdupf("%s/state/%s", f->dir, BUFFER_FILE);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	free(path);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void db_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
}

/* Rewrite every stored hash from seq `from` on, as chain.c would have sealed the lines. */
static void rehash_from(sqlite3 *db, int64_t from)
{
	char prev[HASH_HEX_LEN + 1];
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT hash FROM records WHERE seq = ?", -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_int64(q, 1, from - 1);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	sqlite3_stmt *up;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, line FROM records WHERE seq >= ? ORDER BY seq", -1, &q,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE records SET hash = ? WHERE seq = ?", -1, &up, NULL), SQLITE_OK);
	sqlite3_bind_int64(q, 1, from);
	while (sqlite3_step(q) == SQLITE_ROW) {
		char hash[HASH_HEX_LEN + 1];
		chain_hash(prev, (const char *)sqlite3_column_text(q, 1), (size_t)sqlite3_column_bytes(q, 1), hash);
		sqlite3_bind_text(up, 1, hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 2, sqlite3_column_int64(q, 0));
		assert_int_equal(sqlite3_step(up), SQLITE_DONE);
		sqlite3_reset(up);
		memcpy(prev, hash, sizeof(prev));
	}
	sqlite3_finalize(up);
	sqlite3_finalize(q);
}

/* ---- the tests ---- */

/* Attack 1: record 7 (acknowledged) changed, every later hash recomputed. */
static void test_rewritten_record(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 20);
	upload(f);
	seal_sessions(f, 3);
	sqlite3 *db = db_open(f);
	/* The file refuses updates of sealed records: an attacker drops the trigger first. */
	db_exec(db, "DROP TRIGGER records_sealed");
	db_exec(db, "UPDATE records SET line = replace(line, '\"external\":true', '\"external\":false') WHERE seq = 7");
	assert_int_equal(sqlite3_changes(db), 1);
	rehash_from(db, 7);
	sqlite3_close(db);
	/* Consistent, so the local check cannot tell: that is what --remote is for. */
	expect(f, false, 0, "intact: 23 records");
	expect(f, true, 1, "differs: first bad seq 7:");
}

/* Attack 2: the acknowledged tail cut (and the facts that would betray it adjusted). */
static void test_acknowledged_tail_cut(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 20);
	upload(f);
	sqlite3 *db = db_open(f);
	db_exec(db, "DELETE FROM records WHERE seq > 12");
	db_exec(db, "UPDATE meta SET value = '12' WHERE key = 'sealed_seq'");
	db_exec(db, "UPDATE sinks SET acked_seq = 12 WHERE name = 'platform'");
	sqlite3_close(db);
	expect(f, false, 0, "intact: 12 records");
	expect(f, true, 1, "differs: first bad seq 13:");
}

/* Attack 3: records never uploaded deleted and passed off as pruned. */
static void test_deleted_passed_off_as_pruned(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	upload(f);
	seal_sessions(f, 20); /* 11..30, not uploaded */
	sqlite3 *db = db_open(f);
	db_exec(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('pruned_seq', '25'),"
		    " ('pruned_hash', (SELECT hash FROM records WHERE seq = 25))");
	db_exec(db, "DELETE FROM records WHERE seq <= 25");
	sqlite3_close(db);
	expect(f, false, 0, "intact: 5 records, seq 26..30");
	expect(f, true, 1, "differs: first bad seq 11:");
}

/* Honest states: matching, records not uploaded yet, legitimately pruned, nothing anywhere. */
static void test_matches(void **state)
{
	struct fx *f = *state;
	expect(f, true, 0, "matches the platform: it holds nothing");   /* no buffer yet */
	seal_sessions(f, 5);
	expect(f, true, 0, "5 local records not uploaded");            /* nothing uploaded */
	upload(f);
	expect(f, true, 0, "it holds seq 1..5");
	seal_sessions(f, 4);
	expect(f, true, 0, "4 local records not uploaded yet");
	upload(f);
	open_buffer(f);
	const char *sinks[] = { "platform", NULL };
	assert_true(buffer_prune(f->buf, sinks, INT64_MAX) > 0);
	struct chain_head p;
	buffer_pruned(f->buf, &p);
	assert_true(p.seq >= 5);
	expect(f, false, 0, "intact:");
	expect(f, true, 0, "it holds seq 1..9");
	/* The platform lost its copy (or this is another platform): every record differs. */
	platfix_stop(&f->plat);
	unlink(f->plat.db);
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	expect(f, true, 1, "differs: first bad seq 1:");
}

static void test_platform_down(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 3);
	upload(f);
	platfix_stop(&f->plat);
	struct run r;
	verify(f, true, &r);
	assert_int_equal(r.code, EX_TEMPFAIL);
	assert_non_null(strstr(r.out, "intact:")); /* the local part still ran */
	assert_non_null(strstr(r.err, "cannot reach"));
	run_free(&r);
	/* A token the platform does not take is no answer either. */
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	assert_int_equal(platfix_cmd(&f->plat, "token refuse " PLATFIX_TOKEN), 0);
	verify(f, true, &r);
	assert_int_equal(r.code, EX_TEMPFAIL);
	assert_non_null(strstr(r.err, "credentials"));
	run_free(&r);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rewritten_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acknowledged_tail_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_passed_off_as_pruned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_matches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_platform_down, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
