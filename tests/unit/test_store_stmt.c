/* test_store_stmt.c — the store's statements (stmt.h, issue #14) on real files: a writer
 * statement refuses a thread that does not hold the writer (an error and a log line, never a
 * silent use), transactions do not nest (-EDEADLK), statements follow a file written back
 * under the daemon, and a reader's statement inside its snapshot never holds up a commit.
 * Threads meet on condition variables with a deadline; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "harness.h"

#define TEST_NAME "test_store_stmt"
#include "test_buffer_env.h"
#include "stmt.h"

#define DEADLINE_MS 10000

/* A table of the test's own, as a module would keep one. */
static void make_table(struct buffer *b)
{
	struct store_stmt *s;
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_prepare(b, "CREATE TABLE t_own(k INTEGER PRIMARY KEY, v TEXT, d REAL, x BLOB)", &s),
			 0);
	assert_int_equal(stmt_step(s), STMT_DONE);
	stmt_free(s);
	assert_int_equal(buffer_commit(b), 0);
}

/* What the store logs meanwhile (fd 2 to a file). */
struct capture {
	int saved;
	char *path;
};

static void capture_start(struct capture *c)
{
	c->path = h_path(tmp, "stderr.log");
	int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

static char *capture_end(struct capture *c)
{
	assert_int_equal(dup2(c->saved, 2), 2);
	close(c->saved);
	char *text = h_read_file(c->path, NULL);
	free(c->path);
	return text;
}

/* ---- typed binds and columns ---------------------------------------------------------- */

static void test_binds_and_columns(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	make_table(b);
	struct store_stmt *ins, *sel;
	assert_int_equal(stmt_prepare(b, "INSERT INTO t_own(k, v, d, x) VALUES(?1, ?2, ?3, ?4)", &ins), 0);
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_bind_int64(ins, 1, INT64_MAX), 0);
	assert_int_equal(stmt_bind_textn(ins, 2, "héllo, world", 6), 0); /* cut by bytes: "héllo" */
	assert_int_equal(stmt_bind_double(ins, 3, 0.25), 0);
	assert_int_equal(stmt_bind_blob(ins, 4, "\x00\x01\x02", 3), 0);
	assert_int_equal(stmt_step(ins), STMT_DONE);
	assert_int_equal(stmt_changes(ins), 1);
	stmt_reset(ins);
	assert_int_equal(stmt_bind_int64(ins, 1, -7), 0);
	assert_int_equal(stmt_bind_text(ins, 2, NULL), 0);
	assert_int_equal(stmt_bind_null(ins, 3), 0);
	assert_int_equal(stmt_bind_blob(ins, 4, NULL, 0), 0); /* empty, not NULL */
	assert_int_equal(stmt_step(ins), STMT_DONE);
	stmt_reset(ins);
	/* The same key again: a constraint, told as an errno. */
	assert_int_equal(stmt_bind_int64(ins, 1, -7), 0);
	assert_int_equal(stmt_step(ins), -EEXIST);
	stmt_reset(ins);
	assert_int_equal(buffer_commit(b), 0);

	/* Committed: read back on a reader, outside any transaction. */
	assert_int_equal(stmt_read(b, "SELECT k, v, d, x FROM t_own ORDER BY k", &sel), 0);
	assert_int_equal(stmt_step(sel), STMT_ROW);
	assert_int_equal(stmt_int64(sel, 0), -7);
	assert_true(stmt_is_null(sel, 1));
	assert_null(stmt_text(sel, 1));
	assert_true(stmt_is_null(sel, 2));
	assert_true(stmt_is_blob(sel, 3));
	assert_int_equal(stmt_bytes(sel, 3), 0);
	assert_int_equal(stmt_step(sel), STMT_ROW);
	assert_true(stmt_int64(sel, 0) == INT64_MAX);
	assert_string_equal(stmt_text(sel, 1), "héllo");
	assert_true(stmt_double(sel, 2) == 0.25);
	assert_int_equal(stmt_bytes(sel, 3), 3);
	assert_memory_equal(stmt_blob(sel, 3), "\x00\x01\x02", 3);
	assert_int_equal(stmt_step(sel), STMT_DONE);
	stmt_done(sel);
	stmt_free(ins);
	buffer_close(b);
}

/* ---- misuse: an error and a log line -------------------------------------------------- */

struct other {
	struct buffer *b;
	struct store_stmt *s;
	int step, bind, meta, commit;
};

static void *other_thread(void *arg)
{
	struct other *o = arg;
	o->bind = stmt_bind_int64(o->s, 1, 1);
	o->step = stmt_step(o->s);
	o->meta = buffer_meta_put(o->b, "k", "from another thread");
	o->commit = buffer_commit(o->b);
	return NULL;
}

static void test_writer_statement_refuses_other_threads(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	make_table(b);
	struct store_stmt *ins;
	assert_int_equal(stmt_prepare(b, "INSERT INTO t_own(k, v) VALUES(?1, 'x')", &ins), 0);

	/* Outside any transaction: refused, logged, the statement left alone. */
	struct capture c;
	capture_start(&c);
	int bind = stmt_bind_int64(ins, 1, 1), step = stmt_step(ins);
	int meta = buffer_meta_put(b, "k", "v"), commit = buffer_commit(b);
	char *said = capture_end(&c);
	assert_int_equal(bind, -EPERM);
	assert_int_equal(step, -EPERM);
	assert_int_equal(meta, -EPERM);
	assert_int_equal(commit, -EPERM);
	assert_non_null(strstr(said, "does not hold it"));
	assert_non_null(strstr(said, "INSERT INTO t_own"));
	assert_non_null(strstr(said, "outside a transaction"));
	free(said);

	/* While this thread holds the writer, another thread may not use its statement. */
	assert_int_equal(buffer_begin(b), 0);
	struct other o = { .b = b, .s = ins };
	pthread_t t;
	capture_start(&c);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &o), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	said = capture_end(&c);
	assert_int_equal(o.bind, -EPERM);
	assert_int_equal(o.step, -EPERM);
	assert_int_equal(o.meta, -EPERM);
	assert_int_equal(o.commit, -EPERM);
	assert_non_null(strstr(said, "does not hold it"));
	free(said);
	/* The holder's own use is untouched by all that. */
	assert_int_equal(stmt_bind_int64(ins, 1, 5), 0);
	assert_int_equal(stmt_step(ins), STMT_DONE);
	stmt_reset(ins);
	assert_int_equal(buffer_commit(b), 0);
	assert_int_equal(h_sql_int(buffer_path(b), "SELECT COUNT(*) FROM t_own WHERE k = 5"), 1);
	assert_int_equal(h_sql_int(buffer_path(b), "SELECT COUNT(*) FROM meta WHERE key = 'k'"), 0);
	stmt_free(ins);
	buffer_close(b);
}

static void test_transactions_do_not_nest(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 3);
	assert_int_equal(buffer_begin(b), 0);
	struct capture c;
	capture_start(&c);
	int again = buffer_begin(b);
	const char *sinks[] = { "platform", NULL };
	int64_t pruned = buffer_prune(b, sinks, INT64_MAX);
	char what[512] = "";
	int check = buffer_check_file(b, what, sizeof(what));
	char *said = capture_end(&c);
	assert_int_equal(again, -EDEADLK);
	assert_int_equal(pruned, -EDEADLK);
	assert_int_equal(check, -EDEADLK);
	assert_non_null(strstr(said, "do not nest"));
	free(said);
	/* The outer transaction is still this thread's, and whole. */
	assert_true(buffer_holds_writer(b));
	assert_int_equal(buffer_meta_put(b, "k", "v"), 0);
	assert_int_equal(buffer_commit(b), 0);
	assert_false(buffer_holds_writer(b));
	char *v = NULL;
	assert_int_equal(buffer_meta_get(b, "k", &v), 0);
	assert_string_equal(v, "v");
	free(v);
	buffer_close(b);
}

static int undone;

static void count_undo(void *arg)
{
	(void)arg;
	undone++;
}

static void test_undo_hook_under_the_writer(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	undone = 0;
	assert_int_equal(buffer_on_undo(b, count_undo, NULL), 0);
	seal_some(b, 1);
	assert_int_equal(undone, 0);
	assert_int_equal(buffer_begin(b), 0);
	buffer_rollback(b);
	assert_int_equal(undone, 1);
	buffer_undo_remove(b, count_undo, NULL);
	assert_int_equal(buffer_begin(b), 0);
	buffer_rollback(b);
	assert_int_equal(undone, 1);
	buffer_close(b);
}

/* ---- a file written back under the daemon -------------------------------------------- */

static void test_statements_follow_a_written_back_file(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	make_table(b);
	struct store_stmt *ins, *cnt, *s;
	assert_int_equal(stmt_prepare(b, "INSERT INTO t_own(k) VALUES(?1)", &ins), 0);
	assert_int_equal(stmt_prepare(b, "SELECT COUNT(*) FROM t_own", &cnt), 0);
	assert_int_equal(buffer_begin(b), 0);
	for (int k = 1; k <= 3; k++) {
		stmt_reset(ins);
		assert_int_equal(stmt_bind_int64(ins, 1, k), 0);
		assert_int_equal(stmt_step(ins), STMT_DONE);
	}
	stmt_reset(ins);
	assert_int_equal(buffer_commit(b), 0);
	/* Cached on the reader and on the writer before the file goes. */
	assert_int_equal(stmt_read(b, "SELECT COUNT(*) FROM t_own", &s), 0);
	assert_int_equal(stmt_step(s), STMT_ROW);
	assert_int_equal(stmt_int64(s, 0), 3);
	stmt_done(s);

	char *path = h_path(tmp, "buffer.db");
	char *wal = h_strdupf("%s-wal", path), *shm = h_strdupf("%s-shm", path);
	assert_int_equal(unlink(path), 0);
	unlink(wal);
	unlink(shm);
	char what[1024] = "";
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 1);
	assert_non_null(strstr(what, "deleted"));

	/* The same statements, re-prepared in place, now on the file at the path. */
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_bind_int64(ins, 1, 4), 0);
	assert_int_equal(stmt_step(ins), STMT_DONE);
	stmt_reset(ins);
	assert_int_equal(stmt_step(cnt), STMT_ROW);
	assert_int_equal(stmt_int64(cnt, 0), 4);
	stmt_reset(cnt);
	assert_int_equal(buffer_commit(b), 0);
	assert_int_equal(h_sql_int(path, "SELECT COUNT(*) FROM t_own"), 4);
	/* The reader follows too: its cached statement is prepared again on the new file. */
	assert_int_equal(stmt_read(b, "SELECT COUNT(*) FROM t_own", &s), 0);
	assert_int_equal(stmt_step(s), STMT_ROW);
	assert_int_equal(stmt_int64(s, 0), 4);
	stmt_done(s);
	stmt_free(ins);
	stmt_free(cnt);
	buffer_close(b);
	free(path);
	free(wal);
	free(shm);
}

/* ---- readers never hold up the writer ------------------------------------------------ */

struct snap {
	struct buffer *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool in_snapshot, committed, done;
	int64_t before, during, after;
	int err;
};

static void snap_set(struct snap *s, bool *flag)
{
	pthread_mutex_lock(&s->mu);
	*flag = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Waits for *flag with a deadline; false when it passed. */
static bool snap_wait(struct snap *s, bool *flag)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DEADLINE_MS / 1000;
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	while (!*flag && rc == 0)
		rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
	bool ok = *flag;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static int64_t count_records(struct buffer *b, struct store_stmt **keep)
{
	struct store_stmt *s;
	if (stmt_read(b, "SELECT COUNT(*) FROM records", &s) < 0)
		return -1;
	int64_t n = stmt_step(s) == STMT_ROW ? stmt_int64(s, 0) : -1;
	if (keep)
		*keep = s;
	else
		stmt_done(s);
	return n;
}

static void *reader_thread(void *arg)
{
	struct snap *s = arg;
	/* One snapshot, and a statement left mid-walk inside it (a long report). */
	if (buffer_read_begin(s->b) < 0) {
		s->err = -1;
		snap_set(s, &s->in_snapshot);
		return NULL;
	}
	struct store_stmt *walk = NULL;
	if (stmt_read(s->b, "SELECT seq FROM records ORDER BY seq", &walk) < 0 || stmt_step(walk) != STMT_ROW)
		s->err = -2;
	s->before = count_records(s->b, NULL);
	snap_set(s, &s->in_snapshot);
	if (!snap_wait(s, &s->committed))
		s->err = -3;
	s->during = count_records(s->b, NULL); /* still the snapshot's */
	stmt_done(walk);
	buffer_read_end(s->b);
	s->after = count_records(s->b, NULL); /* a new read: the commit is in */
	snap_set(s, &s->done);
	return NULL;
}

static void test_reader_never_blocks_a_commit(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 10);
	struct snap s = { .b = b };
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader_thread, &s), 0);
	assert_true(snap_wait(&s, &s.in_snapshot));
	assert_int_equal(s.err, 0);
	/* The reader sits inside its snapshot with a statement mid-walk: the commit goes through
	 * at once (a blocked one would end in -EBUSY after the busy timeout). */
	seal_some(b, 5);
	struct chain_head h;
	buffer_head(b, &h);
	assert_int_equal(h.seq, 15);
	snap_set(&s, &s.committed);
	assert_true(snap_wait(&s, &s.done));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.before, 10);
	assert_int_equal(s.during, 10);
	assert_int_equal(s.after, 15);
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);

	/* The same on one thread: a reader's statement mid-step, then a write and a commit. */
	struct store_stmt *open_walk = NULL;
	assert_int_equal(buffer_read_begin(b), 0);
	assert_int_equal(count_records(b, &open_walk), 15);
	seal_some(b, 1);
	assert_int_equal(count_records(b, NULL), 15); /* this thread's snapshot */
	stmt_done(open_walk);
	buffer_read_end(b);
	assert_int_equal(count_records(b, NULL), 16);
	buffer_close(b);
}

static void test_nested_reads_of_one_statement(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 4);
	static const char sql[] = "SELECT seq FROM records ORDER BY seq";
	struct store_stmt *outer, *inner;
	assert_int_equal(stmt_read(b, sql, &outer), 0);
	int64_t pairs = 0;
	while (stmt_step(outer) == STMT_ROW) {
		/* The same SQL while the cached one is in use: a statement of its own. */
		assert_int_equal(stmt_read(b, sql, &inner), 0);
		assert_ptr_not_equal(inner, outer);
		while (stmt_step(inner) == STMT_ROW)
			pairs++;
		stmt_done(inner);
	}
	stmt_done(outer);
	assert_int_equal(pairs, 16);
	/* Inside a transaction the same holds on the writer. */
	assert_int_equal(buffer_begin(b), 0);
	assert_int_equal(stmt_read(b, sql, &outer), 0);
	assert_int_equal(stmt_read(b, sql, &inner), 0);
	assert_ptr_not_equal(inner, outer);
	assert_int_equal(stmt_step(outer), STMT_ROW);
	assert_int_equal(stmt_step(inner), STMT_ROW);
	assert_int_equal(stmt_int64(inner, 0), stmt_int64(outer, 0));
	stmt_done(inner);
	stmt_done(outer);
	assert_int_equal(buffer_commit(b), 0);
	buffer_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_binds_and_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_statement_refuses_other_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions_do_not_nest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_hook_under_the_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statements_follow_a_written_back_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_never_blocks_a_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_reads_of_one_statement, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
