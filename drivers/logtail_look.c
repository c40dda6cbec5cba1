/* logtail_look.c — a glob's round whose cost does not grow with files that no longer change
 * (SPEC §3). lt_discover lists the folder and looks at every file it matches; between two of
 * those, while the folder itself is unchanged (same inode, mtime and ctime: no file was
 * created, renamed or deleted in it), a round looks only at the files being written to (modified
 * in the last minute by their mtime, or not checked yet) and at a slice of the quiet ones in turn, and takes
 * the others as they were: a line added to a file quiet for longer is read within
 * files / LOOK_SLICE rounds (10,000 files at 250 ms: 40 s). Anything unexpected (a file that moved, a folder that changed or just
 * did) makes it a full look again. */
#include "logtail_priv.h"
#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOOK_SLICE 64               /* quiet files looked at per round, in turn */
#define FULL_EVERY_MS 300000        /* a full look at least this often (a share's cached folder) */
#define HOT_NS 60000000000LL        /* a file modified this recently is looked at every round */

/* The folder a glob lists, when only its last part has wildcards; NULL otherwise. */
static char *glob_folder(const char *pattern)
{
	const char *slash = strrchr(pattern, '/');
	if (!slash)
		return strdup(".");
	size_t n = (size_t)(slash - pattern);
	char *dir = strndup(pattern, n ? n : 1);
	if (dir && strpbrk(dir, "*?[\\")) {
		free(dir);
		return NULL;
	}
	return dir;
}

static int64_t ctime_ns(const struct stat *st)
{
	return (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

static bool same_folder(const struct tail *t, const struct stat *st)
{
	return t->look.valid && (uint64_t)st->st_dev == t->look.dev && (uint64_t)st->st_ino == t->look.ino &&
	       lt_mtime_ns(st) == t->look.mtime_ns && ctime_ns(st) == t->look.ctime_ns;
}

static int full_look(struct tail *t, const struct stat *folder, bool have_folder)
{
	t->look.valid = false;
	int r = lt_discover(t);
	if (r < 0 || !have_folder)
		return r;
	/* Taken before the listing: what changes during it shows at the next round. Too recent a
	 * change may share its timestamp with one still to come: not trusted yet. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now); /* against the folder's own times: not the clock seam */
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	int64_t racy_ns = (int64_t)logtail_tuning.racy_ms * 1000000;
	if (now_ns - lt_mtime_ns(folder) < racy_ns || now_ns - ctime_ns(folder) < racy_ns)
		return r;
	t->look.valid = true;
	t->look.dev = (uint64_t)folder->st_dev;
	t->look.ino = (uint64_t)folder->st_ino;
	t->look.mtime_ns = lt_mtime_ns(folder);
	t->look.ctime_ns = ctime_ns(folder);
	t->look.full_ms = clock_mono_ms();
	return r;
}

/* One file of a quick look; false when it is not where and what it was (a full look then). */
static bool look_at(struct tail *t, struct tfile *f, bool stat_it)
{
	if (!stat_it) {
		f->seen = true; /* as it was at the last look */
		f->st_size = f->size;
		f->st_mtime_ns = f->mtime_ns;
		return true;
	}
	struct stat st;
	int r = f->fd >= 0 ? fstat(f->fd, &st)
		: t->cfg->follow_symlinks ? stat(f->path, &st) : lstat(f->path, &st);
	if (r < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino)
		return false;
	f->seen = true;
	f->st_size = st.st_size;
	f->st_mtime_ns = lt_mtime_ns(&st);
	return true;
}

int lt_look(struct tail *t)
{
	if (!t->is_glob)
		return lt_discover(t);
	if (!t->look.dir_known) {
		t->look.dir = glob_folder(t->cfg->path);
		t->look.dir_known = true;
	}
	struct stat folder;
	bool have = t->look.dir && stat(t->look.dir, &folder) == 0;
	if (!have || !same_folder(t, &folder) || clock_mono_ms() - t->look.full_ms >= FULL_EVERY_MS)
		return full_look(t, &folder, have);
	size_t n = t->n_files, slice = n < LOOK_SLICE ? n : LOOK_SLICE;
	size_t from = n ? t->look.next % n : 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts); /* against the files' own mtimes: not the clock seam */
	int64_t now_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	for (size_t i = 0; i < n; i++) {
		struct tfile *f = t->files[i];
		f->seen = false;
		if (f->gone || f->missing_since)
			continue; /* read through its descriptor / remembered, not in the folder */
		bool in_slice = (i >= from && i < from + slice) || (from + slice > n && i < from + slice - n);
		bool hot = f->size < 0 || now_ns - f->mtime_ns < HOT_NS;
		if (!look_at(t, f, hot || in_slice))
			return full_look(t, &folder, true);
	}
	t->look.next = n ? (from + slice) % n : 0;
	t->n_index = 0;
	atomic_fetch_add(&t->lt->quick_looks, 1);
	return 0;
}

void lt_look_free(struct tail *t)
{
	free(t->look.dir);
	t->look.dir = NULL;
	t->look.dir_known = false;
	t->look.valid = false;
}
