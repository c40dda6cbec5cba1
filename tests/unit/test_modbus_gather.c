/* test_modbus_gather.c — when the Modbus driver's TCP event loop (drivers/mbloop.c) starts its
 * polls, against the simulator. Polls that fall due within `ahead` of one another start at one
 * wake-up: none late, none more than `ahead` early, each on its own grid however often the loop
 * looks, and none inside its bus's gap_ms. Under the system clock the loop waits between polls
 * in epoll_wait, its time-out the next poll, is on time there, and stops at once from there.
 * Which system call the loop sits in is read from /proc/self/task/TID/syscall: only the loop
 * uses epoll in this process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
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
#define GATHER_POLLS 8
#define LOOKAHEAD_DIV 40

/* The labs of the fake-clock tests: gateways (one simulator endpoint each) with as many
 * instruments each, every one at 1 s, listed bus by bus: instrument j is the (j % units)-th
 * of bus j / units. */
struct lab {
	int buses, units, gap_ms;
};
#define G_MAX 128
#define G_INTERVAL_S 1
#define G_INTERVAL_MS (G_INTERVAL_S * 1000)
/* Four gateways of 30: the driver spreads them evenly, one falling due every 1000 / 120 =
 * 8.3 ms, so with ahead = min(1000 / 40, 8 x 1000 / 120) = 25 ms the four due within 25 ms of
 * the first, one per gateway, start at one wake-up. */
static const struct lab four_by_30 = { 4, 30, 0 };
/* One gateway of 50 that wants 10 ms between frames: one due every 20 ms, within ahead
 * (min(25, 8 x 1000 / 50)) of the one before, which the gap keeps from starting early. */
static const struct lab one_by_50_gap_10 = { 1, 50, 10 };

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the model: when the driver means each instrument to be polled ------------------ */

struct grid {
	const struct lab *lab;
	size_t n;
	int64_t first[G_MAX]; /* monotonic ms of each instrument's first poll */
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

/* The lab's grid from start_ms, the fake clock when the driver is made. */
static void grid_make(struct grid *g, const struct lab *lab, int64_t start_ms)
{
	g->lab = lab;
	g->n = (size_t)(lab->buses * lab->units);
	assert_true(g->n <= G_MAX);
	g->interval_ms = G_INTERVAL_MS;
	g->ahead_ms = ahead_ms(G_INTERVAL_MS, (double)g->n / G_INTERVAL_S);
	for (size_t j = 0; j < g->n; j++)
		g->first[j] = first_due(start_ms, G_INTERVAL_MS, j % (size_t)lab->units, j / (size_t)lab->units,
					(size_t)lab->buses, (size_t)lab->units);
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

static int lab_setup(void **state, const struct lab *lab)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = h_mkdtemp("test_modbus_gather");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *pf = h_path(f->dir, "ports");
	char units[16];
	snprintf(units, sizeof(units), "1-%d", lab->units);
	char *argv[1 + 4 * 8 + 2 + 1];
	assert_true(lab->buses <= 8);
	size_t a = 0;
	argv[a++] = h_strdupf("%s", h_build_path("modbus-sim"));
	for (int e = 0; e < lab->buses; e++) {
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
	int port[8];
	char *p = ports;
	for (int e = 0; e < lab->buses; e++) {
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
	for (int e = 0; e < lab->buses; e++)
		text_add(&t, "%s { \"id\": \"gw%d\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 200,"
			     " \"gap_ms\": %d }", e ? "," : "", e, port[e], lab->gap_ms);
	text_add(&t, " ], \"instruments\": [");
	for (int e = 0; e < lab->buses; e++)
		for (int u = 1; u <= lab->units; u++)
			text_add(&t, "%s { \"id\": \"I%d_%d\", \"modbus\": { \"bus\": \"gw%d\", \"unit\": %d,"
				     " \"interval_s\": %d, \"run_counter\": { \"table\": \"holding\","
				     " \"address\": 0, \"type\": \"u16\" } } }",
				 e || u > 1 ? "," : "", e, u, e, u, G_INTERVAL_S);
	text_add(&t, " ] }");
	open_lab(f, t.s);
	*state = f;
	return 0;
}

static int gather_setup(void **state)
{
	return lab_setup(state, &four_by_30);
}

static int gap_setup(void **state)
{
	return lab_setup(state, &one_by_50_gap_10);
}

/* Requests each instrument's unit has been served (one per poll: a single register; the
 * simulator leaves out what has had none). */
static void unit_counts(struct fx *f, const struct grid *g, int64_t out[G_MAX])
{
	char *stats = h_request(f->sim, "stats", 5000);
	cJSON *s = stats ? cJSON_Parse(stats) : NULL;
	free(stats);
	const cJSON *eps = cJSON_GetObjectItem(s, "endpoints");
	if (!eps)
		fail_msg("simulator: no stats");
	int units = g->lab->units;
	for (int e = 0; e < g->lab->buses; e++) {
		char key[16];
		snprintf(key, sizeof(key), "%d", e);
		const cJSON *us = cJSON_GetObjectItem(cJSON_GetObjectItem(eps, key), "units");
		for (int u = 1; u <= units; u++) {
			snprintf(key, sizeof(key), "%d", u);
			const cJSON *n = cJSON_GetObjectItem(us, key);
			out[e * units + u - 1] = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
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

enum expect {
	WITHIN,   /* none late, none more than ahead early */
	GATHERED, /* t is a wake-up: every poll due within ahead of it started with it */
	ON_TIME,  /* t is a wake-up: the polls due by it, none early */
};

/* At fake time t: n[j] polls of instrument j done, or under way. */
static void check_polls(const struct grid *g, const int64_t n[G_MAX], int64_t t, enum expect e)
{
	for (size_t j = 0; j < g->n; j++) {
		int64_t due = due_by(g, j, t), upto = due_by(g, j, t + g->ahead_ms);
		int64_t next = g->first[j] + n[j] * g->interval_ms; /* its first poll not done */
		if (n[j] < due)
			fail_msg("at %" PRId64 " ms instrument %zu has had %" PRId64 " polls, %" PRId64
				 " were due (its poll due at %" PRId64 " ms is late)", t, j, n[j], due, next);
		if (n[j] > (e == ON_TIME ? due : upto))
			fail_msg("at %" PRId64 " ms instrument %zu has had %" PRId64 " polls, only %" PRId64
				 " were due%s (one started too early)", t, j, n[j], e == ON_TIME ? due : upto,
				 e == ON_TIME ? "" : " within ahead");
		if (e == GATHERED && n[j] < upto)
			fail_msg("the loop woke at %" PRId64 " ms, but instrument %zu due at %" PRId64
				 " ms (within %" PRId64 " ms) did not start with that wake-up", t, j, next,
				 g->ahead_ms);
	}
}

/* No poll counted late by the driver; when exact (nothing can start meanwhile: at a wake-up,
 * all due within ahead done), each instrument's polls are its unit's requests. */
static void check_status(struct fx *f, const struct grid *g, const int64_t n[G_MAX], bool exact)
{
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	modbus_source.status(f->drv, st->insts, st->n_insts);
	uint64_t late = 0;
	for (size_t i = 0; i < st->n_insts; i++) {
		int e, u;
		assert_int_equal(sscanf(st->insts[i].id, "I%d_%d", &e, &u), 2);
		const struct modbus_status *m = &st->insts[i].modbus;
		int64_t want = n[e * g->lab->units + u - 1];
		late += m->late_polls;
		if (exact && (int64_t)m->polls != want)
			fail_msg("\"%s\": %" PRIu64 " polls, its unit %" PRId64 " requests", st->insts[i].id,
				 m->polls, want);
	}
	status_free(st);
	assert_int_equal(late, 0);
}

/* The driver started at the fake clock's start, g its grid: the clock moves as the system
 * clock would for the loop, straight to the next poll not started (where it sleeps till), up
 * to end; e checked at each. The wake-ups it took; the last one's time in *t. */
static int64_t wake_by_wake(struct fx *f, const struct grid *g, int64_t end, enum expect e, int64_t *t,
			    int64_t n[G_MAX])
{
	int64_t wakeups = 0;
	for (;;) {
		unit_counts(f, g, n);
		check_polls(g, n, *t, e);
		wakeups++;
		int64_t next = INT64_MAX;
		for (size_t j = 0; j < g->n; j++)
			if (g->first[j] + n[j] * g->interval_ms < next)
				next = g->first[j] + n[j] * g->interval_ms;
		if (next >= end)
			return wakeups;
		advance_to(f, next);
		*t = next;
	}
}

static int64_t start_on_grid(struct fx *f, const struct lab *lab, struct grid *g)
{
	fake_start(f);
	int64_t t0 = fake_ms(f);
	grid_make(g, lab, t0);
	start_driver(f);
	settle_now(f);
	return t0;
}

/* Four gateways of 30 instruments, one due every 8.3 ms. Wake-up by wake-up, each starts the
 * polls due within ahead of it, several at once, and none after its time; over three intervals
 * each stays on its grid. Then the clock moves in small steps (the loop looks again at each,
 * as it does when a reply wakes it): still none late, none more than ahead early, no drift. */
static void test_polls_due_together_start_together(void **state)
{
	struct fx *f = *state;
	struct grid g;
	int64_t t = start_on_grid(f, &four_by_30, &g), n[G_MAX], polls = 0;
	int64_t wakeups = wake_by_wake(f, &g, t + 3 * G_INTERVAL_MS, GATHERED, &t, n);
	for (size_t j = 0; j < g.n; j++)
		polls += n[j];
	/* one wake-up for every four polls here, not one each */
	if (wakeups * 3 > polls)
		fail_msg("%" PRId64 " wake-ups for %" PRId64 " polls", wakeups, polls);
	check_status(f, &g, n, true);

	for (int64_t end = t + 2 * G_INTERVAL_MS; t < end;) {
		t += 13;
		advance_to(f, t);
		unit_counts(f, &g, n);
		check_polls(&g, n, t, WITHIN);
	}
	check_status(f, &g, n, false); /* a poll up to ahead early may be under way */
}

/* One gateway with a gap of 10 ms, one instrument due every 20 ms: each next one is within
 * ahead when the one before is done, but inside the bus's gap. Wake-up by wake-up over two
 * intervals every poll starts at its time, none early (it would follow its neighbour on the
 * wire with no gap), none late. */
static void test_gap_keeps_polls_apart(void **state)
{
	struct fx *f = *state;
	struct grid g;
	int64_t t = start_on_grid(f, &one_by_50_gap_10, &g), n[G_MAX];
	assert_true(g.first[1] - g.first[0] <= g.ahead_ms);
	int64_t wakeups = wake_by_wake(f, &g, t + 2 * G_INTERVAL_MS, ON_TIME, &t, n);
	assert_int_equal(wakeups, 2 * (int64_t)g.n);
	check_status(f, &g, n, true);
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

/* The fixture's lab under the system clock: A, B, C at 0, 333, 666 ms of each second on one
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
	if (took > 150)
		fail_msg("stop took %" PRId64 " ms", took);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_polls_due_together_start_together, gather_setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_keeps_polls_apart, gap_setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_clock_waits_in_epoll_on_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_clock_stop_while_idle_is_prompt, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
