/* test_counter.c — the counter rules of SPEC §4, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "counter.h"

#define S 1000000LL /* one second in µs */

struct reading {
	double value;
	int64_t at_s;
	double want_delta;
	unsigned want_flags;
	int64_t want_from_s, want_to_s;
};

struct counter_case {
	const char *name;
	double range;
	double max_delta, clamp_to; /* < 0: no limit */
	struct reading r[8];
	int n;
};

static const struct counter_case cases[] = {
	{ "baseline then gain", 65536, -1, -1,
	  { { 100, 0, 0, COUNTER_BASELINE, 0, 0 }, { 110, 10, 10, 0, 0, 10 } }, 2 },
	{ "u16 wrap", 65536, -1, -1,
	  { { 65530, 0, 0, COUNTER_BASELINE, 0, 0 }, { 5, 10, 11, COUNTER_WRAP, 0, 10 } }, 2 },
	{ "u32 wrap", 4294967296.0, -1, -1,
	  { { 4294967000.0, 0, 0, COUNTER_BASELINE, 0, 0 }, { 100, 10, 396, COUNTER_WRAP, 0, 10 } }, 2 },
	{ "lone zero is a glitch", 4294967296.0, -1, -1,
	  { { 100, 0, 0, COUNTER_BASELINE, 0, 0 },
	    { 0, 10, 0, COUNTER_PENDING, 0, 0 },
	    { 120, 20, 20, COUNTER_GLITCH, 0, 20 } }, 3 },
	{ "reset confirmed by the next reading", 4294967296.0, -1, -1,
	  { { 100000, 0, 0, COUNTER_BASELINE, 0, 0 },
	    { 3, 10, 0, COUNTER_PENDING, 0, 0 },
	    { 8, 20, 8, COUNTER_RESET, 0, 20 },
	    { 10, 30, 2, 0, 20, 30 } }, 4 },
	{ "i32 can't wrap: a drop is a reset", 0, -1, -1,
	  { { 100, 0, 0, COUNTER_BASELINE, 0, 0 },
	    { 50, 10, 0, COUNTER_PENDING, 0, 0 },
	    { 60, 20, 60, COUNTER_RESET, 0, 20 } }, 3 },
	{ "small drop of a u16 is a reset, not a wrap", 65536, -1, -1,
	  { { 40000, 0, 0, COUNTER_BASELINE, 0, 0 },
	    { 20000, 10, 0, COUNTER_PENDING, 0, 0 },
	    { 20010, 20, 20010, COUNTER_RESET, 0, 20 } }, 3 },
	{ "two lower readings falling: first is a glitch", 0, -1, -1,
	  { { 100, 0, 0, COUNTER_BASELINE, 0, 0 },
	    { 50, 10, 0, COUNTER_PENDING, 0, 0 },
	    { 40, 20, 0, COUNTER_GLITCH | COUNTER_PENDING, 0, 0 },
	    { 45, 30, 45, COUNTER_RESET, 0, 30 } }, 4 },
	{ "gain beyond wall time is clamped", 4294967296.0, 20, 10,
	  { { 0, 0, 0, COUNTER_BASELINE, 0, 0 }, { 10000, 10, 10, COUNTER_CLAMPED, 0, 10 } }, 2 },
	{ "gain within wall time plus an interval is kept", 4294967296.0, 20, 10,
	  { { 0, 0, 0, COUNTER_BASELINE, 0, 0 }, { 15, 10, 15, 0, 0, 10 } }, 2 },
	{ "reading from the past is ignored", 65536, -1, -1,
	  { { 10, 100, 0, COUNTER_BASELINE, 100, 100 },
	    { 20, 50, 0, COUNTER_BACKWARDS, 100, 100 },
	    { 30, 110, 20, 0, 100, 110 } }, 3 },
	{ "a value that is no number is no reading", 4294967296.0, -1, -1,
	  { { NAN, 0, 0, COUNTER_INVALID, 0, 0 },
	    { 100, 10, 0, COUNTER_BASELINE, 10, 10 },
	    { INFINITY, 20, 0, COUNTER_INVALID, 10, 10 },
	    { -INFINITY, 25, 0, COUNTER_INVALID, 10, 10 },
	    { 110, 30, 10, 0, 10, 30 } }, 5 },
	{ "fractional float counter", 0, -1, -1,
	  { { 1.25, 0, 0, COUNTER_BASELINE, 0, 0 }, { 1.75, 60, 0.5, 0, 0, 60 } }, 2 },
};

static void test_counter_cases(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct counter_case *k = &cases[c];
		struct counter_state st;
		memset(&st, 0, sizeof(st));
		for (int i = 0; i < k->n; i++) {
			const struct reading *r = &k->r[i];
			struct counter_step step;
			counter_apply(&st, r->value, k->range, r->at_s * S, k->max_delta, k->clamp_to, &step);
			if (step.delta != r->want_delta || step.flags != r->want_flags ||
			    step.from_us != r->want_from_s * S || step.to_us != r->want_to_s * S)
				fail_msg("%s, reading %d: delta %g flags %#x [%lld, %lld], want %g %#x [%lld, %lld]",
					 k->name, i, step.delta, step.flags, (long long)(step.from_us / S),
					 (long long)(step.to_us / S), r->want_delta, r->want_flags,
					 (long long)r->want_from_s, (long long)r->want_to_s);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
