/* clock.h — the time seam: all code asks here, tests move a fake clock instead of sleeping. */
#ifndef LABSHARE_CLOCK_H
#define LABSHARE_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct clock_ops {
	int64_t (*wall_us)(void *ctx);  /* microseconds since the epoch */
	int64_t (*mono_us)(void *ctx);  /* monotonic microseconds */
	void *ctx;
};

/* Install a clock (tests); NULL restores the system clock. Not thread-safe: call before threads start. */
void clock_set(const struct clock_ops *ops);

/* True unless a test installed a clock: a wait may then be the kernel's own time-out (an
 * epoll_wait), which a fake clock could not end. */
bool clock_is_system(void);

int64_t clock_wall_us(void);
int64_t clock_wall(void);      /* seconds since the epoch */
int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);

/* Waiting, through the same seam. Condition variables that clock_wait_until waits on are made
 * with clock_cond_init (CLOCK_MONOTONIC: a wall-clock step neither stalls nor hurries a wait).
 * With mu held: wait on cv until it is signalled or clock_mono_us() reaches deadline_us.
 * Returns 0 when woken (perhaps spuriously: re-check what you wait for) and ETIMEDOUT once the
 * deadline has passed. Under a fake clock nothing waits for real: a wait lasts at most a short
 * real slice, and fake_clock_advance wakes every waiter, so tests drive time. */
int clock_cond_init(pthread_cond_t *cv);
int clock_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_us);
/* Sleep until clock_mono_us() reaches deadline_us (the same rules). */
void clock_sleep_until(int64_t deadline_us);

/* A ready-made fake for tests: time stands still until advanced. */
struct fake_clock {
	int64_t wall_us;
	int64_t mono_us;
};
void fake_clock_install(struct fake_clock *fc, int64_t wall_s);
void fake_clock_advance(struct fake_clock *fc, int64_t us);
/* The earliest deadline (clock_mono_us) of the waits under way on the fake clock, -1 when
 * nothing waits: a test that drives time can move it straight to the next thing due, so fake
 * time passes exactly as long as the code under test waits. */
int64_t fake_clock_next_deadline(void);

#endif
