/* report.h — the auditors' report (SPEC §4 "Report"): one row per instrument over local days
 * FROM..TO, summed from the sealed daily records, as CSV, JSON or HTML. */
#ifndef LABSHARE_REPORT_H
#define LABSHARE_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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

/* b may be NULL (no buffer yet: zeros). Returns 0 or a negative errno. */
int report_write(struct buffer *b, const struct config *cfg, const struct report_opts *o, FILE *out);

/* For tests and the HTML writer: the rows (caller frees with report_rows_free). */
int report_rows(struct buffer *b, const struct config *cfg, const struct report_opts *o,
		struct report_row **rows, size_t *n);
void report_rows_free(struct report_row *rows, size_t n);

#endif
