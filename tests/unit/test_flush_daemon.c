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
#include <sqlite3.h>
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
#include "harness.h"
#include "log.h"
#include "timeutil.h"

struct fx {
	char *dir, *certs, *cfg_path, *state;
	struct h_proc *plat, *agent;
	int port;
};

static void start_platform(struct fx *f)
{
	char *pf = h_path(f->dir, "port"), *db = h_path(f->dir, "platform.db");
	char *cert = h_path(f->certs, "server.pem"), *key = h_path(f->certs, "server.key");
	char *log = h_path(f->dir, "refplat.log");
	char *listen = f->port ? h_strdupf("127.0.0.1:%d", f->port) : strdup("127.0.0.1:0");
	unlink(pf);
	char *argv[] = { (char *)h_build_path("refplat"), (char *)"--listen", listen, (char *)"--port-file", pf,
			 (char *)"--cert", cert, (char *)"--key", key, (char *)"--db", db,
			 (char *)"--token", (char *)"s3cret", NULL };
	f->plat = h_spawn(argv, NULL, true, true, log);
	assert_true(h_wait_file(pf, 10000));
	char *p = h_read_file(pf, NULL);
	f->port = (int)strtol(p, NULL, 10);
	free(p);
	free(pf);
	free(db);
	free(cert);
	free(key);
	free(log);
	free(listen);
}

static void stop_platform(struct fx *f)
{
	h_stop(f->plat, 5000);
	h_proc_free(f->plat);
	f->plat = NULL;
}

static void plat_cmd(struct fx *f, const char *line)
{
	char *reply = h_request(f->plat, line, 5000);
	if (!reply || strcmp(reply, "ok") != 0)
		fail_msg("refplat: \"%s\": %s", line, reply ? reply : "(no reply)");
	free(reply);
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
	for (int i = 0; i < n; i++) {
		struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
		char user[32];
		snprintf(user, sizeof(user), "user-%d", i);
		o.u.session = (struct obs_session){ .start = base + i * 3600, .end = base + i * 3600 + 1800,
						    .user = user, .org = "太原理工大学", .external = 1, .samples = 1 };
		assert_int_equal(core_submit(core, &o, 1, NULL, NULL, 0), 0);
	}
	core_free(core);
	buffer_close(b);
	config_free(cfg);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_flush_daemon");
	f->certs = h_make_certs(f->dir);
	assert_non_null(f->certs);
	f->state = h_path(f->dir, "state");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "s3cret\n", (size_t)-1, 0600);
	free(token);
	start_platform(f);
	/* A long interval: after its first round the daemon uploads again only when asked. */
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:%d/api\", \"token_file\": \"%s/token\","
		"    \"ca_file\": \"%s/ca.pem\", \"batch_max_records\": 50, \"upload_interval_s\": 3600,"
		"    \"timeout_s\": 5 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\","
		"    \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->state, f->port, f->dir, f->certs);
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
	h_stop(f->plat, 5000);
	h_proc_free(f->plat);
	if (getenv("KEEP_TMP"))
		fprintf(stderr, "kept %s\n", f->dir);
	else
		h_rmtree(f->dir);
	free(f->dir);
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

static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW)
				v = sqlite3_column_int64(q, 0);
			sqlite3_finalize(q);
		}
	}
	sqlite3_close(db);
	return v;
}

static int64_t platform_head(struct fx *f)
{
	char *db = h_path(f->dir, "platform.db");
	int64_t v = sql_int(db, "SELECT COALESCE(MAX(seq), 0) FROM records WHERE agent_id = 'agent-1'");
	free(db);
	return v;
}

static int64_t local_head(struct fx *f)
{
	char *db = h_path(f->state, "buffer.db");
	int64_t v = sql_int(db, "SELECT COALESCE(MAX(seq), 0) FROM records");
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
	char *db = h_path(f->dir, "platform.db");
	int64_t v = sql_int(db, "SELECT COUNT(*) FROM (SELECT idempotency_key FROM requests WHERE method = 'POST'"
				" AND idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING COUNT(*) > 1)");
	free(db);
	return v;
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
	stop_platform(f);
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"record",
			 (char *)"--instrument", (char *)"NMR", (char *)"--start", (char *)"2026-11-02 08:00",
			 (char *)"--end", (char *)"2026-11-02 09:00", (char *)"--user", (char *)"u",
			 (char *)"--org", (char *)"o", NULL };
	assert_int_equal(h_run(argv, NULL, NULL, NULL, 20000), 0);
	int64_t rec = local_head(f);
	int code = agent(f, "flush", &out, &err);
	if (code != EX_TEMPFAIL)
		fail_msg("flush, platform down: exit %d, stderr \"%s\"", code, err ? err : "");
	assert_non_null(strstr(err, "cannot reach"));
	free(out);
	free(err);

	/* Back, but refusing that record: 76, and the reason. */
	start_platform(f);
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

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_asks_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_codes_through_the_daemon, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
