/* test_periods.c — period_sums (SPEC §4), the one rule the report and NRII share, on
 * hand-computed days: the latest revision of each day only, external users distinct over the
 * whole period, manual and auto-closed sessions counted, sums stopping at 2^53 − 1. Sessions go
 * through the core into a real SQLite buffer; days are sealed by metrics_tick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentfix.h"
#include "buffer.h"
#include "stmt.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "periods.h"
#include "records.h"

#define H 3600
/* 2026-11-02T00:00:00+08:00 */
#define D0 1793548800LL
#define DAY 86400

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"UTC\", \"state_dir\": \"@DIR@/state\","
	"    \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"@DIR@/token\", \"upload_interval_s\": 60 },"
	"  \"instruments\": ["
	"    { \"id\": \"LOG\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\", \"format\": \"csv\","
	"        \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
	"    { \"id\": \"OTHER\", \"logs\": [ { \"path\": \"/nonexistent/y.csv\", \"format\": \"csv\","
	"        \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] }"
	"  ] }";

static int setup(void **state)
{
	struct agent_fix *f = agent_fix_new("test_periods", config_fmt, "Asia/Shanghai", D0 + 30 * DAY);
	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	agent_fix_free(*state);
	return 0;
}

static void sess(struct agent_fix *f, const char *inst, int64_t start, int64_t end, const char *user,
		 const char *org, bool manual, bool closed_auto, int64_t samples)
{
	struct obs o = { .type = OBS_SESSION, .instrument = inst };
	o.u.session = (struct obs_session){ .start = start, .end = end, .user = user, .org = org,
					    .external = -1, .samples = samples, .manual = manual,
					    .closed_auto = closed_auto, .operator_name = manual ? "op" : NULL };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

/* What the callback saw: "date/revision" of each counted day, in order. */
static int seen_day(const char *line, size_t len, void *arg)
{
	cJSON *d = cJSON_ParseWithLength(line, len);
	assert_non_null(d);
	char **seen = arg;
	char *n = h_strdupf("%s%s/%g ", *seen, cJSON_GetObjectItem(d, "date")->valuestring,
			    cJSON_GetObjectItem(d, "revision")->valuedouble);
	free(*seen);
	*seen = n;
	cJSON_Delete(d);
	return 0;
}

static void test_latest_revisions_and_distinct_users(void **state)
{
	struct agent_fix *f = *state;
	/* Day 0: a (external) 08–10, 2 samples. */
	sess(f, "LOG", D0 + 8 * H, D0 + 10 * H, "a", "X", false, false, 2);
	/* Day 1: a again (manual) 09–10, an internal user 11–12 closed automatically. */
	sess(f, "LOG", D0 + DAY + 9 * H, D0 + DAY + 10 * H, "a", "X", true, false, -1);
	sess(f, "LOG", D0 + DAY + 11 * H, D0 + DAY + 12 * H, "u", "山西大学", false, true, -1);
	/* Day 2: b (external) 13–15. Another instrument's day is not counted. */
	sess(f, "LOG", D0 + 2 * DAY + 13 * H, D0 + 2 * DAY + 15 * H, "b", "Y", false, false, -1);
	sess(f, "OTHER", D0 + 13 * H, D0 + 15 * H, "z", "Z", true, true, 9);
	/* Day 3 is outside the period. */
	sess(f, "LOG", D0 + 3 * DAY + 1 * H, D0 + 3 * DAY + 2 * H, "d", "W", true, true, 5);
	assert_true(metrics_tick(core_metrics(f->core), D0 + 4 * DAY + 120) >= 4);

	/* A late line for day 0: c (external) 10–11. Day 0 becomes revision 2. */
	sess(f, "LOG", D0 + 10 * H, D0 + 11 * H, "c", "Z", false, false, -1);
	assert_true(metrics_tick(core_metrics(f->core), D0 + 4 * DAY + 180) >= 1);

	struct period_sums p;
	char *seen = h_strdupf("%s", "");
	assert_int_equal(period_sums(f->buf, "LOG", D0, D0 + 3 * DAY, &p, seen_day, &seen), 0);
	assert_string_equal(seen, "2026-11-02/2 2026-11-03/1 2026-11-04/1 ");
	free(seen);
	/* Day 0 (rev 2): 3 h all external, 2 sessions, users a and c. Day 1: 2 h, 1 h external,
	 * 2 sessions, user a. Day 2: 2 h external, 1 session, user b. */
	assert_int_equal(p.service_s, 10800 + 7200 + 7200);
	assert_int_equal(p.effective_s, 25200);
	assert_int_equal(p.external_s, 10800 + 3600 + 7200);
	assert_int_equal(p.internal_s, 3600);
	assert_int_equal(p.sessions, 5);
	assert_int_equal(p.external_sessions, 4);
	assert_int_equal(p.samples, 2);
	/* a, b, c: a's two days count once (the days' own figures add up to 4). */
	assert_int_equal(p.external_users, 3);
	assert_int_equal(p.manual_sessions, 1);
	assert_int_equal(p.auto_closed_sessions, 1);
	assert_int_equal(p.unattributed_s, 0);
	assert_int_equal(p.overclaimed_s, 0);
	assert_int_equal(p.offline_s, 0);
	assert_int_equal(p.days_sealed, 3);

	/* One day alone. */
	assert_int_equal(period_sums(f->buf, "LOG", D0 + DAY, D0 + 2 * DAY, &p, NULL, NULL), 0);
	assert_int_equal(p.service_s, 7200);
	assert_int_equal(p.external_s, 3600);
	assert_int_equal(p.external_users, 1);
	assert_int_equal(p.manual_sessions, 1);
	assert_int_equal(p.auto_closed_sessions, 1);
	assert_int_equal(p.days_sealed, 1);

	/* A period with nothing sealed: zeros. */
	assert_int_equal(period_sums(f->buf, "LOG", D0 - 10 * DAY, D0, &p, NULL, NULL), 0);
	assert_int_equal(p.days_sealed, 0);
	assert_int_equal(p.effective_s, 0);
	assert_int_equal(p.external_users, 0);
}

static int stop_at_second(const char *line, size_t len, void *arg)
{
	(void)line;
	(void)len;
	int *n = arg;
	return ++*n == 2 ? 42 : 0;
}

static void test_callback_stops(void **state)
{
	struct agent_fix *f = *state;
	sess(f, "LOG", D0 + 8 * H, D0 + 10 * H, "a", "X", false, false, -1);
	sess(f, "LOG", D0 + DAY + 8 * H, D0 + DAY + 10 * H, "a", "X", false, false, -1);
	sess(f, "LOG", D0 + 2 * DAY + 8 * H, D0 + 2 * DAY + 10 * H, "a", "X", false, false, -1);
	assert_true(metrics_tick(core_metrics(f->core), D0 + 3 * DAY + 120) >= 3);
	struct period_sums p;
	int n = 0;
	assert_int_equal(period_sums(f->buf, "LOG", D0, D0 + 3 * DAY, &p, stop_at_second, &n), 42);
	assert_int_equal(n, 2);
}

/* Two days each sealed just short of 2^53 − 1: their sum stops there instead of overflowing
 * (or losing exactness in a double). */
static void test_sums_saturate(void **state)
{
	struct agent_fix *f = *state;
	const int64_t big = METRICS_SUM_MAX - 10;
	struct daily_figures d = { big, big, big, 0, 1, big, big, big, big, big, 0, big };
	int64_t seq[2];
	assert_int_equal(buffer_begin(f->buf), 0);
	seq[0] = record_daily(f->buf, "LOG", "2026-11-02", 1, &d);
	seq[1] = record_daily(f->buf, "LOG", "2026-11-03", 1, &d);
	assert_true(seq[0] > 0 && seq[1] > 0);
	assert_int_equal(buffer_commit(f->buf), 0);
	char *sql = h_strdupf("INSERT INTO mx_daily(instrument, day, date, revision, seq) VALUES"
			      " ('LOG', %lld, '2026-11-02', 1, %lld), ('LOG', %lld, '2026-11-03', 1, %lld)",
			      (long long)D0, (long long)seq[0], (long long)(D0 + DAY), (long long)seq[1]);
	struct store_stmt *ins = NULL;
	assert_int_equal(buffer_begin(f->buf), 0);
	assert_int_equal(stmt_prepare(f->buf, sql, &ins), 0);
	assert_int_equal(stmt_step(ins), STMT_DONE);
	stmt_free(ins);
	assert_int_equal(buffer_commit(f->buf), 0);
	free(sql);

	struct period_sums p;
	assert_int_equal(period_sums(f->buf, "LOG", D0, D0 + 2 * DAY, &p, NULL, NULL), 0);
	assert_int_equal(p.effective_s, METRICS_SUM_MAX);
	assert_int_equal(p.service_s, METRICS_SUM_MAX);
	assert_int_equal(p.external_s, METRICS_SUM_MAX);
	assert_int_equal(p.internal_s, 0);
	assert_int_equal(p.sessions, METRICS_SUM_MAX);
	assert_int_equal(p.external_sessions, METRICS_SUM_MAX);
	assert_int_equal(p.samples, METRICS_SUM_MAX);
	assert_int_equal(p.unattributed_s, METRICS_SUM_MAX);
	assert_int_equal(p.overclaimed_s, 0);
	assert_int_equal(p.offline_s, METRICS_SUM_MAX);
	assert_int_equal(p.days_sealed, 2);
	/* One of them alone is exact. */
	assert_int_equal(period_sums(f->buf, "LOG", D0, D0 + DAY, &p, NULL, NULL), 0);
	assert_int_equal(p.effective_s, big);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_latest_revisions_and_distinct_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sums_saturate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
