/* test_cli_hardening.c — the command line's smaller holes (issue 13) and record's stricter
 * checks: 600 instruments in status, no clock offset in the shipped binary, write errors,
 * report -o onto a symlink or FIFO, configs that are not regular files, the terminal's
 * charset, implausible and repeated sessions. The built binary, real files, real processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include "test_cli_env.h"

/* record with the given environment, user and org; the other arguments fixed. */
static int record_as(struct env *e, char *const env[], const char *user, const char *org, const char *note,
		     char **out, char **err)
{
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"record", (char *)"--instrument",
			 (char *)"SX-INS-000123", (char *)"--start", (char *)"2026-11-02 08:00", (char *)"--end",
			 (char *)"2026-11-02 09:00", (char *)"--user", (char *)user, (char *)"--org", (char *)org,
			 note ? (char *)"--note" : NULL, (char *)note, NULL };
	return h_run(argv, env, out, err, 10000);
}

#define GBK_ZHANGSAN "\xd5\xc5\xc8\xfd" /* 张三 in GBK */

/* SPEC §3: record converts from the terminal's charset and refuses what it cannot convert;
 * GBK bytes under a UTF-8 locale were once sealed raw, and the platform's 422 stopped the feed. */
static void test_record_refuses_bytes_not_in_the_locale(void **state)
{
	struct env *e = *state;
	char *out, *err;
	char *utf8[] = { (char *)"LC_ALL=C.UTF-8", NULL };
	static const struct {
		const char *user, *org, *note, *expect;
	} cases[] = {
		{ GBK_ZHANGSAN, "X", NULL, "labshare-agent: record: --user: not valid in the locale's charset \"UTF-8\"" },
		{ "u", GBK_ZHANGSAN, NULL, "record: --org: not valid in the locale's charset \"UTF-8\"" },
		{ "u", "X", "p.12 " GBK_ZHANGSAN, "record: --note: not valid in the locale's charset \"UTF-8\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = record_as(e, utf8, cases[i].user, cases[i].org, cases[i].note, &out, &err);
		if (rc != 65 || !strstr(err, cases[i].expect))
			fail_msg("case %zu: exit %d, stderr: %s", i, rc, err);
		free(out);
		free(err);
	}
	/* The C locale says nothing about bytes above 0x7f (cron, ssh without a locale): UTF-8
	 * is taken as it is, anything else refused. */
	char *c_env[] = { (char *)"LC_ALL=C", NULL };
	assert_int_equal(record_as(e, c_env, GBK_ZHANGSAN, "X", NULL, &out, &err), 65);
	assert_non_null(strstr(err, "record: --user: not valid in the locale's charset \"ANSI_X3.4-1968\""));
	free(out);
	free(err);
	assert_int_equal(last_seq(e), 0);
	assert_int_equal(record_as(e, c_env, "张三", "太原理工大学", NULL, &out, &err), 0);
	free(out);
	free(err);
	int n;
	char **lines = record_lines(e->state, &n);
	assert_int_equal(n, 1);
	assert_non_null(strstr(lines[0], "\"user\":\"张三\",\"org\":\"太原理工大学\""));
	free_lines(lines, n);
}

/* A real GBK terminal: a locale built at test time with localedef (glibc's LOCPATH finds it). */
static void test_record_converts_from_a_gbk_locale(void **state)
{
	struct env *e = *state;
	char *loc = h_path(e->dir, "locale");
	mkdir(loc, 0755);
	char *target = h_path(loc, "zh_CN.GBK");
	char *argv[] = { (char *)"/usr/bin/localedef", (char *)"-i", (char *)"zh_CN", (char *)"-f", (char *)"GBK",
			 target, NULL };
	char *out, *err;
	int rc = access(argv[0], X_OK) == 0 ? h_run(argv, NULL, &out, &err, 60000) : -1;
	if (rc == 0) {
		free(out);
		free(err);
	}
	free(target);
	if (rc != 0) {
		free(loc);
		skip(); /* no localedef or no zh_CN/GBK sources: utf8_from_charset is tested in test_utf8 */
	}
	char *locpath = h_strdupf("LOCPATH=%s", loc);
	char *env[] = { locpath, (char *)"LC_ALL=zh_CN.GBK", NULL };
	assert_int_equal(record_as(e, env, GBK_ZHANGSAN, "\xcc\xab\xd4\xad" /* 太原 */, NULL, &out, &err), 0);
	free(out);
	free(err);
	int n;
	char **lines = record_lines(e->state, &n);
	assert_int_equal(n, 1);
	assert_non_null(strstr(lines[0], "\"user\":\"张三\",\"org\":\"太原\""));
	free_lines(lines, n);
	/* A lead byte with no second byte is no GBK. */
	assert_int_equal(record_as(e, env, "u\x81", "X", NULL, &out, &err), 65);
	assert_non_null(strstr(err, "record: --user: not valid in the locale's charset \"GBK\""));
	free(out);
	free(err);
	assert_int_equal(last_seq(e), 1);
	free(locpath);
	free(loc);
}

/* SPEC §3: implausible values are malformed, refused by record (65) as by the core. */
static void test_record_refuses_implausible(void **state)
{
	struct env *e = *state;
	static const struct {
		const char *start, *end, *samples, *expect;
	} cases[] = {
		{ "1970-01-01 08:00", "1970-01-01 09:00", "1", "record: session refused: start before 2000-01-01" },
		{ "1999-12-31 23:00:00Z", "2000-01-01 01:00:00Z", "1", "start before 2000-01-01" },
		{ "2099-01-01 08:00", "2099-01-01 09:00", "1", "more than 24 h ahead of the agent's clock" },
		{ "2026-11-02 08:00", "2026-11-02 09:00", "1000001", "--samples \"1000001\": must be a whole number 0..1000000" },
		{ "2026-11-02 08:00", "2026-11-02 09:00", "9223372036854775807", "--samples" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out, *err;
		int rc = agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", "--start", cases[i].start,
			       "--end", cases[i].end, "--user", "u", "--org", "o", "--samples", cases[i].samples, NULL);
		if (rc != 65 || !strstr(err, cases[i].expect))
			fail_msg("case %zu: exit %d, stderr: %s", i, rc, err);
		free(out);
		free(err);
	}
	assert_int_equal(last_seq(e), 0);
}

/* SPEC §3: the same session twice is sealed once; status counts the repeat. */
static void test_record_same_session_twice(void **state)
{
	struct env *e = *state;
	char *out, *err;
	assert_int_equal(record_as(e, NULL, "张三", "X", NULL, &out, &err), 0);
	assert_non_null(strstr(out, "sealed as seq 1"));
	free(out);
	free(err);
	assert_int_equal(record_as(e, NULL, "张三", "another org", "entered twice", &out, &err), 0);
	assert_non_null(strstr(out, "not sealed: the same session"));
	free(out);
	free(err);
	assert_int_equal(last_seq(e), 1);
	assert_int_equal(agent(e, &out, &err, "status", "--json", NULL), 0);
	cJSON *st = cJSON_Parse(out);
	cJSON *ins = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "instruments"), 0);
	assert_int_equal(cJSON_GetObjectItem(ins, "sessions_repeated")->valueint, 1);
	cJSON_Delete(st);
	free(out);
	free(err);
	assert_int_equal(agent(e, &out, &err, "status", NULL), 0);
	assert_non_null(strstr(out, "  repeats 1 (the same session seen again, sealed once)\n"));
	free(out);
	free(err);
}

/* ---- issue 13: the command line's smaller holes ------------------------------------- */

/* SPEC §7 scale: 600 Modbus instruments against the simulator (3 gateways × 200 units).
 * status.json is then well over 64 KiB; `status --json` must read it whole and show every
 * instrument's live state, not "starting". */
#define N_BUS 3
#define PER_BUS 200

struct many {
	struct env *e;
	int ok;
};

static bool all_instruments_live(void *arg)
{
	struct many *m = arg;
	char *out = NULL, *err = NULL;
	m->ok = 0;
	if (agent(m->e, &out, &err, "status", "--json", NULL) == 0) {
		cJSON *st = cJSON_Parse(out);
		const cJSON *in;
		cJSON_ArrayForEach(in, cJSON_GetObjectItem(st, "instruments")) {
			const cJSON *state = cJSON_GetObjectItem(cJSON_GetObjectItem(in, "modbus"), "state");
			m->ok += cJSON_IsString(state) && strcmp(state->valuestring, "ok") == 0;
		}
		cJSON_Delete(st);
	}
	free(out);
	free(err);
	return m->ok == N_BUS * PER_BUS;
}

static void test_status_600_instruments(void **state)
{
	struct env *e = *state;
	char *pf = h_path(e->dir, "ports"), *simlog = h_path(e->dir, "sim.log");
	char units[16];
	snprintf(units, sizeof(units), "1-%d", PER_BUS);
	char *sargv[] = { (char *)h_build_path("modbus-sim"), (char *)"--tcp", (char *)"127.0.0.1:0",
			  (char *)"--units", units, (char *)"--tcp", (char *)"127.0.0.1:0", (char *)"--units", units,
			  (char *)"--tcp", (char *)"127.0.0.1:0", (char *)"--units", units, (char *)"--port-file", pf, NULL };
	struct h_proc *sim = h_spawn(sargv, NULL, false, false, simlog);
	assert_non_null(sim);
	assert_true(h_wait_file(pf, 10000));
	char *ports = h_read_file(pf, NULL);
	int port[N_BUS];
	assert_int_equal(sscanf(ports, "%d %d %d", &port[0], &port[1], &port[2]), N_BUS);
	free(ports);

	size_t cap = 256 * N_BUS * PER_BUS + 4096, len = 0;
	char *cfg = malloc(cap);
	len += (size_t)snprintf(cfg + len, cap - len,
		"{ \"agent\": { \"id\": \"many\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\", \"state_dir\": \"%s\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" }, \"buses\": [",
		e->state, e->dir);
	for (int b = 0; b < N_BUS; b++)
		len += (size_t)snprintf(cfg + len, cap - len, "%s{ \"id\": \"gw%d\", \"url\": \"tcp://127.0.0.1:%d\" }",
					b ? "," : "", b, port[b]);
	len += (size_t)snprintf(cfg + len, cap - len, "], \"instruments\": [");
	for (int b = 0; b < N_BUS; b++)
		for (int u = 1; u <= PER_BUS; u++)
			len += (size_t)snprintf(cfg + len, cap - len,
				"%s{ \"id\": \"INS-%d-%03d\", \"modbus\": { \"bus\": \"gw%d\", \"unit\": %d, \"interval_s\": 1,"
				" \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u16\" } } }",
				b || u > 1 ? "," : "", b, u, b, u);
	snprintf(cfg + len, cap - len, "] }");
	h_write_file(e->config, cfg, (size_t)-1, 0644);
	free(cfg);

	char *log = h_path(e->dir, "agent.log");
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	assert_non_null(p);
	struct many m = { e, 0 };
	bool live = h_wait_for(all_instruments_live, &m, 60000);
	char *snap = h_path(e->state, "status.json");
	size_t snap_len = 0;
	free(h_read_file(snap, &snap_len));
	assert_int_equal(h_stop(p, 20000), 0);
	h_proc_free(p);
	h_stop(sim, 5000);
	h_proc_free(sim);
	if (!live)
		fail_msg("%d of %d instruments live in status --json (status.json %zu bytes)", m.ok,
			 N_BUS * PER_BUS, snap_len);
	assert_true(snap_len > 65536); /* the case that was cut */
	free(snap);
	free(log);
	free(pf);
	free(simlog);
}

/* The shipped binary has no switch that moves sealed time: LABSHARE_CLOCK_OFFSET_S (the
 * benchmark's testclock build only) is ignored by `record` and `run`. */
static void test_clock_offset_ignored(void **state)
{
	struct env *e = *state;
	char *env[] = { (char *)"LABSHARE_CLOCK_OFFSET_S=-400000000", NULL };
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"record", (char *)"--instrument",
			 (char *)"SX-INS-000123", (char *)"--start", (char *)"2026-11-02 08:00", (char *)"--end",
			 (char *)"2026-11-02 09:00", (char *)"--user", (char *)"li", (char *)"--org", (char *)"x", NULL };
	char *out, *err;
	int64_t t0 = (int64_t)time(NULL);
	assert_int_equal(h_run(argv, env, &out, &err, 20000), 0);
	free(out);
	free(err);
	char *log = h_path(e->dir, "agent.log");
	char *rargv[] = { e->agent, (char *)"-c", e->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(rargv, env, false, false, log);
	assert_true(h_wait_for(status_running, e, 10000));
	assert_int_equal(h_stop(p, 20000), 0);
	h_proc_free(p);
	int64_t t1 = (int64_t)time(NULL);
	char *path = h_path(e->state, "buffer.db");
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(sealed_at), MAX(sealed_at) FROM records",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0), lo = sqlite3_column_int64(st, 1), hi = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_true(n >= 3); /* the session, agent_start, agent_stop */
	if (lo < t0 - 5 || hi > t1 + 5)
		fail_msg("sealed_at %lld..%lld, expected within %lld..%lld", (long long)lo, (long long)hi,
			 (long long)t0, (long long)t1);
	free(path);
	free(log);
}

/* Output that never reached stdout (/dev/full) is exit 74 with one clear line, whatever the
 * command. */
static void test_write_error_exits_74(void **state)
{
	struct env *e = *state;
	static const char *const cmds[] = { "status --json", "status", "check", "verify", "--version", "--help",
					    "report --from 2026-11-01 --to 2026-11-02",
					    "report --from 2026-11-01 --to 2026-11-02 --format html" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *script = h_strdupf("exec \"$0\" -c \"$1\" %s > /dev/full", cmds[i]);
		char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, e->agent, e->config, NULL };
		char *out, *err;
		int rc = h_run(argv, NULL, &out, &err, 20000);
		if (rc != 74 || strcmp(err, "labshare-agent: write error: No space left on device\n") != 0)
			fail_msg("%s > /dev/full: exit %d, stderr \"%s\"", cmds[i], rc, err);
		free(out);
		free(err);
		free(script);
	}
}

/* `report -o` never replaces what is not a plain file: a symlink is written through (the
 * link stays), a FIFO is written into (a reader gets the report). */
static void test_report_output_symlink_and_fifo(void **state)
{
	struct env *e = *state;
	char *target = h_path(e->dir, "real.csv"), *link = h_path(e->dir, "link.csv");
	h_write_file(target, "old\n", (size_t)-1, 0640);
	assert_int_equal(symlink("real.csv", link), 0);
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "report", "--from", "2026-11-01", "--to", "2026-11-02", "-o", link,
			       NULL), 0);
	free(out);
	free(err);
	struct stat st;
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	char *text = h_read_file(target, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "old\n"));
	assert_true(strlen(text) > 10);
	free(text);

	char *fifo = h_path(e->dir, "fifo"), *got = h_path(e->dir, "got.csv");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	char *script = h_strdupf("exec cat \"%s\" > \"%s\"", fifo, got);
	char *cargv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
	struct h_proc *reader = h_spawn(cargv, NULL, false, false, NULL);
	assert_non_null(reader);
	int rc = agent(e, &out, &err, "report", "--from", "2026-11-01", "--to", "2026-11-02", "-o", fifo, NULL);
	bool still_fifo = lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode);
	int rrc = h_wait(reader, 5000);
	if (rrc < 0)
		h_stop(reader, 1000);
	h_proc_free(reader);
	if (rc != 0 || !still_fifo || rrc != 0)
		fail_msg("report -o FIFO: exit %d, still a FIFO %d, reader exit %d: %s", rc, still_fifo, rrc, err);
	free(out);
	free(err);
	text = h_read_file(got, NULL);
	assert_true(text && strlen(text) > 10);
	free(text);
	free(script);
	free(fifo);
	free(got);
	free(target);
	free(link);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* A config that is a FIFO, a folder or too big: refused at once, with one line. */
static void test_check_refuses_non_regular_once(void **state)
{
	struct env *e = *state;
	char *fifo = h_path(e->dir, "fifo.json"), *dir = h_path(e->dir, "dir.json"), *big = h_path(e->dir, "big.json");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	size_t n = (4u << 20) + 1;
	char *junk = malloc(n);
	memset(junk, ' ', n);
	assert_int_equal(h_write_file(big, junk, n, 0644), 0);
	free(junk);
	const struct { const char *path, *want; } cases[] = {
		{ fifo, "fifo.json: not a regular file\n" },
		{ dir, "dir.json: Is a directory\n" },
		{ big, "big.json: larger than 4 MiB: not a configuration file\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { e->agent, (char *)"-c", (char *)cases[i].path, (char *)"check", NULL };
		char *out, *err;
		int rc = h_run(argv, NULL, &out, &err, 5000); /* -1: still running after 5 s (killed) */
		if (rc != 78 || count_lines(err) != 1 || !strstr(err, cases[i].want))
			fail_msg("check -c %s: exit %d, stderr \"%s\"", cases[i].path, rc, err);
		free(out);
		free(err);
	}
	free(fifo);
	free(dir);
	free(big);
}

/* Run as root on a state folder the service's user owns, a command acts as that user: the
 * buffer and SQLite's -wal and -shm beside it stay the service's (a root-owned -shm would
 * stop the daemon from opening its own buffer). */
static void test_root_acts_as_the_state_owner(void **state)
{
	struct env *e = *state;
	if (geteuid() != 0)
		skip();
	const uid_t uid = 65534; /* nobody */
	const gid_t gid = 65534;
	assert_int_equal(chmod(e->dir, 0755), 0);
	assert_int_equal(mkdir(e->state, 0750), 0);
	assert_int_equal(chown(e->state, uid, gid), 0);
	char *out = NULL, *err = NULL;
	int code = agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", "--start", "2026-11-02 08:00:00",
			 "--end", "2026-11-02 09:00:00", "--user", "王", "--org", "山西大学", NULL);
	if (code != 0)
		fail_msg("record as root: exit %d: %s", code, err);
	free(out);
	free(err);
	static const char *const files[] = { "buffer.db", "buffer.db-wal", "buffer.db-shm" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = h_path(e->state, files[i]);
		struct stat st;
		if (stat(p, &st) == 0 && st.st_uid != uid)
			fail_msg("%s is owned by uid %u, not the state folder's owner", files[i], (unsigned)st.st_uid);
		free(p);
	}
	char *db = h_path(e->state, "buffer.db");
	struct stat st;
	assert_int_equal(stat(db, &st), 0);
	free(db);
	/* status and verify as root read it as the owner too, and leave nothing of root's behind */
	assert_int_equal(agent(e, &out, &err, "verify", NULL), 0);
	free(out);
	free(err);
	assert_int_equal(agent(e, &out, &err, "status", NULL), 0);
	free(out);
	free(err);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = h_path(e->state, files[i]);
		struct stat s2;
		if (stat(p, &s2) == 0 && s2.st_uid != uid)
			fail_msg("after verify and status, %s is owned by uid %u", files[i], (unsigned)s2.st_uid);
		free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_600_instruments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_offset_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_exits_74, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_output_symlink_and_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_refuses_non_regular_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_refuses_bytes_not_in_the_locale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_converts_from_a_gbk_locale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_refuses_implausible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_same_session_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_acts_as_the_state_owner, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
