/* report.c — period figures are sums of the sealed daily records (latest revision of each
 * day), except external users, counted distinct over the whole period. */
#include "report.h"
#include "periods.h"
#include "buffer.h"
#include "chain.h"
#include "config.h"
#include "log.h"
#include "report_events.h"
#include "report_html.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int report_days_in_year(int64_t day)
{
	time_t t = (time_t)day;
	struct tm tm;
	localtime_r(&t, &tm);
	int y = tm.tm_year + 1900;
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 366 : 365;
}

/* Each counted day's record, as sealed, for the JSON report's "days" and the HTML charts. */
static int keep_day(const char *line, size_t len, void *arg)
{
	cJSON *d = cJSON_ParseWithLength(line, len);
	if (!d)
		return 0;
	return cJSON_AddItemToArray(arg, d) ? 0 : -ENOMEM;
}

static int fill_row(struct buffer *b, const struct instrument_cfg *ic, const struct report_opts *o,
		    struct report_row *row)
{
	int64_t end = time_next_day(o->to_day);
	row->instrument = ic->id;
	row->name = ic->name ? ic->name : ic->id;
	if (!(row->days = cJSON_CreateArray()))
		return -ENOMEM;
	/* Rated hours are per year: each day weighs 1/365 (1/366 in a leap year). */
	for (int64_t d = o->from_day; d < end; d = time_next_day(d))
		row->rated_h += (double)ic->rated_hours / report_days_in_year(d);
	if (!b)
		return 0;

	/* The one rule for a period (SPEC §4), shared with what NRII is told. */
	struct period_sums p;
	int r = period_sums(b, ic->id, o->from_day, end, &p, keep_day, row->days);
	if (r < 0)
		return r;
	row->effective_s = p.effective_s;
	row->service_s = p.service_s;
	row->external_s = p.external_s;
	row->internal_s = p.internal_s;
	row->sessions = p.sessions;
	row->external_sessions = p.external_sessions;
	row->samples = p.samples;
	row->external_users = p.external_users;
	row->unattributed_s = p.unattributed_s;
	row->overclaimed_s = p.overclaimed_s;
	row->offline_s = p.offline_s;
	row->manual_sessions = p.manual_sessions;
	row->auto_closed_sessions = p.auto_closed_sessions;
	row->days_sealed = p.days_sealed;
	row->sharing_rate = row->effective_s > 0 ? round4((double)row->external_s / (double)row->effective_s) : 0;
	row->utilisation = row->rated_h > 0 ? round4((double)row->effective_s / 3600.0 / row->rated_h) : 0;
	return 0;
}

int report_rows(struct buffer *b, const struct config *cfg, const struct report_opts *o,
		struct report_row **rows, size_t *n)
{
	*rows = calloc(cfg->n_instruments ? cfg->n_instruments : 1, sizeof(**rows));
	*n = 0;
	if (!*rows)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < cfg->n_instruments && r == 0; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (o->instrument && strcmp(o->instrument, ic->id) != 0)
			continue;
		r = fill_row(b, ic, o, &(*rows)[(*n)++]);
	}
	return r;
}

void report_rows_free(struct report_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++)
		cJSON_Delete(rows[i].days);
	free(rows);
}

/* RFC 4180: quote when needed, double the quotes. */
static void csv_field(FILE *out, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static double hours(int64_t s)
{
	return (double)s / 3600.0;
}

static void write_csv(FILE *out, const struct report_opts *o, const struct report_row *rows, size_t n)
{
	char from[DATE_LEN], to[DATE_LEN];
	time_date(o->from_day, from);
	time_date(o->to_day, to);
	if (o->bom)
		fputs("\xEF\xBB\xBF", out);
	fputs("instrument,name,from,to,effective_h,service_h,external_h,internal_h,sharing_rate,sessions,"
	      "external_sessions,samples,external_users,unattributed_h,overclaimed_h,offline_h,"
	      "manual_sessions,auto_closed_sessions,rated_h,utilisation\r\n", out);
	for (size_t i = 0; i < n; i++) {
		const struct report_row *r = &rows[i];
		csv_field(out, r->instrument);
		fputc(',', out);
		csv_field(out, r->name);
		fprintf(out, ",%s,%s,%.2f,%.2f,%.2f,%.2f,%.4f,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
			",%.2f,%.2f,%.2f,%" PRId64 ",%" PRId64 ",%.2f,%.4f\r\n",
			from, to, hours(r->effective_s), hours(r->service_s), hours(r->external_s),
			hours(r->internal_s), r->sharing_rate, r->sessions, r->external_sessions, r->samples,
			r->external_users, hours(r->unattributed_s), hours(r->overclaimed_s),
			hours(r->offline_s), r->manual_sessions, r->auto_closed_sessions, r->rated_h,
			r->utilisation);
	}
}

void report_chain_read(struct buffer *b, struct report_chain *c)
{
	memset(c, 0, sizeof(*c));
	c->buffer = b != NULL;
	c->verdict = b ? chain_verify(b, &c->v) : 0;
}

static cJSON *chain_json(const struct report_chain *c)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "last_seq", (double)c->v.last_seq);
	cJSON_AddStringToObject(j, "head_hash", c->buffer && c->v.head_hash[0] ? c->v.head_hash :
				"0000000000000000000000000000000000000000000000000000000000000000");
	cJSON_AddBoolToObject(j, "intact", c->verdict == 0);
	if (c->verdict == 1) {
		cJSON_AddNumberToObject(j, "first_bad_seq", (double)c->v.bad_seq);
		cJSON_AddStringToObject(j, "problem", c->v.why);
	}
	return j;
}

static cJSON *json_report(const struct config *cfg, const struct report_opts *o, struct report_row *rows,
			  size_t n, const struct report_chain *chain)
{
	char from[DATE_LEN], to[DATE_LEN];
	time_date(o->from_day, from);
	time_date(o->to_day, to);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "from", from);
	cJSON_AddStringToObject(root, "to", to);
	cJSON_AddStringToObject(root, "agent_id", cfg->agent.id);
	cJSON_AddStringToObject(root, "lab_code", cfg->agent.lab_code);
	cJSON_AddItemToObject(root, "chain", chain_json(chain));
	cJSON *arr = cJSON_AddArrayToObject(root, "instruments");
	for (size_t i = 0; i < n; i++) {
		struct report_row *r = &rows[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "instrument", r->instrument);
		cJSON_AddStringToObject(x, "name", r->name);
		cJSON_AddStringToObject(x, "from", from);
		cJSON_AddStringToObject(x, "to", to);
		cJSON_AddNumberToObject(x, "effective_s", (double)r->effective_s);
		cJSON_AddNumberToObject(x, "service_s", (double)r->service_s);
		cJSON_AddNumberToObject(x, "external_s", (double)r->external_s);
		cJSON_AddNumberToObject(x, "internal_s", (double)r->internal_s);
		cJSON_AddNumberToObject(x, "sharing_rate", r->sharing_rate);
		cJSON_AddNumberToObject(x, "sessions", (double)r->sessions);
		cJSON_AddNumberToObject(x, "external_sessions", (double)r->external_sessions);
		cJSON_AddNumberToObject(x, "samples", (double)r->samples);
		cJSON_AddNumberToObject(x, "external_users", (double)r->external_users);
		cJSON_AddNumberToObject(x, "unattributed_s", (double)r->unattributed_s);
		cJSON_AddNumberToObject(x, "overclaimed_s", (double)r->overclaimed_s);
		cJSON_AddNumberToObject(x, "offline_s", (double)r->offline_s);
		cJSON_AddNumberToObject(x, "manual_sessions", (double)r->manual_sessions);
		cJSON_AddNumberToObject(x, "auto_closed_sessions", (double)r->auto_closed_sessions);
		cJSON_AddNumberToObject(x, "rated_h", round(r->rated_h * 100) / 100);
		cJSON_AddNumberToObject(x, "utilisation", r->utilisation);
		cJSON_AddItemToObject(x, "days", r->days);
		r->days = NULL; /* now owned by the document */
		cJSON_AddItemToArray(arr, x);
	}
	return root;
}

int report_write(struct buffer *b, const struct config *cfg, const struct report_opts *o, FILE *out)
{
	struct report_row *rows = NULL;
	size_t n = 0;
	int r = report_rows(b, cfg, o, &rows, &n);
	if (r < 0) {
		report_rows_free(rows, n);
		return r;
	}
	/* What the writers are given; they read nothing themselves. */
	struct report_chain chain;
	struct report_events ev = { 0 };
	if (o->format != REPORT_CSV)
		report_chain_read(b, &chain);
	if (o->format == REPORT_HTML && (r = report_events_load(b, o, rows, n, &ev)) < 0) {
		report_events_free(&ev);
		report_rows_free(rows, n);
		return r;
	}
	switch (o->format) {
	case REPORT_CSV:
		write_csv(out, o, rows, n);
		break;
	case REPORT_JSON: {
		cJSON *doc = json_report(cfg, o, rows, n, &chain);
		char *text = cJSON_Print(doc);
		if (text) {
			fputs(text, out);
			fputc('\n', out);
		}
		cJSON_free(text);
		cJSON_Delete(doc);
		if (!text)
			r = -ENOMEM;
		break;
	}
	case REPORT_HTML:
		r = report_html_write(cfg, o, rows, n, &ev, &chain, out);
		break;
	}
	report_events_free(&ev);
	report_rows_free(rows, n);
	if (r == 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}
