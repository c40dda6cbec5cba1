/* clock.c — system clock by default; a process may install another (tests).
 * Only a build with -DLABSHARE_TEST_CLOCK (the benchmark's labshare-agent-testclock, never
 * the shipped binary) reads LABSHARE_CLOCK_OFFSET_S to run a whole daemon "in" another
 * time: sealed timestamps are evidence, so no switch in the environment may move them. */
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* Under a fake clock a wait never lasts longer than this in real time; the fake time is
 * read again after it, and fake_clock_advance wakes waiters at once anyway. */
#define FAKE_SLICE_US 20000

static int64_t sys_wall_us(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t sys_mono_us(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const struct clock_ops sys_clock = { sys_wall_us, sys_mono_us, NULL };
static const struct clock_ops *clk = &sys_clock;

void clock_set(const struct clock_ops *ops)
{
	clk = ops ? ops : &sys_clock;
}

bool clock_is_system(void)
{
	return clk == &sys_clock;
}

#ifdef LABSHARE_TEST_CLOCK
static int64_t wall_offset_us;
static pthread_once_t offset_once = PTHREAD_ONCE_INIT;

/* Once, whichever thread asks first: the other threads wait and then see the same value. */
static void read_offset(void)
{
	const char *s = getenv("LABSHARE_CLOCK_OFFSET_S");
	if (s && *s)
		wall_offset_us = strtoll(s, NULL, 10) * 1000000;
}

int64_t clock_wall_us(void)
{
	pthread_once(&offset_once, read_offset);
	return clk->wall_us(clk->ctx) + (clk == &sys_clock ? wall_offset_us : 0);
}
#else
int64_t clock_wall_us(void)
{
	return clk->wall_us(clk->ctx);
}
#endif

int64_t clock_wall(void)
{
	int64_t us = clock_wall_us();
	return us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
}

int64_t clock_mono_us(void) { return clk->mono_us(clk->ctx); }
int64_t clock_mono_ms(void) { return clock_mono_us() / 1000; }

int clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int r = pthread_condattr_init(&ca);
	if (r)
		return -r;
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return -r;
}

static struct timespec mono_abs(int64_t us)
{
	return (struct timespec){ .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };
}

/* Waiters under a fake clock, so that advancing it can wake them. */
struct waiter {
	pthread_cond_t *cv;
	int64_t deadline_us;
	struct waiter *next;
};
static pthread_mutex_t waiters_mu = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters;

int clock_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_us)
{
	if (clk == &sys_clock) {
		struct timespec ts = mono_abs(deadline_us);
		int r = pthread_cond_timedwait(cv, mu, &ts);
		return r == ETIMEDOUT || sys_mono_us(NULL) >= deadline_us ? ETIMEDOUT : 0;
	}
	if (clock_mono_us() >= deadline_us)
		return ETIMEDOUT;
	struct waiter w = { cv, deadline_us, NULL };
	pthread_mutex_lock(&waiters_mu);
	w.next = waiters;
	waiters = &w;
	pthread_mutex_unlock(&waiters_mu);
	struct timespec ts = mono_abs(sys_mono_us(NULL) + FAKE_SLICE_US);
	pthread_cond_timedwait(cv, mu, &ts);
	pthread_mutex_lock(&waiters_mu);
	for (struct waiter **p = &waiters; *p; p = &(*p)->next) {
		if (*p == &w) {
			*p = w.next;
			break;
		}
	}
	pthread_mutex_unlock(&waiters_mu);
	return clock_mono_us() >= deadline_us ? ETIMEDOUT : 0;
}

void clock_sleep_until(int64_t deadline_us)
{
	if (clk == &sys_clock) {
		struct timespec ts = mono_abs(deadline_us);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return;
	}
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	if (clock_cond_init(&cv) < 0)
		return;
	pthread_mutex_lock(&mu);
	while (clock_wait_until(&cv, &mu, deadline_us) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

static int64_t fake_wall(void *ctx) { return ((struct fake_clock *)ctx)->wall_us; }
static int64_t fake_mono(void *ctx) { return ((struct fake_clock *)ctx)->mono_us; }

void fake_clock_install(struct fake_clock *fc, int64_t wall_s)
{
	static struct clock_ops ops;
	fc->wall_us = wall_s * 1000000;
	fc->mono_us = 1000000;
	ops.wall_us = fake_wall;
	ops.mono_us = fake_mono;
	ops.ctx = fc;
	clock_set(&ops);
}

int64_t fake_clock_next_deadline(void)
{
	int64_t next = -1;
	pthread_mutex_lock(&waiters_mu);
	for (struct waiter *w = waiters; w; w = w->next)
		if (next < 0 || w->deadline_us < next)
			next = w->deadline_us;
	pthread_mutex_unlock(&waiters_mu);
	return next;
}

void fake_clock_advance(struct fake_clock *fc, int64_t us)
{
	fc->wall_us += us;
	fc->mono_us += us;
	pthread_mutex_lock(&waiters_mu);
	for (struct waiter *w = waiters; w; w = w->next)
		pthread_cond_broadcast(w->cv);
	pthread_mutex_unlock(&waiters_mu);
}
