/* timeutil.h — local time of the lab: RFC 3339 with the lab's offset, local days, midnights.
 * The lab's timezone is the process's TZ (set once at start with timeutil_set_zone). */
#ifndef LABSHARE_TIMEUTIL_H
#define LABSHARE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define RFC3339_LEN 32  /* "2026-11-02T08:00:00+08:00" + NUL, with room the compiler can prove */
#define DATE_LEN 11     /* "2026-11-02" + NUL */

/* Make zone the process's local time zone (before threads start). 0 or -EINVAL. */
int timeutil_set_zone(const char *zone);
/* True when a TZif file for this IANA name exists (under $TZDIR or /usr/share/zoneinfo). */
int timeutil_zone_exists(const char *zone);

/* "2026-11-02T08:00:00+08:00" in local time. */
void time_rfc3339(int64_t t, char out[RFC3339_LEN]);
/* "2026-11-02": the local day t falls in. */
void time_date(int64_t t, char out[DATE_LEN]);
/* Local midnight starting the day t falls in, and the next one (DST-aware: a day may be
 * 23 or 25 hours long). */
int64_t time_day_start(int64_t t);
int64_t time_next_day(int64_t t);
/* Midnight starting the local day "YYYY-MM-DD"; -1 when the text is not a date. */
int64_t time_parse_date(const char *s);

/* A local wall time (month 1..12, second 0..59) in seconds since the epoch, where the answer
 * is sure without mktime: fields in range, a real date, and the zone's offset one value over
 * the days around it (no gap, no overlap), so it is what mktime with tm_isdst -1 gives. 0 and
 * *out, or -EAGAIN: ask mktime (a DST day, a field out of range, 02-30). */
int time_local_quick(int y, int mo, int d, int h, int mi, int sec, int64_t *out);
/* ISO 8601 / RFC 3339: "2026-11-02 08:00:00", "2026-11-02T08:00:00+08:00", "…Z",
 * optional fractional seconds (dropped), "+0800" offsets. Without an offset the time is
 * local. 0 and *out, or -EINVAL. */
int time_parse_iso(const char *s, int64_t *out);

#endif
