/* test_upload_daemon.c — uploads by the real daemon against the reference platform over real
 * HTTPS: killed and restarted mid-upload, paused by a full buffer and resumed, and back-off
 * jitter that differs between processes (the fixture: test_upload_env.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "clockdrive.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "platfix.h"
#include "sink.h"
#include "timeutil.h"
#include "transfer.h"
#include "uploader.h"

#include "test_upload_env.h"

struct daemon_wait {
	struct fx *f;
	int64_t want;
};

static bool platform_has(void *arg)
{
	struct daemon_wait *w = arg;
	return plat_head(w->f, NULL) >= w->want;
}

/* Everything sealed so far (the daemon keeps sealing events) is on the platform. */
static bool platform_caught_up(void *arg)
{
	struct fx *f = arg;
	struct chain_head h;
	buffer_head(f->buf, &h);
	return plat_head(f, NULL) == h.seq && h.seq > 5000;
}

/* One number over the agent's rows on the platform (its db is shared: WAL). */
static int64_t platform_agg(struct fx *f, const char *what)
{
	char *sql = h_strdupf("SELECT %s FROM records WHERE agent_id = 'agent-1'", what);
	int64_t n = h_sql_int(f->pl.db, sql);
	free(sql);
	return n;
}

static int64_t platform_count(struct fx *f, const char *where)
{
	char *sql = h_strdupf("SELECT COUNT(*) FROM records WHERE agent_id = 'agent-1' AND %s", where);
	int64_t n = h_sql_int(f->pl.db, sql);
	free(sql);
	return n;
}

/* The daemon holds its lock once signals are handled and the buffer is open. */
static bool daemon_ready(void *arg)
{
	const char *state_dir = arg;
	char *path = h_path(state_dir, "agent.lock");
	int fd = open(path, O_RDONLY);
	free(path);
	if (fd < 0)
		return false;
	bool held = flock(fd, LOCK_SH | LOCK_NB) < 0;
	close(fd);
	return held;
}

/* The daemon uploads on its own, and a SIGKILL at any moment loses nothing. */
static void test_daemon_uploads_and_survives_kills(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 5000);
	core_free(f->core);
	f->core = NULL;
	char *cfg = h_path(f->dir, "agent.json");
	char *log = h_path(f->dir, "agent.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", cfg, (char *)"run", NULL };
	assert_int_equal(platfix_cmd(&f->pl, "fault slow 20 count=0"), 0);
	srand(7);
	for (int i = 0; i < 8; i++) {
		struct h_proc *p = h_spawn(argv, NULL, false, false, log);
		int64_t before = plat_head(f, NULL);
		struct daemon_wait w = { f, before + 1 };
		h_wait_for(platform_has, &w, 10000);
		struct timespec ts = { 0, (rand() % 200) * 1000000L };
		nanosleep(&ts, NULL); /* a random moment inside the upload, not a wait for a result */
		h_kill(p, SIGKILL);
		h_wait(p, 5000);
		h_proc_free(p);
	}
	assert_int_equal(platfix_cmd(&f->pl, "clear"), 0);
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	char *state_dir = h_path(f->dir, "state");
	assert_true(h_wait_for(daemon_ready, state_dir, 10000));
	free(state_dir);
	assert_true(h_wait_for(platform_caught_up, f, 60000));
	struct chain_head h;
	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	/* What the last run sealed while stopping goes with a flush. Then everything is there
	 * exactly once, in one chain the platform verified record by record: its rows are
	 * exactly 1..head, and its head hash is ours. */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	buffer_head(f->buf, &h);
	int64_t rows = platform_agg(f, "COUNT(*)"), lo = platform_agg(f, "MIN(seq)");
	int64_t hi = platform_agg(f, "MAX(seq)"), distinct = platform_agg(f, "COUNT(DISTINCT seq)");
	if (lo != 1 || rows != hi || distinct != rows || hi < 5000 + 9 || hi != h.seq)
		fail_msg("platform holds %lld rows, seq %lld..%lld (%lld distinct); local head %lld",
			 (long long)rows, (long long)lo, (long long)hi, (long long)distinct, (long long)h.seq);
	char hash[HASH_HEX_LEN + 1], ours[HASH_HEX_LEN + 1];
	int64_t ph = plat_head(f, hash);
	assert_int_equal(buffer_hash_of(f->buf, ph, ours), 0);
	assert_string_equal(hash, ours);
	free(cfg);
	free(log);
}

struct bp {
	struct fx *f;
	char *cfg;
	int64_t want;
};

static cJSON *agent_status(const char *cfg)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", (char *)cfg, (char *)"status",
			 (char *)"--json", NULL };
	char *out = NULL, *err = NULL;
	cJSON *st = NULL;
	if (h_run(argv, NULL, &out, &err, 10000) == 0)
		st = cJSON_Parse(out);
	free(out);
	free(err);
	return st;
}

static bool buffer_is_full(void *arg)
{
	struct bp *b = arg;
	cJSON *st = agent_status(b->cfg);
	bool full = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "buffer"), "full"));
	cJSON_Delete(st);
	return full;
}

static bool all_sessions_on_platform(void *arg)
{
	struct bp *b = arg;
	return platform_count(b->f, "line LIKE '%\"kind\":\"session\"%'") >= b->want;
}

/* A tiny cap, the platform unavailable: the log source pauses (its lines wait on disk), nothing
 * is dropped; when the platform returns, acknowledged records make room and reading resumes. */
static void test_back_pressure_pauses_and_resumes(void **state)
{
	struct fx *f = *state;
	enum { N = 6000 };
	char *logdir = h_path(f->dir, "logs");
	mkdir(logdir, 0755);
	char *logpath = h_path(logdir, "usage.csv");
	FILE *lf = fopen(logpath, "w");
	fputs("start,end,user,org,project\n", lf);
	char project[301];
	memset(project, 'p', 300);
	project[300] = '\0';
	for (int i = 0; i < N; i++)
		fprintf(lf, "2026-10-01T00:00:00Z,2026-10-01T00:30:00Z,user-%d,Org %d,%s\n", i, i % 7, project);
	fclose(lf);
	char *cfg = h_path(f->dir, "agent-bp.json");
	char *platform = platfix_config(&f->pl);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/bp-state\" },"
		"  \"platform\": { %s, \"upload_interval_s\": 1, \"timeout_s\": 5 },"
		"  \"buffer\": { \"max_mb\": 2 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"%s\", \"format\": \"csv\","
		"    \"fields\": { \"start\": \"start\", \"end\": \"end\", \"user\": \"user\", \"org\": \"org\","
		"                \"project\": \"project\" } } ] } ] }",
		f->dir, platform, logpath);
	h_write_file(cfg, text, (size_t)-1, 0644);
	free(text);
	free(platform);

	/* Unavailable, and saying when to come back: the agent then tries every second instead of
	 * backing off further with each failure, so its return is seen at once (test_unreachable_
	 * then_back has the platform really down). */
	assert_int_equal(platfix_cmd(&f->pl, "fault status 503 retry_after=1 count=0"), 0);
	char *log = h_path(f->dir, "agent-bp.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", cfg, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	struct bp b = { f, cfg, N };
	assert_true(h_wait_for(buffer_is_full, &b, 60000));
	/* Paused: part of the log is still unread, and the agent says so. */
	cJSON *st = agent_status(cfg);
	const cJSON *logs = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "instruments"), 0), "logs");
	double lines = cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 0), "lines")->valuedouble;
	assert_true(lines < N);
	cJSON_Delete(st);
	char *text_log = h_read_file(log, NULL);
	assert_non_null(strstr(text_log, "buffer: full"));
	free(text_log);

	assert_int_equal(platfix_cmd(&f->pl, "clear"), 0); /* back */
	assert_true(h_wait_for(all_sessions_on_platform, &b, 180000));
	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	/* Every line exactly once, and the buffer_full event among the records. */
	assert_int_equal(platform_count(f, "line LIKE '%\"kind\":\"session\"%'"), N);
	char *distinct = h_strdupf("seq IN (SELECT MIN(seq) FROM records WHERE line LIKE '%%\"kind\":\"session\"%%'"
				   " GROUP BY json_extract(line, '$.user'))");
	assert_int_equal(platform_count(f, distinct), N);
	free(distinct);
	assert_true(platform_count(f, "line LIKE '%\"type\":\"buffer_full\"%'") >= 1);
	free(log);
	free(cfg);
	free(logpath);
	free(logdir);
}

/* Back-off jitter is seeded per process: two agents that lost the platform together get
 * different schedules, each wait within [1 s, cap]. Two children of this process inherit
 * the same libc random() state, so an unseeded generator gives them the same numbers. */
static void test_jitter_differs_between_processes(void **state)
{
	(void)state;
	enum { N = 24, FAILS = 8, CAP = 256 };
	int64_t seq[2][N];
	for (int k = 0; k < 2; k++) {
		int fds[2];
		assert_int_equal(pipe(fds), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			struct transfer t;
			struct transfer_opts o = { .url = "https://127.0.0.1:9/v1/feeds", .protocols = "https",
						   .timeout_s = 1, .reply_max = 1024 };
			int64_t out[N];
			if (transfer_init(&t, &o) < 0)
				_exit(1);
			t.failures = FAILS;
			for (int i = 0; i < N; i++)
				out[i] = transfer_backoff(&t, 1000, 300) - 1000;
			transfer_cleanup(&t);
			_exit(write(fds[1], out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 1);
		}
		close(fds[1]);
		size_t got = 0;
		while (got < sizeof(seq[k])) {
			ssize_t r = read(fds[0], (char *)seq[k] + got, sizeof(seq[k]) - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fds[0]);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_int_equal(got, sizeof(seq[k]));
		for (int i = 0; i < N; i++)
			if (seq[k][i] < 1 || seq[k][i] > CAP)
				fail_msg("jitter %lld outside [1, %d]", (long long)seq[k][i], CAP);
	}
	assert_memory_not_equal(seq[0], seq[1], sizeof(seq[0]));
	/* The bounds at both ends: no failure yet waits 1 s; many never exceed the maximum. */
	struct transfer t;
	struct transfer_opts o = { .url = "https://127.0.0.1:9/v1/feeds", .protocols = "https", .timeout_s = 1,
				   .reply_max = 1024 };
	assert_int_equal(transfer_init(&t, &o), 0);
	assert_int_equal(transfer_backoff(&t, 0, 300), 1);
	t.failures = 40;
	for (int i = 0; i < 1000; i++) {
		int64_t d = transfer_backoff(&t, 0, 300);
		assert_true(d >= 1 && d <= 300);
	}
	transfer_cleanup(&t);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	srandom(1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_daemon_uploads_and_survives_kills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure_pauses_and_resumes, setup, teardown),
		cmocka_unit_test(test_jitter_differs_between_processes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
