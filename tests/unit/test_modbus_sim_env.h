/* test_modbus_sim_env.h — what the simulator's tests (test_modbus_sim.c,
 * test_modbus_sim_conn.c) share: the simulator started and driven over its stdin, libmodbus
 * clients, raw TCP requests and replies. Each program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_MODBUS_SIM_ENV_H
#define LABSHARE_TEST_MODBUS_SIM_ENV_H

#define SIM_FIX static __attribute__((unused))

#define REPLY_MS 3000

struct fx {
	char *dir;
	char *port_file;
	char *log;
	struct h_proc *p;
	int port[8];
	int nports;
};

SIM_FIX long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

SIM_FIX int setup(void **state)
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

SIM_FIX void dump_log(const struct fx *f)
{
	char *log = h_read_file(f->log, NULL);
	if (log && *log)
		fprintf(stderr, "--- simulator log:\n%s---\n", log);
	free(log);
}

SIM_FIX int teardown(void **state)
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

SIM_FIX void read_ports(struct fx *f)
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

SIM_FIX bool started_or_exited(void *arg)
{
	struct fx *f = arg;
	struct stat st;
	return (stat(f->port_file, &st) == 0 && st.st_size > 0) || h_wait(f->p, 0) >= 0;
}

/* Starts the simulator with args (NULL-terminated) plus --port-file; control over pipes unless
 * piped is false (then stdin is /dev/null). Returns false when it exited instead of listening. */
SIM_FIX bool sim_try_start(struct fx *f, const char *const *args, bool piped)
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

SIM_FIX void sim_start(struct fx *f, const char *const *args)
{
	bool up = sim_try_start(f, args, true);
	if (!up)
		dump_log(f);
	assert_true(up);
}

/* Two TCP endpoints, small images so "beyond the image" is easy to reach. */
SIM_FIX void sim_start_default(struct fx *f)
{
	static const char *const args[] = { "--tcp", "127.0.0.1:0", "--units", "1-5",
					    "--tcp", "127.0.0.1:0", "--units", "1-3,7",
					    "--regs", "64", NULL };
	sim_start(f, args);
	assert_int_equal(f->nports, 2);
}

SIM_FIX char *cmd(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

SIM_FIX char *cmd(struct fx *f, const char *fmt, ...)
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

SIM_FIX modbus_t *client(const struct fx *f, int ep, int unit, int timeout_ms)
{
	modbus_t *m = modbus_new_tcp("127.0.0.1", f->port[ep]);
	assert_non_null(m);
	assert_int_equal(modbus_set_slave(m, unit), 0);
	modbus_set_response_timeout(m, (uint32_t)(timeout_ms / 1000), (uint32_t)(timeout_ms % 1000) * 1000);
	assert_int_equal(modbus_connect(m), 0);
	return m;
}

SIM_FIX void client_free(modbus_t *m)
{
	modbus_close(m);
	modbus_free(m);
}

/* ---- raw TCP --------------------------------------------------------------------------- */

SIM_FIX int raw_connect(int port)
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

SIM_FIX void put_request(uint8_t *b, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t n)
{
	const uint8_t req[12] = { (uint8_t)(tid >> 8), (uint8_t)tid, 0, 0, 0, 6, unit, fc,
				  (uint8_t)(addr >> 8), (uint8_t)addr, (uint8_t)(n >> 8), (uint8_t)n };
	memcpy(b, req, sizeof(req));
}

SIM_FIX void raw_send(int fd, const uint8_t *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

SIM_FIX void raw_request(int fd, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t n)
{
	uint8_t b[12];
	put_request(b, tid, unit, fc, addr, n);
	raw_send(fd, b, sizeof(b));
}

/* One TCP reply as far as it came within the deadline: the whole of it when the MBAP length
 * is honoured; fewer bytes when the frame was cut. */
SIM_FIX size_t raw_reply(int fd, uint8_t *buf, size_t cap, int timeout_ms)
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
SIM_FIX size_t fd_read(int fd, uint8_t *buf, size_t want, int timeout_ms)
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


struct autowait {
	modbus_t *m;
	uint16_t r[6];
	uint32_t at_least;
};

SIM_FIX uint32_t u32_big(const uint16_t *r)
{
	return (uint32_t)r[0] << 16 | r[1];
}

/* One read of all three counters: they are computed at the same instant. */
SIM_FIX bool counters_reached(void *arg)
{
	struct autowait *w = arg;
	return modbus_read_input_registers(w->m, 0, 6, w->r) == 6 && u32_big(w->r) >= w->at_least;
}


#endif
