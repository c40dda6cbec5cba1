/* test_modbus_gather.c — when the Modbus driver's TCP event loop (drivers/mbloop.c) starts its
 * polls, against the simulator. Polls that fall due within `ahead` of one another start at one
 * wake-up: none late, none more than `ahead` early, each on its own grid however often the loop
 * looks. Under the system clock the loop waits between polls in epoll_wait, its time-out the
 * next poll, is on time there, and stops at once from there. Which system call the loop sits in
 * is read from /proc/self/task/TID/syscall: only the loop uses epoll in this process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "modbus.h"
#include "status.h"
#include "timeutil.h"
#include "test_modbus_env.h"

/* How early the loop may start a poll (mbloop.c): GATHER_POLLS polls' worth of time over every
 * TCP instrument, at most the bus's shortest interval / LOOKAHEAD_DIV. */
#define GATHER_POLLS 6
#define LOOKAHEAD_DIV 40

/* The lab of the fake-clock test: G_BUSES gateways (one simulator endpoint each) with G_UNITS
 * instruments each, every one at 1 s. The driver spreads them evenly: one falls due every
 * 1000 / 120 = 8.3 ms, so with ahead = min(1000 / 40, 6 x 1000 / 120) = 25 ms the four due
 * within 25 ms of the first, one per gateway, start at one wake-up. */
#define G_BUSES 4
#define G_UNITS 30
#define G_N (G_BUSES * G_UNITS)
#define G_INTERVAL_S 1
#define G_INTERVAL_MS (G_INTERVAL_S * 1000)

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the model: when the driver means each instrument to be polled ------------------ */

struct grid {
	int64_t first[G_N]; /* monotonic ms of each instrument's first poll */
	int64_t interval_ms;
	int64_t ahead_ms;
};

/* As driver_create places them: the k-th instrument of bus i (of n_buses, cap on it) at
 * interval x (k + i / n_buses) / cap after the start. */
static int64_t first_due(int64_t start_ms, int64_t interval_ms, size_t k, size_t i, size_t n_buses, size_t cap)
{
	double place = ((double)k + (double)i / (double)n_buses) / (double)cap;
	return start_ms + (int64_t)((double)interval_ms * place);
}

static int64_t ahead_ms(int64_t min_interval_ms, double polls_per_s)
{
	int64_t ahead = min_interval_ms / LOOKAHEAD_DIV;
	int64_t gather = (int64_t)(GATHER_POLLS * 1000 / polls_per_s);
	return gather < ahead ? gather : ahead;
}

/* Polls of instrument j due by t (ms, monotonic). */
static int64_t due_by(const struct grid *g, size_t j, int64_t t)
{
	return t < g->first[j] ? 0 : (t - g->first[j]) / g->interval_ms + 1;
}

/* ---- the lab of many instruments ---------------------------------------------------- */

/* A text that grows (the configuration of 120 instruments); aborts the test when it can't. */
struct text {
	char *s;
	size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void text_add(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (t->s && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
		char *s = realloc(t->s, cap);
		assert_non_null(s);
		t->s = s;
		t->cap = cap;
	}
}

static int gather_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = h_mkdtemp("test_modbus_gather");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *pf = h_path(f->dir, "ports");
	char units[16];
	snprintf(units, sizeof(units), "1-%d", G_UNITS);
	char *argv[1 + 4 * G_BUSES + 2 + 1];
	size_t a = 0;
	argv[a++] = h_strdupf("%s", h_build_path("modbus-sim"));
	for (int e = 0; e < G_BUSES; e++) {
		argv[a++] = (char *)"--tcp";
		argv[a++] = (char *)"127.0.0.1:0";
		argv[a++] = (char *)"--units";
		argv[a++] = units;
	}
	argv[a++] = (char *)"--port-file";
	argv[a++] = pf;
	argv[a] = NULL;
	char *log = h_path(f->dir, "sim.log");
	f->sim = h_spawn(argv, NULL, true, true, log);
	free(argv[0]);
	free(log);
	assert_non_null(f->sim);
	assert_true(h_wait_file(pf, 10000));
	char *ports = h_read_file(pf, NULL);
	int port[G_BUSES];
	char *p = ports;
	for (int e = 0; e < G_BUSES; e++) {
		char *end;
		long v = strtol(p, &end, 10);
		assert_true(end != p && v > 0 && v < 65536);
		port[e] = (int)v;
		p = end;
	}
	free(ports);
	free(pf);

	struct text t = { 0 };
	text_add(&t, "{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		     " \"state_dir\": \"%s/state\" },"
		     " \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		     " \"buses\": [", f->dir, f->dir);
	for (int e = 0; e < G_BUSES; e++)
		text_add(&t, "%s { \"id\": \"gw%d\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 200 }",
			 e ? "," : "", e, port[e]);
	text_add(&t, " ], \"instruments\": [");
	/* bus by bus: instrument j is the (j % G_UNITS)-th of bus j / G_UNITS */
	for (int e = 0; e < G_BUSES; e++)
		for (int u = 1; u <= G_UNITS; u++)
			text_add(&t, "%s { \"id\": \"I%d_%d\", \"modbus\": { \"bus\": \"gw%d\", \"unit\": %d,"
				     " \"interval_s\": %d, \"run_counter\": { \"table\": \"holding\","
				     " \"address\": 0, \"type\": \"u16\" } } }",
				 e || u > 1 ? "," : "", e, u, e, u, G_INTERVAL_S);
	text_add(&t, " ] }");
	open_lab(f, t.s);
	*state = f;
	return 0;
}

/* Requests each instrument's unit has been served (one per poll: a single register; the
 * simulator leaves out what has had none). */
static void unit_counts(struct fx *f, int64_t out[G_N])
{
	char *stats = h_request(f->sim, "stats", 5000);
	cJSON *s = stats ? cJSON_Parse(stats) : NULL;
	free(stats);
	const cJSON *eps = cJSON_GetObjectItem(s, "endpoints");
	if (!eps)
		fail_msg("simulator: no stats");
	for (int e = 0; e < G_BUSES; e++) {
		char key[8];
		snprintf(key, sizeof(key), "%d", e);
		const cJSON *us = cJSON_GetObjectItem(cJSON_GetObjectItem(eps, key), "units");
		for (int u = 1; u <= G_UNITS; u++) {
			snprintf(key, sizeof(key), "%d", u);
			const cJSON *n = cJSON_GetObjectItem(us, key);
			out[e * G_UNITS + u - 1] = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
		}
	}
	cJSON_Delete(s);
}

/* Every poll due by now done and its reading with the core. A reading waits in the driver's
 * queue for the flusher's slice of real time under a fake clock: advancing it by nothing ends
 * that wait (and the loop's, which then finds the same time). */
static bool settled_nudged(void *arg)
{
	struct fx *f = arg;
	if (modbus_settled(f->drv))
		return true;
	fake_clock_advance(&f->clock, 0);
	return false;
}

static void settle_now(struct fx *f)
{
	if (!h_wait_for(settled_nudged, f, 15000))
		fail_msg("the driver did not finish the polls due by now");
}

static int64_t fake_ms(const struct fx *f)
{
	return f->clock.mono_us / 1000;
}

static void advance_to(struct fx *f, int64_t t_ms)
{
	fake_clock_advance(&f->clock, (t_ms - fake_ms(f)) * 1000);
	settle_now(f);
}

/* At fake time t: no poll late (every one due by t done), none more than ahead early; when
 * gathered, every poll due within ahead of t started too (t is a wake-up of the loop). */
static void check_polls(const struct grid *g, const int64_t n[G_N], int64_t t, bool gathered)
{
	for (size_t j = 0; j < G_N; j++) {
		int64_t due = due_by(g, j, t), upto = due_by(g, j, t + g->ahead_ms);
		int64_t next = g->first[j] + n[j] * g->interval_ms; /* its first poll not done */
		if (n[j] < due)
			fail_msg("at %" PRId64 " ms instrument %zu has had %" PRId64 " polls, %" PRId64
				 " were due (its poll due at %" PRId64 " ms is late)", t, j, n[j], due, next);
		if (n[j] > upto)
			fail_msg("at %" PRId64 " ms instrument %zu has had %" PRId64 " polls, only %" PRId64
				 " were due within %" PRId64 " ms (one started too early)", t, j, n[j], upto,
				 g->ahead_ms);
		if (gathered && n[j] < upto)
			fail_msg("the loop woke at %" PRId64 " ms, but instrument %zu due at %" PRId64
				 " ms (within %" PRId64 " ms) did not start with that wake-up", t, j, next,
				 g->ahead_ms);
	}
}

/* No poll counted late by the driver; when exact (nothing can start meanwhile: at a wake-up,
 * all due within ahead done), each instrument's polls are its unit's requests. */
static void check_status(struct fx *f, const int64_t n[G_N], bool exact)
{
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	modbus_source.status(f->drv, st->insts, st->n_insts);
	uint64_t late = 0;
	for (size_t i = 0; i < st->n_insts; i++) {
		int e, u;
		assert_int_equal(sscanf(st->insts[i].id, "I%d_%d", &e, &u), 2);
		const struct modbus_status *m = &st->insts[i].modbus;
		late += m->late_polls;
		if (exact && (int64_t)m->polls != n[e * G_UNITS + u - 1])
			fail_msg("\"%s\": %" PRIu64 " polls, its unit %" PRId64 " requests", st->insts[i].id,
				 m->polls, n[e * G_UNITS + u - 1]);
	}
	status_free(st);
	assert_int_equal(late, 0);
}

/* The fake clock moves as the system clock would for the loop: straight to the next poll it
 * has not started (where it sleeps till). Each wake-up starts the polls due within ahead
 * of it, several at once, and none after its time; over three intervals each stays on its
 * grid. Then the clock moves in small steps (the loop looks again at each, as it does when a
 * reply wakes it): still none late, none more than ahead early, no drift. */
static void test_polls_due_together_start_together(void **state)
{
	struct fx *f = *state;
	struct grid g = { .interval_ms = G_INTERVAL_MS };
	g.ahead_ms = ahead_ms(G_INTERVAL_MS, (double)G_N / G_INTERVAL_S);
	fake_start(f);
	int64_t t0 = fake_ms(f);
	for (size_t j = 0; j < G_N; j++)
		g.first[j] = first_due(t0, G_INTERVAL_MS, j % G_UNITS, j / G_UNITS, G_BUSES, G_UNITS);
	start_driver(f);
	settle_now(f);

	int64_t n[G_N], wakeups = 0, polls = 0, t = t0;
	int64_t end = t0 + 3 * G_INTERVAL_MS;
	for (;;) {
		unit_counts(f, n);
		check_polls(&g, n, t, true);
		wakeups++;
		int64_t next = INT64_MAX;
		for (size_t j = 0; j < G_N; j++)
			if (g.first[j] + n[j] * g.interval_ms < next)
				next = g.first[j] + n[j] * g.interval_ms;
		if (next >= end)
			break;
		advance_to(f, next);
		t = next;
	}
	for (size_t j = 0; j < G_N; j++)
		polls += n[j];
	/* one wake-up for every four polls here, not one each */
	if (wakeups * 3 > polls)
		fail_msg("%" PRId64 " wake-ups for %" PRId64 " polls", wakeups, polls);
	check_status(f, n, true);

	for (end = t + 2 * G_INTERVAL_MS; t < end;) {
		t += 13;
		advance_to(f, t);
		unit_counts(f, n);
		check_polls(&g, n, t, false);
	}
	check_status(f, n, false); /* a poll up to ahead early may be under way */
}

/* ---- under the system clock: how the loop waits ------------------------------------- */

/* The time-out (ms) of the thread waiting in epoll_wait, -1 when none is. */
static long loop_epoll_timeout(void)
{
	DIR *dir = opendir("/proc/self/task");
	assert_non_null(dir);
	long best = -1;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], line[256];
		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", de->d_name);
		FILE *fp = fopen(path, "r");
		if (!fp)
			continue;
		bool got = fgets(line, sizeof(line), fp) != NULL;
		fclose(fp);
		if (!got)
			continue;
		/* "NR arg1 … arg6 sp pc" while in a system call; "running" or "-1 sp pc" not */
		char *p = line, *end;
		long nr = strtol(p, &end, 10);
		if (end == p)
			continue;
		bool epoll = false;
#ifdef SYS_epoll_wait
		epoll = epoll || nr == SYS_epoll_wait;
#endif
#ifdef SYS_epoll_pwait
		epoll = epoll || nr == SYS_epoll_pwait;
#endif
		if (!epoll)
			continue;
		unsigned long long arg[4] = { 0 };
		p = end;
		for (int i = 0; i < 4; i++) {
			arg[i] = strtoull(p, &end, 16);
			p = end;
		}
		long timeout = (long)(int32_t)(uint32_t)arg[3]; /* epoll_wait(fd, events, max, timeout) */
		if (timeout < 0)
			timeout = INT32_MAX; /* no time-out at all */
		if (timeout > best)
			best = timeout;
	}
	closedir(dir);
	return best;
}

static bool syscalls_readable(void)
{
	FILE *fp = fopen("/proc/self/syscall", "r");
	if (fp)
		fclose(fp);
	return fp != NULL;
}

static struct modbus_status inst_status(struct fx *f, const char *id)
{
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	modbus_source.status(f->drv, st->insts, st->n_insts);
	struct modbus_status out = { 0 };
	for (size_t i = 0; i < st->n_insts; i++)
		if (strcmp(st->insts[i].id, id) == 0)
			out = st->insts[i].modbus;
	out.last_error = NULL; /* the strings belong to st */
	out.bus = NULL;
	out.reading.error = NULL;
	status_free(st);
	return out;
}

struct sampling {
	struct fx *f;
	int samples, in_epoll, idle; /* idle: in epoll_wait for longer than any request's time-out */
	uint64_t want;               /* A's polls */
};

static bool sampled_until_polled(void *arg)
{
	struct sampling *s = arg;
	long timeout = loop_epoll_timeout();
	s->samples++;
	s->in_epoll += timeout >= 0;
	s->idle += timeout > 200;
	return inst_status(s->f, "A").polls >= s->want;
}

/* The fixture's lab under the system clock: A, B, C at 0, 333, 667 ms of each second on one
 * gateway, D at 500 ms on the other, nothing out in between. For about three seconds every
 * poll is on time (none late, each count within one of elapsed / interval), and the loop spends
 * the time between them in epoll_wait — sometimes for longer than a request's time-out (200 ms),
 * which only the wait for the next poll is. */
static void test_real_clock_waits_in_epoll_on_time(void **state)
{
	struct fx *f = *state;
	if (!syscalls_readable())
		skip();
	int64_t t0 = real_ms();
	start_driver(f);
	struct sampling s = { f, 0, 0, 0, 4 };
	if (!h_wait_for(sampled_until_polled, &s, 10000))
		fail_msg("A was not polled %" PRIu64 " times within 10 s", s.want);
	int64_t elapsed = real_ms() - t0;
	static const struct {
		const char *id;
		int64_t at_ms;
	} insts[] = { { "A", 0 }, { "B", 333 }, { "C", 666 }, { "D", 500 } };
	for (size_t i = 0; i < sizeof(insts) / sizeof(insts[0]); i++) {
		struct modbus_status m = inst_status(f, insts[i].id);
		int64_t want = elapsed < insts[i].at_ms ? 0 : (elapsed - insts[i].at_ms) / 1000 + 1;
		if ((int64_t)m.polls < want - 1 || (int64_t)m.polls > want + 1 || m.late_polls)
			fail_msg("\"%s\": %" PRIu64 " polls (%" PRIu64 " late) in %" PRId64 " ms, want %" PRId64
				 " +-1, none late", insts[i].id, m.polls, m.late_polls, elapsed, want);
	}
	if (s.samples < 20 || s.in_epoll * 2 < s.samples || s.idle == 0)
		fail_msg("of %d looks at the loop it was in epoll_wait %d times, %d of them for the next "
			 "poll (want most, and some)", s.samples, s.in_epoll, s.idle);
}

static bool loop_idle_in_epoll(void *arg)
{
	(void)arg;
	return loop_epoll_timeout() > 5000;
}

/* Polls every 60 s: after A's first (B's is 20 s away) the loop waits in epoll_wait with nothing
 * out, and a stop from there ends it at once, not at its time-out. */
static void test_real_clock_stop_while_idle_is_prompt(void **state)
{
	struct fx *f = *state;
	if (!syscalls_readable())
		skip();
	static const char *const ids[] = { "A", "B", "C", "D" };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		((struct instrument_cfg *)inst(f, ids[i]))->modbus.interval_s = 60;
	start_driver(f);
	if (!h_wait_for(loop_idle_in_epoll, NULL, 5000))
		fail_msg("the loop never waited in epoll_wait for its next poll (A polled %" PRIu64 " times)",
			 inst_status(f, "A").polls);
	assert_int_equal(inst_status(f, "A").polls, 1);
	assert_int_equal(unit_requests(f, 0, 2), 0); /* B's poll is not out */
	int64_t s0 = real_ms();
	modbus_source.stop(f->drv);
	int64_t took = real_ms() - s0;
	if (took > 100)
		fail_msg("stop took %" PRId64 " ms", took);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_polls_due_together_start_together, gather_setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_clock_waits_in_epoll_on_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_clock_stop_while_idle_is_prompt, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
