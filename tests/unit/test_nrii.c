/* test_nrii.c — the NRII SOAP sink (SPEC §8) against the reference platform's endpoint over
 * HTTPS and plain HTTP: every reply code, parking, re-sending after a config change, crashes
 * between send and reply, type-4 totals, and the two sinks never holding each other back.
 * Envelopes and the reply parser alone: test_nrii_format.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buffer.h"
#include "clock.h"
#include "clockdrive.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "nrii.h"
#include "platfix.h"
#include "sink.h"
#include "status.h"
#include "timeutil.h"
#include "uploader.h"

#define INS "INS-1"
#define INNER "2019-0042"

struct fx {
	char *dir, *certs;
	struct platfix plat;       /* serves the §6 feed and NRII */
	struct platfix soap;       /* a second one, NRII only, when a test needs two */
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	FILE *devnull;
	/* The sinks wait out back-offs on this clock, driven: no real waiting in this process. */
	struct fake_clock clock;
	struct h_clockdrive *drive;
};

static double nrii_stat(struct platfix *pl, const char *key)
{
	char *reply = platfix_request(pl, "nrii stats");
	cJSON *o = reply ? cJSON_Parse(reply) : NULL;
	if (!o)
		fail_msg("refplat: nrii stats: %s", reply ? reply : "(no reply)");
	free(reply);
	const cJSON *v = cJSON_GetObjectItem(o, key);
	double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	cJSON_Delete(o);
	return d;
}

/* A query on the platform's nrii_records (the db is shared: WAL). */
static char *plat_query(struct platfix *pl, const char *sql)
{
	return h_sql_text(pl->db, sql);
}

static long plat_count(struct platfix *pl, const char *where)
{
	char *sql = h_strdupf("SELECT COUNT(*) FROM nrii_records WHERE %s", where);
	long n = (long)h_sql_int(pl->db, sql);
	free(sql);
	return n;
}

struct copt {
	bool platform;              /* the §6 feed as well */
	bool plain;                 /* NRII over http:// with insecure_http */
	bool no_insecure;           /* plain, but without insecure_http (must be refused) */
	const char *ins_code;
	const char *inner_id;
	const char *profile;        /* nrii_profile JSON */
	struct platfix *soap;       /* NRII's platform; default the one plat */
};

static int write_config(struct fx *f, const struct copt *o, struct config_errors *errs)
{
	struct platfix *soap = o->soap ? o->soap : &f->plat;
	char *reach = platfix_config(&f->plat);
	char *platform = o->platform ? h_strdupf("\"platform\": { %s, \"upload_interval_s\": 1, \"timeout_s\": 5 },", reach)
				     : strdup("");
	free(reach);
	bool plain = o->plain || o->no_insecure;
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] }, %s"
		"  \"nrii\": { \"url\": \"%s://127.0.0.1:%d/WS_shanxi/cxf/instru\", \"ins_code\": \"%s\"%s },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"inner_id\": \"%s\", \"worth_wan\": 560 %s%s,"
		"    \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->dir, platform, plain ? "http" : "https", plain ? soap->http_port : soap->port,
		o->ins_code ? o->ins_code : INS, o->plain ? ", \"insecure_http\": true" : "",
		o->inner_id ? o->inner_id : INNER, o->profile ? ", \"nrii_profile\": " : "", o->profile ? o->profile : "");
	char *path = h_path(f->dir, "agent.json");
	h_write_file(path, text, (size_t)-1, 0644);
	struct config *next = NULL;
	int r = config_load(path, &next, errs);
	if (r == 0) {
		if (f->core)
			core_set_config(f->core, next);
		config_free(f->cfg);
		f->cfg = next;
	}
	free(text);
	free(path);
	free(platform);
	return r;
}

static void load_config(struct fx *f, const struct copt *o)
{
	struct config_errors errs = { 0 };
	if (write_config(f, o, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
}

static int setup_with(void **state, const struct copt *o)
{
	struct fx *f = calloc(1, sizeof(*f));
	fake_clock_install(&f->clock, clock_wall()); /* from now on: the sessions stay past */
	f->drive = h_clockdrive_start(&f->clock);
	assert_non_null(f->drive);
	f->dir = platfix_folder("test_nrii", &f->certs);
	assert_non_null(f->dir);
	f->plat = (struct platfix){ .name = "platform", .http = true, .ins_code = INS };
	f->soap = (struct platfix){ .name = "soap", .http = true, .ins_code = INS };
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	timeutil_set_zone("Asia/Shanghai");
	load_config(f, o);
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
	f->devnull = fopen("/dev/null", "w");
	*state = f;
	return 0;
}

/* Most tests: both sinks on one platform, NRII over HTTPS (its CA is platform.ca_file). */
static int setup(void **state)
{
	struct copt o = { .platform = true };
	return setup_with(state, &o);
}

/* NRII alone, over plain HTTP with insecure_http. */
static int setup_plain(void **state)
{
	struct copt o = { .plain = true };
	return setup_with(state, &o);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_clockdrive_stop(f->drive);
	clock_set(NULL);
	core_free(f->core);
	buffer_close(f->buf);
	config_free(f->cfg);
	platfix_free(&f->plat);
	platfix_free(&f->soap);
	fclose(f->devnull);
	h_done_dir(f->dir);
	free(f->certs);
	free(f);
	return 0;
}

static int64_t seal_sessions(struct fx *f, int n, int64_t start)
{
	int64_t last = 0;
	for (int i = 0; i < n; i++) {
		struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
		char user[32];
		snprintf(user, sizeof(user), "用户-%d", i);
		o.u.session = (struct obs_session){ .start = start + i * 3600, .end = start + i * 3600 + 1800,
						    .user = user, .org = i % 2 ? "太原理工大学" : "山西大学",
						    .external = -1, .samples = i % 5 };
		assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
		struct chain_head h;
		buffer_head(f->buf, &h);
		last = h.seq;
	}
	return last;
}

#define NOV_2026 1793577600 /* 2026-11-02 08:00 +08 */

static struct sink_state nrii_state(struct fx *f)
{
	struct sink_state st;
	buffer_sink_get(f->buf, "nrii", &st);
	return st;
}

static int64_t nrii_acked(struct fx *f)
{
	struct sink_state st = nrii_state(f);
	int64_t a = st.acked_seq;
	buffer_sink_clear(&st);
	return a;
}

static int64_t head_seq(struct fx *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	return h.seq;
}

/* One step of the sink alone, at once (no waiting out the back-off). */
static enum sink_result one_step(struct fx *f)
{
	void *st = NULL;
	assert_int_equal(nrii_sink.create(f->cfg, f->buf, &st), 0);
	enum sink_result r = nrii_sink.step(st, clock_wall(), true);
	nrii_sink.destroy(st);
	return r;
}

/* The status as `status` builds it without a daemon: the typed struct, filled from the buffer. */
static struct status *product_status(struct fx *f)
{
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	status_fill_buffer(st, f->cfg, f->buf, false, 0);
	return st;
}

/* Its "nrii" part as `status --json` prints it. */
static cJSON *nrii_status(struct fx *f)
{
	struct status *st = product_status(f);
	size_t len = 0;
	char *text = status_json(st, &len);
	status_free(st);
	assert_non_null(text);
	cJSON *j = cJSON_ParseWithLength(text, len);
	free(text);
	cJSON *n = cJSON_DetachItemFromObject(j, "nrii");
	cJSON_Delete(j);
	assert_non_null(n);
	return n;
}

static void test_sends_sessions_skips_the_rest(void **state)
{
	struct fx *f = *state;
	int64_t first = seal_sessions(f, 3, NOV_2026);
	assert_int_equal(core_event(f->core, NULL, "config_changed", "not a session"), 0);
	int64_t last = seal_sessions(f, 2, NOV_2026 + 86400);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(nrii_acked(f), head_seq(f));
	/* recordInnerId is the session's seq; the event was skipped, never sent. */
	assert_int_equal(plat_count(&f->plat, "type = 6"), 5);
	char *where = h_strdupf("record_key = '%lld'", (long long)first);
	assert_int_equal(plat_count(&f->plat, where), 1);
	free(where);
	where = h_strdupf("record_key = '%lld'", (long long)last);
	assert_int_equal(plat_count(&f->plat, where), 1);
	free(where);
	assert_int_equal(plat_count(&f->plat, "record_key = '4'"), 0);
	assert_int_equal((int)nrii_stat(&f->plat, "posts"), 5);
	char *reply = platfix_request(&f->plat, "nrii stats");
	assert_non_null(strstr(reply, "\"last_soap_action\":\"\\\"\\\"\""));
	assert_non_null(strstr(reply, "\"last_content_type\":\"text/xml; charset=utf-8\""));
	free(reply);
	/* The stored JSON is what the platform decoded: names as \u escapes. */
	char *json = plat_query(&f->plat, "SELECT json FROM nrii_records WHERE record_key = '1'");
	assert_non_null(strstr(json, "\"applicant\":\"\\u7528\\u6237-0\""));
	assert_non_null(strstr(json, "\"serviceType\":120"));
	free(json);
	cJSON *n = nrii_status(f);
	assert_int_equal((int)cJSON_GetObjectItem(n, "sent_count")->valuedouble, 5);
	assert_int_equal((int)cJSON_GetObjectItem(n, "parked_count")->valuedouble, 0);
	cJSON_Delete(n);
}

static void test_code_200_stops_with_alarm(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2, NOV_2026);
	struct copt o = { .platform = true, .ins_code = "WRONG-CODE" };
	load_config(f, &o);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	struct sink_state st = nrii_state(f);
	assert_non_null(st.alarm);
	assert_non_null(strstr(st.alarm, "\"WRONG-CODE\""));
	assert_int_equal(st.acked_seq, 0);
	buffer_sink_clear(&st);
	assert_int_equal(plat_count(&f->plat, "1"), 0);
	/* Stopped: the next flush does not even call. */
	double posts = nrii_stat(&f->plat, "posts");
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_true(nrii_stat(&f->plat, "posts") == posts);
	/* The corrected code: the alarm lifts and everything goes. */
	struct copt fixed = { .platform = true };
	load_config(f, &fixed);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
}

/* 101, 201, 202, 204: parked with the code, the rest goes on; status lists them; a changed
 * config sends them again. */
static void test_parked_codes_resent_after_config_change(void **state)
{
	struct fx *f = *state;
	static const int codes[] = { 101, 201, 202, 204 };
	seal_sessions(f, 6, NOV_2026);
	for (size_t i = 0; i < 4; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "nrii return %d count=1 text=refused-%d", codes[i], codes[i]);
		assert_int_equal(platfix_cmd(&f->plat, cmd), 0);
		assert_int_equal(one_step(f), SINK_PROGRESS);
	}
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(nrii_acked(f), head_seq(f));
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	cJSON *n = nrii_status(f);
	assert_int_equal((int)cJSON_GetObjectItem(n, "parked_count")->valuedouble, 4);
	const cJSON *parked = cJSON_GetObjectItem(n, "parked");
	assert_int_equal(cJSON_GetArraySize(parked), 4);
	for (int i = 0; i < 4; i++) {
		const cJSON *p = cJSON_GetArrayItem(parked, i);
		assert_int_equal((int)cJSON_GetObjectItem(p, "seq")->valuedouble, i + 1);
		assert_int_equal((int)cJSON_GetObjectItem(p, "code")->valuedouble, codes[i]);
		char want[32];
		snprintf(want, sizeof(want), "%d:refused-%d", codes[i], codes[i]);
		assert_string_equal(cJSON_GetObjectItem(p, "text")->valuestring, want);
	}
	assert_non_null(strstr(cJSON_GetObjectItem(n, "last_error")->valuestring, "4 records parked"));
	cJSON_Delete(n);
	/* The text status names them too. */
	struct status *st = product_status(f);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	status_text(st, mem);
	fclose(mem);
	assert_non_null(strstr(text, "parked seq 3: 202 202:refused-202"));
	free(text);
	status_free(st);
	/* Same config again (a restart): still parked, nothing re-sent. */
	struct copt same = { .platform = true };
	load_config(f, &same);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	/* A corrected config: all four go again, with the same recordInnerId. */
	struct copt fixed = { .platform = true, .profile = "{ \"cname\": \"核磁\" }" };
	load_config(f, &fixed);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 6);
	assert_int_equal(plat_count(&f->plat, "record_key IN ('1', '2', '3', '4')"), 4);
	n = nrii_status(f);
	assert_int_equal((int)cJSON_GetObjectItem(n, "parked_count")->valuedouble, 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(n, "last_error")));
	cJSON_Delete(n);
}

/* The platform doesn't know the instrument's innerId (204): the lab fixes inner_id, the records
 * go again carrying the new one. */
static void test_unknown_instrument_fixed_by_inner_id(void **state)
{
	struct fx *f = *state;
	assert_int_equal(platfix_cmd(&f->plat, "nrii unknown_instrument " INNER), 0);
	seal_sessions(f, 3, NOV_2026);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(plat_count(&f->plat, "1"), 0);
	assert_int_equal((int)nrii_stat(&f->plat, "posts"), 3);
	struct copt fixed = { .platform = true, .inner_id = "2019-0042A" };
	load_config(f, &fixed);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "inner_id = '2019-0042A'"), 3);
}

static void test_203_retried_three_times_then_parked(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2, NOV_2026);
	assert_int_equal(platfix_cmd(&f->plat, "nrii return 203 count=4 text=busy"), 0);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(one_step(f), SINK_RETRY);
		struct sink_state st = nrii_state(f);
		assert_int_equal(st.acked_seq, 0);
		assert_non_null(strstr(st.last_error, "203:busy"));
		assert_true(st.next_attempt > clock_wall());
		buffer_sink_clear(&st);
	}
	assert_int_equal(one_step(f), SINK_PROGRESS); /* the 4th 203: parked */
	assert_int_equal(nrii_acked(f), 1);
	assert_int_equal(one_step(f), SINK_PROGRESS); /* the next record is not held */
	assert_int_equal(plat_count(&f->plat, "record_key = '2'"), 1);
	cJSON *n = nrii_status(f);
	const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(n, "parked"), 0);
	assert_int_equal((int)cJSON_GetObjectItem(p, "code")->valuedouble, 203);
	cJSON_Delete(n);
	/* Two 203s and then it goes: sent on the third try, nothing parked. */
	seal_sessions(f, 1, NOV_2026 + 86400);
	assert_int_equal(platfix_cmd(&f->plat, "nrii return 203 count=2"), 0);
	assert_int_equal(one_step(f), SINK_RETRY);
	assert_int_equal(one_step(f), SINK_RETRY);
	assert_int_equal(one_step(f), SINK_PROGRESS);
	assert_int_equal(plat_count(&f->plat, "record_key = '3'"), 1);
	n = nrii_status(f);
	assert_int_equal((int)cJSON_GetObjectItem(n, "parked_count")->valuedouble, 1);
	cJSON_Delete(n);
}

/* 301, HTTP 5xx, SOAP faults, no return, connection errors: retried with back-off, never parked. */
static void test_temporary_failures_never_park(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 1, NOV_2026);
	static const char *const faults[] = {
		"nrii return 301 count=1 text=server error", "nrii fault status 500 count=1",
		"nrii fault status 503 count=1", "nrii fault soap count=1", "nrii fault noreturn count=1",
	};
	static const char *const says[] = { "301:server error", "HTTP 500", "HTTP 503", "SOAP fault", "no \"return\"" };
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		assert_int_equal(platfix_cmd(&f->plat, faults[i]), 0);
		int64_t before = clock_wall(); /* the step may cross a second: compare with its start */
		assert_int_equal(one_step(f), SINK_RETRY);
		struct sink_state st = nrii_state(f);
		if (!st.last_error || !strstr(st.last_error, says[i]))
			fail_msg("after \"%s\": last_error \"%s\"", faults[i], st.last_error ? st.last_error : "(none)");
		assert_int_equal(st.acked_seq, 0);
		assert_true(st.next_attempt > before);
		buffer_sink_clear(&st);
	}
	/* The platform gone altogether. */
	platfix_stop(&f->plat);
	assert_int_equal(one_step(f), SINK_RETRY);
	struct sink_state st = nrii_state(f);
	assert_non_null(strstr(st.last_error, "cannot reach"));
	buffer_sink_clear(&st);
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	assert_int_equal(one_step(f), SINK_PROGRESS);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 1);
	cJSON *n = nrii_status(f);
	assert_int_equal((int)cJSON_GetObjectItem(n, "parked_count")->valuedouble, 0);
	cJSON_Delete(n);
	assert_int_equal((int)nrii_stat(&f->plat, "dups"), 0); /* none of the failures stored it */
}

static void test_wrapped_replies(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 3, NOV_2026);
	assert_int_equal(platfix_cmd(&f->plat, "nrii fault wrap count=0"), 0);
	assert_int_equal(platfix_cmd(&f->plat, "nrii return 202 count=1 text=wrapped <&> 格式"), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_PROTOCOL);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	cJSON *n = nrii_status(f);
	const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(n, "parked"), 0);
	assert_string_equal(cJSON_GetObjectItem(p, "text")->valuestring, "202:wrapped <&> 格式");
	cJSON_Delete(n);
}

/* Lost reply: the platform stored it, the agent did not hear; the resend carries the same
 * recordInnerId and the platform keeps one. */
static void test_lost_reply_resends_same_id(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2, NOV_2026);
	assert_int_equal(platfix_cmd(&f->plat, "nrii fault drop_reply count=2"), 0);
	enum sink_result r;
	int steps = 0;
	while ((r = one_step(f)) == SINK_RETRY && ++steps < 5)
		;
	assert_int_equal(r, SINK_PROGRESS);
	assert_true(steps >= 1);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "record_key = '1'"), 1);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	assert_true(nrii_stat(&f->plat, "dups") >= 1);
	assert_true(nrii_stat(&f->plat, "dropped") >= 1);
}

static bool plat_has_one(void *arg)
{
	struct fx *f = arg;
	return plat_count(&f->plat, "type = 6") >= 1;
}

/* A crash between the send and recording the reply: `flush` killed while the platform holds
 * the record but has not answered. The next flush sends the same recordInnerId. */
static void test_killed_flush_resends_same_id(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2, NOV_2026);
	assert_int_equal(platfix_cmd(&f->plat, "nrii fault slow 30000 count=1"), 0);
	char *cfg = h_path(f->dir, "agent.json"), *log = h_path(f->dir, "flush.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", cfg, (char *)"flush", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	assert_true(h_wait_for(plat_has_one, f, 10000));
	h_kill(p, SIGKILL);
	assert_int_equal(h_wait(p, 5000), 128 + SIGKILL);
	h_proc_free(p);
	assert_int_equal(nrii_acked(f), 0); /* the reply never came: nothing recorded */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "record_key = '1'"), 1);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	assert_int_equal((int)nrii_stat(&f->plat, "dups"), 1);
	free(cfg);
	free(log);
}

static void test_plain_http_needs_insecure_http(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2, NOV_2026);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->plat, "type = 6"), 2);
	/* Without insecure_http the same URL is refused by the config. */
	struct copt o = { .no_insecure = true };
	struct config_errors errs = { 0 };
	assert_int_equal(write_config(f, &o, &errs), -EINVAL);
	bool said = false;
	for (size_t i = 0; i < errs.n; i++)
		said = said || (strstr(errs.msg[i], "nrii.url") && strstr(errs.msg[i], "insecure_http"));
	assert_true(said);
	config_errors_clear(&errs);
}

struct log_wait {
	const char *path, *text;
};

static bool log_says(void *arg)
{
	struct log_wait *w = arg;
	char *t = h_read_file(w->path, NULL);
	bool yes = t && strstr(t, w->text);
	free(t);
	return yes;
}

/* The daemon warns at every start when NRII goes over plain HTTP, and not otherwise. */
static void test_daemon_warns_on_plain_http(void **state)
{
	struct fx *f = *state;
	core_free(f->core);
	f->core = NULL;
	char *cfg = h_path(f->dir, "agent.json"), *log = h_path(f->dir, "agent.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", cfg, (char *)"run", NULL };
	for (int run = 0; run < 2; run++) {
		unlink(log);
		struct h_proc *p = h_spawn(argv, NULL, false, false, log);
		struct log_wait started = { log, "started" }, warned = { log, "over plain HTTP (insecure_http)" };
		assert_true(h_wait_for(log_says, &started, 10000));
		assert_true(log_says(&warned));
		char *t = h_read_file(log, NULL);
		assert_non_null(strstr(t, "<4>")); /* a warning, for journald */
		free(t);
		assert_int_equal(h_kill(p, SIGTERM), 0);
		assert_int_equal(h_wait(p, 20000), 0);
		h_proc_free(p);
	}
	struct copt https = { .platform = true };
	load_config(f, &https);
	unlink(log);
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	struct log_wait started = { log, "started" }, warned = { log, "plain HTTP" };
	assert_true(h_wait_for(log_says, &started, 10000));
	assert_false(log_says(&warned));
	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	free(cfg);
	free(log);
}

static int64_t at(const char *iso)
{
	int64_t t;
	assert_int_equal(time_parse_iso(iso, &t), 0);
	return t;
}

static void session_at(struct fx *f, const char *from, const char *to)
{
	struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
	o.u.session = (struct obs_session){ .start = at(from), .end = at(to), .user = "李四", .org = "太原理工大学",
					    .external = -1, .samples = -1 };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

static char *type4_json(struct fx *f)
{
	return plat_query(&f->plat, "SELECT json FROM nrii_records WHERE type = 4 AND record_key = '" INNER "'");
}

static char *totals_of(struct fx *f, int month)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT state || ' ' || run_h || ' ' || service_h FROM nrii_totals"
		 " WHERE instrument = 'NMR' AND year = 2026 AND month = %d", month);
	char *path = h_path(f->cfg->agent.state_dir, "buffer.db");
	char *out = h_sql_text(path, sql);
	free(path);
	return out;
}

/* Month ends make the year-to-date totals due (type 4), a revised day sends the latest again,
 * and Dec 31 closes the year. */
static void test_yearly_totals(void **state)
{
	struct fx *f = *state;
	struct copt o = { .platform = true, .profile = "{ \"cname\": \"600 MHz 核磁共振波谱仪\", \"instrCategory\": \"03040100\" }" };
	load_config(f, &o);
	fake_clock_install(&f->clock, at("2026-02-02T12:00:00+08:00")); /* the driven one, set back */
	session_at(f, "2026-01-30T09:00:00+08:00", "2026-01-30T11:00:00+08:00");
	session_at(f, "2026-01-31T14:00:00+08:00", "2026-01-31T17:00:00+08:00");
	session_at(f, "2026-02-01T08:00:00+08:00", "2026-02-01T09:00:00+08:00");
	assert_true(core_tick(f->core) >= 3); /* Jan 30, Jan 31, Feb 1 */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	char *j = type4_json(f);
	assert_non_null(j);
	assert_non_null(strstr(j, "\"runMachine\":5.00,\"serviceMachine\":5.00"));
	assert_non_null(strstr(j, "\"cname\":\"600 MHz \\u6838"));
	free(j);
	char *t = totals_of(f, 1);
	assert_string_equal(t, "sent 5.00 5.00");
	free(t);
	assert_null(totals_of(f, 2)); /* February has not closed */

	/* A late line revises Jan 30: January's totals go again. */
	session_at(f, "2026-01-30T12:00:00+08:00", "2026-01-30T13:00:00+08:00");
	assert_true(core_tick(f->core) >= 1);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	j = type4_json(f);
	assert_non_null(strstr(j, "\"runMachine\":6.00"));
	free(j);
	assert_int_equal((int)nrii_stat(&f->plat, "updates"), 1);

	/* The year closes: each month end Feb..Dec sends the year to date, Dec 31 the year. */
	fake_clock_advance(&f->clock, (at("2027-01-01T12:00:00+08:00") - at("2026-02-02T12:00:00+08:00")) * 1000000);
	session_at(f, "2026-12-31T22:00:00+08:00", "2026-12-31T23:30:00+08:00");
	assert_true(core_tick(f->core) > 300);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	t = totals_of(f, 2);
	assert_string_equal(t, "sent 7.00 7.00");
	free(t);
	t = totals_of(f, 12);
	assert_string_equal(t, "sent 8.50 8.50");
	free(t);
	j = type4_json(f);
	assert_non_null(strstr(j, "\"runMachine\":8.50,\"serviceMachine\":8.50"));
	free(j);
	assert_int_equal((int)nrii_stat(&f->plat, "updates"), 12);
	assert_int_equal(plat_count(&f->plat, "type = 4"), 1);
	/* Nothing due twice: another flush sends nothing. */
	double posts = nrii_stat(&f->plat, "posts");
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_true(nrii_stat(&f->plat, "posts") == posts);
}

struct caught_up {
	struct fx *f;
	struct platfix *pl;
	long want;
};

static bool soap_has(void *arg)
{
	struct caught_up *c = arg;
	return plat_count(c->pl, "type = 6") >= c->want;
}

static bool nrii_caught_up(void *arg)
{
	struct fx *f = arg;
	return nrii_acked(f) == head_seq(f);
}

static bool feed_has_head(void *arg)
{
	struct fx *f = arg;
	char *reply = platfix_request(&f->plat, "head agent-1");
	cJSON *o = reply ? cJSON_Parse(reply) : NULL;
	free(reply);
	bool yes = o && (int64_t)cJSON_GetObjectItem(o, "seq")->valuedouble == head_seq(f);
	cJSON_Delete(o);
	return yes;
}

/* Each sink in its own thread: the §6 platform down does not hold NRII back, and the reverse. */
static void test_sinks_never_hold_each_other(void **state)
{
	struct fx *f = *state;
	assert_int_equal(platfix_start(&f->soap, f->dir, f->certs), 0);
	struct copt o = { .platform = true, .soap = &f->soap };
	load_config(f, &o);
	seal_sessions(f, 10, NOV_2026);
	platfix_stop(&f->plat); /* the feed's platform is down */
	struct uploader *u = uploader_start(f->cfg, f->buf);
	struct caught_up c = { f, &f->soap, 10 };
	assert_true(h_wait_for(soap_has, &c, 20000));
	/* The platform holds the last one before its reply reaches the sink's cursor. */
	assert_true(h_wait_for(nrii_caught_up, f, 20000));
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	assert_int_equal(st.acked_seq, 0);
	assert_non_null(st.last_error);
	buffer_sink_clear(&st);
	uploader_stop(u);

	/* The reverse: NRII's platform down, the feed's back. */
	platfix_stop(&f->soap);
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	seal_sessions(f, 5, NOV_2026 + 86400);
	u = uploader_start(f->cfg, f->buf);
	assert_true(h_wait_for(feed_has_head, f, 30000));
	uploader_stop(u);
	assert_int_equal(nrii_acked(f), 10);
	struct sink_state ns = nrii_state(f);
	assert_non_null(strstr(ns.last_error, "cannot reach"));
	buffer_sink_clear(&ns);
	/* And flush reports both: the feed done, NRII unreachable. */
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), EX_TEMPFAIL);
	assert_int_equal(platfix_start(&f->soap, f->dir, f->certs), 0);
	assert_int_equal(uploader_flush(f->cfg, f->buf, f->devnull), 0);
	assert_int_equal(plat_count(&f->soap, "type = 6"), 15);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	srandom(1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sends_sessions_skips_the_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_code_200_stops_with_alarm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parked_codes_resent_after_config_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_instrument_fixed_by_inner_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_203_retried_three_times_then_parked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_temporary_failures_never_park, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrapped_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_reply_resends_same_id, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_killed_flush_resends_same_id, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_plain_http_needs_insecure_http, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_warns_on_plain_http, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_yearly_totals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sinks_never_hold_each_other, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
