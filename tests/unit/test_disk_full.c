/* test_disk_full.c — the state folder on a small tmpfs: the disk fills while a log is being
 * read; the daemon stays up and says why, and once there is room again every session is
 * sealed exactly once; buffer.db deleted while no copy fits is written back once it does.
 * Needs root for the mount (skipped otherwise). The tmpfs is 1 MB and the log 6000 sessions:
 * the disk fills after about 2000 of them (run with H_TRACE=1 to see), and the rest is short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

enum { N = 6000 };

struct fx {
	char *dir, *state, *config, *log, *agent_log;
	bool mounted;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_disk_full");
	f->state = h_path(f->dir, "state");
	f->config = h_path(f->dir, "agent.json");
	f->log = h_path(f->dir, "usage.csv");
	f->agent_log = h_path(f->dir, "agent.log");
	mkdir(f->state, 0750);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->mounted)
		umount2(f->state, MNT_DETACH);
	h_rmtree(f->dir);
	free(f->dir);
	free(f->state);
	free(f->config);
	free(f->log);
	free(f->agent_log);
	free(f);
	return 0;
}

/* A log of n sessions, each by another user, and the agent's config reading it. */
static void write_lab(struct fx *f, int n)
{
	FILE *lf = fopen(f->log, "w");
	assert_non_null(lf);
	fputs("start,end,user,org\n", lf);
	for (int i = 0; i < n; i++)
		fprintf(lf, "2026-10-01T08:00:00Z,2026-10-01T09:00:00Z,user-%05d,Org %d\n", i, i % 13);
	fclose(lf);
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"full\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\", \"timeout_s\": 2 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"%s\", \"format\": \"csv\","
		"    \"fields\": { \"start\": \"start\", \"end\": \"end\", \"user\": \"user\", \"org\": \"org\" } } ] } ] }",
		f->state, f->dir, f->log);
	h_write_file(f->config, text, (size_t)-1, 0644);
	free(text);
}

static bool log_says(void *arg)
{
	struct fx *f = arg;
	char *text = h_read_file(f->agent_log, NULL);
	bool hit = text && (strstr(text, "disk is full") || strstr(text, "No space left"));
	free(text);
	return hit;
}

static int64_t sealed_sessions(struct fx *f)
{
	char *path = h_path(f->state, "buffer.db");
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, "SELECT COUNT(*), COUNT(DISTINCT json_extract(line, '$.user'))"
					   " FROM records WHERE kind = 'session'", -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 1))
				n = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	}
	sqlite3_close(db);
	free(path);
	return n;
}

/* At least n records (a lookup in the seq index), and then exactly n sessions, once each (a
 * scan of them all): a wait polls the cheap question, so that it does not slow the daemon. */
static bool sealed_all(struct fx *f, int64_t n)
{
	char *path = h_path(f->state, "buffer.db");
	int64_t head = h_sql_int(path, "SELECT COALESCE(MAX(seq), 0) FROM records");
	free(path);
	return head >= n && sealed_sessions(f) == n;
}

static bool all_sealed(void *arg)
{
	return sealed_all(arg, N);
}

static void test_full_disk_survived(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0 || mount("tmpfs", f->state, "tmpfs", 0, "size=1m,mode=0750") != 0) {
		fprintf(stderr, "skipped: mounting a tmpfs needs root (%s)\n", strerror(errno));
		skip();
		return;
	}
	f->mounted = true;
	write_lab(f, N);

	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, f->agent_log);
	assert_true(h_wait_for(log_says, f, 60000));
	/* Still up, and still answering for itself. */
	assert_int_equal(h_kill(p, 0), 0);
	char *sargv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"status",
			  (char *)"--json", NULL };
	char *out, *err;
	assert_int_equal(h_run(sargv, NULL, &out, &err, 20000), 0);
	cJSON *st = cJSON_Parse(out);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(st, "running")));
	cJSON_Delete(st);
	free(out);
	free(err);
	int64_t before = sealed_sessions(f);
	h_trace("%lld of %d sessions sealed when the disk was full", (long long)before, N);
	assert_true(before < N);

	/* Room again: reading resumes where it stopped. */
	assert_int_equal(mount("tmpfs", f->state, "tmpfs", MS_REMOUNT, "size=256m,mode=0750"), 0);
	assert_true(h_wait_for(all_sealed, f, 120000));
	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	char *vargv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"verify", NULL };
	assert_int_equal(h_run(vargv, NULL, &out, &err, 60000), 0);
	free(out);
	free(err);
	/* And the journal was told, not flooded. */
	char *log = h_read_file(f->agent_log, NULL);
	int lines = 0;
	for (char *q = log; (q = strchr(q, '\n')); q++)
		lines++;
	if (getenv("SHOW_LOG"))
		fprintf(stderr, "%s", log);
	assert_true(lines < 200);
	free(log);
}

enum { N_DEL = 2000 };

static bool all_del_sealed(void *arg)
{
	return sealed_all(arg, N_DEL);
}

static bool log_cannot_write_back(void *arg)
{
	struct fx *f = arg;
	char *text = h_read_file(f->agent_log, NULL);
	bool hit = text && strstr(text, "cannot be written back");
	free(text);
	return hit;
}

static bool written_back(void *arg)
{
	struct fx *f = arg;
	char *path = h_path(f->state, "buffer.db");
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool hit = false;
	if (access(path, F_OK) == 0 && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM records WHERE line LIKE '%was deleted while running%'",
			       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		hit = sqlite3_column_int64(st, 0) == 1;
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return hit;
}

/* SPEC §5 on a full disk: buffer.db deleted while no copy of it fits. The daemon says so
 * (once, not every second), keeps the open file, and writes it back as soon as there is
 * room: every session is still there. */
static void test_deleted_buffer_written_back_when_room(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0 || mount("tmpfs", f->state, "tmpfs", 0, "size=16m,mode=0750") != 0) {
		fprintf(stderr, "skipped: mounting a tmpfs needs root (%s)\n", strerror(errno));
		skip();
		return;
	}
	f->mounted = true;
	write_lab(f, N_DEL);
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, f->agent_log);
	assert_true(h_wait_for(all_del_sealed, f, 60000));

	/* The disk full, then the buffer deleted: its blocks stay in use while the daemon has
	 * it open, so no copy fits. */
	char *filler = h_path(f->dir, "state/filler");
	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char chunk[65536];
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	while (write(fd, chunk, 512) > 0)
		;
	close(fd);
	char *db = h_path(f->state, "buffer.db");
	char *wal = h_strdupf("%s-wal", db), *shm = h_strdupf("%s-shm", db);
	assert_int_equal(unlink(db), 0);
	unlink(wal);
	unlink(shm);
	assert_true(h_wait_for(log_cannot_write_back, f, 15000));
	assert_int_equal(h_kill(p, 0), 0);
	assert_int_not_equal(access(db, F_OK), 0);

	/* Room again: written back at the next tick. */
	assert_int_equal(unlink(filler), 0);
	assert_true(h_wait_for(written_back, f, 15000));
	assert_int_equal(sealed_sessions(f), N_DEL);
	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	char *vargv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"verify", NULL };
	char *out, *err;
	assert_int_equal(h_run(vargv, NULL, &out, &err, 60000), 0);
	assert_non_null(strstr(out, "intact: "));
	free(out);
	free(err);
	char *log = h_read_file(f->agent_log, NULL);
	int said = 0;
	for (char *q = log; (q = strstr(q, "cannot be written back")); q++)
		said++;
	if (getenv("SHOW_LOG"))
		fprintf(stderr, "%s", log);
	assert_int_equal(said, 1); /* once a minute at most, not at every tick */
	free(log);
	free(filler);
	free(db);
	free(wal);
	free(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_disk_survived, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_buffer_written_back_when_room, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
