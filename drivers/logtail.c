/* logtail.c — the log source driver: one thread polls every configured log path or glob,
 * follows files by device, inode and a fingerprint of their first bytes (rename, copytruncate,
 * truncation, inode reuse), frames and parses their records (drivers/logparse.c) and hands each
 * batch to the core with a cursor that says where every file was read to, in one transaction. */
#include "logtail.h"
#include "clock.h"
#include "config.h"
#include "submit.h"
#include "encoding.h"
#include "logparse.h"
#include "ownfiles.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CURSOR_VERSION 1
#define FP_BYTES 256                        /* a file is known by its first bytes of data */
#define FP_MAX (LP_LINE_MAX + FP_BYTES)     /* … counted after a CSV header, which is the same in every file */
#define READ_BUF (4 * LP_LINE_MAX)
#define OPEN_MAX 128                        /* descriptors kept open per log beyond rotation */
#define MISSING_MAX 256                     /* vanished files remembered per log … */
#define MISSING_KEEP_S (31 * 86400)         /* … for this long, in case they come back */
#define WARN_PER_MIN 10                     /* malformed lines logged per log and minute */
#define RETRY_MAX_MS 30000
#define RING_MAX 32                         /* records remembered per file for resync (< 64) */

struct logtail_tuning logtail_tuning = {
	.poll_ms = 250,
	.rotate_wait_ms = 5000,
	.idle_close_ms = 300000,
	.batch_obs = 1000,
	.batch_bytes = 1 << 20,
};

/* One file followed: where it was read to and how it is recognised. */
struct tfile {
	char *path;                 /* where it was last seen */
	uint64_t dev, ino;
	uint64_t fp;                /* hash of the first fp_len bytes */
	uint32_t fp_len;
	uint64_t sum;               /* hash of every byte before off: finds copies of it */
	int64_t off;                /* the next byte to read: always a record boundary */
	int64_t line;               /* physical lines before off */
	int64_t hdr_end;            /* csv: where the header row ends (0: not read yet) */
	struct lp_csv_cols cols;
	bool skip_nl;               /* inside an over-long line that was cut: skip to its end */
	bool gone;                  /* no configured path leads here any more: drain it */
	int64_t missing_since;      /* wall time it vanished (0: present): remembered, not read, so
				     * that a share coming back (maybe on another device) isn't
				     * read again from its first byte */
	int fd;                     /* -1: closed (reopened by path when it changes) */
	int64_t size, mtime_ns;     /* at the last look; size -1: not looked at since loading */
	int64_t quiet_since_ms;     /* last change seen (clock_mono_ms) */
	uint64_t order;             /* when it was found: ties in reading order */
	/* scratch of one round */
	bool seen;
	int64_t st_size, st_mtime_ns;
	bool header_warned;
	bool read_err_logged;
	/* In memory only: the last records read, to recognise a file rewritten in place that
	 * keeps its last lines (lost on a restart; the core's de-duplication covers that). */
	uint64_t ring[RING_MAX];    /* record hashes, ring[(ring_next - 1) % RING_MAX] the newest */
	uint32_t ring_n, ring_next;
	uint64_t hdr_hash;          /* csv: the header record's hash (0: none seen) */
	bool resync;                /* restarted from byte 0: skip what is the old tail first */
};

struct logtail;

/* One configured log of one instrument, with every file its path or glob leads to. */
struct tail {
	struct logtail *lt;
	const char *instrument;
	const struct log_cfg *cfg;
	char *key;
	bool is_glob, broken;
	struct lp_parser *parser;
	struct lp_pairs *pairs;     /* events logs: open logins */
	struct tfile **files;
	size_t n_files, cap_files;
	struct tfile **index;       /* files by device and inode during discover() */
	size_t n_index, cap_index;
	struct tfile **dropped;     /* forgotten in this batch: closed once it is committed */
	size_t n_dropped, cap_dropped;
	uint64_t next_order;
	int64_t lines, malformed;   /* totals since the log was first followed */
	char *committed;            /* the cursor as last committed; NULL: none yet */
	bool dirty;                 /* state changed beyond what the batch's records show */

	/* the batch being built */
	struct obs *obs;
	size_t n_obs, cap_obs;
	struct lp_arena *arena;
	size_t batch_bytes;

	int64_t retry_at_ms;
	int fails;
	int64_t warn_window_ms;
	unsigned warned, suppressed;
	char *open_err_path;        /* the last path that could not be opened, logged once */
	char **refused;             /* paths refused (a link, a secret): each logged once */
	size_t n_refused, cap_refused;
	bool paused;
	bool glob_err_logged, missing_logged;

	/* what status() shows, under lt->mu */
	char *st_file;
	int64_t st_off, st_lines, st_malformed;
	size_t st_files, st_open;
	bool st_paused, st_broken;
};

struct logtail {
	struct core *core;
	struct tail **tails;
	size_t n_tails;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;         /* stop flag and status */
	pthread_cond_t cv;
	bool stop;
	atomic_bool stopping;       /* looked at between batches of a long read */
	atomic_uint_fast64_t rounds;
	_Atomic int64_t beat_ms;    /* monotonic: a round ended or a batch was committed */
	char *rbuf;
	unsigned char *fpbuf;
	struct own_files *own;      /* the agent's secrets and state: never read as a log */
};

/* ---- small helpers ---- */

#define HASH_INIT 0xcbf29ce484222325ULL

/* FNV-1a: not against an adversary, only to tell files apart; byte by byte, so a hash
 * continued over pieces equals the hash of the whole. */
static uint64_t hash_more(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fp_hash(const unsigned char *p, size_t n)
{
	return hash_more(HASH_INIT, p, n);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The first n bytes of the file into lt->fpbuf; returns how many there were, or -errno. */
static ssize_t read_head(struct logtail *lt, int fd, size_t n)
{
	size_t got = 0;
	if (n > FP_MAX)
		n = FP_MAX;
	while (got < n) {
		ssize_t r = pread(fd, lt->fpbuf + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* How many first bytes identify this file: after a CSV header, which every file shares. */
static uint32_t fp_target(const struct tail *t, const struct tfile *f)
{
	int64_t n = FP_BYTES;
	if (t->cfg->format == LOG_FMT_CSV && f->hdr_end > 0)
		n += f->hdr_end;
	return (uint32_t)(n > FP_MAX ? FP_MAX : n);
}

static bool fp_complete(const struct tail *t, const struct tfile *f)
{
	return f->fp_len >= FP_BYTES && f->fp_len >= fp_target(t, f);
}

static void file_free(struct tfile *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f);
}

static struct tfile *file_new(const char *path)
{
	struct tfile *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->path = strdup(path);
	if (!f->path) {
		free(f);
		return NULL;
	}
	f->fd = -1;
	f->size = -1;
	f->sum = HASH_INIT;
	lp_csv_cols_reset(&f->cols);
	return f;
}

static int push(void **arr, size_t *n, size_t *cap, void *item)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 8;
		void **v = realloc(*arr, c * sizeof(*v));
		if (!v)
			return -ENOMEM;
		*arr = v;
		*cap = c;
	}
	((void **)*arr)[(*n)++] = item;
	return 0;
}

static int by_inode(const void *a, const void *b)
{
	const struct tfile *x = *(const struct tfile *const *)a, *y = *(const struct tfile *const *)b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* The files by device and inode, sorted once per round: a glob of tens of thousands of files
 * must not cost a scan of all of them per match. */
static int index_build(struct tail *t)
{
	if (t->cap_index < t->n_files) {
		struct tfile **v = realloc(t->index, t->n_files * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->index = v;
		t->cap_index = t->n_files;
	}
	if (t->n_files)
		memcpy(t->index, t->files, t->n_files * sizeof(*t->index));
	t->n_index = t->n_files;
	if (t->n_index) /* qsort(NULL, 0, …) is undefined: UBSan stops the agent */
		qsort(t->index, t->n_index, sizeof(*t->index), by_inode);
	return 0;
}

/* Valid between index_build and the next change of t->files: files added since the index was
 * built (t->files is only appended to meanwhile) are looked at one by one. */
static struct tfile *find_inode(struct tail *t, uint64_t dev, uint64_t ino)
{
	struct tfile key = { .dev = dev, .ino = ino }, *kp = &key;
	struct tfile **hit = t->n_index ? bsearch(&kp, t->index, t->n_index, sizeof(*t->index), by_inode) : NULL;
	if (hit)
		return *hit;
	for (size_t i = t->n_index; i < t->n_files; i++)
		if (t->files[i]->dev == dev && t->files[i]->ino == ino)
			return t->files[i];
	return NULL;
}

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

static int add_event(struct tail *t, const char *type, const char *detail)
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
	return add_event(t, "log_malformed", detail);
}

/* ---- the cursor ---- */

static cJSON *file_json(const struct tfile *f)
{
	char num[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "path", f->path);
	snprintf(num, sizeof(num), "%" PRIu64, f->dev);
	cJSON_AddStringToObject(o, "dev", num); /* strings: a 64-bit inode does not fit a double */
	snprintf(num, sizeof(num), "%" PRIu64, f->ino);
	cJSON_AddStringToObject(o, "ino", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->fp);
	cJSON_AddStringToObject(o, "fp", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->sum);
	cJSON_AddStringToObject(o, "sum", num);
	cJSON_AddNumberToObject(o, "fp_len", f->fp_len);
	cJSON_AddNumberToObject(o, "off", (double)f->off);
	cJSON_AddNumberToObject(o, "line", (double)f->line);
	if (f->cols.have_header) {
		cJSON_AddNumberToObject(o, "hdr_end", (double)f->hdr_end);
		cJSON *cols = cJSON_AddArrayToObject(o, "cols");
		for (int i = 0; i < SF__COUNT; i++)
			cJSON_AddItemToArray(cols, cJSON_CreateNumber(f->cols.col[i]));
	}
	if (f->skip_nl)
		cJSON_AddTrueToObject(o, "skip_nl");
	if (f->gone)
		cJSON_AddTrueToObject(o, "gone");
	if (f->missing_since)
		cJSON_AddNumberToObject(o, "missing_since", (double)f->missing_since);
	return o;
}

static char *cursor_text(struct tail *t, size_t *len)
{
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON_AddNumberToObject(root, "v", CURSOR_VERSION);
	cJSON_AddNumberToObject(root, "lines", (double)t->lines);
	cJSON_AddNumberToObject(root, "malformed", (double)t->malformed);
	cJSON *files = cJSON_AddArrayToObject(root, "files");
	for (size_t i = 0; i < t->n_files; i++)
		cJSON_AddItemToArray(files, file_json(t->files[i]));
	if (t->pairs)
		cJSON_AddItemToObject(root, "open", lp_pairs_to_json(t->pairs));
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text)
		*len = strlen(text);
	return text;
}

static bool u64_of(const cJSON *o, const char *k, int base, uint64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(it) || !*it->valuestring)
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(it->valuestring, &end, base);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static bool num_of(const cJSON *o, const char *k, int64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	/* Range before the cast: "1e400" parses as inf, and casting it is undefined. */
	if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 9e15))
		return false;
	*out = (int64_t)it->valuedouble;
	return true;
}

static struct tfile *file_from_json(const cJSON *o)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	if (!cJSON_IsString(path))
		return NULL;
	struct tfile *f = file_new(path->valuestring);
	int64_t fp_len = 0;
	if (!f || !u64_of(o, "dev", 10, &f->dev) || !u64_of(o, "ino", 10, &f->ino) ||
	    !u64_of(o, "fp", 16, &f->fp) || !u64_of(o, "sum", 16, &f->sum) || !num_of(o, "fp_len", &fp_len) || fp_len > FP_MAX ||
	    !num_of(o, "off", &f->off) || !num_of(o, "line", &f->line))
		goto fail;
	f->fp_len = (uint32_t)fp_len;
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(o, "cols");
	if (cols) {
		if (!cJSON_IsArray(cols) || cJSON_GetArraySize(cols) != SF__COUNT ||
		    !num_of(o, "hdr_end", &f->hdr_end))
			goto fail;
		f->cols.have_header = true;
		for (int i = 0; i < SF__COUNT; i++) {
			const cJSON *c = cJSON_GetArrayItem(cols, i);
			if (!cJSON_IsNumber(c) || c->valueint < -1 || c->valueint >= LP_CSV_MAX_COLS)
				goto fail;
			f->cols.col[i] = c->valueint;
		}
	}
	f->skip_nl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "skip_nl"));
	f->gone = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "gone"));
	if (cJSON_GetObjectItemCaseSensitive(o, "missing_since") && !num_of(o, "missing_since", &f->missing_since))
		goto fail;
	return f;
fail:
	file_free(f);
	return NULL;
}

static void files_free(struct tfile **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		file_free(v[i]);
	free(v);
}

/* Replace the in-memory state with the committed cursor text (NULL: a fresh start). Open
 * descriptors of files that are still followed are kept: an inode can't be reused while we
 * hold it open, so device and inode are enough to match them. */
static int state_load(struct tail *t, const char *text)
{
	struct tfile **files = NULL;
	size_t n = 0, cap = 0;
	int64_t lines = 0, malformed = 0;
	cJSON *root = NULL;
	const cJSON *open = NULL;

	if (text) {
		root = cJSON_Parse(text);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "files");
		if (!cJSON_IsNumber(v) || v->valueint != CURSOR_VERSION || !cJSON_IsArray(arr) ||
		    !num_of(root, "lines", &lines) || !num_of(root, "malformed", &malformed))
			goto bad;
		const cJSON *e;
		cJSON_ArrayForEach(e, arr) {
			struct tfile *f = file_from_json(e);
			if (!f)
				goto bad;
			if (push((void **)&files, &n, &cap, f) < 0) {
				file_free(f);
				goto bad;
			}
		}
		open = cJSON_GetObjectItemCaseSensitive(root, "open");
	}
	if (t->pairs && lp_pairs_from_json(t->pairs, open) < 0)
		goto bad;
	cJSON_Delete(root);

	for (size_t k = 0; k < 2; k++) {
		struct tfile **old = k ? t->dropped : t->files;
		size_t n_old = k ? t->n_dropped : t->n_files;
		for (size_t i = 0; i < n_old; i++) {
			struct tfile *o = old[i];
			for (size_t j = 0; j < n && o->fd >= 0; j++) {
				struct tfile *f = files[j];
				if (f->fd < 0 && f->dev == o->dev && f->ino == o->ino) {
					f->fd = o->fd;
					o->fd = -1;
				}
			}
		}
		files_free(old, n_old);
	}
	for (size_t j = 0; j < n; j++)
		files[j]->order = j;
	t->files = files;
	t->n_files = n;
	t->cap_files = cap;
	t->dropped = NULL;
	t->n_dropped = t->cap_dropped = 0;
	t->next_order = n;
	t->lines = lines;
	t->malformed = malformed;
	t->dirty = false;
	return 0;
bad:
	cJSON_Delete(root);
	files_free(files, n);
	return -EINVAL;
}

static void batch_reset(struct tail *t)
{
	t->n_obs = 0;
	t->batch_bytes = 0;
	lp_arena_reset(t->arena);
}

static void publish(struct tail *t);

/* Something failed before the batch was committed: back to the committed cursor, so the same
 * lines are read again on the next try and nothing is counted twice. */
static void roll_back(struct tail *t, int r)
{
	batch_reset(t);
	if (state_load(t, t->committed) < 0) {
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
	const struct config *cfg = core_config(t->lt->core);
	int64_t now = clock_wall();
	for (size_t i = 0; i < t->n_obs; i++) {
		struct obs *o = &t->obs[i];
		const char *why = NULL;
		if (o->type != OBS_SESSION ||
		    core_session_check(cfg, t->instrument, &o->u.session, now, &why) == 0)
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

static int commit(struct tail *t)
{
	/* Lines that gave nothing still move the cursor: a restart must not scan them again. */
	if (t->n_obs == 0 && !t->dirty && t->batch_bytes == 0)
		return 0;
	size_t len = 0;
	int r = refuse_implausible(t);
	if (r < 0)
		return r;
	char *cur = cursor_text(t, &len);
	r = cur ? core_submit(t->lt->core, t->obs, t->n_obs, t->key, cur, len) : -ENOMEM;
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
	files_free(t->dropped, t->n_dropped);
	t->dropped = NULL;
	t->n_dropped = t->cap_dropped = 0;
	publish(t);
	return 0;
}

/* ---- following files ---- */

static int rotated(struct tail *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rotated(struct tail *t, const char *fmt, ...)
{
	char detail[4096 + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_info("log %s", detail);
	t->dirty = true;
	return add_event(t, "log_rotated", detail);
}

static void fingerprint(struct tail *t, struct tfile *f)
{
	ssize_t n = read_head(t->lt, f->fd, fp_target(t, f));
	if (n < 0)
		return;
	f->fp = fp_hash(t->lt->fpbuf, (size_t)n);
	f->fp_len = (uint32_t)n;
}

static bool fp_matches(struct tail *t, int fd, uint64_t fp, uint32_t fp_len)
{
	ssize_t n = read_head(t->lt, fd, fp_len);
	return n == (ssize_t)fp_len && fp_hash(t->lt->fpbuf, fp_len) == fp;
}

/* Start the file again from its first byte (truncated, or a new file behind the same inode). */
static int restart_file(struct tail *t, struct tfile *f, const char *why)
{
	int r = rotated(t, "\"%s\" %s after %" PRId64 " bytes: reading it from the start", f->path,
			why, f->off);
	f->off = 0;
	f->line = 0;
	f->sum = HASH_INIT;
	f->hdr_end = 0;
	f->skip_nl = false;
	lp_csv_cols_reset(&f->cols);
	f->resync = f->ring_n > 0;
	fingerprint(t, f);
	return r;
}

static uint64_t rec_hash(const char *rec, size_t len)
{
	uint64_t h = hash_more(HASH_INIT, rec, len);
	return hash_more(h, &len, sizeof(len)) | 1; /* never 0: 0 is "no header" */
}

static void ring_push(struct tfile *f, uint64_t h)
{
	f->ring[f->ring_next] = h;
	f->ring_next = (f->ring_next + 1) % RING_MAX;
	if (f->ring_n < RING_MAX)
		f->ring_n++;
}

/* The k-th of the remembered records, oldest first. */
static uint64_t ring_at(const struct tfile *f, uint32_t k)
{
	return f->ring[(f->ring_next + RING_MAX - f->ring_n + k) % RING_MAX];
}

/* A file restarted from byte 0 (truncated or rewritten in place) whose first records are the
 * last ones read from it before (a log trimmed to its tail, an editor's save) goes on after
 * them instead of reading them again. Returns true once decided (the file may be read), false
 * while the bytes so far can't tell yet. */
static bool resync(struct tail *t, struct tfile *f, bool final)
{
	char *buf = t->lt->rbuf;
	size_t n = 0;
	while (n < READ_BUF) {
		ssize_t r = pread(f->fd, buf + n, READ_BUF - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	bool csv = t->cfg->format == LOG_FMT_CSV, eof = final && n < READ_BUF;
	struct lp_frame fr;
	size_t pos = 0, hdr = 0, best = 0;
	int64_t lines = 0, best_lines = 0;
	uint32_t k = 0, rn = f->ring_n;
	uint64_t alive = rn >= 64 ? ~0ULL : (1ULL << rn) - 1; /* candidate start p: old tail from ring p */
	/* A CSV file starts with its header again: matched apart, it is not part of the tail. */
	if (csv && f->hdr_hash && lp_frame(true, buf, n, eof, &fr) &&
	    rec_hash(buf, fr.len) == f->hdr_hash) {
		pos = hdr = fr.consumed;
		lines = fr.lines;
	}
	while (alive && pos < n && lp_frame(csv, buf + pos, n - pos, eof, &fr)) {
		uint64_t h = rec_hash(buf + pos, fr.len), next = 0;
		for (uint32_t p = 0; p < rn; p++)
			if ((alive >> p & 1) && p + k < rn && ring_at(f, p + k) == h)
				next |= 1ULL << p;
		alive = next;
		pos += fr.consumed;
		lines += fr.lines;
		k++;
		if (k <= rn && (alive >> (rn - k) & 1)) {
			/* old records rn-k .. rn-1 are exactly the file's first k: a tail kept */
			best = pos;
			best_lines = lines;
			alive &= ~(1ULL << (rn - k));
		}
	}
	if (alive && !eof && n < READ_BUF)
		return false; /* a longer tail may still match: wait for the rest of the line(s) */
	f->resync = false;
	if (!best)
		return true;
	if (hdr) {
		struct lp_result res;
		lp_parse(t->parser, &f->cols, buf, hdr, t->arena, &res);
		if (res.kind != LP_HEADER) {
			lp_csv_cols_reset(&f->cols);
			return true;
		}
		f->hdr_end = (int64_t)hdr;
	}
	log_info("log \"%s\": its first %" PRId64 " lines are the last ones already read: read on "
		 "after them", f->path, best_lines);
	f->off = (int64_t)best;
	f->line = best_lines;
	f->sum = hash_more(HASH_INIT, buf, best);
	t->dirty = true;
	return true;
}

static bool compressed(const char *path)
{
	static const char *const ext[] = { ".gz", ".bz2", ".xz", ".zst", ".zip", ".7z", ".lz4", NULL };
	size_t n = strlen(path);
	for (size_t i = 0; ext[i]; i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcmp(path + n - e, ext[i]) == 0)
			return true;
	}
	return false;
}

/* A path not read, logged once (the refusal is not a line of the log: nothing is sealed). */
static void refuse(struct tail *t, const char *path, const char *why)
{
	for (size_t i = 0; i < t->n_refused; i++)
		if (strcmp(t->refused[i], path) == 0)
			return;
	log_errx("log \"%s\": \"%s\" %s: not read", t->cfg->path, path, why);
	char *p = t->n_refused < 1024 ? strdup(path) : NULL; /* past that: logged each round */
	if (p && push((void **)&t->refused, &t->n_refused, &t->cap_refused, p) < 0)
		free(p);
}

static int open_log(struct tail *t, const char *path)
{
	/* O_NOFOLLOW: a link swapped in after the path was looked at is not followed either. */
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	if (!t->cfg->follow_symlinks)
		flags |= O_NOFOLLOW;
	int fd = open(path, flags);
	if (fd < 0) {
		if (errno == ELOOP && !t->cfg->follow_symlinks) {
			refuse(t, path, "is a symbolic link (\"follow_symlinks\": true follows it)");
		} else if (errno != ENOENT && (!t->open_err_path || strcmp(t->open_err_path, path) != 0)) {
			log_warn("log \"%s\": cannot open, retrying", path);
			free(t->open_err_path);
			t->open_err_path = strdup(path);
		}
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && own_files_has(t->lt->own, &st)) {
		refuse(t, path, "is one of the agent's own secret or state files");
		close(fd);
		return -1;
	}
	return fd;
}

/* A file followed before a restart may have been renamed meanwhile (usage.log → usage.log.1):
 * look for its inode beside its old name so the lines it got before the rename are not lost. */
static bool find_moved(struct tail *t, struct tfile *f)
{
	char *dir = strdup(f->path);
	if (!dir)
		return false;
	char *slash = strrchr(dir, '/');
	const char *folder = ".", *sep = "/";
	if (slash == dir) {
		folder = "/";
		sep = "";
	} else if (slash) {
		*slash = '\0';
		folder = dir;
	}
	DIR *d = opendir(folder);
	bool found = false;
	struct dirent *e;
	while (d && !found && (e = readdir(d))) {
		if ((uint64_t)e->d_ino != f->ino)
			continue;
		char *path = NULL;
		if (asprintf(&path, "%s%s%s", folder, sep, e->d_name) < 0)
			break;
		struct stat st;
		int fd = open_log(t, path);
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_dev == f->dev &&
		    (uint64_t)st.st_ino == f->ino && fp_matches(t, fd, f->fp, f->fp_len) &&
		    st.st_size >= f->off) {
			free(f->path);
			f->path = path;
			path = NULL;
			f->fd = fd;
			fd = -1;
			found = true;
		}
		if (fd >= 0)
			close(fd);
		free(path);
	}
	if (d)
		closedir(d);
	free(dir);
	return found;
}

/* Hash of the file's first n bytes, read through the (idle) read buffer. */
static uint64_t prefix_sum(struct tail *t, int fd, int64_t n)
{
	uint64_t h = HASH_INIT;
	int64_t off = 0;
	while (off < n) {
		size_t want = n - off < READ_BUF ? (size_t)(n - off) : READ_BUF;
		ssize_t r = pread(fd, t->lt->rbuf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ~h; /* can't be read: can't be called a copy */
		h = hash_more(h, t->lt->rbuf, (size_t)r);
		off += r;
	}
	return h;
}

/* Whether the first n bytes of two files are the same. */
static bool same_prefix(struct tail *t, int fd1, int fd2, int64_t n)
{
	char *a = t->lt->rbuf, *b = t->lt->rbuf + READ_BUF / 2;
	for (int64_t off = 0; off < n;) {
		size_t want = n - off < READ_BUF / 2 ? (size_t)(n - off) : READ_BUF / 2;
		ssize_t r1 = pread(fd1, a, want, (off_t)off), r2 = pread(fd2, b, want, (off_t)off);
		if (r1 <= 0 || r1 != r2 || memcmp(a, b, (size_t)r1) != 0)
			return false;
		off += r1;
	}
	return true;
}

/* A new file that so far holds the start of what was read from a followed file is most likely
 * its copy being written (copytruncate): deciding now would read it from its first byte. */
static bool copy_in_progress(struct tail *t, int fd, const struct stat *st)
{
	for (size_t i = 0; i < t->n_files; i++) {
		const struct tfile *g = t->files[i];
		if (g->fd >= 0 && st->st_size < g->off && g->size >= st->st_size &&
		    same_prefix(t, fd, g->fd, st->st_size))
			return true;
	}
	return false;
}

static void drop(struct tail *t, size_t i)
{
	struct tfile *f = t->files[i];
	if (push((void **)&t->dropped, &t->n_dropped, &t->cap_dropped, f) < 0) {
		file_free(f); /* only the descriptor would have been kept for a failed commit */
	}
	memmove(&t->files[i], &t->files[i + 1], (t->n_files - i - 1) * sizeof(t->files[0]));
	t->n_files--;
	t->dirty = true;
}

/* A file not followed yet. */
static int add_file(struct tail *t, const char *path)
{
	int fd = open_log(t, path);
	struct stat st;
	if (fd < 0)
		return 0;
	/* An empty file may be a copy about to be written: look again once it has bytes.
	 * Renamed between the stat and the open: the next round sees it. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
	    find_inode(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino) || copy_in_progress(t, fd, &st)) {
		close(fd);
		return 0;
	}
	struct tfile *f = file_new(path);
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->dev = (uint64_t)st.st_dev;
	f->ino = (uint64_t)st.st_ino;
	f->size = st.st_size;
	f->mtime_ns = mtime_ns(&st);
	f->quiet_since_ms = clock_mono_ms();
	f->order = t->next_order++;
	fingerprint(t, f);

	int r = 0;
	bool renamed = false;
	struct tfile *copy_of = NULL;
	for (size_t i = 0; i < t->n_files; i++) {
		struct tfile *g = t->files[i];
		if (g->gone && strcmp(g->path, path) == 0)
			renamed = true;
		/* Exactly the bytes already read from a file being followed: a copy of it
		 * (copytruncate's usage.log.1, matched by the glob too), read on from there. */
		if (g->off > 0 && (!copy_of || g->off > copy_of->off) && st.st_size >= g->off &&
		    st.st_size >= g->fp_len && fp_matches(t, fd, g->fp, g->fp_len) &&
		    prefix_sum(t, fd, g->off) == g->sum)
			copy_of = g;
	}
	if (copy_of && copy_of->missing_since) {
		/* A file that vanished is back (a share remounted, a file restored): the same
		 * bytes, maybe under another device or inode. It goes on where it was left. */
		log_info("log \"%s\" is back as \"%s\": reading it from byte %" PRId64, copy_of->path,
			 path, copy_of->off);
		free(copy_of->path);
		copy_of->path = f->path;
		f->path = NULL;
		copy_of->fd = f->fd;
		f->fd = -1;
		copy_of->dev = f->dev;
		copy_of->ino = f->ino;
		t->n_index = 0; /* its key changed: the index is no longer sorted */
		copy_of->size = -1; /* looked at again in this round's checks */
		copy_of->mtime_ns = f->mtime_ns;
		copy_of->quiet_since_ms = f->quiet_since_ms;
		copy_of->missing_since = 0;
		copy_of->gone = false;
		copy_of->seen = true;
		copy_of->st_size = st.st_size;
		copy_of->st_mtime_ns = f->mtime_ns;
		file_free(f);
		t->dirty = true;
		return 0;
	}
	if (copy_of) {
		f->off = copy_of->off;
		f->sum = copy_of->sum;
		f->line = copy_of->line;
		f->hdr_end = copy_of->hdr_end;
		f->cols = copy_of->cols;
		f->skip_nl = copy_of->skip_nl;
		f->fp = copy_of->fp;
		f->fp_len = copy_of->fp_len;
		log_info("log \"%s\" is a copy of \"%s\": reading it from byte %" PRId64, path,
			 copy_of->path, f->off);
	}
	if (push((void **)&t->files, &t->n_files, &t->cap_files, f) < 0) {
		file_free(f);
		return -ENOMEM;
	}
	t->dirty = true;
	if (renamed)
		r = rotated(t, "\"%s\" rotated: the old file is read to its end, a new one followed", path);
	return r;
}

struct found {
	char *path;
	struct stat st;
};

/* Whether the file's absence can be believed: it exists, or its folder does and says it
 * doesn't (not an I/O error or a stale share). A mount point left empty is believed: what
 * vanishes is remembered as missing, so it is recognised when it comes back. */
static bool path_answers(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return true;
	if (errno != ENOENT)
		return false;
	char *dir = strdup(path);
	if (!dir)
		return false;
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	bool ok = stat(slash ? dir : ".", &st) == 0 && S_ISDIR(st.st_mode);
	free(dir);
	return ok;
}

/* Match what the path or glob leads to now against the files followed. */
static int discover(struct tail *t)
{
	glob_t g;
	memset(&g, 0, sizeof(g));
	char *const single[] = { t->cfg->path, NULL };
	char *const *paths = single;
	size_t np = 1;
	if (t->is_glob) {
		int gr = glob(t->cfg->path, GLOB_ERR, NULL, &g);
		if (gr != 0 && gr != GLOB_NOMATCH) {
			/* An unreadable folder must not look like every file vanished. */
			if (!t->glob_err_logged)
				log_warnx("log \"%s\": cannot list the folder, retrying", t->cfg->path);
			t->glob_err_logged = true;
			globfree(&g);
			return 0;
		}
		t->glob_err_logged = false;
		paths = g.gl_pathv;
		np = gr == 0 ? g.gl_pathc : 0;
	}
	int r = index_build(t);
	struct found *news = NULL;
	size_t n_new = 0;
	if (r < 0) {
		if (t->is_glob)
			globfree(&g);
		return r;
	}
	for (size_t i = 0; i < t->n_files; i++)
		t->files[i]->seen = false;
	if (np && !(news = calloc(np, sizeof(*news)))) {
		if (t->is_glob)
			globfree(&g);
		return -ENOMEM;
	}
	if (!t->is_glob && !path_answers(t->cfg->path)) {
		free(news);
		t->n_index = 0;
		return 0; /* a share that is away says nothing about its files */
	}
	for (size_t i = 0; i < np; i++) {
		struct stat st;
		bool follow = t->cfg->follow_symlinks;
		if ((follow ? stat(paths[i], &st) : lstat(paths[i], &st)) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			refuse(t, paths[i], "is a symbolic link (\"follow_symlinks\": true follows it)");
			continue;
		}
		if (!S_ISREG(st.st_mode) || (t->is_glob && compressed(paths[i])))
			continue;
		struct tfile *f = find_inode(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
		if (!f) {
			news[n_new].path = paths[i];
			news[n_new++].st = st;
			continue;
		}
		if (f->seen)
			continue; /* a second name (hard link) of a file already matched */
		f->seen = true;
		f->st_size = st.st_size;
		f->st_mtime_ns = mtime_ns(&st);
		if (f->missing_since) {
			f->missing_since = 0;
			f->size = -1; /* back: its identity is checked before anything is read */
			t->dirty = true;
		}
		if (f->gone || strcmp(f->path, paths[i]) != 0) {
			char *p = strdup(paths[i]);
			if (p) {
				free(f->path);
				f->path = p;
			}
			f->gone = false;
			t->dirty = true;
		}
	}
	for (size_t i = 0; i < t->n_files; i++) {
		struct tfile *f = t->files[i];
		if (f->seen || f->missing_since)
			continue;
		if (f->fd < 0) {
			char *was = strdup(f->path);
			if (!find_moved(t, f)) {
				log_info("log \"%s\" is gone: %" PRId64 " lines were read from it", f->path,
					 f->line);
				free(was);
				f->missing_since = clock_wall();
				f->gone = false;
				t->dirty = true;
				continue;
			}
			int e = rotated(t, "\"%s\" was renamed to \"%s\" while it was not followed: "
					"reading it to its end", was ? was : "?", f->path);
			if (e < 0)
				r = e;
			free(was);
		}
		if (!f->gone) {
			/* Renamed or deleted while open: what is still written to it is read. */
			f->gone = true;
			f->quiet_since_ms = clock_mono_ms();
			t->dirty = true;
		}
	}
	for (size_t i = 0; i < n_new && r >= 0; i++)
		r = add_file(t, news[i].path);
	size_t present = 0;
	for (size_t i = 0; i < t->n_files; i++)
		present += !t->files[i]->missing_since;
	if (present == 0 && !t->missing_logged)
		log_info("log \"%s\": no such file yet, waiting for it", t->cfg->path);
	t->missing_logged = present == 0;
	free(news);
	if (t->is_glob)
		globfree(&g);
	t->n_index = 0; /* t->files changes from here on */
	return r;
}

/* Has the file changed since the last look, and is it still the file we think it is? */
static int check_file(struct tail *t, struct tfile *f)
{
	int64_t size, mt;
	struct stat st;
	if (f->gone) {
		if (f->fd < 0 || fstat(f->fd, &st) < 0)
			return 0;
		size = st.st_size;
		mt = mtime_ns(&st);
	} else if (f->seen) {
		size = f->st_size;
		mt = f->st_mtime_ns;
	} else {
		return 0;
	}
	bool first = f->size < 0;
	if (!first && size == f->size && mt == f->mtime_ns)
		return 0;
	f->size = size;
	f->mtime_ns = mt;
	f->quiet_since_ms = clock_mono_ms();
	if (f->fd < 0) {
		int fd = open_log(t, f->path);
		if (fd < 0)
			return 0;
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino) {
			close(fd);
			return 0;
		}
		f->fd = fd;
	}
	if (size < f->off)
		return restart_file(t, f, "was truncated");
	if (!fp_matches(t, f->fd, f->fp, f->fp_len))
		return restart_file(t, f, first ? "is another file (inode reused)" : "was rewritten");
	if (!fp_complete(t, f) && (uint64_t)size > f->fp_len)
		fingerprint(t, f);
	return 0;
}

/* ---- reading ---- */

static int record(struct tail *t, struct tfile *f, const char *rec, const struct lp_frame *fr,
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
		f->hdr_hash = rec_hash(rec, fr->len);
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
			f->sum = hash_more(f->sum, buf + pos, k);
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
			if ((r = record(t, f, buf + pos, &fr, at)) < 0)
				return r;
			ring_push(f, rec_hash(buf + pos, fr.len));
			f->sum = hash_more(f->sum, buf + pos, fr.consumed);
			pos += fr.consumed;
			f->off = base + (int64_t)pos;
			f->line += fr.lines;
			t->lines += fr.lines;
			t->batch_bytes += fr.consumed;
			if (batch_full(t) && (r = commit(t)) < 0)
				return r;
			continue;
		} else if (len - pos >= LP_LINE_MAX) {
			/* No line end within the cap: the line is cut, the rest skipped to its end. */
			char why[64];
			snprintf(why, sizeof(why), "line longer than %d bytes, cut", LP_LINE_MAX);
			if ((r = add_malformed(t, f, f->line + 1, why, buf + pos, LP_LINE_MAX)) < 0)
				return r;
			f->sum = hash_more(f->sum, buf + pos, LP_LINE_MAX);
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

static void poll_tail(struct tail *t)
{
	if (t->broken || clock_mono_ms() < t->retry_at_ms)
		return;
	if (core_paused(t->lt->core)) {
		/* Logs stay on disk while the buffer is full; nothing is read past the cursor. */
		t->paused = true;
		publish(t);
		return;
	}
	t->paused = false;
	int r = discover(t);
	for (size_t i = 0; i < t->n_files && r >= 0; i++)
		r = check_file(t, t->files[i]);
	if (r < 0)
		goto fail;

	size_t n = t->n_files;
	struct tfile **order = n ? malloc(n * sizeof(*order)) : NULL;
	if (n && !order) {
		r = -ENOMEM;
		goto fail;
	}
	if (n) {
		memcpy(order, t->files, n * sizeof(*order));
		qsort(order, n, sizeof(*order), by_reading_order);
	}
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < n && !atomic_load(&t->lt->stopping); i++) {
		struct tfile *f = order[i];
		bool final = f->gone && now - f->quiet_since_ms >= logtail_tuning.rotate_wait_ms;
		if (f->fd >= 0 && (f->size > f->off || f->skip_nl || final)) {
			if (f->resync && !resync(t, f, final))
				continue;
			if ((r = read_file(t, f, final)) < 0)
				break;
			/* Once a CSV header is known the identity covers the data after it. */
			if (!fp_complete(t, f) && f->size > (int64_t)f->fp_len)
				fingerprint(t, f);
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
			drop(t, i);
			missing--;
			continue;
		}
		if (!f->gone && f->fd >= 0 && f->off >= f->size &&
		    (quiet >= logtail_tuning.idle_close_ms || open > OPEN_MAX)) {
			close(f->fd);
			f->fd = -1;
			open--;
		}
		i++;
	}
out:
	if ((r = commit(t)) == 0)
		return;
fail:
	roll_back(t, r);
	publish(t);
}

/* ---- status ---- */

static void publish(struct tail *t)
{
	const struct tfile *cur = NULL;
	size_t present = 0;
	for (size_t i = 0; i < t->n_files; i++) {
		const struct tfile *f = t->files[i];
		if (f->missing_since)
			continue;
		present++;
		if (!cur || (!f->gone && cur->gone) ||
		    (f->gone == cur->gone && (f->mtime_ns > cur->mtime_ns ||
					      (f->mtime_ns == cur->mtime_ns && f->order > cur->order))))
			cur = f;
	}
	char *path = cur ? strdup(cur->path) : NULL;
	pthread_mutex_lock(&t->lt->mu);
	free(t->st_file);
	t->st_file = path;
	t->st_off = cur ? cur->off : 0;
	t->st_lines = t->lines;
	t->st_malformed = t->malformed;
	t->st_files = present;
	t->st_open = t->pairs ? lp_pairs_count(t->pairs) : 0;
	t->st_paused = t->paused;
	t->st_broken = t->broken;
	pthread_mutex_unlock(&t->lt->mu);
}

static void logtail_status(void *state, cJSON *instruments)
{
	struct logtail *lt = state;
	pthread_mutex_lock(&lt->mu);
	for (size_t i = 0; i < lt->n_tails; i++) {
		const struct tail *t = lt->tails[i];
		cJSON *in = NULL, *it;
		cJSON_ArrayForEach(it, instruments) {
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
			if (cJSON_IsString(id) && strcmp(id->valuestring, t->instrument) == 0) {
				in = it;
				break;
			}
		}
		if (!in) {
			in = cJSON_CreateObject();
			cJSON_AddStringToObject(in, "id", t->instrument);
			cJSON_AddItemToArray(instruments, in);
		}
		cJSON *logs = cJSON_GetObjectItemCaseSensitive(in, "logs");
		if (!cJSON_IsArray(logs))
			logs = cJSON_AddArrayToObject(in, "logs");
		cJSON *l = cJSON_CreateObject();
		cJSON_AddStringToObject(l, "path", t->cfg->path);
		if (t->st_file)
			cJSON_AddStringToObject(l, "file", t->st_file);
		else
			cJSON_AddNullToObject(l, "file");
		cJSON_AddNumberToObject(l, "offset", (double)t->st_off);
		cJSON_AddNumberToObject(l, "lines", (double)t->st_lines);
		cJSON_AddNumberToObject(l, "malformed", (double)t->st_malformed);
		cJSON_AddNumberToObject(l, "files", (double)t->st_files);
		if (t->pairs)
			cJSON_AddNumberToObject(l, "open_sessions", (double)t->st_open);
		cJSON_AddStringToObject(l, "state", t->st_broken ? "error" : t->st_paused ? "paused" : "ok");
		cJSON_AddItemToArray(logs, l);
	}
	pthread_mutex_unlock(&lt->mu);
}

/* ---- the driver ---- */

char *logtail_cursor_key(const char *instrument, const char *path)
{
	char *key = NULL;
	if (asprintf(&key, "log:%s:%s", instrument, path) < 0)
		return NULL;
	return key;
}

uint64_t logtail_rounds(void *state)
{
	struct logtail *lt = state;
	return lt ? atomic_load(&lt->rounds) : 0;
}

static void tail_free(struct tail *t)
{
	if (!t)
		return;
	files_free(t->files, t->n_files);
	files_free(t->dropped, t->n_dropped);
	free(t->index);
	lp_parser_free(t->parser);
	lp_pairs_free(t->pairs);
	lp_arena_free(t->arena);
	free(t->obs);
	free(t->key);
	free(t->committed);
	free(t->open_err_path);
	for (size_t i = 0; i < t->n_refused; i++)
		free(t->refused[i]);
	free(t->refused);
	free(t->st_file);
	free(t);
}

static struct tail *tail_new(struct logtail *lt, const struct instrument_cfg *in,
			     const struct log_cfg *cfg)
{
	struct tail *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->lt = lt;
	t->instrument = in->id;
	t->cfg = cfg;
	t->is_glob = strpbrk(cfg->path, "*?[") != NULL;
	t->key = logtail_cursor_key(in->id, cfg->path);
	t->arena = lp_arena_new();
	t->parser = lp_parser_new(cfg);
	if (!t->parser)
		log_warn("log \"%s\": cannot decode %s", cfg->path,
			 cfg->encoding == LOG_ENC_GBK ? "GB18030" : "UTF-8");
	if (cfg->format == LOG_FMT_EVENTS)
		t->pairs = lp_pairs_new(cfg->max_session_h);
	if (!t->key || !t->arena || !t->parser || (cfg->format == LOG_FMT_EVENTS && !t->pairs)) {
		tail_free(t);
		return NULL;
	}
	return t;
}

static void logtail_destroy(void *state);

static int logtail_create(const struct config *cfg, struct core *core, void **state)
{
	*state = NULL;
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_instruments; i++)
		n += cfg->instruments[i].n_logs;
	if (n == 0)
		return 0;
	struct logtail *lt = calloc(1, sizeof(*lt));
	if (!lt)
		return -ENOMEM;
	lt->core = core;
	pthread_mutex_init(&lt->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lt->cv, &ca);
	pthread_condattr_destroy(&ca);
	lt->tails = calloc(n, sizeof(*lt->tails));
	lt->rbuf = malloc(READ_BUF);
	lt->fpbuf = malloc(FP_MAX);
	lt->own = own_files_new(cfg);
	if (!lt->tails || !lt->rbuf || !lt->fpbuf || !lt->own)
		goto fail;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *in = &cfg->instruments[i];
		for (size_t j = 0; j < in->n_logs; j++) {
			struct tail *t = tail_new(lt, in, &in->logs[j]);
			if (!t)
				goto fail;
			lt->tails[lt->n_tails++] = t;
		}
	}
	*state = lt;
	return 0;
fail:
	logtail_destroy(lt);
	return -ENOMEM;
}

static void *logtail_run(void *arg)
{
	struct logtail *lt = arg;
	pthread_mutex_lock(&lt->mu);
	while (!lt->stop) {
		pthread_mutex_unlock(&lt->mu);
		if (own_files_refresh(lt->own) < 0)
			log_warnx("logs: out of memory listing the agent's own files");
		for (size_t i = 0; i < lt->n_tails && !atomic_load(&lt->stopping); i++)
			poll_tail(lt->tails[i]);
		atomic_fetch_add(&lt->rounds, 1);
		atomic_store(&lt->beat_ms, clock_mono_ms());
		pthread_mutex_lock(&lt->mu);
		if (lt->stop)
			break;
		/* Real time, not the clock seam: a test's frozen clock must not stop the polling. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t ns = ts.tv_nsec + (int64_t)logtail_tuning.poll_ms * 1000000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&lt->cv, &lt->mu, &ts);
	}
	pthread_mutex_unlock(&lt->mu);
	return NULL;
}

static int logtail_start(void *state)
{
	struct logtail *lt = state;
	if (lt->started)
		return 0;
	atomic_store(&lt->beat_ms, clock_mono_ms());
	for (size_t i = 0; i < lt->n_tails; i++) {
		struct tail *t = lt->tails[i];
		void *data = NULL;
		size_t len = 0;
		int r = core_cursor(lt->core, t->key, &data, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		/* A cursor that can't be read would mean reading every file again: better to
		 * stop this log loudly than to seal its sessions twice. */
		free(t->committed);
		t->committed = data;
		if (memchr(data, '\0', len) || state_load(t, t->committed) < 0) {
			log_errx("log \"%s\": its cursor \"%s\" is unreadable: log not followed", t->cfg->path,
				 t->key);
			t->broken = true;
		}
		publish(t); /* loaded files have size -1: each one's identity is checked first */
	}
	lt->stop = false;
	atomic_store(&lt->stopping, false);
	int r = pthread_create(&lt->thread, NULL, logtail_run, lt);
	if (r != 0)
		return -r;
	lt->started = true;
	return 0;
}

static void logtail_stop(void *state)
{
	struct logtail *lt = state;
	if (!lt || !lt->started)
		return;
	pthread_mutex_lock(&lt->mu);
	lt->stop = true;
	atomic_store(&lt->stopping, true);
	pthread_cond_signal(&lt->cv);
	pthread_mutex_unlock(&lt->mu);
	pthread_join(lt->thread, NULL);
	lt->started = false;
	/* Open logins stay in the cursor, committed with the last batch: nothing to hand over. */
}

static void logtail_destroy(void *state)
{
	struct logtail *lt = state;
	if (!lt)
		return;
	logtail_stop(lt);
	for (size_t i = 0; i < lt->n_tails; i++)
		tail_free(lt->tails[i]);
	free(lt->tails);
	free(lt->rbuf);
	free(lt->fpbuf);
	own_files_free(lt->own);
	pthread_cond_destroy(&lt->cv);
	pthread_mutex_destroy(&lt->mu);
	free(lt);
}

/* Stuck is a round that neither ends nor commits for a minute (a share that hangs reads). */
static bool logtail_healthy(void *state, char *why, size_t whylen)
{
	struct logtail *lt = state;
	int64_t silent = clock_mono_ms() - atomic_load(&lt->beat_ms);
	if (lt->started && silent > 60000) {
		snprintf(why, whylen, "logs: no round finished for %lld s", (long long)(silent / 1000));
		return false;
	}
	return true;
}

const struct source_ops logtail_source = {
	.name = "logtail",
	.create = logtail_create,
	.start = logtail_start,
	.stop = logtail_stop,
	.status = logtail_status,
	.healthy = logtail_healthy,
	.destroy = logtail_destroy,
};
