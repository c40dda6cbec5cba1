/* test_flush_daemon.c — `flush` beside a running daemon (SPEC §2): the daemon's own uploader does
 * the work (no second uploader, so the platform never sees the same batch from two), with the
 * same exit codes as a flush on its own. The built agent, the reference platform over HTTPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "flushctl.h"
#include "harness.h"
#include "log.h"
#include "platfix.h"
#include "timeutil.h"

struct fx {
	char *dir, *certs, *cfg_path, *state;
	struct platfix plat;
	struct h_proc *agent;
};

static void plat_cmd(struct fx *f, const char *line)
{
	assert_int_equal(platfix_cmd(&f->plat, line), 0);
}

/* Sessions sealed through the library, before the daemon starts. */
static void seal_sessions(struct fx *f, int n)
{
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_load(f->cfg_path, &cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	struct buffer *b = NULL;
	assert_int_equal(buffer_open(cfg->agent.state_dir, 0, &b, NULL), 0);
	struct core *core = core_new(cfg, b);
	/* In the past of the real clock: the core refuses sessions more than 24 h ahead. */
	int64_t base = clock_wall() - (int64_t)(n + 2) * 3600;
	struct obs *o = calloc((size_t)n, sizeof(*o));
	char (*user)[32] = calloc((size_t)n, sizeof(*user));
	for (int i = 0; i < n; i++) {
		snprintf(user[i], sizeof(user[i]), "user-%d", i);
		o[i] = (struct obs){ .type = OBS_SESSION, .instrument = "NMR" };
		o[i].u.session = (struct obs_session){ .start = base + i * 3600, .end = base + i * 3600 + 1800,
						       .user = user[i], .org = "太原理工大学", .external = 1,
						       .samples = 1 };
	}
	/* One batch: one transaction, not one per session. */
	assert_int_equal(core_submit(core, o, (size_t)n, NULL, NULL, 0), 0);
	free(o);
	free(user);
	core_free(core);
	buffer_close(b);
	config_free(cfg);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = platfix_folder("test_flush_daemon", &f->certs);
	assert_non_null(f->dir);
	f->state = h_path(f->dir, "state");
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	/* A long interval: after its first round the daemon uploads again only when asked. */
	char *plat = platfix_config(&f->plat);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s\" },"
		"  \"platform\": { %s, \"batch_max_records\": 50, \"upload_interval_s\": 3600, \"timeout_s\": 5 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\","
		"    \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->state, plat);
	free(plat);
	f->cfg_path = h_path(f->dir, "agent.json");
	h_write_file(f->cfg_path, text, (size_t)-1, 0644);
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_stop(f->agent, 20000);
	h_proc_free(f->agent);
	platfix_free(&f->plat);
	h_done_dir(f->dir);
	free(f->certs);
	free(f->cfg_path);
	free(f->state);
	free(f);
	return 0;
}

/* The daemon holds its lock and serves control.sock. */
static bool daemon_serving(void *arg)
{
	struct fx *f = arg;
	char *lock = h_path(f->state, "agent.lock"), *sock = h_path(f->state, "control.sock");
	struct stat st;
	bool ok = stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
	int fd = open(lock, O_RDONLY);
	ok = ok && fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0;
	if (fd >= 0)
		close(fd);
	free(lock);
	free(sock);
	return ok;
}

static void start_daemon(struct fx *f)
{
	char *log = h_path(f->dir, "agent.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"run", NULL };
	f->agent = h_spawn(argv, NULL, false, false, log);
	free(log);
	assert_true(h_wait_for(daemon_serving, f, 20000));
}

static int agent(struct fx *f, const char *cmd, char **out, char **err)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)cmd, NULL };
	return h_run(argv, NULL, out, err, 180000);
}

static int64_t platform_head(struct fx *f)
{
	return h_sql_int(f->plat.db, "SELECT COALESCE(MAX(seq), 0) FROM records WHERE agent_id = 'agent-1'");
}

static int64_t local_head(struct fx *f)
{
	char *db = h_path(f->state, "buffer.db");
	int64_t v = h_sql_int(db, "SELECT COALESCE(MAX(seq), 0) FROM records");
	free(db);
	return v;
}

static bool upload_under_way(void *arg)
{
	return platform_head(arg) > 0;
}

/* The same seqs posted twice: the mark of two uploaders (no fault here repeats a batch). */
static int64_t repeated_batches(struct fx *f)
{
	return h_sql_int(f->plat.db, "SELECT COUNT(*) FROM (SELECT idempotency_key FROM requests WHERE method = 'POST'"
				     " AND idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING COUNT(*) > 1)");
}

static void test_flush_asks_the_daemon(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2000);
	plat_cmd(f, "fault slow 50 count=0");
	start_daemon(f);
	/* The daemon is in the middle of its backlog when flush comes. */
	assert_true(h_wait_for(upload_under_way, f, 20000));
	char *out = NULL, *err = NULL;
	int code = agent(f, "flush", &out, &err);
	if (code != 0)
		fail_msg("flush: exit %d, stdout \"%s\", stderr \"%s\"", code, out ? out : "", err ? err : "");
	assert_non_null(strstr(out, "platform: everything acknowledged"));
	/* Acknowledged to the end when it returned: the platform holds everything sealed. */
	assert_int_equal(platform_head(f), local_head(f));
	assert_true(platform_head(f) > 2000);
	assert_int_equal(repeated_batches(f), 0);
	free(out);
	free(err);
	char *log = h_path(f->dir, "agent.log"), *text = h_read_file(log, NULL);
	assert_non_null(strstr(text, "flush: requested"));
	free(text);
	free(log);
}

static void test_flush_codes_through_the_daemon(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	start_daemon(f);
	char *out = NULL, *err = NULL;
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	free(out);
	free(err);

	/* A manual record beside the daemon, the platform down: 75, nothing lost. */
	platfix_stop(&f->plat);
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"record",
			 (char *)"--instrument", (char *)"NMR", (char *)"--start", (char *)"2026-11-02 08:00",
			 (char *)"--end", (char *)"2026-11-02 09:00", (char *)"--user", (char *)"u",
			 (char *)"--org", (char *)"o", NULL };
	assert_int_equal(h_run(argv, NULL, NULL, NULL, 20000), 0);
	int64_t rec = local_head(f);
	int64_t t0 = clock_mono_ms();
	int code = agent(f, "flush", &out, &err);
	if (code != EX_TEMPFAIL)
		fail_msg("flush, platform down: exit %d, stderr \"%s\"", code, err ? err : "");
	assert_non_null(strstr(err, "cannot reach"));
	/* Within the bound README states: the back-offs a flush waits out are capped in all. */
	assert_true(clock_mono_ms() - t0 < (FLUSH_WAIT_TOTAL_S + 3) * 1000);
	free(out);
	free(err);

	/* Back, but refusing that record: 76, and the reason. */
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	char *cmd = h_strdupf("fault reject %lld error=bad-record", (long long)rec);
	plat_cmd(f, cmd);
	free(cmd);
	code = agent(f, "flush", &out, &err);
	if (code != EX_PROTOCOL)
		fail_msg("flush, record refused: exit %d, stderr \"%s\"", code, err ? err : "");
	assert_non_null(strstr(err, "bad-record"));
	free(out);
	free(err);

	/* Fixed on the platform's side: done. */
	plat_cmd(f, "clear");
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	assert_int_equal(platform_head(f), local_head(f));
	free(out);
	free(err);

	/* No daemon: flush uploads on its own, as it always did (the stop sealed an event). */
	assert_int_equal(h_kill(f->agent, SIGTERM), 0);
	assert_int_equal(h_wait(f->agent, 20000), 0);
	h_proc_free(f->agent);
	f->agent = NULL;
	assert_true(local_head(f) > platform_head(f));
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	assert_int_equal(platform_head(f), local_head(f));
	free(out);
	free(err);
}

static bool log_has(struct fx *f, const char *what, int times)
{
	char *log = h_path(f->dir, "agent.log"), *text = h_read_file(log, NULL);
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
		n++;
	free(text);
	free(log);
	return n >= times;
}

static bool backing_off(void *arg)
{
	return log_has(arg, "platform busy", 1);
}

static bool reloaded_and_asked_again(void *arg)
{
	return log_has(arg, "reload: configuration", 1) && log_has(arg, "flush: requested", 2);
}

/* A flush waiting on the daemon while it reloads (SIGHUP): the reload stops the uploader that
 * took the request; the command asks the new one and gets its real answer, not 75. */
static void test_flush_across_a_reload(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	start_daemon(f);
	char *out = NULL, *err = NULL;
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	free(out);
	free(err);
	/* Something pending, and the platform asking for 4 s: the flush waits that out (within
	 * FLUSH_WAIT_TOTAL_S) — and the reload comes meanwhile. */
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"record",
			 (char *)"--instrument", (char *)"NMR", (char *)"--start", (char *)"2026-11-02 08:00",
			 (char *)"--end", (char *)"2026-11-02 09:00", (char *)"--user", (char *)"u",
			 (char *)"--org", (char *)"o", NULL };
	assert_int_equal(h_run(argv, NULL, NULL, NULL, 20000), 0);
	plat_cmd(f, "fault status 503 retry_after=4 count=1");
	char *flush_argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"flush", NULL };
	char *flush_log = h_path(f->dir, "flush.out");
	struct h_proc *fl = h_spawn(flush_argv, NULL, false, false, flush_log);
	assert_true(h_wait_for(backing_off, f, 20000));
	assert_int_equal(h_kill(f->agent, SIGHUP), 0);
	assert_true(h_wait_for(reloaded_and_asked_again, f, 20000));
	int code = h_wait(fl, 20000);
	char *text = h_read_file(flush_log, NULL);
	if (code != 0)
		fail_msg("flush across a reload: exit %d, output \"%s\"", code, text ? text : "");
	assert_non_null(strstr(text, "platform: everything acknowledged"));
	assert_int_equal(platform_head(f), local_head(f));
	assert_int_equal(repeated_batches(f), 0);
	free(text);
	free(flush_log);
	h_proc_free(fl);
}

/* Two flushes on their own (no daemon) take turns: the second waits for the first (SPEC §2:
 * no second uploader runs), then finds everything acknowledged. */
static void test_two_standalone_flushes_take_turns(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 100);
	/* A flush holds the turn: the test holds flush.lock itself, so the overlap is certain. */
	int held = flushctl_lock_standalone(f->state);
	assert_true(held >= 0);
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"flush", NULL };
	char *log1 = h_path(f->dir, "flush1.out"), *log2 = h_path(f->dir, "flush2.out");
	struct h_proc *p1 = h_spawn(argv, NULL, false, false, log1);
	struct h_proc *p2 = h_spawn(argv, NULL, false, false, log2);
	/* Both wait, and say so; nothing reaches the platform meanwhile. */
	assert_true(h_wait_file(log1, 20000));
	assert_true(h_wait_file(log2, 20000));
	char *t1 = h_read_file(log1, NULL), *t2 = h_read_file(log2, NULL);
	assert_non_null(strstr(t1, "another flush is uploading"));
	assert_non_null(strstr(t2, "another flush is uploading"));
	free(t1);
	free(t2);
	assert_int_equal(h_sql_int(f->plat.db, "SELECT COUNT(*) FROM requests WHERE method = 'POST'"), 0);
	/* Let them go: one uploads, the other waits its turn. */
	close(held);
	assert_int_equal(h_wait(p1, 60000), 0);
	assert_int_equal(h_wait(p2, 60000), 0);
	assert_int_equal(platform_head(f), local_head(f));
	assert_true(platform_head(f) >= 100);
	assert_int_equal(repeated_batches(f), 0);
	h_proc_free(p1);
	h_proc_free(p2);
	free(log1);
	free(log2);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_asks_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_codes_through_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_across_a_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_standalone_flushes_take_turns, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
