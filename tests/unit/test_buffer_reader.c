/* test_buffer_reader.c — readers on connections of their own (issue #14), on real files: the
 * writer commits while a reader holds a snapshot, readers see committed data only, and they
 * follow a file written back under the daemon. Waits are conditions with a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "harness.h"

#define TEST_NAME "test_buffer_reader"
#include "test_buffer_env.h"
#include "periods.h"

#define DEADLINE_S 10

static int count_cb(const struct stored_record *r, void *arg)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static int count_all(struct buffer *b)
{
	int n = 0;
	assert_int_equal(buffer_each_record(b, 0, INT64_MAX, count_cb, &n), 0);
	return n;
}

static int reader_count(struct buffer_reader *r)
{
	int n = 0;
	assert_int_equal(buffer_reader_each_record(r, 0, INT64_MAX, count_cb, &n), 0);
	return n;
}

/* A reader and a writer thread handing over steps; every wait has a deadline. */
struct relay {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int step;                /* 1: reader inside its snapshot, 2: writer committed, 3: go on */
	struct buffer *b;
	int commits;
	int seen;
	int writer_saw;          /* records the writer read inside its own transaction */
};

static void relay_set(struct relay *rl, int step)
{
	pthread_mutex_lock(&rl->mu);
	rl->step = step;
	pthread_cond_broadcast(&rl->cv);
	pthread_mutex_unlock(&rl->mu);
}

static bool relay_wait(struct relay *rl, int step)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DEADLINE_S;
	pthread_mutex_lock(&rl->mu);
	int rc = 0;
	while (rl->step < step && rc == 0)
		rc = pthread_cond_timedwait(&rl->cv, &rl->mu, &until);
	bool ok = rl->step >= step;
	pthread_mutex_unlock(&rl->mu);
	return ok;
}

static void *writer_commits(void *arg)
{
	struct relay *rl = arg;
	if (!relay_wait(rl, 1))
		return NULL;
	for (int i = 0; i < rl->commits; i++) {
		if (buffer_begin(rl->b) < 0)
			return NULL;
		seal_one(rl->b, 100 + i);
		if (buffer_commit(rl->b) < 0)
			return NULL;
	}
	relay_set(rl, 2);
	return NULL;
}

/* Inside the reader's walk: waits for the writer to commit N more records. With one shared
 * connection and mutex the writer could not commit, and this wait would run out. */
static int wait_for_writer(const struct stored_record *r, void *arg)
{
	struct relay *rl = arg;
	rl->seen++;
	if (r->seq == 1) {
		relay_set(rl, 1);
		if (!relay_wait(rl, 2))
			return -ETIMEDOUT;
	}
	return 0;
}

static void test_writer_commits_while_reader_reads(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 10);
	struct relay rl = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
			    .b = b, .commits = 5 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer_commits, &rl), 0);
	int r = buffer_each_record(b, 1, INT64_MAX, wait_for_writer, &rl);
	relay_set(&rl, 3); /* let a writer stuck on a timeout end */
	pthread_join(t, NULL);
	assert_int_equal(r, 0);          /* the writer committed while the reader held its snapshot */
	assert_int_equal(rl.seen, 10);   /* the snapshot: what was committed when the walk began */
	assert_int_equal(count_all(b), 15);

	/* The same with a reader of one's own, over a range, and buffer_get_record beside it. */
	struct buffer_reader *rd;
	assert_int_equal(buffer_reader_open(b, &rd), 0);
	struct relay rl2 = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
			     .b = b, .commits = 7 };
	assert_int_equal(pthread_create(&t, NULL, writer_commits, &rl2), 0);
	r = buffer_reader_each_record(rd, 1, 12, wait_for_writer, &rl2);
	relay_set(&rl2, 3);
	pthread_join(t, NULL);
	assert_int_equal(r, 0);
	assert_int_equal(rl2.seen, 12);
	assert_int_equal(reader_count(rd), 22);
	struct stored_record rec;
	assert_int_equal(buffer_reader_get_record(rd, 22, &rec), 0);
	assert_int_equal(rec.seq, 22);
	buffer_record_clear(&rec);
	assert_int_equal(buffer_reader_get_record(rd, 23, &rec), -ENOENT);
	buffer_reader_close(rd);
	struct chain_verify v;
	assert_int_equal(chain_verify(b, &v), 0);
	assert_int_equal(v.last_seq, 22);
	buffer_close(b);
}

static void *writer_holds_open(void *arg)
{
	struct relay *rl = arg;
	if (buffer_begin(rl->b) < 0)
		return NULL;
	for (int i = 0; i < 3; i++)
		seal_one(rl->b, 200 + i);
	rl->writer_saw = count_all(rl->b); /* its own pending records, on the writer */
	relay_set(rl, 1);
	if (!relay_wait(rl, 2)) {
		buffer_rollback(rl->b);
		return NULL;
	}
	buffer_commit(rl->b);
	relay_set(rl, 3);
	return NULL;
}

static void test_readers_see_committed_only(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 10);
	struct relay rl = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .b = b };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer_holds_open, &rl), 0);
	assert_true(relay_wait(&rl, 1));
	/* The writer is inside its transaction, holding its mutex: reads go on, without it. */
	assert_int_equal(count_all(b), 10);
	struct stored_record rec;
	assert_int_equal(buffer_get_record(b, 11, &rec), -ENOENT);
	assert_int_equal(buffer_get_record(b, 10, &rec), 0);
	buffer_record_clear(&rec);
	relay_set(&rl, 2);
	assert_true(relay_wait(&rl, 3));
	pthread_join(t, NULL);
	assert_int_equal(rl.writer_saw, 13);
	assert_int_equal(count_all(b), 13);

	/* period_sums (the report's, NRII's totals) reads beside an open write transaction too. */
	struct period_sums ps;
	assert_int_equal(period_sums(b, "inst-1", 0, 100000, &ps, NULL, NULL), 0); /* makes the tables */
	struct relay rl2 = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .b = b };
	assert_int_equal(pthread_create(&t, NULL, writer_holds_open, &rl2), 0);
	assert_true(relay_wait(&rl2, 1));
	assert_int_equal(period_sums(b, "inst-1", 0, 100000, &ps, NULL, NULL), 0);
	assert_int_equal(ps.days_sealed, 0);
	relay_set(&rl2, 2);
	assert_true(relay_wait(&rl2, 3));
	pthread_join(t, NULL);
	buffer_close(b);
}

/* The file deleted under the daemon and written back (buffer_check_file): a reader opened
 * before follows it to the new file, so it sees what is sealed after. */
static void test_readers_follow_written_back_file(void **state)
{
	(void)state;
	struct buffer *b;
	assert_int_equal(buffer_open(tmp, 0, &b, NULL), 0);
	seal_some(b, 10);
	struct buffer_reader *rd;
	assert_int_equal(buffer_reader_open(b, &rd), 0);
	assert_int_equal(reader_count(rd), 10);
	assert_int_equal(count_all(b), 10); /* the buffer's own idle reader, opened now */
	char *path = h_path(tmp, "buffer.db");
	assert_int_equal(unlink(path), 0);
	seal_some(b, 4);
	char what[1024] = "";
	assert_int_equal(buffer_check_file(b, what, sizeof(what)), 1);
	seal_some(b, 3);
	assert_int_equal(reader_count(rd), 17);
	assert_int_equal(count_all(b), 17);
	struct stored_record rec;
	assert_int_equal(buffer_reader_get_record(rd, 17, &rec), 0);
	buffer_record_clear(&rec);
	buffer_reader_close(rd);
	buffer_close(b);
	free(path);
}

/* A read-only buffer (report, verify, status) reads through readers too. */
static void test_readonly_buffer_reader(void **state)
{
	(void)state;
	struct buffer *w, *ro;
	assert_int_equal(buffer_open(tmp, 0, &w, NULL), 0);
	seal_some(w, 6);
	assert_int_equal(buffer_open(tmp, BUFFER_READONLY, &ro, NULL), 0);
	assert_int_equal(count_all(ro), 6);
	seal_some(w, 2);
	assert_int_equal(count_all(ro), 8);
	buffer_close(ro);
	buffer_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writer_commits_while_reader_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_see_committed_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_follow_written_back_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_buffer_reader, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
