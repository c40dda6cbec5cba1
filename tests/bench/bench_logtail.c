/* bench_logtail.c — how fast the log driver scans and commits: lines/s through a log where one
 * line in 100 is a session, sessions/s from a CSV where every line is one, beside what the core
 * alone seals and the raw SQLite insert rate of this machine (the limit under both). Prints
 * figures; it passes or fails nothing. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <iconv.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

#define SCAN_LINES 1000000
#define SESSION_LINES 100000
#define RAW_ROWS 100000

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"bench\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
	"    \"state_dir\": \"%s/state-%s\", \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
	"  \"instruments\": [ { \"id\": \"BENCH\", \"logs\": [ %s ] } ] }";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static struct config *make_config(const char *dir, const char *name, const char *logs)
{
	char *text = h_strdupf(config_fmt, dir, name, dir, logs);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse("bench.json", text, strlen(text), &cfg, &errs) != 0) {
		fprintf(stderr, "bench: config: %s\n", errs.n ? errs.msg[0] : "?");
		exit(1);
	}
	free(text);
	return cfg;
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

/* Run the driver over a log already written; seconds until every line is committed
 * (*cpu: processor seconds of the whole process meanwhile, the waiting thread's included). */
static double run_driver(struct config *cfg, double lines, double *cpu)
{
	struct buffer *b;
	if (buffer_open(cfg->agent.state_dir, 0, &b, NULL) < 0) {
		fprintf(stderr, "bench: cannot open the buffer\n");
		exit(1);
	}
	struct core *c = core_new(cfg, b);
	struct progress p = { NULL, status_new(cfg), lines };
	struct source_conf *sc = config_source_conf(cfg);
	if (!sc || logtail_source.create(sc, c, &p.lt) < 0) {
		fprintf(stderr, "bench: cannot create the driver\n");
		exit(1);
	}
	double t0 = now_s(), c0 = cpu_s();
	logtail_source.start(p.lt);
	if (!h_wait_for(all_read, &p, 600000)) {
		fprintf(stderr, "bench: the driver did not finish\n");
		exit(1);
	}
	double took = now_s() - t0;
	*cpu = cpu_s() - c0;
	logtail_source.destroy(p.lt);
	status_free(p.st);
	source_conf_free(sc);
	core_free(c);
	buffer_close(b);
	return took;
}

static void write_scan_log(const char *path)
{
	FILE *f = fopen(path, "w");
	for (int i = 0; i < SCAN_LINES; i++) {
		int s = i % 86400;
		if (i % 100 == 0)
			fprintf(f, "2026-11-02 %02d:%02d:%02d SESSION user%05d 太原理工大学 60 %d\n", s / 3600,
				s / 60 % 60, s % 60, i / 100 % 100000, i % 7);
		else
			fprintf(f, "2026-11-02 %02d:%02d:%02d INFO stage temperature %d.%d K, pressure ok\n",
				s / 3600, s / 60 % 60, s % 60, 290 + i % 10, i % 10);
	}
	fclose(f);
}

static void write_session_csv(const char *path)
{
	FILE *f = fopen(path, "w");
	fputs("开始时间,结束时间,用户,单位,样品数\n", f);
	for (int i = 0; i < SESSION_LINES; i++) {
		int s = i % 80000;
		fprintf(f, "2026-11-02 %02d:%02d:%02d,2026-11-02 %02d:%02d:%02d,user%05d,太原理工大学,%d\n",
			s / 3600, s / 60 % 60, s % 60, (s + 600) / 3600, (s + 600) / 60 % 60, (s + 600) % 60,
			i, i % 5);
	}
	fclose(f);
}

/* The core alone: sessions sealed per second through core_submit, in batches of 1000. */
static double core_rate(const char *dir, double *cpu)
{
	struct config *cfg = make_config(dir, "core", "{ \"path\": \"/nonexistent\", \"format\": \"csv\","
					 " \"fields\": { \"start\": \"s\", \"end\": \"e\" } }");
	struct buffer *b;
	buffer_open(cfg->agent.state_dir, 0, &b, NULL);
	struct core *c = core_new(cfg, b);
	static struct obs v[1000];
	char users[1000][16];
	double t0 = now_s(), c0 = cpu_s();
	for (int k = 0; k < SESSION_LINES / 1000; k++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(users[i], sizeof(users[i]), "user%05d", i);
			v[i] = (struct obs){ .type = OBS_SESSION, .instrument = "BENCH",
				.u.session = { .start = 1793577600 + k * 1000 + i, .end = 1793578200 + k * 1000 + i,
					       .user = users[i], .org = "太原理工大学", .external = -1, .samples = 1 } };
		}
		char cursor[32];
		int n = snprintf(cursor, sizeof(cursor), "%d", k);
		if (core_submit(c, v, 1000, "bench", cursor, (size_t)n) < 0) {
			fprintf(stderr, "bench: core_submit failed\n");
			exit(1);
		}
	}
	double took = now_s() - t0;
	*cpu = cpu_s() - c0;
	core_free(c);
	buffer_close(b);
	config_free(cfg);
	return SESSION_LINES / took;
}

/* ---- through the running daemon: a GBK CSV of BENCH_LOG_LINES sessions (issue #15) ---- */

/* UTF-8 text to GB18030, appended to f. */
static void put_gbk(FILE *f, iconv_t cd, const char *utf8)
{
	char out[1024], *in = (char *)utf8, *o = out;
	size_t inl = strlen(utf8), outl = sizeof(out);
	if (iconv(cd, &in, &inl, &o, &outl) == (size_t)-1 || inl != 0) {
		fprintf(stderr, "bench: iconv: %s\n", strerror(errno));
		exit(1);
	}
	fwrite(out, 1, (size_t)(o - out), f);
}

static void write_gbk_csv(const char *path, long lines)
{
	FILE *f = fopen(path, "w");
	iconv_t cd = iconv_open("GB18030", "UTF-8");
	if (!f || cd == (iconv_t)-1) {
		fprintf(stderr, "bench: cannot write %s\n", path);
		exit(1);
	}
	put_gbk(f, cd, "开始时间,结束时间,用户,单位,样品数\n");
	/* BENCH_LOG_SPREAD_S apart (default 60: a session a minute, 1,000,000 of them over 694 days
	 * ending two days ago; 0: all on 2026-11-02 like the in-process CSV above), none twice, all
	 * in the past (a session more than 24 h ahead of the clock is refused, SPEC §3). */
	long spread = bench_env_long("BENCH_LOG_SPREAD_S", 60);
	const time_t base = time(NULL) - (time_t)lines * spread - 2 * 86400;
	for (long i = 0; i < lines; i++) {
		time_t s = spread ? base + (time_t)i * spread : 1793577600 + (time_t)(i % 80000);
		time_t e = s + 600 + (time_t)(i % 600);
		struct tm a, b;
		gmtime_r(&s, &a);
		gmtime_r(&e, &b);
		char line[256];
		snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d,%04d-%02d-%02d %02d:%02d:%02d,user%05ld,%s,%ld\n",
			 a.tm_year + 1900, a.tm_mon + 1, a.tm_mday, a.tm_hour, a.tm_min, a.tm_sec, b.tm_year + 1900,
			 b.tm_mon + 1, b.tm_mday, b.tm_hour, b.tm_min, b.tm_sec, i % 5000,
			 i % 3 ? "太原理工大学" : "山西大学", i % 7);
		put_gbk(f, cd, line);
	}
	iconv_close(cd);
	fclose(f);
}

struct sealed {
	sqlite3 *db;
	sqlite3_stmt *st;
	const char *path;
	long want, sessions;
	int64_t seq;
};

/* Session records the daemon has committed, counted from where the last look stopped. */
static bool daemon_done(void *arg)
{
	struct sealed *s = arg;
	if (!s->db) {
		if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(s->db, "SELECT COUNT(*), MAX(seq) FROM records WHERE seq > ?1 AND kind = 'session'",
				       -1, &s->st, NULL) != SQLITE_OK) {
			sqlite3_close(s->db);
			s->db = NULL;
			return false;
		}
		sqlite3_busy_timeout(s->db, 1000);
	}
	sqlite3_bind_int64(s->st, 1, s->seq);
	if (sqlite3_step(s->st) == SQLITE_ROW && sqlite3_column_int64(s->st, 0) > 0) {
		s->sessions += (long)sqlite3_column_int64(s->st, 0);
		s->seq = sqlite3_column_int64(s->st, 1);
	}
	sqlite3_reset(s->st);
	return s->sessions >= s->want;
}

/* `labshare-agent run` on the CSV: lines per second from spawn until every session is committed
 * (start-up included), and the daemon's CPU. */
static double daemon_rate(const char *dir, long lines, double *secs, double *cpu)
{
	char *csv = h_path(dir, "daemon-gbk.csv"), *cfg_path = h_path(dir, "daemon.json");
	write_gbk_csv(csv, lines);
	char *logs = h_strdupf("{ \"path\": \"%s\", \"format\": \"csv\", \"encoding\": \"gbk\","
			       " \"fields\": { \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\","
			       " \"org\": \"单位\", \"samples\": \"样品数\" } }", csv);
	char *text = h_strdupf(config_fmt, dir, "daemon", dir, logs);
	h_write_file(cfg_path, text, (size_t)-1, 0644);
	char *log = h_path(dir, "daemon.log");
	char *argv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", cfg_path, (char *)"run", NULL };
	char *db = h_strdupf("%s/state-daemon/buffer.db", dir);
	struct sealed s = { .want = lines, .path = db };
	double t0 = now_s();
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	struct bench_proc pr;
	/* Looked at every 20 ms, not 5: the reader's own CPU is taken from the daemon's two cores. */
	bool done = false;
	for (double until = t0 + 1800; !done && now_s() < until;) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		done = daemon_done(&s);
	}
	if (!done) {
		fprintf(stderr, "bench: the daemon sealed %ld of %ld sessions (see %s)\n", s.sessions, lines, log);
		exit(1);
	}
	*secs = now_s() - t0;
	bench_proc_read(p->pid, &pr);
	*cpu = pr.cpu_s;
	h_stop(p, 10000);
	h_proc_free(p);
	sqlite3_finalize(s.st);
	sqlite3_close(s.db);
	free(db);
	free(argv[0]);
	free(log);
	free(text);
	free(logs);
	free(cfg_path);
	free(csv);
	return (double)lines / *secs;
}

/* Plain SQLite on the same disk, same settings as the buffer: rows of a record's size per second. */
static double raw_insert_rate(const char *dir, double *cpu)
{
	char *path = h_strdupf("%s/raw.db", dir);
	sqlite3 *db;
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "CREATE TABLE records(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, line TEXT NOT NULL,"
		     " hash TEXT NOT NULL, sealed_at INTEGER NOT NULL)", NULL, NULL, NULL);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "INSERT INTO records VALUES(?1, 'session', ?2, ?3, ?4)", -1, &st, NULL);
	char line[320];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	const char hash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	double t0 = now_s(), c0 = cpu_s();
	for (int k = 0; k < RAW_ROWS; k += 1000) {
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		for (int i = k; i < k + 1000; i++) {
			sqlite3_bind_int64(st, 1, i + 1);
			sqlite3_bind_text(st, 2, line, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, 1793577600);
			sqlite3_step(st);
			sqlite3_reset(st);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	double took = now_s() - t0;
	*cpu = cpu_s() - c0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return RAW_ROWS / took;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_set_level(LOG_PRI_WARNING);
	bench_machine("logtail");
	timeutil_set_zone("Asia/Shanghai");
	logtail_tuning.poll_ms = 10;
	char *dir = h_mkdtemp("bench_logtail");
	char *token = h_path(dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);

	char *scan = h_path(dir, "scan.log"), *csv = h_path(dir, "sessions.csv");
	write_scan_log(scan);
	write_session_csv(csv);

	char *logs = h_strdupf("{ \"path\": \"%s\", \"format\": \"regex\","
			       " \"pattern\": \"^([0-9-]+ [0-9:]+) SESSION ([^ ]+) ([^ ]+) ([0-9]+) ([0-9]+)$\","
			       " \"fields\": { \"start\": 1, \"user\": 2, \"org\": 3, \"duration\": 4, \"samples\": 5 } }",
			       scan);
	struct config *cfg = make_config(dir, "scan", logs);
	free(logs);
	double c_scan, c_csv, c_core, c_raw;
	double t_scan = run_driver(cfg, SCAN_LINES, &c_scan);
	config_free(cfg);

	logs = h_strdupf("{ \"path\": \"%s\", \"format\": \"csv\", \"fields\": { \"start\": \"开始时间\","
			 " \"end\": \"结束时间\", \"user\": \"用户\", \"org\": \"单位\", \"samples\": \"样品数\" } }", csv);
	cfg = make_config(dir, "csv", logs);
	free(logs);
	double t_csv = run_driver(cfg, SESSION_LINES + 1, &c_csv);
	config_free(cfg);

	double core = core_rate(dir, &c_core);
	long d_lines = bench_env_long("BENCH_LOG_LINES", 1000000);
	double d_secs, d_cpu, daemon = daemon_rate(dir, d_lines, &d_secs, &d_cpu);
	double raw = raw_insert_rate(dir, &c_raw);

	printf("logtail: scan    %9.0f lines/s    (%d lines, 1 in 100 a session, regex, %.2f s, %.2f s cpu; goal 300000)\n",
	       SCAN_LINES / t_scan, SCAN_LINES, t_scan, c_scan);
	printf("logtail: commit  %9.0f sessions/s (%d CSV sessions sealed, %.2f s, %.2f s cpu; goal 50000)\n",
	       SESSION_LINES / t_csv, SESSION_LINES, t_csv, c_csv);
	printf("core:    seal    %9.0f sessions/s (core_submit alone, batches of 1000, %.2f s cpu)\n", core, c_core);
	printf("sqlite:  insert  %9.0f rows/s     (raw, WAL, synchronous=FULL, 1000 per transaction, %.2f s cpu: the limit)\n",
	       raw, c_raw);
	printf("daemon:  seal    %9.0f lines/s    (`labshare-agent run` on a %ld-line GBK CSV, every line a session: "
	       "%.2f s from spawn to the last committed, %.2f s cpu)\n", daemon, d_lines, d_secs, d_cpu);
	/* Every line a session, every row one: sessions per second both. */
	bench_goal_ratio("log-sessions", "sessions/s", daemon, raw, ">=", 0.5);

	free(scan);
	free(csv);
	h_rmtree(dir);
	free(dir);
	return 0;
}
