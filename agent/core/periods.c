/* periods.c — a period's figures, the one rule the report and NRII share (SPEC §4): the sum
 * of its days, the latest revision of each, with external users distinct over the whole period
 * and session kinds counted from the sessions kept. The tables are metrics' own. */
#include "periods.h"
#include "buffer.h"
#include "log.h"
#include "metrics.h"
#include "metrics_priv.h"
#include "schema.h"
#include "stmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

enum { PS_DAYS, PS_USERS, PS_KINDS, PS__COUNT };

static const char *const ps_sql[PS__COUNT] = {
	/* mx_daily points at the latest revision of each day sealed. */
	[PS_DAYS] = "SELECT seq FROM mx_daily"
		    " WHERE instrument = ?1 AND day >= ?2 AND day < ?3 ORDER BY day",
	[PS_USERS] = "SELECT COUNT(*) FROM (SELECT DISTINCT"
		     " CASE WHEN typeof(user) = 'text' THEN user ELSE '' END, COALESCE(org, '')"
		     " FROM mx_sessions WHERE instrument = ?1 AND external = 1 AND start >= ?2 AND start < ?3)",
	/* TOTAL, not SUM: SUM stops with an error when integers overflow. */
	[PS_KINDS] = "SELECT TOTAL(manual != 0), TOTAL(closed_auto != 0) FROM mx_sessions"
		     " WHERE instrument = ?1 AND start >= ?2 AND start < ?3",
};

/* A figure as sealed (a JSON number), bounded before any conversion. */
static int64_t figure(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return sat_from_double(cJSON_IsNumber(v) ? v->valuedouble : 0);
}

static void add_day(struct period_sums *p, const cJSON *d)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
		{ "effective_s", offsetof(struct period_sums, effective_s) },
		{ "service_s", offsetof(struct period_sums, service_s) },
		{ "external_s", offsetof(struct period_sums, external_s) },
		{ "internal_s", offsetof(struct period_sums, internal_s) },
		{ "sessions", offsetof(struct period_sums, sessions) },
		{ "external_sessions", offsetof(struct period_sums, external_sessions) },
		{ "samples", offsetof(struct period_sums, samples) },
		{ "unattributed_s", offsetof(struct period_sums, unattributed_s) },
		{ "overclaimed_s", offsetof(struct period_sums, overclaimed_s) },
		{ "offline_s", offsetof(struct period_sums, offline_s) },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int64_t *sum = (int64_t *)((char *)p + fields[i].off);
		*sum = sat_add(*sum, figure(d, fields[i].key));
	}
	p->days_sealed = sat_add(p->days_sealed, 1);
}

/* The days' sealed lines come from the store (its records table is its own), in the same
 * snapshot as the seqs that point at them. */
static int sum_days(struct buffer *b, struct store_stmt *s, struct period_sums *out,
		    int (*day)(const char *line, size_t len, void *arg), void *arg)
{
	int rc, r = 0;
	while (r == 0 && (rc = stmt_step(s)) == STMT_ROW) {
		struct stored_record rec = { 0 };
		int g = buffer_get_record(b, stmt_int64(s, 0), &rec);
		if (g == -ENOENT)
			continue; /* pruned with its day's row kept: nothing to add */
		if (g < 0) {
			r = g;
			break;
		}
		cJSON *d = cJSON_ParseWithLength(rec.line, rec.line_len);
		if (d) { /* sealed by this agent, so always; verify says so if not */
			add_day(out, d);
			cJSON_Delete(d);
			if (day)
				r = day(rec.line, rec.line_len, arg);
		}
		buffer_record_clear(&rec);
	}
	if (r == 0 && rc != STMT_DONE)
		r = stmt_error(s, rc, "summing a period's days");
	return r;
}

/* The three statements over one snapshot: the caller's transaction (its own pending days
 * too), else a reader's (committed days only, sealing goes on meanwhile), so a day sealed
 * meanwhile is counted in all three or none. */
static int run_sums(struct buffer *b, const char *instrument, int64_t from_day, int64_t end_day,
		    struct period_sums *out, int (*day)(const char *line, size_t len, void *arg), void *arg)
{
	int r = buffer_read_begin(b);
	if (r < 0)
		return r;
	for (int i = 0; i < PS__COUNT && r == 0; i++) {
		struct store_stmt *s;
		if ((r = stmt_read(b, ps_sql[i], &s)) < 0)
			break;
		stmt_bind_text(s, 1, instrument);
		stmt_bind_int64(s, 2, from_day);
		stmt_bind_int64(s, 3, end_day);
		if (i == PS_DAYS) {
			r = sum_days(b, s, out, day, arg);
		} else {
			int rc = stmt_step(s);
			if (rc == STMT_ROW && i == PS_USERS) {
				out->external_users = sat_add(0, stmt_int64(s, 0));
			} else if (rc == STMT_ROW) {
				double manual = stmt_double(s, 0), autoc = stmt_double(s, 1);
				out->manual_sessions = sat_from_double(manual);
				out->auto_closed_sessions = sat_from_double(autoc);
			} else {
				r = stmt_error(s, rc, "counting a period's sessions");
			}
		}
		stmt_done(s);
	}
	buffer_read_end(b);
	return r;
}

int period_sums(struct buffer *b, const char *instrument, int64_t from_day, int64_t end_day,
		struct period_sums *out, int (*day)(const char *line, size_t len, void *arg), void *arg)
{
	memset(out, 0, sizeof(*out));
	int r = buffer_schema(b, &metrics_schema);
	if (r == -ENOENT)
		return 0; /* a read-only file where metrics never ran: nothing in any period */
	if (r < 0)
		return r;
	return run_sums(b, instrument, from_day, end_day, out, day, arg);
}
