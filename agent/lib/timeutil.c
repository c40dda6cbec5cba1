/* timeutil.c — conversions in the lab's local time, kept in one place. */
#include "timeutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int timeutil_zone_exists(const char *zone)
{
	if (!zone || !*zone || zone[0] == '/' || strstr(zone, ".."))
		return 0;
	const char *dir = getenv("TZDIR");
	char path[512];
	if (snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", zone) >=
	    (int)sizeof(path))
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	char magic[4];
	size_t n = fread(magic, 1, 4, f);
	fclose(f);
	return n == 4 && memcmp(magic, "TZif", 4) == 0;
}

/* Bumped when the zone changes, so cached offsets are dropped. */
static _Atomic unsigned long zone_generation = 1;

int timeutil_set_zone(const char *zone)
{
	if (!timeutil_zone_exists(zone))
		return -EINVAL;
	if (setenv("TZ", zone, 1) < 0)
		return -errno;
	tzset();
	zone_generation++;
	return 0;
}

static long localtime_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	return tm.tm_gmtoff;
}

/* The zone's offset over one UTC day, cached: glibc re-parses the zone's rule string on
 * every conversion past its last listed transition (which is every conversion today).
 * *uniform: the day's first and last second share one offset (no transition that day;
 * zones change at most once a day), which is then *off. */
static void day_offset(int64_t day, long *off, bool *uniform)
{
	enum { WAYS = 8 };
	static _Thread_local struct {
		int64_t day;
		long off;
		bool uniform;
		bool valid;
	} cache[WAYS];
	static _Thread_local unsigned long zone_gen_seen;
	if (zone_gen_seen != zone_generation) {
		memset(cache, 0, sizeof(cache));
		zone_gen_seen = zone_generation;
	}
	unsigned slot = (unsigned)((uint64_t)day % WAYS);
	if (!cache[slot].valid || cache[slot].day != day) {
		long first = localtime_offset(day * 86400), last = localtime_offset(day * 86400 + 86399);
		cache[slot].day = day;
		cache[slot].off = first;
		cache[slot].uniform = first == last;
		cache[slot].valid = true;
	}
	*off = cache[slot].off;
	*uniform = cache[slot].uniform;
}

static int64_t utc_day(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* The zone's offset at t. */
static long offset_at(int64_t t)
{
	long off;
	bool uniform;
	day_offset(utc_day(t), &off, &uniform);
	return uniform ? off : localtime_offset(t); /* a transition day: ask every time */
}

/* Civil date of a day number counted from 1970-01-01 (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* n as exactly `width` decimal digits (zero-padded); returns the end. */
static char *put_digits(char *p, unsigned n, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + n % 10);
		n /= 10;
	}
	return p + width;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

void time_rfc3339(int64_t t, char out[RFC3339_LEN])
{
	long off = offset_at(t);
	int64_t local = t + off;
	int64_t days = floor_div(local, 86400), secs = local - days * 86400;
	int y, mo, d;
	civil_from_days(days, &y, &mo, &d);
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	/* Written digit by digit: this runs for every record sealed. */
	char *p = out;
	p = put_digits(p, (unsigned)y % 10000u, 4);
	*p++ = '-';
	p = put_digits(p, (unsigned)mo, 2);
	*p++ = '-';
	p = put_digits(p, (unsigned)d, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned)(secs / 3600), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(secs / 60 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(secs % 60), 2);
	*p++ = sign;
	p = put_digits(p, (unsigned)(off / 3600 % 100), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(off / 60 % 60), 2);
	*p = '\0';
}

void time_date(int64_t t, char out[DATE_LEN])
{
	int64_t days = floor_div(t + offset_at(t), 86400);
	int y, mo, d;
	civil_from_days(days, &y, &mo, &d);
	char *p = put_digits(out, (unsigned)y % 10000u, 4);
	*p++ = '-';
	p = put_digits(p, (unsigned)mo, 2);
	*p++ = '-';
	p = put_digits(p, (unsigned)d, 2);
	*p = '\0';
}

/* The slow, always right way, for days on which the offset changes. */
static int64_t day_start_mktime(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	time_t m = mktime(&tm);
	/* A zone whose clocks jump at midnight has no 00:00; mktime normalises forward. */
	if ((int64_t)m > t)
		m -= 86400;
	return (int64_t)m;
}

int64_t time_day_start(int64_t t)
{
	long off = offset_at(t);
	int64_t local = t + off;
	int64_t m = local - (local - floor_div(local, 86400) * 86400) - off;
	if (offset_at(m) == off && offset_at(m + 86399) == off)
		return m; /* no transition on this day */
	return day_start_mktime(t);
}

int64_t time_next_day(int64_t t)
{
	int64_t start = time_day_start(t), next = start + 86400;
	long off = offset_at(start);
	if (offset_at(next) == off && offset_at(next - 1) == off)
		return next;
	time_t tt = (time_t)start;
	struct tm tm;
	localtime_r(&tt, &tm);
	tm.tm_mday += 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm);
}

int64_t time_parse_date(const char *s)
{
	int y, m, d;
	char tail;
	if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
		return -1;
	if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_isdst = -1 };
	time_t t = mktime(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != m - 1)
		return -1; /* 2026-02-30 normalises to March: not a date */
	return (int64_t)t;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), so a
 * time with an offset never depends on the process's zone. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int time_local_quick(int y, int mo, int d, int h, int mi, int sec, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 59)
		return -EAGAIN;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -EAGAIN;
	/* The wall time read as UTC; the answer is local - offset, within a day of it. When the
	 * offset is one value over the UTC days around it, that value is the only answer (no
	 * gap, no overlap): what mktime would say, without its dozen conversions. */
	int64_t local = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	int64_t day = utc_day(local);
	long o[3];
	bool u[3];
	for (int i = 0; i < 3; i++)
		day_offset(day - 1 + i, &o[i], &u[i]);
	if (!u[0] || !u[1] || !u[2] || o[0] != o[1] || o[1] != o[2])
		return -EAGAIN;
	*out = local - o[1];
	return 0;
}

int time_parse_iso(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec = 0;
	const char *p = s;
	if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
		return -EINVAL;
	if (*p == ':') {
		p++;
		if (digits(&p, 2, &sec))
			return -EINVAL;
		if (*p == '.' || *p == ',') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
		return -EINVAL;
	if (sec == 60)
		sec = 59; /* a leap second is counted as the second before it */
	if (*p == '\0') {
		if (time_local_quick(y, mo, d, h, mi, sec, out) == 0)
			return 0;
		struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
				 .tm_hour = h, .tm_min = mi, .tm_sec = sec, .tm_isdst = -1 };
		time_t t = mktime(&tm);
		if (t == (time_t)-1)
			return -EINVAL;
		*out = (int64_t)t;
		return 0;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (digits(&p, 2, &oh))
			return -EINVAL;
		if (*p == ':')
			p++;
		if (*p && digits(&p, 2, &om))
			return -EINVAL;
		if (oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	return 0;
}
