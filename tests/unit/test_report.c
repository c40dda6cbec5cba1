/* test_report.c — the auditors' report: sums of sealed daily records, distinct users over the
 * period, rated hours pro-rated, exact CSV columns, JSON with the chain's state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "agentfix.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "timeutil.h"

#define H 3600
#define DAY 86400
#define D0 1793548800LL /* 2026-11-02T00:00:00+08:00 */

#define fx agent_fix

static const char config_json[] =
	"{ \"agent\": { \"id\": \"lab-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
	"  \"state_dir\": \"@DIR@/state\", \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"@DIR@/token\" },"
	"  \"instruments\": ["
	"   { \"id\": \"NMR\", \"name\": \"600 MHz 核磁, \\\"A\\\"\", \"rated_hours\": 1460,"
	"     \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
	"   { \"id\": \"SEM\", \"rated_hours\": 800,"
	"     \"logs\": [ { \"path\": \"/y\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }";

static int setup(void **state)
{
	/* The clock after the sessions below: one more than 24 h ahead of it is refused (SPEC §3). */
	struct agent_fix *f = agent_fix_new("test_report", config_json, "Asia/Shanghai", D0 + 4 * DAY);
	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	agent_fix_free(*state);
	return 0;
}

static void session(struct fx *f, const char *inst, int64_t start, int64_t len, const char *user,
		    const char *org, bool manual, bool closed_auto)
{
	struct obs o = { .type = OBS_SESSION, .instrument = inst };
	o.u.session = (struct obs_session){ .start = start, .end = start + len, .user = user, .org = org,
					    .external = -1, .samples = 2, .manual = manual,
					    .closed_auto = closed_auto, .operator_name = "op" };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

static void populate(struct fx *f)
{
	/* Day 1: 2 h external (a@X), 1 h internal. Day 2: 3 h external (a@X again, b@Y).
	 * Day 3: 1 h external c@Z, auto-closed; 1 h manual internal. */
	session(f, "NMR", D0 + 8 * H, 2 * H, "a", "X", false, false);
	session(f, "NMR", D0 + 11 * H, 1 * H, "i", "山西大学", false, false);
	session(f, "NMR", D0 + DAY + 8 * H, 2 * H, "a", "X", false, false);
	session(f, "NMR", D0 + DAY + 14 * H, 1 * H, "b", "Y", false, false);
	session(f, "NMR", D0 + 2 * DAY + 9 * H, 1 * H, "c", "Z", false, true);
	session(f, "NMR", D0 + 2 * DAY + 15 * H, 1 * H, "m", "山西大学", true, false);
	session(f, "SEM", D0 + 9 * H, 4 * H, "d", "W", false, false);
	/* Seal the three days. */
	assert_true(metrics_tick(core_metrics(f->core), D0 + 3 * DAY + 120) >= 4);
}

static void test_rows_are_sums_of_sealed_days(void **state)
{
	struct fx *f = *state;
	populate(f);
	struct report_opts o = { .from_day = D0, .to_day = D0 + 2 * DAY, .format = REPORT_JSON };
	struct report_row *rows;
	size_t n;
	assert_int_equal(report_rows(f->buf, f->cfg, &o, &rows, &n), 0);
	assert_int_equal(n, 2);
	struct report_row *r = &rows[0];
	assert_string_equal(r->instrument, "NMR");
	assert_int_equal(r->days_sealed, 3);
	/* Sum the sealed records independently. */
	int64_t eff = 0, ext = 0, sess = 0, xs = 0, smp = 0, users_daily = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, r->days) {
		eff += (int64_t)cJSON_GetObjectItem(d, "effective_s")->valuedouble;
		ext += (int64_t)cJSON_GetObjectItem(d, "external_s")->valuedouble;
		sess += (int64_t)cJSON_GetObjectItem(d, "sessions")->valuedouble;
		xs += (int64_t)cJSON_GetObjectItem(d, "external_sessions")->valuedouble;
		smp += (int64_t)cJSON_GetObjectItem(d, "samples")->valuedouble;
		users_daily += (int64_t)cJSON_GetObjectItem(d, "external_users")->valuedouble;
	}
	assert_int_equal(r->effective_s, eff);
	assert_int_equal(r->external_s, ext);
	assert_int_equal(r->sessions, sess);
	assert_int_equal(r->external_sessions, xs);
	assert_int_equal(r->samples, smp);
	assert_int_equal(eff, 8 * H);
	assert_int_equal(ext, 6 * H);
	assert_int_equal(users_daily, 4);       /* a, a+b, c */
	assert_int_equal(r->external_users, 3); /* a, b, c over the period */
	assert_int_equal(r->manual_sessions, 1);
	assert_int_equal(r->auto_closed_sessions, 1);
	assert_true(r->sharing_rate == 0.75);
	/* 1460 h a year over 3 days of 2026 = 12 h. */
	assert_true(r->rated_h > 11.999 && r->rated_h < 12.001);
	assert_true(r->utilisation == 0.6667);
	report_rows_free(rows, n);

	/* One instrument only, and a period with a single day. */
	o.instrument = "SEM";
	o.to_day = D0;
	assert_int_equal(report_rows(f->buf, f->cfg, &o, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].effective_s, 4 * H);
	assert_int_equal(rows[0].external_users, 1);
	report_rows_free(rows, n);
}

static char *render(struct fx *f, struct report_opts *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(report_write(f->buf, f->cfg, o, out), 0);
	fclose(out);
	return buf;
}

static void test_csv_exact(void **state)
{
	struct fx *f = *state;
	populate(f);
	struct report_opts o = { .from_day = D0, .to_day = D0 + 2 * DAY, .format = REPORT_CSV, .bom = true };
	char *csv = render(f, &o);
	const char *want =
		"\xEF\xBB\xBF"
		"instrument,name,from,to,effective_h,service_h,external_h,internal_h,sharing_rate,sessions,"
		"external_sessions,samples,external_users,unattributed_h,overclaimed_h,offline_h,"
		"manual_sessions,auto_closed_sessions,rated_h,utilisation\r\n"
		"NMR,\"600 MHz 核磁, \"\"A\"\"\",2026-11-02,2026-11-04,8.00,8.00,6.00,2.00,0.7500,6,4,12,3,"
		"0.00,0.00,0.00,1,1,12.00,0.6667\r\n"
		"SEM,SEM,2026-11-02,2026-11-04,4.00,4.00,4.00,0.00,1.0000,1,1,2,1,0.00,0.00,0.00,0,0,6.58,0.6083\r\n";
	assert_string_equal(csv, want);
	free(csv);
}

static void test_json_shape_and_chain(void **state)
{
	struct fx *f = *state;
	populate(f);
	struct report_opts o = { .from_day = D0, .to_day = D0 + 2 * DAY, .format = REPORT_JSON };
	char *text = render(f, &o);
	cJSON *doc = cJSON_Parse(text);
	assert_non_null(doc);
	assert_string_equal(cJSON_GetObjectItem(doc, "from")->valuestring, "2026-11-02");
	assert_string_equal(cJSON_GetObjectItem(doc, "to")->valuestring, "2026-11-04");
	assert_string_equal(cJSON_GetObjectItem(doc, "agent_id")->valuestring, "lab-1");
	assert_string_equal(cJSON_GetObjectItem(doc, "lab_code")->valuestring, "SXKL-1");
	cJSON *chain = cJSON_GetObjectItem(doc, "chain");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(chain, "intact")));
	struct chain_head h;
	buffer_head(f->buf, &h);
	assert_int_equal(cJSON_GetObjectItem(chain, "last_seq")->valueint, h.seq);
	assert_string_equal(cJSON_GetObjectItem(chain, "head_hash")->valuestring, h.hash);
	cJSON *nmr = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "instruments"), 0);
	static const char *const fields[] = {
		"effective_s", "service_s", "external_s", "internal_s", "sharing_rate", "sessions",
		"external_sessions", "samples", "external_users", "unattributed_s", "overclaimed_s",
		"offline_s", "manual_sessions", "auto_closed_sessions", "rated_h", "utilisation",
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!cJSON_IsNumber(cJSON_GetObjectItem(nmr, fields[i])))
			fail_msg("instrument lacks \"%s\"", fields[i]);
	assert_int_equal(cJSON_GetObjectItem(nmr, "effective_s")->valueint, 8 * H);
	cJSON *days = cJSON_GetObjectItem(nmr, "days");
	assert_int_equal(cJSON_GetArraySize(days), 3);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(days, 1), "date")->valuestring, "2026-11-03");
	cJSON_Delete(doc);
	free(text);
}

static void test_latest_revision_counts(void **state)
{
	struct fx *f = *state;
	populate(f);
	/* A late line for day 1: revision 2 replaces revision 1 in the report. */
	session(f, "NMR", D0 + 20 * H, 1 * H, "e", "V", false, false);
	assert_int_equal(metrics_tick(core_metrics(f->core), D0 + 3 * DAY + 180), 1);
	struct report_opts o = { .from_day = D0, .to_day = D0, .format = REPORT_JSON };
	struct report_row *rows;
	size_t n;
	assert_int_equal(report_rows(f->buf, f->cfg, &o, &rows, &n), 0);
	assert_int_equal(rows[0].days_sealed, 1);
	assert_int_equal(rows[0].effective_s, 4 * H);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(rows[0].days, 0), "revision")->valueint, 2);
	report_rows_free(rows, n);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rows_are_sums_of_sealed_days, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_shape_and_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latest_revision_counts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
