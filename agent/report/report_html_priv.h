/* report_html_priv.h — what the HTML report's page (report_html.c) and its charts and
 * reference figures (report_charts.c) share; nothing else includes it. */
#ifndef LABSHARE_REPORT_HTML_PRIV_H
#define LABSHARE_REPORT_HTML_PRIV_H

#include "timeutil.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct instrument_cfg;
struct report_row;

struct period {
	char from[DATE_LEN], to[DATE_LEN];
	int64_t end;                /* midnight after the last day */
	size_t days;
	double year_fraction;       /* Σ 1/365 (1/366) over the days: yearly figures × this */
};

static inline double hours(int64_t s)
{
	return (double)s / 3600.0;
}

/* A table heading in Chinese with its English below. */
void html_th2(FILE *out, const char *zh, const char *en, bool num);

/* Section 2: every instrument against the reference figures, and where they come from. */
int report_overview(FILE *out, const struct report_row *rows, size_t n, const struct period *p);
/* One instrument against each reference figure and its rated hours. */
void report_compare(FILE *out, const struct report_row *r, const struct instrument_cfg *ic,
		    const struct period *p);
/* One instrument's days: hours and sharing rate, from its sealed daily records. */
int report_daily_charts(FILE *out, const struct report_row *r, const struct period *p, int64_t from);

#endif
