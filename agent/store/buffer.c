/* buffer.c — the SQLite buffer: WAL + synchronous=FULL, the store's own tables (versioned by
 * the registry, schema.c), quick_check with corrupt files moved aside, and every SQL
 * statement of the module in one table below. */
#include "buffer.h"
#include "buffer_priv.h"
#include "stmt.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The store's own tables, its entry in the migration registry (schema.h); the other
 * modules' tables are fed by their owners. Never edit a shipped step. */
static const char *const store_steps[] = {
	/* 0 → 1: the chain, sinks, cursors, facts (the first step of every file so far). */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE records(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, line TEXT NOT NULL,"
	"  hash TEXT NOT NULL, sealed_at INTEGER NOT NULL);"
	/* Defence in depth: the code never does either, so the file refuses it too. */
	"CREATE TRIGGER records_sealed BEFORE UPDATE ON records"
	"  BEGIN SELECT RAISE(ABORT, 'sealed records never change'); END;"
	"CREATE TRIGGER records_contiguous BEFORE INSERT ON records"
	"  WHEN NEW.seq != COALESCE((SELECT MAX(seq) FROM records),"
	"    (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'pruned_seq'), 0) + 1"
	"  BEGIN SELECT RAISE(ABORT, 'seq must follow the chain head'); END;"
	"CREATE TABLE sinks(name TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL DEFAULT 0,"
	"  last_ok INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT, alarm TEXT);"
	"CREATE TABLE cursors(key TEXT PRIMARY KEY, state BLOB NOT NULL, updated_at INTEGER NOT NULL);",
	/* 1 → 2: contiguity is checked by the writer against the head it holds in memory
	 * (buffer_append_record); the trigger's two lookups per insert cost as much as the
	 * insert itself. */
	"DROP TRIGGER IF EXISTS records_contiguous;",
};
static const struct store_schema store_tables = {
	.owner = "store", .steps = store_steps, .n = sizeof(store_steps) / sizeof(store_steps[0]),
	.legacy_from = 1, .readable_from = 1,
};


static const char *const stmt_sql[ST__COUNT] = {
	[ST_HEAD] = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
	[ST_APPEND] = "INSERT INTO records(seq, kind, line, hash, sealed_at) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_RANGE] = "SELECT seq, kind, line, hash, sealed_at FROM records"
		     " WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
	[ST_ONE] = "SELECT seq, kind, line, hash, sealed_at FROM records WHERE seq = ?1",
	[ST_FIRST] = "SELECT seq FROM records ORDER BY seq ASC LIMIT 1",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
			" ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_SINK_GET] = "SELECT acked_seq, last_ok, next_attempt, last_error, alarm FROM sinks WHERE name = ?1",
	[ST_SINK_PUT] = "INSERT INTO sinks(name, acked_seq, last_ok, next_attempt, last_error, alarm)"
			" VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET"
			" acked_seq = excluded.acked_seq, last_ok = excluded.last_ok,"
			" next_attempt = excluded.next_attempt, last_error = excluded.last_error,"
			" alarm = excluded.alarm",
	[ST_CURSOR_GET] = "SELECT state FROM cursors WHERE key = ?1",
	[ST_CURSOR_PUT] = "INSERT INTO cursors(key, state, updated_at) VALUES(?1, ?2, ?3)"
			  " ON CONFLICT(key) DO UPDATE SET state = excluded.state,"
			  " updated_at = excluded.updated_at",
	[ST_PRUNE_POINT] = "SELECT MAX(seq) FROM records WHERE seq <= ?1 AND sealed_at < ?2",
	[ST_PRUNE] = "DELETE FROM records WHERE seq <= ?1",
	[ST_MIN_ACK] = "SELECT acked_seq FROM sinks WHERE name = ?1",
};


int buffer_sqlite_error(struct buffer *b, int rc, const char *what)
{
	/* The connection's message only for the thread that holds it: another thread's
	 * statement could overwrite it while it is read. */
	const char *msg = b && b->db && buffer__held(b) ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc);
	log_errx("buffer: %s: %s", what, msg);
	return buffer__errno(rc);
}

int buffer__errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_CONSTRAINT: return -EEXIST;
	default: return -EIO;
	}
}


/* The buffers whose writer this thread holds (one at a time in practice; a few slots for
 * tests with several buffers). The mutex is plain: nothing nests, so a thread that holds it
 * never asks for it again (buffer_begin says -EDEADLK instead). */
static _Thread_local const struct buffer *held[4];

void buffer__lock(struct buffer *b)
{
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (!held[i]) {
			held[i] = b;
			return;
		}
	}
}

void buffer__unlock(struct buffer *b)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (held[i] == b) {
			held[i] = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
}

bool buffer__held(const struct buffer *b)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i] == b)
			return true;
	return false;
}

int buffer_holds_writer(const struct buffer *b) { return buffer__held(b); }
unsigned buffer__generation(struct buffer *b) { return atomic_load_explicit(&b->generation, memory_order_acquire); }
const char *buffer__sql(enum stmt_id id) { return stmt_sql[id]; }
const char *buffer_path(const struct buffer *b) { return b->path; }

static int mkdir_p(const char *dir, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int buffer_make_state_dir(const char *state_dir)
{
	return mkdir_p(state_dir, 0750);
}

int buffer_open(const char *state_dir, int flags, struct buffer **out, char **moved_aside)
{
	struct buffer *b = calloc(1, sizeof(*b));
	char why[512] = "";
	int r;

	*out = NULL;
	if (moved_aside)
		*moved_aside = NULL;
	if (!b)
		return -ENOMEM;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	/* Plain (error-checking under the sanitizers): begin takes it, commit/rollback give it
	 * back, and a thread that holds it is told -EDEADLK before it could ask again. */
#if defined(__SANITIZE_ADDRESS__)
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
#else
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_NORMAL);
#endif
	pthread_mutex_init(&b->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&b->rmu, NULL);
	b->readonly = flags & BUFFER_READONLY;
	b->check_later = !b->readonly && (flags & BUFFER_CHECK_LATER);
	if (asprintf(&b->path, "%s/%s", state_dir, BUFFER_FILE) < 0) {
		b->path = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (b->readonly) {
		if (access(b->path, R_OK) < 0) {
			r = -errno;
			goto fail;
		}
	} else if ((r = mkdir_p(state_dir, 0750)) < 0) {
		log_errx("buffer: cannot create \"%s\": %s", state_dir, strerror(-r));
		goto fail;
	}

	int rc = buffer__open_db(b, why, sizeof(why));
	if (rc != SQLITE_OK) {
		int primary = rc & 0xff;
		bool damaged = primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
		if (!damaged || b->readonly) {
			log_errx("buffer: cannot open \"%s\": %s", b->path, why);
			r = damaged ? -EBADMSG : buffer_sqlite_error(NULL, rc, "open");
			goto fail;
		}
		sqlite3_close_v2(b->db);
		b->db = NULL;
		char *dst = buffer__move_aside(b->path, "corrupt");
		if (!dst) {
			r = -EIO;
			goto fail;
		}
		log_errx("buffer: \"%s\" is damaged (%s); moved aside to \"%s\", starting a fresh buffer",
			 b->path, why, dst);
		if (moved_aside)
			*moved_aside = dst;
		else
			free(dst);
		rc = buffer__open_db(b, why, sizeof(why));
		if (rc != SQLITE_OK) {
			log_errx("buffer: cannot create \"%s\": %s", b->path, why);
			r = buffer_sqlite_error(NULL, rc, "open");
			goto fail;
		}
	}
	/* Nobody else has the buffer yet; held, so the registry's reads are the writer's. */
	buffer__lock(b);
	r = buffer__schema_open(b, &store_tables);
	buffer__unlock(b);
	if (r < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	buffer_close(b);
	if (moved_aside && *moved_aside && r < 0) {
		/* The caller still learns the file was moved, even if the fresh one failed. */
	}
	return r;
}

void buffer_close(struct buffer *b)
{
	if (!b)
		return;
	buffer_reader_close(b->idle_reader);
	stmt__list_close(&b->stmts);
	if (b->db)
		sqlite3_close_v2(b->db);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->rmu);
	free(b->path);
	free(b);
}

int buffer_begin(struct buffer *b)
{
	if (b->readonly)
		return -EROFS;
	if (buffer__held(b)) {
		log_errx("buffer: a transaction begun on a thread already inside one (they do not nest)");
		return -EDEADLK;
	}
	buffer__lock(b);
	b->head_valid = false;
	b->sealed_pending = 0;
	int rc = sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int r = buffer_sqlite_error(b, rc, "begin");
		buffer__unlock(b);
		return r;
	}
	b->in_txn = true;
	return 0;
}

/* 0 when the calling thread is inside its transaction of b. */
static int in_own_txn(struct buffer *b, const char *what)
{
	if (buffer__held(b) && b->in_txn)
		return 0;
	log_errx("buffer: %s outside a transaction of this thread", what);
	return -EPERM;
}

static void undo(struct buffer *b)
{
	b->head_valid = false;
	b->sealed_pending = 0;
	for (size_t i = 0; i < b->n_undo; i++)
		b->undo[i].fn(b->undo[i].arg);
}

static void end_txn(struct buffer *b)
{
	b->in_txn = false;
	buffer__unlock(b);
}

int buffer_commit(struct buffer *b)
{
	int r = in_own_txn(b, "commit");
	if (r < 0)
		return r;
	if (b->sealed_pending > 0) {
		/* A high-water mark, so records cut from the end are noticed by verify. */
		char num[24];
		snprintf(num, sizeof(num), "%lld", (long long)b->sealed_pending);
		r = buffer_meta_put(b, "sealed_seq", num);
		b->sealed_pending = 0;
		if (r < 0) {
			buffer_rollback(b);
			return r;
		}
	}
	b->head_valid = false;
	int rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = buffer_sqlite_error(b, rc, "commit");
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
		undo(b);
	}
	end_txn(b);
	return r;
}

void buffer_rollback(struct buffer *b)
{
	if (in_own_txn(b, "rollback") < 0)
		return;
	sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	undo(b);
	end_txn(b);
}

int buffer_on_undo(struct buffer *b, void (*fn)(void *arg), void *arg)
{
	bool mine = !buffer__held(b);
	int r = -ENOSPC;
	if (mine)
		buffer__lock(b);
	if (b->n_undo < sizeof(b->undo) / sizeof(b->undo[0])) {
		b->undo[b->n_undo++] = (struct buffer_undo){ fn, arg };
		r = 0;
	}
	if (mine)
		buffer__unlock(b);
	return r;
}

void buffer_undo_remove(struct buffer *b, void (*fn)(void *arg), void *arg)
{
	bool mine = !buffer__held(b);
	if (mine)
		buffer__lock(b);
	for (size_t i = 0; i < b->n_undo; i++) {
		if (b->undo[i].fn == fn && b->undo[i].arg == arg) {
			b->undo[i] = b->undo[--b->n_undo];
			break;
		}
	}
	if (mine)
		buffer__unlock(b);
}

bool buffer__in_txn(struct buffer *b)
{
	return buffer__held(b) && b->in_txn;
}
