/* bench_status.c — what a status costs at scale (issue #15: `status`, `status --json` and
 * metrics.prom each under 100 ms at 5,000 instruments): N Modbus instruments with one log
 * each, the real Modbus and log drivers' status ops (created, not started: no bus or file is
 * opened), a real
 * SQLite buffer. Times the daemon's write of status.json and metrics.prom each tick, and what
 * `status --json` does beside the daemon (read status.json back, the buffer's figures, the
 * rest). Then the whole `labshare-agent status` and `status --json` processes beside this
 * program posing as the daemon (it holds {state_dir}/agent.lock and wrote status.json), wall
 * time from spawn to exit, the median of BENCH_ROUNDS. Prints µs per call, and at 5,000
 * instruments issue #15's goals (each under 100 ms) as GOAL lines. BENCH_INSTRUMENTS (default:
 * 600 and 5000), BENCH_ROUNDS (default 20). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "buffer.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "logtail.h"
#include "metrics.h"
#include "modbus.h"
#include "source.h"
#include "status.h"

#define GOAL_MS 100.0
#define GOAL_AT 5000

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct config *make_config(const char *dir, long n)
{
	size_t cap = 512 * (size_t)n + 4096, len = 0;
	char *text = malloc(cap);
	len += (size_t)snprintf(text + len, cap - len,
		"{ \"agent\": { \"id\": \"bench\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		" \"state_dir\": \"%s/state\" }, \"platform\": { \"url\": \"https://127.0.0.1:9\","
		" \"token_file\": \"%s/token\" }, \"buses\": [ { \"id\": \"gw\", \"url\": \"tcp://127.0.0.1:9\" } ],"
		" \"instruments\": [", dir, dir);
	for (long i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
			"%s{ \"id\": \"INS-%05ld\", \"modbus\": { \"bus\": \"gw\", \"unit\": %ld, \"interval_s\": 1,"
			" \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u16\" } },"
			" \"logs\": [ { \"path\": \"%s/logs/ins-%05ld-*.csv\", \"format\": \"csv\","
			" \"fields\": { \"start\": \"start\", \"end\": \"end\", \"user\": \"user\" } } ] }",
			i ? "," : "", i, i % 247 + 1, dir, i);
	snprintf(text + len, cap - len, "] }");
	char *path = h_strdupf("%s/agent.json", dir);
	h_write_file(path, text, (size_t)-1, 0644);
	free(path);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse("bench.json", text, strlen(text), &cfg, &errs) != 0) {
		fprintf(stderr, "bench: config: %s\n", errs.n ? errs.msg[0] : "?");
		exit(1);
	}
	free(text);
	return cfg;
}

/* As the daemon's write_snapshots does it, on the status it keeps for the run. */
static void daemon_write(struct status *st, const struct config *cfg, struct buffer *b, struct core *c,
			 void *const drv[2], bool repeats)
{
	status_fill_buffer(st, cfg, b, true, (long)getpid());
	status_begin_round(st);
	modbus_source.status(drv[0], st->insts, st->n_insts);
	logtail_source.status(drv[1], st->insts, st->n_insts);
	status_fill_idle(st, b, core_metrics(c));
	if (repeats)
		status_fill_repeats(st, b, core_metrics(c));
	size_t len = 0;
	char *text = status_json(st, &len);
	char *path = h_strdupf("%s/%s", cfg->agent.state_dir, STATUS_FILE);
	if (!text || write_file_atomic(path, text, len, 0644) < 0)
		exit(1);
	free(text);
	free(path);
	char *prom = status_prometheus(st, &len);
	path = h_strdupf("%s/metrics.prom", cfg->agent.state_dir);
	if (!prom || write_file_atomic(path, prom, len, 0644) < 0)
		exit(1);
	free(prom);
	free(path);
}

/* As `status --json` does it beside a running daemon (cmd_status), output to /dev/null. */
static void status_cmd(const struct config *cfg, struct buffer *b, FILE *out)
{
	struct status *st = status_new(cfg);
	struct metrics *mx = metrics_new(b, cfg);
	status_fill_buffer(st, cfg, b, true, 1);
	if (status_read_live(st, cfg->agent.state_dir) < 0)
		exit(1);
	status_fill_idle(st, b, mx);
	status_fill_repeats(st, b, mx);
	metrics_free(mx);
	char *text = status_json(st, NULL);
	fputs(text, out);
	free(text);
	status_free(st);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median wall time in ms of `labshare-agent -c dir/agent.json status [--json]`, from spawn to
 * exit (config parse, buffer, status.json read back, output to a pipe). */
static double cpu_children_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* Page faults of the children so far: at 5,000 instruments they were most of `status`'s time. */
static long faults_children(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static double cli_ms(const char *dir, bool json, long rounds, double *cpu_ms, long *faults)
{
	char *cfg = h_strdupf("%s/agent.json", dir);
	char *argv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", cfg, (char *)"status",
			 json ? (char *)"--json" : NULL, NULL };
	double *ms = calloc((size_t)rounds, sizeof(double));
	long ok = 0;
	double cpu0 = cpu_children_s();
	long f0 = faults_children();
	for (long r = 0; r < rounds; r++) {
		char *out = NULL;
		double t0 = wall_s();
		int rc = h_run(argv, NULL, &out, NULL, 60000);
		double t1 = wall_s();
		if (rc == 0 && out && *out)
			ms[ok++] = (t1 - t0) * 1e3;
		else
			fprintf(stderr, "bench: status%s exited %d\n", json ? " --json" : "", rc);
		free(out);
	}
	*cpu_ms = (cpu_children_s() - cpu0) * 1e3 / (double)rounds;
	*faults = (faults_children() - f0) / rounds;
	qsort(ms, (size_t)ok, sizeof(double), cmp_double);
	double med = ok ? ms[ok / 2] : NAN;
	free(ms);
	free(argv[0]);
	free(cfg);
	return med;
}

static void run(long n, long rounds)
{
	char *dir = h_mkdtemp("bench-status");
	char *token = h_strdupf("%s/token", dir);
	h_write_file(token, "bench-token\n", (size_t)-1, 0600);
	free(token);
	struct config *cfg = make_config(dir, n);
	struct buffer *b = NULL;
	if (buffer_make_state_dir(cfg->agent.state_dir) < 0 ||
	    buffer_open(cfg->agent.state_dir, 0, &b, NULL) < 0) {
		fprintf(stderr, "bench: cannot open the buffer\n");
		exit(1);
	}
	struct core *c = core_new(cfg, b);
	struct source_conf *sc = config_source_conf(cfg);
	void *drv[2] = { NULL, NULL };
	if (!c || !sc || modbus_source.create(sc, c, &drv[0]) < 0 || logtail_source.create(sc, c, &drv[1]) < 0) {
		fprintf(stderr, "bench: cannot create the driver\n");
		exit(1);
	}
	struct status *st = status_new(cfg);
	FILE *null = fopen("/dev/null", "w");
	daemon_write(st, cfg, b, c, drv, true); /* the first one lays out and warms up */
	double t0 = wall_s();
	for (long r = 0; r < rounds; r++)
		daemon_write(st, cfg, b, c, drv, false);
	double t1 = wall_s();
	for (long r = 0; r < rounds; r++)
		daemon_write(st, cfg, b, c, drv, true);
	double t2 = wall_s();
	for (long r = 0; r < rounds; r++)
		status_cmd(cfg, b, null);
	double t3 = wall_s();
	printf("%5ld instruments: daemon write (status.json + metrics.prom) %6.0f µs a tick, %6.0f µs when it "
	       "counts repeats (once a minute); status --json %6.0f µs\n", n, (t1 - t0) / (double)rounds * 1e6,
	       (t2 - t1) / (double)rounds * 1e6, (t3 - t2) / (double)rounds * 1e6);
	/* The CLI beside a "daemon": this process, holding the lock as the daemon does. */
	char *lock = h_strdupf("%s/agent.lock", cfg->agent.state_dir);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	char pid[32];
	int plen = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0 || write(lfd, pid, (size_t)plen) != plen)
		fprintf(stderr, "bench: cannot hold %s\n", lock);
	long cli_rounds = rounds < 5 ? rounds : 5 + (rounds - 5) / 4;
	double text_cpu = 0, json_cpu = 0;
	long text_faults = 0, json_faults = 0;
	double text_ms = cli_ms(dir, false, cli_rounds, &text_cpu, &text_faults);
	double json_ms = cli_ms(dir, true, cli_rounds, &json_cpu, &json_faults);
	if (lfd >= 0)
		close(lfd);
	free(lock);
	double tick_ms = (t2 - t1) / (double)rounds * 1e3;
	printf("%5ld instruments: the whole process beside the daemon, median of %ld: status %.1f ms (CPU %.1f ms, %ld "
	       "page faults on average), status --json %.1f ms (CPU %.1f ms, %ld page faults)\n", n, cli_rounds, text_ms,
	       text_cpu, text_faults, json_ms, json_cpu, json_faults);
	if (n == GOAL_AT) {
		/* metrics.prom is written by the daemon's tick with status.json; the tick that also counts
		 * repeats (the longer one) is its figure. */
		bench_goal_abs("status at 5000 instruments, daemon tick writing status.json and metrics.prom", "ms",
			       tick_ms, NAN, "<", GOAL_MS);
		bench_goal_abs("status at 5000 instruments, labshare-agent status", "ms", text_ms, NAN, "<", GOAL_MS);
		bench_goal_abs("status at 5000 instruments, labshare-agent status --json", "ms", json_ms, NAN, "<", GOAL_MS);
	}
	fclose(null);
	status_free(st);
	modbus_source.destroy(drv[0]);
	logtail_source.destroy(drv[1]);
	source_conf_free(sc);
	core_free(c);
	buffer_close(b);
	config_free(cfg);
	if (bench_env_long("BENCH_KEEP", 0))
		printf("%5ld instruments: kept %s\n", n, dir);
	else
		h_rmtree(dir);
	free(dir);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_machine("status");
	const char *env = getenv("BENCH_INSTRUMENTS");
	const char *r = getenv("BENCH_ROUNDS");
	long rounds = r ? strtol(r, NULL, 10) : 20;
	if (rounds < 1)
		rounds = 1;
	if (env) {
		run(strtol(env, NULL, 10), rounds);
	} else {
		run(600, rounds);
		run(5000, rounds);
	}
	return 0;
}
