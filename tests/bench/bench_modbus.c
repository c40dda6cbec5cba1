/* bench_modbus.c — Modbus polling side by side on this machine, in one run: labshare-agent and
 * collectd (Debian's collectd-core: modbus plugin, write_http to a receiver in this program) poll
 * the same simulated instruments at 1 s; share of polls on schedule, CPU per 1,000 polls, peak RSS.
 * Then each with its upstream stopped for 30 s, counting what reached it. Prints figures only. */
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
#define INTERVAL_S 1.0
#define LATE_S (INTERVAL_S / 10)       /* "started more than a tenth of an interval late" */

static struct {
	long seconds, outage, instruments, per_gateway, read_threads;
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
static void series_schedule(const struct series *se, double t0, double t1, long *on_time, long *slots, long *seen)
{
	double *ph = malloc((2 * se->n + 1) * sizeof(double));
	size_t n = 0;
	for (size_t i = 0; i < se->n; i++)
		if (se->ts[i] >= t0 && se->ts[i] < t1)
			ph[n++] = fmod(se->ts[i], INTERVAL_S);
	*seen = (long)n;
	if (n == 0) {
		*on_time = 0;
		*slots = (long)floor((t1 - t0) / INTERVAL_S);
		free(ph);
		return;
	}
	qsort(ph, n, sizeof(double), cmp_double);
	for (size_t i = 0; i < n; i++)
		ph[n + i] = ph[i] + INTERVAL_S;
	size_t best = 0, best_i = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		if (j < i)
			j = i;
		while (j < 2 * n && j < i + n && ph[j] <= ph[i] + LATE_S)
			j++;
		if (j - i > best) {
			best = j - i;
			best_i = i;
		}
	}
	double phase = ph[best_i];
	long a = (long)ceil((t0 - phase) / INTERVAL_S), b = (long)ceil((t1 - phase) / INTERVAL_S) - 1;
	*slots = b - a + 1;
	*on_time = (long)best < *slots ? (long)best : *slots;
	free(ph);
}

/* ---- results -------------------------------------------------------------------------- */

struct result {
	bool done;
	double window_s, polls, slots, on_time, cpu_s, hwm_mb, requests;
	/* outage runs */
	double lost, read_in_outage, got_in_outage, sealed, delivered, outage_records, run_s_sum;
	int offline;
};

static void print_result(const char *sys, const char *layout, int delay, const struct result *r)
{
	if (!r->done)
		return;
	printf("modbus: %-13s %-17s delay %2d ms: on schedule %6.2f %% (%.0f of %.0f slots), %.0f polls in %.1f s, "
	       "cpu %.3f s per 1000 polls (%.2f s), peak rss %.1f MB\n",
	       sys, layout, delay, r->slots > 0 ? 100.0 * r->on_time / r->slots : 0, r->on_time, r->slots, r->polls,
	       r->window_s, r->polls > 0 ? 1000.0 * r->cpu_s / r->polls : 0, r->cpu_s, r->hwm_mb);
	fflush(stdout);
}

/* ---- labshare-agent ------------------------------------------------------------------- */

static void run_agent(const char *layout, int per_bus, int delay, bool outage, struct result *res)
{
	memset(res, 0, sizeof(*res));
	char *dir = h_mkdtemp("bench_modbus_agent");
	struct lab l = { 0 };
	struct bench_platform pf = { 0 };
	if (lab_start(&l, dir, (int)opt.instruments, per_bus, delay) < 0 || bench_platform_init(&pf, dir, "refplat") < 0) {
		fprintf(stderr, "bench: %s: skipped, the simulator or the platform did not start\n", layout);
		goto out;
	}
	char *cfg = agent_config(dir, AGENT_ID, &l, &pf, 1, 10);
	char *status = h_strdupf("%s/state/status.json", dir), *log = h_path(dir, "agent.log");
	/* The agent's wall clock is shifted so that a 15-minute slot closes where it should: in the
	 * middle of the outage, or not at all during a plain run. */
	long now = (long)bench_wall(), close_at = 5 + opt.seconds / 2; /* a warm-up takes ~5 s */
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
	double deadline = bench_mono() + 60, seen = 0;
	do {
		if (snap_next(status, seen, &s0, 10) < 0)
			break;
		seen = s0.mtime;
	} while (s0.polled2 < l.n_inst && bench_mono() < deadline);
	if (s0.polled2 < l.n_inst) {
		fprintf(stderr, "bench: agent %s: only %d of %d instruments polled twice after 60 s (see %s)\n", layout,
			s0.polled2, l.n_inst, log);
		goto stop;
	}
	snap_next(status, s0.mtime, &s0, 5);
	struct bench_proc p0, p1;
	bench_proc_read(agent->pid, &p0);
	lab_requests(&l, true);
	double w0 = bench_mono();
	double last0 = 0, acked0 = 0, last_a = 0, acked_a = 0;
	if (outage) {
		agent_seqs(cfg, &last0, &acked0);
		bench_sleep_until(w0 + (double)(opt.seconds - opt.outage) / 2);
		snap_next(status, bench_wall() - 0.001, &sa, 5);
		agent_seqs(cfg, &last_a, &acked_a);
		bench_platform_stop(&pf);
		bench_sleep_until(w0 + (double)(opt.seconds + opt.outage) / 2);
		if (bench_platform_start(&pf) < 0)
			goto stop;
		snap_next(status, bench_wall() - 0.001, &sb, 5);
	}
	bench_sleep_until(w0 + (double)opt.seconds);
	snap_next(status, bench_wall() - 0.001, &s1, 5);
	bench_proc_read(agent->pid, &p1);
	res->requests = lab_requests(&l, false);
	res->done = true;
	res->window_s = s1.mtime - s0.mtime;
	res->polls = s1.polls - s0.polls;
	res->slots = (double)l.n_inst * res->window_s / INTERVAL_S;
	res->on_time = res->polls - (s1.late - s0.late);
	if (res->on_time > res->slots)
		res->on_time = res->slots;
	res->cpu_s = p1.cpu_s - p0.cpu_s;
	res->hwm_mb = (double)p1.hwm_kb / 1024.0;
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
		       opt.outage, opt.seconds, res->read_in_outage, res->outage_records, (double)close_at,
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

static void run_collectd(const char *layout, int per_bus, int delay, bool outage, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (!opt.collectd)
		return;
	char *dir = h_mkdtemp("bench_modbus_collectd");
	struct lab l;
	struct receiver rx;
	if (lab_start(&l, dir, (int)opt.instruments, per_bus, delay) < 0 || rx_start(&rx, (size_t)opt.instruments, per_bus) < 0) {
		fprintf(stderr, "bench: collectd %s: skipped, the simulator or the receiver did not start\n", layout);
		lab_stop(&l);
		h_rmtree(dir);
		free(dir);
		return;
	}
	char *cfg = collectd_config(dir, &l, rx.port, 1, opt.read_threads), *log = h_path(dir, "collectd.out");
	char *argv[] = { (char *)opt.collectd, (char *)"-f", (char *)"-C", cfg, NULL };
	struct h_proc *cd = h_spawn(argv, NULL, false, false, log);
	double deadline = bench_mono() + 60;
	while (!rx_warm(&rx, l.n_inst) && bench_mono() < deadline && h_wait(cd, 0) < 0) {
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (!rx_warm(&rx, l.n_inst)) {
		fprintf(stderr, "bench: collectd %s: not every instrument reached the receiver twice in 60 s (see %s)\n",
			layout, log);
		goto stop;
	}
	struct bench_proc p0, p1;
	bench_proc_read(cd->pid, &p0);
	lab_requests(&l, true);
	double w0 = bench_mono(), t0 = bench_wall();
	double ta = 0, tb = 0, req_a = 0, req_b = 0;
	if (outage) {
		bench_sleep_until(w0 + (double)(opt.seconds - opt.outage) / 2);
		ta = bench_wall();
		req_a = lab_requests(&l, false);
		atomic_store(&rx.listening_wanted, false);
		bench_sleep_until(w0 + (double)(opt.seconds + opt.outage) / 2);
		tb = bench_wall();
		req_b = lab_requests(&l, false);
		atomic_store(&rx.listening_wanted, true);
	}
	bench_sleep_until(w0 + (double)opt.seconds);
	double t1 = bench_wall();
	bench_proc_read(cd->pid, &p1);
	res->requests = lab_requests(&l, false);
	/* What collectd read before t1 may still sit in write_http's buffer: wait for it to be sent. */
	deadline = bench_mono() + 30;
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
		series_schedule(&rx.run[i], t0, t1, &o, &s, &n);
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
	res->delivered = (double)seen;
	res->lost = res->polls - (double)seen;
	if (outage) {
		res->read_in_outage = (req_b - req_a) / 2;
		res->got_in_outage = (double)in_outage;
		printf("modbus: collectd with the receiver stopped %ld s of %ld: read %.0f run values (%.0f while it was "
		       "down), %.0f reached the receiver (%.0f from the outage): %.0f lost (%.1f %%), the in-use values "
		       "likewise\n",
		       opt.outage, opt.seconds, res->polls, res->read_in_outage, res->delivered, res->got_in_outage,
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

static void ratio(const char *what, const struct result *a, const struct result *c)
{
	if (!a->done || !c->done || a->polls <= 0 || c->polls <= 0)
		return;
	double acpu = a->cpu_s / a->polls, ccpu = c->cpu_s / c->polls;
	printf("modbus: ratio %-30s labshare-agent/collectd: cpu per poll %.2fx, peak rss %.2fx, on schedule %.2f vs %.2f %%\n",
	       what, ccpu > 0 ? acpu / ccpu : 0, c->hwm_mb > 0 ? a->hwm_mb / c->hwm_mb : 0, 100.0 * a->on_time / a->slots,
	       100.0 * c->on_time / c->slots);
}

int main(void)
{
	/* A child that died must show as an error here, not kill the benchmark on a write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	opt.seconds = bench_env_long("BENCH_SECONDS", 60);
	opt.outage = bench_env_long("BENCH_OUTAGE_SECONDS", opt.seconds / 2);
	opt.instruments = bench_env_long("BENCH_INSTRUMENTS", 1000);
	opt.per_gateway = bench_env_long("BENCH_GATEWAY_UNITS", 20);
	opt.read_threads = bench_env_long("BENCH_COLLECTD_READ_THREADS", 32);
	const char *delays = bench_env_str("BENCH_DELAYS", "0 20");
	const char *layouts = bench_env_str("BENCH_LAYOUTS", "gateways direct");
	bool do_outage = bench_env_long("BENCH_OUTAGE", 1) != 0;
	if (opt.outage >= opt.seconds)
		opt.outage = opt.seconds / 2;
	bench_machine("modbus");
	opt.collectd = collectd_check(opt.collectd_why, sizeof(opt.collectd_why));
	if (!opt.collectd)
		printf("modbus: collectd: skipped: %s\n", opt.collectd_why);
	printf("modbus: %ld instruments (u32 run counter + in-use coil, 2 requests per poll) at 1 s, %ld s per "
	       "configuration; gateways = %ld TCP gateways x %ld units (one request at a time per gateway), direct = "
	       "one TCP endpoint per instrument; collectd with ReadThreads %ld (the agent's pool is up to 32)\n",
	       opt.instruments, opt.seconds, (opt.instruments + opt.per_gateway - 1) / opt.per_gateway, opt.per_gateway,
	       opt.read_threads);
	fflush(stdout);

	for (const char *lay = layouts; *lay;) {
		size_t len = strcspn(lay, " ,");
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)len, lay);
		lay += len;
		lay += strspn(lay, " ,");
		int per_bus = strcmp(name, "direct") == 0 ? 1 : (int)opt.per_gateway;
		char label[48];
		snprintf(label, sizeof(label), "%s %ldx%d", name, (opt.instruments + per_bus - 1) / per_bus, per_bus);
		for (const char *d = delays; *d;) {
			char *end;
			int delay = (int)strtol(d, &end, 10);
			if (end == d)
				break;
			d = end + strspn(end, " ,");
			struct result a, c;
			run_agent(label, per_bus, delay, false, &a);
			print_result("labshare-agent", label, delay, &a);
			run_collectd(label, per_bus, delay, false, &c);
			print_result("collectd", label, delay, &c);
			char what[64];
			snprintf(what, sizeof(what), "%s, %d ms", label, delay);
			ratio(what, &a, &c);
		}
	}
	if (do_outage) {
		int per_bus = (int)opt.per_gateway;
		char label[48];
		snprintf(label, sizeof(label), "gateways %ldx%d", (opt.instruments + per_bus - 1) / per_bus, per_bus);
		struct result a, c;
		run_agent(label, per_bus, 0, true, &a);
		print_result("labshare-agent", label, 0, &a);
		run_collectd(label, per_bus, 0, true, &c);
		print_result("collectd", label, 0, &c);
	}
	return 0;
}
