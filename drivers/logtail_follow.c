/* logtail_follow.c — following files: what a path or glob leads to, by device, inode and a
 * fingerprint of the first bytes (rename, copytruncate, truncation, inode reuse, a copy in
 * progress), and whether a file changed since the last look. */
#include "logtail_priv.h"
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ---- */

/* FNV-1a: not against an adversary, only to tell files apart; byte by byte, so a hash
 * continued over pieces equals the hash of the whole. */
uint64_t lt_hash_more(uint64_t h, const void *data, size_t n)
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
	return lt_hash_more(HASH_INIT, p, n);
}

int64_t lt_mtime_ns(const struct stat *st)
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

bool lt_fp_complete(const struct tail *t, const struct tfile *f)
{
	return f->fp_len >= FP_BYTES && f->fp_len >= fp_target(t, f);
}

void lt_file_free(struct tfile *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->base.path);
	free(f);
}

struct tfile *lt_file_new(const char *path)
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

int lt_push(void **arr, size_t *n, size_t *cap, void *item)
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
	t->n_index = t->n_files;
	if (t->n_files) { /* no memcpy or qsort of NULL, even for nothing */
		memcpy(t->index, t->files, t->n_files * sizeof(*t->index));
		qsort(t->index, t->n_index, sizeof(*t->index), by_inode);
	}
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


/* ---- following files ---- */

int lt_rotated(struct tail *t, const char *fmt, ...)
{
	char detail[4096 + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_info("log %s", detail);
	t->dirty = true;
	return lt_add_event(t, "log_rotated", detail);
}

void lt_fingerprint(struct tail *t, struct tfile *f)
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
	int r = lt_rotated(t, "\"%s\" %s after %" PRId64 " bytes: reading it from the start", f->path,
			   why, f->off);
	f->off = 0;
	f->line = 0;
	f->sum = HASH_INIT;
	f->hdr_end = 0;
	f->skip_nl = false;
	lp_csv_cols_reset(&f->cols);
	f->resync = f->ring_n > 0;
	lt_fingerprint(t, f);
	return r;
}

uint64_t lt_rec_hash(const char *rec, size_t len)
{
	uint64_t h = lt_hash_more(HASH_INIT, rec, len);
	return lt_hash_more(h, &len, sizeof(len)) | 1; /* never 0: 0 is "no header" */
}

void lt_ring_push(struct tfile *f, uint64_t h)
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
bool lt_resync(struct tail *t, struct tfile *f, bool final)
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
	    lt_rec_hash(buf, fr.len) == f->hdr_hash) {
		pos = hdr = fr.consumed;
		lines = fr.lines;
	}
	while (alive && pos < n && lp_frame(csv, buf + pos, n - pos, eof, &fr)) {
		uint64_t h = lt_rec_hash(buf + pos, fr.len), next = 0;
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
	f->sum = lt_hash_more(HASH_INIT, buf, best);
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
	if (p && lt_push((void **)&t->refused, &t->n_refused, &t->cap_refused, p) < 0)
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
			f->base.path_ptr = NULL; /* a new string: compared again (logtail_cursor.c) */
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
		h = lt_hash_more(h, t->lt->rbuf, (size_t)r);
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

void lt_drop(struct tail *t, size_t i)
{
	struct tfile *f = t->files[i];
	if (lt_push((void **)&t->dropped, &t->n_dropped, &t->cap_dropped, f) < 0) {
		lt_file_free(f); /* only the descriptor would have been kept for a failed commit */
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
	struct tfile *f = lt_file_new(path);
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->dev = (uint64_t)st.st_dev;
	f->ino = (uint64_t)st.st_ino;
	f->size = st.st_size;
	f->mtime_ns = lt_mtime_ns(&st);
	f->quiet_since_ms = clock_mono_ms();
	f->order = t->next_order++;
	lt_fingerprint(t, f);

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
		copy_of->base.path_ptr = NULL;
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
		lt_file_free(f);
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
	if (lt_push((void **)&t->files, &t->n_files, &t->cap_files, f) < 0) {
		lt_file_free(f);
		return -ENOMEM;
	}
	t->dirty = true;
	if (renamed)
		r = lt_rotated(t, "\"%s\" rotated: the old file is read to its end, a new one followed", path);
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
int lt_discover(struct tail *t)
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
		f->st_mtime_ns = lt_mtime_ns(&st);
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
				f->base.path_ptr = NULL;
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
			int e = lt_rotated(t, "\"%s\" was renamed to \"%s\" while it was not followed: "
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
int lt_check_file(struct tail *t, struct tfile *f)
{
	int64_t size, mt;
	struct stat st;
	if (f->gone) {
		if (f->fd < 0 || fstat(f->fd, &st) < 0)
			return 0;
		size = st.st_size;
		mt = lt_mtime_ns(&st);
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
	if (!lt_fp_complete(t, f) && (uint64_t)size > f->fp_len)
		lt_fingerprint(t, f);
	return 0;
}
