/* logtail_batch.c — one round of the log tail: records read from each file into the batch
 * (sessions, events, malformed lines), committed to the core with the cursor in one
 * transaction, or rolled back to the committed cursor on failure. */
#include "logtail_priv.h"
#include "clock.h"
#include "encoding.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the batch ---- */

static struct obs *obs_add(struct tail *t)
{
	if (t->n_obs == t->cap_obs) {
		size_t c = t->cap_obs ? 2 * t->cap_obs : 64;
		struct obs *v = realloc(t->obs, c * sizeof(*v));
		if (!v)
			return NULL;
		t->obs = v;
		t->cap_obs = c;
	}
	struct obs *o = &t->obs[t->n_obs++];
	memset(o, 0, sizeof(*o));
	o->instrument = t->instrument;
	return o;
}

int lt_add_event(struct tail *t, const char *type, const char *detail)
{
	/* A file name may hold any bytes; nothing that is not UTF-8 may be sealed. */
	size_t len = strlen(detail), cap = 4 * len + 1;
	char *clean = malloc(cap);
	if (!clean)
		return -ENOMEM;
	size_t n = enc_printable(detail, len, clean, cap, NULL);
	const char *d = lp_arena_strndup(t->arena, clean, n);
	free(clean);
	struct obs *o = d ? obs_add(t) : NULL;
	if (!o)
		return -ENOMEM;
	o->type = OBS_EVENT;
	o->u.event.at = clock_wall();
	o->u.event.type = type;
	o->u.event.detail = d;
	return 0;
}

static const char *arena_dup(struct tail *t, const char *s, bool *oom)
{
	if (!s)
		return NULL;
	const char *d = lp_arena_strndup(t->arena, s, strlen(s));
	if (!d)
		*oom = true;
	return d;
}

/* Sessions from the pairing of an events log borrow its strings: copy them into the batch. */
static int emit_session(void *arg, const struct obs_session *s)
{
	struct tail *t = arg;
	bool oom = false;
	struct obs_session c = *s;
	c.user = arena_dup(t, s->user, &oom);
	c.org = arena_dup(t, s->org, &oom);
	c.way = arena_dup(t, s->way, &oom);
	c.fee = arena_dup(t, s->fee, &oom);
	c.project = arena_dup(t, s->project, &oom);
	struct obs *o = oom ? NULL : obs_add(t);
	if (!o)
		return -ENOMEM;
	o->type = OBS_SESSION;
	o->u.session = c;
	return 0;
}

static bool warn_allowed(struct tail *t)
{
	int64_t now = clock_mono_ms();
	if (now - t->warn_window_ms >= 60000) {
		if (t->suppressed)
			log_warnx("log \"%s\": %u more malformed lines in the last minute were not logged",
				  t->cfg->path, t->suppressed);
		t->warn_window_ms = now;
		t->warned = t->suppressed = 0;
	}
	if (t->warned < WARN_PER_MIN) {
		t->warned++;
		return true;
	}
	t->suppressed++;
	return false;
}

static int add_malformed(struct tail *t, const struct tfile *f, int64_t line, const char *why,
			 const char *rec, size_t len)
{
	/* The sealed event names the place and the reason only: the line may hold anything (a
	 * password typed into a user field, a secret behind a link) and must not leave the lab.
	 * The journal stays in the lab: it shows the text, cut short. */
	char detail[4096 + 256];
	snprintf(detail, sizeof(detail), "%s:%" PRId64 ": %s", f->path, line, why);
	t->malformed++;
	if (warn_allowed(t)) {
		const char *text = lp_text(t->parser, rec, len, t->arena);
		log_warnx("log \"%s\":%" PRId64 ": %s, line skipped: %s", f->path, line, why,
			  text ? text : "");
	}
	return lt_add_event(t, "log_malformed", detail);
}


static void batch_reset(struct tail *t)
{
	t->n_obs = 0;
	t->batch_bytes = 0;
	lp_arena_reset(t->arena);
}


/* Something failed before the batch was committed: back to the committed cursor, so the same
 * lines are read again on the next try and nothing is counted twice. */
static void roll_back(struct tail *t, int r)
{
	batch_reset(t);
	if (lt_state_load(t, t->committed_base, t->committed) < 0) {
		log_errx("log \"%s\": cannot restore the committed cursor: log stopped", t->cfg->path);
		t->broken = true;
	}
	t->fails++;
	int64_t wait = 250LL << (t->fails < 8 ? t->fails : 7);
	if (wait > RETRY_MAX_MS)
		wait = RETRY_MAX_MS;
	t->retry_at_ms = clock_mono_ms() + wait;
	/* A full buffer is logged by the core, once. */
	if (r != -ENOSPC)
		log_warnx("log \"%s\": %s, retrying in %" PRId64 " ms", t->cfg->path, strerror(-r), wait);
}

/* The core refuses a batch whole when one session in it breaks SPEC §3's rules. The parser
 * checks every line and every pairing first, so nothing known reaches this; it is here so
 * that a gap between the two checks (a rule added to one, a wall clock stepped back between
 * parsing and committing) seals a malformed event instead of stalling the log for good. */
static int refuse_implausible(struct tail *t)
{
	int64_t now = clock_wall();
	for (size_t i = 0; i < t->n_obs; i++) {
		struct obs *o = &t->obs[i];
		const char *why = NULL;
		if (o->type != OBS_SESSION ||
		    core_check_session(t->lt->core, t->instrument, &o->u.session, now, &why) == 0)
			continue;
		char detail[4096 + 256];
		snprintf(detail, sizeof(detail), "%s: session refused: %s", t->cfg->path, why);
		log_warnx("log \"%s\": a session was refused: %s", t->cfg->path, why);
		const char *d = lp_arena_strndup(t->arena, detail, strlen(detail));
		if (!d)
			return -ENOMEM;
		t->malformed++;
		o->type = OBS_EVENT;
		o->u.event.at = now;
		o->u.event.type = "log_malformed";
		o->u.event.detail = d;
	}
	return 0;
}

int lt_commit(struct tail *t)
{
	/* Lines that gave nothing still move the cursor: a restart must not scan them again. */
	if (t->n_obs == 0 && !t->dirty && t->batch_bytes == 0)
		return 0;
	size_t len = 0;
	int r = refuse_implausible(t);
	if (r < 0)
		return r;
	char *cur = lt_cursor_text(t, &len);
	r = cur ? core_submit(t->lt->core, t->obs, t->n_obs, t->dkey, cur, len) : -ENOMEM;
	if (r < 0) {
		free(cur);
		return r;
	}
	batch_reset(t);
	atomic_store(&t->lt->beat_ms, clock_mono_ms());
	free(t->committed);
	t->committed = cur;
	t->dirty = false;
	t->fails = 0;
	lt_files_free(t->dropped, t->n_dropped);
	t->dropped = NULL;
	t->n_dropped = t->cap_dropped = 0;
	lt_cursor_rebase(t);
	lt_publish(t);
	return 0;
}


/* ---- reading ---- */

int lt_record(struct tail *t, struct tfile *f, const char *rec, const struct lp_frame *fr,
	      int64_t at)
{
	int64_t line = f->line + 1;
	if (fr->bad_quote)
		return add_malformed(t, f, line, "quote not closed within 16 lines", rec, fr->len);
	struct lp_result res;
	lp_parse(t->parser, &f->cols, rec, fr->len, t->arena, &res);
	switch (res.kind) {
	case LP_SKIP:
		return 0;
	case LP_HEADER:
		f->hdr_end = at + (int64_t)fr->consumed;
		f->hdr_hash = lt_rec_hash(rec, fr->len);
		if (res.why[0] && !f->header_warned) {
			log_warnx("log \"%s\": %s", f->path, res.why);
			f->header_warned = true;
		}
		return 0;
	case LP_SESSION: {
		struct obs *o = obs_add(t);
		if (!o)
			return -ENOMEM;
		o->type = OBS_SESSION;
		o->u.session = res.s;
		return 0;
	}
	case LP_START:
	case LP_END: {
		if (!t->pairs)
			return 0;
		char why[192];
		int r = lp_pairs_feed(t->pairs, &res, emit_session, t, why, sizeof(why));
		return r == 1 ? add_malformed(t, f, line, why, rec, fr->len) : r;
	}
	case LP_MALFORMED:
		return add_malformed(t, f, line, res.why, rec, fr->len);
	}
	return 0;
}

static bool batch_full(const struct tail *t)
{
	return t->n_obs >= logtail_tuning.batch_obs || t->batch_bytes >= logtail_tuning.batch_bytes;
}

/* Read f from its offset to its end (final: its last line needs no newline: the file is done).
 * A negative return means the batch failed: the caller rolls back (and f goes with it). */
static int read_file(struct tail *t, struct tfile *f, bool final)
{
	char *buf = t->lt->rbuf;
	int64_t base = f->off;
	size_t len = 0, pos = 0;
	bool eof = false, csv = t->cfg->format == LOG_FMT_CSV;
	int r;

	while (!atomic_load(&t->lt->stopping)) {
		struct lp_frame fr;
		if (f->skip_nl) {
			const char *nl = memchr(buf + pos, '\n', len - pos);
			size_t k = nl ? (size_t)(nl - (buf + pos)) + 1 : len - pos;
			f->sum = lt_hash_more(f->sum, buf + pos, k);
			pos += k;
			t->batch_bytes += k;
			f->off = base + (int64_t)pos;
			if (nl || (eof && final)) {
				f->skip_nl = false;
				f->line++;
				t->lines++;
				continue;
			}
		} else if (pos < len && lp_frame(csv, buf + pos, len - pos, eof && final, &fr)) {
			int64_t at = base + (int64_t)pos;
			if ((r = lt_record(t, f, buf + pos, &fr, at)) < 0)
				return r;
			lt_ring_push(f, lt_rec_hash(buf + pos, fr.len));
			f->sum = lt_hash_more(f->sum, buf + pos, fr.consumed);
			pos += fr.consumed;
			f->off = base + (int64_t)pos;
			f->line += fr.lines;
			t->lines += fr.lines;
			t->batch_bytes += fr.consumed;
			if (batch_full(t) && (r = lt_commit(t)) < 0)
				return r;
			continue;
		} else if (len - pos >= LP_LINE_MAX) {
			/* No line end within the cap: the line is cut, the rest skipped to its end. */
			char why[64];
			snprintf(why, sizeof(why), "line longer than %d bytes, cut", LP_LINE_MAX);
			if ((r = add_malformed(t, f, f->line + 1, why, buf + pos, LP_LINE_MAX)) < 0)
				return r;
			f->sum = lt_hash_more(f->sum, buf + pos, LP_LINE_MAX);
			pos += LP_LINE_MAX;
			t->batch_bytes += LP_LINE_MAX;
			f->off = base + (int64_t)pos;
			f->skip_nl = true;
			f->ring_n = 0; /* a cut line breaks the sequence: no tail to recognise */
			continue;
		}
		if (eof)
			break;
		if (pos > 0) {
			memmove(buf, buf + pos, len - pos);
			base += (int64_t)pos;
			len -= pos;
			pos = 0;
		}
		ssize_t n = pread(f->fd, buf + len, READ_BUF - len, (off_t)(base + (int64_t)len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (!f->read_err_logged)
				log_warn("log \"%s\": cannot read, retrying", f->path);
			f->read_err_logged = true;
			return 0; /* what was read so far is good; the rest waits for the next round */
		}
		f->read_err_logged = false;
		if (n == 0)
			eof = true;
		len += (size_t)n;
	}
	return 0;
}

static int by_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int by_reading_order(const void *a, const void *b)
{
	const struct tfile *x = *(const struct tfile *const *)a, *y = *(const struct tfile *const *)b;
	/* What a rotated file still holds comes before the new file's lines (a logout written
	 * just before the rotation pairs with its login); then oldest first. */
	if (x->gone != y->gone)
		return x->gone ? -1 : 1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

void lt_poll_tail(struct tail *t)
{
	if (t->broken || clock_mono_ms() < t->retry_at_ms)
		return;
	if (core_paused(t->lt->core)) {
		/* Logs stay on disk while the buffer is full; nothing is read past the cursor. */
		t->paused = true;
		lt_publish(t);
		return;
	}
	t->paused = false;
	int r = lt_look(t);
	for (size_t i = 0; i < t->n_files && r >= 0; i++)
		r = lt_check_file(t, t->files[i]);
	if (r < 0)
		goto fail;

	/* Only the files with something to read are ordered: most of a large glob has nothing. */
	int64_t now = clock_mono_ms();
	size_t n = 0;
	struct tfile **order = NULL;
	for (size_t i = 0; i < t->n_files; i++) {
		struct tfile *f = t->files[i];
		bool final = f->gone && now - f->quiet_since_ms >= logtail_tuning.rotate_wait_ms;
		if (!(f->fd >= 0 && (f->size > f->off || f->skip_nl || final)))
			continue;
		if (!order && !(order = malloc(t->n_files * sizeof(*order)))) {
			r = -ENOMEM;
			goto fail;
		}
		order[n++] = f;
	}
	if (n > 1)
		qsort(order, n, sizeof(*order), by_reading_order);
	for (size_t i = 0; i < n && !atomic_load(&t->lt->stopping); i++) {
		struct tfile *f = order[i];
		bool final = f->gone && now - f->quiet_since_ms >= logtail_tuning.rotate_wait_ms;
		if (f->fd >= 0 && (f->size > f->off || f->skip_nl || final)) {
			if (f->resync && !lt_resync(t, f, final))
				continue;
			if ((r = read_file(t, f, final)) < 0)
				break;
			/* Once a CSV header is known the identity covers the data after it. */
			if (!lt_fp_complete(t, f) && f->size > (int64_t)f->fp_len)
				lt_fingerprint(t, f);
		}
	}
	free(order);
	if (r < 0)
		goto fail;
	if (atomic_load(&t->lt->stopping))
		goto out;
	if (t->pairs && (r = lp_pairs_expire(t->pairs, clock_wall(), emit_session, t)) < 0)
		goto fail;

	size_t open = 0, missing = 0;
	int64_t wall = clock_wall();
	for (size_t i = 0; i < t->n_files; i++) {
		open += t->files[i]->fd >= 0;
		missing += t->files[i]->missing_since != 0;
	}
	/* Past OPEN_MAX descriptors, those of the files quiet the longest are closed first: a
	 * file being written to keeps its own (reopening costs an open, a stat and a read). */
	int64_t close_upto = INT64_MIN;
	if (open > OPEN_MAX) {
		int64_t *q = malloc(open * sizeof(*q));
		size_t m = 0;
		for (size_t i = 0; q && i < t->n_files; i++)
			if (t->files[i]->fd >= 0 && !t->files[i]->gone)
				q[m++] = t->files[i]->quiet_since_ms;
		if (q && m > OPEN_MAX) {
			qsort(q, m, sizeof(*q), by_i64);
			close_upto = q[m - OPEN_MAX - 1];
		} else if (!q) {
			close_upto = INT64_MAX; /* out of memory: in the order found, as before */
		}
		free(q);
	}
	for (size_t i = 0; i < t->n_files;) {
		struct tfile *f = t->files[i];
		int64_t quiet = now - f->quiet_since_ms;
		if (f->gone && quiet >= logtail_tuning.rotate_wait_ms) {
			log_info("log \"%s\" done after %" PRId64 " lines", f->path, f->line);
			close(f->fd);
			f->fd = -1;
			f->gone = false;
			f->missing_since = wall;
			t->dirty = true;
			missing++;
			i++;
			continue;
		}
		/* Files in t->files are in the order they were found: the oldest go first. */
		if (f->missing_since && (wall - f->missing_since > MISSING_KEEP_S || missing > MISSING_MAX)) {
			lt_drop(t, i);
			missing--;
			continue;
		}
		if (!f->gone && f->fd >= 0 && f->off >= f->size &&
		    (quiet >= logtail_tuning.idle_close_ms ||
		     (open > OPEN_MAX && f->quiet_since_ms <= close_upto))) {
			close(f->fd);
			f->fd = -1;
			open--;
		}
		i++;
	}
out:
	if ((r = lt_commit(t)) == 0)
		return;
fail:
	roll_back(t, r);
	lt_publish(t);
}
