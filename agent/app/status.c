/* status.c — one description of the agent's state, printed as JSON or as text. */
#include "status.h"
#include "fileio.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "nrii.h"
#include "timeutil.h"
#include "logtail.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

int write_file_atomic(const char *path, const char *data, size_t len, int mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = -errno;
			close(fd);
			unlink(tmp);
			return e;
		}
		off += (size_t)w;
	}
	/* No fsync: these files are views rebuilt every second; rename keeps them whole. */
	if (close(fd) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	if (rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

cJSON *status_read_live(const char *state_dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, STATUS_FILE) >= (int)sizeof(path))
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	/* The whole file, however many instruments it lists: a snapshot cut short parses as
	 * nothing, and every instrument would show "starting". */
	size_t len = 0;
	char *text = fileio_read_all(fd, SIZE_MAX, &len);
	cJSON *live = text ? cJSON_ParseWithLength(text, len) : NULL;
	free(text);
	close(fd);
	return live;
}

static void add_time(cJSON *obj, const char *key, int64_t t)
{
	if (t <= 0) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	char buf[RFC3339_LEN];
	time_rfc3339(t, buf);
	cJSON_AddStringToObject(obj, key, buf);
}

static void add_str_or_null(cJSON *obj, const char *key, const char *s)
{
	if (s)
		cJSON_AddStringToObject(obj, key, s);
	else
		cJSON_AddNullToObject(obj, key);
}

/* *hint: the entry after the last one found. The snapshot lists instruments in the config's
 * order, so with thousands of them the lookup is one comparison, not a scan of the list. */
static const cJSON *live_instrument(const cJSON *live, const char *id, const cJSON **hint)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(live, "instruments");
	const cJSON *it;
	if (*hint) {
		const cJSON *hid = cJSON_GetObjectItemCaseSensitive(*hint, "id");
		if (cJSON_IsString(hid) && strcmp(hid->valuestring, id) == 0) {
			it = *hint;
			*hint = it->next;
			return it;
		}
	}
	cJSON_ArrayForEach(it, arr) {
		const cJSON *lid = cJSON_GetObjectItemCaseSensitive(it, "id");
		if (cJSON_IsString(lid) && strcmp(lid->valuestring, id) == 0) {
			*hint = it->next;
			return it;
		}
	}
	return NULL;
}

static double num_or(const cJSON *o, const char *key, double dflt);

/* Without a running daemon, a log's figures come from the cursor it last committed. */
static cJSON *log_from_cursor(struct buffer *b, const char *instrument, const char *path)
{
	cJSON *l = cJSON_CreateObject();
	cJSON_AddStringToObject(l, "path", path);
	void *data = NULL;
	size_t len = 0;
	char *key = logtail_cursor_key(instrument, path);
	cJSON *cur = NULL;
	if (b && key && buffer_cursor_get(b, key, &data, &len) == 0)
		cur = cJSON_ParseWithLength(data, len);
	free(key);
	free(data);
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(cur, "files");
	const cJSON *last = cJSON_GetArrayItem(files, cJSON_GetArraySize(files) - 1);
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(last, "off");
	if (cJSON_IsNumber(off))
		cJSON_AddNumberToObject(l, "offset", off->valuedouble);
	else
		cJSON_AddNullToObject(l, "offset");
	cJSON_AddNumberToObject(l, "lines", num_or(cur, "lines", 0));
	cJSON_AddNumberToObject(l, "malformed", num_or(cur, "malformed", 0));
	cJSON_Delete(cur);
	return l;
}

static cJSON *sink_status(struct buffer *b, const char *sink, int64_t last_seq)
{
	cJSON *u = cJSON_CreateObject();
	struct sink_state st = { 0 };
	if (b)
		buffer_sink_get(b, sink, &st);
	cJSON_AddNumberToObject(u, "acked_seq", (double)st.acked_seq);
	cJSON_AddNumberToObject(u, "pending", (double)(last_seq > st.acked_seq ? last_seq - st.acked_seq : 0));
	add_time(u, "last_ok", st.last_ok);
	add_str_or_null(u, "last_error", st.last_error);
	add_time(u, "next_attempt", st.next_attempt);
	add_str_or_null(u, "alarm", st.alarm);
	buffer_sink_clear(&st);
	return u;
}

cJSON *status_build(const struct config *cfg, struct buffer *b, const cJSON *live, bool running,
		    long pid)
{
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "agent_id", cfg->agent.id);
	cJSON_AddStringToObject(st, "version", LABSHARE_VERSION);
	cJSON_AddBoolToObject(st, "running", running);
	if (running && pid > 0)
		cJSON_AddNumberToObject(st, "pid", (double)pid);
	else
		cJSON_AddNullToObject(st, "pid");

	struct chain_head head = { 0 };
	int64_t bytes = 0;
	bool full = false;
	if (b) {
		buffer_head(b, &head);
		bytes = buffer_bytes(b);
		char *v = NULL;
		if (buffer_meta_get(b, "buffer_full", &v) == 0 && v)
			full = strcmp(v, "1") == 0 && running;
		free(v);
	}
	/* The main sink's cursor is "the" acked_seq; with only NRII configured, that one. */
	const char *main_sink = cfg->platform.present ? "platform" : "nrii";
	struct sink_state ms = { 0 };
	if (b)
		buffer_sink_get(b, main_sink, &ms);
	cJSON *buf = cJSON_AddObjectToObject(st, "buffer");
	cJSON_AddStringToObject(buf, "path", b ? buffer_path(b) : "");
	cJSON_AddNumberToObject(buf, "last_seq", (double)head.seq);
	cJSON_AddNumberToObject(buf, "acked_seq", (double)ms.acked_seq);
	cJSON_AddNumberToObject(buf, "pending", (double)(head.seq > ms.acked_seq ? head.seq - ms.acked_seq : 0));
	cJSON_AddNumberToObject(buf, "bytes", (double)bytes);
	cJSON_AddNumberToObject(buf, "max_bytes", (double)(cfg->buffer.max_mb * 1024 * 1024));
	cJSON_AddBoolToObject(buf, "full", full);
	cJSON_AddStringToObject(buf, "head_hash", head.hash[0] ? head.hash :
				"0000000000000000000000000000000000000000000000000000000000000000");
	int64_t oldest = 0;
	if (b && head.seq > ms.acked_seq) {
		struct stored_record r;
		if (buffer_get_record(b, ms.acked_seq + 1, &r) == 0)
			oldest = r.sealed_at;
		buffer_record_clear(&r);
	}
	if (oldest > 0)
		cJSON_AddNumberToObject(buf, "oldest_pending_age_s", (double)(clock_wall() - oldest));
	else
		cJSON_AddNullToObject(buf, "oldest_pending_age_s");
	buffer_sink_clear(&ms);

	cJSON *upload = sink_status(b, main_sink, head.seq);
	cJSON_AddItemToObject(st, "upload", upload);
	if (cfg->nrii.present) {
		/* Its own cursor, and the records the platform refused (kept, listed here). */
		cJSON *nrii = sink_status(b, "nrii", head.seq);
		nrii_status_add(b, nrii);
		cJSON_AddItemToObject(st, "nrii", nrii);
	}

	cJSON *insts = cJSON_AddArrayToObject(st, "instruments");
	struct metrics *mx = b ? metrics_new(b, cfg) : NULL;
	const cJSON *hint = NULL;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *in = &cfg->instruments[i];
		const cJSON *li = running ? live_instrument(live, in->id, &hint) : NULL;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", in->id);
		cJSON_AddStringToObject(o, "name", in->name ? in->name : in->id);
		const cJSON *lm = li ? cJSON_GetObjectItemCaseSensitive(li, "modbus") : NULL;
		if (lm) {
			cJSON_AddItemToObject(o, "modbus", cJSON_Duplicate(lm, 1));
		} else if (in->modbus.present) {
			cJSON *m = cJSON_AddObjectToObject(o, "modbus");
			cJSON_AddStringToObject(m, "state", running ? "starting" : "stopped");
			cJSON_AddNullToObject(m, "last_ok");
			/* The counter as last read, kept by metrics for the next start. */
			double h = mx ? metrics_run_hours_total(mx, in->id) : -1;
			if (h >= 0)
				cJSON_AddNumberToObject(m, "run_hours_total", h);
			else
				cJSON_AddNullToObject(m, "run_hours_total");
		} else {
			cJSON_AddNullToObject(o, "modbus");
		}
		const cJSON *ll = li ? cJSON_GetObjectItemCaseSensitive(li, "logs") : NULL;
		if (ll) {
			cJSON_AddItemToObject(o, "logs", cJSON_Duplicate(ll, 1));
		} else {
			cJSON *logs = cJSON_AddArrayToObject(o, "logs");
			for (size_t j = 0; j < in->n_logs; j++)
				cJSON_AddItemToArray(logs, log_from_cursor(b, in->id, in->logs[j].path));
		}
		/* SPEC §3: the same session seen again is sealed once, and counted here. */
		int64_t rep = mx ? metrics_sessions_repeated(mx, in->id) : 0;
		cJSON_AddNumberToObject(o, "sessions_repeated", (double)(rep > 0 ? rep : 0));
		cJSON_AddItemToArray(insts, o);
	}
	metrics_free(mx);
	return st;
}

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double num_or(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void status_print_text(const cJSON *st, FILE *out)
{
	const cJSON *buf = cJSON_GetObjectItemCaseSensitive(st, "buffer");
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(st, "upload");
	bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "running"));
	fprintf(out, "agent     %s (labshare-agent %s), %s\n", str_or(st, "agent_id", "?"),
		str_or(st, "version", "?"), running ? "running" : "not running");
	fprintf(out, "buffer    %s: last seq %.0f, acked %.0f, pending %.0f, %.1f MB%s\n",
		str_or(buf, "path", "?"), num_or(buf, "last_seq", 0), num_or(buf, "acked_seq", 0),
		num_or(buf, "pending", 0), num_or(buf, "bytes", 0) / 1048576.0,
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(buf, "full")) ?
			" — FULL: sources paused" : "");
	fprintf(out, "upload    last ok %s, next attempt %s\n", str_or(up, "last_ok", "never"),
		str_or(up, "next_attempt", "now"));
	const char *err = str_or(up, "last_error", NULL);
	if (err)
		fprintf(out, "          last error: %s\n", err);
	const char *alarm = str_or(up, "alarm", NULL);
	if (alarm)
		fprintf(out, "          ALARM: %s\n", alarm);
	const cJSON *nrii = cJSON_GetObjectItemCaseSensitive(st, "nrii");
	if (cJSON_IsObject(nrii)) {
		fprintf(out, "nrii      acked %.0f, last ok %s, %.0f sent, %.0f parked\n", num_or(nrii, "acked_seq", 0),
			str_or(nrii, "last_ok", "never"), num_or(nrii, "sent_count", 0), num_or(nrii, "parked_count", 0));
		if (str_or(nrii, "alarm", NULL))
			fprintf(out, "          ALARM: %s\n", str_or(nrii, "alarm", ""));
		const cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(nrii, "parked"))
			fprintf(out, "          parked seq %.0f: %.0f %s\n", num_or(p, "seq", 0), num_or(p, "code", 0),
				str_or(p, "text", ""));
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(nrii, "parked_totals"))
			fprintf(out, "          parked totals %s %.0f-%02.0f: %.0f %s\n", str_or(p, "instrument", "?"),
				num_or(p, "year", 0), num_or(p, "month", 0), num_or(p, "code", 0), str_or(p, "text", ""));
	}
	const cJSON *in;
	cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(st, "instruments")) {
		fprintf(out, "instrument %s (%s)\n", str_or(in, "id", "?"), str_or(in, "name", ""));
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "modbus");
		if (cJSON_IsObject(m)) {
			const cJSON *h = cJSON_GetObjectItemCaseSensitive(m, "run_hours_total");
			char hours[32] = "unknown";
			if (cJSON_IsNumber(h))
				snprintf(hours, sizeof(hours), "%.2f h", h->valuedouble);
			fprintf(out, "  modbus  %s, last ok %s, run total %s\n", str_or(m, "state", "?"),
				str_or(m, "last_ok", "never"), hours);
		}
		const cJSON *l;
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(in, "logs")) {
			fprintf(out, "  log     %s: %.0f lines, %.0f malformed\n", str_or(l, "path", "?"),
				num_or(l, "lines", 0), num_or(l, "malformed", 0));
		}
		if (num_or(in, "sessions_repeated", 0) > 0)
			fprintf(out, "  repeats %.0f (the same session seen again, sealed once)\n",
				num_or(in, "sessions_repeated", 0));
	}
}

/* ---- Prometheus text format ------------------------------------------------------- */

struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

static void text_add(struct text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void text_add(struct text *t, const char *fmt, ...)
{
	if (t->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if (t->p && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *q = realloc(t->p, cap);
		if (!q) {
			t->failed = true;
			return;
		}
		t->p = q;
		t->cap = cap;
	}
}

/* Label values: backslash, quote and newline escaped, as the format requires. Whole, however
 * long (a log path may be up to PATH_MAX); caller frees; NULL when out of memory. */
static char *label(const char *s)
{
	size_t n = s ? strlen(s) : 0, j = 0;
	char *dst = malloc(2 * n + 1);
	if (!dst)
		return NULL;
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"') {
			dst[j++] = '\\';
			dst[j++] = *s;
		} else if (*s == '\n') {
			dst[j++] = '\\';
			dst[j++] = 'n';
		} else {
			dst[j++] = *s;
		}
	}
	dst[j] = '\0';
	return dst;
}

static double unix_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	int64_t t;
	if (cJSON_IsString(v) && time_parse_iso(v->valuestring, &t) == 0)
		return (double)t;
	return 0;
}

static void help(struct text *t, const char *name, const char *type, const char *what)
{
	text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, what, name, type);
}

char *status_prometheus(const cJSON *st)
{
	struct text t = { 0 };
	const cJSON *buf = cJSON_GetObjectItemCaseSensitive(st, "buffer");
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(st, "upload");
	help(&t, "labshare_up", "gauge", "1 while the daemon runs");
	text_add(&t, "labshare_up %d\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "running")) ? 1 : 0);
	help(&t, "labshare_buffer_last_seq", "counter", "seq of the newest sealed record");
	text_add(&t, "labshare_buffer_last_seq %.0f\n", num_or(buf, "last_seq", 0));
	help(&t, "labshare_buffer_acked_seq", "counter", "seq acknowledged by the platform");
	text_add(&t, "labshare_buffer_acked_seq %.0f\n", num_or(buf, "acked_seq", 0));
	help(&t, "labshare_buffer_pending_records", "gauge", "sealed records not yet acknowledged");
	text_add(&t, "labshare_buffer_pending_records %.0f\n", num_or(buf, "pending", 0));
	help(&t, "labshare_buffer_oldest_pending_age_seconds", "gauge", "age of the oldest unacknowledged record");
	text_add(&t, "labshare_buffer_oldest_pending_age_seconds %.0f\n", num_or(buf, "oldest_pending_age_s", 0));
	help(&t, "labshare_buffer_bytes", "gauge", "bytes the buffer uses");
	text_add(&t, "labshare_buffer_bytes %.0f\n", num_or(buf, "bytes", 0));
	help(&t, "labshare_buffer_max_bytes", "gauge", "buffer.max_mb in bytes");
	text_add(&t, "labshare_buffer_max_bytes %.0f\n", num_or(buf, "max_bytes", 0));
	help(&t, "labshare_buffer_full", "gauge", "1 while sources are paused because the buffer is full");
	text_add(&t, "labshare_buffer_full %d\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(buf, "full")) ? 1 : 0);
	help(&t, "labshare_upload_last_ok_timestamp_seconds", "gauge", "when the platform last acknowledged");
	text_add(&t, "labshare_upload_last_ok_timestamp_seconds %.0f\n", unix_of(up, "last_ok"));
	help(&t, "labshare_upload_failing", "gauge", "1 while the last upload attempt failed");
	text_add(&t, "labshare_upload_failing %d\n", cJSON_IsString(cJSON_GetObjectItemCaseSensitive(up, "last_error")) ? 1 : 0);
	help(&t, "labshare_upload_alarm", "gauge", "1 when upload stopped on an integrity alarm");
	text_add(&t, "labshare_upload_alarm %d\n", cJSON_IsString(cJSON_GetObjectItemCaseSensitive(up, "alarm")) ? 1 : 0);

	const cJSON *insts = cJSON_GetObjectItemCaseSensitive(st, "instruments");
	const cJSON *in;
	help(&t, "labshare_instrument_up", "gauge", "1 when the instrument's Modbus source was read at the last poll");
	cJSON_ArrayForEach(in, insts) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "modbus");
		if (!cJSON_IsObject(m))
			continue;
		char *id = label(str_or(in, "id", ""));
		const char *state = str_or(m, "state", "");
		if (!id)
			t.failed = true;
		else
			text_add(&t, "labshare_instrument_up{instrument=\"%s\"} %d\n", id, strcmp(state, "ok") == 0);
		free(id);
	}
	help(&t, "labshare_instrument_run_hours_total", "counter", "the run counter as last read, in hours");
	cJSON_ArrayForEach(in, insts) {
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "modbus"),
								 "run_hours_total");
		if (!cJSON_IsNumber(h))
			continue;
		char *id = label(str_or(in, "id", ""));
		if (!id)
			t.failed = true;
		else
			text_add(&t, "labshare_instrument_run_hours_total{instrument=\"%s\"} %.6f\n", id, h->valuedouble);
		free(id);
	}
	help(&t, "labshare_log_lines_total", "counter", "log lines read");
	help(&t, "labshare_log_malformed_total", "counter", "log lines refused as malformed");
	cJSON_ArrayForEach(in, insts) {
		char *id = label(str_or(in, "id", ""));
		const cJSON *l;
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(in, "logs")) {
			char *path = label(str_or(l, "path", ""));
			if (!id || !path)
				t.failed = true;
			text_add(&t, "labshare_log_lines_total{instrument=\"%s\",path=\"%s\"} %.0f\n", id, path,
				 num_or(l, "lines", 0));
			text_add(&t, "labshare_log_malformed_total{instrument=\"%s\",path=\"%s\"} %.0f\n", id, path,
				 num_or(l, "malformed", 0));
			free(path);
		}
		free(id);
	}
	if (t.failed) {
		free(t.p);
		return NULL;
	}
	return t.p;
}
