/* bench_metrics.c — what the core spends per Modbus reading and per 1 s tick, without the
 * network: N instruments with a run counter and an in-use coil, one batch of N readings a
 * simulated second (as the driver's flusher commits them) and metrics_tick after each, on a
 * real SQLite buffer with a fake clock. Prints figures; it passes or fails nothing.
 * BENCH_INSTRUMENTS (default 200) and BENCH_SECONDS (simulated, default 1800: two slots close). */
#include <inttypes.h>
#include <syslog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "agentfix.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "source.h"

/* 2026-11-02T00:00:00Z, a slot boundary. */
#define T0 1793577600LL

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	char *end;
	long x = v ? strtol(v, &end, 10) : dflt;
	return v && (*end || x <= 0) ? dflt : x;
}

static char *make_config(long n)
{
	size_t cap = 512 + (size_t)n * 320, len = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	len += (size_t)snprintf(s + len, cap - len,
		"{ \"agent\": { \"id\": \"bench\", \"lab_code\": \"L\", \"timezone\": \"UTC\","
		"    \"state_dir\": \"@DIR@/state\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"@DIR@/token\","
		"    \"upload_interval_s\": 10 },"
		"  \"buses\": [ { \"id\": \"b\", \"url\": \"tcp://127.0.0.1:1502\" } ],"
		"  \"instruments\": [");
	for (long i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
			"%s { \"id\": \"I%ld\", \"modbus\": { \"bus\": \"b\", \"unit\": 1, \"interval_s\": 1,"
			" \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\","
			" \"scale\": 0.000277777777777778 }, \"in_use\": { \"table\": \"coil\", \"address\": 5 } } }",
			i ? "," : "", i);
	snprintf(s + len, cap - len, " ] }");
	return s;
}

int main(void)
{
	long n = env_long("BENCH_INSTRUMENTS", 200), secs = env_long("BENCH_SECONDS", 1800);
	log_set_level(LOG_WARNING);
	char *cfg_text = make_config(n);
	struct agent_fix *f = cfg_text ? agent_fix_new("bench_metrics", cfg_text, "UTC", T0) : NULL;
	free(cfg_text);
	if (!f) {
		fprintf(stderr, "bench_metrics: cannot set up\n");
		return 1;
	}
	char (*ids)[24] = calloc((size_t)n, sizeof(*ids));
	struct obs *v = calloc((size_t)n, sizeof(*v));
	if (!ids || !v)
		return 1;
	for (long i = 0; i < n; i++)
		snprintf(ids[i], sizeof(ids[i]), "I%ld", i);

	double sub_cpu = 0, sub_wall = 0, tick_cpu = 0, tick_wall = 0;
	int64_t sealed = 0;
	for (long t = 0; t < secs; t++) {
		int64_t now = T0 + t;
		fake_clock_advance(&f->clock, 1000000);
		for (long i = 0; i < n; i++) {
			v[i] = (struct obs){ .type = OBS_READING, .instrument = ids[i] };
			v[i].u.reading.at_us = now * 1000000 + i * 1000;
			v[i].u.reading.ok = true;
			v[i].u.reading.has_in_use = true;
			v[i].u.reading.in_use = true;
			v[i].u.reading.run = (struct obs_value){ true, (double)t, 1.0 / 3600, 4294967296.0 };
		}
		double c0 = cpu_s(), w0 = wall_s();
		if (core_submit(f->core, v, (size_t)n, NULL, NULL, 0) != 0) {
			fprintf(stderr, "bench_metrics: core_submit failed at %ld s\n", t);
			return 1;
		}
		double c1 = cpu_s(), w1 = wall_s();
		int r = metrics_tick(core_metrics(f->core), now);
		double c2 = cpu_s(), w2 = wall_s();
		if (r < 0) {
			fprintf(stderr, "bench_metrics: metrics_tick failed at %ld s\n", t);
			return 1;
		}
		sealed += r;
		sub_cpu += c1 - c0;
		sub_wall += w1 - w0;
		tick_cpu += c2 - c1;
		tick_wall += w2 - w1;
	}
	double readings = (double)n * (double)secs;
	printf("bench_metrics: %ld instruments, %ld simulated s, %.0f readings, %" PRId64 " records sealed by ticks\n",
	       n, secs, readings, sealed);
	printf("  core_submit: %.2f us CPU per reading (%.2f us wall), %.0f readings/s\n",
	       sub_cpu / readings * 1e6, sub_wall / readings * 1e6, readings / sub_wall);
	printf("  metrics_tick: %.3f ms CPU per tick (%.3f ms wall), %.2f us per instrument\n",
	       tick_cpu / (double)secs * 1e3, tick_wall / (double)secs * 1e3,
	       tick_cpu / (double)secs / (double)n * 1e6);
	free(ids);
	free(v);
	agent_fix_free(f);
	return 0;
}
