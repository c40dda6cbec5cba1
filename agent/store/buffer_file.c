/* buffer_file.c — the buffer's file on disk: other modules' statements registered so they
 * survive a reopen, and a file deleted or replaced under a running daemon written back from
 * the open database (SPEC §5) so that nothing sealed is lost. */
#include "buffer.h"
#include "buffer_priv.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int buffer_prepare(struct buffer *b, const char *sql, sqlite3_stmt **slot)
{
	pthread_mutex_lock(&b->mu);
	int r = 0;
	if (b->n_ext == b->cap_ext) {
		size_t cap = b->cap_ext ? b->cap_ext * 2 : 16;
		sqlite3_stmt ***n = reallocarray(b->ext, cap, sizeof(*n));
		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		b->ext = n;
		b->cap_ext = cap;
	}
	int rc = sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
	if (rc != SQLITE_OK) {
		*slot = NULL;
		r = buffer_sqlite_error(b, rc, sql);
		goto out;
	}
	b->ext[b->n_ext++] = slot;
out:
	pthread_mutex_unlock(&b->mu);
	return r;
}

void buffer_finalize(struct buffer *b, sqlite3_stmt **slot)
{
	if (!b || !slot)
		return;
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < b->n_ext; i++) {
		if (b->ext[i] == slot) {
			b->ext[i] = b->ext[--b->n_ext];
			break;
		}
	}
	sqlite3_finalize(*slot);
	*slot = NULL;
	pthread_mutex_unlock(&b->mu);
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

/* Every statement of the module and of the registered ones, prepared on the new connection
 * before anything is swapped, so a failure leaves the old connection in use. */
static int swap_connection(struct buffer *b, sqlite3 *ndb)
{
	sqlite3_stmt *st[ST__COUNT] = { 0 };
	sqlite3_stmt **ext = b->n_ext ? calloc(b->n_ext, sizeof(*ext)) : NULL;
	int rc = b->n_ext && !ext ? SQLITE_NOMEM : SQLITE_OK;
	for (int i = 0; rc == SQLITE_OK && i < ST__COUNT; i++)
		rc = sqlite3_prepare_v3(ndb, sqlite3_sql(b->st[i]), -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < b->n_ext; i++)
		rc = sqlite3_prepare_v3(ndb, sqlite3_sql(*b->ext[i]), -1, SQLITE_PREPARE_PERSISTENT, &ext[i], NULL);
	if (rc != SQLITE_OK) {
		for (int i = 0; i < ST__COUNT; i++)
			sqlite3_finalize(st[i]);
		for (size_t i = 0; ext && i < b->n_ext; i++)
			sqlite3_finalize(ext[i]);
		free(ext);
		return rc;
	}
	sqlite3 *old = b->db;
	for (int i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(b->st[i]);
		b->st[i] = st[i];
	}
	for (size_t i = 0; i < b->n_ext; i++) {
		sqlite3_finalize(*b->ext[i]);
		*b->ext[i] = ext[i];
	}
	free(ext);
	b->db = ndb;
	b->head_valid = false;
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
	pthread_mutex_lock(&b->mu);
	/* SQLite compares the path's inode with the open file's (a stat per call: cheap). */
	if (b->txn_depth > 0 ||
	    sqlite3_file_control(b->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK || !moved)
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
	pthread_mutex_unlock(&b->mu);
	free(tmp);
	free(aside);
	free(dir);
	return r;
}
