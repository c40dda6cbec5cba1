/* metrics_days.c — the figures of a local day (SPEC §4: unions of sessions, run time of its
 * slots) and the daily records: sealed when a day closes, revised when late data changes it. */
#include "metrics_priv.h"
#include "buffer.h"
#include "config.h"
#include "periods.h"
#include "records.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

struct span {
	int64_t a, b;
};

static int cmp_span(const void *x, const void *y)
{
	const struct span *p = x, *q = y;
	return p->a < q->a ? -1 : p->a > q->a ? 1 : (p->b < q->b ? -1 : p->b > q->b);
}

/* Length of the union of spans (sorted here). */
static int64_t union_len(struct span *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_span);
	int64_t total = 0, cur_a = 0, cur_b = 0;
	bool open = false;
	for (size_t i = 0; i < n; i++) {
		if (!open || v[i].a > cur_b) {
			if (open)
				total += cur_b - cur_a;
			cur_a = v[i].a;
			cur_b = v[i].b;
			open = true;
		} else if (v[i].b > cur_b) {
			cur_b = v[i].b;
		}
	}
	if (open)
		total += cur_b - cur_a;
	return total;
}

struct pair {
	char *user, *org;
};

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *p = x, *q = y;
	int c = strcmp(p->user, q->user);
	return c ? c : strcmp(p->org, q->org);
}

int metrics_day(struct metrics *m, const char *inst, int64_t day, struct daily_figures *f)
{
	const struct instrument_cfg *ic = config_instrument(m->cfg, inst);
	if (!ic)
		return -EINVAL;
	int64_t end = time_next_day(day);
	memset(f, 0, sizeof(*f));

	struct store_stmt *s = mx(m, MX_DAY_SUMS);
	stmt_bind_text(s, 1, inst);
	stmt_bind_int64(s, 2, day);
	stmt_bind_int64(s, 3, end);
	int64_t run_sealed = 0, smp_sealed = 0, offline = 0;
	double offline_s = 0;
	int rc = stmt_step(s);
	if (rc == STMT_ROW) {
		run_sealed = sat_from_double(stmt_double(s, 0));
		smp_sealed = sat_from_double(stmt_double(s, 1));
		offline_s = stmt_double(s, 2);
	}
	stmt_reset(s);
	if (rc != STMT_ROW)
		return stmt_error(s, rc, "summing a day");
	/* Offline time of the open slot still held in memory (metrics_slots.c). */
	struct inst_state *st;
	int sr = state_get(m, ic, &st);
	if (sr < 0)
		return sr;
	if (st->acc && st->acc_slot >= day && st->acc_slot < end)
		offline_s += st->acc_off;
	offline = sat_from_double(offline_s);

	size_t cap = 64, n = 0, ne = 0, np = 0;
	struct span *all = malloc(cap * sizeof(*all)), *ext = malloc(cap * sizeof(*ext));
	struct pair *pairs = malloc(cap * sizeof(*pairs));
	int64_t session_samples = 0;
	int ret = 0;
	if (!all || !ext || !pairs) {
		ret = -ENOMEM;
		goto out;
	}
	/* Sessions that reach into the day start at most the longest session before it. */
	struct inst_mem *im = mem_of(m, ic);
	if (!im) {
		ret = -ENOMEM;
		goto out;
	}
	if (!im->longest_known) {
		s = mx(m, MX_LONGEST_SESSION);
		stmt_bind_text(s, 1, inst);
		rc = stmt_step(s);
		im->longest = rc == STMT_ROW && !stmt_is_null(s, 0) ? stmt_int64(s, 0) : 0;
		stmt_reset(s);
		if (rc != STMT_ROW) {
			ret = stmt_error(s, rc, "reading the longest session");
			goto out;
		}
		im->longest_known = true;
	}
	s = mx(m, MX_DAY_SESSIONS);
	stmt_bind_text(s, 1, inst);
	stmt_bind_int64(s, 2, day);
	stmt_bind_int64(s, 3, end);
	stmt_bind_int64(s, 4, day - (im->longest > 0 ? im->longest : 0));
	while ((rc = stmt_step(s)) == STMT_ROW) {
		int64_t a = stmt_int64(s, 0), b = stmt_int64(s, 1);
		bool external = stmt_int(s, 2);
		if (n == cap) {
			cap *= 2;
			struct span *na = realloc(all, cap * sizeof(*all));
			struct span *ne2 = na ? realloc(ext, cap * sizeof(*ext)) : NULL;
			struct pair *np2 = ne2 ? realloc(pairs, cap * sizeof(*pairs)) : NULL;
			if (na)
				all = na;
			if (ne2)
				ext = ne2;
			if (np2)
				pairs = np2;
			if (!na || !ne2 || !np2) {
				ret = -ENOMEM;
				break;
			}
		}
		struct span clip = { a > day ? a : day, b < end ? b : end };
		all[n++] = clip;
		if (external)
			ext[ne++] = clip;
		if (a >= day) { /* counts and users go to the day a session starts */
			f->sessions = sat_add(f->sessions, 1);
			if (!stmt_is_null(s, 5))
				session_samples = sat_add(session_samples, stmt_int64(s, 5));
			if (external) {
				f->external_sessions = sat_add(f->external_sessions, 1);
				const char *u = stmt_text(s, 3);
				const char *o = stmt_text(s, 4);
				pairs[np].user = strdup(u ? u : "");
				pairs[np].org = strdup(o ? o : "");
				np++;
			}
		}
	}
	stmt_reset(s);
	if (ret == 0 && rc != STMT_DONE)
		ret = stmt_error(s, rc, "reading a day's sessions");
	if (ret < 0)
		goto out;

	f->service_s = union_len(all, n);
	f->external_s = union_len(ext, ne);
	f->internal_s = f->service_s - f->external_s;
	qsort(pairs, np, sizeof(*pairs), cmp_pair);
	for (size_t i = 0; i < np; i++)
		if (i == 0 || cmp_pair(&pairs[i - 1], &pairs[i]) != 0)
			f->external_users = sat_add(f->external_users, 1);
	bool run_source = ic->modbus.present && (ic->modbus.run_counter.present || ic->modbus.in_use.present ||
						 ic->modbus.hyst.present);
	f->effective_s = run_source ? run_sealed : f->service_s;
	f->samples = ic->modbus.present && ic->modbus.samples_counter.present ? smp_sealed : session_samples;
	f->unattributed_s = f->effective_s > f->service_s ? f->effective_s - f->service_s : 0;
	f->overclaimed_s = run_source && f->service_s > f->effective_s ? f->service_s - f->effective_s : 0;
	f->offline_s = offline;
	f->sharing_rate = f->effective_s > 0 ? round4((double)f->external_s / (double)f->effective_s) : 0;
out:
	for (size_t i = 0; i < np; i++) {
		free(pairs[i].user);
		free(pairs[i].org);
	}
	free(pairs);
	free(all);
	free(ext);
	return ret;
}

/* ---- sealing ----------------------------------------------------------------------- */

/* The single value of a query on one instrument; false when there is none (NULL). No value
 * stands for "none": any int64_t is a time, before 1970 too. */
static bool query_i64(struct metrics *m, enum mx_stmt id, const char *inst, int64_t *v)
{
	struct store_stmt *s = mx(m, id);
	stmt_bind_text(s, 1, inst);
	bool have = false;
	if (stmt_step(s) == STMT_ROW && !stmt_is_null(s, 0)) {
		*v = stmt_int64(s, 0);
		have = true;
	}
	stmt_reset(s);
	return have;
}

static bool same_figures(const char *line, const struct daily_figures *f)
{
	cJSON *o = cJSON_Parse(line);
	if (!o)
		return false;
	bool same = jnum(o, "effective_s") == (double)f->effective_s &&
		    jnum(o, "service_s") == (double)f->service_s &&
		    jnum(o, "external_s") == (double)f->external_s &&
		    jnum(o, "internal_s") == (double)f->internal_s &&
		    jnum(o, "sharing_rate") == round4(f->sharing_rate) &&
		    jnum(o, "sessions") == (double)f->sessions &&
		    jnum(o, "external_sessions") == (double)f->external_sessions &&
		    jnum(o, "samples") == (double)f->samples &&
		    jnum(o, "external_users") == (double)f->external_users &&
		    jnum(o, "unattributed_s") == (double)f->unattributed_s &&
		    jnum(o, "overclaimed_s") == (double)f->overclaimed_s &&
		    jnum(o, "offline_s") == (double)f->offline_s;
	cJSON_Delete(o);
	return same;
}

/* Seal day's figures as revision 1, or as the next revision when they changed. */
static int seal_day(struct metrics *m, const struct instrument_cfg *ic, int64_t day, int *sealed)
{
	const char *inst = ic->id;
	struct daily_figures f;
	int r = metrics_day(m, inst, day, &f);
	if (r < 0)
		return r;
	int revision = 1;
	struct store_stmt *s = mx(m, MX_DAILY_GET);
	stmt_bind_text(s, 1, inst);
	stmt_bind_int64(s, 2, day);
	if (stmt_step(s) == STMT_ROW) {
		revision = stmt_int(s, 0) + 1;
		int64_t prev_seq = stmt_int64(s, 1);
		stmt_reset(s);
		struct stored_record rec = { 0 };
		bool same = buffer_get_record(m->buf, prev_seq, &rec) == 0 && same_figures(rec.line, &f);
		buffer_record_clear(&rec);
		if (same)
			return 0;
	}
	stmt_reset(s);
	char date[DATE_LEN];
	time_date(day, date);
	int64_t seq = record_daily(m->buf, inst, date, revision, &f);
	if (seq < 0)
		return (int)seq;
	(*sealed)++;
	s = mx(m, MX_DAILY_PUT);
	stmt_bind_text(s, 1, inst);
	stmt_bind_int64(s, 2, day);
	stmt_bind_text(s, 3, date);
	stmt_bind_int64(s, 4, revision);
	stmt_bind_int64(s, 5, seq);
	int rc = stmt_step(s);
	stmt_reset(s);
	if (rc != STMT_DONE)
		return stmt_error(s, rc, "storing a daily record");
	frontier_set(m, ic, day);
	return 0;
}

#define MAX_DAYS_PER_TICK 400

int seal_days(struct metrics *m, const struct instrument_cfg *ic, int64_t now, bool redo_dirty, int *sealed)
{
	int64_t grace = m->cfg->platform.present ? m->cfg->platform.upload_interval_s : 60;
	struct inst_state *st;
	int r = state_get(m, ic, &st);
	if (r < 0)
		return r;

	struct inst_mem *im = mem_of(m, ic);
	if (!im)
		return -ENOMEM;
	if (!im->days_known) {
		im->days_known = im->dirty = true;
		im->first_known = false;
	}

	/* Days already sealed that late data touched. */
	int64_t dirty[64];
	size_t nd = 0;
	struct store_stmt *s = NULL;
	if (redo_dirty && im->dirty) {
		s = mx(m, MX_DIRTY_LIST);
		stmt_bind_text(s, 1, ic->id);
		while (nd < 64 && stmt_step(s) == STMT_ROW)
			dirty[nd++] = stmt_int64(s, 0);
		stmt_reset(s);
		/* All of them are cleared below (or the transaction is undone, memory with it). */
		im->dirty = nd == 64;
	}
	for (size_t i = 0; i < nd && r == 0; i++) {
		if ((r = seal_day(m, ic, dirty[i], sealed)) < 0)
			break;
		m->redone++;
		s = mx(m, MX_DIRTY_DEL);
		stmt_bind_text(s, 1, ic->id);
		stmt_bind_int64(s, 2, dirty[i]);
		int rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			r = stmt_error(s, rc, "clearing a day");
	}
	if (r < 0)
		return r;

	/* Then the days that closed since the last one sealed. */
	/* A frontier before 1970 is negative: it once read as "no frontier", so every tick
	 * started again from the first session and stopped MAX_DAYS_PER_TICK days later. */
	int64_t frontier, day;
	bool have_frontier;
	if ((r = frontier_get(m, ic, &have_frontier, &frontier)) < 0)
		return r;
	if (have_frontier) {
		day = time_next_day(frontier);
	} else {
		if (!im->first_known) {
			int64_t a = 0, b = 0;
			bool have_a = query_i64(m, MX_FIRST_SLOT, ic->id, &a);
			bool have_b = query_i64(m, MX_FIRST_SESSION, ic->id, &b);
			im->have_first = have_a || have_b;
			im->first = !have_b || (have_a && a < b) ? a : b;
			im->first_known = true;
		}
		if (!im->have_first)
			return 0; /* nothing observed yet */
		day = time_day_start(im->first);
	}
	for (int k = 0; k < MAX_DAYS_PER_TICK; k++) {
		int64_t end = time_next_day(day);
		if (now < end + grace)
			break;
		/* Wait for the readings that close the day, unless the day is long gone. */
		if (ic->modbus.present && st->cov < end && now < end + 86400)
			break;
		if ((r = seal_day(m, ic, day, sealed)) < 0)
			return r;
		day = end;
	}
	return 0;
}
