/* buffer_file.c — the buffer's file on disk: opening it (pragmas, quick_check, or for `flush`
 * quick_check on a thread beside its first reads), moving a damaged one aside, and a
 * file deleted or replaced under a running daemon written back from the open database
 * (SPEC §5) so that nothing sealed is lost. */
#include "buffer.h"
#include "buffer_priv.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAL_CHECKPOINT_PAGES 4000

/* "ok" from quick_check, or an open/read error of the kind a damaged file gives. */
static int check_integrity(sqlite3 *db, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(db));
		return rc;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);
		if (res && strcmp(res, "ok") == 0) {
			sqlite3_finalize(st);
			return SQLITE_OK;
		}
		snprintf(why, whylen, "quick_check: %s", res ? res : "(null)");
		for (char *p = why; *p; p++)
			if (*p == '\n')
				*p = ' '; /* one log line per message, for journald */
		sqlite3_finalize(st);
		return SQLITE_CORRUPT;
	}
	snprintf(why, whylen, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
}

/* Renames the file and its WAL/SHM companions so nothing is ever deleted. A missing main
 * file is not an error when companions are left (the file deleted under a daemon). */
char *buffer__move_aside(const char *path, const char *tag)
{
	char stamp[32];
	time_t now = (time_t)clock_wall();
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	char *dst = NULL;
	for (int i = 0; i < 100; i++) {
		free(dst);
		if (asprintf(&dst, i ? "%s.%s-%s.%d" : "%s.%s-%s", path, tag, stamp, i) < 0)
			return NULL;
		if (access(dst, F_OK) != 0)
			break;
	}
	if (rename(path, dst) < 0 && errno != ENOENT) {
		log_err("buffer: cannot move \"%s\" aside", path);
		free(dst);
		return NULL;
	}
	static const char *const suffix[] = { "-wal", "-shm" };
	for (size_t i = 0; i < 2; i++) {
		char from[PATH_MAX], to[PATH_MAX];
		if (snprintf(from, sizeof(from), "%s%s", path, suffix[i]) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s%s", dst, suffix[i]) >= (int)sizeof(to))
			continue;
		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("buffer: cannot move \"%s\" aside", from);
	}
	return dst;
}

int buffer__open_db(struct buffer *b, char *why, size_t whylen)
{
	int flags = b->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc = sqlite3_open_v2(b->path, &b->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
		return rc;
	}
	sqlite3_extended_result_codes(b->db, 0);
	sqlite3_busy_timeout(b->db, 10000);
	if (!b->readonly) {
		/* Must precede the first table; harmless on an existing file. */
		sqlite3_exec(b->db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);
		rc = sqlite3_exec(b->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "%s", sqlite3_errmsg(b->db));
			return rc;
		}
	}
	/* Checkpoints every ~16 MB of log rather than 4 MB: fewer stalls while sealing fast. None
	 * while a deferred check has not passed (buffer_check_start). */
	bool defer = b->check_later && !b->readonly;
	sqlite3_wal_autocheckpoint(b->db, defer ? 0 : WAL_CHECKPOINT_PAGES);
	sqlite3_exec(b->db, "PRAGMA journal_size_limit = 16777216", NULL, NULL, NULL);
	rc = sqlite3_exec(b->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(b->db));
		return rc;
	}
	if (defer) {
		b->check_later = false; /* once: a file reopened later is checked at once */
		b->check_due = true;
		return SQLITE_OK;
	}
	/* Read-only (status, report, verify) goes without: quick_check reads every page (seconds
	 * for a buffer of gigabytes at 5,000 instruments), a reader could not move a damaged file
	 * aside anyway, and a damaged page it reads is an error there. The writers check. */
	if (b->readonly)
		return SQLITE_OK;
	rc = check_integrity(b->db, why, whylen);
	/* A damaged file is moved aside as it is, its WAL beside it: never checkpointed into it. */
	if (rc != SQLITE_OK)
		sqlite3_db_config(b->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	return rc;
}

/* ---- quick_check beside the first reads (BUFFER_CHECK_LATER, `flush`) ----------------------- */

struct buffer_check {
	pthread_t thread;
	bool joinable;              /* false: checked on the caller's thread (no thread to be had) */
	char *path;
	atomic_int state;           /* 1 running, 0 passed, else a negative errno */
	char why[512];
	bool applied;               /* the writer was told the outcome (checkpoints, or none at close) */
};

static void *check_main(void *arg)
{
	struct buffer_check *c = arg;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(db, 0);
		sqlite3_busy_timeout(db, 10000);
		rc = check_integrity(db, c->why, sizeof(c->why));
	} else {
		snprintf(c->why, sizeof(c->why), "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	}
	sqlite3_close_v2(db);
	atomic_store_explicit(&c->state, rc == SQLITE_OK ? 0 : buffer__errno(rc), memory_order_release);
	return NULL;
}

int buffer_check_start(struct buffer *b)
{
	if (!b->check_due || b->check)
		return 0;
	struct buffer_check *c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(b->path))) {
		free(c);
		return -ENOMEM;
	}
	atomic_init(&c->state, 1);
	c->joinable = pthread_create(&c->thread, NULL, check_main, c) == 0;
	if (!c->joinable)
		check_main(c); /* no thread: checked here, as at an ordinary open */
	b->check = c;
	return 0;
}

/* The writer learns the outcome once: checkpoints again after a pass; after a failure it is
 * closed without one, so the damaged file and its WAL move aside as they are. */
static void check_apply(struct buffer *b, struct buffer_check *c, int state)
{
	if (c->applied || state > 0)
		return;
	bool held = buffer__held(b);
	if (!held)
		buffer__lock(b);
	if (state == 0)
		sqlite3_wal_autocheckpoint(b->db, WAL_CHECKPOINT_PAGES);
	else
		sqlite3_db_config(b->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if (!held)
		buffer__unlock(b);
	c->applied = true;
}

int buffer_check_poll(struct buffer *b)
{
	struct buffer_check *c = b->check;
	if (!c)
		return b->check_due ? 1 : b->check_result;
	int state = atomic_load_explicit(&c->state, memory_order_acquire);
	check_apply(b, c, state);
	return state;
}

int buffer_check_wait(struct buffer *b)
{
	if (!b->check_due)
		return b->check_result;
	int e = b->check ? 0 : buffer_check_start(b);
	struct buffer_check *c = b->check;
	if (e < 0 || !c)
		return e < 0 ? e : -ENOMEM;
	if (c->joinable)
		pthread_join(c->thread, NULL);
	int state = atomic_load_explicit(&c->state, memory_order_acquire);
	check_apply(b, c, state);
	if (state < 0)
		log_errx("buffer: \"%s\" failed its check (%s) while it was being uploaded: no more is sent "
			 "from it", b->path, c->why);
	b->check_result = state;
	b->check = NULL;
	b->check_due = false;
	free(c->path);
	free(c);
	return state;
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* The open database, pages read through SQLite (so the WAL's frames too), into a new file
 * beside the path, made durable before it is renamed into place. */
static int copy_out(struct buffer *b, const char *tmp, char *why, size_t whylen)
{
	sqlite3 *dst = NULL;
	unlink(tmp); /* our own temporary from an attempt that failed half-way */
	int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_backup *bk = sqlite3_backup_init(dst, "main", b->db, "main");
		if (bk) {
			rc = sqlite3_backup_step(bk, -1);
			int frc = sqlite3_backup_finish(bk);
			rc = rc == SQLITE_DONE ? frc : rc;
		} else {
			rc = sqlite3_errcode(dst);
		}
	}
	if (rc != SQLITE_OK)
		snprintf(why, whylen, "%s", dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
	if (dst && sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK) {
		snprintf(why, whylen, "closing the copy failed");
		rc = SQLITE_IOERR;
	}
	if (rc != SQLITE_OK) {
		unlink(tmp);
		return -EIO;
	}
	int r = fsync_path(tmp, O_RDONLY);
	if (r < 0) {
		snprintf(why, whylen, "fsync: %s", strerror(-r));
		unlink(tmp);
	}
	return r;
}

/* Every statement on the writer prepared on the new connection before anything is swapped,
 * so a failure leaves the old connection in use. */
static int swap_connection(struct buffer *b, sqlite3 *ndb)
{
	int rc = stmt__swap(b, ndb);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3 *old = b->db;
	b->db = ndb;
	b->head_valid = false;
	/* Readers reconnect at their next use: the old file is no longer the path's. */
	atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
	/* The old file is gone from the path: no checkpoint into it, and its WAL (moved aside
	 * already) is not SQLite's to delete any more. */
	sqlite3_db_config(old, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_close_v2(old);
	return SQLITE_OK;
}

int buffer_check_file(struct buffer *b, char *what, size_t whatlen)
{
	char why[512] = "";
	char *tmp = NULL, *aside = NULL, *dir = NULL;
	int moved = 0, r = 0;

	if (b->readonly)
		return 0;
	if (buffer__held(b)) {
		snprintf(what, whatlen, "checking the buffer's file inside a transaction");
		return -EDEADLK;
	}
	buffer__lock(b);
	/* SQLite compares the path's inode with the open file's (a stat per call: cheap). */
	if (sqlite3_file_control(b->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK || !moved)
		goto out;
	struct stat st;
	bool replaced = lstat(b->path, &st) == 0;
	const char *how = replaced ? "replaced by another file" : "deleted";
	if (asprintf(&tmp, "%s.restore.%ld", b->path, (long)getpid()) < 0)
		tmp = NULL;
	if (!tmp || !(dir = dir_of(b->path))) {
		r = -ENOMEM;
		goto fail;
	}
	/* The whole state folder may have gone (rm -r): made again, or the copy has nowhere to go. */
	if ((r = buffer_make_state_dir(dir)) < 0) {
		snprintf(why, sizeof(why), "cannot create \"%s\": %s", dir, strerror(-r));
		goto fail;
	}
	/* Failures are told to the caller, which logs them once a minute (a full disk may
	 * keep this failing for a while), not here at every try. */
	if ((r = copy_out(b, tmp, why, sizeof(why))) < 0)
		goto fail;
	/* What stands at the path now (a replacing file), and any -wal/-shm there — ours from
	 * the old file, or the replacing file's — must not meet the restored file: a stale WAL
	 * or shared-memory file would be applied to it. Moved aside, never deleted. */
	aside = buffer__move_aside(b->path, replaced ? "replaced" : "stale");
	if (!aside) {
		unlink(tmp);
		snprintf(why, sizeof(why), "cannot move what is at the path aside");
		r = -EIO;
		goto fail;
	}
	if (rename(tmp, b->path) < 0) {
		r = -errno;
		snprintf(why, sizeof(why), "rename \"%s\": %s", tmp, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	if ((r = fsync_path(dir, O_RDONLY | O_DIRECTORY)) < 0)
		log_warnx("buffer: fsync \"%s\": %s", dir, strerror(-r));
	sqlite3 *old = b->db;
	b->db = NULL;
	int rc = buffer__open_db(b, why, sizeof(why));
	sqlite3 *ndb = b->db;
	b->db = old;
	if (rc == SQLITE_OK)
		rc = swap_connection(b, ndb);
	if (rc != SQLITE_OK) {
		/* The file is back at the path; writes go on into the old one until the next try. */
		sqlite3_close_v2(ndb);
		if (!why[0])
			snprintf(why, sizeof(why), "reopening: %s", sqlite3_errstr(rc));
		r = -EIO;
		goto fail;
	}
	if (replaced)
		snprintf(what, whatlen, "buffer %s was replaced by another file while running (moved aside "
			 "to %s); the open buffer was written back and reopened, nothing sealed lost",
			 b->path, aside);
	else
		snprintf(what, whatlen, "buffer %s was deleted while running; the open buffer was written "
			 "back and reopened, nothing sealed lost", b->path);
	log_errx("buffer: \"%s\" was %s while the daemon ran; the open database was written back "
		 "and reopened%s%s%s", b->path, how, replaced ? "; the replacing file is now \"" : "",
		 replaced ? aside : "", replaced ? "\"" : "");
	r = 1;
	goto out;
fail:
	snprintf(what, whatlen, "\"%s\" was %s while the daemon runs and cannot be written back: %s",
		 b->path, how, why[0] ? why : strerror(-r));
out:
	buffer__unlock(b);
	free(tmp);
	free(aside);
	free(dir);
	return r;
}
