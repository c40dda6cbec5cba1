/* logpairs.c — login and logout events of an events log paired into sessions: open starts
 * kept (and saved with the cursor) until their end comes, or closed at the longest session. */
#include "logparse_priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* ---- pairing ---- */

struct open_start {
	char *key;
	bool keyed;
	int64_t start;
	char *user, *org, *way, *fee, *project;
	int64_t samples;
	int external;
};

struct lp_pairs {
	int64_t max_s;
	struct open_start *v;     /* in the order they opened */
	size_t n, cap;
};

struct lp_pairs *lp_pairs_new(double max_session_h)
{
	struct lp_pairs *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	if (!(max_session_h > 0) || max_session_h > 24 * 31)
		max_session_h = 12;
	pp->max_s = (int64_t)llround(max_session_h * 3600);
	return pp;
}

static void open_clear(struct open_start *o)
{
	free(o->key);
	free(o->user);
	free(o->org);
	free(o->way);
	free(o->fee);
	free(o->project);
	memset(o, 0, sizeof(*o));
}

void lp_pairs_clear(struct lp_pairs *pp)
{
	if (!pp)
		return;
	for (size_t i = 0; i < pp->n; i++)
		open_clear(&pp->v[i]);
	pp->n = 0;
}

void lp_pairs_free(struct lp_pairs *pp)
{
	if (!pp)
		return;
	lp_pairs_clear(pp);
	free(pp->v);
	free(pp);
}

size_t lp_pairs_count(const struct lp_pairs *pp)
{
	return pp->n;
}

static void open_remove(struct lp_pairs *pp, size_t i)
{
	open_clear(&pp->v[i]);
	memmove(&pp->v[i], &pp->v[i + 1], (pp->n - i - 1) * sizeof(pp->v[0]));
	pp->n--;
}

static int open_close(struct lp_pairs *pp, size_t i, int64_t end, bool auto_closed,
		      const struct obs_session *mark, lp_emit_fn emit, void *arg)
{
	const struct open_start *o = &pp->v[i];
	struct obs_session s = {
		.start = o->start, .end = end, .user = o->user, .org = o->org,
		.external = o->external, .samples = o->samples, .way = o->way, .fee = o->fee,
		.project = o->project, .closed_auto = auto_closed,
	};
	if (mark) {
		/* A logout may know what the login didn't (samples are often counted at the end). */
		if (!s.org)
			s.org = mark->org;
		if (mark->samples >= 0)
			s.samples = mark->samples;
		if (s.external < 0)
			s.external = mark->external;
		if (!s.way)
			s.way = mark->way;
		if (!s.fee)
			s.fee = mark->fee;
		if (!s.project)
			s.project = mark->project;
	}
	int r = emit(arg, &s);
	if (r < 0)
		return r;
	open_remove(pp, i);
	return 0;
}

int lp_pairs_expire(struct lp_pairs *pp, int64_t now, lp_emit_fn emit, void *arg)
{
	for (size_t i = 0; i < pp->n;) {
		if (pp->v[i].start + pp->max_s < now) {
			int r = open_close(pp, i, pp->v[i].start + pp->max_s, true, NULL, emit, arg);
			if (r < 0)
				return r;
			continue;
		}
		i++;
	}
	return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int lp_pairs_feed(struct lp_pairs *pp, const struct lp_result *mark, lp_emit_fn emit, void *arg,
		  char *why, size_t whylen)
{
	const struct obs_session *m = &mark->s;
	const char *key = mark->keyed && m->user ? m->user : "";
	int r;

	/* The log's own time moving past a start's limit closes it exactly as the wall clock
	 * would have: the result doesn't depend on how fast the log is read. */
	if ((r = lp_pairs_expire(pp, m->start, emit, arg)) < 0)
		return r;

	size_t i;
	if (mark->kind == LP_END) {
		if (mark->keyed) {
			for (i = 0; i < pp->n && strcmp(pp->v[i].key, key) != 0; i++)
				;
		} else {
			i = pp->n ? pp->n - 1 : 0; /* a logout naming nobody ends the latest login */
		}
		if (i >= pp->n) {
			snprintf(why, whylen, "logout without a login");
			return 1;
		}
		if (m->start <= pp->v[i].start) {
			snprintf(why, whylen, "logout not after its login");
			return 1;
		}
		return open_close(pp, i, m->start, false, m, emit, arg);
	}

	for (i = 0; i < pp->n && strcmp(pp->v[i].key, key) != 0; i++)
		;
	if (i < pp->n) {
		if (m->start <= pp->v[i].start) {
			snprintf(why, whylen, "login not after the open login of the same user");
			return 1;
		}
		int64_t end = pp->v[i].start + pp->max_s;
		if ((r = open_close(pp, i, m->start < end ? m->start : end, true, NULL, emit, arg)) < 0)
			return r;
	}
	if (pp->n == LP_OPEN_MAX) {
		/* A log of logins that never log out must not grow without bound. */
		if ((r = open_close(pp, 0, pp->v[0].start + pp->max_s, true, NULL, emit, arg)) < 0)
			return r;
	}
	if (pp->n == pp->cap) {
		size_t cap = pp->cap ? 2 * pp->cap : 8;
		struct open_start *v = realloc(pp->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pp->v = v;
		pp->cap = cap;
	}
	bool oom = false;
	struct open_start o = {
		.key = dup_or_null(key, &oom), .keyed = mark->keyed, .start = m->start,
		.user = dup_or_null(m->user, &oom), .org = dup_or_null(m->org, &oom),
		.way = dup_or_null(m->way, &oom), .fee = dup_or_null(m->fee, &oom),
		.project = dup_or_null(m->project, &oom), .samples = m->samples,
		.external = m->external,
	};
	if (oom) {
		open_clear(&o);
		return -ENOMEM;
	}
	pp->v[pp->n++] = o;
	return 0;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
}

cJSON *lp_pairs_to_json(const struct lp_pairs *pp)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < pp->n; i++) {
		const struct open_start *o = &pp->v[i];
		cJSON *e = cJSON_CreateObject();
		if (!e) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, e);
		cJSON_AddStringToObject(e, "key", o->key);
		cJSON_AddBoolToObject(e, "keyed", o->keyed);
		cJSON_AddNumberToObject(e, "start", (double)o->start);
		add_str(e, "user", o->user);
		add_str(e, "org", o->org);
		add_str(e, "way", o->way);
		add_str(e, "fee", o->fee);
		add_str(e, "project", o->project);
		cJSON_AddNumberToObject(e, "samples", (double)o->samples);
		cJSON_AddNumberToObject(e, "external", o->external);
	}
	return arr;
}

static bool in_range(double d, double lo, double hi)
{
	return isfinite(d) && d >= lo && d <= hi;
}

static char *json_str(const cJSON *o, const char *k, bool *bad)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!it)
		return NULL;
	if (!cJSON_IsString(it)) {
		*bad = true;
		return NULL;
	}
	char *s = strdup(it->valuestring);
	if (!s)
		*bad = true;
	return s;
}

int lp_pairs_from_json(struct lp_pairs *pp, const cJSON *arr)
{
	lp_pairs_clear(pp);
	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return -EINVAL;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *start = cJSON_GetObjectItemCaseSensitive(e, "start");
		const cJSON *samples = cJSON_GetObjectItemCaseSensitive(e, "samples");
		const cJSON *ext = cJSON_GetObjectItemCaseSensitive(e, "external");
		bool bad = !cJSON_IsObject(e) || !cJSON_IsNumber(start) || !cJSON_IsNumber(samples) ||
			   !cJSON_IsNumber(ext) || pp->n >= LP_OPEN_MAX;
		struct open_start o = {
			.key = json_str(e, "key", &bad),
			.keyed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "keyed")),
			.user = json_str(e, "user", &bad), .org = json_str(e, "org", &bad),
			.way = json_str(e, "way", &bad), .fee = json_str(e, "fee", &bad),
			.project = json_str(e, "project", &bad),
		};
		/* Checked before the casts: a number out of range (1e400 parses as inf) is UB. */
		if (!bad && (!in_range(start->valuedouble, 0, 9e15) ||
			     !in_range(samples->valuedouble, -1, 9e15)))
			bad = true;
		if (!bad && o.key) {
			o.start = (int64_t)start->valuedouble;
			o.samples = (int64_t)samples->valuedouble;
			o.external = ext->valueint < 0 ? -1 : ext->valueint > 0;
		}
		if (!bad && pp->n == pp->cap) {
			size_t cap = pp->cap ? 2 * pp->cap : 8;
			struct open_start *v = realloc(pp->v, cap * sizeof(*v));
			if (v) {
				pp->v = v;
				pp->cap = cap;
			} else {
				bad = true;
			}
		}
		if (bad || !o.key) {
			open_clear(&o);
			lp_pairs_clear(pp);
			return -EINVAL;
		}
		pp->v[pp->n++] = o;
	}
	return 0;
}
