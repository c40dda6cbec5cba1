/* test_metrics.c — the figures of SPEC §4 on hand-computed cases, through the core and a
 * real SQLite buffer, with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "agentfix.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define H 3600
/* 2026-11-02T00:00:00+08:00 */
#define D0 1793548800LL
#define DAY 86400

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"UTC\", \"state_dir\": \"@DIR@/state\","
	"    \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"@DIR@/token\", \"upload_interval_s\": 60 },"
	"  \"buses\": [ { \"id\": \"b\", \"url\": \"tcp://127.0.0.1:1502\" } ],"
	"  \"instruments\": ["
	"    { \"id\": \"LOG\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\", \"format\": \"csv\","
	"        \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
	"    { \"id\": \"RUN\", \"modbus\": { \"bus\": \"b\", \"unit\": 1, \"interval_s\": 600,"
	"        \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\", \"scale\": 0.000277777777777778 },"
	"        \"samples_counter\": { \"table\": \"input\", \"address\": 2, \"type\": \"u16\" } } },"
	"    { \"id\": \"IU\", \"modbus\": { \"bus\": \"b\", \"unit\": 2, \"interval_s\": 60,"
	"        \"in_use\": { \"table\": \"coil\", \"address\": 0 } } },"
	"    { \"id\": \"W16\", \"modbus\": { \"bus\": \"b\", \"unit\": 3, \"interval_s\": 60,"
	"        \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u16\", \"scale\": 0.000277777777777778 } } }"
	"  ] }";

#define fx agent_fix

static int setup_zone(void **state, const char *zone)
{
	/* The clock stands well after the days the tests fill: the core refuses sessions more
	 * than 24 h ahead of it (SPEC §3). metrics_tick is given its own `now`. */
	struct agent_fix *f = agent_fix_new("test_metrics", config_fmt, zone, D0 + 30 * DAY);
	assert_non_null(f);
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_zone(state, "Asia/Shanghai"); }
static int setup_berlin(void **state) { return setup_zone(state, "Europe/Berlin"); }

static int teardown(void **state)
{
	agent_fix_free(*state);
	return 0;
}

static void session(struct fx *f, const char *inst, int64_t start, int64_t end, const char *user,
		    const char *org, int external, int64_t samples)
{
	assert_int_equal(agent_fix_session(f, inst, start, end, user, org, external, samples), 0);
}

/* A run-counter reading: value in raw units (seconds, with the scale above). */
static void reading(struct fx *f, const char *inst, int64_t at, double run, double range, int samples)
{
	struct obs o = { .type = OBS_READING, .instrument = inst };
	o.u.reading.at_us = at * 1000000;
	o.u.reading.ok = true;
	o.u.reading.run = (struct obs_value){ true, run, 1.0 / 3600, range };
	if (samples >= 0)
		o.u.reading.samples = (struct obs_value){ true, samples, 1, 65536 };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

static void inuse(struct fx *f, int64_t at, bool ok, bool v)
{
	struct obs o = { .type = OBS_READING, .instrument = "IU" };
	o.u.reading.at_us = at * 1000000;
	o.u.reading.ok = ok;
	o.u.reading.error = ok ? NULL : "timeout";
	o.u.reading.has_in_use = ok;
	o.u.reading.in_use = v;
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

static struct daily_figures day(struct fx *f, const char *inst, int64_t day_start)
{
	struct daily_figures d;
	assert_int_equal(buffer_begin(f->buf), 0); /* metrics reads on the writer, in a transaction */
	assert_int_equal(metrics_day(core_metrics(f->core), inst, day_start, &d), 0);
	buffer_rollback(f->buf);
	return d;
}

static int tick_at(struct fx *f, int64_t now)
{
	int r = metrics_tick(core_metrics(f->core), now);
	assert_true(r >= 0);
	return r;
}

/* Every sealed line of a kind (and instrument), in seq order. */
static cJSON *sealed(struct fx *f, const char *kind, const char *inst)
{
	cJSON *arr = cJSON_CreateArray();
	struct chain_head h;
	buffer_head(f->buf, &h);
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) < 0)
			continue;
		cJSON *o = cJSON_Parse(r.line);
		const char *k = cJSON_GetObjectItem(o, "kind")->valuestring;
		const cJSON *in = cJSON_GetObjectItem(o, "instrument");
		if (strcmp(k, kind) == 0 && (!inst || (cJSON_IsString(in) && strcmp(in->valuestring, inst) == 0)))
			cJSON_AddItemToArray(arr, o);
		else
			cJSON_Delete(o);
		buffer_record_clear(&r);
	}
	return arr;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	if (!cJSON_IsNumber(v))
		fail_msg("no number \"%s\"", k);
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_overlapping_sessions(void **state)
{
	struct fx *f = *state;
	session(f, "LOG", D0 + 8 * H, D0 + 10 * H, "u0", "山西大学", -1, 2);
	session(f, "LOG", D0 + 9 * H, D0 + 11 * H, "a", "太原理工大学", -1, 3);
	session(f, "LOG", D0 + 10 * H + 1800, D0 + 12 * H, "b", "中北大学", -1, -1);
	session(f, "LOG", D0 + 13 * H, D0 + 14 * H, "a", "太原理工大学", -1, 1);
	/* An internal user at an org marked external by the log itself. */
	session(f, "LOG", D0 + 13 * H + 1800, D0 + 15 * H, "u0", "山西大学", 1, -1);
	struct daily_figures d = day(f, "LOG", D0);
	assert_int_equal(d.service_s, 5 * H + 3600);          /* 08–12 and 13–15 */
	assert_int_equal(d.external_s, 3 * H + 2 * H);         /* 09–12 and 13–15 */
	assert_int_equal(d.internal_s, d.service_s - d.external_s);
	assert_int_equal(d.effective_s, d.service_s);          /* no run source: sessions */
	assert_int_equal(d.sessions, 5);
	assert_int_equal(d.external_sessions, 4);
	assert_int_equal(d.external_users, 3);                 /* (a,太原理工), (b,中北), (u0,山西) */
	assert_int_equal(d.samples, 6);
	assert_int_equal(d.unattributed_s, 0);
	assert_int_equal(d.overclaimed_s, 0);
	assert_true(d.sharing_rate == 0.8333);
}

static void test_midnight_and_multiday_sessions(void **state)
{
	struct fx *f = *state;
	session(f, "LOG", D0 + 22 * H, D0 + DAY + 2 * H, "a", "X", -1, 4);
	session(f, "LOG", D0 + DAY + 12 * H, D0 + 4 * DAY + 6 * H, "b", "山西大学", -1, -1);
	struct daily_figures d1 = day(f, "LOG", D0), d2 = day(f, "LOG", D0 + DAY);
	struct daily_figures d3 = day(f, "LOG", D0 + 2 * DAY), d5 = day(f, "LOG", D0 + 4 * DAY);
	assert_int_equal(d1.service_s, 2 * H);
	assert_int_equal(d1.sessions, 1);
	assert_int_equal(d1.samples, 4);
	assert_int_equal(d2.service_s, 2 * H + 12 * H);
	assert_int_equal(d2.external_s, 2 * H);
	assert_int_equal(d2.sessions, 1);       /* counted where it starts */
	assert_int_equal(d2.samples, 0);
	assert_int_equal(d3.service_s, DAY);
	assert_int_equal(d3.sessions, 0);
	assert_int_equal(d5.service_s, 6 * H);
}

static void test_run_counter_across_midnight_and_slots(void **state)
{
	struct fx *f = *state;
	/* Readings every 10 minutes from 23:00 to 01:00; the instrument runs all the time. */
	double v = 1000;
	for (int64_t t = D0 + 23 * H; t <= D0 + DAY + H; t += 600, v += 600)
		reading(f, "RUN", t, v, 4294967296.0, (int)((t - D0) / 600));
	f->clock.wall_us = (D0 + DAY + H) * 1000000LL;
	int n = tick_at(f, D0 + DAY + H);
	assert_true(n > 0);
	cJSON *runs = sealed(f, "run", "RUN");
	/* 8 full slots (23:00–01:00) closed by the 01:00 reading. */
	assert_int_equal(cJSON_GetArraySize(runs), 8);
	const cJSON *r0 = cJSON_GetArrayItem(runs, 0);
	assert_string_equal(str(r0, "from"), "2026-11-02T23:00:00+08:00");
	assert_string_equal(str(r0, "to"), "2026-11-02T23:15:00+08:00");
	assert_int_equal((int)num(r0, "run_s"), 900);
	assert_int_equal((int)num(r0, "samples"), 1); /* 1 sample per 10 min: 1.5 → 1, carry .5 */
	double total_run = 0, total_smp = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, runs) {
		total_run += num(r, "run_s");
		total_smp += num(r, "samples");
	}
	assert_true(total_run == 2 * H);
	assert_true(total_smp == 12);
	cJSON_Delete(runs);
	struct daily_figures d1 = day(f, "RUN", D0), d2 = day(f, "RUN", D0 + DAY);
	assert_int_equal(d1.effective_s, H);
	assert_int_equal(d2.effective_s, H);
	assert_int_equal(d1.unattributed_s, H); /* ran with no session logged */
	assert_int_equal(d1.samples + d2.samples, 12);

	/* The daily record of day 1 is sealed after midnight plus the grace (60 s). */
	cJSON *dailies = sealed(f, "daily", "RUN");
	assert_int_equal(cJSON_GetArraySize(dailies), 1);
	const cJSON *dr = cJSON_GetArrayItem(dailies, 0);
	assert_string_equal(str(dr, "date"), "2026-11-02");
	assert_int_equal((int)num(dr, "revision"), 1);
	assert_int_equal((int)num(dr, "effective_s"), H);
	cJSON_Delete(dailies);
}

static void test_fractions_carried(void **state)
{
	struct fx *f = *state;
	/* 7 s gained in every 10-minute interval does not divide into slots evenly; the
	 * records must still add up to the counter's own change. */
	double v = 0;
	int64_t t;
	for (t = D0; t <= D0 + 6 * H; t += 600, v += 7)
		reading(f, "RUN", t, v, 4294967296.0, -1);
	tick_at(f, D0 + 6 * H);
	cJSON *runs = sealed(f, "run", "RUN");
	double total = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, runs) total += num(r, "run_s");
	cJSON_Delete(runs);
	double change = v - 7; /* last reading's value */
	assert_true(total <= change && total >= change - 1);
}

static void test_wrap_in_slot(void **state)
{
	struct fx *f = *state;
	/* A u16 seconds counter wrapping in the middle of a slot. */
	reading(f, "W16", D0 + 600, 65500, 65536, -1);
	reading(f, "W16", D0 + 660, 24, 65536, -1);    /* 65500 → 65535 → 0 → 24: 60 s */
	reading(f, "W16", D0 + 720, 84, 65536, -1);
	reading(f, "W16", D0 + 900, 264, 65536, -1);
	tick_at(f, D0 + 900);
	cJSON *runs = sealed(f, "run", "W16");
	assert_int_equal(cJSON_GetArraySize(runs), 1);
	assert_int_equal((int)num(cJSON_GetArrayItem(runs, 0), "run_s"), 300); /* 600–900: 60+60+180 */
	cJSON_Delete(runs);
	cJSON *events = sealed(f, "event", "W16");
	assert_int_equal(cJSON_GetArraySize(events), 1);
	assert_string_equal(str(cJSON_GetArrayItem(events, 0), "type"), "counter_wrap");
	cJSON_Delete(events);
}

static void test_reset_glitch_clamp_events(void **state)
{
	struct fx *f = *state;
	reading(f, "W16", D0 + 0, 1000, 65536, -1);
	reading(f, "W16", D0 + 60, 1060, 65536, -1);
	reading(f, "W16", D0 + 120, 0, 65536, -1);     /* a meter briefly reading 0 */
	reading(f, "W16", D0 + 180, 1180, 65536, -1);  /* glitch: discarded */
	reading(f, "W16", D0 + 240, 10, 65536, -1);    /* lower … */
	reading(f, "W16", D0 + 300, 70, 65536, -1);    /* … confirmed: reset, 70 counted */
	reading(f, "W16", D0 + 360, 30000, 65536, -1); /* 29930 s in 60 s: clamped to 60 */
	cJSON *ev = sealed(f, "event", "W16");
	assert_int_equal(cJSON_GetArraySize(ev), 3);
	assert_string_equal(str(cJSON_GetArrayItem(ev, 0), "type"), "counter_reset");
	assert_non_null(strstr(str(cJSON_GetArrayItem(ev, 0), "detail"), "glitch"));
	assert_string_equal(str(cJSON_GetArrayItem(ev, 1), "type"), "counter_reset");
	assert_non_null(strstr(str(cJSON_GetArrayItem(ev, 1), "detail"), "confirmed"));
	assert_string_equal(str(cJSON_GetArrayItem(ev, 2), "type"), "counter_clamped");
	cJSON_Delete(ev);
	reading(f, "W16", D0 + 900, 30000, 65536, -1);
	tick_at(f, D0 + 900);
	/* 60 + 120 (glitch discarded, 1060→1180) + 70 (reset) + 60 (clamped) = 310 */
	struct daily_figures d = day(f, "W16", D0);
	assert_int_equal(d.effective_s, 310);
}

static void test_three_days_down_spread_evenly(void **state)
{
	struct fx *f = *state;
	reading(f, "RUN", D0, 0, 4294967296.0, 0);
	/* Back after three days: it ran half the time meanwhile. */
	reading(f, "RUN", D0 + 3 * DAY, 1.5 * DAY, 4294967296.0, 30);
	tick_at(f, D0 + 3 * DAY + 120);
	for (int i = 0; i < 3; i++) {
		struct daily_figures d = day(f, "RUN", D0 + i * DAY);
		assert_true(d.effective_s >= DAY / 2 - 1 && d.effective_s <= DAY / 2 + 1);
		assert_true(d.samples >= 9 && d.samples <= 11);
	}
	cJSON *ev = sealed(f, "event", "RUN");
	assert_int_equal(cJSON_GetArraySize(ev), 1);
	assert_string_equal(str(cJSON_GetArrayItem(ev, 0), "type"), "gap");
	cJSON_Delete(ev);
	cJSON *dailies = sealed(f, "daily", "RUN");
	assert_int_equal(cJSON_GetArraySize(dailies), 3);
	double sum = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, dailies) sum += num(r, "effective_s");
	assert_true(sum >= 1.5 * DAY - 1 && sum <= 1.5 * DAY);
	cJSON_Delete(dailies);
}

static void test_in_use_edges_and_offline(void **state)
{
	struct fx *f = *state;
	inuse(f, D0 + 0, true, false);
	inuse(f, D0 + 60, true, true);   /* edge: 30 s */
	inuse(f, D0 + 120, true, true);  /* both: 60 s */
	inuse(f, D0 + 180, true, false); /* edge: 30 s */
	inuse(f, D0 + 240, false, false); /* failed: half offline 30 s */
	inuse(f, D0 + 300, false, false); /* failed twice: 60 s */
	inuse(f, D0 + 360, true, false);  /* back: 30 s */
	struct daily_figures d;
	inuse(f, D0 + 900, true, false);
	tick_at(f, D0 + 900);
	d = day(f, "IU", D0);
	assert_int_equal(d.effective_s, 120);
	assert_int_equal(d.offline_s, 120);
}

static void test_late_line_revision_2(void **state)
{
	struct fx *f = *state;
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, "a", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 30), 0);        /* within the grace */
	assert_int_equal(tick_at(f, D0 + DAY + 60), 1);        /* daily rev 1 */
	assert_int_equal(tick_at(f, D0 + DAY + 120), 0);       /* nothing new */
	session(f, "LOG", D0 + 10 * H, D0 + 12 * H, "b", "山西大学", -1, -1); /* a late line */
	assert_int_equal(tick_at(f, D0 + DAY + 180), 1);
	cJSON *dailies = sealed(f, "daily", "LOG");
	assert_int_equal(cJSON_GetArraySize(dailies), 2);
	const cJSON *r1 = cJSON_GetArrayItem(dailies, 0), *r2 = cJSON_GetArrayItem(dailies, 1);
	assert_int_equal((int)num(r1, "revision"), 1);
	assert_int_equal((int)num(r1, "service_s"), H);
	assert_int_equal((int)num(r2, "revision"), 2);
	assert_int_equal((int)num(r2, "service_s"), 3 * H);
	assert_int_equal((int)num(r2, "external_s"), H);
	assert_true(num(r2, "sharing_rate") == 0.3333);
	assert_string_equal(str(r2, "date"), "2026-11-02");
	cJSON_Delete(dailies);
	/* A line that changes nothing (a duplicate span) gives no new revision. */
	session(f, "LOG", D0 + 10 * H, D0 + 11 * H, "c", "山西大学", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 240), 1); /* sessions count changed: rev 3 */
	assert_int_equal(tick_at(f, D0 + DAY + 300), 0);
}

/* A log read from far behind changes sealed days at every tick: once a day was sealed again,
 * the next revision waits a grace (60 s here), and a clean stop leaves none waiting. */
static void test_revisions_once_per_grace(void **state)
{
	struct fx *f = *state;
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, "a", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 60), 1);        /* rev 1 */
	session(f, "LOG", D0 + 10 * H, D0 + 11 * H, "b", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 61), 1);        /* rev 2 at once */
	session(f, "LOG", D0 + 12 * H, D0 + 13 * H, "c", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 62), 0);        /* held back */
	assert_int_equal(tick_at(f, D0 + DAY + 120), 0);
	assert_int_equal(tick_at(f, D0 + DAY + 121), 1);       /* rev 3, a grace after rev 2 */
	session(f, "LOG", D0 + 14 * H, D0 + 15 * H, "d", "X", -1, -1);
	assert_true(metrics_stop(core_metrics(f->core), D0 + DAY + 122) >= 0); /* rev 4 */
	cJSON *dailies = sealed(f, "daily", "LOG");
	assert_int_equal(cJSON_GetArraySize(dailies), 4);
	assert_int_equal((int)num(cJSON_GetArrayItem(dailies, 3), "service_s"), 4 * H);
	cJSON_Delete(dailies);
}

static void test_clean_stop_splits_slot(void **state)
{
	struct fx *f = *state;
	reading(f, "RUN", D0 + 10 * H, 0, 4294967296.0, -1);
	reading(f, "RUN", D0 + 10 * H + 300, 300, 4294967296.0, -1);
	assert_true(metrics_stop(core_metrics(f->core), D0 + 10 * H + 300) >= 1);
	cJSON *runs = sealed(f, "run", "RUN");
	assert_int_equal(cJSON_GetArraySize(runs), 1);
	assert_string_equal(str(cJSON_GetArrayItem(runs, 0), "from"), "2026-11-02T10:00:00+08:00");
	assert_string_equal(str(cJSON_GetArrayItem(runs, 0), "to"), "2026-11-02T10:05:00+08:00");
	assert_int_equal((int)num(cJSON_GetArrayItem(runs, 0), "run_s"), 300);
	cJSON_Delete(runs);
	/* After the restart, the rest of the slot follows in a second record. */
	reading(f, "RUN", D0 + 10 * H + 900, 900, 4294967296.0, -1);
	tick_at(f, D0 + 10 * H + 900);
	runs = sealed(f, "run", "RUN");
	assert_int_equal(cJSON_GetArraySize(runs), 2);
	assert_string_equal(str(cJSON_GetArrayItem(runs, 1), "from"), "2026-11-02T10:05:00+08:00");
	assert_string_equal(str(cJSON_GetArrayItem(runs, 1), "to"), "2026-11-02T10:15:00+08:00");
	assert_int_equal((int)num(cJSON_GetArrayItem(runs, 1), "run_s"), 600);
	cJSON_Delete(runs);
}

static void test_overclaimed(void **state)
{
	struct fx *f = *state;
	for (int64_t t = D0 + 8 * H, v = 0; t <= D0 + 9 * H; t += 600, v += 300)
		reading(f, "RUN", t, (double)v, 4294967296.0, -1);
	session(f, "RUN", D0 + 8 * H, D0 + 10 * H, "a", "X", -1, -1);
	tick_at(f, D0 + 9 * H);
	struct daily_figures d = day(f, "RUN", D0);
	assert_int_equal(d.effective_s, 1800);
	assert_int_equal(d.service_s, 2 * H);
	assert_int_equal(d.overclaimed_s, 2 * H - 1800);
	assert_int_equal(d.unattributed_s, 0);
	assert_true(d.sharing_rate == 4.0); /* reported as is, even above 1 */
}

static void test_dst_day_lengths(void **state)
{
	struct fx *f = *state;
	int64_t d = time_parse_date("2026-03-29"), e = time_parse_date("2026-03-30");
	session(f, "LOG", d - H, e + H, "a", "X", -1, -1);
	struct daily_figures x = day(f, "LOG", d);
	assert_int_equal(x.service_s, 23 * H);
}

/* Random sessions: internal + external = service, and every figure within a day. */
static void test_property_random_sessions(void **state)
{
	struct fx *f = *state;
	srand(12345);
	for (int i = 0; i < 400; i++) {
		int64_t start = D0 + rand() % (5 * DAY);
		int64_t len = 60 + rand() % (30 * H);
		const char *org = rand() % 3 ? "X" : "山西大学";
		char user[8];
		snprintf(user, sizeof(user), "u%d", rand() % 20);
		session(f, "LOG", start, start + len, user, org, -1, rand() % 5);
	}
	for (int i = 0; i < 7; i++) {
		struct daily_figures d = day(f, "LOG", D0 + i * DAY);
		assert_int_equal(d.internal_s + d.external_s, d.service_s);
		assert_true(d.service_s >= 0 && d.service_s <= DAY);
		assert_true(d.external_s >= 0 && d.external_s <= d.service_s);
		assert_true(d.effective_s >= 0 && d.effective_s <= DAY);
		assert_true(d.external_sessions <= d.sessions);
		assert_true(d.external_users <= d.external_sessions);
	}
}

/* ---- bounds, plausibility, UTF-8 and repeats (issue 13) ---------------------------- */

#define SUM_MAX 9007199254740991LL /* 2^53 - 1, METRICS_SUM_MAX */

/* A session handed to metrics directly, past the core's checks: the sums must be safe on
 * their own. seq is any unused number (mx_sessions' key). */
static void raw_session(struct fx *f, int64_t seq, const char *inst, int64_t start, int64_t end,
			const char *user, int64_t samples)
{
	struct obs_session s = { .start = start, .end = end, .user = user, .org = "X", .external = 1,
				 .samples = samples };
	assert_int_equal(buffer_begin(f->buf), 0);
	assert_int_equal(metrics_session(core_metrics(f->core), seq, inst, &s, true), 0);
	assert_int_equal(buffer_commit(f->buf), 0);
}

static int64_t head_seq(struct fx *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	return h.seq;
}

static void test_session_samples_sum_saturates(void **state)
{
	struct fx *f = *state;
	raw_session(f, 1001, "LOG", D0 + 8 * H, D0 + 9 * H, "a", INT64_MAX);
	raw_session(f, 1002, "LOG", D0 + 10 * H, D0 + 11 * H, "b", INT64_MAX);
	raw_session(f, 1003, "LOG", D0 + 12 * H, D0 + 13 * H, "c", 5);
	struct daily_figures d = day(f, "LOG", D0);
	assert_int_equal(d.samples, SUM_MAX);
	assert_int_equal(d.sessions, 3);
	tick_at(f, D0 + DAY + 60);
	cJSON *dailies = sealed(f, "daily", "LOG");
	assert_int_equal(cJSON_GetArraySize(dailies), 1);
	/* Read as cJSON does: a double, exact below 2^53. */
	assert_true(num(cJSON_GetArrayItem(dailies, 0), "samples") == (double)SUM_MAX);
	cJSON_Delete(dailies);
}

/* A samples counter that claims more than an int64_t in one step: bounded, and the counter
 * goes on counting afterwards (the excess is not carried into every later slot). */
static void test_counter_samples_bounded(void **state)
{
	struct fx *f = *state;
	struct obs o = { .type = OBS_READING, .instrument = "RUN" };
	o.u.reading.ok = true;
	o.u.reading.at_us = (D0 + 8 * H) * 1000000;
	o.u.reading.samples = (struct obs_value){ true, 0, 1, 18446744073709551616.0 };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	o.u.reading.at_us = (D0 + 8 * H + 600) * 1000000;
	o.u.reading.samples.value = 1.8e19;
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	o.u.reading.at_us = (D0 + 10 * H) * 1000000;
	o.u.reading.samples.value = 1.8e19 + 4096; /* +4096, exactly representable there */
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	tick_at(f, D0 + 10 * H);
	struct daily_figures d = day(f, "RUN", D0);
	assert_int_equal(d.samples, SUM_MAX);
	cJSON *runs = sealed(f, "run", "RUN");
	const cJSON *r;
	double last = -1;
	cJSON_ArrayForEach(r, runs) {
		assert_true(num(r, "samples") >= 0 && num(r, "samples") <= (double)SUM_MAX);
		last = num(r, "samples");
	}
	assert_true(last > 0 && last < 4096); /* the later slots count the +4096 again */
	cJSON_Delete(runs);
}

/* A session before 1970 (handed in past the core's checks): the daily records must go on
 * past MAX_DAYS_PER_TICK (400), not start again from the first day at every tick. */
static void test_days_before_1970_keep_going(void **state)
{
	struct fx *f = *state;
	int64_t first = time_parse_date("1970-01-01") - 500 * DAY; /* 1968-08-19 */
	raw_session(f, 1001, "LOG", first + 8 * H, first + 9 * H, "a", 1);
	int64_t now = time_parse_date("1970-03-01") + 120;
	for (int i = 0; i < 4; i++)
		tick_at(f, now);
	cJSON *dailies = sealed(f, "daily", "LOG");
	int n = cJSON_GetArraySize(dailies);
	assert_int_equal(n, 500 + 59); /* 1968-08-19 .. 1970-02-28 */
	assert_string_equal(str(cJSON_GetArrayItem(dailies, 0), "date"), "1968-08-19");
	assert_string_equal(str(cJSON_GetArrayItem(dailies, n - 1), "date"), "1970-02-28");
	cJSON_Delete(dailies);
}

static void test_implausible_sessions_refused(void **state)
{
	struct fx *f = *state;
	int64_t now = D0 + 30 * DAY, y2000 = 946684800;
	static const struct {
		int64_t start, end, samples;
	} bad[] = {
		{ 0, 3600, -1 },                             /* 1970-01-01 */
		{ -86400, -3600, 1 },                         /* before 1970 */
		{ 946684799 - 3600, 946684799, 1 },           /* a second before 2000 */
		{ D0 + 31 * DAY + 60, D0 + 31 * DAY + H, 1 }, /* more than 24 h ahead */
		{ D0 + 30 * DAY, D0 + 31 * DAY + 1, 1 },      /* ends more than 24 h ahead */
		{ D0 - 2 * DAY, D0 + 29 * DAY + 1, 1 },       /* over 31 days */
		{ D0, D0 + H, 1000001 },
		{ D0, D0 + H, INT64_MAX },
		{ D0, D0 + H, -2 },
		{ D0 + H, D0 + H, 1 },                        /* no duration */
		{ INT64_MIN, INT64_MAX, 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = agent_fix_session(f, "LOG", bad[i].start, bad[i].end, "a", "X", -1, bad[i].samples);
		if (r != -EINVAL)
			fail_msg("case %zu: core_submit gave %d, not -EINVAL", i, r);
	}
	assert_int_equal(head_seq(f), 0);
	/* The edges themselves are plausible. */
	assert_int_equal(agent_fix_session(f, "LOG", y2000, y2000 + H, "a", "X", -1, 1000000), 0);
	assert_int_equal(agent_fix_session(f, "LOG", now + DAY - H, now + DAY, "a", "X", -1, 0), 0);
	assert_int_equal(agent_fix_session(f, "LOG", D0, D0 + 31 * DAY, "b", "X", -1, -1), 0);
	assert_int_equal(head_seq(f), 3);

	/* A batch is all or nothing: one implausible session refuses it, with its cursor. */
	struct obs v[2] = { { .type = OBS_SESSION, .instrument = "LOG" }, { .type = OBS_SESSION, .instrument = "LOG" } };
	v[0].u.session = (struct obs_session){ .start = D0 + 2 * H, .end = D0 + 3 * H, .user = "c", .org = "X",
					       .external = -1, .samples = 1 };
	v[1].u.session = (struct obs_session){ .start = 0, .end = 3600, .user = "c", .org = "X", .external = -1,
					       .samples = 1 };
	assert_int_equal(core_submit(f->core, v, 2, "cursor", "x", 1), -EINVAL);
	assert_int_equal(head_seq(f), 3);
	void *cur = NULL;
	size_t len = 0;
	assert_int_equal(core_cursor(f->core, "cursor", &cur, &len), -ENOENT);
	/* No day before 2000 was ever sealed. */
	tick_at(f, now);
	cJSON *dailies = sealed(f, "daily", "LOG");
	assert_string_equal(str(cJSON_GetArrayItem(dailies, 0), "date"), "2000-01-01");
	cJSON_Delete(dailies);
}

static void test_invalid_utf8_never_sealed(void **state)
{
	struct fx *f = *state;
	const char *gbk = "\xd5\xc5\xc8\xfd"; /* 张三 in GBK */
	assert_int_equal(agent_fix_session(f, "LOG", D0, D0 + H, gbk, "X", -1, 1), -EILSEQ);
	assert_int_equal(agent_fix_session(f, "LOG", D0, D0 + H, "a", gbk, -1, 1), -EILSEQ);
	static const char *const fields[] = { "way", "fee", "project", "operator", "note" };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		struct obs o = { .type = OBS_SESSION, .instrument = "LOG" };
		o.u.session = (struct obs_session){ .start = D0, .end = D0 + H, .user = "a", .org = "X",
						    .external = -1, .samples = 1, .manual = true };
		const char **slot[] = { &o.u.session.way, &o.u.session.fee, &o.u.session.project,
					&o.u.session.operator_name, &o.u.session.note };
		*slot[i] = gbk;
		if (core_submit(f->core, &o, 1, NULL, NULL, 0) != -EILSEQ)
			fail_msg("%s: not refused", fields[i]);
	}
	struct obs o = { .type = OBS_SESSION, .instrument = "LOG\xff" };
	o.u.session = (struct obs_session){ .start = D0, .end = D0 + H, .external = -1, .samples = 1 };
	assert_true(core_submit(f->core, &o, 1, NULL, NULL, 0) < 0);
	assert_int_equal(head_seq(f), 0);

	/* An event's detail is the agent's own: sealed, with the bad bytes written out. */
	struct obs e = { .type = OBS_EVENT, .instrument = "LOG" };
	e.u.event = (struct obs_event){ .at = D0, .type = "log_malformed", .detail = "/srv/\xd5\xc5.csv:3: bad time" };
	assert_int_equal(core_submit(f->core, &e, 1, NULL, NULL, 0), 0);
	cJSON *ev = sealed(f, "event", "LOG");
	assert_int_equal(cJSON_GetArraySize(ev), 1);
	assert_string_equal(str(cJSON_GetArrayItem(ev, 0), "detail"), "/srv/\\xd5\\xc5.csv:3: bad time");
	cJSON_Delete(ev);
}

static void reopen(struct fx *f)
{
	core_free(f->core);
	buffer_close(f->buf);
	f->core = NULL;
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	assert_non_null(f->core = core_new(f->cfg, f->buf));
}

/* A day's sessions are looked for back to the longest session stored, which the core keeps in
 * memory: a longer one, whether it comes through the core or from another process (`record`
 * beside the daemon, which the core must read again), counts in every day it reaches into. */
static void longest_session(struct fx *f, bool other)
{
	session(f, "LOG", D0 + 10 * H, D0 + 11 * H, "a", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + DAY + 60), 1); /* D0 sealed: the longest known is 1 h */

	struct obs o = { .type = OBS_SESSION, .instrument = "LOG" };
	o.u.session = (struct obs_session){ .start = D0 + DAY + 20 * H, .end = D0 + 3 * DAY + 2 * H, .user = "b",
					    .org = "山西大学", .external = -1, .samples = -1, .manual = true };
	if (other) {
		struct buffer *b2 = NULL;
		assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &b2, NULL), 0);
		struct core *c2 = core_new(f->cfg, b2);
		assert_non_null(c2);
		assert_int_equal(core_submit(c2, &o, 1, NULL, NULL, 0), 0);
		core_free(c2);
		buffer_close(b2);
	} else {
		assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	}

	assert_true(tick_at(f, D0 + 4 * DAY + 120) > 0); /* past the last day and its grace */
	cJSON *dailies = sealed(f, "daily", "LOG");
	double by_day[4] = { -1, -1, -1, -1 };
	const cJSON *r;
	cJSON_ArrayForEach(r, dailies) {
		const char *date = str(r, "date");
		for (int i = 0; i < 4; i++) {
			char want[16];
			time_t t = (time_t)(D0 + i * DAY);
			struct tm tm;
			localtime_r(&t, &tm); /* the lab's days: the process's zone */
			strftime(want, sizeof(want), "%Y-%m-%d", &tm);
			if (date && strcmp(date, want) == 0)
				by_day[i] = num(r, "service_s"); /* the latest revision wins */
		}
	}
	cJSON_Delete(dailies);
	assert_true(by_day[1] == 4 * H);   /* 20:00–24:00 */
	assert_true(by_day[2] == 24 * H);  /* all day: it started 28 h before */
	assert_true(by_day[3] == 2 * H);
}

static void test_longest_session_grows(void **state) { longest_session(*state, false); }
static void test_longest_session_from_another_writer(void **state) { longest_session(*state, true); }

static void test_same_session_sealed_once(void **state)
{
	struct fx *f = *state;
	/* Twice in one batch (a line repeated by the instrument's software). */
	struct obs v[2] = { { .type = OBS_SESSION, .instrument = "LOG" }, { .type = OBS_SESSION, .instrument = "LOG" } };
	v[0].u.session = (struct obs_session){ .start = D0 + 8 * H, .end = D0 + 9 * H, .user = "a", .org = "X",
					       .external = -1, .samples = 2 };
	v[1].u.session = v[0].u.session;
	assert_int_equal(core_submit(f->core, v, 2, NULL, NULL, 0), 0);
	assert_int_equal(head_seq(f), 1);
	assert_int_equal(core_sessions_repeated(f->core, "LOG"), 1);

	/* Not the same: another user, another end, another instrument. */
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, "b", "X", -1, 2);
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H + 1, "a", "X", -1, 2);
	session(f, "RUN", D0 + 8 * H, D0 + 9 * H, "a", "X", -1, 2);
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, NULL, "X", -1, 2);
	assert_int_equal(head_seq(f), 5);
	assert_int_equal(core_sessions_repeated(f->core, "LOG"), 1);

	/* After a restart on the same file (a log rewritten in place and read again), with
	 * another org and sample count: still the same session. */
	reopen(f);
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, "a", "Y", -1, 7);
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, NULL, "X", -1, 2);
	assert_int_equal(head_seq(f), 5);
	assert_int_equal(core_sessions_repeated(f->core, "LOG"), 3);
	assert_int_equal(core_sessions_repeated(f->core, "RUN"), 0);
	struct daily_figures d = day(f, "LOG", D0);
	assert_int_equal(d.sessions, 4);
	assert_int_equal(d.samples, 8);
}

static int dailies_of(struct fx *f, const char *date)
{
	cJSON *dailies = sealed(f, "daily", "LOG");
	int n = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, dailies)
		n += strcmp(str(d, "date"), date) == 0;
	cJSON_Delete(dailies);
	return n;
}

/* A batch marks each sealed day it touches once (metrics_batch), whatever the order of its
 * sessions, and the next batch marks again a day the tick sealed again in between. */
static void test_batch_marks_each_sealed_day(void **state)
{
	struct fx *f = *state;
	session(f, "LOG", D0 + 8 * H, D0 + 9 * H, "a", "X", -1, -1);
	session(f, "LOG", D0 + DAY + 8 * H, D0 + DAY + 9 * H, "a", "X", -1, -1);
	assert_int_equal(tick_at(f, D0 + 2 * DAY + 60), 2);   /* both days, rev 1 */
	struct obs v[3] = { { .type = OBS_SESSION, .instrument = "LOG" }, { .type = OBS_SESSION, .instrument = "LOG" },
			    { .type = OBS_SESSION, .instrument = "LOG" } };
	v[0].u.session = (struct obs_session){ .start = D0 + DAY + 10 * H, .end = D0 + DAY + 11 * H, .user = "b",
					       .org = "X", .external = -1, .samples = -1 };
	v[1].u.session = v[0].u.session;
	v[1].u.session.start -= DAY;
	v[1].u.session.end -= DAY;
	v[2].u.session = v[0].u.session;
	v[2].u.session.user = "c";
	assert_int_equal(core_submit(f->core, v, 3, NULL, NULL, 0), 0); /* days 1, 0, 1 */
	assert_int_equal(tick_at(f, D0 + 2 * DAY + 61), 2);   /* both again, rev 2 */
	/* The next batch: day 1 once more (its mark was taken by the tick). */
	v[0].u.session.user = "d";
	assert_int_equal(core_submit(f->core, v, 1, NULL, NULL, 0), 0);
	assert_int_equal(tick_at(f, D0 + 2 * DAY + 121), 1);  /* a grace later, rev 3 */
	assert_int_equal(dailies_of(f, "2026-11-02"), 2);
	assert_int_equal(dailies_of(f, "2026-11-03"), 3);
	assert_int_equal(day(f, "LOG", D0).sessions, 2);
	assert_int_equal(day(f, "LOG", D0 + DAY).sessions, 4);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_overlapping_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_midnight_and_multiday_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_session_grows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_session_from_another_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_counter_across_midnight_and_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fractions_carried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap_in_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_glitch_clamp_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_days_down_spread_evenly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_use_edges_and_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_line_revision_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revisions_once_per_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_stop_splits_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dst_day_lengths, setup_berlin, teardown),
		cmocka_unit_test_setup_teardown(test_property_random_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_samples_sum_saturates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_samples_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_days_before_1970_keep_going, setup, teardown),
		cmocka_unit_test_setup_teardown(test_implausible_sessions_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_never_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_session_sealed_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_marks_each_sealed_day, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
