/* test_clock.c — the time seam's waits: real ones end at their monotonic deadline, and under a
 * fake clock a wait of an hour ends as soon as the test moves the clock, not an hour later. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>

#include "clock.h"
#include "harness.h"

static void test_system_wait_ends_at_deadline(void **state)
{
	(void)state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	assert_int_equal(clock_cond_init(&cv), 0);
	int64_t t0 = clock_mono_us(), deadline = t0 + 30000;
	pthread_mutex_lock(&mu);
	int r;
	while ((r = clock_wait_until(&cv, &mu, deadline)) == 0)
		;
	pthread_mutex_unlock(&mu);
	assert_int_equal(r, ETIMEDOUT);
	assert_true(clock_mono_us() >= deadline);
	clock_sleep_until(clock_mono_us() + 1000);
	pthread_cond_destroy(&cv);
}

struct sleeper {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t deadline;
	int result;
	bool done;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	pthread_mutex_lock(&s->mu);
	int r;
	while ((r = clock_wait_until(&s->cv, &s->mu, s->deadline)) == 0)
		;
	s->result = r;
	s->done = true;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static bool sleeper_done(void *arg)
{
	struct sleeper *s = arg;
	pthread_mutex_lock(&s->mu);
	bool d = s->done;
	pthread_mutex_unlock(&s->mu);
	return d;
}

static void test_fake_wait_follows_the_fake_clock(void **state)
{
	(void)state;
	struct fake_clock fc;
	fake_clock_install(&fc, 1793577600);
	struct sleeper s = { .mu = PTHREAD_MUTEX_INITIALIZER, .deadline = clock_mono_us() + 3600LL * 1000000 };
	assert_int_equal(clock_cond_init(&s.cv), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sleeper_main, &s), 0);
	/* An hour of fake time has not passed: the waiter is still waiting. */
	assert_false(h_wait_for(sleeper_done, &s, 200));
	fake_clock_advance(&fc, 3599LL * 1000000);
	assert_false(h_wait_for(sleeper_done, &s, 100));
	fake_clock_advance(&fc, 1000000);
	assert_true(h_wait_for(sleeper_done, &s, 5000));
	pthread_join(t, NULL);
	assert_int_equal(s.result, ETIMEDOUT);
	pthread_cond_destroy(&s.cv);
	clock_set(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_system_wait_ends_at_deadline),
		cmocka_unit_test(test_fake_wait_follows_the_fake_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
