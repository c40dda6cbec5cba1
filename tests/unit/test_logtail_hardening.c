/* test_logtail_hardening.c — the log driver against what a careless or hostile lab PC may
 * hold (issue 13): symbolic links and the agent's own files, malformed lines without their
 * text, a BOM on a data line, a glob of thousands of files, logs rewritten shorter in place,
 * cursors with numbers out of range. Real files, a real SQLite buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "logtail.h"
#include "status.h"
#include "timeutil.h"

#include "test_logtail_env.h"

/* ---- hardening (issue 13) ---- */

#define JSONL_FIELDS "\"format\": \"jsonl\", \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" }"
#define SECRET "tok_SECRET_7c1f0a9e"

static char *jsonl_row(int i, const char *user)
{
	return h_strdupf("{\"s\":\"2026-11-02T%02d:%02d:00+08:00\",\"e\":\"2026-11-02T%02d:%02d:30+08:00\",\"u\":\"%s\"}\n",
			 8 + i / 60 % 12, i % 60, 8 + i / 60 % 12, i % 60, user);
}

struct find_text {
	const char *needle;
	size_t hits;
};

static int find_cb(const struct stored_record *r, void *arg)
{
	struct find_text *ft = arg;
	if (memmem(r->line, r->line_len, ft->needle, strlen(ft->needle)))
		ft->hits++;
	return 0;
}

/* How many sealed records hold the text anywhere. */
static size_t sealed_with(struct env *e, const char *needle)
{
	struct find_text ft = { needle, 0 };
	assert_int_equal(buffer_each_record(e->buf, 1, INT64_MAX, find_cb, &ft), 0);
	return ft.hits;
}

static void make_dir(struct env *e, const char *name)
{
	char *p = fpath(e, name);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void link_to(struct env *e, const char *target, const char *name)
{
	char *p = fpath(e, name);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

/* The reproduction: a log replaced by a link to the token file sent the token inside a
 * log_malformed detail. Links are followed only with follow_symlinks, and never to the agent's
 * own secrets or state, whatever the name or the link. */
static void test_symlinks_and_own_files(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(
		"{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " },"
		"{ \"path\": \"{dir}/g/*.jsonl\", " JSONL_FIELDS " },"
		"{ \"path\": \"{dir}/f/*.jsonl\", \"follow_symlinks\": true, " JSONL_FIELDS " }");
	char *token = fpath(e, "token");
	assert_int_equal(h_write_file(token, SECRET "\n", (size_t)-1, 0600), 0);
	make_dir(e, "g");
	make_dir(e, "f");
	char *row = jsonl_row(0, "a");
	write_file(e, "usage.jsonl", row);
	free(row);
	env_start(e);
	wait_sessions(e, 1);

	/* swapped for a link to the token while followed; in the glob, links to the token, to a
	 * good file and a hard link to the token */
	char *usage = fpath(e, "usage.jsonl");
	assert_int_equal(unlink(usage), 0);
	assert_int_equal(symlink(token, usage), 0);
	row = jsonl_row(1, "linked");
	write_file(e, "other.txt", row);
	free(row);
	char *other = fpath(e, "other.txt");
	link_to(e, token, "g/token.jsonl");
	link_to(e, other, "g/other.jsonl");
	char *hard = fpath(e, "g/hard.jsonl");
	assert_int_equal(link(token, hard), 0);
	/* with follow_symlinks: a link to a good file is read; to the token, the buffer or the
	 * state folder's files, never */
	link_to(e, other, "f/other.jsonl");
	link_to(e, token, "f/token.jsonl");
	char *db = h_strdupf("%s/" BUFFER_FILE, e->cfg->agent.state_dir);
	link_to(e, db, "f/buffer.jsonl");
	char *hard2 = fpath(e, "f/hard.jsonl");
	assert_int_equal(link(token, hard2), 0);
	/* the other files go on */
	row = jsonl_row(2, "b");
	write_file(e, "g/good.jsonl", row);
	free(row);
	wait_sessions(e, 3);
	settle(e);
	assert_users_any_order(e, "a b linked"); /* "linked" once: through f/, not through g/ */
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	assert_int_equal(count(e, "event", "log_malformed"), 0);

	/* A file made in the state folder after the start (status.json is replaced each time it
	 * is written) is known for what it is too. */
	char *status = h_strdupf("%s/status.json", e->cfg->agent.state_dir);
	assert_int_equal(h_write_file(status, "{\"" SECRET "\":1}\n", (size_t)-1, 0644), 0);
	link_to(e, status, "f/status.jsonl");
	row = jsonl_row(3, "c");
	write_file(e, "f/good.jsonl", row);
	free(row);
	wait_sessions(e, 4);
	settle(e);
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	assert_users_any_order(e, "a b c linked");
	free(status);
	free(db);
	free(hard);
	free(hard2);
	free(other);
	free(usage);
	free(token);
	env_free(e);
}

/* A malformed line's text never goes into a sealed record: file, line and reason only. */
static void test_malformed_detail_without_text(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
	char *row = jsonl_row(0, "a");
	write_file(e, "usage.jsonl", row);
	free(row);
	append(e, "usage.jsonl", "{\"s\":\"2026-11-02 " SECRET "\",\"e\":\"2026-11-02T09:00:00+08:00\",\"u\":\"x\"}\n");
	append(e, "usage.jsonl", "password=" SECRET "\n");
	append(e, "usage.jsonl", "{\"s\":\"2026-11-02T10:00:00+08:00\",\"e\":\"2026-11-02T11:00:00+08:00\",\"u\":\"" SECRET "\xff\"}\n");
	row = jsonl_row(5, "b");
	append(e, "usage.jsonl", row);
	free(row);
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 3);
	settle(e);
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	struct recs rs;
	recs_load(e, &rs, "event", "log_malformed");
	assert_int_equal(rs.n, 3);
	const char *want[] = { "usage.jsonl:2: bad start time", "usage.jsonl:3: not JSON",
			       "usage.jsonl:4: not valid UTF-8" };
	for (size_t i = 0; i < 3; i++) {
		char *full = h_strdupf("%s/%s", e->dir, want[i]);
		assert_string_equal(str(rs.v[i], "detail"), full);
		free(full);
	}
	recs_clear(&rs);
	env_free(e);
}

/* A BOM where a data line begins (files concatenated) doesn't make the line malformed. */
static void test_bom_on_data_line(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "a"), *r2 = csv_row(2, "b");
	char *text = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s\xef\xbb\xbf%s", r1, r2);
	write_file(e, "usage.csv", text);
	wait_sessions(e, 2);
	settle(e);
	assert_users(e, "a b");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(text);
	free(r1);
	free(r2);
	env_free(e);
}

static bool sessions_reached(void *arg)
{
	struct db_want *w = arg;
	return db_sessions(w->state_dir) >= w->n;
}

static void wait_db_sessions(struct env *e, int64_t n)
{
	struct db_want w = { e->cfg->agent.state_dir, n, 0 };
	if (!h_wait_for(sessions_reached, &w, 60000))
		fail_msg("waited for %" PRId64 " sessions, have %" PRId64, n, db_sessions(w.state_dir));
}

#define MANY_FILES 4200

/* A glob matches any number of files: all are read, and one made later is found too. */
static void test_glob_without_cap(void **state)
{
	(void)state;
	struct env *e = env_new_stopped("{ \"path\": \"{dir}/many/*.jsonl\", " JSONL_FIELDS " }");
	make_dir(e, "many");
	for (int i = 0; i < MANY_FILES; i++) {
		char name[64], user[32];
		snprintf(name, sizeof(name), "many/u%05d.jsonl", i);
		snprintf(user, sizeof(user), "u%05d", i);
		char *row = jsonl_row(i % 720, user);
		write_file(e, name, row);
		free(row);
	}
	env_start(e);
	wait_db_sessions(e, MANY_FILES);
	char *row = jsonl_row(1, "later");
	write_file(e, "many/later.jsonl", row);
	free(row);
	wait_db_sessions(e, MANY_FILES + 1);
	settle(e);
	assert_int_equal(db_sessions(e->cfg->agent.state_dir), MANY_FILES + 1);
	assert_int_equal(sealed_with(e, "\"user\":\"later\""), 1);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_free(e);
}

/* A log rewritten shorter in place, keeping its last line (a log trimmed by a script, an
 * editor's save): the lines already read are not read again. */
static void test_rewritten_shorter_in_place(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
	char *a = jsonl_row(0, "a"), *b = jsonl_row(1, "b"), *c = jsonl_row(2, "c"), *d = jsonl_row(3, "d");
	char *abc = h_strdupf("%s%s%s", a, b, c);
	write_file(e, "usage.jsonl", abc);
	wait_sessions(e, 3);
	settle(e);
	/* in place: same inode, truncated and written again with the last line only */
	write_file(e, "usage.jsonl", c);
	settle(e);
	append(e, "usage.jsonl", d);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");

	/* the last two lines kept, and a new one: only the new one is read */
	char *e5 = jsonl_row(4, "e");
	char *cde = h_strdupf("%s%s%s", c, d, e5);
	write_file(e, "usage.jsonl", cde);
	wait_sessions(e, 5);
	settle(e);
	assert_users(e, "a b c d e");

	/* truncated and written with lines that were not its tail: read as new */
	char *f = jsonl_row(5, "f"), *g = jsonl_row(6, "g");
	char *fg = h_strdupf("%s%s", f, g);
	write_file(e, "usage.jsonl", fg);
	wait_sessions(e, 7);
	settle(e);
	assert_users(e, "a b c d e f g");
	free(fg);
	free(f);
	free(g);
	free(cde);
	free(e5);
	free(abc);
	free(a);
	free(b);
	free(c);
	free(d);
	env_free(e);
}

/* The same for CSV: the rewritten file starts with its header again, then the kept lines. */
static void test_csv_rewritten_shorter_in_place(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *a = csv_row(1, "a"), *b = csv_row(2, "b"), *c = csv_row(3, "c"), *d = csv_row(4, "d");
	char *all = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s%s%s", a, b, c);
	write_file(e, "usage.csv", all);
	wait_sessions(e, 3);
	settle(e);
	char *kept = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s%s", c, d);
	write_file(e, "usage.csv", kept);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(kept);
	free(all);
	free(a);
	free(b);
	free(c);
	free(d);
	env_free(e);
}

/* A cursor whose numbers no int64 holds (1e400 reads as inf) is unreadable, not cast: the
 * log stops loudly instead of reading from a made-up offset. */
static void test_cursor_numbers_out_of_range(void **state)
{
	(void)state;
	static const char *const bad[] = { "1e400", "-1e20", "1e300" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env *e = env_new_stopped("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
		char *row = jsonl_row(0, "a");
		write_file(e, "usage.jsonl", row);
		free(row);
		char *path = fpath(e, "usage.jsonl");
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		char *key = logtail_cursor_key(INST, e->cfg->instruments[0].logs[0].path);
		char *cur = h_strdupf("{\"v\":1,\"lines\":0,\"malformed\":0,\"files\":[{\"path\":\"%s\","
				      "\"dev\":\"%ju\",\"ino\":\"%ju\",\"fp\":\"0\",\"sum\":\"0\",\"fp_len\":0,"
				      "\"off\":%s,\"line\":0}]}", path, (uintmax_t)st.st_dev,
				      (uintmax_t)st.st_ino, bad[i]);
		assert_int_equal(core_submit(e->core, NULL, 0, key, cur, strlen(cur)), 0);
		env_start(e);
		cJSON *whole = status_of_source(e->cfg, &logtail_source, e->lt), *insts = cJSON_GetObjectItem(whole, "instruments");
		const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
		assert_string_equal(str(l, "state"), "error");
		cJSON_Delete(whole);
		settle(e);
		assert_int_equal(count(e, "session", NULL), 0);
		free(cur);
		free(key);
		free(path);
		env_free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symlinks_and_own_files),
		cmocka_unit_test(test_malformed_detail_without_text),
		cmocka_unit_test(test_bom_on_data_line),
		cmocka_unit_test(test_glob_without_cap),
		cmocka_unit_test(test_rewritten_shorter_in_place),
		cmocka_unit_test(test_csv_rewritten_shorter_in_place),
		cmocka_unit_test(test_cursor_numbers_out_of_range),
	};
	const char *only = getenv("LOGTAIL_TESTS"); /* e.g. "test_glob*": one test while working */
	if (only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, setup, NULL);
}
