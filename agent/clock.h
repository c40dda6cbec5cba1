/* clock.h — the time seam: all code asks here, tests move a fake clock instead of sleeping. */
#ifndef LABSHARE_CLOCK_H
#define LABSHARE_CLOCK_H

#include <stdint.h>

struct clock_ops {
	int64_t (*wall_us)(void *ctx);  /* microseconds since the epoch */
	int64_t (*mono_us)(void *ctx);  /* monotonic microseconds */
	void *ctx;
};

/* Install a clock (tests); NULL restores the system clock. Not thread-safe: call before threads start. */
void clock_set(const struct clock_ops *ops);

int64_t clock_wall_us(void);
int64_t clock_wall(void);      /* seconds since the epoch */
int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);

/* A ready-made fake for tests: time stands still until advanced. */
struct fake_clock {
	int64_t wall_us;
	int64_t mono_us;
};
void fake_clock_install(struct fake_clock *fc, int64_t wall_s);
void fake_clock_advance(struct fake_clock *fc, int64_t us);

#endif
