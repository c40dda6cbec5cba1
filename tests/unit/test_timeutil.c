/* test_timeutil.c — local time of the lab: RFC 3339 offsets, ISO parsing, midnights across DST,
 * local wall times as mktime gives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* mktime's answer for a local wall time, the reference time_parse_iso must give. */
static int64_t by_mktime(const struct tm *wall)
{
	struct tm tm = *wall;
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm);
}

static void check_wall(const struct tm *w)
{
	char text[80];
	snprintf(text, sizeof(text), "%04d-%02d-%02d %02d:%02d:%02d", w->tm_year + 1900, w->tm_mon + 1,
		 w->tm_mday, w->tm_hour, w->tm_min, w->tm_sec);
	int64_t want = by_mktime(w), got = 0, quick = 0;
	if (time_parse_iso(text, &got) != 0 || got != want)
		fail_msg("\"%s\": got %lld, mktime says %lld", text, (long long)got, (long long)want);
	int r = time_local_quick(w->tm_year + 1900, w->tm_mon + 1, w->tm_mday, w->tm_hour, w->tm_min,
				 w->tm_sec, &quick);
	if (r != -EAGAIN && (r != 0 || quick != want))
		fail_msg("\"%s\": quick %d %lld, mktime says %lld", text, r, (long long)quick, (long long)want);
}

/* Local times without an offset are what mktime says, in zones with summer time (northern,
 * southern, 30 minutes, at midnight), a skipped day (Apia, 2011-12-30) and none: every
 * 211 minutes from 2010 to 2030, every minute of the six hours around each offset change
 * (the gap and the overlap included), alternating between far-apart years (the cache). */
static void test_local_matches_mktime(void **state)
{
	(void)state;
	static const char *const zones[] = {
		"Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
		"America/Santiago", "Pacific/Apia", "Asia/Tehran", "America/Havana", "UTC",
	};
	const int64_t from = 1262304000, to = 1893456000; /* 2010 to 2030, UTC */
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		assert_int_equal(timeutil_set_zone(zones[z]), 0);
		long prev_off = 0;
		for (int64_t t = from; t < to; t += 211 * 60) {
			time_t tt = (time_t)t;
			struct tm w;
			localtime_r(&tt, &w);
			check_wall(&w);
			time_t far = (time_t)(to - (t - from));
			struct tm fw;
			localtime_r(&far, &fw);
			check_wall(&fw);
			if (t > from && w.tm_gmtoff != prev_off) {
				for (int64_t u = t - 4 * 3600; u < t + 2 * 3600; u += 60) {
					time_t ut = (time_t)u;
					struct tm uw;
					localtime_r(&ut, &uw);
					check_wall(&uw);
					/* And the wall times the change skips or repeats: an hour on. */
					uw.tm_hour = (uw.tm_hour + 1) % 24;
					check_wall(&uw);
				}
			}
			prev_off = w.tm_gmtoff;
		}
	}
	assert_int_equal(timeutil_set_zone("Asia/Shanghai"), 0);
	int64_t t;
	assert_int_equal(time_local_quick(2026, 2, 29, 8, 0, 0, &t), -EAGAIN);
	assert_int_equal(time_local_quick(2026, 11, 2, 8, 0, 60, &t), -EAGAIN);
	assert_int_equal(time_local_quick(2026, 11, 2, 8, 0, 0, &t), 0);
	assert_int_equal(t, 1793577600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_names),
		cmocka_unit_test(test_rfc3339_shanghai),
		cmocka_unit_test(test_parse_iso),
		cmocka_unit_test(test_dst_days),
		cmocka_unit_test(test_local_matches_mktime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
