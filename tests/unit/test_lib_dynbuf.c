/* test_lib_dynbuf.c — the one growable buffer: grows, stays NUL-terminated, and at its cap
 * refuses and frees (so nobody sends a cut text as whole). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"

static void test_grows_and_terminates(void **state)
{
	(void)state;
	struct dbuf b;
	dbuf_init(&b, DBUF_NO_MAX);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(dbuf_add(&b, "abc", 3), 0);
	assert_int_equal(b.len, 30000);
	assert_int_equal(strlen(b.p), 30000);
	assert_true(b.cap >= b.len + 1);
	assert_int_equal(dbuf_add(&b, "", 0), 0);
	assert_int_equal(b.len, 30000);
	dbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");
	assert_int_equal(dbuf_addf(&b, "%d-%s", 42, "x"), 0);
	assert_string_equal(b.p, "42-x");
	dbuf_free(&b);
	assert_null(b.p);
	dbuf_free(&b); /* twice is harmless */
}

/* Exactly max - 1 bytes fit; one more is -E2BIG and the buffer is empty, not cut. */
static void test_sizes_at_the_cap(void **state)
{
	(void)state;
	char big[100];
	memset(big, 'x', sizeof(big));
	struct dbuf b = { .max = 64 };
	assert_int_equal(dbuf_add(&b, big, 63), 0);
	assert_int_equal(b.len, 63);
	assert_int_equal(dbuf_add(&b, "", 0), 0);
	assert_int_equal(dbuf_add(&b, "y", 1), -E2BIG);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	/* Usable again after a failure, with the same cap. */
	assert_int_equal(dbuf_add(&b, big, 62), 0);
	assert_int_equal(dbuf_add(&b, big, 2), -E2BIG);
	assert_int_equal(dbuf_add(&b, big, 64), -E2BIG);
	/* Appends that would overflow size_t are refused, not wrapped (one that fits the
	 * arithmetic but not memory is -ENOMEM: not tried here, ASan aborts on such a malloc). */
	dbuf_init(&b, DBUF_NO_MAX);
	assert_int_equal(dbuf_add(&b, "a", 1), 0);
	assert_int_equal(dbuf_add(&b, big, (size_t)-1), -E2BIG);
	assert_int_equal(dbuf_add(&b, "a", 1), 0);
	assert_int_equal(dbuf_add(&b, big, (size_t)-2), -E2BIG);
	assert_null(b.p);
	/* A zero cap (a struct nobody set up) holds nothing. */
	struct dbuf z = { 0 };
	assert_int_equal(dbuf_add(&z, "", 0), -E2BIG);
	/* max 1: only the empty text. */
	dbuf_init(&z, 1);
	assert_int_equal(dbuf_add(&z, "", 0), 0);
	assert_string_equal(z.p, "");
	assert_int_equal(dbuf_add(&z, "a", 1), -E2BIG);
}

/* A formatted text past the cap is refused whole, even one longer than addf's stack buffer. */
static void test_addf_long_and_capped(void **state)
{
	(void)state;
	char *long_arg = malloc(5001);
	memset(long_arg, 'q', 5000);
	long_arg[5000] = '\0';
	struct dbuf b;
	dbuf_init(&b, 6000);
	assert_int_equal(dbuf_addf(&b, "<%s>", long_arg), 0);
	assert_int_equal(b.len, 5002);
	assert_int_equal(b.p[5001], '>');
	assert_int_equal(dbuf_addf(&b, "%s", long_arg), -E2BIG);
	assert_null(b.p);
	free(long_arg);
}

static void test_take(void **state)
{
	(void)state;
	struct dbuf b = { .max = 1024 };
	size_t len = 99;
	char *empty = dbuf_take(&b, &len);
	assert_non_null(empty);
	assert_string_equal(empty, "");
	assert_int_equal(len, 0);
	free(empty);
	assert_int_equal(dbuf_str(&b, "kept"), 0);
	char *t = dbuf_take(&b, &len);
	assert_string_equal(t, "kept");
	assert_int_equal(len, 4);
	assert_null(b.p);
	assert_int_equal(b.max, 1024);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_and_terminates),
		cmocka_unit_test(test_sizes_at_the_cap),
		cmocka_unit_test(test_addf_long_and_capped),
		cmocka_unit_test(test_take),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
