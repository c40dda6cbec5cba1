/* test_modbus_sim_conn.c — the Modbus simulator's connections and endpoints (drop, close and
 * open, two endpoints, many clients, IPv6), RTU over a pseudo-terminal, and its control
 * commands, script, signals and command line: a real process, checked from outside. */
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

/* ---- tests: connections and endpoints ------------------------------------------------------ */

static void test_drop_closes_connections(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	modbus_t *m = client(f, 0, 1, 1000), *other = client(f, 1, 1, 1000);
	uint16_t r;
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	assert_int_equal(modbus_read_registers(other, 0, 1, &r), 1);
	CMD_IS(f, "1", "clients 0");
	CMD_OK(f, "drop 0");
	CMD_IS(f, "0", "clients 0");
	CMD_IS(f, "1", "clients 1");
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), -1);
	/* endpoint 1 kept its client */
	assert_int_equal(modbus_read_registers(other, 0, 1, &r), 1);
	/* and endpoint 0 still accepts */
	modbus_close(m);
	assert_int_equal(modbus_connect(m), 0);
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	client_free(m);
	client_free(other);
	char *r9 = cmd(f, "drop 9");
	assert_true(strncmp(r9, "error: no endpoint", 18) == 0);
	free(r9);
}

static void test_close_and_open_same_port(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 3 u16 big 4242");
	modbus_t *m = client(f, 0, 1, 1000);
	uint16_t r;
	assert_int_equal(modbus_read_registers(m, 3, 1, &r), 1);
	CMD_OK(f, "close 0");
	assert_int_equal(modbus_read_registers(m, 3, 1, &r), -1);
	modbus_close(m);
	errno = 0;
	assert_int_equal(modbus_connect(m), -1);
	assert_int_equal(errno, ECONNREFUSED);

	CMD_OK(f, "open 0");
	char *ports = cmd(f, "ports");
	char want[32];
	snprintf(want, sizeof(want), "%d %d", f->port[0], f->port[1]);
	assert_string_equal(ports, want);
	free(ports);
	assert_int_equal(modbus_connect(m), 0);
	assert_int_equal(modbus_read_registers(m, 3, 1, &r), 1);
	assert_int_equal(r, 4242);   /* the gateway rebooted; the instruments didn't */
	client_free(m);
	char *again = cmd(f, "open 0");
	assert_true(strncmp(again, "error: ", 7) == 0);
	free(again);
}

static void test_two_endpoints_and_unserved_units(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_OK(f, "set 0 1 holding 0 u16 big 111");
	CMD_OK(f, "set 1 1 holding 0 u16 big 222");
	CMD_OK(f, "set 1 7 holding 0 u16 big 777");
	assert_int_not_equal(f->port[0], f->port[1]);
	modbus_t *a = client(f, 0, 1, 1000), *b = client(f, 1, 1, 1000);
	uint16_t r;
	assert_int_equal(modbus_read_registers(a, 0, 1, &r), 1);
	assert_int_equal(r, 111);
	assert_int_equal(modbus_read_registers(b, 0, 1, &r), 1);
	assert_int_equal(r, 222);
	assert_int_equal(modbus_set_slave(b, 7), 0);
	assert_int_equal(modbus_read_registers(b, 0, 1, &r), 1);
	assert_int_equal(r, 777);
	/* unit 7 lives behind endpoint 1 only: endpoint 0, a gateway, says its target is gone */
	assert_int_equal(modbus_set_slave(a, 7), 0);
	errno = 0;
	assert_int_equal(modbus_read_registers(a, 0, 1, &r), -1);
	assert_int_equal(errno, EMBXGTAR);
	client_free(a);
	client_free(b);
	CMD_IS(f, "error: unit 7 is not served by endpoint 0", "get 0 7 holding 0 u16 big");
}

static void test_stats_and_reset(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	CMD_IS(f, "{\"requests\":0,\"unserved\":0,\"endpoints\":{}}", "stats");
	modbus_t *a = client(f, 0, 1, 1000), *b = client(f, 1, 7, 1000);
	uint16_t r;
	for (int i = 0; i < 3; i++)
		assert_int_equal(modbus_read_registers(a, 0, 1, &r), 1);
	assert_int_equal(modbus_set_slave(a, 2), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(modbus_read_registers(a, 0, 1, &r), 1);
	assert_int_equal(modbus_set_slave(a, 9), 0);
	assert_int_equal(modbus_read_registers(a, 0, 1, &r), -1);
	assert_int_equal(modbus_read_registers(b, 0, 1, &r), 1);
	client_free(a);
	client_free(b);
	CMD_IS(f, "{\"requests\":6,\"unserved\":1,\"endpoints\":{"
		  "\"0\":{\"requests\":5,\"unserved\":1,\"units\":{\"1\":3,\"2\":2}},"
		  "\"1\":{\"requests\":1,\"units\":{\"7\":1}}}}", "stats");
	CMD_OK(f, "reset-stats");
	CMD_IS(f, "{\"requests\":0,\"unserved\":0,\"endpoints\":{}}", "stats");
}

/* A client that sent half a header, and one that pipelines, must not hold up anyone. */
static void test_many_clients_and_a_stalled_one(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	int stalled = raw_connect(f->port[0]);
	const uint8_t half[3] = { 0, 1, 0 };
	raw_send(stalled, half, sizeof(half));

	enum { N = 100 };
	modbus_t *m[N];
	for (int i = 0; i < N; i++)
		m[i] = client(f, 0, 1 + i % 5, 1000);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < N; i++) {
			uint16_t r;
			assert_int_equal(modbus_read_registers(m[i], 0, 1, &r), 1);
		}
	for (int i = 0; i < N; i++)
		client_free(m[i]);

	/* 50 requests in one write: 50 replies, in order */
	int fd = raw_connect(f->port[1]);
	uint8_t batch[50 * 12];
	for (int i = 0; i < 50; i++)
		put_request(batch + 12 * i, (uint16_t)(100 + i), 1, 3, (uint16_t)i, 1);
	raw_send(fd, batch, sizeof(batch));
	for (int i = 0; i < 50; i++) {
		uint8_t b[32];
		assert_int_equal(raw_reply(fd, b, sizeof(b), 2000), 11);
		assert_int_equal(b[0] << 8 | b[1], 100 + i);
	}
	close(fd);
	close(stalled);
	CMD_IS(f, "ok", "ping");
}

static void test_ipv6_endpoint(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--tcp", "[::1]:0", "--units", "1", NULL };
	if (!sim_try_start(f, args, true)) {
		skip();   /* no IPv6 loopback on this machine */
		return;
	}
	CMD_OK(f, "set 0 1 holding 0 u16 big 6");
	char port[16];
	snprintf(port, sizeof(port), "%d", f->port[0]);
	modbus_t *m = modbus_new_tcp_pi("::1", port);
	assert_non_null(m);
	assert_int_equal(modbus_set_slave(m, 1), 0);
	assert_int_equal(modbus_connect(m), 0);
	uint16_t r;
	assert_int_equal(modbus_read_registers(m, 0, 1, &r), 1);
	assert_int_equal(r, 6);
	client_free(m);
}

/* ---- tests: RTU over a pseudo-terminal ------------------------------------------------------ */

static uint16_t crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

/* Frame: the bytes given plus their CRC, low byte first. */
static size_t rtu_frame(uint8_t *out, const uint8_t *body, size_t n)
{
	memcpy(out, body, n);
	uint16_t crc = crc16(body, n);
	out[n] = (uint8_t)(crc & 0xFF);
	out[n + 1] = (uint8_t)(crc >> 8);
	return n + 2;
}

static void pty_write(int fd, const uint8_t *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static bool crc_ok(const uint8_t *b, size_t n)
{
	if (n < 4)
		return false;
	uint16_t crc = crc16(b, n - 2);
	return b[n - 2] == (crc & 0xFF) && b[n - 1] == (crc >> 8);
}

/* The simulator opens the slave side by its name, as it would /dev/ttyUSB0; the test speaks
 * raw RTU frames on the master side (libmodbus's RTU client needs a device path, which a
 * pty master hasn't). The test keeps its own slave fd open so the master never sees a hang-up. */
static void test_rtu_over_pty(void **state)
{
	struct fx *f = *state;
	int master, slave;
	char name[256];
	struct termios raw;
	memset(&raw, 0, sizeof(raw));
	cfmakeraw(&raw);
	cfsetspeed(&raw, B19200);
	assert_int_equal(openpty(&master, &slave, name, &raw, NULL), 0);
	char *rtu = h_strdupf("%s?baud=19200&parity=E&data=8&stop=1", name);
	const char *const args[] = { "--rtu", rtu, "--units", "1-3", "--tcp", "127.0.0.1:0", "--units", "1", NULL };
	sim_start(f, args);
	free(rtu);
	assert_int_equal(f->nports, 2);
	assert_int_equal(f->port[0], 0);
	CMD_OK(f, "set 0 2 holding 4 u32 big 0xCAFEBABE");

	uint8_t req[32], rsp[64];
	size_t n = rtu_frame(req, (const uint8_t[]){ 2, 3, 0, 4, 0, 2 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 9, 2000), 9);
	assert_true(crc_ok(rsp, 9));
	const uint8_t want[7] = { 2, 3, 4, 0xCA, 0xFE, 0xBA, 0xBE };
	assert_memory_equal(rsp, want, sizeof(want));

	/* a unit that isn't on the line: the line stays quiet, as a real bus does */
	n = rtu_frame(req, (const uint8_t[]){ 9, 3, 0, 0, 0, 1 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 1, 300), 0);

	/* a corrupted frame is ignored and the next good one answered */
	n = rtu_frame(req, (const uint8_t[]){ 1, 3, 0, 0, 0, 1 }, 6);
	req[n - 1] ^= 0x55;
	pty_write(master, req, n);
	n = rtu_frame(req, (const uint8_t[]){ 1, 3, 0, 0, 0, 1 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 7, 2000), 7);
	assert_true(crc_ok(rsp, 7));
	assert_int_equal(rsp[0], 1);

	/* write multiple registers, then the control side reads them */
	n = rtu_frame(req, (const uint8_t[]){ 3, 0x10, 0, 10, 0, 2, 4, 0, 1, 0, 2 }, 11);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 8, 2000), 8);
	assert_true(crc_ok(rsp, 8));
	assert_memory_equal(rsp, ((const uint8_t[]){ 3, 0x10, 0, 10, 0, 2 }), 6);
	CMD_IS(f, "65538", "get 0 3 holding 10 u32 big");

	/* a broadcast write reaches every unit and gets no answer */
	n = rtu_frame(req, (const uint8_t[]){ 0, 6, 0, 20, 0x12, 0x34 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 1, 300), 0);
	CMD_IS(f, "4660", "get 0 1 holding 20 u16 big");
	CMD_IS(f, "4660", "get 0 3 holding 20 u16 big");

	/* a wrong unit id comes with a correct CRC; an exception as RTU frames it */
	CMD_OK(f, "wrongunit 0 1 on");
	CMD_OK(f, "exception 0 2 2");
	n = rtu_frame(req, (const uint8_t[]){ 1, 3, 0, 0, 0, 1 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 7, 2000), 7);
	assert_true(crc_ok(rsp, 7));
	assert_int_not_equal(rsp[0], 1);
	n = rtu_frame(req, (const uint8_t[]){ 2, 3, 0, 0, 0, 1 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 5, 2000), 5);
	assert_true(crc_ok(rsp, 5));
	assert_memory_equal(rsp, ((const uint8_t[]){ 2, 0x83, 2 }), 3);

	/* short: the CRC never arrives whole */
	CMD_OK(f, "short 0 3 on");
	n = rtu_frame(req, (const uint8_t[]){ 3, 3, 0, 0, 0, 1 }, 6);
	pty_write(master, req, n);
	assert_int_equal(fd_read(master, rsp, 4, 2000), 4);
	assert_int_equal(fd_read(master, rsp + 4, 3, 300), 0);
	assert_int_equal(rsp[0], 3);

	/* a serial line has no transaction ids to get wrong */
	char *mbap = cmd(f, "stale 0 1 on");
	assert_true(strncmp(mbap, "error: ", 7) == 0);
	free(mbap);

	char *stats = cmd(f, "stats");
	assert_non_null(strstr(stats, "\"0\":{\"requests\":"));
	assert_non_null(strstr(stats, "\"unserved\":1"));
	free(stats);
	close(master);
	close(slave);
}

/* ---- tests: control, command line, lifecycle ----------------------------------------------- */

static void test_control_errors_one_line_each(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	static const char *const bad[] = {
		"set 9 1 holding 0 u16 big 1",      /* no such endpoint */
		"set 0 9 holding 0 u16 big 1",      /* unit not served */
		"set 0 1 holdin 0 u16 big 1",
		"set 0 1 holding 64 u16 big 1",     /* beyond the 64-register image */
		"set 0 1 holding 63 u32 big 1",     /* its second word would be beyond */
		"set 0 1 holding 0 u16 big 65536",
		"set 0 1 holding 0 i32 big 2147483648",
		"set 0 1 holding 0 u16 big -1",
		"set 0 1 holding 0 u16 big 12abc",
		"set 0 1 coil 0 u16 big 1",
		"set 0 1 holding 0 bit big 1",
		"set 0 1 holding 0 u16 middle 1",
		"set 0 1 holding 0 u16 big",
		"get 0 * holding 0 u16 big",
		"add 0 1 coil 0 bit big 1",
		"add 0 1 holding 0 u16 big x",
		"auto 0 1 holding 0 u16 big fast",
		"delay 0 1 -5",
		"exception 0 1 0",
		"silence 0 1 maybe",
		"drop 7",
		"open 1",                           /* already listening */
		"frobnicate",
		"stats now",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *r = cmd(f, "%s", bad[i]);
		if (strncmp(r, "error: ", 7) != 0)
			fprintf(stderr, "'%s' -> '%s'\n", bad[i], r);
		assert_true(strncmp(r, "error: ", 7) == 0);
		free(r);
	}
	/* a line longer than the simulator takes gets one error, not one per chunk */
	char *huge = malloc(10001);
	assert_non_null(huge);
	memset(huge, 'x', 10000);
	huge[10000] = '\0';
	char *r = cmd(f, "set 0 1 holding 0 u16 big %s", huge);
	assert_string_equal(r, "error: line too long");
	free(r);
	free(huge);
	/* exactly one line each: the next reply is this command's */
	CMD_IS(f, "ok", "ping");
	CMD_IS(f, "ok", "quit");
	assert_int_equal(h_wait(f->p, 5000), 0);
}

static void test_script_runs_before_ports_and_stdin_eof_keeps_serving(void **state)
{
	struct fx *f = *state;
	char *script = h_path(f->dir, "setup.txt");
	assert_int_equal(h_write_file(script,
				      "# demo instruments\n"
				      "set 0 1 holding 0 u32 big 123456\n"
				      "\n"
				      "auto 0 * input 0 u32 big 1000\n", (size_t)-1, 0644), 0);
	const char *const args[] = { "--tcp", "127.0.0.1:0", "--units", "1-2", "--script", script, NULL };
	assert_true(sim_try_start(f, args, false));   /* stdin is /dev/null: at EOF at once */
	modbus_t *m = client(f, 0, 1, 1000);
	uint16_t r[2];
	assert_int_equal(modbus_read_registers(m, 0, 2, r), 2);
	assert_int_equal(u32_big(r), 123456);
	struct autowait w = { .m = m, .at_least = 50 };
	assert_true(h_wait_for(counters_reached, &w, 5000));
	client_free(m);
	assert_int_equal(h_wait(f->p, 0), -1);   /* still running */
	char *log = h_read_file(f->log, NULL);
	assert_non_null(strstr(log, "setup.txt:2: set 0 1 holding 0 u32 big 123456: ok"));
	free(log);
	assert_int_equal(h_stop(f->p, 5000), 0);

	/* a script error stops the start: no half-set-up demo */
	h_proc_free(f->p);
	f->p = NULL;
	assert_int_equal(h_write_file(script, "set 0 1 holding 0 u32 big many\n", (size_t)-1, 0644), 0);
	assert_false(sim_try_start(f, args, false));
	assert_int_equal(h_wait(f->p, 5000), 1);
	log = h_read_file(f->log, NULL);
	assert_non_null(strstr(log, "setup.txt:1:"));
	free(log);
	free(script);
}

static void test_signals_exit_zero(void **state)
{
	struct fx *f = *state;
	sim_start_default(f);
	assert_int_equal(h_stop(f->p, 5000), 0);   /* SIGTERM */
	h_proc_free(f->p);
	f->p = NULL;
	sim_start_default(f);
	assert_int_equal(h_kill(f->p, SIGINT), 0);
	assert_int_equal(h_wait(f->p, 5000), 0);
}

static void test_bad_command_lines(void **state)
{
	(void)state;
	static const char *const cases[][6] = {
		{ "--tcp", "127.0.0.1", "--units", "1", NULL },          /* no port */
		{ "--tcp", "127.0.0.1:0", NULL },                         /* no units */
		{ "--units", "1", "--tcp", "127.0.0.1:0", NULL },         /* units before an endpoint */
		{ "--tcp", "127.0.0.1:0", "--units", "256", NULL },
		{ "--tcp", "127.0.0.1:0", "--units", "5-2", NULL },
		{ "--rtu", "/dev/null?baud=fast", "--units", "1", NULL },
		{ "--rtu", "/dev/ttyS0", "--units", "0", NULL },          /* 0 is broadcast on a line */
		{ "--tcp", "127.0.0.1:0", "--units", "1", "--regs", "0" },
		{ "--frob", "1", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[8];
		size_t n = 0;
		argv[n++] = strdup(h_build_path("modbus-sim"));
		for (size_t j = 0; j < 6 && cases[i][j]; j++)
			argv[n++] = strdup(cases[i][j]);
		argv[n] = NULL;
		char *out = NULL, *err = NULL;
		int rc = h_run(argv, NULL, &out, &err, 5000);
		if (rc != 64)
			fprintf(stderr, "case %zu: exit %d, stderr '%s'\n", i, rc, err);
		assert_int_equal(rc, 64);
		assert_true(strncmp(err, "modbus-sim: ", 12) == 0);
		free(out);
		free(err);
		for (size_t j = 0; j < n; j++)
			free(argv[j]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_drop_closes_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_and_open_same_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_endpoints_and_unserved_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_clients_and_a_stalled_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtu_over_pty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_errors_one_line_each, setup, teardown),
		cmocka_unit_test_setup_teardown(test_script_runs_before_ports_and_stdin_eof_keeps_serving,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals_exit_zero, setup, teardown),
		cmocka_unit_test(test_bad_command_lines),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("modbus_sim_conn", tests, NULL, NULL);
}
