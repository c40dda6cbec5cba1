/* status_prom.c — the status in Prometheus text format, for node_exporter's textfile
 * collector ({state_dir}/metrics.prom, written by the daemon every second). */
#include "status.h"
#include "dynbuf.h"
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct text {
	struct dbuf b;              /* no cap: the status has none (README) */
	bool failed;
};

static void text_add(struct text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void text_add(struct text *t, const char *fmt, ...)
{
	if (t->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	int r = dbuf_vaddf(&t->b, fmt, ap);
	va_end(ap);
	if (r < 0)
		t->failed = true;
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

static void help(struct text *t, const char *name, const char *type, const char *what)
{
	text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, what, name, type);
}

char *status_prometheus(const struct status *st, size_t *len)
{
	struct text t = { .b = { .max = DBUF_NO_MAX } };
	const struct sink_status *up = &st->upload;
	help(&t, "labshare_up", "gauge", "1 while the daemon runs");
	text_add(&t, "labshare_up %d\n", st->running ? 1 : 0);
	help(&t, "labshare_buffer_last_seq", "counter", "seq of the newest sealed record");
	text_add(&t, "labshare_buffer_last_seq %lld\n", (long long)st->buffer.last_seq);
	help(&t, "labshare_buffer_acked_seq", "counter", "seq acknowledged by the platform");
	text_add(&t, "labshare_buffer_acked_seq %lld\n", (long long)st->buffer.acked_seq);
	help(&t, "labshare_buffer_pending_records", "gauge", "sealed records not yet acknowledged");
	text_add(&t, "labshare_buffer_pending_records %lld\n", (long long)st->buffer.pending);
	help(&t, "labshare_buffer_oldest_pending_age_seconds", "gauge", "age of the oldest unacknowledged record");
	text_add(&t, "labshare_buffer_oldest_pending_age_seconds %lld\n",
		 (long long)(st->buffer.oldest_pending_age_s > 0 ? st->buffer.oldest_pending_age_s : 0));
	help(&t, "labshare_buffer_bytes", "gauge", "bytes the buffer uses");
	text_add(&t, "labshare_buffer_bytes %lld\n", (long long)st->buffer.bytes);
	help(&t, "labshare_buffer_max_bytes", "gauge", "buffer.max_mb in bytes");
	text_add(&t, "labshare_buffer_max_bytes %lld\n", (long long)st->buffer.max_bytes);
	help(&t, "labshare_buffer_full", "gauge", "1 while sources are paused because the buffer is full");
	text_add(&t, "labshare_buffer_full %d\n", st->buffer.full ? 1 : 0);
	help(&t, "labshare_upload_last_ok_timestamp_seconds", "gauge", "when the platform last acknowledged");
	text_add(&t, "labshare_upload_last_ok_timestamp_seconds %lld\n", (long long)up->last_ok);
	help(&t, "labshare_upload_failing", "gauge", "1 while the last upload attempt failed");
	text_add(&t, "labshare_upload_failing %d\n", up->last_error ? 1 : 0);
	help(&t, "labshare_upload_alarm", "gauge", "1 when upload stopped on an integrity alarm");
	text_add(&t, "labshare_upload_alarm %d\n", up->alarm ? 1 : 0);

	/* Each instrument's label once, escaped, for all its series. */
	char **ids = calloc(st->n_insts ? st->n_insts : 1, sizeof(*ids));
	if (!ids)
		t.failed = true;
	for (size_t i = 0; ids && i < st->n_insts; i++)
		if (!(ids[i] = label(st->insts[i].id)))
			t.failed = true;
	help(&t, "labshare_instrument_up", "gauge", "1 when the instrument's Modbus source was read at the last poll");
	for (size_t i = 0; !t.failed && i < st->n_insts; i++)
		if (st->insts[i].modbus.present)
			text_add(&t, "labshare_instrument_up{instrument=\"%s\"} %d\n", ids[i],
				 strcmp(st->insts[i].modbus.state, "ok") == 0);
	help(&t, "labshare_instrument_run_hours_total", "counter", "the run counter as last read, in hours");
	for (size_t i = 0; !t.failed && i < st->n_insts; i++) {
		const struct modbus_status *m = &st->insts[i].modbus;
		if (m->present && m->has_run_hours)
			text_add(&t, "labshare_instrument_run_hours_total{instrument=\"%s\"} %.6f\n", ids[i],
				 m->run_hours_total);
	}
	help(&t, "labshare_log_lines_total", "counter", "log lines read");
	help(&t, "labshare_log_malformed_total", "counter", "log lines refused as malformed");
	for (size_t i = 0; !t.failed && i < st->n_insts; i++) {
		const struct inst_status *in = &st->insts[i];
		for (size_t j = 0; j < in->n_logs; j++) {
			char *path = label(in->logs[j].path);
			if (!path) {
				t.failed = true;
				break;
			}
			text_add(&t, "labshare_log_lines_total{instrument=\"%s\",path=\"%s\"} %lld\n", ids[i], path,
				 (long long)in->logs[j].lines);
			text_add(&t, "labshare_log_malformed_total{instrument=\"%s\",path=\"%s\"} %lld\n", ids[i],
				 path, (long long)in->logs[j].malformed);
			free(path);
		}
	}
	for (size_t i = 0; ids && i < st->n_insts; i++)
		free(ids[i]);
	free(ids);
	if (t.failed) {
		dbuf_free(&t.b);
		return NULL;
	}
	return dbuf_take(&t.b, len);
}
