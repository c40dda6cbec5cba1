/* test_buffer.c — the SQLite buffer on real files: pragmas, schema, damaged files moved
 * aside, cursors, sinks, meta, read-only opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer.h"
#include "stmt.h"
#include "chain.h"
#include "harness.h"

#define TEST_NAME "test_buffer"
#define SEAL_PAD "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#include "test_buffer_env.h"
#include "log.h"

static char *pragma_text(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char *v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int count_corrupt_files(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "buffer.db.corrupt-", 18) == 0 && !strstr(e->d_name, "-wal") &&
		    !strstr(e->d_name, "-shm"))
			n++;
	closedir(d);
	return n;
}

static void test_creates_wal_schema(void **state)
{
	(void)state;
	char *dir = h_path(tmp, "state/nested");
	struct buffer *b;
	assert_int_equal(buffer_open(dir, 0, &b, NULL), 0);
	char *path = h_path(dir, "buffer.db");
	assert_string_equal(buffer_path(b), path);
	char *mode = pragma_text(path, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	char *ver = pragma_text(path, "PRAGMA user_version");
	assert_string_equal(ver, "4"); /* versions per owner (schema.h) */
	free(mode);
	free(ver);
	/* synchronous is per connection: ask the writer's, inside its transaction. */
	struct store_stmt *st;
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_read(b, "PRAGMA synchronous", &st), 0);
	assert_int_equal(stmt_step(st), STMT_ROW);
	assert_int_equal(stmt_int(st, 0), 2); /* FULL */
	stmt_done(st);
	assert_int_equal(buffer_commit(b), 0);
	buffer_close(b);
	free(path);
	free(dir);
}

static void test_readonly_missing(void **state)
{
	(void)state;
	struct buffer *b = NULL;
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), -ENOENT);
	assert_null(b);
	struct stat st;
	char *path = h_path(tmp, "buffer.db");
	assert_int_equal(stat(path, &st), -1); /* a read-only open never creates */
	free(path);
}

static void test_garbage_file_moved_aside(void **state)
{
	(void)state;
	char *path = h_path(tmp, "buffer.db");
	assert_int_equal(h_write_file(path, "this is not a database, it is a shopping list\n", (size_t)-1, 0600), 0);
	struct buffer *b;
	char *moved = NULL;
	assert_int_equal(buffer_open(tmp, 0, &b, &moved), 0);
	assert_non_null(moved);
	assert_non_null(strstr(moved, "buffer.db.corrupt-"));
	char *kept = h_read_file(moved, NULL);
	assert_non_null(kept); /* never deleted */
	assert_string_equal(kept, "this is not a database, it is a shopping list\n");
	free(kept);
	seal_some(b, 3); /* the fresh buffer works */
	struct chain_head h;
	buffer_head(b, &h);
	assert_int_equal(h.seq, 3);
	buffer_close(b);
	assert_int_equal(count_corrupt_files(tmp), 1);
	free(moved);
	free(path);
}

static void test_damaged_pages_moved_aside(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	for (int i = 0; i < 20; i++)
		seal_some(b, 200);
	buffer_close(b);
	/* Scribble over pages in the middle of the file (after a checkpoint the data is there). */
	char *path = h_path(tmp, "buffer.db");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 64 * 1024);
	int fd = open(path, O_WRONLY);
	char junk[8192];
	memset(junk, 0xA5, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), st.st_size / 2 - 4096), (ssize_t)sizeof(junk));
	close(fd);
	char *moved = NULL;
	assert_int_equal(buffer_open(tmp, 0, &b, &moved), 0);
	assert_non_null(moved);
	struct chain_head h;
	buffer_head(b, &h);
	assert_int_equal(h.seq, 0);
	buffer_close(b);
	free(moved);
	free(path);
}

static void test_readonly_damaged_not_moved(void **state)
{
	(void)state;
	char *path = h_path(tmp, "buffer.db");
	assert_int_equal(h_write_file(path, "garbage garbage garbage garbage garbage garbage garbage garbage "
					    "garbage garbage garbage garbage garbage garbage", (size_t)-1, 0600), 0);
	struct buffer *b = NULL;
	assert_true(buffer_open(tmp, BUFFER_READONLY, &b, NULL) < 0);
	assert_int_equal(count_corrupt_files(tmp), 0);
	free(path);
}

static void test_newer_schema_refused(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	buffer_close(b);
	char *path = h_path(tmp, "buffer.db");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), -EPROTO);
	free(path);
}

static void test_cursors_sinks_meta(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	void *data;
	size_t len;
	assert_int_equal(buffer_cursor_get(b, "log:/x", &data, &len), -ENOENT);
	/* Writes outside a transaction are refused: nothing nests, nothing locks on its own. */
	assert_int_equal(buffer_cursor_put(b, "log:/x", "\x01\x00\x02", 3), -EPERM);
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(buffer_cursor_put(b, "log:/x", "\x01\x00\x02", 3), 0);
	assert_int_equal(buffer_cursor_put(b, "log:/x", "\x01\x00\x03", 3), 0);
	assert_int_equal(buffer_commit(b), 0);
	assert_int_equal(buffer_cursor_get(b, "log:/x", &data, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "\x01\x00\x03", 3);
	free(data);

	struct sink_state st = { .acked_seq = 42, .last_ok = 1700000000, .last_error = (char *)"timeout" };
	assert_int_equal(buffer_sink_put(b, "platform", &st), -EPERM);
	assert_int_equal(buffer_sink_update(b, "platform", 1, 0, 0, NULL, NULL), -EPERM);
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(buffer_sink_put(b, "platform", &st), 0);
	assert_int_equal(buffer_commit(b), 0);
	struct sink_state got;
	assert_int_equal(buffer_sink_get(b, "platform", &got), 0);
	assert_int_equal(got.acked_seq, 42);
	assert_int_equal(got.last_ok, 1700000000);
	assert_string_equal(got.last_error, "timeout");
	assert_null(got.alarm);
	buffer_sink_clear(&got);
	assert_int_equal(buffer_sink_get(b, "nrii", &got), 0);
	assert_int_equal(got.acked_seq, 0);
	buffer_sink_clear(&got);

	char *v;
	assert_int_equal(buffer_meta_get(b, "nothing", &v), 0);
	assert_null(v);
	assert_int_equal(buffer_meta_put(b, "k", "v1"), -EPERM);
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(buffer_meta_put(b, "k", "v1"), 0);
	assert_int_equal(buffer_meta_put(b, "k", "v2"), 0);
	assert_int_equal(buffer_commit(b), 0);
	assert_int_equal(buffer_meta_get(b, "k", &v), 0);
	assert_string_equal(v, "v2");
	free(v);
	buffer_close(b);

	/* All of it survives a reopen, read-only. */
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &b, NULL), 0);
	assert_int_equal(buffer_cursor_get(b, "log:/x", &data, &len), 0);
	assert_memory_equal(data, "\x01\x00\x03", 3);
	free(data);
	assert_int_equal(buffer_sink_get(b, "platform", &got), 0);
	assert_int_equal(got.acked_seq, 42);
	buffer_sink_clear(&got);
	buffer_close(b);
}

static void test_cursor_rolls_back_with_records(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	assert_int_equal(buffer_begin(b), 0);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "event");
	assert_int_equal(chain_seal(b, o, NULL), 1);
	assert_int_equal(buffer_cursor_put(b, "c", "abc", 3), 0);
	buffer_rollback(b);
	void *data;
	size_t len;
	assert_int_equal(buffer_cursor_get(b, "c", &data, &len), -ENOENT);
	struct chain_head h;
	buffer_head(b, &h);
	assert_int_equal(h.seq, 0);
	cJSON_Delete(o);
	buffer_close(b);
}

static void test_bytes_grow(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	int64_t before = buffer_bytes(b);
	seal_some(b, 2000);
	int64_t after = buffer_bytes(b);
	assert_true(after > before + 2000 * 100);
	buffer_close(b);
}

static int64_t count_rows(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n = -1;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM records", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* SPEC §5: buffer.db (and its -wal/-shm) deleted under an open buffer: written back from the
 * open database, reopened, and later writes go to the file on disk. A statement of another
 * module (stmt_prepare) follows the reopen. */
static void deleted_written_back(bool companions_too)
{
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	struct store_stmt *ext = NULL;
	assert_int_equal(stmt_prepare(b, "SELECT COUNT(*) FROM records", &ext), 0);
	seal_some(b, 20);
	char what[1024] = "";
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 0); /* in place: nothing to do */
	char *path = h_path(tmp, "buffer.db");
	char *wal = h_strdupf("%s-wal", path), *shm = h_strdupf("%s-shm", path);
	assert_int_equal(unlink(path), 0);
	if (companions_too) {
		unlink(wal);
		unlink(shm);
	}
	seal_some(b, 5); /* written into the unlinked file: must not be lost either */
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 1);
	assert_non_null(strstr(what, "deleted"));
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_rows(path), 25);
	seal_some(b, 3);
	assert_int_equal(count_rows(path), 28); /* the new writes reach the file on disk */
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_step(ext), STMT_ROW);
	assert_int_equal(stmt_int64(ext, 0), 28);
	stmt_reset(ext);
	assert_int_equal(buffer_commit(b), 0);
	struct chain_verify v;
	assert_int_equal(chain_verify(b, &v), 0);
	assert_int_equal(v.first_seq, 1);
	assert_int_equal(v.last_seq, 28);
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 0);
	stmt_free(ext);
	buffer_close(b);
	free(path);
	free(wal);
	free(shm);
}

static void test_deleted_file_written_back(void **state)
{
	(void)state;
	deleted_written_back(true);
}

/* Only buffer.db deleted: the old -wal/-shm left at the path must not be applied to the
 * restored file (they are moved aside with it). */
static void test_deleted_main_file_only(void **state)
{
	(void)state;
	deleted_written_back(false);
}

/* A file put in its place is moved aside (never deleted), and the buffer written back. */
static void test_replaced_file_moved_aside(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 7);
	char *path = h_path(tmp, "buffer.db");
	char *other = h_path(tmp, "other");
	assert_int_equal(h_write_file(other, "not ours\n", (size_t)-1, 0644), 0);
	assert_int_equal(rename(other, path), 0);
	char what[1024] = "";
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 1);
	assert_non_null(strstr(what, "replaced"));
	assert_int_equal(count_rows(path), 7);
	DIR *d = opendir(tmp);
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "buffer.db.replaced-", 19) != 0 || strchr(e->d_name + 19, '-'))
			continue;
		char *p = h_path(tmp, e->d_name);
		char *text = h_read_file(p, NULL);
		found += text && strcmp(text, "not ours\n") == 0;
		free(text);
		free(p);
	}
	closedir(d);
	assert_int_equal(found, 1);
	seal_some(b, 1);
	assert_int_equal(count_rows(path), 8);
	buffer_close(b);
	free(path);
	free(other);
}

/* The whole state folder removed (rm -r): made again and the buffer written back into it. */
static void test_state_folder_removed(void **state)
{
	(void)state;
	char *sd = h_path(tmp, "state");
	struct buffer *b;
	assert_int_equal(buffer_open(sd, 0, &b, NULL), 0);
	seal_some(b, 4);
	assert_int_equal(h_rmtree(sd), 0);
	char what[1024] = "";
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 1);
	char *path = h_path(sd, "buffer.db");
	assert_int_equal(count_rows(path), 4);
	seal_some(b, 1);
	assert_int_equal(count_rows(path), 5);
	buffer_close(b);
	free(path);
	free(sd);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING - 1); /* the damaged-file errors are expected here */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_wal_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_pages_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_damaged_not_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursors_sinks_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_rolls_back_with_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_file_written_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_main_file_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_file_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_folder_removed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
