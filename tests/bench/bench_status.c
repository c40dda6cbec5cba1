/* bench_status.c — what a status costs at scale (issue #15: `status`, `status --json` and
 * metrics.prom each under 100 ms at 5,000 instruments): N Modbus instruments with one log
 * each, the real Modbus and log drivers' status ops (created, not started: no bus or file is
 * opened), a real
 * SQLite buffer. Times the daemon's write of status.json and metrics.prom each tick, and what
 * `status --json` does beside the daemon (read status.json back, the buffer's figures, the
 * rest). Prints µs per call; it passes or fails nothing. BENCH_INSTRUMENTS (default: 600 and
 * 5000), BENCH_ROUNDS (default 20). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "logtail.h"
#include "metrics.h"
#include "modbus.h"
#include "source.h"
#include "status.h"

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
	fclose(null);
	status_free(st);
	modbus_source.destroy(drv[0]);
	logtail_source.destroy(drv[1]);
	source_conf_free(sc);
	core_free(c);
	buffer_close(b);
	config_free(cfg);
	h_rmtree(dir);
	free(dir);
}

int main(void)
{
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
