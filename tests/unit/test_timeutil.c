/* test_timeutil.c — local time of the lab: RFC 3339 offsets, ISO parsing, midnights across DST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "timeutil.h"

static void test_zone_names(void **state)
{
	(void)state;
	assert_true(timeutil_zone_exists("Asia/Shanghai"));
	assert_true(timeutil_zone_exists("UTC"));
	assert_false(timeutil_zone_exists("Asia/Shangai"));
	assert_false(timeutil_zone_exists("../../etc/passwd"));
	assert_false(timeutil_zone_exists("/usr/share/zoneinfo/UTC"));
	assert_false(timeutil_zone_exists(""));
	assert_int_equal(timeutil_set_zone("Mars/Olympus"), -EINVAL);
}

static void test_rfc3339_shanghai(void **state)
{
	(void)state;
	assert_int_equal(timeutil_set_zone("Asia/Shanghai"), 0);
	char buf[RFC3339_LEN], date[DATE_LEN];
	time_rfc3339(1793577600, buf); /* 2026-11-02T00:00:00Z */
	assert_string_equal(buf, "2026-11-02T08:00:00+08:00");
	time_date(1793577600 + 16 * 3600 - 1, date);
	assert_string_equal(date, "2026-11-02");
	time_date(1793577600 + 16 * 3600, date);
	assert_string_equal(date, "2026-11-03");
	assert_int_equal(time_day_start(1793577600), 1793577600 - 8 * 3600);
	assert_int_equal(time_next_day(1793577600), 1793577600 + 16 * 3600);
}

static void test_parse_iso(void **state)
{
	(void)state;
	assert_int_equal(timeutil_set_zone("Asia/Shanghai"), 0);
	static const struct {
		const char *in;
		int64_t want;
	} ok[] = {
		{ "2026-11-02 08:00:00", 1793577600 },
		{ "2026-11-02T08:00:00", 1793577600 },
		{ "2026-11-02 08:00", 1793577600 },
		{ "2026-11-02T08:00:00+08:00", 1793577600 },
		{ "2026-11-02T00:00:00Z", 1793577600 },
		{ "2026-11-02T00:00:00.250Z", 1793577600 },
		{ "2026-11-01T19:00:00-05:00", 1793577600 },
		{ "2026-11-02T08:00:00+0800", 1793577600 },
		{ "2024-02-29T00:00:00Z", 1709164800 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t t = 0;
		if (time_parse_iso(ok[i].in, &t) != 0 || t != ok[i].want)
			fail_msg("\"%s\": got %lld, want %lld", ok[i].in, (long long)t, (long long)ok[i].want);
	}
	static const char *const bad[] = {
		"", "2026-11-02", "2026/11/02 08:00", "2026-13-02 08:00", "2026-02-30 08:00",
		"2025-02-29T00:00:00Z", "2026-11-02 24:00", "2026-11-02T08:00:00+8", "2026-11-02T08:00:00 junk",
		"2026-11-02T08:00:00+25:00", "yesterday",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t;
		if (time_parse_iso(bad[i], &t) != -EINVAL)
			fail_msg("\"%s\" should be refused", bad[i]);
	}
}

static void test_dst_days(void **state)
{
	(void)state;
	/* Europe/Berlin: 2026-03-29 has 23 hours, 2026-10-25 has 25. */
	assert_int_equal(timeutil_set_zone("Europe/Berlin"), 0);
	int64_t t = time_parse_date("2026-03-29");
	assert_int_equal(t, 1774738800); /* 2026-03-28T23:00:00Z */
	assert_int_equal(time_next_day(t) - t, 23 * 3600);
	t = time_parse_date("2026-10-25");
	assert_int_equal(time_next_day(t) - t, 25 * 3600);
	char buf[RFC3339_LEN];
	time_rfc3339(t + 12 * 3600, buf);
	assert_string_equal(buf, "2026-10-25T11:00:00+01:00");
	time_rfc3339(t, buf);
	assert_string_equal(buf, "2026-10-25T00:00:00+02:00");
	assert_int_equal(time_parse_date("2026-02-30"), -1);
	assert_int_equal(time_parse_date("26-02-01"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_names),
		cmocka_unit_test(test_rfc3339_shanghai),
		cmocka_unit_test(test_parse_iso),
		cmocka_unit_test(test_dst_days),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
