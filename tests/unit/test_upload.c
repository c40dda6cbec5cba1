/* test_upload.c — the feed against the reference platform over real HTTPS (a CA made at test
 * time): acknowledgements, every reply class, faults, and what the platform ends up holding. */
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

struct fx {
	char *dir, *certs;
	struct platfix pl;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	FILE *devnull;
	/* flush waits out back-offs and Retry-After on this clock, driven: no real waiting */
	struct fake_clock clock;
	struct h_clockdrive *drive;
};

static cJSON *plat_json(struct fx *f, const char *line)
{
	char *reply = platfix_request(&f->pl, line);
	cJSON *o = reply ? cJSON_Parse(reply) : NULL;
	if (!o)
		fail_msg("refplat: \"%s\": %s", line, reply ? reply : "(no reply)");
	free(reply);
	return o;
}

static int64_t plat_head(struct fx *f, char hash[HASH_HEX_LEN + 1])
{
	cJSON *h = plat_json(f, "head agent-1");
	int64_t seq = (int64_t)cJSON_GetObjectItem(h, "seq")->valuedouble;
	if (hash)
		snprintf(hash, HASH_HEX_LEN + 1, "%s", cJSON_GetObjectItem(h, "hash")->valuestring);
	cJSON_Delete(h);
	return seq;
}

static void load_config(struct fx *f, const char *extra_platform)
{
	char *platform = platfix_config(&f->pl);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
		"  \"platform\": { %s, \"upload_interval_s\": 1, \"batch_max_records\": 500,"
		"    \"timeout_s\": 5 %s },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\","
		"    \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->dir, platform, extra_platform ? extra_platform : "");
	free(platform);
	char *path = h_path(f->dir, "agent.json");
	h_write_file(path, text, (size_t)-1, 0644);
	struct config_errors errs = { 0 };
	struct config *old = f->cfg;
	if (config_load(path, &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	if (f->core)
		core_set_config(f->core, f->cfg);
	config_free(old);
	free(text);
	free(path);
}

static int setup_common(void **state, bool mtls)
{
	struct fx *f = calloc(1, sizeof(*f));
	fake_clock_install(&f->clock, clock_wall()); /* from now on, so sealed sessions stay past */
	f->drive = h_clockdrive_start(&f->clock);
	assert_non_null(f->drive);
	f->dir = platfix_folder("test_upload", &f->certs);
	assert_non_null(f->dir);
	f->pl.mtls = mtls;
	assert_int_equal(platfix_start(&f->pl, f->dir, f->certs), 0);
	char *extra = mtls ? h_strdupf(", \"client_cert\": \"%s/client.pem\", \"client_key\": \"%s/client.key\"",
				       f->certs, f->certs) : NULL;
	load_config(f, extra);
	free(extra);
	timeutil_set_zone("Asia/Shanghai");
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
	f->devnull = fopen("/dev/null", "w");
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_common(state, false); }
static int setup_mtls(void **state) { return setup_common(state, true); }

static int teardown(void **state)
{
	struct fx *f = *state;
	core_free(f->core);
	buffer_close(f->buf);
	config_free(f->cfg);
	platfix_free(&f->pl);
	h_clockdrive_stop(f->drive);
	clock_set(NULL);
	fclose(f->devnull);
	h_done_dir(f->dir);
	free(f->certs);
	free(f);
	return 0;
}

static void seal_sessions(struct fx *f, int n)
{
	/* Every call new sessions (the same one twice is sealed once, SPEC §3), all in the past
	 * of the real clock (one ahead of it by more than 24 h is refused): 2 minutes apart
	 * from 2026-11-02 08:00 +08:00 on. */
	static int next;
	for (int k = 0; k < n; k++) {
		int i = next++;
		struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
		char user[32];
		snprintf(user, sizeof(user), "user-%d", i);
		o.u.session = (struct obs_session){ .start = 1793577600 + i * 120, .end = 1793577600 + i * 120 + 60,
						    .user = user, .org = i % 2 ? "太原理工大学" : "山西大学",
						    .external = -1, .samples = i % 5 };
		assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	}
}

static int64_t acked(struct fx *f)
{
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	int64_t a = st.acked_seq;
	buffer_sink_clear(&st);
	return a;
}

static char *last_error(struct fx *f)
{
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	char *e = st.last_error ? strdup(st.last_error) : (st.alarm ? strdup(st.alarm) : NULL);
	buffer_sink_clear(&st);
	return e;
}

static void assert_platform_matches(struct fx *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	char hash[HASH_HEX_LEN + 1];
	assert_int_equal(plat_head(f, hash), h.seq);
	assert_string_equal(hash, h.hash);
}

static void test_flush_everything(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 1234);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(acked(f), 1234);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "records")->valuedouble, 1234);
	assert_int_equal((int)cJSON_GetObjectItem(s, "dups")->valuedouble, 0);
	assert_true(cJSON_GetObjectItem(s, "gzip_requests")->valuedouble >= 3);
	assert_string_equal(cJSON_GetObjectItem(s, "last_idempotency_key")->valuestring, "agent-1:1001-1234");
	assert_string_equal(cJSON_GetObjectItem(s, "last_user_agent")->valuestring, "labshare-agent/0.1.0");
	cJSON_Delete(s);
	/* Nothing pending: flush is a no-op that still succeeds. */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
}

/* The next batch is read and gzipped while one is in flight, on the guess that the platform
 * acknowledges it whole. A partial ack makes the guess wrong: what is sent next starts after
 * what was acknowledged, never after what was sent, and nothing is lost nor sent around a hole. */
static void test_pipeline_guess_wrong(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2000);
	assert_int_equal(platfix_cmd(&f->pl, "fault ack_behind 100 count=1"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(acked(f), 2000);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "records")->valuedouble, 2000);
	/* 1-500 (acked to 400), then 401-900 … 1901-2000: five posts. */
	assert_int_equal((int)cJSON_GetObjectItem(s, "feed_posts")->valuedouble, 5);
	assert_string_equal(cJSON_GetObjectItem(s, "last_idempotency_key")->valuestring, "agent-1:1901-2000");
	cJSON_Delete(s);
}

static void test_small_body_not_gzipped(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "gzip_requests")->valuedouble, 0);
	cJSON_Delete(s);
	assert_platform_matches(f);
}

static void test_retry_after_honoured(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	assert_int_equal(platfix_cmd(&f->pl, "fault status 503 retry_after=1 count=2"), 0);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	/* Waited twice, 1 s each, as asked: fake time passes only while flush waits. */
	int64_t waited = clock_mono_ms() - t0;
	if (waited < 2000 || waited >= 3000)
		fail_msg("flush waited %lld ms for two Retry-After: 1", (long long)waited);
	assert_platform_matches(f);
}

static void test_lost_reply_resent_harmlessly(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 700);
	assert_int_equal(platfix_cmd(&f->pl, "fault drop_reply count=1"), 0);
	/* The first batch is stored but its reply lost: the resend is de-duplicated. */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "records")->valuedouble, 700);
	assert_int_equal((int)cJSON_GetObjectItem(s, "dups")->valuedouble, 500);
	cJSON_Delete(s);
}

static void test_too_large_halves_batch(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 600);
	assert_int_equal(platfix_cmd(&f->pl, "fault max_body 2500"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "by_status"), "413")->valuedouble >= 2);
	cJSON_Delete(s);
}

static void test_refused_record_stops_and_keeps(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 50);
	assert_int_equal(platfix_cmd(&f->pl, "fault reject 17 status=422 error=unknown-instrument"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(acked(f), 0);
	char *e = last_error(f);
	assert_non_null(strstr(e, "refused record 17"));
	assert_non_null(strstr(e, "unknown-instrument"));
	free(e);
	/* Fixed on the platform's side: the next flush delivers everything. */
	assert_int_equal(platfix_cmd(&f->pl, "clear"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
}

static void test_credentials_refused(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 3);
	assert_int_equal(platfix_cmd(&f->pl, "fault status 401 count=1"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_TEMPFAIL);
	char *e = last_error(f);
	assert_non_null(strstr(e, "credentials"));
	free(e);
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	assert_true(st.next_attempt - clock_wall() >= 290); /* every 5 minutes */
	buffer_sink_clear(&st);
}

static void test_wrong_ack_hash_is_alarm(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 5);
	assert_int_equal(platfix_cmd(&f->pl, "fault wrong_hash count=1"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(acked(f), 0);
	char *e = last_error(f);
	assert_non_null(strstr(e, "integrity alarm"));
	free(e);
	/* Upload stays stopped until the alarm is cleared (a restart). */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	uploader_clear_alarms(f->cfg, f->buf);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
}

static void test_unreachable_then_back(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 20);
	platfix_stop(&f->pl);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_TEMPFAIL);
	char *e = last_error(f);
	assert_non_null(strstr(e, "cannot reach"));
	free(e);
	assert_int_equal(platfix_start(&f->pl, f->dir, f->certs), 0); /* same port, same store */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
}

static void test_platform_lost_data_resend_from_expected(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 300);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	/* The platform comes back from an older backup: empty. It answers 409 expected 1. */
	platfix_stop(&f->pl);
	platfix_use_db(&f->pl, "platform-restored.db");
	assert_int_equal(platfix_start(&f->pl, f->dir, f->certs), 0);
	seal_sessions(f, 10);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
}

static void test_different_chain_is_alarm(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 30);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	/* The agent's buffer is replaced by another one (restored from an old backup that
	 * sealed different records): the platform's chain is not ours. */
	core_free(f->core);
	buffer_close(f->buf);
	char *state_dir = h_path(f->dir, "state");
	h_rmtree(state_dir);
	assert_int_equal(buffer_open(state_dir, 0, &f->buf, NULL), 0);
	free(state_dir);
	f->core = core_new(f->cfg, f->buf);
	assert_int_equal(core_event(f->core, NULL, "agent_start", "another history"), 0);
	seal_sessions(f, 40);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	char *e = last_error(f);
	assert_non_null(strstr(e, "integrity alarm"));
	free(e);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "records")->valuedouble, 30); /* untouched */
	cJSON_Delete(s);
}

static void test_mutual_tls(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 4);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	/* Without the client certificate the platform refuses the handshake. */
	load_config(f, NULL);
	seal_sessions(f, 1);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_TEMPFAIL);
}

static void test_untrusted_server_refused(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2);
	/* The system store does not know the test CA: verification is always on. */
	char *ca = h_path(f->certs, "ca.pem");
	char *rogue = h_path(f->certs, "rogue.pem");
	free(f->cfg->platform.ca_file);
	f->cfg->platform.ca_file = rogue;
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_TEMPFAIL);
	char *e = last_error(f);
	assert_non_null(strstr(e, "cannot reach"));
	free(e);
	free(ca);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "records")->valuedouble, 0);
	cJSON_Delete(s);
}

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

/* A token longer than any fixed header buffer (the config takes token files up to 4 KiB). */
static void test_long_token(void **state)
{
	struct fx *f = *state;
	char tok[3001];
	for (int i = 0; i < 3000; i++)
		tok[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
	tok[3000] = '\0';
	char *cmd = h_strdupf("token add %s", tok);
	assert_int_equal(platfix_cmd(&f->pl, cmd), 0);
	free(cmd);
	char *path = h_path(f->dir, "token");
	char *text = h_strdupf("%s\n", tok);
	h_write_file(path, text, (size_t)-1, 0600);
	free(text);
	free(path);
	load_config(f, NULL);
	assert_int_equal(strlen(f->cfg->platform.token), 3000);
	seal_sessions(f, 3);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "by_status"), "401") == NULL);
	cJSON_Delete(s);
}

/* A platform with a body limit: the size that passed is kept, so 413s stay few instead of
 * one or more per batch. */
static void test_too_large_keeps_size(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 4000);
	assert_int_equal(platfix_cmd(&f->pl, "fault max_body 3000"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	const cJSON *n413 = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "by_status"), "413");
	const cJSON *n200 = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "by_status"), "200");
	int too_large = n413 ? (int)n413->valuedouble : 0, ok = n200 ? (int)n200->valuedouble : 0;
	cJSON_Delete(s);
	/* log2(500) halvings to find the size, then a probe now and then. */
	if (too_large < 1 || too_large > 9 + 6 || ok < 10)
		fail_msg("%d requests refused with 413 for %d accepted", too_large, ok);
}

/* A reply over the cap is cut at the cap for good: what is kept is the reply's start, never
 * its start spliced with a later piece that happened to fit. */
static void test_capped_reply_is_a_prefix(void **state)
{
	struct fx *f = *state;
	assert_int_equal(platfix_cmd(&f->pl, "fault pad_reply 70000 count=1"), 0);
	char *url = h_strdupf("https://127.0.0.1:%d/api/v1/feeds", f->pl.port);
	char *ca = h_path(f->certs, "ca.pem");
	struct transfer t;
	struct transfer_opts o = { .url = url, .protocols = "https", .timeout_s = 5, .ca_file = ca,
				   .reply_max = 65536 };
	assert_int_equal(transfer_init(&t, &o), 0);
	long status = 0;
	assert_int_equal(transfer_post(&t, NULL, "x", 1, &status), CURLE_OK);
	assert_int_equal(status, 401); /* padded: 70000 spaces, then {"error":…} */
	assert_true(t.reply.len < 65536);
	for (size_t i = 0; i < t.reply.len; i++)
		if (t.reply.p[i] != ' ')
			fail_msg("byte %zu of the capped reply is '%c': pieces were spliced", i, t.reply.p[i]);
	assert_true(t.reply_cut);
	/* The next reply is whole again. */
	assert_int_equal(transfer_post(&t, NULL, "x", 1, &status), CURLE_OK);
	assert_non_null(t.reply.p);
	assert_non_null(strstr(t.reply.p, "\"error\""));
	assert_false(t.reply_cut);
	transfer_cleanup(&t);
	free(url);
	free(ca);
	/* The feed does not act on a reply it could not read whole: the batch is sent again. */
	seal_sessions(f, 3);
	assert_int_equal(platfix_cmd(&f->pl, "fault pad_reply 70000 count=1"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_platform_matches(f);
	cJSON *s = plat_json(f, "stats");
	assert_int_equal((int)cJSON_GetObjectItem(s, "feed_posts")->valuedouble, 2 + 2);
	cJSON_Delete(s);
}

/* An ack that is no exact integer seq (out of range, negative, fractional, not a number) is a
 * protocol error to retry, never a cast of an arbitrary double, nor an integrity alarm. */
static void test_ack_out_of_range(void **state)
{
	struct fx *f = *state;
	static const char *const acks[] = { "1e300", "1152921504606846976", "-1", "1.5", "\"3\"", "9007199254740993" };
	seal_sessions(f, 3);
	for (size_t i = 0; i < sizeof(acks) / sizeof(acks[0]); i++) {
		char *cmd = h_strdupf("fault status 200 count=1 body={\"ack\":%s,\"hash\":\"%064d\"}", acks[i], 0);
		assert_int_equal(platfix_cmd(&f->pl, cmd), 0);
		free(cmd);
		int code = uploader_flush(f->cfg, f->buf, f->devnull);
		char *e = last_error(f);
		if (code != 0)
			fail_msg("ack %s: flush exit %d: %s", acks[i], code, e ? e : "");
		free(e);
		assert_platform_matches(f);
		seal_sessions(f, 1);
	}
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	srandom(1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_guess_wrong, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_body_not_gzipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_reply_resent_harmlessly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_halves_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_record_stops_and_keeps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_ack_hash_is_alarm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_then_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_platform_lost_data_resend_from_expected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_different_chain_is_alarm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mutual_tls, setup_mtls, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_server_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_uploads_and_survives_kills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure_pauses_and_resumes, setup, teardown),
		cmocka_unit_test(test_jitter_differs_between_processes),
		cmocka_unit_test_setup_teardown(test_long_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_keeps_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capped_reply_is_a_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_out_of_range, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
