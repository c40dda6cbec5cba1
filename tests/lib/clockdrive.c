/* clockdrive.c — see clockdrive.h. */
#include "clockdrive.h"
#include "clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* How often, in real time, the driver looks for a new wait. A wait's first real slice is
 * longer (clock.c), and an advance wakes the waiter at once. */
#define LOOK_EVERY_NS 1000000L

struct h_clockdrive {
	struct fake_clock *fc;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* CLOCK_MONOTONIC, real: the driver's own pace */
	bool stop;
};

static void *drive(void *arg)
{
	struct h_clockdrive *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		int64_t next = fake_clock_next_deadline(), now = clock_mono_us();
		if (next > now)
			fake_clock_advance(d->fc, next - now);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += LOOK_EVERY_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

struct h_clockdrive *h_clockdrive_start(struct fake_clock *fc)
{
	struct h_clockdrive *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->fc = fc;
	pthread_mutex_init(&d->mu, NULL);
	if (clock_cond_init(&d->cv) < 0)
		goto fail_cv;
	if (pthread_create(&d->thread, NULL, drive, d) != 0)
		goto fail_thread;
	return d;
fail_thread:
	pthread_cond_destroy(&d->cv);
fail_cv:
	pthread_mutex_destroy(&d->mu);
	free(d);
	return NULL;
}

void h_clockdrive_stop(struct h_clockdrive *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
