/* bench_recovery.c — how soon labshare-agent reads a device again after an outage (issue #15: "a
 * device that comes back after an outage of any length is read again within two intervals (TCP;
 * within 30 s on a shared RTU bus)"). One simulator serves two TCP gateways of 10 units and a
 * shared RTU bus of 5 units on a pty pair; the agent polls all 25 at 1 s. Then, at once: one TCP
 * unit goes silent, the second gateway stops listening (`close`: all 10 of its units), one RTU
 * unit goes silent; after the outage they come back and the time until each is read again is
 * measured: from the restoring command to the first request of that unit the simulator answers
 * (its per-unit request count in `stats`, looked at every 20 ms). Outages: 20 s (BENCH_RECOVERY_
 * OUTAGES), and 300 s as well when BENCH_LONG_MINUTES is set. Prints figures and GOAL lines. */
#include <math.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include "benchlib.h"
#include "harness.h"
#include "ptyline.h"

#define INTERVAL_S 1
#define GW_UNITS 10
#define RTU_UNITS 5
#define EP_SILENT 0                    /* endpoint of the TCP unit that goes silent (unit 1) */
#define EP_CLOSED 1                    /* the gateway that stops listening */
#define EP_RTU 2                       /* the RTU line (unit 1 goes silent) */
#define GOAL_TCP_S (2.0 * INTERVAL_S)  /* within two intervals */
#define GOAL_RTU_S 30.0

/* ---- the simulator's per-unit request counts ------------------------------------------- */

static double unit_requests(struct h_proc *sim, int ep, int unit)
{
	char *reply = h_request(sim, "stats", 10000);
	cJSON *j = reply ? cJSON_Parse(reply) : NULL;
	free(reply);
	char e[16], u[16];
	snprintf(e, sizeof(e), "%d", ep);
	snprintf(u, sizeof(u), "%d", unit);
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "endpoints");
	const cJSON *units = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(eps, e), "units");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(units, u);
	double v = cJSON_IsNumber(n) ? n->valuedouble : 0;
	cJSON_Delete(j);
	return v;
}

static bool sim_ok(struct h_proc *sim, const char *cmd)
{
	char *r = h_request(sim, cmd, 10000);
	bool ok = r && strncmp(r, "ok", 2) == 0;
	if (!ok)
		fprintf(stderr, "bench: modbus-sim: %s: %s\n", cmd, r ? r : "no reply");
	free(r);
	return ok;
}

/* ---- one outage ------------------------------------------------------------------------ */

struct watch {
	const char *what;
	int ep, unit;
	double before, back_s;             /* back_s < 0: not read again before the deadline */
};

static char *write_config(const char *dir, const int *ports, const char *rtu)
{
	char *path = h_path(dir, "agent.json"), *token = h_path(dir, "token");
	h_write_file(token, BENCH_TOKEN "\n", (size_t)-1, 0600);
	FILE *f = fopen(path, "w");
	/* The platform is not needed to read devices: an address nobody listens on. */
	fprintf(f, "{ \"agent\": { \"id\": \"bench-recovery\", \"lab_code\": \"BENCH\", \"timezone\": \"Asia/Shanghai\","
		" \"state_dir\": \"%s/state\" },\n  \"platform\": { \"url\": \"https://127.0.0.1:9/api\", \"token_file\": \"%s\" },\n"
		"  \"buses\": [\n", dir, token);
	fprintf(f, "    { \"id\": \"gw0\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 500 },\n", ports[0]);
	fprintf(f, "    { \"id\": \"gw1\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 500 }", ports[1]);
	if (rtu)
		fprintf(f, ",\n    { \"id\": \"rtu\", \"url\": \"rtu:%s?baud=115200&parity=N&data=8&stop=1\", \"timeout_ms\": 300 }",
			rtu);
	fprintf(f, "\n  ],\n  \"instruments\": [\n");
	const char *buses[3] = { "gw0", "gw1", "rtu" };
	int per[3] = { GW_UNITS, GW_UNITS, rtu ? RTU_UNITS : 0 }, k = 0;
	for (int b = 0; b < 3; b++)
		for (int u = 1; u <= per[b]; u++, k++)
			fprintf(f, "%s    { \"id\": \"REC-%s-%d\", \"modbus\": { \"bus\": \"%s\", \"unit\": %d, \"interval_s\": %d,"
				" \"run_counter\": { \"table\": \"input\", \"address\": %d, \"type\": \"u32\" },"
				" \"in_use\": { \"table\": \"coil\", \"address\": %d } } }", k ? ",\n" : "", buses[b], u,
				buses[b], u, INTERVAL_S, RUN_ADDR, COIL_ADDR);
	fprintf(f, "\n  ]\n}\n");
	fclose(f);
	free(token);
	return path;
}

struct ready {
	const char *status;
	int n;
};

static bool all_polled(void *arg)
{
	struct ready *r = arg;
	struct snap s;
	return snap_read(r->status, &s) == 0 && s.polled2 >= r->n && s.ok >= r->n;
}

static void outage(long outage_s, bool use_rtu)
{
	char *dir = h_mkdtemp("bench_recovery");
	struct h_line ln;
	bool rtu = use_rtu && h_line_open(&ln) == 0;
	if (use_rtu && !rtu)
		printf("recovery: no pty pair (%s): TCP only\n", strerror(errno));
	char *script = h_path(dir, "sim.script"), *ports_file = h_path(dir, "sim.ports"), *log = h_path(dir, "sim.log");
	FILE *f = fopen(script, "w");
	for (int e = 0; e < (rtu ? 3 : 2); e++)
		fprintf(f, "auto %d * input %d u32 big 1\nset %d * coil %d bit big 1\n", e, RUN_ADDR, e, COIL_ADDR);
	fclose(f);
	char rtu_arg[128];
	snprintf(rtu_arg, sizeof(rtu_arg), "%s?baud=115200&parity=N&data=8&stop=1", rtu ? ln.name[0] : "");
	char gw_units[16], rtu_units[16];
	snprintf(gw_units, sizeof(gw_units), "1-%d", GW_UNITS);
	snprintf(rtu_units, sizeof(rtu_units), "1-%d", RTU_UNITS);
	char *sim_bin = strdup(h_build_path("modbus-sim"));
	char *argv[] = { sim_bin, (char *)"--tcp", (char *)"127.0.0.1:0", (char *)"--units", gw_units, (char *)"--tcp",
			 (char *)"127.0.0.1:0", (char *)"--units", gw_units, (char *)"--regs", (char *)"128",
			 (char *)"--port-file", ports_file, (char *)"--script", script,
			 rtu ? (char *)"--rtu" : NULL, rtu_arg, (char *)"--units", rtu_units, NULL };
	struct h_proc *sim = h_spawn(argv, NULL, true, true, log), *agent = NULL;
	free(sim_bin);
	int ports[2] = { 0, 0 };
	char *cfg = NULL, *status = h_strdupf("%s/state/status.json", dir), *alog = h_path(dir, "agent.log");
	if (!sim || !h_wait_file(ports_file, 30000)) {
		fprintf(stderr, "bench: recovery: modbus-sim did not start (see %s)\n", log);
		goto out;
	}
	char *text = h_read_file(ports_file, NULL), *p = text;
	ports[0] = (int)strtol(p, &p, 10);
	ports[1] = (int)strtol(p, &p, 10);
	free(text);
	cfg = write_config(dir, ports, rtu ? ln.name[1] : NULL);
	char *aargv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", cfg, (char *)"run", NULL };
	agent = h_spawn(aargv, NULL, false, false, alog);
	free(aargv[0]);
	struct ready rd = { status, 2 * GW_UNITS + (rtu ? RTU_UNITS : 0) };
	if (!h_wait_for(all_polled, &rd, 60000)) {
		fprintf(stderr, "bench: recovery: the agent did not read every device twice in 60 s (see %s)\n", alog);
		goto out;
	}
	struct watch w[2 + GW_UNITS];
	size_t nw = 0;
	w[nw++] = (struct watch){ "TCP unit silent", EP_SILENT, 1, 0, -1 };
	for (int u = 1; u <= GW_UNITS; u++)
		w[nw++] = (struct watch){ "TCP gateway closed", EP_CLOSED, u, 0, -1 };
	if (rtu)
		w[nw++] = (struct watch){ "RTU unit silent", EP_RTU, 1, 0, -1 };
	bool ok = sim_ok(sim, "silence 0 1 on") && sim_ok(sim, "close 1") && (!rtu || sim_ok(sim, "silence 2 1 on"));
	double t_down = bench_mono();
	bench_sleep_until(t_down + (double)outage_s);
	for (size_t i = 0; i < nw; i++)
		w[i].before = unit_requests(sim, w[i].ep, w[i].unit);
	ok = ok && sim_ok(sim, "silence 0 1 off") && sim_ok(sim, "open 1") && (!rtu || sim_ok(sim, "silence 2 1 off"));
	double t_up = bench_mono();
	/* The back-off may reach its cap (5 min today): wait that long and a little more. */
	double deadline = t_up + (outage_s > 30 ? 330.0 : 60.0);
	size_t left = nw;
	while (ok && left > 0 && bench_mono() < deadline) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
		double now = bench_mono();
		for (size_t i = 0; i < nw; i++)
			if (w[i].back_s < 0 && unit_requests(sim, w[i].ep, w[i].unit) > w[i].before) {
				w[i].back_s = now - t_up;
				left--;
			}
	}
	/* Per kind: the silent unit, the slowest unit of the closed gateway (and the median), the RTU unit. */
	double tcp = w[0].back_s, gw_max = 0, gw_all[GW_UNITS];
	int gw_missing = 0;
	for (int u = 0; u < GW_UNITS; u++) {
		gw_all[u] = w[1 + u].back_s;
		if (gw_all[u] < 0)
			gw_missing++;
		else if (gw_all[u] > gw_max)
			gw_max = gw_all[u];
	}
	double rtu_s = rtu ? w[1 + GW_UNITS].back_s : NAN;
	printf("recovery: %ld s outage, seconds from the device's return to its first answered request (-1: not by "
	       "the deadline, %.0f s): TCP unit silent %.2f; TCP gateway closed: slowest of its %d units %.2f (%d not back); "
	       "RTU unit silent %.2f%s (goal: TCP within %.0f s = two intervals, RTU within %.0f s)\n",
	       outage_s, deadline - t_up, tcp, GW_UNITS, gw_max, gw_missing, rtu ? rtu_s : NAN, rtu ? "" : " (not run: no pty)",
	       GOAL_TCP_S, GOAL_RTU_S);
	char name[128];
	double dl = deadline - t_up;
	snprintf(name, sizeof(name), "recovery after %ld s, TCP unit silent, read again", outage_s);
	bench_goal_abs(name, "s", tcp < 0 ? dl : tcp, NAN, "<=", GOAL_TCP_S);
	snprintf(name, sizeof(name), "recovery after %ld s, TCP gateway closed, last of its units read again", outage_s);
	bench_goal_abs(name, "s", gw_missing ? dl : gw_max, NAN, "<=", GOAL_TCP_S);
	if (rtu) {
		snprintf(name, sizeof(name), "recovery after %ld s, RTU unit silent on a shared bus, read again", outage_s);
		bench_goal_abs(name, "s", rtu_s < 0 ? dl : rtu_s, NAN, "<=", GOAL_RTU_S);
	}
out:
	if (agent) {
		h_stop(agent, 20000);
		h_proc_free(agent);
	}
	if (sim) {
		h_stop(sim, 10000);
		h_proc_free(sim);
	}
	if (rtu)
		h_line_close(&ln);
	free(cfg);
	free(status);
	free(alog);
	free(script);
	free(ports_file);
	free(log);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool long_mode = bench_env_long("BENCH_LONG_MINUTES", 0) > 0;
	const char *outages = bench_env_str("BENCH_RECOVERY_OUTAGES", long_mode ? "20 300" : "20");
	bool use_rtu = bench_env_long("BENCH_RECOVERY_RTU", 1) != 0;
	bench_machine("recovery");
	printf("recovery: 2 TCP gateways x %d units and an RTU bus of %d units (modbus-sim --rtu on a pty pair the "
	       "benchmark relays), every device at %d s; outages of %s s (300 s too with BENCH_LONG_MINUTES)\n",
	       GW_UNITS, RTU_UNITS, INTERVAL_S, outages);
	for (const char *p = outages; *p;) {
		char *end;
		long s = strtol(p, &end, 10);
		if (end == p || s < 1)
			break;
		p = end + strspn(end, " ,");
		outage(s, use_rtu);
	}
	return 0;
}
