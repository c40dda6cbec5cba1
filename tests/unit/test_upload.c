/* test_upload.c — the feed against the reference platform over real HTTPS (a CA made at test
 * time): acknowledgements, every reply class, faults, and what the platform ends up holding.
 * The daemon's own uploads (kills, back-pressure, jitter between processes) are in
 * test_upload_daemon.c. */
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
		cmocka_unit_test_setup_teardown(test_long_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_keeps_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capped_reply_is_a_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_out_of_range, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
