/* report.h — the auditors' report (SPEC §4 "Report"): one row per instrument over local days
 * FROM..TO, summed from the sealed daily records, as CSV, JSON or HTML. */
#ifndef LABSHARE_REPORT_H
#define LABSHARE_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chain.h"

struct buffer;
struct config;
struct cJSON;

enum report_format { REPORT_CSV, REPORT_JSON, REPORT_HTML };

struct report_opts {
	int64_t from_day;        /* local midnight starting FROM */
	int64_t to_day;          /* local midnight starting TO (inclusive) */
	const char *instrument;  /* NULL: all */
	enum report_format format;
	bool bom;                /* CSV: a UTF-8 BOM so spreadsheets read Chinese names right */
};

/* One instrument's period figures. */
struct report_row {
	const char *instrument, *name;
	int64_t effective_s, service_s, external_s, internal_s;
	double sharing_rate;
	int64_t sessions, external_sessions, samples, external_users;
	int64_t unattributed_s, overclaimed_s, offline_s;
	int64_t manual_sessions, auto_closed_sessions;
	double rated_h, utilisation;
	int64_t days_sealed;
	struct cJSON *days;      /* the daily records, as sealed */
};

/* The chain's state as the report shows it. */
struct report_chain {
	bool buffer;             /* false: no buffer yet (nothing sealed on this machine) */
	int verdict;             /* chain_verify's: 0 intact, 1 broken (v says where), < 0 -errno */
	struct chain_verify v;
};

/* b may be NULL (no buffer yet: zeros). Returns 0 or a negative errno. The report's figures
 * are read through period_sums (contract/periods.h); the writers are functions of the rows,
 * the events and the chain's state. */
int report_write(struct buffer *b, const struct config *cfg, const struct report_opts *o, FILE *out);

/* For tests and the HTML writer: the rows (caller frees with report_rows_free). */
int report_rows(struct buffer *b, const struct config *cfg, const struct report_opts *o,
		struct report_row **rows, size_t *n);
void report_rows_free(struct report_row *rows, size_t n);
/* 365 or 366: the length of the local year of day (yearly figures weigh each day 1/that). */
int report_days_in_year(int64_t day);
/* Re-hashes the chain (b may be NULL). */
void report_chain_read(struct buffer *b, struct report_chain *c);

#endif
