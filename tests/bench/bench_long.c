/* bench_long.c — memory that does not grow with hours of running (issue #15: "a 30-minute run at
 * 1,000 instruments: RSS flat after the first minute"). Off unless BENCH_LONG_MINUTES is set
 * (`make bench` leaves it off: BENCH_LONG_MINUTES=30 make bench runs it, ~31 min more per run).
 * 1,000 instruments (50 gateways x 20) at 1 s, uploading to the platform fixture over HTTPS,
 * and collectd beside it on a lab of its own with write_http to the receiver, both started
 * together. Every minute: VmRSS, RssAnon, VmHWM and CPU of each, the agent's polls on schedule.
 * Goal: the agent's VmRSS at the end at most GOAL_GROWTH_MB above its VmRSS at minute 1. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include "harness.h"

#define GOAL_GROWTH_MB 1.0
#define INSTRUMENTS 1000
#define PER_GATEWAY 20
#define INTERVAL_S 1

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	long minutes = bench_env_long("BENCH_LONG_MINUTES", 0);
	if (minutes < 1) {
		printf("long: skipped: BENCH_LONG_MINUTES is not set (make bench leaves the long run off; "
		       "BENCH_LONG_MINUTES=30 make bench runs it: %d instruments at %d s for 30 min, RSS each minute)\n",
		       INSTRUMENTS, INTERVAL_S);
		return 0;
	}
	bench_machine("long");
	printf("long: %d instruments (%d gateways x %d) at %d s for %ld min, the agent uploading over HTTPS every 10 s, "
	       "collectd beside it on its own lab; goal: the agent's VmRSS at the end <= its VmRSS at minute 1 + %.1f MB\n",
	       INSTRUMENTS, INSTRUMENTS / PER_GATEWAY, PER_GATEWAY, INTERVAL_S, minutes, GOAL_GROWTH_MB);
	char *dir = h_mkdtemp("bench_long");
	char *cdir = h_path(dir, "collectd");
	mkdir(cdir, 0755);
	struct lab l = { 0 }, cl = { 0 };
	struct bench_platform pf = { 0 };
	struct receiver rx;
	bool have_rx = false;
	struct h_proc *agent = NULL, *cd = NULL;
	char *cfg = NULL, *ccfg = NULL, *status = h_strdupf("%s/state/status.json", dir), *log = h_path(dir, "agent.log");
	char *clog = h_path(cdir, "collectd.out");
	if (lab_start(&l, dir, INSTRUMENTS, PER_GATEWAY, 0) < 0 || bench_platform_init(&pf, dir, "refplat") < 0) {
		fprintf(stderr, "bench: long: the simulator or the platform did not start\n");
		goto out;
	}
	cfg = agent_config(dir, "bench-long", &l, &pf, INTERVAL_S, 10);
	/* The agent's clock shifted so that its first 15-minute slot closes 30 s in: minute 1 has
	 * then seen one of each kind of work (slots sealed, records uploaded), and what follows is
	 * the same work again (the next closes at 15.5 and 30.5 min). */
	long now = (long)bench_wall();
	char env_offset[64];
	snprintf(env_offset, sizeof(env_offset), "LABSHARE_CLOCK_OFFSET_S=%ld", (900 - (now + 30) % 900) % 900);
	char *env[] = { env_offset, NULL };
	char *argv[] = { strdup(h_build_path("bench/labshare-agent-testclock")), (char *)"-c", cfg, (char *)"run", NULL };
	agent = h_spawn(argv, env, false, false, log);
	free(argv[0]);
	char why[256];
	const char *bin = collectd_check(why, sizeof(why));
	if (bin && lab_start(&cl, cdir, INSTRUMENTS, PER_GATEWAY, 0) == 0 && rx_start(&rx, INSTRUMENTS, PER_GATEWAY) == 0) {
		have_rx = true;
		ccfg = collectd_config(cdir, &cl, rx.port, INTERVAL_S, collectd_read_threads(&cl));
		char *cargv[] = { (char *)bin, (char *)"-f", (char *)"-C", ccfg, NULL };
		cd = h_spawn(cargv, NULL, false, false, clog);
	} else {
		printf("long: collectd: skipped: %s\n", bin ? "its lab or receiver did not start" : why);
	}
	double t0 = bench_mono();
	double rss1 = NAN, crss1 = NAN, rss_end = NAN, crss_end = NAN;
	struct snap s0 = { 0 }, s;
	snap_next(status, 0, &s0, 30);
	printf("long: minute  agent: VmRSS  RssAnon  VmHWM MB  cpu s  on schedule %%  |  collectd: VmRSS  RssAnon  VmHWM MB  cpu s\n");
	for (long m = 1; m <= minutes; m++) {
		bench_sleep_until(t0 + 60.0 * (double)m);
		struct bench_proc a, c;
		memset(&c, 0, sizeof(c));
		if (h_wait(agent, 0) >= 0 || bench_proc_read(agent->pid, &a) < 0) {
			fprintf(stderr, "bench: long: the agent is gone at minute %ld (see %s)\n", m, log);
			goto out;
		}
		bool cok = cd && h_wait(cd, 0) < 0 && bench_proc_read(cd->pid, &c) == 0;
		double sched = NAN;
		if (snap_next(status, bench_wall() - 0.001, &s, 15) == 0 && s.polls > s0.polls)
			sched = 100.0 * ((s.polls - s0.polls) - (s.late - s0.late)) /
				((double)INSTRUMENTS * (s.mtime - s0.mtime) / INTERVAL_S);
		s0 = s;
		printf("long: %4ld   %12.1f %8.1f %9.1f %6.1f %14.2f  |  %15.1f %8.1f %9.1f %6.1f\n", m, a.rss_kb / 1024.0,
		       a.anon_kb / 1024.0, a.hwm_kb / 1024.0, a.cpu_s, sched, cok ? c.rss_kb / 1024.0 : NAN,
		       cok ? c.anon_kb / 1024.0 : NAN, cok ? c.hwm_kb / 1024.0 : NAN, cok ? c.cpu_s : NAN);
		if (m == 1) {
			rss1 = a.rss_kb / 1024.0;
			crss1 = cok ? c.rss_kb / 1024.0 : NAN;
		}
		rss_end = a.rss_kb / 1024.0;
		crss_end = cok ? c.rss_kb / 1024.0 : NAN;
	}
	printf("long: VmRSS from minute 1 to minute %ld: agent %.1f -> %.1f MB (%+.2f MB), collectd %.1f -> %.1f MB (%+.2f MB)\n",
	       minutes, rss1, rss_end, rss_end - rss1, crss1, crss_end, crss_end - crss1);
	bench_goal_abs("long run 1000 at 1 s, RSS growth from minute 1 to the end", "MB", rss_end - rss1,
		       crss_end - crss1, "<=", GOAL_GROWTH_MB);
out:
	if (agent) {
		h_stop(agent, 20000);
		h_proc_free(agent);
	}
	if (cd) {
		h_stop(cd, 20000);
		h_proc_free(cd);
	}
	if (have_rx)
		rx_stop(&rx);
	bench_platform_free(&pf);
	lab_stop(&l);
	lab_stop(&cl);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(cfg);
	free(ccfg);
	free(status);
	free(log);
	free(clog);
	free(cdir);
	free(dir);
	return 0;
}
