/* report_events.c — the events of the HTML report, read back from the sealed records (through
 * the store, never its tables): each kept when it falls in the period, offline time measured
 * from the device_offline before it, at most REPORT_HTML_EVENTS_MAX listed per instrument. */
#include "report_events.h"
#include "buffer.h"
#include "report.h"
#include "report_html.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const struct ev_type ev_types[N_EV] = {
	{ "device_offline", "设备离线", "device offline", false },
	{ "device_online", "设备恢复在线", "device back online", false },
	{ "counter_reset", "计数器复位", "counter reset", false },
	{ "counter_clamped", "计数增量被截断", "counter delta clamped", false },
	{ "counter_wrap", "计数器回绕", "counter wrapped", false },
	{ "gap", "数据间断", "gap", false },
	{ "config_changed", "配置变更", "configuration changed", true },
	{ "buffer_full", "缓冲区已满", "buffer full", true },
};
#define DETAIL_MAX 400  /* bytes of an event's detail shown; the sealed record has all of it */

static char *cut_detail(const char *s)
{
	if (!s)
		return NULL;
	size_t len = strlen(s);
	if (len <= DETAIL_MAX)
		return strdup(s);
	size_t max = DETAIL_MAX;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	char *d = malloc(max + 4);
	if (d) {
		memcpy(d, s, max);
		memcpy(d + max, "\xE2\x80\xA6", 4);
	}
	return d;
}

static int ev_add(struct ev_list *l, int64_t seq, int64_t at, size_t type, int64_t offline_s,
		  const char *detail)
{
	l->count[type]++;
	if (l->n >= REPORT_HTML_EVENTS_MAX) {
		l->more++;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ev_item *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct ev_item *e = &l->v[l->n];
	*e = (struct ev_item){ .seq = seq, .at = at, .offline_s = offline_s, .type = type };
	if (detail && !(e->detail = cut_detail(detail)))
		return -ENOMEM;
	l->n++;
	return 0;
}

/* One sealed event: pair offline/online over the whole chain, keep it when in the period. */
static int ev_take(struct ev_list *lists, const struct report_row *rows, size_t n, int64_t from,
		   int64_t end, int64_t seq, const cJSON *e)
{
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(e, "type");
	const cJSON *ji = cJSON_GetObjectItemCaseSensitive(e, "instrument");
	const cJSON *ja = cJSON_GetObjectItemCaseSensitive(e, "at");
	const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "detail");
	int64_t at;
	if (!cJSON_IsString(jt) || !cJSON_IsString(ja) || time_parse_iso(ja->valuestring, &at) != 0)
		return 0;
	size_t type = 0;
	while (type < N_EV && strcmp(ev_types[type].type, jt->valuestring) != 0)
		type++;
	if (type == N_EV)
		return 0;
	struct ev_list *l;
	if (cJSON_IsString(ji)) {
		size_t i = 0;
		while (i < n && strcmp(rows[i].instrument, ji->valuestring) != 0)
			i++;
		if (i == n || ev_types[type].agent_only)
			return 0;
		l = &lists[i];
	} else {
		l = &lists[n];
	}
	int64_t offline_s = -1;
	if (type == EV_OFFLINE && l->offline_since < 0)
		l->offline_since = at;
	if (type == EV_ONLINE && l->offline_since >= 0) {
		offline_s = at - l->offline_since;
		l->offline_since = -1;
	}
	if (at < from || at >= end)
		return 0;
	return ev_add(l, seq, at, type, offline_s, cJSON_IsString(jd) ? jd->valuestring : NULL);
}

struct ev_scan {
	struct ev_list *lists;
	const struct report_row *rows;
	size_t n;
	int64_t from, end;
};

static int ev_record(const struct stored_record *r, void *arg)
{
	struct ev_scan *sc = arg;
	if (strcmp(r->kind, "event") != 0)
		return 0;
	cJSON *e = cJSON_ParseWithLength(r->line, r->line_len);
	int ret = e ? ev_take(sc->lists, sc->rows, sc->n, sc->from, sc->end, r->seq, e) : 0;
	cJSON_Delete(e);
	return ret;
}

int report_events_load(struct buffer *b, const struct report_opts *o, const struct report_row *rows,
		       size_t n, struct report_events *ev)
{
	ev->n = n + 1;
	if (!(ev->lists = calloc(ev->n, sizeof(*ev->lists))))
		return -ENOMEM;
	for (size_t i = 0; i < ev->n; i++)
		ev->lists[i].offline_since = -1;
	if (!b)
		return 0;
	/* Every record, in seq order: device_offline pairs with its device_online across the whole
	 * chain, before the period too. */
	struct ev_scan sc = { ev->lists, rows, n, o->from_day, time_next_day(o->to_day) };
	return buffer_each_record(b, 0, INT64_MAX, ev_record, &sc);
}

void report_events_free(struct report_events *ev)
{
	struct ev_list *lists = ev->lists;
	for (size_t i = 0; lists && i < ev->n; i++) {
		for (size_t k = 0; k < lists[i].n; k++)
			free(lists[i].v[k].detail);
		free(lists[i].v);
	}
	free(lists);
	ev->lists = NULL;
	ev->n = 0;
}
