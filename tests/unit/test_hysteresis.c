/* test_hysteresis.c — in use from power with hysteresis (SPEC §3 "profile", issue #16): a
 * simulated CHINT DDSU666 on 127.0.0.1 whose power the test sets poll by poll, the real driver,
 * core and buffer under a fake clock. A spike at power-up, a pump cycling on and off shorter
 * than min_on_s and a meter that reads 0 for one poll create or split no run; a run is counted
 * from its first reading above above_w to its first reading below below_w, across a restart of
 * the whole agent in the middle; energy_kwh is the import counter's gain per run slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "modbus.h"
#include "timeutil.h"

#define INTERVAL_S 10
#define POWER "0 1 holding 8196 f32 big"   /* kW */
#define ENERGY "0 1 holding 16384 f32 big" /* kWh */

struct fx {
	char *dir;
	struct h_proc *sim;
	int port;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct source_conf *sc;
	void *drv;
	struct fake_clock clock;
};

static void sim_cmd(struct fx *f, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void sim_cmd(struct fx *f, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *reply = h_request(f->sim, line, 5000);
	if (!reply || strncmp(reply, "error", 5) != 0) {
		free(reply);
		return;
	}
	fail_msg("simulator: \"%s\": %s", line, reply);
}

static bool driver_settled(void *arg)
{
	return modbus_settled(arg);
}

static void open_agent(struct fx *f)
{
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	assert_non_null(f->core = core_new(f->cfg, f->buf));
	assert_int_equal(modbus_source.create(f->sc, f->core, &f->drv), 0);
	assert_int_equal(modbus_source.start(f->drv), 0);
	if (!h_wait_for(driver_settled, f->drv, 15000))
		fail_msg("the driver did not make its first poll");
}

/* A clean stop, as the daemon makes it: the driver first, then the open slot sealed. */
static void close_agent(struct fx *f)
{
	modbus_source.stop(f->drv);
	modbus_source.destroy(f->drv);
	f->drv = NULL;
	assert_true(core_stop(f->core) >= 0);
	core_free(f->core);
	f->core = NULL;
	buffer_close(f->buf);
	f->buf = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_hysteresis");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *pf = h_path(f->dir, "ports"), *log = h_path(f->dir, "sim.log");
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--tcp", (char *)"127.0.0.1:0",
			 (char *)"--units", (char *)"1", (char *)"--regs", (char *)"65536", (char *)"--port-file",
			 pf, (char *)"--script", (char *)"tests/sim/meters/chint-ddsu666.script", NULL };
	assert_non_null(f->sim = h_spawn(argv, NULL, true, true, log));
	assert_true(h_wait_file(pf, 10000));
	char *ports = h_read_file(pf, NULL);
	assert_int_equal(sscanf(ports, "%d", &f->port), 1);
	free(ports);
	free(pf);
	free(log);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\", \"state_dir\": \"%s/state\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		"  \"buses\": [ { \"id\": \"rs485\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 1000 } ],"
		"  \"instruments\": [ { \"id\": \"M\", \"modbus\": { \"bus\": \"rs485\", \"unit\": 1, \"interval_s\": %d,"
		"     \"profile\": \"chint-ddsu666\","
		"     \"in_use\": { \"above_w\": 150, \"below_w\": 60, \"min_on_s\": 60, \"min_off_s\": 120 } } } ] }",
		f->dir, f->dir, f->port, INTERVAL_S);
	struct config_errors errs = { 0 };
	if (config_parse("t.json", text, strlen(text), &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	assert_non_null(f->sc = config_source_conf(f->cfg));
	/* On a slot boundary, so that the slots' sums are easy to read. */
	int64_t t0 = (int64_t)time(NULL);
	fake_clock_install(&f->clock, t0 - t0 % 900 + 900);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->drv)
		close_agent(f);
	clock_set(NULL);
	source_conf_free(f->sc);
	config_free(f->cfg);
	h_proc_free(f->sim);
	h_done_dir(f->dir);
	free(f);
	return 0;
}

/* Sets the meter's power, then moves the clock one poll on: the driver reads it. */
static void poll_at(struct fx *f, double watts)
{
	sim_cmd(f, "set " POWER " %.3f", watts / 1000.0);
	fake_clock_advance(&f->clock, INTERVAL_S * 1000000);
	if (!h_wait_for(driver_settled, f->drv, 15000))
		fail_msg("the driver did not finish the polls due by now");
}

static void polls(struct fx *f, int n, double watts)
{
	for (int i = 0; i < n; i++)
		poll_at(f, watts);
}

/* Run seconds counted so far (sealed or not), from the core's slots and the open slot's amounts
 * it holds with the state, as committed. */
static double run_s(struct fx *f)
{
	return metrics_run_counted(core_metrics(f->core), "M");
}

static void expect_run(struct fx *f, double want, const char *when)
{
	double got = run_s(f);
	if (fabs(got - want) > 1e-6)
		fail_msg("%s: %.6f s of run time, not %.0f", when, got, want);
}

/* The sealed run records: Σ run_s, Σ energy_kwh and how many carry energy_kwh. */
static void run_records(struct fx *f, int64_t *run, double *kwh, int *with_energy, int *without)
{
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, BUFFER_READONLY, &f->buf, NULL), 0);
	struct chain_head h;
	buffer_head(f->buf, &h);
	*run = 0;
	*kwh = 0;
	*with_energy = *without = 0;
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) != 0)
			continue;
		cJSON *j = cJSON_Parse(r.line);
		const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(j, "kind"));
		if (kind && strcmp(kind, "run") == 0) {
			*run += (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "run_s"));
			const cJSON *e = cJSON_GetObjectItem(j, "energy_kwh");
			if (cJSON_IsNumber(e)) {
				*kwh += e->valuedouble;
				(*with_energy)++;
			} else {
				(*without)++;
			}
		}
		cJSON_Delete(j);
		buffer_record_clear(&r);
	}
	buffer_close(f->buf);
	f->buf = NULL;
}

static void test_flapping_power_makes_exact_runs(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set " ENERGY " 100");
	sim_cmd(f, "set " POWER " 0");
	int64_t t_start = clock_wall_us() / 1000000;
	open_agent(f);
	polls(f, 3, 0);                  /* idle */

	/* A spike at power-up, then standby between the thresholds: no run. */
	poll_at(f, 2000);
	polls(f, 2, 100);
	polls(f, 3, 0);
	expect_run(f, 0, "after a spike");

	/* A pump cycling: 50 s above (five readings, 40 s from the first to the last) and 30 s
	 * off, three times: shorter than min_on_s, no run. */
	for (int i = 0; i < 3; i++) {
		polls(f, 5, 500);
		polls(f, 3, 0);
	}
	expect_run(f, 0, "after a pump cycling");

	/* A real run of 300 s with one reading of 0 in the middle: one run, from its first reading
	 * above to its first below. Its first 60 s are counted once it has lasted them. */
	polls(f, 6, 800);
	expect_run(f, 0, "50 s into a run (not confirmed yet)");
	poll_at(f, 800);
	expect_run(f, 60, "60 s into a run (confirmed, backdated)");
	polls(f, 8, 800);
	poll_at(f, 0);                   /* the meter reads 0 once */
	polls(f, 14, 800);
	expect_run(f, 290, "after a dip of one poll");
	sim_cmd(f, "set " ENERGY " 100.5");
	polls(f, 20, 0);                 /* 200 s below: idle since the first */
	expect_run(f, 300, "after the first run");

	/* A second run of 200 s with the agent restarted 30 s into it (still pending), and once
	 * more 100 s into it. */
	polls(f, 4, 900);
	close_agent(f);
	open_agent(f);
	polls(f, 6, 900);
	expect_run(f, 390, "after a restart while pending");
	polls(f, 5, 900);
	close_agent(f);
	open_agent(f);
	sim_cmd(f, "set " ENERGY " 101.25");
	polls(f, 5, 900);
	polls(f, 15, 30);                /* below: the end lies at the first of these */
	expect_run(f, 500, "after the second run");
	close_agent(f);

	/* The days' figures: effective_s is the in-use time. */
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	assert_non_null(f->core = core_new(f->cfg, f->buf));
	int64_t day = time_day_start(t_start), effective = 0;
	for (int i = 0; i < 2; i++, day = time_next_day(day)) {
		struct daily_figures fig;
		assert_int_equal(buffer_begin(f->buf), 0); /* metrics reads on the writer, in a transaction */
		assert_int_equal(metrics_day(core_metrics(f->core), "M", day, &fig), 0);
		buffer_rollback(f->buf);
		effective += fig.effective_s;
	}
	assert_int_equal(effective, 500);
	core_free(f->core);
	f->core = NULL;
	buffer_close(f->buf);
	f->buf = NULL;

	int64_t run;
	double kwh;
	int with_energy, without;
	run_records(f, &run, &kwh, &with_energy, &without);
	assert_int_equal(run, 500);
	assert_true(fabs(kwh - 1.25) < 1e-9);
	assert_true(with_energy > 0);
	assert_int_equal(without, 0);    /* a metered instrument's run records all carry it */
}

/* A stretch pending when the meter stops answering can only start over: its slots are not held
 * for it (they would wait for a reading that may not come for days). */
static void test_pending_stretch_does_not_hold_slots_while_offline(void **state)
{
	struct fx *f = *state;
	int64_t slot = clock_wall_us() / 1000000; /* the fixture starts on a slot boundary */
	open_agent(f);
	polls(f, 3, 0);
	poll_at(f, 800);                 /* pending: above for less than min_on_s */
	sim_cmd(f, "exception 0 1 4");   /* from now on every read fails */
	for (int i = 0; i < 120; i++)    /* 20 minutes, past the slot's end */
		poll_at(f, 800);
	assert_true(core_tick(f->core) >= 0);
	char *db = h_strdupf("%s/state/" BUFFER_FILE, f->dir);
	char *q = h_strdupf("SELECT sealed_to FROM mx_slots WHERE instrument = 'M' AND slot = %lld", (long long)slot);
	int64_t sealed_to = h_sql_int(db, q);
	if (sealed_to < slot + 900)
		fail_msg("the slot of a stretch left pending by an offline meter was not sealed (sealed_to %lld)",
			 (long long)sealed_to);
	free(q);
	free(db);
	/* Back: the stretch starts over, and counts from its own first reading. */
	sim_cmd(f, "exception 0 1 off");
	double before = run_s(f);
	for (int i = 0; i < 40; i++)
		poll_at(f, 800);
	double got = run_s(f) - before;
	assert_true(got > 0);
	close_agent(f);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flapping_power_makes_exact_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_stretch_does_not_hold_slots_while_offline, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
