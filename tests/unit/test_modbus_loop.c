/* test_modbus_loop.c — the Modbus driver's TCP event loop against the simulator: the MBAP
 * hardening of mbtcp.c (a gateway that answers twice, replays, garbles the protocol id), one
 * request for an instrument's neighbouring points, recovery within two intervals after an
 * outage of any length, and a prompt stop with requests out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "ptyline.h"
#include "log.h"
#include "mbdecode.h"
#include "mbplan.h"
#include "metrics.h"
#include "modbus.h"
#include "status.h"
#include "timeutil.h"
#include "test_modbus_env.h"

/* ---- the request plan, table-driven ------------------------------------------------ */

static struct mb_point pt(enum mb_table t, int address, enum mb_type type)
{
	return (struct mb_point){ .present = true, .table = t, .address = (uint16_t)address, .type = type,
				  .word_order = MB_WORD_BIG, .scale = 1 };
}

static const struct {
	const char *what;
	bool exact;
	int n_req, lo0, count0;
	bool gapped0;
} plan_cases[] = {
	{ "A: touching, and a coil (checked above)", false, 0, 0, 0, false },
	{ "u32 at 100, u16 at 102", false, 1, 100, 3, false },
	{ "u32 at 100, u16 at 105: a gap of 3", false, 1, 100, 6, true },
	{ "u32 at 100, u16 at 107: a gap of 5", false, 2, 100, 2, false },
	{ "u32 at 100, u16 at 105, exact", true, 2, 100, 2, false },
	{ "u16 at 0, u64 at 40: too wide", false, 2, 0, 1, false },
	{ "coil 3 and coil 60", false, 1, 3, 58, true },
	{ "input and coil", false, 2, 100, 2, false },
};

static void test_request_plan(void **state)
{
	(void)state;
	struct mb_point run[] = { { 0 }, pt(MB_TABLE_INPUT, 100, MB_TYPE_U32), pt(MB_TABLE_INPUT, 100, MB_TYPE_U32),
				  pt(MB_TABLE_INPUT, 100, MB_TYPE_U32), pt(MB_TABLE_INPUT, 100, MB_TYPE_U32),
				  pt(MB_TABLE_HOLDING, 0, MB_TYPE_U16), pt(MB_TABLE_COIL, 3, MB_TYPE_BIT),
				  pt(MB_TABLE_INPUT, 100, MB_TYPE_U32) };
	struct mb_point use[] = { { 0 }, pt(MB_TABLE_INPUT, 102, MB_TYPE_U16), pt(MB_TABLE_INPUT, 105, MB_TYPE_U16),
				  pt(MB_TABLE_INPUT, 107, MB_TYPE_U16), pt(MB_TABLE_INPUT, 105, MB_TYPE_U16),
				  pt(MB_TABLE_HOLDING, 40, MB_TYPE_U64), pt(MB_TABLE_COIL, 60, MB_TYPE_BIT),
				  pt(MB_TABLE_COIL, 5, MB_TYPE_BIT) };
	/* the first case: A's three points (run 10–11 and samples 12 touch; the coil apart) */
	struct modbus_cfg a = { .present = true, .unit = 1, .interval_s = 1,
				.run_counter = pt(MB_TABLE_INPUT, 10, MB_TYPE_U32),
				.samples_counter = pt(MB_TABLE_INPUT, 12, MB_TYPE_U16),
				.in_use = pt(MB_TABLE_COIL, 3, MB_TYPE_BIT) };
	struct mb_plan pl;
	mb_plan_make(&a, false, false, &pl);
	assert_int_equal(pl.n_req, 2);
	assert_true(pl.req[0].table == MB_TABLE_INPUT && pl.req[0].lo == 10 && pl.req[0].count == 3);
	assert_int_equal(pl.req[0].n_slots, 2);
	assert_true(pl.req[1].table == MB_TABLE_COIL && pl.req[1].lo == 3 && pl.req[1].count == 1);
	for (size_t i = 1; i < sizeof(plan_cases) / sizeof(plan_cases[0]); i++) {
		struct modbus_cfg m = { .present = true, .unit = 1, .interval_s = 1, .run_counter = run[i],
					.in_use = use[i] };
		mb_plan_make(&m, plan_cases[i].exact, false, &pl);
		if (pl.n_req != plan_cases[i].n_req || pl.req[0].lo != plan_cases[i].lo0 ||
		    pl.req[0].count != plan_cases[i].count0 || pl.req[0].gapped != plan_cases[i].gapped0)
			fail_msg("%s: %d requests, the first %d x %d%s", plan_cases[i].what, pl.n_req, pl.req[0].lo,
				 pl.req[0].count, pl.req[0].gapped ? " (gapped)" : "");
	}
}

/* A gateway that repeats its replies, or replays the previous one first: through the event
 * loop every reading is still the unit's own (A's counter moves 1 per second, exactly). */
static void test_loop_twice_and_stale_never_swap(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 1 input 10 u32 little 3600");
	sim_cmd(f, "set 0 2 holding 0 u16 big 60000"); /* B: far from A's value */
	f->counter = "0 1 input 10 u32 little";
	sim_cmd(f, "twice 0 1 on");
	sim_cmd(f, "stale 0 2 on");
	start_faked(f);
	tick_hours(f, "A", 3604 / 3600.0, 30);
	double a = run_hours(f, "A");
	tick_hours(f, "A", a + 5 / 3600.0, 30);
	/* never a jump to B's value, and B reads its own */
	assert_true(run_hours(f, "A") < 3700 / 3600.0);
	tick_hours(f, "B", 59999 / 3600.0, 30);
	assert_int_equal(count_records(f, "counter_clamped"), 0);
	assert_int_equal(count_records(f, "device_offline"), 0);
}

/* Protocol id 1 is no Modbus reply: a failed poll naming it, never a value; the others on the
 * bus keep reading, and the unit reads again once the fault is gone. */
static void test_loop_bad_protocol_id_fails_the_poll(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 2 holding 0 u16 big 500");
	f->counter = "0 1 input 10 u32 little";
	sim_cmd(f, "badproto 0 2 on");
	start_faked(f);
	tick_records(f, "\"instrument\":\"B\",\"type\":\"device_offline\"", 1, 10);
	assert_int_equal(count_records(f, "protocol id 1"), 1);
	assert_true(run_hours(f, "B") <= 0); /* never read (-1) */
	double a = run_hours(f, "A");
	tick_hours(f, "A", a + 3 / 3600.0, 10);
	sim_cmd(f, "badproto 0 2 off");
	tick_records(f, "\"instrument\":\"B\",\"type\":\"device_online\"", 1, 3);
	tick_hours(f, "B", 499 / 3600.0, 5);
}

/* A run counter (u32, input 100) and an in-use register (input 102, "above") are one request
 * per poll, on the blocking bus and through the loop alike. */
static void test_neighbouring_points_are_one_request(void **state)
{
	struct fx *f = *state;
	struct instrument_cfg *b = (struct instrument_cfg *)inst(f, "B");
	b->modbus.run_counter = (struct mb_point){ .present = true, .table = MB_TABLE_INPUT, .address = 100,
						   .type = MB_TYPE_U32, .word_order = MB_WORD_BIG,
						   .scale = 1 / 3600.0 };
	b->modbus.in_use = (struct mb_point){ .present = true, .table = MB_TABLE_INPUT, .address = 102,
					      .type = MB_TYPE_U16, .word_order = MB_WORD_BIG, .scale = 1,
					      .has_above = true, .above = 10 };
	sim_cmd(f, "set 0 2 input 100 u32 big 7200");
	sim_cmd(f, "set 0 2 input 102 u16 big 42");
	struct mb_bus *bus = mb_bus_new(&f->cfg->buses[0]);
	struct mb_values v;
	sim_cmd(f, "reset-stats");
	mb_read_instrument(bus, &b->modbus, &v);
	assert_true(v.ok && v.run_raw == 7200 && v.in_use_raw == 42 && v.in_use);
	assert_int_equal(unit_requests(f, 0, 2), 1);
	mb_bus_free(bus);

	start_faked(f);
	tick_hours(f, "B", 1.999, 5);
	sim_cmd(f, "reset-stats");
	for (int i = 0; i < 5; i++)
		tick(f);
	struct modbus_status s = inst_status(f, "B");
	assert_true(s.has_in_use && s.in_use);
	int64_t n = unit_requests(f, 0, 2);
	if (n < 4 || n > 6)
		fail_msg("B made %lld requests in 5 polls, want one each", (long long)n);
}

struct online_wait {
	struct fx *f;
	const char *needle;
	int had;
};

static bool online_again(void *arg)
{
	struct online_wait *w = arg;
	return count_records(w->f, w->needle) > w->had;
}

/* Seconds of fake time (1 s polls) from the end of an outage until the device is read again. */
static int seconds_to_online(struct fx *f, const char *id, int max_s)
{
	char needle[96];
	snprintf(needle, sizeof(needle), "\"instrument\":\"%s\",\"type\":\"device_online\"", id);
	struct online_wait w = { f, NULL, 0 };
	w.needle = needle;
	w.had = count_records(f, needle);
	for (int s = 0; s <= max_s; s++) {
		if (online_again(&w))
			return s;
		tick(f);
	}
	return -1;
}

/* A unit silent for 20 s behind a gateway that answers, and a gateway away for six hours: each
 * is read again within two of its intervals (1 s here) of coming back. */
static void test_recovery_within_two_intervals(void **state)
{
	struct fx *f = *state;
	start_faked(f);
	tick_hours(f, "B", 0, 2);
	sim_cmd(f, "silence 0 2 on");
	tick_records(f, "\"instrument\":\"B\",\"type\":\"device_offline\"", 1, 5);
	for (int i = 0; i < 20; i++)
		tick(f);
	sim_cmd(f, "silence 0 2 off");
	int took = seconds_to_online(f, "B", 10);
	if (took < 0 || took > 2)
		fail_msg("after 20 s of silence B was read again after %d s (want <= 2)", took);

	sim_cmd(f, "close 1");
	tick_records(f, "\"instrument\":\"D\",\"type\":\"device_offline\"", 1, 5);
	for (int i = 0; i < 6 * 6; i++) { /* six hours, ten minutes at a time */
		fake_clock_advance(&f->clock, 600 * 1000000LL);
		settle(f);
	}
	sim_cmd(f, "open 1");
	took = seconds_to_online(f, "D", 10);
	if (took < 0 || took > 2)
		fail_msg("after six hours away D was read again after %d s (want <= 2)", took);
	/* A probed while away: failed polls counted, no hang. */
	struct modbus_status s = inst_status(f, "D");
	assert_true(s.polls > 6 * 6);
}

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool requests_out(void *arg)
{
	struct fx *f = arg;
	return unit_requests(f, 0, 1) > 0 && unit_requests(f, 1, 1) > 0;
}

/* Stop with requests out to silent units (200 ms time-outs): bounded, not a time-out each. */
static void test_stop_is_prompt(void **state)
{
	struct fx *f = *state;
	for (int u = 1; u <= 3; u++)
		sim_cmd(f, "silence 0 %d on", u);
	sim_cmd(f, "silence 1 1 on");
	start_driver(f);
	assert_true(h_wait_for(requests_out, f, 5000));
	int64_t s0 = real_ms();
	modbus_source.stop(f->drv);
	int64_t took = real_ms() - s0;
	if (took > 150)
		fail_msg("stop took %lld ms", (long long)took);
}

/* ---- an RTU line over a pair of pseudo-terminals ------------------------------------ */

static struct h_line rtu_line; /* the simulator on name[0], the driver on name[1] */

/* Three units on one line (the simulator on one pty, the driver on the other), 1 s each. No
 * gap_ms: under the fake clock a gap would only pass when the test moves time on. */
static int rtu_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_int_equal(h_line_open(&rtu_line), 0);
	const char *na = rtu_line.name[0], *nb = rtu_line.name[1];
	f->dir = h_mkdtemp("test_modbus_loop_rtu");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *pf = h_path(f->dir, "ports");
	char *spec = h_strdupf("%s?baud=19200&parity=E&data=8&stop=1", na);
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--rtu", spec, (char *)"--units",
			 (char *)"1-3", (char *)"--port-file", pf, NULL };
	char *log = h_path(f->dir, "sim.log");
	f->sim = h_spawn(argv, NULL, true, true, log);
	free(spec);
	free(log);
	assert_true(h_wait_file(pf, 20000));
	free(pf);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		"  \"state_dir\": \"%s/state\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		"  \"buses\": [ { \"id\": \"rs485\", \"url\": \"rtu:%s?baud=19200&parity=E&data=8&stop=1\","
		"    \"timeout_ms\": 300, \"gap_ms\": 0 } ],"
		"  \"instruments\": ["
		"   { \"id\": \"R1\", \"modbus\": { \"bus\": \"rs485\", \"unit\": 1, \"interval_s\": 1,"
		"      \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\", \"scale\": 0.000277777777777778 } } },"
		"   { \"id\": \"R2\", \"modbus\": { \"bus\": \"rs485\", \"unit\": 2, \"interval_s\": 1,"
		"      \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\", \"scale\": 0.000277777777777778 } } },"
		"   { \"id\": \"R3\", \"modbus\": { \"bus\": \"rs485\", \"unit\": 3, \"interval_s\": 1,"
		"      \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\", \"scale\": 0.000277777777777778 } } }"
		"  ] }",
		f->dir, f->dir, nb);
	open_lab(f, text);
	*state = f;
	return 0;
}

static int rtu_teardown(void **state)
{
	int r = teardown(state);
	h_line_close(&rtu_line);
	return r;
}

/* A unit on a shared RTU line silent for two minutes: its probes back off (each costs the line
 * a time-out), the others go on, and it is read again within 30 s of answering. */
static void test_rtu_dead_unit_back_within_30_s(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 3 input 0 u32 big 7200");
	start_faked(f);
	tick_hours(f, "R3", 1.999, 5);
	sim_cmd(f, "silence 0 3 on");
	tick_records(f, "\"instrument\":\"R3\",\"type\":\"device_offline\"", 1, 5);
	struct modbus_status s0 = inst_status(f, "R3"), o0 = inst_status(f, "R1");
	for (int i = 0; i < 120; i++)
		tick(f);
	struct modbus_status s1 = inst_status(f, "R3"), o1 = inst_status(f, "R1");
	/* backed off: a probe every 20 s at most, not one a second */
	if (s1.polls - s0.polls > 10)
		fail_msg("R3 was probed %llu times in 120 s", (unsigned long long)(s1.polls - s0.polls));
	if (o1.polls - o0.polls < 118 && (dump_events(f), true))
		fail_msg("R1 polled %llu times in 120 s, R3 probed %llu times", (unsigned long long)(o1.polls - o0.polls),
			 (unsigned long long)(s1.polls - s0.polls));
	sim_cmd(f, "silence 0 3 off");
	int took = seconds_to_online(f, "R3", 40);
	if (took < 0 || took > 30)
		fail_msg("R3 was read again %d s after it answered (want <= 30)", took);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_plan),
		cmocka_unit_test_setup_teardown(test_loop_twice_and_stale_never_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_bad_protocol_id_fails_the_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_neighbouring_points_are_one_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_within_two_intervals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_is_prompt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtu_dead_unit_back_within_30_s, rtu_setup, rtu_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
