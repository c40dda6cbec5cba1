/* bench_modbus.c — Modbus polling side by side on this machine, in one run: labshare-agent and
 * collectd (Debian's collectd-core: modbus plugin, write_http to a receiver in this program) poll
 * the same simulated instruments: 5,000 (100 gateways x 50 units) at 10 s and 1,000 (50 x 20) at
 * 1 s, replies 0 and 20 ms late; share of polls on schedule, CPU per 1,000 polls, peak RSS. Then
 * memory at 1,000 instruments with both uploading over HTTPS, and each with its upstream stopped,
 * counting what reached it. Prints figures and issue #15's goals as GOAL lines (benchlib.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include "harness.h"

#define AGENT_ID "bench-modbus"
#define LATE_FRACTION 0.1              /* "started more than a tenth of an interval late" */
#define GOAL_ON_SCHEDULE 99.9          /* % of polls on schedule */
#define GOAL_CPU_RATIO (1.0 / 3)       /* CPU per poll, agent ÷ collectd */
#define GOAL_ANON_MB 8.0               /* the agent's RssAnon at 1,000 instruments */

/* One configuration: instruments, units per gateway (1: one TCP endpoint per instrument), the
 * poll interval, the reply delay, the measured window. */
struct conf {
	long n, per_bus, interval, delay, seconds;
	char label[64];
};

static struct {
	long seconds, outage;              /* BENCH_SECONDS (0: per configuration), BENCH_OUTAGE_SECONDS */
	const char *collectd;              /* NULL: skipped, collectd_why says why */
	char collectd_why[256];
} opt;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* One series over [t0, t1): the grid phase that puts the most readings within a tenth of an
 * interval after their slot (the kindest anchor), the slots of that grid in the window, and
 * how many of them got a reading on time. */
static void series_schedule(const struct series *se, double interval, double t0, double t1, long *on_time,
			    long *slots, long *seen)
{
	const double late = interval * LATE_FRACTION;
	double *ph = malloc((2 * se->n + 1) * sizeof(double));
	size_t n = 0;
	for (size_t i = 0; i < se->n; i++)
		if (se->ts[i] >= t0 && se->ts[i] < t1)
			ph[n++] = fmod(se->ts[i], interval);
	*seen = (long)n;
	if (n == 0) {
		*on_time = 0;
		*slots = (long)floor((t1 - t0) / interval);
		free(ph);
		return;
	}
	qsort(ph, n, sizeof(double), cmp_double);
	for (size_t i = 0; i < n; i++)
		ph[n + i] = ph[i] + interval;
	size_t best = 0, best_i = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		if (j < i)
			j = i;
		while (j < 2 * n && j < i + n && ph[j] <= ph[i] + late)
			j++;
		if (j - i > best) {
			best = j - i;
			best_i = i;
		}
	}
	double phase = ph[best_i];
	long a = (long)ceil((t0 - phase) / interval), b = (long)ceil((t1 - phase) / interval) - 1;
	*slots = b - a + 1;
	*on_time = (long)best < *slots ? (long)best : *slots;
	free(ph);
}

/* ---- results -------------------------------------------------------------------------- */

struct result {
	bool done;
	double window_s, polls, slots, on_time, cpu_s, hwm_mb, anon_mb, requests;
	/* outage runs */
	double lost, read_in_outage, got_in_outage, sealed, delivered, outage_records, run_s_sum;
	int offline;
};

static double on_schedule(const struct result *r)
{
	return r->done && r->slots > 0 ? 100.0 * r->on_time / r->slots : NAN;
}

static double cpu_per_1000(const struct result *r)
{
	return r->done && r->polls > 0 ? 1000.0 * r->cpu_s / r->polls : NAN;
}

static void print_result(const char *sys, const struct conf *c, const struct result *r)
{
	if (!r->done)
		return;
	printf("modbus: %-14s %s, %2ld ms: on schedule %6.2f %% (%.0f of %.0f slots), %.0f polls in %.1f s "
	       "(%.2f requests per poll), cpu %.3f s per 1000 polls (%.2f s), peak rss %.1f MB, RssAnon %.1f MB\n",
	       sys, c->label, c->delay, on_schedule(r), r->on_time, r->slots, r->polls, r->window_s,
	       r->polls > 0 ? r->requests / r->polls : 0, cpu_per_1000(r), r->cpu_s, r->hwm_mb, r->anon_mb);
	fflush(stdout);
}

static void take_memory(pid_t pid, struct result *res)
{
	struct bench_proc p;
	if (bench_proc_read(pid, &p) == 0) {
		res->hwm_mb = (double)p.hwm_kb / 1024.0;
		res->anon_mb = (double)p.anon_kb / 1024.0;
	}
}

/* ---- labshare-agent ------------------------------------------------------------------- */

static void run_agent(const struct conf *c, bool outage, struct result *res)
{
	memset(res, 0, sizeof(*res));
	char *dir = h_mkdtemp("bench_modbus_agent");
	struct lab l = { 0 };
	struct bench_platform pf = { 0 };
	long outage_s = opt.outage > 0 && opt.outage < c->seconds ? opt.outage : c->seconds / 2;
	if (lab_start(&l, dir, (int)c->n, (int)c->per_bus, (int)c->delay) < 0 ||
	    bench_platform_init(&pf, dir, "refplat") < 0) {
		fprintf(stderr, "bench: %s: skipped, the simulator or the platform did not start\n", c->label);
		goto out;
	}
	char *cfg = agent_config(dir, AGENT_ID, &l, &pf, (int)c->interval, 10);
	char *status = h_strdupf("%s/state/status.json", dir), *log = h_path(dir, "agent.log");
	/* The agent's wall clock is shifted so that a 15-minute slot closes where it should: in the
	 * middle of the outage, or not at all during a plain run. */
	long now = (long)bench_wall(), close_at = 5 + c->seconds / 2; /* a warm-up takes ~5 s */
	long offset = outage ? (900 - (now + close_at) % 900) % 900 : ((30 - now % 900) % 900 + 900) % 900;
	char env_offset[64];
	snprintf(env_offset, sizeof(env_offset), "LABSHARE_CLOCK_OFFSET_S=%ld", offset);
	char *env[] = { env_offset, NULL };
	/* The shipped agent ignores the variable (sealed times are evidence): the benchmark runs
	 * the same agent built with a shiftable clock (Makefile: labshare-agent-testclock). */
	char *argv[] = { strdup(h_build_path("bench/labshare-agent-testclock")), (char *)"-c", cfg, (char *)"run", NULL };
	struct h_proc *agent = h_spawn(argv, env, false, false, log);
	free(argv[0]);

	struct snap s0, s1, sa, sb;
	/* Warm-up: every instrument polled twice (connections made, first readings stored). */
	double warm_s = 60 + 3 * (double)c->interval;
	double deadline = bench_mono() + warm_s, seen = 0;
	do {
		if (snap_next(status, seen, &s0, 15) < 0)
			break;
		seen = s0.mtime;
	} while (s0.polled2 < l.n_inst && bench_mono() < deadline);
	if (s0.polled2 < l.n_inst) {
		fprintf(stderr, "bench: agent %s: only %d of %d instruments polled twice after %.0f s (see %s)\n",
			c->label, s0.polled2, l.n_inst, warm_s, log);
		goto stop;
	}
	snap_next(status, s0.mtime, &s0, 15);
	struct bench_proc p0, p1;
	bench_proc_read(agent->pid, &p0);
	lab_requests(&l, true);
	double w0 = bench_mono();
	double last0 = 0, acked0 = 0, last_a = 0, acked_a = 0;
	if (outage) {
		agent_seqs(cfg, &last0, &acked0);
		bench_sleep_until(w0 + (double)(c->seconds - outage_s) / 2);
		snap_next(status, bench_wall() - 0.001, &sa, 15);
		agent_seqs(cfg, &last_a, &acked_a);
		bench_platform_stop(&pf);
		bench_sleep_until(w0 + (double)(c->seconds + outage_s) / 2);
		if (bench_platform_start(&pf) < 0)
			goto stop;
		snap_next(status, bench_wall() - 0.001, &sb, 15);
	}
	bench_sleep_until(w0 + (double)c->seconds);
	snap_next(status, bench_wall() - 0.001, &s1, 15);
	bench_proc_read(agent->pid, &p1);
	res->requests = lab_requests(&l, false);
	res->done = true;
	res->window_s = s1.mtime - s0.mtime;
	res->polls = s1.polls - s0.polls;
	res->slots = (double)l.n_inst * res->window_s / (double)c->interval;
	res->on_time = res->polls - (s1.late - s0.late);
	if (res->on_time > res->slots)
		res->on_time = res->slots;
	res->cpu_s = p1.cpu_s - p0.cpu_s;
	res->hwm_mb = (double)p1.hwm_kb / 1024.0;
	res->anon_mb = (double)p1.anon_kb / 1024.0;
	res->offline = l.n_inst - s1.ok;
	if (res->offline > 0)
		printf("modbus: note: %d instruments were not readable at the end of the window (see %s)\n", res->offline,
		       log);
	if (outage) {
		/* Everything sealed must reach the platform once it is back: wait for the ack. */
		double last = 0, acked = 0;
		double until = bench_mono() + 180;
		while (bench_mono() < until && (agent_seqs(cfg, &last, &acked) < 0 || acked < last || last <= last_a)) {
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
		}
		res->read_in_outage = sb.polls - sa.polls;
		res->sealed = last;
		res->delivered = acked;
		res->outage_records = last - last_a;
		res->lost = last - acked;
		char *head = h_request(pf.fix.p, "head " AGENT_ID, 10000);
		cJSON *hj = head ? cJSON_Parse(head) : NULL;
		const cJSON *hs = cJSON_GetObjectItemCaseSensitive(hj, "seq");
		if (cJSON_IsNumber(hs))
			res->delivered = hs->valuedouble;
		res->lost = last - res->delivered;
		cJSON_Delete(hj);
		free(head);
		bench_platform_stop(&pf);
		sqlite3 *db;
		if (sqlite3_open_v2(pf.fix.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
			sqlite3_stmt *st;
			if (sqlite3_prepare_v2(db, "SELECT COUNT(*), COALESCE(SUM(json_extract(line, '$.run_s')), 0) FROM records"
					       " WHERE json_extract(line, '$.kind') = 'run'", -1, &st, NULL) == SQLITE_OK &&
			    sqlite3_step(st) == SQLITE_ROW) {
				res->got_in_outage = (double)sqlite3_column_int64(st, 0);
				res->run_s_sum = sqlite3_column_double(st, 1);
			}
			sqlite3_finalize(st);
		}
		sqlite3_close(db);
		printf("modbus: labshare-agent with the platform stopped %ld s of %ld: %.0f polls while it was down, each "
		       "folded into the buffer; %.0f records sealed from the stop on (the 15-min slot closed while it was "
		       "down, %.0f s after start: %.0f run records on the platform now, %.0f s of run time = %.1f s per "
		       "instrument of the %.0f s it ran); the platform holds %.0f of %.0f sealed records after it came back: "
		       "%.0f lost\n",
		       outage_s, c->seconds, res->read_in_outage, res->outage_records, (double)close_at,
		       res->got_in_outage, res->run_s_sum, res->run_s_sum / l.n_inst, (double)close_at, res->delivered,
		       res->sealed, res->lost);
	}
stop:
	h_stop(agent, 20000);
	h_proc_free(agent);
	free(status);
	free(log);
	free(cfg);
out:
	bench_platform_free(&pf);
	lab_stop(&l);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(dir);
}

/* ---- collectd --------------------------------------------------------------------------- */

static bool rx_warm(struct receiver *rx, int n_inst)
{
	pthread_mutex_lock(&rx->mu);
	int ready = 0;
	for (int i = 0; i < n_inst; i++)
		ready += rx->run[i].n >= 2;
	pthread_mutex_unlock(&rx->mu);
	return ready == n_inst;
}

static void run_collectd(const struct conf *c, bool outage, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (!opt.collectd)
		return;
	char *dir = h_mkdtemp("bench_modbus_collectd");
	struct lab l;
	struct receiver rx;
	long outage_s = opt.outage > 0 && opt.outage < c->seconds ? opt.outage : c->seconds / 2;
	double interval = (double)c->interval;
	if (lab_start(&l, dir, (int)c->n, (int)c->per_bus, (int)c->delay) < 0 ||
	    rx_start(&rx, (size_t)c->n, (int)c->per_bus) < 0) {
		fprintf(stderr, "bench: collectd %s: skipped, the simulator or the receiver did not start\n", c->label);
		lab_stop(&l);
		h_rmtree(dir);
		free(dir);
		return;
	}
	char *cfg = collectd_config(dir, &l, rx.port, (int)c->interval, collectd_read_threads(&l));
	char *log = h_path(dir, "collectd.out");
	char *argv[] = { (char *)opt.collectd, (char *)"-f", (char *)"-C", cfg, NULL };
	struct h_proc *cd = h_spawn(argv, NULL, false, false, log);
	double warm_s = 60 + 3 * interval;
	double deadline = bench_mono() + warm_s;
	while (!rx_warm(&rx, l.n_inst) && bench_mono() < deadline && h_wait(cd, 0) < 0) {
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (!rx_warm(&rx, l.n_inst)) {
		fprintf(stderr, "bench: collectd %s: not every instrument reached the receiver twice in %.0f s (see %s)\n",
			c->label, warm_s, log);
		goto stop;
	}
	struct bench_proc p0, p1;
	bench_proc_read(cd->pid, &p0);
	lab_requests(&l, true);
	double w0 = bench_mono(), t0 = bench_wall();
	double ta = 0, tb = 0, req_a = 0, req_b = 0;
	if (outage) {
		bench_sleep_until(w0 + (double)(c->seconds - outage_s) / 2);
		ta = bench_wall();
		req_a = lab_requests(&l, false);
		atomic_store(&rx.listening_wanted, false);
		bench_sleep_until(w0 + (double)(c->seconds + outage_s) / 2);
		tb = bench_wall();
		req_b = lab_requests(&l, false);
		atomic_store(&rx.listening_wanted, true);
	}
	bench_sleep_until(w0 + (double)c->seconds);
	double t1 = bench_wall();
	bench_proc_read(cd->pid, &p1);
	res->requests = lab_requests(&l, false);
	/* What collectd read before t1 may still sit in write_http's buffer: wait for it to be sent. */
	deadline = bench_mono() + 30 + interval;
	for (;;) {
		pthread_mutex_lock(&rx.mu);
		double newest = rx.newest;
		pthread_mutex_unlock(&rx.mu);
		if (newest > t1 + 2 || bench_mono() > deadline)
			break;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	h_stop(cd, 20000);
	pthread_mutex_lock(&rx.mu);
	long on_time = 0, slots = 0, seen = 0, in_outage = 0;
	for (int i = 0; i < l.n_inst; i++) {
		long o, s, n;
		series_schedule(&rx.run[i], interval, t0, t1, &o, &s, &n);
		on_time += o;
		slots += s;
		seen += n;
		for (size_t k = 0; outage && k < rx.run[i].n; k++)
			in_outage += rx.run[i].ts[k] >= ta && rx.run[i].ts[k] < tb;
	}
	pthread_mutex_unlock(&rx.mu);
	res->done = true;
	res->window_s = t1 - t0;
	res->slots = (double)slots;
	res->on_time = (double)on_time;
	/* Polls = what collectd read from the devices (2 requests each), whether or not it arrived. */
	res->polls = res->requests / 2;
	res->cpu_s = p1.cpu_s - p0.cpu_s;
	res->hwm_mb = (double)p1.hwm_kb / 1024.0;
	res->anon_mb = (double)p1.anon_kb / 1024.0;
	res->delivered = (double)seen;
	res->lost = res->polls - (double)seen;
	if (outage) {
		res->read_in_outage = (req_b - req_a) / 2;
		res->got_in_outage = (double)in_outage;
		printf("modbus: collectd with the receiver stopped %ld s of %ld: read %.0f run values (%.0f while it was "
		       "down), %.0f reached the receiver (%.0f from the outage): %.0f lost (%.1f %%), the in-use values "
		       "likewise\n",
		       outage_s, c->seconds, res->polls, res->read_in_outage, res->delivered, res->got_in_outage,
		       res->lost, res->polls > 0 ? 100.0 * res->lost / res->polls : 0);
	} else if (res->lost > 0.01 * res->polls) {
		printf("modbus: note: %.0f of %.0f run values read by collectd did not reach the receiver\n", res->lost,
		       res->polls);
	}
stop:
	h_stop(cd, 20000);
	h_proc_free(cd);
	rx_stop(&rx);
	free(cfg);
	free(log);
	lab_stop(&l);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(dir);
}

/* collectd uploading over HTTPS as the agent does: write_http to the platform fixture (refplat,
 * same certificates). refplat answers its POSTs with an error (it knows no collectd feed), which
 * costs collectd nothing it would not spend on a success: the TLS session and the buffers are
 * the same. Only memory is taken; the window starts once every instrument was read twice. */
static void run_collectd_https(const struct conf *c, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (!opt.collectd)
		return;
	char *dir = h_mkdtemp("bench_modbus_collectd_https");
	struct lab l = { 0 };
	struct bench_platform pf = { 0 };
	if (lab_start(&l, dir, (int)c->n, (int)c->per_bus, (int)c->delay) < 0 ||
	    bench_platform_init(&pf, dir, "refplat") < 0) {
		fprintf(stderr, "bench: collectd over HTTPS: skipped, the simulator or the platform did not start\n");
		bench_platform_free(&pf);
		lab_stop(&l);
		h_rmtree(dir);
		free(dir);
		return;
	}
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/api/collectd", pf.fix.port);
	char *cfg = collectd_config_url(dir, &l, url, pf.ca, (int)c->interval, collectd_read_threads(&l));
	char *log = h_path(dir, "collectd.out");
	char *argv[] = { (char *)opt.collectd, (char *)"-f", (char *)"-C", cfg, NULL };
	struct h_proc *cd = h_spawn(argv, NULL, false, false, log);
	double deadline = bench_mono() + 60 + 3 * (double)c->interval;
	lab_requests(&l, true);
	while (lab_requests(&l, false) < 4.0 * (double)l.n_inst && bench_mono() < deadline && h_wait(cd, 0) < 0) {
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (lab_requests(&l, false) >= 4.0 * (double)l.n_inst) {
		struct bench_proc p0, p1;
		bench_proc_read(cd->pid, &p0);
		lab_requests(&l, true);
		double w0 = bench_mono();
		bench_sleep_until(w0 + (double)c->seconds);
		bench_proc_read(cd->pid, &p1);
		res->done = true;
		res->window_s = bench_mono() - w0;
		res->requests = lab_requests(&l, false);
		res->polls = res->requests / 2;
		res->cpu_s = p1.cpu_s - p0.cpu_s;
		take_memory(cd->pid, res);
		printf("modbus: collectd over HTTPS (write_http to refplat) %s: %.0f polls in %.1f s, cpu %.3f s per 1000 "
		       "polls, peak rss %.1f MB, RssAnon %.1f MB\n",
		       c->label, res->polls, res->window_s, cpu_per_1000(res), res->hwm_mb, res->anon_mb);
	} else {
		fprintf(stderr, "bench: collectd over HTTPS %s: did not read every instrument twice (see %s)\n", c->label,
			log);
	}
	h_stop(cd, 20000);
	h_proc_free(cd);
	free(cfg);
	free(log);
	bench_platform_free(&pf);
	lab_stop(&l);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(dir);
}

static void goals(const struct conf *c, const struct result *a, const struct result *cd)
{
	char name[160];
	snprintf(name, sizeof(name), "modbus %s, %ld ms, polls on schedule", c->label, c->delay);
	bench_goal_abs(name, "%", on_schedule(a), cd->done ? on_schedule(cd) : NAN, ">=", GOAL_ON_SCHEDULE);
	snprintf(name, sizeof(name), "modbus %s, %ld ms, CPU per 1000 polls", c->label, c->delay);
	bench_goal_ratio(name, "s", cpu_per_1000(a), cd->done ? cpu_per_1000(cd) : NAN, "<=", GOAL_CPU_RATIO);
}

/* "5000/50/10": instruments / units per gateway / interval s. */
static int parse_conf(const char *s, size_t len, struct conf *c)
{
	char buf[64];
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *p = buf, *end;
	long v[3];
	for (int i = 0; i < 3; i++) {
		v[i] = strtol(p, &end, 10);
		if (end == p || v[i] < 1 || (i < 2 && *end != '/') || (i == 2 && *end))
			return -1;
		p = end + 1;
	}
	memset(c, 0, sizeof(*c));
	c->n = v[0];
	c->per_bus = v[1];
	c->interval = v[2];
	/* Windows long enough for 4 polls of every instrument, at least 30 s: the figures are stable there. */
	c->seconds = opt.seconds > 0 ? opt.seconds : (4 * c->interval > 30 ? 4 * c->interval : 30);
	snprintf(c->label, sizeof(c->label), "%ld at %ld s (%ldx%ld)", c->n, c->interval,
		 (c->n + c->per_bus - 1) / c->per_bus, c->per_bus);
	return 0;
}

int main(void)
{
	/* A child that died must show as an error here, not kill the benchmark on a write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	opt.seconds = bench_env_long("BENCH_SECONDS", 0);
	opt.outage = bench_env_long("BENCH_OUTAGE_SECONDS", 0);
	const char *confs = bench_env_str("BENCH_CONFIGS", "5000/50/10 1000/20/1");
	const char *delays = bench_env_str("BENCH_DELAYS", "0 20");
	long mem_n = bench_env_long("BENCH_MEM_INSTRUMENTS", 1000);
	bool do_outage = bench_env_long("BENCH_OUTAGE", 1) != 0;
	bench_machine("modbus");
	opt.collectd = collectd_check(opt.collectd_why, sizeof(opt.collectd_why));
	if (!opt.collectd)
		printf("modbus: collectd: skipped: %s\n", opt.collectd_why);
	printf("modbus: configurations (instruments/units per gateway/interval s) %s, reply delays %s ms; windows %s; "
	       "both read per poll the u32 run counter (input registers 100-101, FC 4) and the in-use flag: the agent "
	       "input 102 beside it (one FC 4 request for 100-102; BENCH_INUSE=coil: coil 5, FC 1, two requests), "
	       "collectd its holding-register mirror 6 (FC 3, two requests per poll); collectd with "
	       "ReadThreads = one per gateway, at most %d (BENCH_COLLECTD_READ_THREADS)\n",
	       confs, delays, opt.seconds > 0 ? "BENCH_SECONDS" : "4 intervals, at least 30 s", BENCH_COLLECTD_THREADS_MAX);
	fflush(stdout);

	struct conf mem_conf = { 0 }, outage_conf = { 0 };
	struct result mem_agent = { 0 };
	for (const char *p = confs; *p;) {
		size_t len = strcspn(p, " ,");
		struct conf c;
		if (parse_conf(p, len, &c) < 0) {
			fprintf(stderr, "bench: BENCH_CONFIGS: \"%.*s\" is not instruments/units/interval\n", (int)len, p);
			return 64;
		}
		p += len;
		p += strspn(p, " ,");
		for (const char *d = delays; *d;) {
			char *end;
			c.delay = strtol(d, &end, 10);
			if (end == d)
				break;
			d = end + strspn(end, " ,");
			struct result a, cd;
			run_agent(&c, false, &a);
			print_result("labshare-agent", &c, &a);
			run_collectd(&c, false, &cd);
			print_result("collectd", &c, &cd);
			goals(&c, &a, &cd);
			if (c.n == mem_n && c.delay == 0 && !mem_conf.n) {
				mem_conf = c;
				mem_agent = a;
			}
			if (c.interval == 1 && c.delay == 0 && !outage_conf.n)
				outage_conf = c;
		}
	}
	if (mem_conf.n) {
		/* The agent's figure is from its run above (it uploads over HTTPS every 10 s there). */
		struct result cd;
		struct conf c = mem_conf;
		c.seconds = opt.seconds > 0 ? opt.seconds : 30;
		run_collectd_https(&c, &cd);
		char name[160];
		snprintf(name, sizeof(name), "modbus %s, HTTPS, peak RSS (VmHWM)", c.label);
		bench_goal_ratio(name, "MB", mem_agent.done ? mem_agent.hwm_mb : NAN, cd.done ? cd.hwm_mb : NAN, "<=", 1.0);
		snprintf(name, sizeof(name), "modbus %s, HTTPS, RssAnon", c.label);
		bench_goal_abs(name, "MB", mem_agent.done ? mem_agent.anon_mb : NAN, cd.done ? cd.anon_mb : NAN, "<=",
			       GOAL_ANON_MB);
	}
	if (do_outage && outage_conf.n) {
		struct conf c = outage_conf;
		c.seconds = opt.seconds > 0 ? opt.seconds : 30;
		struct result a, cd;
		run_agent(&c, true, &a);
		print_result("labshare-agent", &c, &a);
		run_collectd(&c, true, &cd);
		print_result("collectd", &c, &cd);
		bench_goal_abs("modbus platform outage, records lost", "records", a.done ? a.lost : NAN,
			       cd.done ? cd.lost : NAN, "<=", 0);
	}
	return 0;
}
