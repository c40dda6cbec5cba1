/* status.c — the status struct: laid out from the config, filled from the buffer, the sinks,
 * the drivers (through their status ops, by the daemon) and, beside a running daemon, from
 * the daemon's status.json. Printed by status_json.c, status_text.c and status_prom.c. */
#include "status.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "jsonc.h"
#include "logtail.h"
#include "metrics.h"
#include "source.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

struct status *status_new(const struct config *cfg)
{
	struct status *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->agent_id = strdup(cfg->agent.id);
	st->insts = calloc(cfg->n_instruments ? cfg->n_instruments : 1, sizeof(*st->insts));
	if (!st->agent_id || !st->insts)
		goto fail;
	st->n_insts = cfg->n_instruments;
	st->buffer.oldest_pending_age_s = -1;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		struct inst_status *in = &st->insts[i];
		in->id = strdup(ic->id);
		in->name = strdup(ic->name ? ic->name : ic->id);
		in->modbus.present = ic->modbus.present;
		in->modbus.power_scale = ic->modbus.power.present ? ic->modbus.power.scale : 0;
		in->modbus.energy_scale = ic->modbus.energy.present ? ic->modbus.energy.scale : 0;
		in->logs = calloc(ic->n_logs ? ic->n_logs : 1, sizeof(*in->logs));
		if (!in->id || !in->name || !in->logs)
			goto fail;
		in->n_logs = ic->n_logs;
		for (size_t j = 0; j < ic->n_logs; j++)
			if (!(in->logs[j].path = strdup(ic->logs[j].path)))
				goto fail;
	}
	return st;
fail:
	status_free(st);
	return NULL;
}

static void sink_clear(struct sink_status *s)
{
	free(s->last_error);
	free(s->alarm);
	memset(s, 0, sizeof(*s));
}

void status_free(struct status *st)
{
	if (!st)
		return;
	for (size_t i = 0; st->insts && i < st->n_insts; i++) {
		struct inst_status *in = &st->insts[i];
		free(in->id);
		free(in->name);
		free(in->modbus.last_error);
		free(in->modbus.bus);
		free(in->modbus.reading.error);
		for (size_t j = 0; in->logs && j < in->n_logs; j++) {
			free(in->logs[j].path);
			free(in->logs[j].file);
		}
		free(in->logs);
	}
	free(st->insts);
	free(st->agent_id);
	free(st->buffer.path);
	sink_clear(&st->upload);
	sink_clear(&st->nrii);
	nrii_status_clear(&st->nrii_parked);
	free(st);
}

static void sink_fill(struct sink_status *s, struct buffer *b, const char *sink, int64_t last_seq)
{
	struct sink_state ss = { 0 };
	if (b)
		buffer_sink_get(b, sink, &ss);
	s->acked_seq = ss.acked_seq;
	s->pending = last_seq > ss.acked_seq ? last_seq - ss.acked_seq : 0;
	s->last_ok = ss.last_ok > 0 ? ss.last_ok : 0;
	s->next_attempt = ss.next_attempt > 0 ? ss.next_attempt : 0;
	inst_status_set(&s->last_error, ss.last_error);
	inst_status_set(&s->alarm, ss.alarm);
	buffer_sink_clear(&ss);
}

void status_fill_buffer(struct status *st, const struct config *cfg, struct buffer *b, bool running,
			long pid)
{
	st->running = running;
	st->pid = running && pid > 0 ? pid : 0;
	struct chain_head head = { 0 };
	st->buffer.bytes = 0;
	st->buffer.full = false;
	/* One snapshot for all of it: the head, the cursors and the pending age agree. */
	bool began = b && buffer_read_begin(b) == 0;
	if (b) {
		buffer_head(b, &head);
		st->buffer.bytes = buffer_bytes(b);
		char *v = NULL;
		if (buffer_meta_get(b, "buffer_full", &v) == 0 && v)
			st->buffer.full = strcmp(v, "1") == 0 && running;
		free(v);
	}
	inst_status_set(&st->buffer.path, b ? buffer_path(b) : "");
	st->buffer.last_seq = head.seq;
	st->buffer.max_bytes = (int64_t)cfg->buffer.max_mb * 1024 * 1024;
	snprintf(st->buffer.head_hash, sizeof(st->buffer.head_hash), "%s", head.hash[0] ? head.hash :
		 "0000000000000000000000000000000000000000000000000000000000000000");
	/* The main sink's cursor is "the" acked_seq; with only NRII configured, that one. */
	sink_fill(&st->upload, b, cfg->platform.present ? "platform" : "nrii", head.seq);
	st->buffer.acked_seq = st->upload.acked_seq;
	st->buffer.pending = st->upload.pending;
	st->buffer.oldest_pending_age_s = -1;
	if (b && head.seq > st->upload.acked_seq) {
		struct stored_record r;
		if (buffer_get_record(b, st->upload.acked_seq + 1, &r) == 0 && r.sealed_at > 0)
			st->buffer.oldest_pending_age_s = clock_wall() - r.sealed_at;
		buffer_record_clear(&r);
	}
	st->has_nrii = cfg->nrii.present;
	if (st->has_nrii) {
		/* Its own cursor, and the records the platform refused (kept, listed). */
		sink_fill(&st->nrii, b, "nrii", head.seq);
		nrii_status_get(b, &st->nrii_parked);
	}
	if (began)
		buffer_read_end(b);
}

void status_begin_round(struct status *st)
{
	for (size_t i = 0; i < st->n_insts; i++) {
		st->insts[i].modbus.live = false;
		for (size_t j = 0; j < st->insts[i].n_logs; j++)
			st->insts[i].logs[j].live = false;
	}
}

/* Without a running daemon, a log's figures come from the cursor it last committed. */
static void log_from_cursor(struct log_status *l, struct buffer *b, const char *instrument)
{
	void *data = NULL;
	size_t len = 0;
	char *dkey = logtail_cursor_delta_key(instrument, l->path), *key = logtail_cursor_key(instrument, l->path);
	if (!b || !dkey || !key ||
	    (buffer_cursor_get(b, dkey, &data, &len) < 0 && buffer_cursor_get(b, key, &data, &len) < 0))
		data = NULL;
	logtail_cursor_status(data, len, l);
	free(dkey);
	free(key);
	free(data);
}

/* One snapshot around the per-instrument reads, on a reader of its own (never waiting for the
 * writer): a query outside one takes and drops the file's shared lock itself (two fcntl
 * calls), 10,000 times at 5,000 instruments. */
static bool read_begin(struct buffer *b)
{
	return b && buffer_read_begin(b) == 0; /* else each read takes a reader of its own */
}

static void read_end(struct buffer *b, bool began)
{
	if (began)
		buffer_read_end(b);
}

void status_fill_idle(struct status *st, struct buffer *b, struct metrics *mx)
{
	bool began = read_begin(b);
	for (size_t i = 0; i < st->n_insts; i++) {
		struct inst_status *in = &st->insts[i];
		struct modbus_status *m = &in->modbus;
		if (m->present && !m->live) {
			snprintf(m->state, sizeof(m->state), "%s", st->running ? "starting" : "stopped");
			m->last_ok = 0;
			/* The counter as last read, kept by metrics for the next start. */
			double h = mx ? metrics_run_hours_total(mx, in->id) : -1;
			m->has_run_hours = h >= 0;
			m->run_hours_total = h >= 0 ? h : 0;
		}
		for (size_t j = 0; j < in->n_logs; j++)
			if (!in->logs[j].live)
				log_from_cursor(&in->logs[j], b, in->id);
	}
	read_end(b, began);
}

void status_fill_repeats(struct status *st, struct buffer *b, struct metrics *mx)
{
	bool began = read_begin(mx ? b : NULL);
	for (size_t i = 0; i < st->n_insts; i++) {
		int64_t rep = mx ? metrics_sessions_repeated(mx, st->insts[i].id) : 0;
		st->insts[i].sessions_repeated = rep > 0 ? rep : 0;
	}
	read_end(b, began);
}

int status_read_live(struct status *st, const char *state_dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, STATUS_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* The whole file, however many instruments it lists: a snapshot cut short parses as
	 * nothing, and every instrument would show "starting". */
	size_t len = 0;
	char *text = fileio_read_all(fd, SIZE_MAX, &len);
	int e = errno;
	close(fd);
	if (!text)
		return e ? -e : -ENOMEM;
	struct jsonc_doc *doc = NULL;
	int r = jsonc_parse_plain(text, len, &doc);
	free(text);
	if (r < 0)
		return r;
	r = status_live_from_json(st, jsonc_root(doc));
	jsonc_free(doc);
	return r;
}

static cJSON *as_tree(const struct status *st)
{
	size_t len = 0;
	char *text = status_json(st, &len);
	cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
	free(text);
	return j;
}

cJSON *status_of_source(const struct config *cfg, const struct source_ops *ops, void *state)
{
	struct status *st = status_new(cfg);
	if (!st)
		return NULL;
	st->running = true;
	ops->status(state, st->insts, st->n_insts);
	cJSON *j = as_tree(st);
	status_free(st);
	return j;
}
