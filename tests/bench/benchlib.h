/* benchlib.h — what the benchmarks share: machine facts, a process's CPU, memory and wake-ups read
 * from /proc, settings from the environment, the reference platform started over HTTPS, the
 * simulated lab, a receiver for collectd, the agent's configuration and live view. Built once
 * (benchlib.c) and linked into every tests/bench/bench_*.c (Makefile). */
#ifndef LABSHARE_BENCHLIB_H
#define LABSHARE_BENCHLIB_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "platfix.h"

double bench_mono(void);

double bench_wall(void);

/* Waits until the monotonic clock reaches `until`: the edges of a measurement window. */
void bench_sleep_until(double until);

long bench_env_long(const char *name, long def);

const char *bench_env_str(const char *name, const char *def);

/* nproc, CPU model, kernel and load: printed first so figures can be compared across machines. */
void bench_machine(const char *who);

/* A process as /proc sees it. cpu_s covers every thread, past and present (utime + stime);
 * context switches are summed over the threads alive now (/proc/PID/task/TID/status). */
struct bench_proc {
	double cpu_s;
	long hwm_kb, rss_kb, anon_kb;  /* VmHWM, VmRSS, RssAnon (private memory: heap, stacks, arenas) */
	long long vol, invol;
	int threads;
};

int bench_proc_read(pid_t pid, struct bench_proc *out);

/* The reference platform (tests/refplat) over HTTPS on 127.0.0.1, with a CA made for the run
 * (tests/lib/platfix): fix.p, fix.port, fix.db; platfix_use_db(&pf->fix, …) between starts. */
struct bench_platform {
	struct platfix fix;
	char *certs, *ca;
};

#define BENCH_TOKEN "bench-token-0123456789"

/* Starts it again, on the same port. */
int bench_platform_start(struct bench_platform *pf);
/* Certificates in dir/certs; the platform's db is dir/name.db. */
int bench_platform_init(struct bench_platform *pf, const char *dir, const char *name);
void bench_platform_stop(struct bench_platform *pf);
void bench_platform_free(struct bench_platform *pf);

/* ---- the simulated lab ---------------------------------------------------------------- */

#define RUN_ADDR 100                   /* input registers 100-101: u32 run counter, seconds */
#define COIL_ADDR 5                    /* coil 5: in use */
#define MIRROR_ADDR 6                  /* holding 6: the in-use flag for collectd, which reads no coils */
#define INUSE_REG_ADDR 102             /* input 102: the in-use flag as a register beside the counter */

/* One simulator process serves up to LAB_EPS_PER_SIM endpoints (any number of units on each);
 * a lab with more runs several, so that 1,000 one-unit endpoints spread over the CPUs (the
 * simulator's poll loop costs O(connections) per wake-up). 100 gateways x 50 units: one process. */
#define LAB_EPS_PER_SIM 120
#define LAB_REGS 128                   /* registers per table and unit: the lab uses addresses < 102 */
#define LAB_SIMS_MAX 16

struct lab {
	char *dir;
	int n_inst, per_bus, n_bus, delay_ms, n_sims;
	int *ports;
	struct h_proc *sim[LAB_SIMS_MAX];
};

/* n_inst instruments, per_bus units on each TCP gateway, replies delay_ms late. */
int lab_start(struct lab *l, const char *dir, int n_inst, int per_bus, int delay_ms);

void lab_stop(struct lab *l);

/* Requests the simulators answered since the last reset. */
double lab_requests(struct lab *l, bool reset);

/* ---- a receiver for collectd's write_http: HTTP/1.1 keep-alive, counts PUTVAL lines ---- */

#define RX_CONNS 64
#define RX_BUF_MAX (16u << 20)

struct series {
	double *ts;
	size_t n, cap;
};

struct rx_conn {
	int fd;
	char *buf;
	size_t len, cap;
	bool continued;
};

struct receiver {
	int port, lfd, per_host;
	size_t n_inst;
	pthread_t thread;
	atomic_bool quit, listening_wanted;
	pthread_mutex_t mu;
	struct series *run;             /* per instrument: timestamps of run-counter values */
	uint64_t values, posts, unparsed;
	double newest;
	struct rx_conn conns[RX_CONNS];
};

int rx_listen(struct receiver *rx);

int rx_start(struct receiver *rx, size_t n_inst, int per_host);

void rx_stop(struct receiver *rx);

/* ---- labshare-agent ---------------------------------------------------------------------- */

/* An agent polling the lab every interval_s, uploading to pf (upload_interval_s 0: the default). */
char *agent_config(const char *dir, const char *agent_id, const struct lab *l,
				 const struct bench_platform *pf, int interval_s, int upload_interval_s);

/* The daemon's live view ({state_dir}/status.json, written every 2 s, every n ÷ 500 s at more than 1,000 instruments), summed. */
struct snap {
	double mtime, polls, late;
	int n, polled2, ok;
};

int snap_read(const char *path, struct snap *s);

/* The next snapshot written after `after` (its mtime), within timeout_s. */
int snap_next(const char *path, double after, struct snap *s, double timeout_s);

/* buffer.last_seq and acked_seq from `labshare-agent status --json`. */
int agent_seqs(const char *cfg, double *last, double *acked);

/* ---- collectd ----------------------------------------------------------------------------- */

/* One Host block per gateway (a bus: its slaves are read one after another), two Data blocks
 * per slave; values go to the receiver with write_http in collectd's "Command" format. */
char *collectd_config(const char *dir, const struct lab *l, int rx_port, int interval_s,
				    long read_threads);

/* The same with write_http to any URL: https://… with ca_file (NULL: none) for collectd over
 * HTTPS to the platform fixture, as the agent uploads. */
char *collectd_config_url(const char *dir, const struct lab *l, const char *url, const char *ca_file,
			  int interval_s, long read_threads);

/* collectd's ReadThreads for a lab: one per gateway (a Host is read by one thread, its slaves one
 * after another), at most BENCH_COLLECTD_THREADS_MAX; BENCH_COLLECTD_READ_THREADS overrides. */
#define BENCH_COLLECTD_THREADS_MAX 64
long collectd_read_threads(const struct lab *l);

/* ---- goals: one line each, collected by run-bench.sh's summary ----------------------------
 * GOAL <name>: agent <x> <unit>, anchor <y> <unit>, ratio <r> (goal <op> <g>) met|missed
 * The name must not change between runs (no figures in it) and holds no ": agent ". */

/* A goal on the ratio agent ÷ anchor (e.g. CPU per poll ≤ 0.333 of collectd's). NAN: no figure
 * (the run failed or was skipped): printed as "-" and missed. */
void bench_goal_ratio(const char *name, const char *unit, double agent, double anchor, const char *op,
		      double goal);

/* A goal on the agent's own figure (e.g. ≥ 99.9 % on schedule); anchor (NAN: none) is printed
 * beside it with the ratio, for scale. */
void bench_goal_abs(const char *name, const char *unit, double agent, double anchor, const char *op,
		    double goal);

/* The collectd binary when collectd-core is usable here (with the two plugins and what they
 * link against), else NULL with the reason in why. */
const char *collectd_check(char *why, size_t whylen);

#endif
