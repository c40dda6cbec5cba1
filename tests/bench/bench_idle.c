/* bench_idle.c — what labshare-agent costs when there is little to do: 200 instruments polled
 * every 10 s, the platform reachable and nothing to upload. CPU and wake-ups (context switches of
 * every thread) per second over a window, beside the polls themselves and collectd doing the same
 * polling on the same machine. Prints figures only. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include "harness.h"

#define AGENT_ID "bench-idle"

static long seconds, instruments, per_gateway, interval_s;

struct idle {
	bool done;
	double window_s, cpu_s, wakeups, vol, invol, hwm_mb, requests;
	int threads;
};

static void print_idle(const char *who, const struct idle *r)
{
	if (!r->done)
		return;
	printf("idle: %-14s cpu %.3f s in %.1f s (%.3f %% of one CPU), %.1f wake-ups/s (%.1f voluntary + %.1f "
	       "involuntary, %d threads), %.1f requests/s answered, peak rss %.1f MB\n",
	       who, r->cpu_s, r->window_s, 100.0 * r->cpu_s / r->window_s, r->wakeups / r->window_s,
	       r->vol / r->window_s, r->invol / r->window_s, r->threads, r->requests / r->window_s, r->hwm_mb);
	fflush(stdout);
}

/* The window: CPU and context switches of pid over `seconds`, and what the simulator answered. */
static void measure(pid_t pid, struct lab *l, struct idle *r)
{
	struct bench_proc p0, p1;
	lab_requests(l, true);
	bench_proc_read(pid, &p0);
	double t0 = bench_mono();
	bench_sleep_until(t0 + (double)seconds);
	bench_proc_read(pid, &p1);
	r->window_s = bench_mono() - t0;
	r->requests = lab_requests(l, false);
	r->cpu_s = p1.cpu_s - p0.cpu_s;
	r->vol = (double)(p1.vol - p0.vol);
	r->invol = (double)(p1.invol - p0.invol);
	r->wakeups = r->vol + r->invol;
	r->threads = p1.threads;
	r->hwm_mb = (double)p1.hwm_kb / 1024.0;
	r->done = true;
}

struct settled {
	const char *cfg, *status;
	int n;
};

/* Every instrument polled and everything sealed so far acknowledged: the steady state. */
static bool agent_settled(void *arg)
{
	struct settled *s = arg;
	struct snap sn;
	double last = 0, acked = -1;
	return snap_read(s->status, &sn) == 0 && sn.ok == s->n && agent_seqs(s->cfg, &last, &acked) == 0 &&
	       last > 0 && acked == last;
}

static void run_agent(struct idle *r)
{
	memset(r, 0, sizeof(*r));
	char *dir = h_mkdtemp("bench_idle_agent");
	struct lab l = { 0 };
	struct bench_platform pf = { 0 };
	if (lab_start(&l, dir, (int)instruments, (int)per_gateway, 0) < 0 || bench_platform_init(&pf, dir, "refplat") < 0)
		goto out;
	char *cfg = agent_config(dir, AGENT_ID, &l, &pf, (int)interval_s, 0);
	char *status = h_strdupf("%s/state/status.json", dir), *log = h_path(dir, "agent.log");
	char *argv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", cfg, (char *)"run", NULL };
	struct h_proc *agent = h_spawn(argv, NULL, false, false, log);
	free(argv[0]);
	struct settled s = { cfg, status, l.n_inst };
	if (h_wait_for(agent_settled, &s, (int)(interval_s * 1000 * 3 + 30000)))
		measure(agent->pid, &l, r);
	else
		fprintf(stderr, "bench: the agent did not settle (see %s)\n", log);
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

struct warm {
	struct receiver *rx;
	int n;
};

static bool collectd_warm(void *arg)
{
	struct warm *w = arg;
	pthread_mutex_lock(&w->rx->mu);
	int ready = 0;
	for (int i = 0; i < w->n; i++)
		ready += w->rx->run[i].n >= 1;
	pthread_mutex_unlock(&w->rx->mu);
	return ready == w->n;
}

static void run_collectd(const char *bin, long read_threads, struct idle *r)
{
	memset(r, 0, sizeof(*r));
	char *dir = h_mkdtemp("bench_idle_collectd");
	struct lab l = { 0 };
	struct receiver rx;
	if (lab_start(&l, dir, (int)instruments, (int)per_gateway, 0) < 0 || rx_start(&rx, (size_t)instruments, (int)per_gateway) < 0) {
		lab_stop(&l);
		h_rmtree(dir);
		free(dir);
		return;
	}
	char *cfg = collectd_config(dir, &l, rx.port, (int)interval_s, read_threads), *log = h_path(dir, "collectd.out");
	char *argv[] = { (char *)bin, (char *)"-f", (char *)"-C", cfg, NULL };
	struct h_proc *cd = h_spawn(argv, NULL, false, false, log);
	struct warm w = { &rx, l.n_inst };
	if (h_wait_for(collectd_warm, &w, (int)(interval_s * 1000 * 3 + 30000)))
		measure(cd->pid, &l, r);
	else
		fprintf(stderr, "bench: collectd did not deliver from every instrument (see %s)\n", log);
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

int main(void)
{
	/* A child that died must show as an error here, not kill the benchmark on a write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	seconds = bench_env_long("BENCH_SECONDS", 60);
	instruments = bench_env_long("BENCH_IDLE_INSTRUMENTS", 200);
	per_gateway = bench_env_long("BENCH_GATEWAY_UNITS", 20);
	interval_s = bench_env_long("BENCH_IDLE_INTERVAL", 10);
	if (seconds < 1 || instruments < 1 || per_gateway < 1 || interval_s < 1)
		return 64;
	long gateways = (instruments + per_gateway - 1) / per_gateway;
	long read_threads = bench_env_long("BENCH_COLLECTD_READ_THREADS",
					   gateways < BENCH_COLLECTD_THREADS_MAX ? gateways : BENCH_COLLECTD_THREADS_MAX);
	bench_machine("idle");
	printf("idle: %ld instruments (%ld gateways x %ld) polled every %ld s = %.1f polls/s (2 requests each), platform "
	       "reachable, nothing pending; %ld s window\n",
	       instruments, gateways, per_gateway, interval_s, (double)instruments / (double)interval_s, seconds);
	struct idle a, c;
	run_agent(&a);
	print_idle("labshare-agent", &a);
	char why[256];
	const char *bin = collectd_check(why, sizeof(why));
	memset(&c, 0, sizeof(c));
	if (bin) {
		run_collectd(bin, read_threads, &c);
		print_idle("collectd", &c);
	} else {
		printf("idle: collectd: skipped: %s\n", why);
	}
	double polls = (double)instruments / (double)interval_s;
	if (a.done)
		printf("idle: labshare-agent: %.2f wake-ups and %.0f us of CPU per poll\n", a.wakeups / a.window_s / polls,
		       1e6 * a.cpu_s / a.window_s / polls);
	if (a.done && c.done && c.cpu_s > 0 && c.wakeups > 0)
		printf("idle: ratio labshare-agent/collectd (ReadThreads %ld): cpu %.2fx, wake-ups %.2fx\n", read_threads,
		       a.cpu_s / c.cpu_s, a.wakeups / c.wakeups);
	/* Issue #15: both per second at most collectd's, in the same run. */
	char name[128];
	snprintf(name, sizeof(name), "idle %ld at %ld s, CPU per second", instruments, interval_s);
	bench_goal_ratio(name, "% of a CPU", a.done ? 100.0 * a.cpu_s / a.window_s : NAN,
			 c.done ? 100.0 * c.cpu_s / c.window_s : NAN, "<=", 1.0);
	snprintf(name, sizeof(name), "idle %ld at %ld s, wake-ups per second", instruments, interval_s);
	bench_goal_ratio(name, "/s", a.done ? a.wakeups / a.window_s : NAN, c.done ? c.wakeups / c.window_s : NAN, "<=",
			 1.0);
	return 0;
}
