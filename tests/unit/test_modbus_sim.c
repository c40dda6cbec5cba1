/* test_modbus_sim.c — the Modbus simulator (build/modbus-sim) checked from outside: a real
 * process driven over its stdin/stdout, read by libmodbus TCP clients, raw TCP sockets and raw
 * RTU frames over a pseudo-terminal. Waits have deadlines; nothing sleeps to "give it time". */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <modbus/modbus.h>   /* libmodbus; a bare <modbus.h> finds drivers/modbus.h first */

#include "../lib/harness.h"

#include "test_modbus_sim_env.h"

/* ---- tests: values ---------------------------------------------------------------------- */

static void test_set_then_read_every_type(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 0 u16 big 4660");
	CMD_OK(f, "set 0 1 holding 1 u32 big 305419896");          /* 0x12345678 */
	CMD_OK(f, "set 0 1 holding 3 u32 little 0x12345678");
	CMD_OK(f, "set 0 1 holding 5 i32 big -2");
	CMD_OK(f, "set 0 1 holding 7 u64 big 0x0102030405060708");
	CMD_OK(f, "set 0 1 holding 11 u64 little 0x0102030405060708");
	CMD_OK(f, "set 0 1 holding 15 f32 big 1.5");
	CMD_OK(f, "set 0 1 holding 17 f32 little -2.25");
	CMD_OK(f, "set 0 2 input 40 u32 big 70000");
	CMD_OK(f, "set 0 2 input 42 i32 little -70000");

	modbus_t *m = client(f, 0, 1, 1000);
	uint16_t r[19];
	assert_int_equal(modbus_read_registers(m, 0, 19, r), 19);
	static const uint16_t want[19] = { 0x1234, 0x1234, 0x5678, 0x5678, 0x1234, 0xFFFF, 0xFFFE,
					   0x0102, 0x0304, 0x0506, 0x0708, 0x0708, 0x0506, 0x0304, 0x0102,
					   0x3FC0, 0x0000, 0x0000, 0xC010 };
	for (int i = 0; i < 19; i++) {
		if (r[i] != want[i])
			fprintf(stderr, "register %d: 0x%04x, want 0x%04x\n", i, r[i], want[i]);
		assert_int_equal(r[i], want[i]);
	}
	assert_true(modbus_get_float_abcd(&r[15]) == 1.5f);

	/* another unit's image is its own */
	assert_int_equal(modbus_set_slave(m, 2), 0);
	assert_int_equal(modbus_read_registers(m, 0, 2, r), 2);
	assert_int_equal(r[0], 0);
	assert_int_equal(r[1], 0);
	assert_int_equal(modbus_read_input_registers(m, 40, 4, r), 4);
	assert_int_equal(r[0], 0x0001);   /* 70000 = 0x00011170 */
	assert_int_equal(r[1], 0x1170);
	assert_int_equal(r[2], 0xEE90);   /* -70000 = 0xFFFEEE90, low word first */
	assert_int_equal(r[3], 0xFFFE);
	client_free(m);

	CMD_IS(f, "4660", "get 0 1 holding 0 u16 big");
	CMD_IS(f, "1450709556", "get 0 1 holding 1 u32 little");   /* 0x56781234 */
	CMD_IS(f, "-2", "get 0 1 holding 5 i32 big");
	CMD_IS(f, "72623859790382856", "get 0 1 holding 7 u64 big");
	CMD_IS(f, "1.5", "get 0 1 holding 15 f32 big");
	CMD_IS(f, "-2.25", "get 0 1 holding 17 f32 little");
	CMD_IS(f, "-70000", "get 0 2 input 42 i32 little");
}

static void test_coils_discretes_and_client_writes(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 3 coil 5 bit big 1");
	CMD_OK(f, "set 0 3 discrete 9 bit little 1");
	CMD_OK(f, "set 0 * coil 12 bit big 1");   /* every unit of endpoint 0 */

	modbus_t *m = client(f, 0, 3, 1000);
	uint8_t bits[16];
	assert_int_equal(modbus_read_bits(m, 0, 16, bits), 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(bits[i], i == 5 || i == 12);
	assert_int_equal(modbus_read_input_bits(m, 0, 16, bits), 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(bits[i], i == 9);

	/* what a client writes is what the control side reads */
	assert_int_equal(modbus_write_bit(m, 6, 1), 1);
	assert_int_equal(modbus_write_register(m, 20, 777), 1);
	const uint16_t two[2] = { 0x0001, 0x0002 };
	assert_int_equal(modbus_write_registers(m, 30, 2, two), 2);
	client_free(m);
	CMD_IS(f, "1", "get 0 3 coil 6 bit big");
	CMD_IS(f, "777", "get 0 3 holding 20 u16 big");
	CMD_IS(f, "65538", "get 0 3 holding 30 u32 big");
	CMD_IS(f, "1", "get 0 5 coil 12 bit big");
	CMD_IS(f, "0", "get 0 5 coil 5 bit big");
}

static void test_add_wraps_like_a_counter(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 0 u16 big 65535");
	CMD_OK(f, "add 0 1 holding 0 u16 big 2");
	CMD_IS(f, "1", "get 0 1 holding 0 u16 big");
	CMD_OK(f, "set 0 1 holding 2 u32 little 4294967295");
	CMD_OK(f, "add 0 1 holding 2 u32 little 1");
	CMD_IS(f, "0", "get 0 1 holding 2 u32 little");
	CMD_OK(f, "add 0 1 holding 2 u32 little -1");
	CMD_IS(f, "4294967295", "get 0 1 holding 2 u32 little");
	CMD_OK(f, "set 0 1 holding 4 u64 big 18446744073709551615");
	CMD_OK(f, "add 0 1 holding 4 u64 big 3");
	CMD_IS(f, "2", "get 0 1 holding 4 u64 big");
	CMD_OK(f, "set 0 1 holding 8 i32 big 2147483647");
	CMD_OK(f, "add 0 1 holding 8 i32 big 1");
	CMD_IS(f, "-2147483648", "get 0 1 holding 8 i32 big");
	CMD_OK(f, "set 0 1 input 0 f32 big 1.5");
	CMD_OK(f, "add 0 1 input 0 f32 big 0.25");
	CMD_IS(f, "1.75", "get 0 1 input 0 f32 big");

	modbus_t *m = client(f, 0, 1, 1000);
	uint16_t r[4];
	assert_int_equal(modbus_read_registers(m, 0, 4, r), 4);
	assert_int_equal(r[0], 1);
	assert_int_equal(r[2], 0xFFFF);
	assert_int_equal(r[3], 0xFFFF);
	client_free(m);
}

static void test_auto_advances_in_real_time(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	/* A runs at 1000/s and serves as the clock; B and C have fractional rates that rounding
	 * or per-tick truncation would get wrong: 0.9/s would never move, 9.9/s would give 9 or 10 */
	CMD_OK(f, "auto 0 1 input 0 u32 big 1000");
	CMD_OK(f, "auto 0 1 input 2 u32 big 0.9");
	CMD_OK(f, "auto 0 1 input 4 u32 big 9.9");
	/* B and C started up to a0 ms after A (each command is a round trip) */
	char *r0 = cmd(f, "get 0 1 input 0 u32 big");
	double a0 = strtod(r0, NULL);
	free(r0);

	struct autowait w = { .m = client(f, 0, 1, 1000), .at_least = 1200 };
	assert_true(h_wait_for(counters_reached, &w, 5000));
	uint32_t a = u32_big(w.r), b = u32_big(w.r + 2), c = u32_big(w.r + 4);
	/* A = floor(1000 t): A's time is within [a, a+1) ms, B's and C's within (a-a0-1, a+1) ms */
	double t_lo = (a - a0 - 1) / 1000.0, t_hi = (a + 1) / 1000.0;
	uint32_t b_lo = (uint32_t)floor(0.9 * t_lo), b_hi = (uint32_t)floor(0.9 * t_hi);
	uint32_t c_lo = (uint32_t)floor(9.9 * t_lo), c_hi = (uint32_t)floor(9.9 * t_hi);
	if (c < c_lo || c > c_hi || b < b_lo || b > b_hi)
		fprintf(stderr, "A %u (at start %.0f), B %u (want %u..%u), C %u (want %u..%u)\n",
			a, a0, b, b_lo, b_hi, c, c_lo, c_hi);
	assert_true(b >= b_lo && b <= b_hi && b >= 1);
	assert_true(c >= c_lo && c <= c_hi);

	/* rate 0 stops C where it is, while A keeps going */
	CMD_OK(f, "auto 0 1 input 4 u32 big 0");
	assert_true(modbus_read_input_registers(w.m, 0, 6, w.r) == 6);
	uint32_t stopped = u32_big(w.r + 4);
	w.at_least = u32_big(w.r) + 300;
	assert_true(h_wait_for(counters_reached, &w, 5000));
	assert_int_equal(u32_big(w.r + 4), stopped);
	client_free(w.m);

	/* it advances with no Modbus request at all: `get` sees it too */
	CMD_OK(f, "auto 0 2 holding 10 u16 little 2000");
	long long deadline = now_ms() + 5000;
	long v = 0;
	while (v < 100 && now_ms() < deadline) {
		char *r = cmd(f, "get 0 2 holding 10 u16 little");
		v = strtol(r, NULL, 10);
		free(r);
	}
	assert_true(v >= 100);
}

/* ---- tests: faults ------------------------------------------------------------------------ */

static void test_delay_holds_one_unit_only(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 0 u16 big 11");
	CMD_OK(f, "set 0 2 holding 0 u16 big 22");
	CMD_OK(f, "delay 0 1 400");

	/* on one connection: unit 1 asked first, unit 2 second; unit 2's answer comes first */
	int fd = raw_connect(f->port[0]);
	long long t0 = now_ms();
	raw_request(fd, 1, 1, 3, 0, 1);
	raw_request(fd, 2, 2, 3, 0, 1);
	uint8_t b[64];
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	long long t_fast = now_ms() - t0;
	assert_int_equal(b[1], 2);
	assert_int_equal(b[10], 22);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	long long t_slow = now_ms() - t0;
	assert_int_equal(b[1], 1);
	assert_int_equal(b[10], 11);
	close(fd);
	if (t_fast >= 200 || t_slow < 400)
		fprintf(stderr, "fast %lld ms, slow %lld ms\n", t_fast, t_slow);
	assert_true(t_fast < 200);
	assert_true(t_slow >= 400);

	/* a library client waits the delay out */
	modbus_t *m = client(f, 0, 1, 2000);
	uint16_t r;
	t0 = now_ms();
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	assert_true(now_ms() - t0 >= 400);
	assert_int_equal(r, 11);
	CMD_OK(f, "delay 0 1 0");
	t0 = now_ms();
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	assert_true(now_ms() - t0 < 200);
	client_free(m);
}

static void test_silence_times_out(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "silence 0 1 on");
	modbus_t *m = client(f, 0, 1, 300);
	uint16_t r;
	errno = 0;
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), -1);
	assert_int_equal(errno, ETIMEDOUT);
	/* the others on the endpoint answer */
	assert_int_equal(modbus_set_slave(m, 2), 0);
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	CMD_OK(f, "silence 0 1 off");
	assert_int_equal(modbus_set_slave(m, 1), 0);
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	client_free(m);
}

static void test_exceptions(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	modbus_t *m = client(f, 0, 1, 1000);
	uint16_t r[4];
	static const struct {
		const char *code;
		int err;
	} cases[] = { { "2", EMBXILADD }, { "4", EMBXSFAIL }, { "6", EMBXSBUSY }, { "11", EMBXGTAR } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CMD_OK(f, "exception 0 1 %s", cases[i].code);
		errno = 0;
		assert_int_equal(modbus_read_registers(m, 0, 1, r), -1);
		assert_int_equal(errno, cases[i].err);
	}
	CMD_OK(f, "exception 0 1 off");
	assert_int_equal(modbus_read_registers(m, 0, 1, r), 1);

	/* the image is 64 registers: one past its end is an illegal address, as a device says */
	assert_int_equal(modbus_read_registers(m, 62, 2, r), 2);
	errno = 0;
	assert_int_equal(modbus_read_registers(m, 63, 2, r), -1);
	assert_int_equal(errno, EMBXILADD);
	errno = 0;
	assert_int_equal(modbus_write_bit(m, 64, 1), -1);
	assert_int_equal(errno, EMBXILADD);
	client_free(m);

	/* a function the image has no answer for */
	int fd = raw_connect(f->port[0]);
	uint8_t b[32];
	raw_request(fd, 7, 1, 0x41, 0, 1);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 9);
	assert_int_equal(b[7], 0xC1);
	assert_int_equal(b[8], MODBUS_EXCEPTION_ILLEGAL_FUNCTION);
	close(fd);
}

static void test_wrongunit_and_short_replies(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 2 holding 0 u16 big 515");
	CMD_OK(f, "wrongunit 0 2 on");
	CMD_OK(f, "short 0 3 on");
	int fd = raw_connect(f->port[0]);
	uint8_t b[64];
	raw_request(fd, 5, 2, 3, 0, 1);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[1], 5);
	assert_int_not_equal(b[6], 2);   /* another unit's id */
	assert_int_equal(b[9] << 8 | b[10], 515);

	/* two registers: 13 bytes by the header; 10 come, and then nothing */
	raw_request(fd, 6, 3, 3, 0, 2);
	assert_int_equal(fd_read(fd, b, 10, 2000), 10);
	assert_int_equal(6 + (b[4] << 8 | b[5]), 13);
	assert_int_equal(fd_read(fd, b + 10, 3, 300), 0);
	close(fd);

	CMD_OK(f, "wrongunit 0 2 off");
	CMD_OK(f, "short 0 3 off");
	modbus_t *m = client(f, 0, 3, 1000);
	uint16_t r[2];
	assert_int_equal(modbus_read_registers(m, 0, 2, r), 2);
	client_free(m);
}

/* A gateway that answers twice, replays an older reply, or garbles the protocol id: the bytes
 * a client sees, transaction ids included. */
static void test_twice_stale_and_badproto_replies(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 0 u16 big 11");
	CMD_OK(f, "set 0 1 holding 1 u16 big 22");
	int fd = raw_connect(f->port[0]);
	uint8_t b[64];

	CMD_OK(f, "twice 0 1 on");
	raw_request(fd, 1, 1, 3, 0, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
		assert_int_equal(b[0] << 8 | b[1], 1);
		assert_int_equal(b[9] << 8 | b[10], 11);
	}
	CMD_OK(f, "twice 0 1 off");

	/* the previous reply (transaction 1, register 0) comes again before this one's */
	CMD_OK(f, "stale 0 1 on");
	raw_request(fd, 2, 1, 3, 1, 1);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[0] << 8 | b[1], 1);
	assert_int_equal(b[9] << 8 | b[10], 11);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[0] << 8 | b[1], 2);
	assert_int_equal(b[9] << 8 | b[10], 22);
	CMD_OK(f, "stale 0 1 off");

	CMD_OK(f, "badproto 0 1 on");
	raw_request(fd, 3, 1, 3, 0, 1);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[0] << 8 | b[1], 3);
	assert_int_equal(b[2] << 8 | b[3], 1);
	assert_int_equal(b[9] << 8 | b[10], 11);
	CMD_OK(f, "badproto 0 1 off");
	close(fd);

	/* a connection's first reply has nothing before it: a copy with the id one lower */
	CMD_OK(f, "stale 0 1 on");
	fd = raw_connect(f->port[0]);
	raw_request(fd, 9, 1, 3, 1, 1);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[0] << 8 | b[1], 8);
	assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
	assert_int_equal(b[0] << 8 | b[1], 9);
	assert_int_equal(b[9] << 8 | b[10], 22);
	close(fd);

	/* both connections were counted, though neither is open any more */
	CMD_IS(f, "2", "accepted 0");
	CMD_IS(f, "0", "accepted 1");
	CMD_OK(f, "reset-stats");
	CMD_IS(f, "0", "accepted 0");
	char *r = cmd(f, "stale 0 1 maybe");
	assert_true(strncmp(r, "error: ", 7) == 0);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_set_then_read_every_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coils_discretes_and_client_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_wraps_like_a_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_advances_in_real_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_holds_one_unit_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silence_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exceptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrongunit_and_short_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_twice_stale_and_badproto_replies, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("modbus_sim", tests, NULL, NULL);
}
