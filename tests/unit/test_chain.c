/* test_chain.c — sealing and verifying the SHA-256 chain on real SQLite files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "harness.h"
#include "log.h"

struct fixture {
	char *dir;
	char *db_path;
	struct buffer *b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_chain");
	f->db_path = h_path(f->dir, BUFFER_FILE);
	assert_int_equal(buffer_open(f->dir, 0, &f->b, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	buffer_close(f->b);
	h_rmtree(f->dir);
	free(f->dir);
	free(f->db_path);
	free(f);
	return 0;
}

static cJSON *event(int i)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "event");
	cJSON_AddStringToObject(o, "at", "2026-11-02T08:00:00+08:00");
	cJSON_AddNullToObject(o, "instrument");
	cJSON_AddStringToObject(o, "type", "agent_start");
	char d[32];
	snprintf(d, sizeof(d), "n%d", i);
	cJSON_AddStringToObject(o, "detail", d);
	return o;
}

static void seal_n(struct buffer *b, int n, int per_txn)
{
	for (int i = 0; i < n;) {
		assert_int_equal(buffer_begin(b), 0);
		for (int k = 0; k < per_txn && i < n; k++, i++) {
			cJSON *o = event(i);
			assert_true(chain_seal(b, o, NULL) > 0);
			cJSON_Delete(o);
		}
		assert_int_equal(buffer_commit(b), 0);
	}
}

/* Tampering goes around the agent, as an attacker with the file would. */
static void tamper(const char *db_path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("tamper: %s", err);
	sqlite3_close(db);
}

static void test_known_answer(void **state)
{
	(void)state;
	const char *line = "{\"seq\":1,\"kind\":\"event\",\"at\":\"2026-11-02T08:00:00+08:00\","
			   "\"instrument\":null,\"type\":\"agent_start\",\"detail\":\"x\"}";
	char out[HASH_HEX_LEN + 1];
	chain_hash("0000000000000000000000000000000000000000000000000000000000000000", line,
		   strlen(line), out);
	/* printf '%s\n%s' 000…0 "$line" | sha256sum */
	assert_string_equal(out, "eb34a403658ebff648d6ee1044785bf2f2d5ea289dc5aec2521a0ddbbd8a18b9");
}

static void test_exact_line_and_first_hash(void **state)
{
	struct fixture *f = *state;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "event");
	cJSON_AddStringToObject(o, "at", "2026-11-02T08:00:00+08:00");
	cJSON_AddNullToObject(o, "instrument");
	cJSON_AddStringToObject(o, "type", "agent_start");
	cJSON_AddStringToObject(o, "detail", "x");
	char *line = NULL;
	assert_int_equal(buffer_begin(f->b), 0);
	assert_int_equal(chain_seal(f->b, o, &line), 1);
	assert_int_equal(buffer_commit(f->b), 0);
	assert_string_equal(line, "{\"seq\":1,\"kind\":\"event\",\"at\":\"2026-11-02T08:00:00+08:00\","
				  "\"instrument\":null,\"type\":\"agent_start\",\"detail\":\"x\"}");
	struct stored_record r;
	assert_int_equal(buffer_get_record(f->b, 1, &r), 0);
	assert_string_equal(r.line, line);
	assert_string_equal(r.kind, "event");
	assert_string_equal(r.hash, "eb34a403658ebff648d6ee1044785bf2f2d5ea289dc5aec2521a0ddbbd8a18b9");
	buffer_record_clear(&r);
	free(line);
	cJSON_Delete(o);
}

static void test_non_ascii_kept_verbatim(void **state)
{
	struct fixture *f = *state;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "session");
	cJSON_AddStringToObject(o, "org", "太原理工大学");
	char *line = NULL;
	assert_int_equal(buffer_begin(f->b), 0);
	assert_int_equal(chain_seal(f->b, o, &line), 1);
	assert_int_equal(buffer_commit(f->b), 0);
	assert_string_equal(line, "{\"seq\":1,\"kind\":\"session\",\"org\":\"太原理工大学\"}");
	free(line);
	cJSON_Delete(o);
}

static void test_refuses_malformed(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(buffer_begin(f->b), 0);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "x"); /* kind not first */
	cJSON_AddStringToObject(o, "kind", "event");
	assert_true(chain_seal(f->b, o, NULL) < 0);
	cJSON_Delete(o);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "event");
	cJSON_AddNumberToObject(o, "seq", 5); /* seq is the chain's to give */
	assert_true(chain_seal(f->b, o, NULL) < 0);
	cJSON_Delete(o);
	buffer_rollback(f->b);
	/* Outside a transaction nothing is sealed. */
	o = event(0);
	assert_true(chain_seal(f->b, o, NULL) < 0);
	cJSON_Delete(o);
	struct chain_head h;
	buffer_head(f->b, &h);
	assert_int_equal(h.seq, 0);
}

static void test_ten_thousand_reopen_verify(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 10000, 500);
	buffer_close(f->b);
	assert_int_equal(buffer_open(f->dir, 0, &f->b, NULL), 0);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 0);
	assert_int_equal(res.records, 10000);
	assert_int_equal(res.first_seq, 1);
	assert_int_equal(res.last_seq, 10000);
	struct chain_head h;
	buffer_head(f->b, &h);
	assert_int_equal(h.seq, 10000);
	assert_string_equal(h.hash, res.head_hash);
}

static void expect_broken(struct fixture *f, int64_t bad)
{
	buffer_close(f->b);
	assert_int_equal(buffer_open(f->dir, BUFFER_READONLY, &f->b, NULL), 0);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 1);
	assert_int_equal(res.bad_seq, bad);
	assert_true(strlen(res.why) > 0);
}

static void test_changed_byte_found(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 10000, 1000);
	tamper(f->db_path, "DROP TRIGGER records_sealed;"
			   "UPDATE records SET line = replace(line, 'n4567', 'n4568') WHERE seq = 4568;");
	expect_broken(f, 4568);
}

static void test_deleted_record_found(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 10000, 1000);
	tamper(f->db_path, "DELETE FROM records WHERE seq = 777;");
	expect_broken(f, 777);
}

static void test_deleted_tail_found(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 100, 100);
	tamper(f->db_path, "DELETE FROM records WHERE seq >= 99;");
	expect_broken(f, 99);
}

static void test_reordered_found(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 10000, 1000);
	/* Swap the content of 300 and 301, hashes and all. */
	tamper(f->db_path,
	       "DROP TRIGGER records_sealed;"
	       "CREATE TEMP TABLE s AS SELECT seq, line, hash FROM records WHERE seq IN (300, 301);"
	       "UPDATE records SET line = (SELECT line FROM s WHERE seq = 301),"
	       "  hash = (SELECT hash FROM s WHERE seq = 301) WHERE seq = 300;"
	       "UPDATE records SET line = (SELECT line FROM s WHERE seq = 300),"
	       "  hash = (SELECT hash FROM s WHERE seq = 300) WHERE seq = 301;");
	expect_broken(f, 300);
}

static void test_rehashed_forgery_found(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 50, 50);
	/* A careful forger changes record 10 and recomputes its hash: record 10 now checks,
	 * but 11 was chained to the old hash, so the break shows at 11. */
	struct stored_record r9, r10;
	assert_int_equal(buffer_get_record(f->b, 9, &r9), 0);
	assert_int_equal(buffer_get_record(f->b, 10, &r10), 0);
	char *forged = strdup(r10.line);
	char *p = strstr(forged, "\"n9\"");
	assert_non_null(p);
	p[2] = '0';
	char hash[HASH_HEX_LEN + 1];
	chain_hash(r9.hash, forged, strlen(forged), hash);
	char *sql = h_strdupf("DROP TRIGGER records_sealed;"
			      "UPDATE records SET line = '%s', hash = '%s' WHERE seq = 10;", forged, hash);
	tamper(f->db_path, sql);
	free(sql);
	free(forged);
	buffer_record_clear(&r9);
	buffer_record_clear(&r10);
	expect_broken(f, 11);
}

/* The file refuses a sealed record changed; a gap is refused by the writer, which holds the
 * head (the file's trigger for it cost as much as the insert: store step 2 dropped it), and
 * one written behind the agent's back is found by verify. */
static void test_database_refuses_update_and_gap(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 3, 3);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE records SET line = 'x' WHERE seq = 2", NULL, NULL, NULL),
			     SQLITE_OK);
	struct chain_head h;
	buffer_head(f->b, &h);
	assert_int_equal(buffer_begin(f->b), 0);
	assert_int_equal(buffer_append_record(f->b, 9, "event", "{\"seq\":9}", 10, h.hash, 0), -EINVAL);
	assert_int_equal(buffer_append_record(f->b, 3, "event", "{\"seq\":3}", 10, h.hash, 0), -EINVAL);
	buffer_rollback(f->b);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO records VALUES(9, 'event', '{\"seq\":9}', 'h', 0)",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 1);
	assert_int_equal(res.bad_seq, 4);
}

static void test_rollback_seals_nothing(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 5, 5);
	assert_int_equal(buffer_begin(f->b), 0);
	cJSON *o = event(99);
	assert_int_equal(chain_seal(f->b, o, NULL), 6);
	assert_int_equal(chain_seal(f->b, o, NULL), 7);
	buffer_rollback(f->b);
	struct chain_head h;
	buffer_head(f->b, &h);
	assert_int_equal(h.seq, 5);
	assert_int_equal(buffer_begin(f->b), 0);
	assert_int_equal(chain_seal(f->b, o, NULL), 6); /* no gap after a rollback */
	assert_int_equal(buffer_commit(f->b), 0);
	cJSON_Delete(o);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 0);
	assert_int_equal(res.records, 6);
}

/* A process killed in the middle of a transaction leaves nothing half-sealed. */
static void test_crash_mid_transaction(void **state)
{
	struct fixture *f = *state;
	seal_n(f->b, 10, 10);
	buffer_close(f->b);
	f->b = NULL;
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct buffer *b;
		if (buffer_open(f->dir, 0, &b, NULL) < 0 || buffer_begin(b) < 0)
			_exit(2);
		for (int i = 0; i < 1000; i++) {
			cJSON *o = event(i);
			chain_seal(b, o, NULL);
			cJSON_Delete(o);
		}
		if (write(pipefd[1], "x", 1) != 1)
			_exit(3);
		pause(); /* killed here, transaction open */
		_exit(4);
	}
	close(pipefd[1]);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(buffer_open(f->dir, 0, &f->b, NULL), 0);
	struct chain_head h;
	buffer_head(f->b, &h);
	assert_int_equal(h.seq, 10);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 0);
	seal_n(f->b, 1, 1);
	buffer_head(f->b, &h);
	assert_int_equal(h.seq, 11);
}

static void test_prune_keeps_head_and_verifies(void **state)
{
	struct fixture *f = *state;
	struct fake_clock fc;
	fake_clock_install(&fc, 1700000000);
	seal_n(f->b, 100, 100);
	fake_clock_advance(&fc, 10 * 86400 * 1000000LL);
	seal_n(f->b, 20, 20);
	struct chain_head before;
	buffer_head(f->b, &before);
	struct sink_state st = { .acked_seq = 110 };
	assert_int_equal(buffer_begin(f->b), 0);
	assert_int_equal(buffer_sink_put(f->b, "platform", &st), 0);
	assert_int_equal(buffer_commit(f->b), 0);
	const char *sinks[] = { "platform", NULL };
	/* Only records both acknowledged and older than the cut go. */
	int64_t pruned = buffer_prune(f->b, sinks, 1700000000 + 5 * 86400);
	assert_int_equal(pruned, 100);
	assert_int_equal(buffer_first_seq(f->b), 101);
	struct chain_head p;
	buffer_pruned(f->b, &p);
	assert_int_equal(p.seq, 100);
	char h100[HASH_HEX_LEN + 1];
	assert_int_equal(buffer_hash_of(f->b, 100, h100), 0);
	assert_string_equal(h100, p.hash);
	struct chain_verify res;
	assert_int_equal(chain_verify(f->b, &res), 0);
	assert_int_equal(res.first_seq, 101);
	assert_int_equal(res.last_seq, 120);
	/* The chain goes on after pruning. */
	seal_n(f->b, 1, 1);
	assert_int_equal(chain_verify(f->b, &res), 0);
	assert_int_equal(res.last_seq, 121);
	/* Unacknowledged records are never pruned, however old. */
	fake_clock_advance(&fc, 1000 * 86400 * 1000000LL);
	assert_int_equal(buffer_prune(f->b, sinks, clock_wall()), 10);
	assert_int_equal(buffer_first_seq(f->b), 111);
	clock_set(NULL);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test_setup_teardown(test_exact_line_and_first_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_ascii_kept_verbatim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ten_thousand_reopen_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_byte_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_record_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_tail_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reordered_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rehashed_forgery_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_database_refuses_update_and_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_seals_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_keeps_head_and_verifies, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
