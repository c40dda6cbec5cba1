/* test_flush_check.c — `flush` on its own checks the buffer's file (SPEC §5 quick_check) beside
 * its first batches, not before them (issue #15): a damaged file still stops the upload, is moved
 * aside exactly as it was found and a fresh chain says so; nothing the flush wrote meanwhile
 * reached the main file. The store's calls on real SQLite files, then the built agent against the
 * reference platform over HTTPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>

#include "test_flush_env.h"

/* The name in dir that starts with prefix and is not a -wal/-shm companion; caller frees. */
static char *find_aside(const char *dir, const char *prefix)
{
	char *found = NULL;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && !strstr(e->d_name, "-wal") &&
		    !strstr(e->d_name, "-shm")) {
			assert_null(found); /* one only */
			found = h_path(dir, e->d_name);
		}
	if (d)
		closedir(d);
	return found;
}

static bool same_bytes(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *x = h_read_file(a, &la), *y = h_read_file(b, &lb);
	bool same = x && y && la == lb && memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return same;
}

/* Junk over a leaf page of the sessions' table: quick_check fails, and the records the flush
 * reads are whole. The file as damaged is kept beside it ("<db>.damaged") to compare. */
static void damage_sessions_page(const char *db)
{
	int64_t page = h_sql_int(db, "SELECT pageno FROM dbstat WHERE name = 'mx_sessions' AND pagetype = 'leaf'"
				     " ORDER BY pageno LIMIT 1 OFFSET 2");
	int64_t size = h_sql_int(db, "PRAGMA page_size");
	assert_true(page > 1 && size >= 512);
	int fd = open(db, O_WRONLY);
	assert_true(fd >= 0);
	char junk[65536];
	memset(junk, 0xA5, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, (size_t)size, (off_t)((page - 1) * size)), (ssize_t)size);
	close(fd);
	char *copy = h_strdupf("%s.damaged", db);
	size_t len = 0;
	char *bytes = h_read_file(db, &len);
	assert_int_equal(h_write_file(copy, bytes, len, 0600), 0);
	free(bytes);
	free(copy);
}

/* The store alone: with BUFFER_CHECK_LATER the open does not check; what is sealed before the
 * check passes stays in the WAL; a damaged file is reported by the wait and, closed, is moved
 * aside by the next ordinary open exactly as it was. */
static void test_store_check_later(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 300);
	char *db = h_path(f->state, "buffer.db"), *copy = h_strdupf("%s.damaged", db);
	damage_sessions_page(db);

	struct buffer *b = NULL;
	char *moved = NULL;
	assert_int_equal(buffer_open(f->state, BUFFER_CHECK_LATER, &b, &moved), 0);
	assert_null(moved); /* not checked yet */
	assert_int_equal(buffer_check_poll(b), 1);
	assert_int_equal(buffer_check_start(b), 0);
	/* A write meanwhile (the sink's acknowledgement): into the WAL, never the main file. */
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(buffer_sink_update(b, "platform", 7, 1, 0, NULL, NULL), 0);
	assert_int_equal(buffer_commit(b), 0);
	assert_int_equal(buffer_check_wait(b), -EBADMSG);
	assert_int_equal(buffer_check_poll(b), -EBADMSG); /* kept */
	assert_int_equal(buffer_check_wait(b), -EBADMSG);
	buffer_close(b);
	assert_true(same_bytes(db, copy)); /* no checkpoint into the damaged file */

	assert_int_equal(buffer_open(f->state, 0, &b, &moved), 0);
	assert_non_null(moved);
	assert_true(same_bytes(moved, copy));
	char *wal = h_strdupf("%s-wal", moved);
	struct stat st;
	assert_int_equal(stat(wal, &st), 0); /* the acknowledgement, moved aside with it */
	assert_true(st.st_size > 0);
	struct chain_head h;
	buffer_head(b, &h);
	assert_int_equal(h.seq, 0);
	assert_int_equal(buffer_check_poll(b), 0); /* an ordinary open: checked there */
	buffer_close(b);
	free(wal);
	free(moved);

	/* A sound file: the check passes and checkpoints resume. */
	assert_int_equal(buffer_open(f->state, BUFFER_CHECK_LATER, &b, NULL), 0);
	assert_int_equal(buffer_check_start(b), 0);
	assert_int_equal(buffer_check_wait(b), 0);
	assert_int_equal(buffer_check_poll(b), 0);
	buffer_close(b);
	free(copy);
	free(db);
}

/* The built agent: `flush` on a file whose sessions' pages are damaged (the records it sends are
 * whole). The check fails while the slow platform takes the first batches; no batch goes out
 * after, the file is moved aside as it was, the fresh chain's first record says so. */
static void test_flush_stops_on_a_damaged_file(void **state)
{
	struct fx *f = *state;
	const int n = 2000; /* 40 batches of 50, each answered after 50 ms */
	seal_sessions(f, n);
	char *db = h_path(f->state, "buffer.db"), *copy = h_strdupf("%s.damaged", db);
	damage_sessions_page(db);
	plat_cmd(f, "fault slow 50 count=0");

	char *out = NULL, *err = NULL;
	int code = agent(f, "flush", &out, &err);
	int64_t head = platform_head(f);
	print_message("flush: exit %d, platform head %lld of %d\n%s%s", code, (long long)head, n, out ? out : "",
		      err ? err : "");
	assert_true(head < n);                     /* stopped, not drained */
	assert_non_null(strstr(err, "failed its check"));
	assert_non_null(strstr(err, "is damaged"));
	/* With batches out the platform holds the old chain, which the fresh one cannot follow. */
	assert_int_equal(code, head > 0 ? EX_PROTOCOL : 0);

	char *aside = find_aside(f->state, "buffer.db.corrupt-");
	assert_non_null(aside);
	assert_true(same_bytes(aside, copy));      /* nothing lost, nothing written into it */
	/* What the platform holds is the old chain's own prefix. */
	char *theirs = h_strdupf("SELECT hash FROM records WHERE agent_id = 'agent-1' AND seq = %lld", (long long)head);
	if (head > 0) {
		char *ours = h_strdupf("SELECT hash FROM records WHERE seq = %lld", (long long)head);
		char *a = h_sql_text(f->plat.db, theirs), *b = h_sql_text(aside, ours);
		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);
		free(a);
		free(b);
		free(ours);
	}
	char *line = h_sql_text(db, "SELECT line FROM records WHERE seq = 1");
	assert_non_null(line);
	assert_non_null(strstr(line, "buffer was damaged; moved aside to "));
	assert_int_equal(local_head(f), 1);
	free(line);
	free(theirs);
	free(aside);
	free(out);
	free(err);
	free(copy);
	free(db);
}

/* A sound file: the flush drains it, and the file is checked (moved aside nowhere). */
static void test_flush_sound_file(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 500);
	char *out = NULL, *err = NULL;
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	assert_int_equal(platform_head(f), 500);
	assert_null(find_aside(f->state, "buffer.db.corrupt-"));
	assert_null(strstr(err, "check"));
	free(out);
	free(err);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_check_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_stops_on_a_damaged_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_sound_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
