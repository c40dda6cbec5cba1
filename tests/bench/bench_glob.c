/* bench_glob.c — what a round of the log driver costs when its glob matches many files that no
 * longer change (SPEC §3: "the cost of a round does not grow with files that no longer change"):
 * a glob of BENCH_GLOB_FILES CSV files (10,000) of which 10 get a session between rounds, beside
 * a glob of the same 10 files alone (the anchor), in one run. CPU per round is the process's
 * (the driver's thread does the work; this thread only appends a line to each active file
 * between rounds). Prints figures and the GOAL line; passes or fails nothing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "benchlib.h"
#include "buffer.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "logtail.h"
#include "status.h"
#include "timeutil.h"

#define ACTIVE 10

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static const char header[] = "start,end,user\n";

static void append_session(const char *path, long file, long k)
{
	FILE *f = fopen(path, "a");
	if (!f) {
		fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	/* A session a minute apart per round from 2025-01-01, a user per file: none twice. */
	time_t s = 1735660800 + (time_t)k * 60, e = s + 30;
	struct tm a, b;
	gmtime_r(&s, &a);
	gmtime_r(&e, &b);
	fprintf(f, "%04d-%02d-%02d %02d:%02d:%02d,%04d-%02d-%02d %02d:%02d:%02d,u%ld\n", a.tm_year + 1900, a.tm_mon + 1,
		a.tm_mday, a.tm_hour, a.tm_min, a.tm_sec, b.tm_year + 1900, b.tm_mon + 1, b.tm_mday, b.tm_hour,
		b.tm_min, b.tm_sec, file);
	fclose(f);
}

struct progress {
	void *lt;
	struct status *st;
	double lines;
};

static bool all_read(void *arg)
{
	struct progress *p = arg;
	logtail_source.status(p->lt, p->st->insts, p->st->n_insts);
	const struct log_status *l = &p->st->insts[0].logs[0];
	return l->live && (double)l->lines >= p->lines;
}

struct figures {
	double us_per_round, rounds, commits_s;
};

/* n files in dir/name/, the first ACTIVE of them written to during a window of secs. */
static void run_glob(const char *dir, const char *name, long n, double secs, struct figures *out)
{
	char *sub = h_strdupf("%s/%s", dir, name);
	if (mkdir(sub, 0755) < 0) {
		fprintf(stderr, "bench: mkdir %s: %s\n", sub, strerror(errno));
		exit(1);
	}
	char **paths = calloc((size_t)n, sizeof(*paths));
	for (long i = 0; i < n; i++) {
		paths[i] = h_strdupf("%s/log-%05ld.csv", sub, i);
		FILE *f = fopen(paths[i], "w");
		fputs(header, f);
		fclose(f);
		append_session(paths[i], i, 0);
		/* Files that no longer change are old files: modified a day ago. */
		struct timespec old[2] = { { .tv_sec = time(NULL) - 86400 }, { .tv_sec = time(NULL) - 86400 } };
		if (i >= ACTIVE && utimensat(AT_FDCWD, paths[i], old, 0) < 0) {
			fprintf(stderr, "bench: utimensat %s: %s\n", paths[i], strerror(errno));
			exit(1);
		}
	}
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"bench\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/state-%s\", \"internal_orgs\": [\"X\"] },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		"  \"instruments\": [ { \"id\": \"BENCH\", \"logs\": [ { \"path\": \"%s/log-*.csv\", \"format\": \"csv\","
		"    \"fields\": { \"start\": \"start\", \"end\": \"end\", \"user\": \"user\" } } ] } ] }",
		dir, name, dir, sub);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse("bench.json", text, strlen(text), &cfg, &errs) != 0) {
		fprintf(stderr, "bench: config: %s\n", errs.n ? errs.msg[0] : "?");
		exit(1);
	}
	struct buffer *b;
	if (buffer_open(cfg->agent.state_dir, 0, &b, NULL) < 0)
		exit(1);
	struct core *c = core_new(cfg, b);
	struct progress p = { NULL, status_new(cfg), 0 };
	struct source_conf *sc = config_source_conf(cfg);
	if (!sc || logtail_source.create(sc, c, &p.lt) < 0)
		exit(1);
	/* Every file read once (header + a session each: 2 lines) before the window. */
	p.lines = 2.0 * (double)n;
	logtail_source.start(p.lt);
	if (!h_wait_for(all_read, &p, 600000)) {
		fprintf(stderr, "bench: %s: the first reading did not finish\n", name);
		exit(1);
	}
	/* Warm-up, 3 s of the same appends: the folder changed while the files were made, and a
	 * change that recent is not trusted to be the last one (logtail_look.c: 2 s); the first
	 * reading's changes are folded into the cursor's base (logtail_cursor.c). Then the window. */
	long k = 0;
	double lines = p.lines;
	bool idle = bench_env_long("BENCH_GLOB_IDLE", 0);
	double t0 = bench_mono(), c0 = 0;
	uint64_t r0 = 0;
	for (int phase = 0; phase < 2; phase++) {
		double until = bench_mono() + (phase ? secs : 3.0);
		if (phase) {
			fprintf(stderr, "bench: %s: window of %.0f s starts\n", name, secs);
			t0 = bench_mono();
			c0 = cpu_s();
			r0 = logtail_rounds(p.lt);
			k = 0;
		}
		if (idle) /* nothing written: the look alone */
			bench_sleep_until(until);
		while (!idle && bench_mono() < until) {
			/* One line in each active file, then wait for a round to pass over it. */
			for (int i = 0; i < ACTIVE && i < n; i++)
				append_session(paths[i], i, 1 + (long)lines);
			k++;
			lines += ACTIVE < n ? ACTIVE : (double)n;
			p.lines = lines;
			if (!h_wait_for(all_read, &p, 60000)) {
				fprintf(stderr, "bench: %s: lines appended were not read\n", name);
				exit(1);
			}
		}
	}
	double took = bench_mono() - t0, cpu = cpu_s() - c0;
	uint64_t rounds = logtail_rounds(p.lt) - r0;
	out->rounds = (double)rounds;
	out->us_per_round = rounds ? 1e6 * cpu / (double)rounds : 0;
	out->commits_s = (double)k / took;
	logtail_source.destroy(p.lt);
	status_free(p.st);
	source_conf_free(sc);
	core_free(c);
	buffer_close(b);
	config_free(cfg);
	for (long i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(text);
	free(sub);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_set_level(LOG_PRI_WARNING);
	timeutil_set_zone("Asia/Shanghai");
	bench_machine("glob");
	long n = bench_env_long("BENCH_GLOB_FILES", 10000);
	double secs = (double)bench_env_long("BENCH_SECONDS", 10);
	logtail_tuning.poll_ms = (int)bench_env_long("BENCH_POLL_MS", 50);
	char *dir = h_mkdtemp("bench_glob");
	char *token = h_path(dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	struct figures small, big;
	run_glob(dir, "ten", ACTIVE, secs, &small);
	run_glob(dir, "many", n, secs, &big);
	printf("glob: %d files, all %d written to: %8.0f us cpu per round (%.0f rounds of %d ms, %.1f appends/s)\n", ACTIVE,
	       ACTIVE, small.us_per_round, small.rounds, logtail_tuning.poll_ms, small.commits_s);
	printf("glob: %ld files, %d written to:  %8.0f us cpu per round (%.0f rounds, %.1f appends/s)\n", n, ACTIVE,
	       big.us_per_round, big.rounds, big.commits_s);
	bench_goal_ratio("glob", "us/round", big.us_per_round, small.us_per_round, "<=", 2);
	if (!bench_env_long("BENCH_KEEP", 0))
		h_rmtree(dir);
	free(dir);
	return 0;
}
