/* test_logtail.c — the log source driver on real files and a real SQLite buffer: every format
 * and encoding, rotation by rename, copytruncate, truncation, globs, inode reuse, partial lines,
 * restarts and SIGKILL at random moments, malformed lines, back-pressure and status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
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

/* ---- CSV: header, BOM, CRLF, quotes, partial line, restart ---- */

static void test_csv_partial_line_and_restart(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	write_file(e, "usage.csv", "\xef\xbb\xbf" CSV_HEADER
		   "2026-11-02 08:00:00,2026-11-02 10:30:00,张三,\"太原理工大学, 化学\",3,\r\n"
		   "2026-11-02 23:00:00,2026-11-03 01:00:00,李四,山西大学,,\r\n"
		   "2026-11-03 09:00:00,2026-11-03 10:00:00,\"王 \"\"五\"\"\",山西大学,1,是\r\n");
	wait_sessions(e, 3);
	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_string_equal(str(rs.v[0], "start"), "2026-11-02T08:00:00+08:00");
	assert_string_equal(str(rs.v[0], "end"), "2026-11-02T10:30:00+08:00");
	assert_string_equal(str(rs.v[0], "org"), "太原理工大学, 化学");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[0], "external")));
	assert_string_equal(str(rs.v[0], "source"), "log");
	/* across midnight: one session, the core splits the hours */
	assert_string_equal(str(rs.v[1], "end"), "2026-11-03T01:00:00+08:00");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(rs.v[1], "external")));
	assert_string_equal(str(rs.v[2], "user"), "王 \"五\"");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[2], "external"))); /* the column overrides */
	recs_clear(&rs);

	/* A line without its newline waits for it. */
	append(e, "usage.csv", "2026-11-04 09:00:00,2026-11-04 10:00:00,赵六");
	settle(e);
	assert_int_equal(count(e, "session", NULL), 3);

	/* Stopped mid-file, restarted: nothing lost, nothing twice. */
	env_halt(e);
	append(e, "usage.csv", ",山西大学,,\r\n");
	char *r = csv_row(5, "钱七");
	append(e, "usage.csv", r);
	free(r);
	env_start(e);
	wait_sessions(e, 5);
	settle(e);
	assert_users(e, "张三 李四 王 \"五\" 赵六 钱七");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_free(e);
}

/* ---- malformed lines ---- */

static void test_malformed_lines(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *big = malloc(100 * 1024 + 1);
	memset(big, 'x', 100 * 1024);
	big[100 * 1024] = '\0';
	write_file(e, "usage.csv", CSV_HEADER
		   "2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,1,\n"
		   "2026-11-02 08:00:00,2026-11-02 07:00:00,b,o,1,\n"      /* line 3: end before start */
		   "2026-11-02 08:00:00,2026-11-02 09:00:00,\"c,o,1,\n"    /* line 4: open quote... */
		   "2026-11-02 25:00:00,2026-11-02 09:00:00,d,o,1,\n");
	append(e, "usage.csv", big); /* line 6 with the quote's 16-line window, over-long */
	append(e, "usage.csv", "\n2026-11-02 10:00:00,2026-11-02 11:00:00,e,\xff,1,\n"
		   "2026-11-02 12:00:00,2026-11-02 13:00:00,f,o,1,\n");
	free(big);
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 5);
	settle(e);
	assert_users(e, "a f");
	struct recs rs;
	recs_load(e, &rs, "event", "log_malformed");
	assert_int_equal(rs.n, 5);
	char *want = h_strdupf("%s/usage.csv:3: end not after start", e->dir);
	assert_string_equal(str(rs.v[0], "detail"), want); /* file, line, reason: not the text */
	free(want);
	assert_string_equal(str(rs.v[0], "instrument"), INST);
	assert_non_null(strstr(str(rs.v[1], "detail"), "usage.csv:4: quote not closed"));
	assert_non_null(strstr(str(rs.v[2], "detail"), "usage.csv:5: bad start time"));
	assert_non_null(strstr(str(rs.v[3], "detail"), "usage.csv:6: line longer than 65536 bytes"));
	assert_null(strstr(str(rs.v[3], "detail"), "xxx"));
	assert_non_null(strstr(str(rs.v[4], "detail"), "usage.csv:7: not valid UTF-8"));
	recs_clear(&rs);

	/* status: lines and malformed per log, added to an instrument the Modbus driver added */
	cJSON *whole = status_of_source(e->cfg, &logtail_source, e->lt);
	cJSON *insts = cJSON_GetObjectItem(whole, "instruments"), *mine = cJSON_GetArrayItem(insts, 0);
	assert_int_equal(cJSON_GetArraySize(insts), 1);
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(mine, "logs"), 0);
	assert_non_null(l);
	assert_int_equal(cJSON_GetObjectItem(l, "malformed")->valueint, 5);
	assert_int_equal(cJSON_GetObjectItem(l, "lines")->valueint, 8);
	char *p = fpath(e, "usage.csv");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal((int64_t)cJSON_GetObjectItem(l, "offset")->valuedouble, st.st_size);
	assert_string_equal(str(l, "file"), p);
	free(p);
	cJSON_Delete(whole);
	env_free(e);
}

/* ---- rotation ---- */

static void test_rename_rotation(void **state)
{
	(void)state;
	/* Long enough that the old file is still followed when the test writes to it again. */
	logtail_tuning.rotate_wait_ms = 5000;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "u1"), *r2 = csv_row(2, "u2"), *r3 = csv_row(3, "u3"), *r4 = csv_row(4, "u4");
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r1);
	wait_sessions(e, 1);
	char *old = fpath(e, "usage.csv"), *moved = fpath(e, "usage.csv.1");
	assert_int_equal(rename(old, moved), 0);
	/* The program still had the old file open: what it writes there is read too. */
	assert_int_equal(h_append_file(moved, r2, strlen(r2)), 0);
	/* The new file has its own header, with the columns in another order. */
	write_file(e, "usage.csv", "用户,开始时间,结束时间,单位,样品数,对外\n"
		   "u3,2026-11-02 09:00:00,2026-11-02 09:30:00,山西大学,1,\n");
	wait_sessions(e, 3);
	assert_int_equal(h_append_file(moved, r4, strlen(r4)), 0);
	wait_sessions(e, 4);
	wait_count(e, "event", "log_rotated", 1);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 4);
	assert_int_equal(count(e, "event", "log_malformed"), 0);

	/* Rotated while the agent was stopped: the lines the old file got before its rename are
	 * found under its new name. */
	env_halt(e);
	char *r6 = csv_row(6, "u6"), *moved2 = fpath(e, "usage.csv.2");
	append(e, "usage.csv", "u5,2026-11-02 09:35:00,2026-11-02 09:40:00,山西大学,1,\n");
	assert_int_equal(rename(old, moved2), 0);
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r6);
	env_start(e);
	wait_sessions(e, 6);
	wait_count(e, "event", "log_rotated", 2);
	settle(e);
	assert_users(e, "u1 u2 u3 u4 u5 u6");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(r6);
	free(moved2);
	free(old);
	free(moved);
	free(r1);
	free(r2);
	free(r3);
	free(r4);
	env_free(e);
	logtail_tuning.rotate_wait_ms = 200;
}

static void test_copytruncate_and_truncation(void **state)
{
	(void)state;
	/* A glob that matches copytruncate's copy too: the copy must not be read again. */
	struct env *e = env_new("{ \"path\": \"{dir}/app.log*\", \"format\": \"jsonl\","
				" \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" } }");
	write_file(e, "app.log", "{\"s\":\"2026-11-02 08:00:00\",\"e\":\"2026-11-02 09:00:00\",\"u\":\"a\"}\n"
		   "{\"s\":\"2026-11-02 09:00:00\",\"e\":\"2026-11-02 10:00:00\",\"u\":\"b\"}\n");
	wait_sessions(e, 2);
	/* copytruncate: copy, a line slips in between, truncate, new lines. */
	char *log = fpath(e, "app.log"), *copy = fpath(e, "app.log.1");
	append(e, "app.log", "{\"s\":\"2026-11-02 10:00:00\",\"e\":\"2026-11-02 11:00:00\",\"u\":\"c\"}\n");
	size_t len;
	char *data = h_read_file(log, &len);
	assert_int_equal(h_write_file(copy, data, len, 0644), 0);
	free(data);
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 11:00:00\",\"e\":\"2026-11-02 12:00:00\",\"u\":\"d\"}\n");
	wait_sessions(e, 4);
	settle(e);
	char *users = session_users(e);
	/* c is in both files; whichever is read first, it counts once. */
	assert_int_equal(count(e, "session", NULL), 4);
	assert_non_null(strstr(users, "c"));
	free(users);

	/* Plain truncation while running. */
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 13:00:00\",\"e\":\"2026-11-02 14:00:00\",\"u\":\"e\"}\n");
	wait_sessions(e, 5);
	wait_count(e, "event", "log_rotated", 2);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 5);

	/* Truncated and written longer than before while the agent was down: the fingerprint
	 * tells it is not the same content. */
	env_halt(e);
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 15:00:00\",\"e\":\"2026-11-02 16:00:00\",\"u\":\"f\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"
		   "{\"s\":\"2026-11-02 16:00:00\",\"e\":\"2026-11-02 17:00:00\",\"u\":\"g\"}\n");
	env_start(e);
	wait_sessions(e, 7);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 7);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(log);
	free(copy);
	env_free(e);
}

static void test_glob_pickup(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage-*.csv\", \"format\": \"csv\", \"fields\": {"
				" \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\" } }");
	write_file(e, "usage-2026-11-01.csv", "开始时间,结束时间,用户\n2026-11-01 08:00:00,2026-11-01 09:00:00,a\n");
	wait_sessions(e, 1);
	write_file(e, "usage-2026-11-02.csv", "开始时间,结束时间,用户\n2026-11-02 08:00:00,2026-11-02 09:00:00,b\n");
	write_file(e, "usage-2026-11-02.csv.gz", "\x1f\x8b binary");
	wait_sessions(e, 2);
	append(e, "usage-2026-11-01.csv", "2026-11-01 10:00:00,2026-11-01 11:00:00,c\n");
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "a b c");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_halt(e);
	/* One file goes away while stopped, the other grows: on restart both are right. */
	char *p = fpath(e, "usage-2026-11-01.csv");
	assert_int_equal(unlink(p), 0);
	free(p);
	append(e, "usage-2026-11-02.csv", "2026-11-02 10:00:00,2026-11-02 11:00:00,d\n");
	env_start(e);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	env_free(e);
}

struct quick {
	void *lt;
	uint64_t until;
};

static bool quick_done(void *arg)
{
	struct quick *q = arg;
	return logtail_quick_looks(q->lt) >= q->until;
}

/* A glob of many files that no longer change: rounds look at the folder and the files that may
 * change, and the quiet ones in turn (SPEC §3: a round's cost does not grow with them), yet
 * an append to a quiet file, a new file and a rotation are all found, nothing twice. */
static void test_glob_many_quiet_files(void **state)
{
	(void)state;
	enum { N = 300 }; /* past the descriptors kept open (128) and a round's slice (64) */
	logtail_tuning.racy_ms = 30;
	struct env *e = env_new("{ \"path\": \"{dir}/q-*.csv\", \"format\": \"csv\", \"fields\": {"
				" \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\" } }");
	for (int i = 0; i < N; i++) {
		char name[32], *text = h_strdupf("开始时间,结束时间,用户\n2026-11-01 %02d:%02d:00,2026-11-01 %02d:%02d:30,u%d\n",
						  i / 60, i % 60, i / 60, i % 60, i);
		snprintf(name, sizeof(name), "q-%03d.csv", i);
		write_file(e, name, text);
		free(text);
		/* Old files, modified a day ago: none is looked at every round. */
		char *p = fpath(e, name);
		struct timespec old[2] = { { .tv_sec = time(NULL) - 86400 }, { .tv_sec = time(NULL) - 86400 } };
		assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
		free(p);
	}
	wait_sessions(e, N);
	struct quick q = { e->lt, logtail_quick_looks(e->lt) + 3 };
	assert_true(h_wait_for(quick_done, &q, WAIT_MS));
	/* The oldest file is quiet and closed: found by its turn in the slice. */
	append(e, "q-000.csv", "2026-11-02 08:00:00,2026-11-02 09:00:00,late\n");
	wait_sessions(e, N + 1);
	/* A new file changes the folder. */
	write_file(e, "q-new.csv", "开始时间,结束时间,用户\n2026-11-02 10:00:00,2026-11-02 11:00:00,new\n");
	wait_sessions(e, N + 2);
	/* Rotation by rename, a line added to the old file first and one to its successor. */
	q.until = logtail_quick_looks(e->lt) + 3;
	assert_true(h_wait_for(quick_done, &q, WAIT_MS));
	append(e, "q-007.csv", "2026-11-02 12:00:00,2026-11-02 13:00:00,before\n");
	char *from = fpath(e, "q-007.csv"), *to = fpath(e, "q-007-old.csv");
	assert_int_equal(rename(from, to), 0);
	free(from);
	free(to);
	write_file(e, "q-007.csv", "开始时间,结束时间,用户\n2026-11-02 14:00:00,2026-11-02 15:00:00,after\n");
	wait_sessions(e, N + 4);
	settle(e);
	assert_int_equal(count(e, "session", NULL), N + 4);
	/* The cursor is a base and the changes since: a restart reads on from both, nothing twice. */
	env_halt(e);
	append(e, "q-000.csv", "2026-11-03 08:00:00,2026-11-03 09:00:00,restart0\n");
	append(e, "q-299.csv", "2026-11-03 08:00:00,2026-11-03 09:00:00,restart299\n");
	char *gone = fpath(e, "q-100.csv");
	assert_int_equal(unlink(gone), 0);
	free(gone);
	env_start(e);
	wait_sessions(e, N + 6);
	settle(e);
	assert_int_equal(count(e, "session", NULL), N + 6);
	assert_int_equal(core_sessions_repeated(e->core, INST), 0); /* no line read twice */
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_free(e);
	logtail_tuning.racy_ms = 2000;
}

static bool no_files_followed(void *arg)
{
	struct env *e = arg;
	cJSON *whole = status_of_source(e->cfg, &logtail_source, e->lt), *insts = cJSON_GetObjectItem(whole, "instruments");
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	bool none = cJSON_GetObjectItem(l, "files")->valueint == 0;
	cJSON_Delete(whole);
	return none;
}

/* A share that goes away and comes back (remounted: maybe another device, another inode) must
 * not be read again from its first byte. */
static void test_share_away_and_back(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/share/usage.csv\", \"format\": \"csv\", \"fields\": {"
				" \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\" } }");
	char *share = fpath(e, "share"), *away = fpath(e, "away"), *log = fpath(e, "share/usage.csv");
	assert_int_equal(mkdir(share, 0755), 0);
	assert_int_equal(h_write_file(log, "开始时间,结束时间,用户\n2026-11-02 08:00:00,2026-11-02 09:00:00,a\n"
				      "2026-11-02 09:00:00,2026-11-02 10:00:00,b\n", (size_t)-1, 0644), 0);
	wait_sessions(e, 2);
	/* The folder disappears (unmounted, an empty mount point left) long enough for the file
	 * to be given up. */
	assert_int_equal(rename(share, away), 0);
	assert_int_equal(mkdir(share, 0755), 0);
	if (!h_wait_for(no_files_followed, e, WAIT_MS))
		fail_msg("the vanished file is still followed");
	/* It comes back as a copy (another inode), with one line more. */
	char *old = h_path(away, "usage.csv");
	size_t len;
	char *data = h_read_file(old, &len);
	assert_int_equal(h_write_file(log, data, len, 0644), 0);
	free(data);
	append(e, "share/usage.csv", "2026-11-02 10:00:00,2026-11-02 11:00:00,c\n");
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "a b c");
	/* And across a restart, still once. */
	env_restart(e);
	append(e, "share/usage.csv", "2026-11-02 11:00:00,2026-11-02 12:00:00,d\n");
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	free(old);
	free(share);
	free(away);
	free(log);
	env_free(e);
}

static void test_inode_reuse(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/run.log\", \"format\": \"regex\","
				" \"pattern\": \"^S ([^ ]+) ([^ ]+) (.*)$\","
				" \"fields\": { \"start\": 1, \"end\": 2, \"user\": 3 } }");
	write_file(e, "run.log", "S 2026-11-02T08:00 2026-11-02T09:00 first-file-user-a\n"
		   "noise line\n");
	wait_sessions(e, 1);
	/* Lines that are no session still move the committed offset. */
	append(e, "run.log", "more noise\n");
	settle(e);
	char *p = fpath(e, "run.log");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	cJSON *whole = status_of_source(e->cfg, &logtail_source, e->lt), *insts = cJSON_GetObjectItem(whole, "instruments");
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	assert_int_equal((int64_t)cJSON_GetObjectItem(l, "offset")->valuedouble, (int64_t)st.st_size);
	assert_int_equal(cJSON_GetObjectItem(l, "lines")->valueint, 3);
	cJSON_Delete(whole);
	env_halt(e);
	assert_int_equal(stat(p, &st), 0);
	ino_t old = st.st_ino;
	/* Delete it and create another file; file systems hand the freed inode out again. */
	bool reused = false;
	for (int i = 0; i < 20 && !reused; i++) {
		assert_int_equal(unlink(p), 0);
		assert_int_equal(h_write_file(p, "S 2026-11-03T08:00 2026-11-03T09:00 second-file-user-b\n"
					      "S 2026-11-03T10:00 2026-11-03T11:00 second-file-user-c\n",
					      (size_t)-1, 0644), 0);
		assert_int_equal(stat(p, &st), 0);
		reused = st.st_ino == old;
	}
	if (!reused)
		print_message("note: the file system did not reuse the inode; the new file is read as new\n");
	free(p);
	env_start(e);
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "first-file-user-a second-file-user-b second-file-user-c");
	if (reused)
		assert_int_equal(count(e, "event", "log_rotated"), 1);
	env_free(e);
}

/* ---- events, GBK ---- */

#define EVENTS_LOG "{ \"path\": \"{dir}/login.log\", \"format\": \"events\", \"encoding\": \"gbk\"," \
	" \"time_format\": \"%Y/%m/%d %H:%M:%S\", \"max_session_h\": 12," \
	" \"start_pattern\": \"^([0-9/: ]+) 登录 用户=([^ ]+) 单位=([^ ]+)$\"," \
	" \"start_fields\": { \"time\": 1, \"user\": 2, \"org\": 3 }," \
	" \"end_pattern\": \"^([0-9/: ]+) 注销 用户=([^ ]+) 样品=([0-9]+)$\"," \
	" \"end_fields\": { \"time\": 1, \"user\": 2, \"samples\": 3 } }"

static void test_events_gbk_restart_and_orphans(void **state)
{
	(void)state;
	struct fake_clock fc;
	fake_clock_install(&fc, 1793577600 + 3600); /* 2026-11-02 09:00 */
	struct env *e = env_new(EVENTS_LOG);
	append_gbk(e, "login.log", "2026/11/02 08:00:00 登录 用户=张三 单位=太原理工大学\r\n"
		   "2026/11/02 08:05:00 系统 自检完成\r\n"
		   "2026/11/02 08:10:00 登录 用户=李四 单位=山西大学\r\n"
		   "2026/11/02 08:30:00 注销 用户=李四 样品=2\r\n");
	wait_sessions(e, 1);
	/* Restart with 张三 still logged in: the open login is in the cursor. */
	env_restart(e);
	append_gbk(e, "login.log", "2026/11/02 23:00:00 注销 用户=张三 样品=5\r\n");
	/* 张三's logout is 15 h after the login: past max_session_h, so closed at 12 h and the
	 * logout is an orphan. */
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 1);
	append_gbk(e, "login.log", "2026/11/02 23:30:00 登录 用户=王五 单位=太原理工大学\r\n"
		   "2026/11/03 00:30:00 注销 用户=王五 样品=1\r\n"
		   "2026/11/03 01:00:00 登录 用户=赵六 单位=山西大学\r\n");
	wait_sessions(e, 3);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 3);
	/* 赵六 never logs out: the clock passing max_session_h closes the session. */
	fake_clock_advance(&fc, (int64_t)(48 * 3600) * 1000000);
	wait_sessions(e, 4);
	settle(e);
	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_int_equal(rs.n, 4);
	assert_string_equal(str(rs.v[0], "user"), "李四");
	assert_string_equal(str(rs.v[0], "org"), "山西大学");
	assert_int_equal(cJSON_GetObjectItem(rs.v[0], "samples")->valueint, 2);
	assert_null(cJSON_GetObjectItem(rs.v[0], "closed"));
	assert_string_equal(str(rs.v[1], "user"), "张三");
	assert_string_equal(str(rs.v[1], "end"), "2026-11-02T20:00:00+08:00");
	assert_string_equal(str(rs.v[1], "closed"), "auto");
	assert_string_equal(str(rs.v[2], "user"), "王五");
	assert_string_equal(str(rs.v[2], "start"), "2026-11-02T23:30:00+08:00");
	assert_string_equal(str(rs.v[2], "end"), "2026-11-03T00:30:00+08:00");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[2], "external")));
	assert_string_equal(str(rs.v[3], "user"), "赵六");
	assert_string_equal(str(rs.v[3], "end"), "2026-11-03T13:00:00+08:00");
	assert_string_equal(str(rs.v[3], "closed"), "auto");
	recs_clear(&rs);
	recs_load(e, &rs, "event", "log_malformed");
	assert_non_null(strstr(str(rs.v[0], "detail"), "login.log:5: logout without a login"));
	assert_null(strstr(str(rs.v[0], "detail"), "张三")); /* the line stays in the lab */
	recs_clear(&rs);
	env_free(e);
	clock_set(NULL);
}

/* ---- back-pressure ---- */

static void test_paused_while_buffer_full(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "u1"), *r2 = csv_row(2, "u2");
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r1);
	wait_sessions(e, 1);
	e->cfg->buffer.max_mb = 0; /* whatever is in use is "full" */
	core_set_config(e->core, e->cfg);
	core_check_space(e->core);
	assert_true(core_paused(e->core));
	append(e, "usage.csv", r2);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 1);
	cJSON *whole = status_of_source(e->cfg, &logtail_source, e->lt), *insts = cJSON_GetObjectItem(whole, "instruments");
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	assert_string_equal(str(l, "state"), "paused");
	assert_string_equal(str(l, "path"), e->cfg->instruments[0].logs[0].path);
	cJSON_Delete(whole);
	e->cfg->buffer.max_mb = 1024;
	core_set_config(e->core, e->cfg);
	core_check_space(e->core);
	wait_sessions(e, 2);
	settle(e);
	assert_users(e, "u1 u2");
	free(r1);
	free(r2);
	env_free(e);
}

/* ---- bounded stop ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_big_csv(const char *path, int n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(CSV_HEADER, f);
	for (int i = 0; i < n; i++)
		fprintf(f, "2026-11-02 08:00:00,2026-11-02 09:00:00,u%06d,太原理工大学,1,\n", i);
	fclose(f);
}

static void test_stop_is_bounded(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(CSV_LOG);
	char *p = fpath(e, "usage.csv");
	write_big_csv(p, 200000);
	free(p);
	env_start(e);
	wait_sessions(e, 1);
	int64_t t0 = now_ms();
	env_halt(e);
	int64_t took = now_ms() - t0;
	if (took > 1000)
		fail_msg("stop took %" PRId64 " ms", took);
	env_free(e);
}

/* ---- crashes ---- */

#define CRASH_SESSIONS 3000
/* The agent's clock in that test: its 3,000 sessions (20 s apart) lie within 24 h ahead of it
 * (plausible) and no login is 12 h older than it (none closed by the clock). */
#define CRASH_NOW (1793577600 + 11 * 3600)

static bool db_reached(void *arg)
{
	struct db_want *w = arg;
	int status;
	if (w->child > 0 && waitpid(w->child, &status, WNOHANG) == w->child)
		fail_msg("the tailing child exited early (status %d)", status);
	return db_sessions(w->state_dir) >= w->n;
}

static void test_sigkill_at_random_moments(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(EVENTS_LOG);
	/* Interleaved logins and logouts of ten users with noise, so the cursor always holds
	 * open logins when the child dies. */
	char *path = fpath(e, "login.log");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	int64_t t = 1793577600;
	char line[256], gbk[512];
	/* Interleaved: user u's next login comes 200 s after the last, its logout 190 s after. */
	for (int i = 0; i < CRASH_SESSIONS; i++) {
		int u = i % 10;
		struct tm tm;
		time_t a = (time_t)(t + (int64_t)i * 20), b = (time_t)(t + (int64_t)i * 20 + 200);
		char ta[32], tb[32];
		localtime_r(&a, &tm);
		strftime(ta, sizeof(ta), "%Y/%m/%d %H:%M:%S", &tm);
		localtime_r(&b, &tm);
		strftime(tb, sizeof(tb), "%Y/%m/%d %H:%M:%S", &tm);
		snprintf(line, sizeof(line), "%s 登录 用户=用户%d 单位=太原理工大学\n%s 其他 %d\n", ta, u, ta, i);
		fwrite(gbk, 1, h_to_gbk(line, gbk, sizeof(gbk)), f);
		if (i >= 9) {
			/* the logout of the session opened nine logins ago */
			time_t c = (time_t)(t + (int64_t)(i - 9) * 20 + 190);
			localtime_r(&c, &tm);
			char tc[32];
			strftime(tc, sizeof(tc), "%Y/%m/%d %H:%M:%S", &tm);
			snprintf(line, sizeof(line), "%s 注销 用户=用户%d 样品=%d\n", tc, (i - 9) % 10, i - 9);
			fwrite(gbk, 1, h_to_gbk(line, gbk, sizeof(gbk)), f);
		}
	}
	fclose(f);
	free(path);
	/* The first 2991 sessions close by logout; nine stay open. */
	const int64_t want = CRASH_SESSIONS - 9;
	core_free(e->core);
	buffer_close(e->buf);
	e->core = NULL;
	e->buf = NULL;

	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	print_message("seed %u\n", seed);
	srand(seed);
	int64_t last = 0;
	for (int k = 0; k < 6; k++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* The sessions are in 2026: a frozen clock keeps max_session_h out of it. */
			struct fake_clock fc;
			fake_clock_install(&fc, CRASH_NOW);
			struct buffer *b;
			if (buffer_open(e->cfg->agent.state_dir, 0, &b, NULL) < 0)
				_exit(2);
			struct core *c = core_new(e->cfg, b);
			void *lt = NULL;
			logtail_tuning.batch_obs = 1 + (size_t)(rand() % 40);
			if (logtail_source.create(config_source_conf(e->cfg), c, &lt) < 0 || logtail_source.start(lt) < 0)
				_exit(3);
			for (;;)
				pause();
		}
		/* Kill it at a random point: somewhere after the next few commits. */
		int64_t target = last + 1 + rand() % (want / 6);
		struct db_want w = { e->cfg->agent.state_dir, target > want ? want : target, pid };
		if (!h_wait_for(db_reached, &w, 30000))
			fail_msg("child made no progress past %" PRId64, last);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		last = db_sessions(e->cfg->agent.state_dir);
	}
	/* And once more to the end, in this process. */
	struct fake_clock fc;
	fake_clock_install(&fc, CRASH_NOW);
	env_open_buffer(e);
	env_start(e);
	wait_sessions(e, (size_t)want);
	settle(e);
	env_halt(e);

	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_int_equal(rs.n, (size_t)want);
	/* Each session exactly once: the samples number them 0..want-1. */
	char *seen = calloc((size_t)want, 1);
	for (size_t i = 0; i < rs.n; i++) {
		int s = cJSON_GetObjectItem(rs.v[i], "samples")->valueint;
		assert_true(s >= 0 && s < want);
		if (seen[s]++)
			fail_msg("session %d sealed twice", s);
		assert_null(cJSON_GetObjectItem(rs.v[i], "closed"));
	}
	free(seen);
	recs_clear(&rs);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	struct chain_verify v;
	assert_int_equal(chain_verify(e->buf, &v), 0);
	env_free(e);
	clock_set(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_partial_line_and_restart),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_rename_rotation),
		cmocka_unit_test(test_copytruncate_and_truncation),
		cmocka_unit_test(test_glob_pickup),
		cmocka_unit_test(test_glob_many_quiet_files),
		cmocka_unit_test(test_share_away_and_back),
		cmocka_unit_test(test_inode_reuse),
		cmocka_unit_test(test_events_gbk_restart_and_orphans),
		cmocka_unit_test(test_paused_while_buffer_full),
		cmocka_unit_test(test_stop_is_bounded),
		cmocka_unit_test(test_sigkill_at_random_moments),
	};
	const char *only = getenv("LOGTAIL_TESTS"); /* e.g. "test_glob*": one test while working */
	if (only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, setup, NULL);
}
