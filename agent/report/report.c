/* report.c — period figures are sums of the sealed daily records (latest revision of each
 * day), except external users, counted distinct over the whole period. */
#include "report.h"
#include "periods.h"
#include "buffer.h"
#include "chain.h"
#include "config.h"
#include "log.h"
#include "report_html.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const sql_days =
	"SELECT r.line FROM mx_daily d JOIN records r ON r.seq = d.seq"
	" WHERE d.instrument = ?1 AND d.day >= ?2 AND d.day < ?3 ORDER BY d.day";
static const char *const sql_users =
	"SELECT COUNT(*) FROM (SELECT DISTINCT COALESCE(user, ''), COALESCE(org, '') FROM mx_sessions"
	" WHERE instrument = ?1 AND external = 1 AND start >= ?2 AND start < ?3)";
static const char *const sql_kinds =
	"SELECT COALESCE(SUM(manual), 0), COALESCE(SUM(closed_auto), 0) FROM mx_sessions"
	" WHERE instrument = ?1 AND start >= ?2 AND start < ?3";

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int days_in_year(int64_t day)
{
	time_t t = (time_t)day;
	struct tm tm;
	localtime_r(&t, &tm);
	int y = tm.tm_year + 1900;
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 366 : 365;
}

static int fill_row(sqlite3 *db, const struct instrument_cfg *ic, const struct report_opts *o,
		    struct report_row *row)
{
	int64_t end = time_next_day(o->to_day);
	row->instrument = ic->id;
	row->name = ic->name ? ic->name : ic->id;
	row->days = cJSON_CreateArray();
	/* Rated hours are per year: each day weighs 1/365 (1/366 in a leap year). */
	for (int64_t d = o->from_day; d < end; d = time_next_day(d))
		row->rated_h += (double)ic->rated_hours / days_in_year(d);
	if (!db)
		return 0;

	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql_days, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, o->from_day);
	sqlite3_bind_int64(s, 3, end);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		cJSON *d = cJSON_Parse((const char *)sqlite3_column_text(s, 0));
		if (!d)
			continue;
		row->effective_s += (int64_t)jnum(d, "effective_s");
		row->service_s += (int64_t)jnum(d, "service_s");
		row->external_s += (int64_t)jnum(d, "external_s");
		row->internal_s += (int64_t)jnum(d, "internal_s");
		row->sessions += (int64_t)jnum(d, "sessions");
		row->external_sessions += (int64_t)jnum(d, "external_sessions");
		row->samples += (int64_t)jnum(d, "samples");
		row->unattributed_s += (int64_t)jnum(d, "unattributed_s");
		row->overclaimed_s += (int64_t)jnum(d, "overclaimed_s");
		row->offline_s += (int64_t)jnum(d, "offline_s");
		row->days_sealed++;
		cJSON_AddItemToArray(row->days, d);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return -EIO;

	if (sqlite3_prepare_v2(db, sql_users, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, o->from_day);
	sqlite3_bind_int64(s, 3, end);
	if (sqlite3_step(s) == SQLITE_ROW)
		row->external_users = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);

	if (sqlite3_prepare_v2(db, sql_kinds, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, ic->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, o->from_day);
	sqlite3_bind_int64(s, 3, end);
	if (sqlite3_step(s) == SQLITE_ROW) {
		row->manual_sessions = sqlite3_column_int64(s, 0);
		row->auto_closed_sessions = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);

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
	if (b)
		buffer_lock(b);
	for (size_t i = 0; i < cfg->n_instruments && r == 0; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (o->instrument && strcmp(o->instrument, ic->id) != 0)
			continue;
		r = fill_row(b ? buffer_db(b) : NULL, ic, o, &(*rows)[(*n)++]);
	}
	if (b)
		buffer_unlock(b);
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

static cJSON *chain_state(struct buffer *b)
{
	cJSON *c = cJSON_CreateObject();
	struct chain_verify v;
	int r = b ? chain_verify(b, &v) : 0;
	if (!b)
		memset(&v, 0, sizeof(v));
	cJSON_AddNumberToObject(c, "last_seq", (double)v.last_seq);
	cJSON_AddStringToObject(c, "head_hash", b && v.head_hash[0] ? v.head_hash :
				"0000000000000000000000000000000000000000000000000000000000000000");
	cJSON_AddBoolToObject(c, "intact", r == 0);
	if (r == 1) {
		cJSON_AddNumberToObject(c, "first_bad_seq", (double)v.bad_seq);
		cJSON_AddStringToObject(c, "problem", v.why);
	}
	return c;
}

static cJSON *json_report(struct buffer *b, const struct config *cfg, const struct report_opts *o,
			  struct report_row *rows, size_t n)
{
	char from[DATE_LEN], to[DATE_LEN];
	time_date(o->from_day, from);
	time_date(o->to_day, to);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "from", from);
	cJSON_AddStringToObject(root, "to", to);
	cJSON_AddStringToObject(root, "agent_id", cfg->agent.id);
	cJSON_AddStringToObject(root, "lab_code", cfg->agent.lab_code);
	cJSON_AddItemToObject(root, "chain", chain_state(b));
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
	switch (o->format) {
	case REPORT_CSV:
		write_csv(out, o, rows, n);
		break;
	case REPORT_JSON: {
		cJSON *doc = json_report(b, cfg, o, rows, n);
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
		r = report_html_write(b, cfg, o, rows, n, out);
		break;
	}
	report_rows_free(rows, n);
	if (r == 0 && (fflush(out) != 0 || ferror(out)))
		r = -EIO;
	return r;
}
