/* status_json.c — the status as JSON (SPEC §7), written straight from the struct with the
 * house's writer (lib/jsonw: no tree of nodes for 5,000 instruments every second), and read
 * back: `status` beside a running daemon takes the instruments' live parts from the daemon's
 * status.json, the one parse left. */
#include "status.h"
#include "jsonw.h"
#include "timeutil.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------------ */

/* A string from outside (a file's name, a device's or the platform's error) that is not UTF-8
 * is written with its odd bytes as "\\xNN" (utf8_repair): the status is an operator's view, and
 * one such name must not take the whole status down (jsonw refuses invalid UTF-8). */
static void put_str(struct jsonw *w, const char *key, const char *s)
{
	if (utf8_str_valid(s)) {
		jw_str(w, key, s);
		return;
	}
	char *fixed = utf8_repair(s);
	if (!fixed)
		w->failed = true;
	else
		jw_str(w, key, fixed);
	free(fixed);
}

static void put_time(struct jsonw *w, const char *key, int64_t t)
{
	if (t <= 0) {
		jw_null(w, key);
		return;
	}
	char buf[RFC3339_LEN];
	time_rfc3339(t, buf);
	jw_str(w, key, buf);
}

static void put_sink(struct jsonw *w, const struct sink_status *s)
{
	jw_int(w, "acked_seq", s->acked_seq);
	jw_int(w, "pending", s->pending);
	put_time(w, "last_ok", s->last_ok);
	put_str(w, "last_error", s->last_error);
	put_time(w, "next_attempt", s->next_attempt);
	put_str(w, "alarm", s->alarm);
}

static void put_nrii(struct jsonw *w, const struct nrii_status *n)
{
	jw_array(w, "parked");
	for (size_t i = 0; i < n->n_parked; i++) {
		jw_object(w, NULL);
		jw_int(w, "seq", n->parked[i].seq);
		jw_int(w, "code", n->parked[i].code);
		put_str(w, "text", n->parked[i].text ? n->parked[i].text : "");
		jw_close_object(w);
	}
	jw_close_array(w);
	jw_array(w, "parked_totals");
	for (size_t i = 0; i < n->n_totals; i++) {
		const struct nrii_parked_total *t = &n->totals[i];
		jw_object(w, NULL);
		put_str(w, "instrument", t->instrument ? t->instrument : "");
		jw_int(w, "year", t->year);
		jw_int(w, "month", t->month);
		jw_int(w, "code", t->code);
		put_str(w, "text", t->text ? t->text : "");
		jw_close_object(w);
	}
	jw_close_array(w);
	jw_int(w, "parked_count", n->parked_count);
	jw_int(w, "sent_count", n->sent_count);
}

static void put_reading(struct jsonw *w, const struct modbus_reading *r)
{
	if (r->at <= 0) {
		jw_null(w, "reading");
		return;
	}
	jw_object(w, "reading");
	put_time(w, "at", r->at);
	jw_bool(w, "ok", r->ok);
	if (!r->ok) {
		put_str(w, "error", r->error ? r->error : "");
	} else {
		if (r->has_run)
			jw_num(w, "run_raw", r->run_raw);
		if (r->has_samples)
			jw_num(w, "samples_raw", r->samples_raw);
		if (r->has_in_use) {
			jw_num(w, "in_use_raw", r->in_use_raw);
			jw_bool(w, "in_use", r->in_use);
		}
		if (r->has_power)
			jw_num(w, "power_raw", r->power_raw);
		if (r->has_energy)
			jw_num(w, "energy_raw", r->energy_raw);
	}
	jw_close_object(w);
}

static void put_modbus(struct jsonw *w, const struct modbus_status *m)
{
	if (!m->present) {
		jw_null(w, "modbus");
		return;
	}
	jw_object(w, "modbus");
	put_str(w, "state", m->state);
	put_time(w, "last_ok", m->last_ok);
	if (m->has_run_hours)
		jw_num(w, "run_hours_total", m->run_hours_total);
	else
		jw_null(w, "run_hours_total");
	if (m->live) {
		if (m->has_samples_total)
			jw_num(w, "samples_total", m->samples_total);
		if (m->has_in_use)
			jw_bool(w, "in_use", m->in_use);
		if (m->last_error)
			put_str(w, "last_error", m->last_error);
		put_str(w, "bus", m->bus ? m->bus : "");
		jw_int(w, "unit", m->unit);
		put_reading(w, &m->reading);
		jw_int(w, "polls", (int64_t)m->polls);
		jw_int(w, "late_polls", (int64_t)m->late_polls);
	}
	jw_close_object(w);
}

static void put_log(struct jsonw *w, const struct log_status *l)
{
	jw_object(w, NULL);
	put_str(w, "path", l->path);
	if (l->live)
		put_str(w, "file", l->file);
	if (l->has_offset)
		jw_int(w, "offset", l->offset);
	else
		jw_null(w, "offset");
	jw_int(w, "lines", l->lines);
	jw_int(w, "malformed", l->malformed);
	if (l->live) {
		jw_int(w, "files", l->files);
		if (l->has_open_sessions)
			jw_int(w, "open_sessions", l->open_sessions);
		put_str(w, "state", l->state);
	}
	jw_close_object(w);
}

char *status_json(const struct status *st, size_t *len)
{
	struct jsonw w;
	jw_begin(&w);
	put_str(&w, "agent_id", st->agent_id);
	jw_str(&w, "version", LABSHARE_VERSION);
	jw_bool(&w, "running", st->running);
	if (st->pid > 0)
		jw_int(&w, "pid", st->pid);
	else
		jw_null(&w, "pid");
	jw_object(&w, "buffer");
	put_str(&w, "path", st->buffer.path ? st->buffer.path : "");
	jw_int(&w, "last_seq", st->buffer.last_seq);
	jw_int(&w, "acked_seq", st->buffer.acked_seq);
	jw_int(&w, "pending", st->buffer.pending);
	jw_int(&w, "bytes", st->buffer.bytes);
	jw_int(&w, "max_bytes", st->buffer.max_bytes);
	jw_bool(&w, "full", st->buffer.full);
	put_str(&w, "head_hash", st->buffer.head_hash);
	if (st->buffer.oldest_pending_age_s >= 0)
		jw_int(&w, "oldest_pending_age_s", st->buffer.oldest_pending_age_s);
	else
		jw_null(&w, "oldest_pending_age_s");
	jw_close_object(&w);
	jw_object(&w, "upload");
	put_sink(&w, &st->upload);
	jw_close_object(&w);
	if (st->has_nrii) {
		jw_object(&w, "nrii");
		put_sink(&w, &st->nrii);
		put_nrii(&w, &st->nrii_parked);
		jw_close_object(&w);
	}
	jw_array(&w, "instruments");
	for (size_t i = 0; i < st->n_insts; i++) {
		const struct inst_status *in = &st->insts[i];
		jw_object(&w, NULL);
		put_str(&w, "id", in->id);
		put_str(&w, "name", in->name);
		put_modbus(&w, &in->modbus);
		jw_array(&w, "logs");
		for (size_t j = 0; j < in->n_logs; j++)
			put_log(&w, &in->logs[j]);
		jw_close_array(&w);
		jw_int(&w, "sessions_repeated", in->sessions_repeated);
		jw_close_object(&w);
	}
	jw_close_array(&w);
	return jw_end(&w, len);
}

/* ---- reading ------------------------------------------------------------------------ */

/* As cJSON_GetObjectItemCaseSensitive, the first character compared before a call (some 20
 * lookups per instrument). */
static const cJSON *get(const cJSON *o, const char *key)
{
	if (!o)
		return NULL;
	for (const cJSON *c = o->child; c && c->string; c = c->next)
		if (c->string[0] == key[0] && strcmp(c->string, key) == 0)
			return c;
	return NULL;
}

static int64_t int_of(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static bool num_of(const cJSON *o, const char *key, double *out)
{
	const cJSON *v = get(o, key);
	*out = cJSON_IsNumber(v) ? v->valuedouble : 0;
	return cJSON_IsNumber(v);
}

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(get(o, key));
}

static int64_t time_of(const cJSON *o, const char *key)
{
	const char *s = str_of(o, key);
	int64_t t;
	return s && time_parse_iso(s, &t) == 0 ? t : 0;
}

static void word(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

static void modbus_from(struct modbus_status *m, const cJSON *o)
{
	m->present = true;
	word(m->state, sizeof(m->state), str_of(o, "state"));
	m->last_ok = time_of(o, "last_ok");
	m->has_run_hours = num_of(o, "run_hours_total", &m->run_hours_total);
	m->has_samples_total = num_of(o, "samples_total", &m->samples_total);
	m->has_in_use = cJSON_IsBool(get(o, "in_use"));
	m->in_use = cJSON_IsTrue(get(o, "in_use"));
	inst_status_set(&m->last_error, str_of(o, "last_error"));
	/* A snapshot from the driver says which bus; the one laid out from a config does not. */
	m->live = str_of(o, "bus") != NULL;
	inst_status_set(&m->bus, str_of(o, "bus"));
	m->unit = (int)int_of(o, "unit");
	m->polls = (uint64_t)int_of(o, "polls");
	m->late_polls = (uint64_t)int_of(o, "late_polls");
	const cJSON *r = get(o, "reading");
	struct modbus_reading *rd = &m->reading;
	rd->at = cJSON_IsObject(r) ? time_of(r, "at") : 0;
	rd->ok = cJSON_IsTrue(get(r, "ok"));
	inst_status_set(&rd->error, cJSON_IsObject(r) && !rd->ok ?
			(str_of(r, "error") ? str_of(r, "error") : "the daemon gave no reason") : NULL);
	rd->has_run = num_of(r, "run_raw", &rd->run_raw);
	rd->has_samples = num_of(r, "samples_raw", &rd->samples_raw);
	rd->has_in_use = num_of(r, "in_use_raw", &rd->in_use_raw);
	rd->in_use = cJSON_IsTrue(get(r, "in_use"));
	rd->has_power = num_of(r, "power_raw", &rd->power_raw);
	rd->has_energy = num_of(r, "energy_raw", &rd->energy_raw);
}

static void log_from(struct log_status *l, const cJSON *o)
{
	l->live = get(o, "state") != NULL;
	inst_status_set(&l->file, str_of(o, "file"));
	double off;
	l->has_offset = num_of(o, "offset", &off);
	l->offset = (int64_t)off;
	l->lines = int_of(o, "lines");
	l->malformed = int_of(o, "malformed");
	l->files = int_of(o, "files");
	l->has_open_sessions = cJSON_IsNumber(get(o, "open_sessions"));
	l->open_sessions = int_of(o, "open_sessions");
	word(l->state, sizeof(l->state), str_of(o, "state"));
}

int status_live_from_json(struct status *st, const cJSON *j)
{
	const cJSON *arr = get(j, "instruments");
	if (!cJSON_IsArray(arr))
		return -EINVAL;
	/* Both lists are in the config's order: the hint finds each in one comparison. */
	size_t hint = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		const char *id = str_of(it, "id");
		struct inst_status *in = id && st->n_insts ? inst_status_find(st->insts, st->n_insts, id, &hint) : NULL;
		if (!in)
			continue;
		const cJSON *m = get(it, "modbus");
		/* Only what a driver filled (modbus_from, log_from say which): the rest the
		 * daemon wrote as any stopped agent would, and it is filled here the same way. */
		if (in->modbus.present && cJSON_IsObject(m) && str_of(m, "bus"))
			modbus_from(&in->modbus, m);
		const cJSON *l;
		cJSON_ArrayForEach(l, get(it, "logs")) {
			const char *path = str_of(l, "path");
			struct log_status *ls = path ? inst_status_log(in, path) : NULL;
			if (ls && get(l, "state"))
				log_from(ls, l);
		}
	}
	return 0;
}

static void sink_from(struct sink_status *s, const cJSON *o)
{
	s->acked_seq = int_of(o, "acked_seq");
	s->pending = int_of(o, "pending");
	s->last_ok = time_of(o, "last_ok");
	s->next_attempt = time_of(o, "next_attempt");
	inst_status_set(&s->last_error, str_of(o, "last_error"));
	inst_status_set(&s->alarm, str_of(o, "alarm"));
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static int nrii_from(struct nrii_status *n, const cJSON *o)
{
	const cJSON *p = get(o, "parked"), *t = get(o, "parked_totals"), *e;
	size_t np = (size_t)cJSON_GetArraySize(p), nt = (size_t)cJSON_GetArraySize(t);
	n->parked = calloc(np ? np : 1, sizeof(*n->parked));
	n->totals = calloc(nt ? nt : 1, sizeof(*n->totals));
	if (!n->parked || !n->totals)
		return -ENOMEM;
	cJSON_ArrayForEach(e, p) {
		struct nrii_parked *x = &n->parked[n->n_parked++];
		x->seq = int_of(e, "seq");
		x->code = (int)int_of(e, "code");
		x->text = dup_or_empty(str_of(e, "text"));
	}
	cJSON_ArrayForEach(e, t) {
		struct nrii_parked_total *x = &n->totals[n->n_totals++];
		x->instrument = dup_or_empty(str_of(e, "instrument"));
		x->year = (int)int_of(e, "year");
		x->month = (int)int_of(e, "month");
		x->code = (int)int_of(e, "code");
		x->text = dup_or_empty(str_of(e, "text"));
	}
	n->parked_count = int_of(o, "parked_count");
	n->sent_count = int_of(o, "sent_count");
	return 0;
}

struct status *status_from_json(const cJSON *j)
{
	const cJSON *arr = get(j, "instruments"), *buf = get(j, "buffer");
	if (!cJSON_IsArray(arr) || !cJSON_IsObject(buf))
		return NULL;
	struct status *st = calloc(1, sizeof(*st));
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (!st || !(st->insts = calloc(n ? n : 1, sizeof(*st->insts))))
		goto fail;
	st->agent_id = dup_or_empty(str_of(j, "agent_id"));
	st->running = cJSON_IsTrue(get(j, "running"));
	st->pid = (long)int_of(j, "pid");
	st->buffer.path = dup_or_empty(str_of(buf, "path"));
	st->buffer.last_seq = int_of(buf, "last_seq");
	st->buffer.acked_seq = int_of(buf, "acked_seq");
	st->buffer.pending = int_of(buf, "pending");
	st->buffer.bytes = int_of(buf, "bytes");
	st->buffer.max_bytes = int_of(buf, "max_bytes");
	st->buffer.full = cJSON_IsTrue(get(buf, "full"));
	word(st->buffer.head_hash, sizeof(st->buffer.head_hash), str_of(buf, "head_hash"));
	st->buffer.oldest_pending_age_s = cJSON_IsNumber(get(buf, "oldest_pending_age_s")) ?
		int_of(buf, "oldest_pending_age_s") : -1;
	sink_from(&st->upload, get(j, "upload"));
	const cJSON *nrii = get(j, "nrii");
	st->has_nrii = cJSON_IsObject(nrii);
	if (st->has_nrii) {
		sink_from(&st->nrii, nrii);
		if (nrii_from(&st->nrii_parked, nrii) < 0)
			goto fail;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		struct inst_status *in = &st->insts[st->n_insts++];
		const cJSON *logs = get(it, "logs"), *l;
		size_t nl = (size_t)cJSON_GetArraySize(logs);
		in->id = dup_or_empty(str_of(it, "id"));
		in->name = dup_or_empty(str_of(it, "name"));
		if (!(in->logs = calloc(nl ? nl : 1, sizeof(*in->logs))))
			goto fail;
		if (cJSON_IsObject(get(it, "modbus")))
			modbus_from(&in->modbus, get(it, "modbus"));
		cJSON_ArrayForEach(l, logs) {
			struct log_status *ls = &in->logs[in->n_logs++];
			ls->path = dup_or_empty(str_of(l, "path"));
			log_from(ls, l);
		}
		in->sessions_repeated = int_of(it, "sessions_repeated");
	}
	return st;
fail:
	status_free(st);
	return NULL;
}
