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

#define REPLY_MS 3000

struct fx {
	char *dir;
	char *port_file;
	char *log;
	struct h_proc *p;
	int port[8];
	int nports;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = h_mkdtemp("modbus-sim");
	assert_non_null(f->dir);
	f->port_file = h_path(f->dir, "ports");
	f->log = h_path(f->dir, "sim.log");
	*state = f;
	return 0;
}

static void dump_log(const struct fx *f)
{
	char *log = h_read_file(f->log, NULL);
	if (log && *log)
		fprintf(stderr, "--- simulator log:\n%s---\n", log);
	free(log);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_proc_free(f->p);
	h_rmtree(f->dir);
	free(f->dir);
	free(f->port_file);
	free(f->log);
	free(f);
	return 0;
}

static void read_ports(struct fx *f)
{
	char *text = h_read_file(f->port_file, NULL);
	assert_non_null(text);
	assert_non_null(strchr(text, '\n'));   /* renamed into place whole */
	char *p = text, *end;
	f->nports = 0;
	for (;;) {
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		assert_true(v >= 0 && v <= 65535 && f->nports < 8);
		f->port[f->nports++] = (int)v;
		p = end;
	}
	free(text);
}

static bool started_or_exited(void *arg)
{
	struct fx *f = arg;
	struct stat st;
	return (stat(f->port_file, &st) == 0 && st.st_size > 0) || h_wait(f->p, 0) >= 0;
}

/* Starts the simulator with args (NULL-terminated) plus --port-file; control over pipes unless
 * piped is false (then stdin is /dev/null). Returns false when it exited instead of listening. */
static bool sim_try_start(struct fx *f, const char *const *args, bool piped)
{
	char *argv[48];
	size_t n = 0;
	argv[n++] = strdup(h_build_path("modbus-sim"));
	for (size_t i = 0; args[i]; i++) {
		assert_true(n < 44);
		argv[n++] = strdup(args[i]);
	}
	argv[n++] = strdup("--port-file");
	argv[n++] = strdup(f->port_file);
	argv[n] = NULL;
	unlink(f->port_file);
	f->p = h_spawn(argv, NULL, piped, piped, f->log);
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	assert_non_null(f->p);
	bool up = h_wait_for(started_or_exited, f, 5000) && h_wait(f->p, 0) < 0;
	if (!up)
		return false;
	read_ports(f);
	return true;
}

static void sim_start(struct fx *f, const char *const *args)
{
	bool up = sim_try_start(f, args, true);
	if (!up)
		dump_log(f);
	assert_true(up);
}

/* Two TCP endpoints, small images so "beyond the image" is easy to reach. */
static void sim_start_default(struct fx *f)
{
	static const char *const args[] = { "--tcp", "127.0.0.1:0", "--units", "1-5",
					    "--tcp", "127.0.0.1:0", "--units", "1-3,7",
					    "--regs", "64", NULL };
	sim_start(f, args);
	assert_int_equal(f->nports, 2);
}

static char *cmd(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *cmd(struct fx *f, const char *fmt, ...)
{
	char *line = NULL;
	va_list ap;
	va_start(ap, fmt);
	assert_true(vasprintf(&line, fmt, ap) >= 0);
	va_end(ap);
	char *reply = h_request(f->p, line, REPLY_MS);
	if (!reply) {
		fprintf(stderr, "no reply to '%s'\n", line);
		dump_log(f);
	}
	free(line);
	assert_non_null(reply);
	return reply;
}

#define CMD_IS(f, expect, ...)                          \
	do {                                            \
		char *r_ = cmd((f), __VA_ARGS__);       \
		assert_string_equal(r_, (expect));      \
		free(r_);                               \
	} while (0)

#define CMD_OK(f, ...) CMD_IS(f, "ok", __VA_ARGS__)

static modbus_t *client(const struct fx *f, int ep, int unit, int timeout_ms)
{
	modbus_t *m = modbus_new_tcp("127.0.0.1", f->port[ep]);
	assert_non_null(m);
	assert_int_equal(modbus_set_slave(m, unit), 0);
	modbus_set_response_timeout(m, (uint32_t)(timeout_ms / 1000), (uint32_t)(timeout_ms % 1000) * 1000);
	assert_int_equal(modbus_connect(m), 0);
	return m;
}

static void client_free(modbus_t *m)
{
	modbus_close(m);
	modbus_free(m);
}

/* ---- raw TCP --------------------------------------------------------------------------- */

static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void put_request(uint8_t *b, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t n)
{
	const uint8_t req[12] = { (uint8_t)(tid >> 8), (uint8_t)tid, 0, 0, 0, 6, unit, fc,
				  (uint8_t)(addr >> 8), (uint8_t)addr, (uint8_t)(n >> 8), (uint8_t)n };
	memcpy(b, req, sizeof(req));
}

static void raw_send(int fd, const uint8_t *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void raw_request(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t n)
{
	uint8_t b[12];
	put_request(b, tid, unit, fc, addr, n);
	raw_send(fd, b, sizeof(b));
}

/* One TCP reply as far as it came within the deadline: the whole of it when the MBAP length
 * is honoured; fewer bytes when the frame was cut. */
static size_t raw_reply(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		size_t want = n >= 6 ? 6 + (size_t)(buf[4] << 8 | buf[5]) : 7;
		if (want > cap)
			want = cap;
		if (n >= want)
			return n;
		long long left = deadline - now_ms();
		if (left <= 0)
			return n;
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf + n, want - n, 0);
		if (r <= 0)
			return n;
		n += (size_t)r;
	}
}

/* Up to want bytes from a socket or a pty within the deadline. */
static size_t fd_read(int fd, uint8_t *buf, size_t want, int timeout_ms)
{
	size_t n = 0;
	long long deadline = now_ms() + timeout_ms;
	while (n < want) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, want - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	return n;
}

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

struct autowait {
	modbus_t *m;
	uint16_t r[6];
	uint32_t at_least;
};

static uint32_t u32_big(const uint16_t *r)
{
	return (uint32_t)r[0] << 16 | r[1];
}

/* One read of all three counters: they are computed at the same instant. */
static bool counters_reached(void *arg)
{
	struct autowait *w = arg;
	return modbus_read_input_registers(w->m, 0, 6, w->r) == 6 && u32_big(w->r) >= w->at_least;
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
		cmocka_unit_test_setup_teardown(test_set_then_read_every_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coils_discretes_and_client_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_wraps_like_a_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_advances_in_real_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_holds_one_unit_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silence_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exceptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrongunit_and_short_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_twice_stale_and_badproto_replies, setup, teardown),
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
	return cmocka_run_group_tests_name("modbus_sim", tests, NULL, NULL);
}
