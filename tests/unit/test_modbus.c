/* test_modbus.c — the Modbus driver against the simulator on 127.0.0.1 (and over a pair of
 * pseudo-terminals for RTU): decoding, counter events, faults, back-off, reconnects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "ptyline.h"
#include "log.h"
#include "mbdecode.h"
#include "metrics.h"
#include "modbus.h"
#include "status.h"
#include "timeutil.h"

/* ---- decoding, table-driven ----------------------------------------------------- */

static const struct {
	enum mb_type type;
	enum mb_word_order order;
	uint16_t regs[4];
	double want;
} decode_cases[] = {
	{ MB_TYPE_U16, MB_WORD_BIG, { 0xBEEF }, 48879 },
	{ MB_TYPE_U32, MB_WORD_BIG, { 0x0001, 0xE240 }, 123456 },       /* Schneider: high first */
	{ MB_TYPE_U32, MB_WORD_LITTLE, { 0xE240, 0x0001 }, 123456 },    /* Carlo Gavazzi: low first */
	{ MB_TYPE_U32, MB_WORD_BIG, { 0xFFFF, 0xFFFF }, 4294967295.0 },
	{ MB_TYPE_I32, MB_WORD_BIG, { 0xFFFF, 0xFFFE }, -2 },
	{ MB_TYPE_I32, MB_WORD_LITTLE, { 0xFFFE, 0xFFFF }, -2 },
	{ MB_TYPE_U64, MB_WORD_BIG, { 0x0000, 0x0001, 0x0000, 0x0000 }, 4294967296.0 },
	{ MB_TYPE_U64, MB_WORD_LITTLE, { 0x0000, 0x0000, 0x0001, 0x0000 }, 4294967296.0 },
	{ MB_TYPE_U64, MB_WORD_BIG, { 0x0000, 0x0000, 0x0000, 0x0005 }, 5 },
	{ MB_TYPE_F32, MB_WORD_BIG, { 0x4049, 0x0FDB }, 3.1415927410125732 },
	{ MB_TYPE_F32, MB_WORD_LITTLE, { 0x0FDB, 0x4049 }, 3.1415927410125732 },
	{ MB_TYPE_F32, MB_WORD_BIG, { 0xC2F6, 0xE979 }, -123.45600128173828 },
};

static void test_decode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
		bool ok;
		double v = mb_decode(decode_cases[i].regs, decode_cases[i].type, decode_cases[i].order, &ok);
		if (!ok || v != decode_cases[i].want)
			fail_msg("case %zu: %s/%s decoded %.17g, want %.17g", i, mb_type_name(decode_cases[i].type),
				 decode_cases[i].order == MB_WORD_BIG ? "big" : "little", v, decode_cases[i].want);
		uint16_t back[4] = { 0 };
		mb_encode(decode_cases[i].want, decode_cases[i].type, decode_cases[i].order, back);
		if (memcmp(back, decode_cases[i].regs, sizeof(uint16_t) * (size_t)mb_type_width(decode_cases[i].type)))
			fail_msg("case %zu: encode does not invert decode", i);
	}
	uint16_t nan[2] = { 0x7FC0, 0x0000 };
	bool ok;
	mb_decode(nan, MB_TYPE_F32, MB_WORD_BIG, &ok);
	assert_false(ok);
}

/* ---- against the simulator ------------------------------------------------------ */

#include "test_modbus_env.h"

static void test_read_every_table_and_type(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 1 input 10 u32 little 123456");
	sim_cmd(f, "set 0 1 input 12 u16 big 77");
	sim_cmd(f, "set 0 1 coil 3 bit big 1");
	sim_cmd(f, "set 0 2 holding 0 u16 big 65535");
	sim_cmd(f, "set 0 3 holding 0 u64 big 4294967301");
	sim_cmd(f, "set 0 3 input 20 f32 big 75.5");
	sim_cmd(f, "set 1 1 input 0 i32 big -7");
	struct mb_bus *bus = mb_bus_new(&f->cfg->buses[0]), *bus2 = mb_bus_new(&f->cfg->buses[1]);
	struct mb_values v;
	mb_read_instrument(bus, &inst(f, "A")->modbus, &v);
	assert_true(v.ok);
	assert_true(v.run_raw == 123456 && v.samples_raw == 77 && v.in_use);
	mb_read_instrument(bus, &inst(f, "B")->modbus, &v);
	assert_true(v.ok && v.run_raw == 65535 && !v.has_in_use);
	mb_read_instrument(bus, &inst(f, "C")->modbus, &v);
	assert_true(v.ok && v.run_raw == 4294967301.0 && v.in_use_raw == 75.5 && v.in_use);
	sim_cmd(f, "set 0 3 input 20 f32 big 12.25"); /* below the 50 W threshold */
	mb_read_instrument(bus, &inst(f, "C")->modbus, &v);
	assert_true(v.ok && !v.in_use);
	mb_read_instrument(bus2, &inst(f, "D")->modbus, &v);
	assert_true(v.ok && v.run_raw == -7);
	/* A and its neighbours: run (10–11) and samples (12) are one request. */
	sim_cmd(f, "reset-stats");
	mb_read_instrument(bus, &inst(f, "A")->modbus, &v);
	char *stats = h_request(f->sim, "stats", 5000);
	cJSON *s = cJSON_Parse(stats);
	assert_non_null(s);
	assert_int_equal((int)cJSON_GetObjectItem(s, "requests")->valuedouble, 2); /* registers + coil */
	cJSON_Delete(s);
	free(stats);
	mb_bus_free(bus);
	mb_bus_free(bus2);
}

static void test_exception_and_unserved_unit(void **state)
{
	struct fx *f = *state;
	struct mb_bus *bus = mb_bus_new(&f->cfg->buses[0]);
	struct mb_values v;
	sim_cmd(f, "exception 0 2 2");
	mb_read_instrument(bus, &inst(f, "B")->modbus, &v);
	assert_false(v.ok);
	assert_non_null(strstr(v.error, "unit 2 holding 0..0"));
	assert_non_null(strstr(v.error, "Illegal data address"));
	sim_cmd(f, "exception 0 2 off");
	mb_read_instrument(bus, &inst(f, "B")->modbus, &v);
	assert_true(v.ok);
	mb_bus_free(bus);
}


/* Two counters of one unit, same table, same width, apart: their requests differ only in the
 * address, so a stale reply to one fits the other exactly. */
static struct instrument_cfg two_counters(void)
{
	struct instrument_cfg e = { .id = (char *)"E" };
	e.modbus = (struct modbus_cfg){
		.present = true, .unit = 4, .interval_s = 1,
		.run_counter = { .present = true, .table = MB_TABLE_HOLDING, .address = 0, .type = MB_TYPE_U32,
				 .word_order = MB_WORD_BIG, .scale = 1 },
		.samples_counter = { .present = true, .table = MB_TABLE_HOLDING, .address = 20,
				     .type = MB_TYPE_U32, .word_order = MB_WORD_BIG, .scale = 1 } };
	return e;
}

/* A gateway that answers twice, or replays its previous reply before the right one: every
 * read must still give each counter its own register, read again past the stale reply. */
static void test_stale_replies_never_swap_counters(void **state)
{
	struct fx *f = *state;
	struct instrument_cfg e = two_counters();
	sim_cmd(f, "set 0 4 holding 0 u32 big 5000");
	sim_cmd(f, "set 0 4 holding 20 u32 big 77");
	struct mb_bus *bus = mb_bus_new(&f->cfg->buses[0]);
	static const char *const modes[] = { "twice", "stale" };
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		sim_cmd(f, "%s 0 4 on", modes[m]);
		for (int k = 0; k < 6; k++) {
			struct mb_values v;
			mb_read_instrument(bus, &e.modbus, &v);
			if (!v.ok)
				fail_msg("%s, read %d: %s", modes[m], k, v.error);
			if (v.run_raw != 5000 || v.samples_raw != 77)
				fail_msg("%s, read %d: run %.0f (want 5000), samples %.0f (want 77)", modes[m], k,
					 v.run_raw, v.samples_raw);
		}
		sim_cmd(f, "%s 0 4 off", modes[m]);
	}
	/* A stale reply is skipped and the right one behind it read: no request goes out again. */
	sim_cmd(f, "stale 0 4 on");
	sim_cmd(f, "reset-stats");
	struct mb_values v;
	mb_read_instrument(bus, &e.modbus, &v);
	assert_true(v.ok && v.run_raw == 5000 && v.samples_raw == 77);
	assert_int_equal(unit_requests(f, 0, 4), 2);
	mb_bus_free(bus);
}

/* Replies whose protocol id is not 0 are no Modbus replies: never a value, a failed read
 * within the bus's time-out, and the next good reply reads normally. */
static void test_wrong_protocol_id_is_a_failed_read(void **state)
{
	struct fx *f = *state;
	struct instrument_cfg e = two_counters();
	sim_cmd(f, "set 0 4 holding 0 u32 big 5000");
	sim_cmd(f, "set 0 4 holding 20 u32 big 77");
	struct mb_bus *bus = mb_bus_new(&f->cfg->buses[0]);
	struct mb_values v;
	sim_cmd(f, "badproto 0 4 on");
	int64_t t0 = clock_mono_ms();
	mb_read_instrument(bus, &e.modbus, &v);
	int64_t took = clock_mono_ms() - t0;
	if (v.ok)
		fail_msg("a reply with protocol id 1 was taken: run %.0f", v.run_raw);
	assert_false(v.has_run || v.has_samples);
	if (!strstr(v.error, "protocol id 1"))
		fail_msg("error \"%s\" does not name the protocol id", v.error);
	assert_true(took < 1000); /* timeout_ms is 200: bounded, not a hang */
	sim_cmd(f, "badproto 0 4 off");
	mb_read_instrument(bus, &e.modbus, &v);
	if (!v.ok)
		fail_msg("after the fault: %s", v.error);
	assert_true(v.run_raw == 5000 && v.samples_raw == 77);
	mb_bus_free(bus);
}


static void test_counter_events_from_device(void **state)
{
	struct fx *f = *state;
	/* A u16 seconds counter running with the (fake) clock, about to wrap. */
	sim_cmd(f, "set 0 2 holding 0 u16 big 65533");
	f->counter = "0 2 holding 0 u16 big";
	start_faked(f);
	tick_records(f, "\"type\":\"counter_wrap\"", 1, 30);
	assert_int_equal(count_records(f, "\"type\":\"counter_clamped\""), 0);
	/* A reset: once it has counted a little past the wrap, the meter starts again from zero
	 * and keeps counting. */
	tick_hours(f, "B", 4 / 3600.0, 30);
	sim_cmd(f, "set 0 2 holding 0 u16 big 0");
	tick_records(f, "confirmed by the next reading", 1, 30);
	assert_int_equal(count_records(f, "\"type\":\"counter_clamped\""), 0);
	/* A jump far beyond the wall time is clamped. */
	f->counter = NULL;
	sim_cmd(f, "set 0 2 holding 0 u16 big 30000");
	tick_records(f, "\"type\":\"counter_clamped\"", 1, 30);
	tick_hours(f, "B", 30000 / 3600.0, 30);
	/* Stopped, status still knows the counter's last value. */
	modbus_source.stop(f->drv);
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	status_fill_buffer(st, f->cfg, f->buf, false, 0);
	status_fill_idle(st, f->buf, core_metrics(f->core));
	const struct modbus_status *bm = &st->insts[1].modbus;
	assert_string_equal(bm->state, "stopped");
	assert_true(bm->has_run_hours);
	if (fabs(bm->run_hours_total - 30000 / 3600.0) > 1e-6)
		fail_msg("run_hours_total %.9f, want %.9f", bm->run_hours_total, 30000 / 3600.0);
	status_free(st);
}

static void test_silent_instrument_does_not_stall_bus(void **state)
{
	struct fx *f = *state;
	f->counter = "0 1 input 10 u32 little";
	sim_cmd(f, "silence 0 2 on");
	start_faked(f);
	tick_records(f, "\"instrument\":\"B\",\"type\":\"device_offline\"", 1, 30);
	/* The others keep their schedule: A gains 1 s per second. */
	double h0 = run_hours(f, "A");
	tick_hours(f, "A", h0 + 4 / 3600.0, 30);
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	modbus_source.status(f->drv, st->insts, st->n_insts);
	const struct modbus_status *am = &st->insts[0].modbus, *bm = &st->insts[1].modbus;
	assert_true(am->live && bm->live);
	assert_string_equal(am->state, "ok");
	assert_string_equal(bm->state, "offline");
	assert_non_null(bm->last_error);
	assert_non_null(strstr(bm->last_error, "timed out"));
	assert_true(am->polls >= 4);
	assert_true(am->late_polls <= 1);
	assert_true(bm->polls < am->polls); /* B backs off */
	status_free(st);
	sim_cmd(f, "silence 0 2 off");
	tick_records(f, "\"instrument\":\"B\",\"type\":\"device_online\"", 1, 600);
}

static void test_gateway_reboot_reconnects(void **state)
{
	struct fx *f = *state;
	f->counter = "1 1 input 0 i32 big";
	start_faked(f);
	double h0;
	tick_hours(f, "D", 1 / 3600.0, 30);
	sim_cmd(f, "close 1");
	tick_records(f, "\"instrument\":\"D\",\"type\":\"device_offline\"", 1, 30);
	sim_cmd(f, "open 1");
	tick_records(f, "\"instrument\":\"D\",\"type\":\"device_online\"", 1, 600);
	h0 = run_hours(f, "D");
	tick_hours(f, "D", h0 + 2 / 3600.0, 30);
	/* A dropped connection (without the listener closing) is survived as well. */
	sim_cmd(f, "drop 1");
	h0 = run_hours(f, "D");
	tick_hours(f, "D", h0 + 2 / 3600.0, 30);
}

struct req_wait {
	struct fx *f;
	int64_t past;
};

static bool unit2_polled(void *arg)
{
	struct req_wait *w = arg;
	return unit_requests(w->f, 0, 2) > w->past;
}

static void test_lone_zero_is_a_glitch(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 2 holding 0 u16 big 1000");
	start_faked(f);
	tick_hours(f, "B", 1000 / 3600.0, 30);
	/* A meter that reads 0 for exactly one poll, then goes on. */
	struct req_wait w = { f, 0 };
	w.past = unit_requests(f, 0, 2);
	sim_cmd(f, "set 0 2 holding 0 u16 big 0");
	assert_true(tick_until(f, unit2_polled, &w, 30));
	sim_cmd(f, "set 0 2 holding 0 u16 big 1002");
	tick_records(f, "glitch: a lone lower reading 0 was discarded", 1, 30);
	assert_int_equal(count_records(f, "confirmed by the next reading"), 0);
	assert_true(run_hours(f, "B") >= 1002 / 3600.0 - 1e-9);
}

static void test_downtime_spread_as_gap(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 1 1 input 0 i32 big 100");
	start_faked(f);
	tick_hours(f, "D", 100 / 3600.0, 30);
	modbus_source.stop(f->drv);
	modbus_source.destroy(f->drv);
	f->drv = NULL;
	/* Down for an hour (the fake clock's wall time moved on, not the test), during which the
	 * instrument ran 30 minutes. */
	f->clock.wall_us += 3600LL * 1000000;
	sim_cmd(f, "set 1 1 input 0 i32 big 1900");
	start_driver(f);
	settle(f);
	tick_records(f, "\"instrument\":\"D\",\"type\":\"gap\"", 1, 30);
	assert_true(count_records(f, "1800 s of run time over a 36") == 1);
}

/* Waits computed on the wall clock and timed by the kernel on the true one would sleep for
 * the hour of the step: polling must go on, on the monotonic clock. */
static void test_wall_clock_step_does_not_stall_polling(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "auto 0 1 input 10 u32 little 1");
	atomic_store(&realtime_step_s, 3600);
	start_driver(f);
	wait_hours(f, "A", 1 / 3600.0);
	double h0 = run_hours(f, "A");
	wait_hours(f, "A", h0 + 1 / 3600.0); /* a poll after a whole wait of the worker */
}

/* ---- RTU over a pair of pseudo-terminals ----------------------------------------- */

struct rtu_fx {
	struct h_line line;          /* the simulator on name[0], the driver on name[1] */
	char *dir;
	struct h_proc *sim;
};

/* Teardown runs even when the test fails half-way, so the relay never outlives its state. */
static int rtu_setup(void **state)
{
	struct rtu_fx *r = calloc(1, sizeof(*r));
	assert_int_equal(h_line_open(&r->line), 0);
	r->dir = h_mkdtemp("test_modbus_rtu");
	*state = r;
	return 0;
}

static int rtu_teardown(void **state)
{
	struct rtu_fx *r = *state;
	h_proc_free(r->sim);
	h_line_close(&r->line);
	h_rmtree(r->dir);
	free(r->dir);
	free(r);
	return 0;
}

static void test_rtu_over_pty(void **state)
{
	struct rtu_fx *r = *state;
	char *pf = h_path(r->dir, "ports");
	char *spec = h_strdupf("%s?baud=19200&parity=E&data=8&stop=1", r->line.name[0]);
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--rtu", spec, (char *)"--units",
			 (char *)"1-3", (char *)"--port-file", pf, NULL };
	char *log = h_path(r->dir, "sim.log");
	r->sim = h_spawn(argv, NULL, true, true, log);
	free(spec);
	free(log);
	assert_true(h_wait_file(pf, 20000));
	free(pf);
	char *reply = h_request(r->sim, "set 0 2 input 7 u32 big 987654", 5000);
	assert_non_null(reply);
	assert_string_equal(reply, "ok");
	free(reply);
	reply = h_request(r->sim, "set 0 3 discrete 1 bit big 1", 5000);
	free(reply);

	struct bus_cfg bc = { .id = (char *)"rs485", .url = (char *)"rtu", .kind = BUS_RTU, .device = r->line.name[1],
			      .baud = 19200, .parity = 'E', .data_bits = 8, .stop_bits = 1,
			      .timeout_ms = 300, .gap_ms = 5 };
	struct instrument_cfg i2 = { .id = (char *)"R2" }, i3 = { .id = (char *)"R3" };
	i2.modbus = (struct modbus_cfg){ .present = true, .unit = 2, .interval_s = 1,
					 .run_counter = { .present = true, .table = MB_TABLE_INPUT, .address = 7,
							  .type = MB_TYPE_U32, .word_order = MB_WORD_BIG, .scale = 1 } };
	i3.modbus = (struct modbus_cfg){ .present = true, .unit = 3, .interval_s = 1,
					 .in_use = { .present = true, .table = MB_TABLE_DISCRETE, .address = 1,
						     .type = MB_TYPE_BIT, .scale = 1 } };
	struct mb_bus *bus = mb_bus_new(&bc);
	struct mb_values v;
	/* Several units on one serial line, one after the other. */
	for (int k = 0; k < 3; k++) {
		mb_read_instrument(bus, &i2.modbus, &v);
		if (!v.ok)
			fail_msg("rtu unit 2: %s", v.error);
		assert_true(v.run_raw == 987654);
		mb_read_instrument(bus, &i3.modbus, &v);
		if (!v.ok)
			fail_msg("rtu unit 3: %s", v.error);
		assert_true(v.in_use);
	}
	/* A unit nobody answers for times out, and the line still works after it. */
	struct instrument_cfg i9 = i2;
	i9.modbus.unit = 9;
	mb_read_instrument(bus, &i9.modbus, &v);
	assert_false(v.ok);
	mb_read_instrument(bus, &i2.modbus, &v);
	assert_true(v.ok);
	mb_bus_free(bus);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_table),
		cmocka_unit_test_setup_teardown(test_read_every_table_and_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exception_and_unserved_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_replies_never_swap_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_protocol_id_is_a_failed_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_events_from_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_instrument_does_not_stall_bus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_reboot_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lone_zero_is_a_glitch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downtime_spread_as_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wall_clock_step_does_not_stall_polling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtu_over_pty, rtu_setup, rtu_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
