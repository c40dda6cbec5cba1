/* modbus-sim.c — a simulator of many Modbus instruments (units) on TCP endpoints and serial
 * lines, for tests, the demo and benchmarks: command line, control on stdin, and the one
 * single-threaded poll loop that serves every listener, client, serial line and timer. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EX_USAGE 64
#define LINE_MAX_LEN 4096

static volatile sig_atomic_t g_signal;

int64_t sim_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sim_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("modbus-sim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void usage(FILE *f)
{
	fputs("usage: modbus-sim (--tcp HOST:PORT | --rtu DEVICE[?baud=B&parity=N|E|O&data=D&stop=S])\n"
	      "                  --units LIST [more endpoints…] [--regs N] [--port-file FILE] [--script FILE]\n"
	      "  --tcp HOST:PORT  a Modbus TCP endpoint; port 0 picks a free one; [::1]:0 for IPv6\n"
	      "  --rtu DEVICE     a serial line (RTU); defaults 9600 baud, parity N, 8 data, 1 stop\n"
	      "  --units LIST     the unit ids the endpoint before it serves: 1-5,9\n"
	      "  --regs N         coils, discrete inputs, input and holding registers per unit (1024)\n"
	      "  --port-file F    once listening, write the bound TCP ports (0 for serial), space-separated\n"
	      "  --script F       run control commands from F at start (replies on stderr)\n"
	      "control on stdin, one reply line each: set get add auto delay silence exception wrongunit\n"
	      "short twice stale badproto drop close open clients accepted stats reset-stats ports ping\n"
	      "quit (see tests/sim/README.md)\n", f);
}

static void on_signal(int sig)
{
	g_signal = sig;
}

/* ---- command line --------------------------------------------------------------------- */

static int parse_int(const char *s, long min, long max, long *out)
{
	if (!*s || ((*s < '0' || *s > '9') && *s != '-'))
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static struct sim_endpoint *add_endpoint(struct sim *s, enum sim_ep_kind kind, const char *spec)
{
	struct sim_endpoint *eps = realloc(s->eps, (s->neps + 1) * sizeof(*eps));
	if (!eps)
		return NULL;
	s->eps = eps;
	struct sim_endpoint *ep = &eps[s->neps];
	memset(ep, 0, sizeof(*ep));
	ep->index = (int)s->neps++;
	ep->kind = kind;
	ep->listen_fd = -1;
	ep->fd = -1;
	ep->spec = strdup(spec);
	return ep->spec ? ep : NULL;
}

/* HOST:PORT, [V6]:PORT, or :PORT / *:PORT for every address. */
static int parse_tcp(struct sim_endpoint *ep, const char *spec)
{
	const char *colon;
	char *host;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':')
			return -1;
		host = strndup(spec + 1, (size_t)(close - spec - 1));
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return -1;
		host = strndup(spec, (size_t)(colon - spec));
	}
	if (!host)
		return -1;
	if (!*host || strcmp(host, "*") == 0) {
		free(host);
		host = NULL;
	}
	long port;
	if (parse_int(colon + 1, 0, 65535, &port) < 0) {
		free(host);
		return -1;
	}
	ep->host = host;
	ep->port = (int)port;
	return 0;
}

static int parse_rtu(struct sim_endpoint *ep, const char *spec)
{
	const char *q = strchr(spec, '?');
	ep->device = q ? strndup(spec, (size_t)(q - spec)) : strdup(spec);
	ep->baud = 9600;
	ep->parity = 'N';
	ep->data_bits = 8;
	ep->stop_bits = 1;
	if (!ep->device || !*ep->device)
		return -1;
	while (q && *q) {
		const char *key = q + 1;
		const char *amp = strchr(key, '&');
		size_t len = amp ? (size_t)(amp - key) : strlen(key);
		char item[64];
		if (len == 0 || len >= sizeof(item)) {
			sim_log("--rtu '%s': bad parameter", spec);
			return -1;
		}
		memcpy(item, key, len);
		item[len] = '\0';
		char *eq = strchr(item, '=');
		long v;
		if (!eq) {
			sim_log("--rtu '%s': '%s' is not key=value", spec, item);
			return -1;
		}
		*eq = '\0';
		const char *val = eq + 1;
		if (strcmp(item, "baud") == 0 && parse_int(val, 50, 4000000, &v) == 0) {
			ep->baud = (int)v;
		} else if (strcmp(item, "parity") == 0 && strlen(val) == 1 && strchr("NEO", val[0])) {
			ep->parity = val[0];
		} else if (strcmp(item, "data") == 0 && parse_int(val, 5, 8, &v) == 0) {
			ep->data_bits = (int)v;
		} else if (strcmp(item, "stop") == 0 && parse_int(val, 1, 2, &v) == 0) {
			ep->stop_bits = (int)v;
		} else {
			sim_log("--rtu '%s': bad parameter '%s=%s' (baud=N, parity=N|E|O, data=5..8, stop=1|2)",
				spec, item, val);
			return -1;
		}
		q = amp;
	}
	return 0;
}

static int parse_units(struct sim *s, struct sim_endpoint *ep, const char *list)
{
	long lo_min = ep->kind == SIM_RTU ? 1 : 0, hi_max = ep->kind == SIM_RTU ? 247 : 255;
	const char *p = list;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[32];
		if (len == 0 || len >= sizeof(item))
			return -1;
		memcpy(item, p, len);
		item[len] = '\0';
		char *dash = strchr(item, '-');
		long a, b;
		if (dash) {
			*dash = '\0';
			if (parse_int(item, lo_min, hi_max, &a) < 0 || parse_int(dash + 1, lo_min, hi_max, &b) < 0 || a > b)
				return -1;
		} else {
			if (parse_int(item, lo_min, hi_max, &a) < 0)
				return -1;
			b = a;
		}
		for (long u = a; u <= b; u++) {
			if (ep->units[u])
				continue;
			ep->units[u] = sim_unit_new((int)u, s->regs);
			if (!ep->units[u]) {
				sim_log("endpoint %d: no memory for unit %ld", ep->index, u);
				return -2;
			}
		}
		p = comma ? comma + 1 : p + len;
	}
	return 0;
}

struct options {
	const char *port_file;
	const char *script;
	/* --units is applied once --regs is known, whatever the order on the command line */
	const char **units;
};

static int parse_args(struct sim *s, struct options *o, int argc, char **argv)
{
	o->units = calloc((size_t)argc, sizeof(*o->units));
	if (!o->units)
		return -1;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc) {
			sim_log("%s: needs a value (--help for usage)", opt);
			return -1;
		}
		const char *val = argv[++i];
		if (!strcmp(opt, "--tcp") || !strcmp(opt, "--rtu")) {
			bool tcp = opt[2] == 't';
			struct sim_endpoint *ep = add_endpoint(s, tcp ? SIM_TCP : SIM_RTU, val);
			if (!ep)
				return -1;
			if ((tcp ? parse_tcp(ep, val) : parse_rtu(ep, val)) < 0) {
				sim_log("%s '%s': not %s", opt, val,
					tcp ? "HOST:PORT with a port 0..65535" : "DEVICE[?baud=…&parity=…&data=…&stop=…]");
				return -1;
			}
		} else if (!strcmp(opt, "--units")) {
			if (s->neps == 0) {
				sim_log("--units '%s': give --tcp or --rtu first", val);
				return -1;
			}
			o->units[s->neps - 1] = val;
		} else if (!strcmp(opt, "--regs")) {
			long n;
			if (parse_int(val, 1, 65536, &n) < 0) {
				sim_log("--regs '%s': not 1..65536", val);
				return -1;
			}
			s->regs = (unsigned)n;
		} else if (!strcmp(opt, "--port-file")) {
			o->port_file = val;
		} else if (!strcmp(opt, "--script")) {
			o->script = val;
		} else {
			sim_log("unknown option '%s' (--help for usage)", opt);
			return -1;
		}
	}
	if (s->neps == 0) {
		sim_log("no endpoint: give --tcp or --rtu (--help for usage)");
		return -1;
	}
	for (size_t e = 0; e < s->neps; e++) {
		struct sim_endpoint *ep = &s->eps[e];
		if (!o->units[e]) {
			sim_log("endpoint %zu (%s): no --units", e, ep->spec);
			return -1;
		}
		int r = parse_units(s, ep, o->units[e]);
		if (r == -1)
			sim_log("--units '%s': not a list of ids or ranges %s (e.g. 1-5,9)", o->units[e],
				ep->kind == SIM_RTU ? "1..247" : "0..255");
		if (r < 0)
			return -1;
	}
	return 0;
}

/* ---- control -------------------------------------------------------------------------- */

static void reply_line(FILE *f, const char *reply)
{
	fputs(reply ? reply : "error: out of memory", f);
	fputc('\n', f);
	fflush(f);
}

static bool is_blank_or_comment(const char *line)
{
	line += strspn(line, " \t");
	return *line == '\0' || *line == '#';
}

static void control_line(struct sim *s, char *line)
{
	size_t n = strlen(line);
	if (n && line[n - 1] == '\r')
		line[n - 1] = '\0';
	/* a blank line is no command, so it gets no reply: the reader counts one line per command */
	if (is_blank_or_comment(line))
		return;
	char *reply = sim_command(s, line);
	reply_line(stdout, reply);
	free(reply);
}

static int run_script(struct sim *s, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		sim_log("script '%s': %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	while (!s->quit && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (is_blank_or_comment(line))
			continue;
		char *reply = sim_command(s, line);
		fprintf(stderr, "modbus-sim: script %s:%d: %s: %s\n", path, lineno, line,
			reply ? reply : "error: out of memory");
		/* a typo in a demo's setup must stop it, not leave an instrument half set up */
		if (!reply || strncmp(reply, "error", 5) == 0)
			rc = -1;
		free(reply);
		if (rc < 0)
			break;
	}
	free(line);
	fclose(f);
	return rc;
}

struct stdin_state {
	bool open;
	bool skipping;       /* the current line was too long: drop it up to its newline */
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void stdin_readable(struct sim *s, struct stdin_state *in)
{
	ssize_t n = read(STDIN_FILENO, in->buf + in->len, sizeof(in->buf) - 1 - in->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF: the last line may lack its newline; then keep serving without control */
		if (in->len && !in->skipping) {
			in->buf[in->len] = '\0';
			control_line(s, in->buf);
		}
		in->len = 0;
		in->open = false;
		return;
	}
	in->len += (size_t)n;
	size_t start = 0;
	for (size_t i = 0; i < in->len && !s->quit; i++) {
		if (in->buf[i] != '\n')
			continue;
		in->buf[i] = '\0';
		if (!in->skipping)
			control_line(s, in->buf + start);
		in->skipping = false;
		start = i + 1;
	}
	memmove(in->buf, in->buf + start, in->len - start);
	in->len -= start;
	if (in->len == sizeof(in->buf) - 1) {
		if (!in->skipping)
			reply_line(stdout, "error: line too long");
		in->skipping = true;
		in->len = 0;
	}
}

static int write_port_file(struct sim *s, const char *path)
{
	char tmp[4096];
	size_t off = 0;
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* Room for every endpoint's port: a benchmark lab may have a thousand. */
	size_t cap = s->neps * 7 + 2;
	char *line = malloc(cap);
	if (!line)
		return -ENOMEM;
	for (size_t e = 0; e < s->neps; e++) {
		n = snprintf(line + off, cap - off, "%s%d", e ? " " : "",
			     s->eps[e].kind == SIM_TCP ? s->eps[e].port : 0);
		if (n < 0 || (size_t)n >= cap - off) {
			free(line);
			return -E2BIG;
		}
		off += (size_t)n;
	}
	line[off++] = '\n';
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = -errno;
		free(line);
		return e;
	}
	ssize_t w = write(fd, line, off);
	free(line);
	int err = w == (ssize_t)off ? 0 : (w < 0 ? errno : EIO);
	if (close(fd) < 0 && !err)
		err = errno;
	/* rename: a reader sees no file or the whole line, never half of it */
	if (!err && rename(tmp, path) < 0)
		err = errno;
	if (err)
		unlink(tmp);
	return -err;
}

/* ---- the loop ------------------------------------------------------------------------- */

enum slot_kind { K_STDIN, K_LISTEN, K_RTU, K_CLIENT };

struct slot {
	enum slot_kind kind;
	size_t index;
	uint32_t gen;
};

struct pollset {
	struct pollfd *fds;
	struct slot *slots;
	size_t n, cap;
};

static int ps_add(struct pollset *ps, int fd, short events, enum slot_kind kind, size_t index, uint32_t gen)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 64;
		struct pollfd *f = realloc(ps->fds, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		ps->fds = f;
		struct slot *sl = realloc(ps->slots, cap * sizeof(*sl));
		if (!sl)
			return -ENOMEM;
		ps->slots = sl;
		ps->cap = cap;
	}
	ps->fds[ps->n] = (struct pollfd){ .fd = fd, .events = events };
	ps->slots[ps->n] = (struct slot){ .kind = kind, .index = index, .gen = gen };
	ps->n++;
	return 0;
}

static int64_t earlier(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int serve_loop(struct sim *s, struct stdin_state *in, const sigset_t *waitmask)
{
	struct pollset ps = { 0 };
	int rc = 0;
	while (!s->quit && !g_signal) {
		int64_t now = sim_now_ns();
		int64_t next = sim_timers_run(s, now);
		ps.n = 0;
		if (in->open)
			rc = ps_add(&ps, STDIN_FILENO, POLLIN, K_STDIN, 0, 0);
		for (size_t e = 0; e < s->neps && rc == 0; e++) {
			struct sim_endpoint *ep = &s->eps[e];
			if (ep->kind == SIM_TCP && ep->listen_fd >= 0) {
				if (ep->accept_resume_ns > now)
					next = earlier(next, ep->accept_resume_ns);
				else
					rc = ps_add(&ps, ep->listen_fd, POLLIN, K_LISTEN, e, 0);
			} else if (ep->kind == SIM_RTU && ep->fd >= 0) {
				next = earlier(next, sim_rtu_tick(s, ep, now));
				if (ep->fd >= 0)
					rc = ps_add(&ps, ep->fd, (short)(POLLIN | (ep->rout.len ? POLLOUT : 0)), K_RTU, e, 0);
			}
		}
		for (size_t i = 0, seen = 0; i < s->nclients && seen < s->nlive && rc == 0; i++) {
			struct sim_client *c = &s->clients[i];
			if (c->fd < 0)
				continue;
			seen++;
			/* a client that doesn't read its replies isn't read from either */
			short ev = (short)((c->out.len < 16384 ? POLLIN : 0) | (c->out.len ? POLLOUT : 0));
			rc = ps_add(&ps, c->fd, ev, K_CLIENT, i, c->gen);
		}
		if (rc < 0) {
			sim_log("poll set: %s", strerror(-rc));
			break;
		}
		struct timespec ts, *tsp = NULL;
		if (next >= 0) {
			int64_t wait = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(wait / 1000000000);
			ts.tv_nsec = (long)(wait % 1000000000);
			tsp = &ts;
		}
		/* signals are blocked everywhere but here, so one can't slip in between the
		 * check of g_signal and the wait */
		int r = ppoll(ps.fds, ps.n, tsp, waitmask);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			sim_log("ppoll: %s", strerror(errno));
			rc = -1;
			break;
		}
		now = sim_now_ns();
		for (size_t i = 0; i < ps.n && r > 0 && !s->quit; i++) {
			short re = ps.fds[i].revents;
			if (!re)
				continue;
			struct slot *sl = &ps.slots[i];
			switch (sl->kind) {
			case K_STDIN:
				stdin_readable(s, in);
				break;
			case K_LISTEN:
				if (s->eps[sl->index].listen_fd == ps.fds[i].fd)
					sim_accept(s, &s->eps[sl->index]);
				break;
			case K_RTU: {
				struct sim_endpoint *ep = &s->eps[sl->index];
				if (ep->fd != ps.fds[i].fd)
					break;   /* closed by a command in this round */
				if (re & POLLOUT)
					sim_rtu_writable(s, ep);
				if (ep->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)))
					sim_rtu_readable(s, ep, now);
				break;
			}
			case K_CLIENT: {
				struct sim_client *c = &s->clients[sl->index];
				if (c->fd < 0 || c->gen != sl->gen)
					break;
				if (re & POLLOUT)
					sim_client_writable(s, sl->index);
				if (c->fd >= 0 && c->gen == sl->gen && (re & (POLLIN | POLLHUP | POLLERR)))
					sim_client_readable(s, sl->index);
				break;
			}
			}
		}
	}
	free(ps.fds);
	free(ps.slots);
	return rc;
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; i < s->nclients; i++)
		sim_client_close(s, i);
	free(s->clients);
	s->clients = NULL;
	s->nclients = 0;
	for (size_t e = 0; e < s->neps; e++) {
		struct sim_endpoint *ep = &s->eps[e];
		sim_ep_close(s, ep);
		for (int u = 0; u < SIM_NO_UNITS; u++)
			sim_unit_free(ep->units[u]);
		free(ep->spec);
		free(ep->host);
		free(ep->device);
	}
	free(s->eps);
	free(s->heap);
	sim_engine_close(s);
}

/* Benchmarks open thousands of connections: take the hard limit on descriptors. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct sim s = { .regs = 1024, .cap_wr = -1, .cap_rd = -1 };
	struct options o = { 0 };
	struct stdin_state *in = calloc(1, sizeof(*in));
	int rc = 1;

	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);   /* a control reader that went away must not kill the simulator */

	if (!in || parse_args(&s, &o, argc, argv) < 0) {
		rc = EX_USAGE;
		goto out;
	}
	raise_fd_limit();
	int r = sim_engine_open(&s);
	if (r < 0) {
		sim_log("reply engine: %s", strerror(-r));
		goto out;
	}
	for (size_t e = 0; e < s.neps; e++) {
		struct sim_endpoint *ep = &s.eps[e];
		r = sim_ep_open(&s, ep);
		if (r < 0) {
			sim_log("endpoint %zu (%s): %s: %s", e, ep->spec,
				ep->kind == SIM_TCP ? "listen" : "open", strerror(-r));
			goto out;
		}
	}
	if (o.script && run_script(&s, o.script) < 0)
		goto out;
	if (o.port_file && (r = write_port_file(&s, o.port_file)) < 0) {
		sim_log("port file '%s': %s", o.port_file, strerror(-r));
		goto out;
	}
	/* stdin stays blocking (its file may be shared with a shell); we read only after poll
	 * says so, and read once, so that never waits */
	in->open = true;
	if (serve_loop(&s, in, &waitmask) == 0)
		rc = 0;
out:
	sim_free(&s);
	free(o.units);
	free(in);
	return rc;
}
