/* benchlib.c — see benchlib.h. */
#include "benchlib.h"

#include <math.h>

double bench_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep_until(double until)
{
	for (;;) {
		double left = until - bench_mono();
		if (left <= 0)
			return;
		struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

long bench_env_long(const char *name, long def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 0) {
		fprintf(stderr, "bench: %s=\"%s\" is not a number, using %ld\n", name, s, def);
		return def;
	}
	return v;
}

const char *bench_env_str(const char *name, const char *def)
{
	const char *s = getenv(name);
	return s && *s ? s : def;
}

void bench_machine(const char *who)
{
	char model[256] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) == 0) {
			const char *c = strchr(line, ':');
			if (c) {
				snprintf(model, sizeof(model), "%s", c + 2);
				model[strcspn(model, "\n")] = '\0';
			}
			break;
		}
	}
	if (f)
		fclose(f);
	struct utsname u;
	uname(&u);
	double load[3] = { 0, 0, 0 };
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = 0;
		fclose(f);
	}
	long mem_mb = sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024;
	printf("%s: machine: %ld CPUs (%s), %ld MB, %s %s, load %.2f %.2f %.2f\n", who,
	       sysconf(_SC_NPROCESSORS_ONLN), model, mem_mb, u.sysname, u.release, load[0], load[1], load[2]);
	fflush(stdout);
}

static long long bench_status_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	size_t klen = strlen(key);
	long long v = -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

int bench_proc_read(pid_t pid, struct bench_proc *out)
{
	memset(out, 0, sizeof(*out));
	char path[128], buf[2048];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p += 2;
	unsigned long long ut = 0, st = 0;
	for (int field = 3; field <= 15 && *p; field++) {
		if (field == 14)
			ut = strtoull(p, NULL, 10);
		if (field == 15)
			st = strtoull(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
	out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	out->hwm_kb = (long)bench_status_field(path, "VmHWM");
	out->rss_kb = (long)bench_status_field(path, "VmRSS");
	out->anon_kb = (long)bench_status_field(path, "RssAnon");
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char tpath[300];
		snprintf(tpath, sizeof(tpath), "/proc/%ld/task/%s/status", (long)pid, e->d_name);
		long long v = bench_status_field(tpath, "voluntary_ctxt_switches");
		long long iv = bench_status_field(tpath, "nonvoluntary_ctxt_switches");
		if (v >= 0)
			out->vol += v;
		if (iv >= 0)
			out->invol += iv;
		out->threads++;
	}
	if (d)
		closedir(d);
	return 0;
}

int bench_platform_start(struct bench_platform *pf)
{
	return platfix_start(&pf->fix, pf->fix.dir, pf->certs);
}

int bench_platform_init(struct bench_platform *pf, const char *dir, const char *name)
{
	memset(pf, 0, sizeof(*pf));
	pf->certs = h_make_certs(dir);
	if (!pf->certs)
		return -1;
	pf->ca = h_path(pf->certs, "ca.pem");
	pf->fix.name = name;
	pf->fix.token = BENCH_TOKEN;
	return platfix_start(&pf->fix, dir, pf->certs);
}

void bench_platform_stop(struct bench_platform *pf)
{
	platfix_stop(&pf->fix);
}

void bench_platform_free(struct bench_platform *pf)
{
	platfix_free(&pf->fix);
	free(pf->certs);
	free(pf->ca);
	pf->certs = pf->ca = NULL;
}

/* One simulator serving the gateways [first, first + count). */
static int lab_sim(struct lab *l, int k, int first, int count)
{
	char name[64];
	snprintf(name, sizeof(name), "sim%d.script", k);
	char *script = h_path(l->dir, name);
	snprintf(name, sizeof(name), "sim%d.ports", k);
	char *port_file = h_path(l->dir, name);
	snprintf(name, sizeof(name), "sim%d.log", k);
	char *log = h_path(l->dir, name);
	FILE *f = fopen(script, "w");
	if (!f)
		return -1;
	for (int e = 0; e < count; e++) {
		/* The run counter counts seconds of running, as the instruments' PLCs do. */
		fprintf(f, "auto %d * input %d u32 big 1\nset %d * coil %d bit big 1\nset %d * holding %d u16 big 1\n"
			   "set %d * input %d u16 big 1\n",
			e, RUN_ADDR, e, COIL_ADDR, e, MIRROR_ADDR, e, INUSE_REG_ADDR);
		if (l->delay_ms > 0)
			fprintf(f, "delay %d * %d\n", e, l->delay_ms);
	}
	fclose(f);
	size_t argc = 0;
	char **argv = calloc((size_t)count * 4 + 10, sizeof(*argv));
	char units[32];
	argv[argc++] = strdup(h_build_path("modbus-sim"));
	for (int e = first; e < first + count; e++) {
		int n = e == l->n_bus - 1 ? l->n_inst - e * l->per_bus : l->per_bus;
		snprintf(units, sizeof(units), "1-%d", n);
		argv[argc++] = strdup("--tcp");
		argv[argc++] = strdup("127.0.0.1:0");
		argv[argc++] = strdup("--units");
		argv[argc++] = strdup(units);
	}
	snprintf(units, sizeof(units), "%d", LAB_REGS);
	argv[argc++] = strdup("--regs");
	argv[argc++] = strdup(units);
	argv[argc++] = strdup("--port-file");
	argv[argc++] = strdup(port_file);
	argv[argc++] = strdup("--script");
	argv[argc++] = strdup(script);
	l->sim[k] = h_spawn(argv, NULL, true, true, log);
	for (size_t i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	int r = -1;
	if (l->sim[k] && h_wait_file(port_file, 60000)) {
		char *text = h_read_file(port_file, NULL), *p = text;
		for (int e = first; e < first + count && p; e++)
			l->ports[e] = (int)strtol(p, &p, 10);
		r = l->ports[first + count - 1] > 0 ? 0 : -1;
		free(text);
	}
	if (r < 0)
		fprintf(stderr, "bench: modbus-sim did not start (see %s)\n", log);
	free(script);
	free(port_file);
	free(log);
	return r;
}

int lab_start(struct lab *l, const char *dir, int n_inst, int per_bus, int delay_ms)
{
	memset(l, 0, sizeof(*l));
	l->dir = strdup(dir);
	l->n_inst = n_inst;
	l->per_bus = per_bus;
	l->n_bus = (n_inst + per_bus - 1) / per_bus;
	l->delay_ms = delay_ms;
	l->ports = calloc((size_t)l->n_bus, sizeof(int));
	l->n_sims = (l->n_bus + LAB_EPS_PER_SIM - 1) / LAB_EPS_PER_SIM;
	if (l->n_sims > LAB_SIMS_MAX) {
		fprintf(stderr, "bench: %d gateways are more than %d simulators serve\n", l->n_bus,
			LAB_SIMS_MAX * LAB_EPS_PER_SIM);
		return -1;
	}
	for (int k = 0; k < l->n_sims; k++) {
		int first = k * LAB_EPS_PER_SIM;
		int count = l->n_bus - first < LAB_EPS_PER_SIM ? l->n_bus - first : LAB_EPS_PER_SIM;
		if (lab_sim(l, k, first, count) < 0)
			return -1;
	}
	return 0;
}

void lab_stop(struct lab *l)
{
	for (int k = 0; k < LAB_SIMS_MAX; k++) {
		if (l->sim[k]) {
			h_stop(l->sim[k], 10000);
			h_proc_free(l->sim[k]);
		}
	}
	free(l->ports);
	free(l->dir);
	memset(l, 0, sizeof(*l));
}

double lab_requests(struct lab *l, bool reset)
{
	double v = 0;
	for (int k = 0; k < l->n_sims; k++) {
		char *reply = h_request(l->sim[k], "stats", 10000);
		cJSON *j = reply ? cJSON_Parse(reply) : NULL;
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "requests");
		v += cJSON_IsNumber(n) ? n->valuedouble : 0;
		cJSON_Delete(j);
		free(reply);
		if (reset)
			free(h_request(l->sim[k], "reset-stats", 10000));
	}
	return v;
}

int rx_listen(struct receiver *rx)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)rx->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -errno;
	}
	socklen_t alen = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	rx->port = ntohs(a.sin_port);
	rx->lfd = fd;
	return 0;
}

static void rx_close_all(struct receiver *rx)
{
	if (rx->lfd >= 0)
		close(rx->lfd);
	rx->lfd = -1;
	for (int i = 0; i < RX_CONNS; i++) {
		if (rx->conns[i].fd >= 0)
			close(rx->conns[i].fd);
		rx->conns[i].fd = -1;
		rx->conns[i].len = 0;
	}
}

/* PUTVAL gw7/modbus-u3/counter-run interval=1.000 1712345678.123:4567 (the identifier may be quoted) */
static void rx_line(struct receiver *rx, const char *s, const char *end)
{
	const char *q = s + 7;
	if (q < end && *q == '"')
		q++;
	if (end - q < 8 || strncmp(q, "gw", 2) != 0) {
		rx->unparsed++;
		return;
	}
	char *p;
	long host = strtol(q + 2, &p, 10);
	if (strncmp(p, "/modbus-u", 9) != 0) {
		rx->unparsed++;
		return;
	}
	long unit = strtol(p + 9, &p, 10);
	bool run = strncmp(p, "/counter-run", 12) == 0 && (p[12] == '"' || p[12] == ' ');
	const char *sp = NULL;
	for (const char *c = end - 1; c > p; c--)
		if (*c == ' ') {
			sp = c;
			break;
		}
	if (!sp) {
		rx->unparsed++;
		return;
	}
	double t = strtod(sp + 1, NULL);
	long inst = host * rx->per_host + unit - 1;
	rx->values++;
	if (t > rx->newest)
		rx->newest = t;
	if (!run || inst < 0 || (size_t)inst >= rx->n_inst)
		return;
	struct series *se = &rx->run[inst];
	if (se->n == se->cap) {
		se->cap = se->cap ? se->cap * 2 : 128;
		se->ts = realloc(se->ts, se->cap * sizeof(double));
	}
	se->ts[se->n++] = t;
}

static void rx_write(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t w = write(fd, s + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno == EAGAIN) {
				struct pollfd pfd = { fd, POLLOUT, 0 };
				poll(&pfd, 1, 1000);
				continue;
			}
			return;
		}
		off += (size_t)w;
	}
}

/* Handles every complete request in the connection's buffer; false: drop the connection. */
static bool rx_requests(struct receiver *rx, struct rx_conn *c)
{
	for (;;) {
		char *hend = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (!hend)
			return c->len < 65536;
		size_t hlen = (size_t)(hend - c->buf) + 4;
		size_t clen = 0;
		bool expect = false;
		for (char *h = memchr(c->buf, '\n', hlen); h && h < hend; h = memchr(h + 1, '\n', (size_t)(hend - h))) {
			if (strncasecmp(h + 1, "Content-Length:", 15) == 0)
				clen = strtoul(h + 16, NULL, 10);
			else if (strncasecmp(h + 1, "Expect: 100-continue", 20) == 0)
				expect = true;
		}
		if (clen > RX_BUF_MAX)
			return false;
		if (c->len < hlen + clen) {
			if (expect && !c->continued) {
				rx_write(c->fd, "HTTP/1.1 100 Continue\r\n\r\n");
				c->continued = true;
			}
			return true;
		}
		pthread_mutex_lock(&rx->mu);
		const char *b = c->buf + hlen, *bend = b + clen;
		while (b < bend) {
			const char *nl = memchr(b, '\n', (size_t)(bend - b));
			const char *le = nl ? nl : bend;
			const char *te = le > b && le[-1] == '\r' ? le - 1 : le;
			if (te - b > 7 && strncmp(b, "PUTVAL ", 7) == 0)
				rx_line(rx, b, te);
			b = le + 1;
		}
		rx->posts++;
		pthread_mutex_unlock(&rx->mu);
		rx_write(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		c->continued = false;
		memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
		c->len -= hlen + clen;
	}
}

static void *rx_main(void *arg)
{
	struct receiver *rx = arg;
	while (!atomic_load(&rx->quit)) {
		bool want = atomic_load(&rx->listening_wanted);
		if (!want && rx->lfd >= 0)
			rx_close_all(rx);       /* the receiver is down: refuse connections */
		if (want && rx->lfd < 0 && rx_listen(rx) < 0) {
			struct timespec ts = { 0, 10 * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		struct pollfd pfd[RX_CONNS + 1];
		int map[RX_CONNS + 1], n = 0;
		if (rx->lfd >= 0) {
			pfd[n] = (struct pollfd){ rx->lfd, POLLIN, 0 };
			map[n++] = -1;
		}
		for (int i = 0; i < RX_CONNS; i++)
			if (rx->conns[i].fd >= 0) {
				pfd[n] = (struct pollfd){ rx->conns[i].fd, POLLIN, 0 };
				map[n++] = i;
			}
		if (poll(pfd, (nfds_t)n, 20) <= 0)
			continue;
		for (int k = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (map[k] < 0) {
				int fd = accept4(rx->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (fd < 0)
					continue;
				int i = 0;
				while (i < RX_CONNS && rx->conns[i].fd >= 0)
					i++;
				if (i == RX_CONNS) {
					close(fd);
					continue;
				}
				rx->conns[i].fd = fd;
				rx->conns[i].len = 0;
				rx->conns[i].continued = false;
				continue;
			}
			struct rx_conn *c = &rx->conns[map[k]];
			if (c->cap - c->len < 65536) {
				c->cap = c->cap ? c->cap * 2 : 262144;
				c->buf = realloc(c->buf, c->cap);
			}
			ssize_t got = read(c->fd, c->buf + c->len, c->cap - c->len);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0 || c->cap > RX_BUF_MAX + 65536) {
				close(c->fd);
				c->fd = -1;
				continue;
			}
			c->len += (size_t)got;
			if (!rx_requests(rx, c)) {
				close(c->fd);
				c->fd = -1;
			}
		}
	}
	rx_close_all(rx);
	return NULL;
}

int rx_start(struct receiver *rx, size_t n_inst, int per_host)
{
	memset(rx, 0, sizeof(*rx));
	rx->lfd = -1;
	rx->n_inst = n_inst;
	rx->per_host = per_host;
	rx->run = calloc(n_inst, sizeof(*rx->run));
	for (int i = 0; i < RX_CONNS; i++)
		rx->conns[i].fd = -1;
	pthread_mutex_init(&rx->mu, NULL);
	if (rx_listen(rx) < 0)
		return -1;
	atomic_store(&rx->listening_wanted, true);
	return pthread_create(&rx->thread, NULL, rx_main, rx) == 0 ? 0 : -1;
}

void rx_stop(struct receiver *rx)
{
	atomic_store(&rx->quit, true);
	pthread_join(rx->thread, NULL);
	for (size_t i = 0; i < rx->n_inst; i++)
		free(rx->run[i].ts);
	free(rx->run);
	for (int i = 0; i < RX_CONNS; i++)
		free(rx->conns[i].buf);
	pthread_mutex_destroy(&rx->mu);
}

char *agent_config(const char *dir, const char *agent_id, const struct lab *l,
				 const struct bench_platform *pf, int interval_s, int upload_interval_s)
{
	char *path = h_path(dir, "agent.json"), *token = h_path(dir, "token");
	h_write_file(token, BENCH_TOKEN "\n", (size_t)-1, 0600);
	FILE *f = fopen(path, "w");
	fprintf(f, "{ \"agent\": { \"id\": \"%s\", \"lab_code\": \"BENCH\", \"timezone\": \"Asia/Shanghai\","
		" \"state_dir\": \"%s/state\" },\n"
		"  \"platform\": { \"url\": \"https://127.0.0.1:%d/api\", \"token_file\": \"%s\", \"ca_file\": \"%s\"",
		agent_id, dir, pf->fix.port, token, pf->ca);
	if (upload_interval_s > 0)
		fprintf(f, ", \"upload_interval_s\": %d", upload_interval_s);
	fprintf(f, " },\n  \"buses\": [\n");
	for (int e = 0; e < l->n_bus; e++)
		fprintf(f, "    { \"id\": \"gw%d\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 500 }%s\n", e,
			l->ports[e], e + 1 < l->n_bus ? "," : "");
	fprintf(f, "  ],\n  \"instruments\": [\n");
	/* The in-use flag: by default the input register beside the counter (one request reads both,
	 * where collectd makes two); BENCH_INUSE=coil reads coil 5 instead (two requests, as collectd). */
	char in_use[96];
	if (strcmp(bench_env_str("BENCH_INUSE", "register"), "coil") == 0)
		snprintf(in_use, sizeof(in_use), "{ \"table\": \"coil\", \"address\": %d }", COIL_ADDR);
	else
		snprintf(in_use, sizeof(in_use), "{ \"table\": \"input\", \"address\": %d, \"above\": 0 }",
			 INUSE_REG_ADDR);
	for (int i = 0; i < l->n_inst; i++)
		fprintf(f, "    { \"id\": \"BENCH-%04d\", \"modbus\": { \"bus\": \"gw%d\", \"unit\": %d, \"interval_s\": %d,"
			" \"run_counter\": { \"table\": \"input\", \"address\": %d, \"type\": \"u32\", \"scale\": 0.000277777778 },"
			" \"in_use\": %s } }%s\n",
			i, i / l->per_bus, i % l->per_bus + 1, interval_s, RUN_ADDR, in_use, i + 1 < l->n_inst ? "," : "");
	fprintf(f, "  ]\n}\n");
	fclose(f);
	free(token);
	return path;
}

int snap_read(const char *path, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	fstat(fd, &st);
	s->mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
	char *text = malloc((size_t)st.st_size + 1);
	ssize_t got = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (got != st.st_size) {
		free(text);
		return -1;
	}
	text[got] = '\0';
	cJSON *j = cJSON_Parse(text);
	free(text);
	const cJSON *in;
	cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(j, "instruments")) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "modbus");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "polls");
		const cJSON *lp = cJSON_GetObjectItemCaseSensitive(m, "late_polls");
		const cJSON *state = cJSON_GetObjectItemCaseSensitive(m, "state");
		if (!cJSON_IsNumber(p))
			continue;
		s->n++;
		s->polls += p->valuedouble;
		s->late += cJSON_IsNumber(lp) ? lp->valuedouble : 0;
		s->polled2 += p->valuedouble >= 2;
		s->ok += cJSON_IsString(state) && strcmp(state->valuestring, "ok") == 0;
	}
	cJSON_Delete(j);
	return j ? 0 : -1;
}

int snap_next(const char *path, double after, struct snap *s, double timeout_s)
{
	double deadline = bench_mono() + timeout_s;
	while (bench_mono() < deadline) {
		struct stat st;
		if (stat(path, &st) == 0 &&
		    (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9 > after && snap_read(path, s) == 0 &&
		    s->mtime > after)
			return 0;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return -1;
}

int agent_seqs(const char *cfg, double *last, double *acked)
{
	char *argv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", (char *)cfg, (char *)"status",
			 (char *)"--json", NULL };
	char *out = NULL;
	int rc = h_run(argv, NULL, &out, NULL, 30000);
	free(argv[0]);
	cJSON *j = out ? cJSON_Parse(out) : NULL;
	free(out);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "buffer");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(b, "last_seq"), *a = cJSON_GetObjectItemCaseSensitive(b, "acked_seq");
	int r = rc == 0 && cJSON_IsNumber(l) && cJSON_IsNumber(a) ? 0 : -1;
	if (r == 0) {
		*last = l->valuedouble;
		*acked = a->valuedouble;
	}
	cJSON_Delete(j);
	return r;
}

char *collectd_config(const char *dir, const struct lab *l, int rx_port, int interval_s,
				    long read_threads)
{
	char url[96];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/collectd", rx_port);
	return collectd_config_url(dir, l, url, NULL, interval_s, read_threads);
}

long collectd_read_threads(const struct lab *l)
{
	long def = l->n_bus < BENCH_COLLECTD_THREADS_MAX ? l->n_bus : BENCH_COLLECTD_THREADS_MAX;
	return bench_env_long("BENCH_COLLECTD_READ_THREADS", def);
}

char *collectd_config_url(const char *dir, const struct lab *l, const char *url, const char *ca_file,
			  int interval_s, long read_threads)
{
	char *path = h_path(dir, "collectd.conf");
	/* write_http sends when its buffer is full: about a quarter of a second of values (~70 bytes
	 * each), within collectd's bounds. */
	long buffer_size = (long)l->n_inst * 2 * 70 / 4 / interval_s;
	buffer_size = buffer_size < 4096 ? 4096 : buffer_size > 65536 ? 65536 : buffer_size;
	FILE *f = fopen(path, "w");
	fprintf(f,
		"# written by tests/bench (see tests/bench/collectd/README.md)\n"
		"Hostname \"bench\"\nFQDNLookup false\nBaseDir \"%s\"\nPIDFile \"%s/collectd.pid\"\n"
		"PluginDir \"/usr/lib/collectd\"\nTypesDB \"/usr/share/collectd/types.db\"\n"
		"Interval %d\nReadThreads %ld\n\n"
		"LoadPlugin logfile\n<Plugin logfile>\n  LogLevel \"warning\"\n  File \"%s/collectd.log\"\n</Plugin>\n"
		"LoadPlugin modbus\nLoadPlugin write_http\n\n"
		"<Plugin modbus>\n"
		"  <Data \"run\">\n    RegisterBase %d\n    RegisterType Uint32\n    RegisterCmd ReadInput\n"
		"    Type \"counter\"\n    Instance \"run\"\n  </Data>\n"
		"  <Data \"in_use\">\n    RegisterBase %d\n    RegisterType Uint16\n    RegisterCmd ReadHolding\n"
		"    Type \"gauge\"\n    Instance \"in_use\"\n  </Data>\n",
		dir, dir, interval_s, read_threads, dir, RUN_ADDR, MIRROR_ADDR);
	for (int e = 0; e < l->n_bus; e++) {
		fprintf(f, "  <Host \"gw%d\">\n    Address \"127.0.0.1\"\n    Port \"%d\"\n    Interval %d\n", e, l->ports[e],
			interval_s);
		int n = e == l->n_bus - 1 ? l->n_inst - e * l->per_bus : l->per_bus;
		for (int u = 1; u <= n; u++)
			fprintf(f, "    <Slave %d>\n      Instance \"u%d\"\n      Collect \"run\"\n      Collect \"in_use\"\n"
				"    </Slave>\n", u, u);
		fprintf(f, "  </Host>\n");
	}
	fprintf(f, "</Plugin>\n\n<Plugin write_http>\n  <Node \"bench\">\n    URL \"%s\"\n", url);
	if (ca_file)
		fprintf(f, "    CACert \"%s\"\n    VerifyPeer true\n    VerifyHost false\n", ca_file);
	fprintf(f, "    Format \"Command\"\n    BufferSize %ld\n  </Node>\n</Plugin>\n", buffer_size);
	fclose(f);
	return path;
}

const char *collectd_check(char *why, size_t whylen)
{
	const char *bin = bench_env_str("COLLECTD", "/usr/sbin/collectd");
	if (bench_env_long("BENCH_NO_COLLECTD", 0)) {
		snprintf(why, whylen, "BENCH_NO_COLLECTD is set");
		return NULL;
	}
	if (access(bin, X_OK) != 0) {
		snprintf(why, whylen, "%s not found (Debian's collectd-core is not installed)", bin);
		return NULL;
	}
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
			 (char *)"ldd /usr/lib/collectd/modbus.so /usr/lib/collectd/write_http.so 2>&1 | grep -e 'not found' -e 'No such'",
			 NULL };
	char *out = NULL;
	int rc = h_run(argv, NULL, &out, NULL, 30000);
	if (rc == 0) {
		out[strcspn(out, "\n")] = '\0';
		snprintf(why, whylen, "the modbus or write_http plugin can't load: %s", out);
		free(out);
		return NULL;
	}
	free(out);
	return bin;
}

static bool goal_holds(double v, const char *op, double goal)
{
	if (isnan(v))
		return false;
	if (strcmp(op, "<=") == 0)
		return v <= goal;
	if (strcmp(op, ">=") == 0)
		return v >= goal;
	if (strcmp(op, "<") == 0)
		return v < goal;
	return v > goal;
}

static void goal_fig(char *out, size_t cap, double v, const char *unit)
{
	if (isnan(v))
		snprintf(out, cap, "-");
	else
		snprintf(out, cap, "%.4g%s%s", v, *unit ? " " : "", unit);
}

void bench_goal_ratio(const char *name, const char *unit, double agent, double anchor, const char *op,
		      double goal)
{
	char a[48], b[48];
	goal_fig(a, sizeof(a), agent, unit);
	goal_fig(b, sizeof(b), anchor, unit);
	double r = !isnan(agent) && !isnan(anchor) && anchor > 0 ? agent / anchor : NAN;
	char rs[32];
	goal_fig(rs, sizeof(rs), r, "");
	printf("GOAL %s: agent %s, anchor %s, ratio %s (goal %s %.3g) %s\n", name, a, b, rs, op, goal,
	       goal_holds(r, op, goal) ? "met" : "missed");
	fflush(stdout);
}

void bench_goal_abs(const char *name, const char *unit, double agent, double anchor, const char *op,
		    double goal)
{
	char a[48], b[48];
	goal_fig(a, sizeof(a), agent, unit);
	goal_fig(b, sizeof(b), anchor, unit);
	double r = !isnan(agent) && !isnan(anchor) && anchor > 0 ? agent / anchor : NAN;
	char rs[32];
	goal_fig(rs, sizeof(rs), r, "");
	printf("GOAL %s: agent %s, anchor %s, ratio %s (goal agent %s %.4g%s%s) %s\n", name, a, b, rs, op, goal,
	       *unit ? " " : "", unit, goal_holds(agent, op, goal) ? "met" : "missed");
	fflush(stdout);
}
