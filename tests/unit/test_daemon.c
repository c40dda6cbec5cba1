/* test_daemon.c — the daemon as systemd sees it: the notify protocol on a real datagram
 * socket (READY, WATCHDOG only while healthy, RELOADING, STOPPING), reloads good and bad,
 * metrics.prom, and the installed unit checked by systemd-analyze. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct fx {
	char *dir, *config, *sock_path, *log;
	int sock;
	struct h_proc *agent;
};

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"notify-test\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
	"    \"state_dir\": \"%s/state\" },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\", \"timeout_s\": 2 },"
	"  \"instruments\": [ { \"id\": \"%s\", \"logs\": [ { \"path\": \"%s/none-*.csv\", \"format\": \"csv\","
	"    \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }";

static void write_config(struct fx *f, const char *instrument)
{
	char *text = h_strdupf(config_fmt, f->dir, f->dir, instrument, f->dir);
	h_write_file(f->config, text, (size_t)-1, 0644);
	free(text);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_daemon");
	f->config = h_path(f->dir, "agent.json");
	f->sock_path = h_path(f->dir, "notify.sock");
	f->log = h_path(f->dir, "agent.log");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	write_config(f, "NMR");
	f->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock_path);
	assert_int_equal(bind(f->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_proc_free(f->agent);
	close(f->sock);
	h_rmtree(f->dir);
	free(f->dir);
	free(f->config);
	free(f->sock_path);
	free(f->log);
	free(f);
	return 0;
}

static void start_agent(struct fx *f)
{
	char *env[] = { h_strdupf("NOTIFY_SOCKET=%s", f->sock_path), (char *)"WATCHDOG_USEC=2000000", NULL };
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"run", NULL };
	f->agent = h_spawn(argv, env, false, false, f->log);
	free(env[0]);
	assert_non_null(f->agent);
}

/* Next datagram within timeout_ms; NULL when none came. Caller frees. */
static char *next_msg(struct fx *f, int timeout_ms)
{
	struct pollfd p = { f->sock, POLLIN, 0 };
	if (poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	char buf[4096];
	ssize_t n = recv(f->sock, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for a datagram containing `want`; fail after timeout_ms. */
static void expect_msg(struct fx *f, const char *want, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline) {
		char *m = next_msg(f, (int)(deadline - now_ms()));
		if (!m)
			break;
		bool hit = strstr(m, want) != NULL;
		free(m);
		if (hit)
			return;
	}
	char *log = h_read_file(f->log, NULL);
	fail_msg("no \"%s\" within %d ms; agent log:\n%s", want, timeout_ms, log ? log : "");
}

/* Count datagrams containing `want` over a window. */
static int count_msgs(struct fx *f, const char *want, int window_ms)
{
	int n = 0;
	long long deadline = now_ms() + window_ms;
	while (now_ms() < deadline) {
		char *m = next_msg(f, (int)(deadline - now_ms()));
		if (!m)
			continue;
		if (strstr(m, want))
			n++;
		free(m);
	}
	return n;
}

/* Wait until n datagrams containing `want` came; false when they did not within timeout_ms. */
static bool wait_msgs(struct fx *f, const char *want, int n, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (n > 0 && now_ms() < deadline) {
		char *m = next_msg(f, (int)(deadline - now_ms()));
		if (m && strstr(m, want))
			n--;
		free(m);
	}
	return n <= 0;
}

static int count_records(struct fx *f, const char *needle)
{
	char *path = h_strdupf("%s/state/buffer.db", f->dir);
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = 0;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT line FROM records", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		if (strstr((const char *)sqlite3_column_text(st, 0), needle))
			n++;
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return n;
}

static void test_ready_watchdog_stopping(void **state)
{
	struct fx *f = *state;
	start_agent(f);
	expect_msg(f, "READY=1", 10000);
	assert_true(wait_msgs(f, "WATCHDOG=1", 2, 5000));
	/* metrics.prom for node_exporter, written while running. */
	char *prom_path = h_strdupf("%s/state/metrics.prom", f->dir);
	assert_true(h_wait_file(prom_path, 5000));
	char *prom = h_read_file(prom_path, NULL);
	assert_non_null(strstr(prom, "# TYPE labshare_up gauge\nlabshare_up 1\n"));
	assert_non_null(strstr(prom, "labshare_buffer_last_seq "));
	assert_non_null(strstr(prom, "labshare_log_lines_total{instrument=\"NMR\",path=\""));
	free(prom);
	free(prom_path);
	assert_int_equal(h_kill(f->agent, SIGTERM), 0);
	expect_msg(f, "STOPPING=1", 10000);
	assert_int_equal(h_wait(f->agent, 20000), 0);
}

static void test_watchdog_withheld_while_stuck(void **state)
{
	struct fx *f = *state;
	start_agent(f);
	expect_msg(f, "READY=1", 10000);
	expect_msg(f, "WATCHDOG=1", 5000);
	/* Someone holds the buffer's write lock: nothing can be sealed, the pipeline is stuck. */
	char *path = h_strdupf("%s/state/buffer.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	/* The tick (one a second) blocks on the lock: a healthy daemon would send two or three
	 * in 2.5 s. */
	/* One tick may have been past the lock when it was taken (and a loaded machine may deliver
	 * its ping late): what counts is that the pings stop, a whole 2.5 s window without any,
	 * within a few windows. */
	bool withheld = false;
	for (int i = 0; i < 4 && !withheld; i++)
		withheld = count_msgs(f, "WATCHDOG=1", 2500) == 0;
	assert_true(withheld);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	free(path);
	/* Unstuck: the watchdog comes back. */
	expect_msg(f, "WATCHDOG=1", 20000);
	h_kill(f->agent, SIGTERM);
	assert_int_equal(h_wait(f->agent, 20000), 0);
}

static void test_reload_good_and_bad(void **state)
{
	struct fx *f = *state;
	start_agent(f);
	expect_msg(f, "READY=1", 10000);
	/* A good new config: applied, sealed as config_changed. */
	write_config(f, "NMR-2");
	h_kill(f->agent, SIGHUP);
	expect_msg(f, "RELOADING=1", 5000);
	expect_msg(f, "READY=1", 10000);
	assert_int_equal(count_records(f, "\"type\":\"config_changed\""), 1);
	/* A bad one: logged, the running one kept, still ready. */
	h_write_file(f->config, "{ \"agent\": { \"id\": 5 } ", (size_t)-1, 0644);
	h_kill(f->agent, SIGHUP);
	expect_msg(f, "RELOADING=1", 5000);
	expect_msg(f, "READY=1", 10000);
	expect_msg(f, "WATCHDOG=1", 5000);
	assert_int_equal(count_records(f, "\"type\":\"config_changed\""), 1);
	char *log = h_read_file(f->log, NULL);
	assert_non_null(strstr(log, "is invalid, keeping the running configuration"));
	free(log);
	h_kill(f->agent, SIGTERM);
	assert_int_equal(h_wait(f->agent, 20000), 0);
}

static void test_bad_config_never_ready(void **state)
{
	struct fx *f = *state;
	h_write_file(f->config, "{ \"agent\": { \"id\": \"x\", \"colour\": 1 } }", (size_t)-1, 0644);
	start_agent(f);
	assert_int_equal(h_wait(f->agent, 10000), 78);
	assert_int_equal(count_msgs(f, "READY=1", 200), 0);
	char *log = h_read_file(f->log, NULL);
	assert_non_null(strstr(log, "agent.colour: unknown key"));
	free(log);
}

static char *agent_cmd(struct fx *f, int *code, ...)
{
	char *argv[24] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config };
	int n = 3;
	va_list ap;
	va_start(ap, code);
	char *a;
	while ((a = va_arg(ap, char *)) && n < 23)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char *out = NULL, *err = NULL;
	*code = h_run(argv, NULL, &out, &err, 30000);
	char *both = h_strdupf("%s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	return both;
}

struct file_event {
	const char *db, *needle;
};

/* The file is at the path and holds a record containing needle (read-only: never creates). */
static bool file_has_record(void *arg)
{
	const struct file_event *fe = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool hit = false;
	if (access(fe->db, F_OK) != 0)
		return false;
	if (sqlite3_open_v2(fe->db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT line FROM records", -1, &st, NULL) == SQLITE_OK)
		while (!hit && sqlite3_step(st) == SQLITE_ROW)
			hit = strstr((const char *)sqlite3_column_text(st, 0), fe->needle) != NULL;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return hit;
}

/* "intact: N records, seq A..B": B, or -1 when not intact. */
static long long verify_last_seq(struct fx *f)
{
	int code;
	char *out = agent_cmd(f, &code, "verify", NULL);
	long long first = -1, last = -1, n = 0;
	if (code != 0 || sscanf(out, "intact: %lld records, seq %lld..%lld", &n, &first, &last) != 3 || first != 1)
		fail_msg("verify (exit %d): %s", code, out);
	free(out);
	return last;
}

static long long sealed_seq(const char *out)
{
	const char *p = strstr(out, "sealed as seq ");
	return p ? strtoll(p + strlen("sealed as seq "), NULL, 10) : -1;
}

/* SPEC §5: buffer.db, -wal and -shm deleted while the daemon runs. The daemon notices at its
 * next tick (a second), writes its open database back, seals an agent_start event saying so,
 * and goes on sealing into the file on disk; verify finds every earlier seq. */
static void test_buffer_deleted_written_back(void **state)
{
	struct fx *f = *state;
	start_agent(f);
	expect_msg(f, "READY=1", 10000);
	int code;
	char *out = agent_cmd(f, &code, "record", "--instrument", "NMR", "--start", "2026-11-02 08:00",
			      "--end", "2026-11-02 09:00", "--user", "li", "--org", "x", NULL);
	assert_int_equal(code, 0);
	long long before = sealed_seq(out);
	free(out);
	assert_true(before >= 2);
	char *db = h_strdupf("%s/state/buffer.db", f->dir);
	char *wal = h_strdupf("%s-wal", db), *shm = h_strdupf("%s-shm", db);
	assert_int_equal(unlink(db), 0);
	unlink(wal);
	unlink(shm);
	struct file_event fe = { db, "was deleted while running" };
	if (!h_wait_for(file_has_record, &fe, 15000)) {
		char *log = h_read_file(f->log, NULL);
		fail_msg("buffer.db not written back within 15 s; agent log:\n%s", log ? log : "");
	}
	assert_int_equal(count_records(f, "\"type\":\"agent_start\""), 2);
	assert_int_equal(count_records(f, "\"source\":\"manual\""), 1);
	assert_true(verify_last_seq(f) > before);
	/* Still sealing, into the file on disk. */
	out = agent_cmd(f, &code, "record", "--instrument", "NMR", "--start", "2026-11-02 10:00",
			"--end", "2026-11-02 11:00", "--user", "wang", "--org", "y", NULL);
	assert_int_equal(code, 0);
	long long after = sealed_seq(out);
	free(out);
	h_kill(f->agent, SIGTERM);
	assert_int_equal(h_wait(f->agent, 20000), 0);
	assert_int_equal(count_records(f, "\"source\":\"manual\""), 2);
	assert_int_equal(count_records(f, "\"type\":\"agent_stop\""), 1);
	assert_true(verify_last_seq(f) > after);
	char *log = h_read_file(f->log, NULL);
	assert_non_null(strstr(log, "was deleted while the daemon ran; the open database was written back"));
	free(log);
	free(db);
	free(wal);
	free(shm);
}

static bool file_is(const char *dir, const char *prefix)
{
	bool hit = false;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		hit |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return hit;
}

/* A second `run` on the same state folder stops at the lock, before it opens the buffer: it
 * must not "repair" (move aside) a file that the running daemon uses. The file is made to
 * look damaged while the first daemon is stopped, so that opening it would move it. */
static void test_second_daemon_leaves_buffer_alone(void **state)
{
	struct fx *f = *state;
	start_agent(f);
	expect_msg(f, "READY=1", 10000);
	assert_int_equal(h_kill(f->agent, SIGSTOP), 0);
	char *db = h_strdupf("%s/state/buffer.db", f->dir);
	char *statedir = h_strdupf("%s/state", f->dir);
	/* Everything into the main file, so that its damaged header is what an opener reads
	 * (and not a newer page 1 from the WAL). */
	sqlite3 *c;
	assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
	/* The stopped daemon may hold the WAL's read lock: then the checkpoint leaves what it
	 * can't move, after a short wait rather than a long one (the point is the lock order). */
	sqlite3_busy_timeout(c, 300);
	assert_int_equal(sqlite3_exec(c, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);
	int fd = open(db, O_RDWR);
	assert_true(fd >= 0);
	char head[100], junk[100];
	assert_int_equal(pread(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	memset(junk, 'J', sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	struct stat st0, st1;
	assert_int_equal(fstat(fd, &st0), 0);
	int code;
	char *out = agent_cmd(f, &code, "run", NULL);
	assert_int_not_equal(code, 0);
	if (!strstr(out, "another labshare-agent is running"))
		fail_msg("second run (exit %d): %s", code, out);
	free(out);
	assert_int_equal(stat(db, &st1), 0);
	assert_true(st1.st_ino == st0.st_ino);
	assert_true(st1.st_mtim.tv_sec == st0.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
	assert_false(file_is(statedir, "buffer.db.corrupt"));
	assert_int_equal(pwrite(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	close(fd);
	assert_int_equal(h_kill(f->agent, SIGCONT), 0);
	h_kill(f->agent, SIGTERM);
	assert_int_equal(h_wait(f->agent, 20000), 0);
	free(db);
	free(statedir);
}

static void test_installed_unit(void **state)
{
	struct fx *f = *state;
	if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
		skip(); /* no systemd on this machine: nothing to check the unit with */
		return;
	}
	char *prefix = h_path(f->dir, "usr");
	char *pre = h_strdupf("PREFIX=%s", prefix);
	char *argv[] = { (char *)"/usr/bin/make", (char *)"-s", (char *)"install", pre, NULL };
	char *out, *err;
	assert_int_equal(h_run(argv, NULL, &out, &err, 120000), 0);
	free(out);
	free(err);
	char *unit = h_strdupf("%s/lib/systemd/system/labshare-agent.service", prefix);
	char *text = h_read_file(unit, NULL);
	char *bin = h_strdupf("ExecStart=%s/bin/labshare-agent ", prefix);
	assert_non_null(strstr(text, bin));
	assert_non_null(strstr(text, "Type=notify"));
	assert_non_null(strstr(text, "WatchdogSec="));
	free(text);
	free(bin);
	char *verify[] = { (char *)"/usr/bin/systemd-analyze", (char *)"verify", (char *)"--man=no", unit, NULL };
	int rc = h_run(verify, NULL, &out, &err, 60000);
	if (rc != 0)
		fail_msg("systemd-analyze verify: %s%s", out, err);
	free(out);
	free(err);
	char *sec[] = { (char *)"/usr/bin/systemd-analyze", (char *)"security", (char *)"--offline=true", unit, NULL };
	h_run(sec, NULL, &out, &err, 60000);
	const char *p = strstr(out, "Overall exposure level for labshare-agent.service: ");
	assert_non_null(p);
	double score = strtod(p + strlen("Overall exposure level for labshare-agent.service: "), NULL);
	printf("systemd-analyze security: exposure %.1f\n", score);
	assert_true(score <= 2.0);
	free(out);
	free(err);
	const char *const files[] = { "bin/labshare-agent", "lib/sysusers.d/labshare-agent.conf",
			  "lib/tmpfiles.d/labshare-agent.conf", "share/doc/labshare-agent/agent.example.json",
			  "share/man/man8/labshare-agent.8" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *path = h_path(prefix, files[i]);
		if (access(path, R_OK) != 0)
			fail_msg("not installed: %s", path);
		free(path);
	}
	free(unit);
	free(pre);
	free(prefix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready_watchdog_stopping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_withheld_while_stuck, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_good_and_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config_never_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_deleted_written_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_daemon_leaves_buffer_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_installed_unit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
