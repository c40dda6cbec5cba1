/* buffer.c — the SQLite buffer: WAL + synchronous=FULL, the store's own tables (versioned by
 * the registry, schema.c), quick_check with corrupt files moved aside, and every SQL
 * statement of the module in one table below. */
#include "buffer.h"
#include "buffer_priv.h"
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
};
static const struct store_schema store_tables = {
	.owner = "store", .steps = store_steps, .n = sizeof(store_steps) / sizeof(store_steps[0]),
	.legacy_from = 1,
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

static const char zero_hash[HASH_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

int buffer_sqlite_error(struct buffer *b, int rc, const char *what)
{
	/* Copied under the mutex (recursive: callers usually hold it already) so that another
	 * thread's statement cannot overwrite the connection's message while it is read. */
	char msg[512];
	if (b && b->db) {
		buffer__lock(b);
		snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(b->db));
		buffer__unlock(b);
	} else {
		snprintf(msg, sizeof(msg), "%s", sqlite3_errstr(rc));
	}
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


/* The buffers whose writer this thread holds, and how deeply (a thread holds one at a time in
 * practice; a few slots for tests with several buffers). */
static _Thread_local struct {
	const struct buffer *b;
	int depth;
} held[4];

void buffer__lock(struct buffer *b)
{
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (held[i].b == b || !held[i].b) {
			held[i].b = b;
			held[i].depth++;
			return;
		}
	}
}

void buffer__unlock(struct buffer *b)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (held[i].b == b) {
			if (--held[i].depth == 0)
				held[i].b = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
}

bool buffer__held(const struct buffer *b)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i].b == b)
			return true;
	return false;
}

int buffer_holds_writer(const struct buffer *b) { return buffer__held(b); }
unsigned buffer__generation(struct buffer *b) { return atomic_load_explicit(&b->generation, memory_order_acquire); }
const char *buffer__sql(enum stmt_id id) { return stmt_sql[id]; }
void buffer_lock(struct buffer *b) { buffer__lock(b); }
void buffer_unlock(struct buffer *b) { buffer__unlock(b); }
sqlite3 *buffer_db(struct buffer *b) { return b->db; }
const char *buffer_path(const struct buffer *b) { return b->path; }

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int prepare_all(struct buffer *b)
{
	for (int i = 0; i < ST__COUNT; i++) {
		int rc = sqlite3_prepare_v3(b->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &b->st[i], NULL);
		if (rc != SQLITE_OK)
			return buffer_sqlite_error(b, rc, stmt_sql[i]);
	}
	return 0;
}

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
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&b->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&b->rmu, NULL);
	b->readonly = flags & BUFFER_READONLY;
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
	if ((r = buffer__schema_open(b, &store_tables)) < 0 || (r = prepare_all(b)) < 0)
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
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(b->st[i]);
	if (b->db)
		sqlite3_close_v2(b->db);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->rmu);
	free(b->ext);
	free(b->path);
	free(b);
}

int buffer_begin(struct buffer *b)
{
	if (b->readonly)
		return -EROFS;
	buffer__lock(b);
	if (b->txn_depth++ > 0)
		return 0; /* nested: the outer transaction decides */
	b->head_valid = false;
	b->sealed_pending = 0;
	int rc = sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		b->txn_depth--;
		int r = buffer_sqlite_error(b, rc, "begin");
		buffer__unlock(b);
		return r;
	}
	return 0;
}

int buffer_commit(struct buffer *b)
{
	int r = 0;
	if (b->txn_depth == 1 && b->sealed_pending > 0) {
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
	if (b->txn_depth == 1) {
		b->head_valid = false;
		int rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			r = buffer_sqlite_error(b, rc, "commit");
			sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	b->txn_depth--;
	buffer__unlock(b);
	return r;
}

void buffer_rollback(struct buffer *b)
{
	if (b->txn_depth == 1) {
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
		b->head_valid = false;
		b->sealed_pending = 0;
	}
	b->txn_depth--;
	buffer__unlock(b);
}

static sqlite3_stmt *stmt(struct buffer *b, enum stmt_id id)
{
	sqlite3_stmt *s = b->st[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void copy_hash(char dst[HASH_HEX_LEN + 1], const unsigned char *src)
{
	if (src && strlen((const char *)src) == HASH_HEX_LEN)
		memcpy(dst, src, HASH_HEX_LEN + 1);
	else
		memcpy(dst, zero_hash, HASH_HEX_LEN + 1);
}

void buffer_pruned(struct buffer *b, struct chain_head *pruned)
{
	char *v = NULL;
	pruned->seq = 0;
	memcpy(pruned->hash, zero_hash, sizeof(pruned->hash));
	if (buffer_meta_get(b, "pruned_seq", &v) == 0 && v) {
		pruned->seq = strtoll(v, NULL, 10);
		free(v);
		v = NULL;
		if (buffer_meta_get(b, "pruned_hash", &v) == 0 && v)
			copy_hash(pruned->hash, (const unsigned char *)v);
		free(v);
	}
}

void buffer_head(struct buffer *b, struct chain_head *head)
{
	buffer__lock(b);
	if (b->txn_depth > 0 && b->head_valid) {
		*head = b->head;
		buffer__unlock(b);
		return;
	}
	sqlite3_stmt *s = stmt(b, ST_HEAD);
	if (sqlite3_step(s) == SQLITE_ROW) {
		head->seq = sqlite3_column_int64(s, 0);
		copy_hash(head->hash, sqlite3_column_text(s, 1));
	} else {
		buffer_pruned(b, head);
	}
	sqlite3_reset(s);
	if (b->txn_depth > 0) {
		b->head = *head;
		b->head_valid = true;
	}
	buffer__unlock(b);
}

int64_t buffer_first_seq(struct buffer *b)
{
	int64_t seq = 0;
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_FIRST);
	if (sqlite3_step(s) == SQLITE_ROW)
		seq = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	buffer__unlock(b);
	return seq;
}

int buffer_append_record(struct buffer *b, int64_t seq, const char *kind, const char *line,
			 size_t line_len, const char *hash, int64_t sealed_at)
{
	if (b->txn_depth == 0)
		return -EPERM; /* sealing outside a transaction could tear a record from its cursor */
	sqlite3_stmt *s = stmt(b, ST_APPEND);
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, line, (int)line_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, hash, HASH_HEX_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, sealed_at);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		b->head_valid = false;
		return buffer_sqlite_error(b, rc, "sealing a record");
	}
	b->head.seq = seq;
	memcpy(b->head.hash, hash, HASH_HEX_LEN);
	b->head.hash[HASH_HEX_LEN] = '\0';
	b->head_valid = true;
	b->sealed_pending = seq;
	return 0;
}

void buffer__fill_record(sqlite3_stmt *s, struct stored_record *r, bool copy)
{
	r->seq = sqlite3_column_int64(s, 0);
	r->line_len = (size_t)sqlite3_column_bytes(s, 2);
	if (copy) {
		r->kind = strdup((const char *)sqlite3_column_text(s, 1));
		const unsigned char *line = sqlite3_column_text(s, 2);
		r->line = malloc(r->line_len + 1);
		if (r->line) {
			memcpy(r->line, line, r->line_len);
			r->line[r->line_len] = '\0';
		}
	} else {
		r->kind = (char *)sqlite3_column_text(s, 1);
		r->line = (char *)sqlite3_column_text(s, 2);
	}
	const unsigned char *h = sqlite3_column_text(s, 3);
	/* Keep whatever is stored, even if damaged, so verify can compare it. */
	snprintf(r->hash, sizeof(r->hash), "%s", h ? (const char *)h : "");
	r->sealed_at = sqlite3_column_int64(s, 4);
}

void buffer_record_clear(struct stored_record *r)
{
	if (!r)
		return;
	free(r->kind);
	free(r->line);
	memset(r, 0, sizeof(*r));
}

int buffer_each_record(struct buffer *b, int64_t from, int64_t to, buffer_record_cb cb, void *arg)
{
	int ret = 0;
	if (!buffer__held(b)) {
		/* Committed records only, on a reader: sealing goes on meanwhile. */
		struct buffer_reader *r;
		if (buffer__reader_get(b, &r) == 0) {
			ret = buffer_reader_each_record(r, from, to, cb, arg);
			buffer__reader_put(b, r);
			return ret;
		} /* no reader (logged): read on the writer, as before readers */
	}
	buffer__lock(b);
	/* A private statement: the callback may call back into the buffer. */
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(b->db, stmt_sql[ST_RANGE], -1, &s, NULL);
	if (rc != SQLITE_OK) {
		ret = buffer_sqlite_error(b, rc, "reading records");
		goto out;
	}
	bool own_txn = b->txn_depth == 0;
	if (own_txn)
		sqlite3_exec(b->db, "BEGIN", NULL, NULL, NULL); /* one snapshot for the whole walk */
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, to);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct stored_record r;
		buffer__fill_record(s, &r, false);
		if ((ret = cb(&r, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = buffer_sqlite_error(b, rc, "reading records");
	sqlite3_finalize(s);
	if (own_txn)
		sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
out:
	buffer__unlock(b);
	return ret;
}

int buffer_get_record(struct buffer *b, int64_t seq, struct stored_record *r)
{
	int ret = -ENOENT;
	memset(r, 0, sizeof(*r));
	if (!buffer__held(b)) {
		struct buffer_reader *rd;
		if (buffer__reader_get(b, &rd) == 0) {
			ret = buffer_reader_get_record(rd, seq, r);
			buffer__reader_put(b, rd);
			return ret;
		}
	}
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_ONE);
	sqlite3_bind_int64(s, 1, seq);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		buffer__fill_record(s, r, true);
		ret = r->kind && r->line ? 0 : -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		ret = buffer_sqlite_error(b, rc, "reading a record");
	}
	sqlite3_reset(s);
	buffer__unlock(b);
	return ret;
}

int buffer_hash_of(struct buffer *b, int64_t seq, char hash[HASH_HEX_LEN + 1])
{
	if (seq == 0) {
		memcpy(hash, zero_hash, HASH_HEX_LEN + 1);
		return 0;
	}
	struct chain_head pruned;
	buffer_pruned(b, &pruned);
	if (seq == pruned.seq) {
		memcpy(hash, pruned.hash, HASH_HEX_LEN + 1);
		return 0;
	}
	struct stored_record r;
	int ret = buffer_get_record(b, seq, &r);
	if (ret == 0)
		copy_hash(hash, (const unsigned char *)r.hash);
	buffer_record_clear(&r);
	return ret;
}

int buffer_meta_get(struct buffer *b, const char *key, char **value)
{
	int ret = 0;
	*value = NULL;
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_META_GET);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*value = strdup((const char *)sqlite3_column_text(s, 0));
		if (!*value)
			ret = -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		ret = buffer_sqlite_error(b, rc, "reading meta");
	}
	sqlite3_reset(s);
	buffer__unlock(b);
	return ret;
}

int buffer_meta_put(struct buffer *b, const char *key, const char *value)
{
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_META_PUT);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	/* The message is the connection's, so it is read before another thread can step. */
	int r = rc == SQLITE_DONE ? 0 : buffer_sqlite_error(b, rc, "writing meta");
	sqlite3_reset(s);
	buffer__unlock(b);
	return r;
}

static char *dup_col(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? strdup((const char *)t) : NULL;
}

int buffer_sink_get(struct buffer *b, const char *sink, struct sink_state *st)
{
	int ret = 0;
	memset(st, 0, sizeof(*st));
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_SINK_GET);
	sqlite3_bind_text(s, 1, sink, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		st->acked_seq = sqlite3_column_int64(s, 0);
		st->last_ok = sqlite3_column_int64(s, 1);
		st->next_attempt = sqlite3_column_int64(s, 2);
		st->last_error = dup_col(s, 3);
		st->alarm = dup_col(s, 4);
	} else if (rc != SQLITE_DONE) {
		ret = buffer_sqlite_error(b, rc, "reading a sink");
	}
	sqlite3_reset(s);
	buffer__unlock(b);
	return ret;
}

int buffer_sink_put(struct buffer *b, const char *sink, const struct sink_state *st)
{
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_SINK_PUT);
	sqlite3_bind_text(s, 1, sink, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, st->acked_seq);
	sqlite3_bind_int64(s, 3, st->last_ok);
	sqlite3_bind_int64(s, 4, st->next_attempt);
	sqlite3_bind_text(s, 5, st->last_error, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, st->alarm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	/* The message is the connection's, so it is read before another thread can step. */
	int r = rc == SQLITE_DONE ? 0 : buffer_sqlite_error(b, rc, "writing a sink");
	sqlite3_reset(s);
	buffer__unlock(b);
	return r;
}

int buffer_sink_update(struct buffer *b, const char *sink, int64_t acked, int64_t last_ok,
		       int64_t next_attempt, const char *error, const char *alarm)
{
	struct sink_state st;
	buffer__lock(b);
	int r = buffer_sink_get(b, sink, &st);
	if (r == 0) {
		if (acked >= 0)
			st.acked_seq = acked;
		if (last_ok)
			st.last_ok = last_ok;
		st.next_attempt = next_attempt;
		free(st.last_error);
		st.last_error = error ? strdup(error) : NULL;
		if (alarm) {
			free(st.alarm);
			st.alarm = strdup(alarm);
		}
		r = buffer_sink_put(b, sink, &st);
		buffer_sink_clear(&st);
	}
	buffer__unlock(b);
	return r;
}

void buffer_sink_clear(struct sink_state *st)
{
	if (!st)
		return;
	free(st->last_error);
	free(st->alarm);
	memset(st, 0, sizeof(*st));
}

int buffer_cursor_get(struct buffer *b, const char *key, void **data, size_t *len)
{
	int ret = -ENOENT;
	*data = NULL;
	*len = 0;
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_CURSOR_GET);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(s, 0);
		*data = malloc((size_t)n + 1);
		if (*data) {
			if (n)
				memcpy(*data, sqlite3_column_blob(s, 0), (size_t)n);
			((char *)*data)[n] = '\0';
			*len = (size_t)n;
			ret = 0;
		} else {
			ret = -ENOMEM;
		}
	} else if (rc != SQLITE_DONE) {
		ret = buffer_sqlite_error(b, rc, "reading a cursor");
	}
	sqlite3_reset(s);
	buffer__unlock(b);
	return ret;
}

int buffer_cursor_put(struct buffer *b, const char *key, const void *data, size_t len)
{
	buffer__lock(b);
	sqlite3_stmt *s = stmt(b, ST_CURSOR_PUT);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, len ? data : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, clock_wall());
	int rc = sqlite3_step(s);
	/* The message is the connection's, so it is read before another thread can step. */
	int r = rc == SQLITE_DONE ? 0 : buffer_sqlite_error(b, rc, "writing a cursor");
	sqlite3_reset(s);
	buffer__unlock(b);
	return r;
}

int64_t buffer_bytes(struct buffer *b)
{
	int64_t pages = 0, freelist = 0, page_size = 4096;
	buffer__lock(b);
	pragma_int(b->db, "PRAGMA page_count", &pages);
	pragma_int(b->db, "PRAGMA freelist_count", &freelist);
	pragma_int(b->db, "PRAGMA page_size", &page_size);
	buffer__unlock(b);
	/* The WAL is not counted: its content moves into these pages at each checkpoint, and
	 * journal_size_limit keeps the file itself small. */
	return (pages - freelist) * page_size;
}

int64_t buffer_prune(struct buffer *b, const char *const sinks[], int64_t before)
{
	int64_t min_acked = INT64_MAX;
	int r = buffer_begin(b);
	if (r < 0)
		return r;
	for (size_t i = 0; sinks && sinks[i]; i++) {
		sqlite3_stmt *s = stmt(b, ST_MIN_ACK);
		sqlite3_bind_text(s, 1, sinks[i], -1, SQLITE_STATIC);
		int64_t acked = 0;
		if (sqlite3_step(s) == SQLITE_ROW)
			acked = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (acked < min_acked)
			min_acked = acked;
	}
	if (min_acked == INT64_MAX)
		min_acked = 0; /* no sink configured: nothing is acknowledged, nothing goes */
	int64_t point = 0;
	sqlite3_stmt *s = stmt(b, ST_PRUNE_POINT);
	sqlite3_bind_int64(s, 1, min_acked);
	sqlite3_bind_int64(s, 2, before);
	if (sqlite3_step(s) == SQLITE_ROW)
		point = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	int64_t first = buffer_first_seq(b);
	if (point <= 0 || first == 0 || point < first) {
		buffer_rollback(b);
		return 0;
	}
	char hash[HASH_HEX_LEN + 1], num[32];
	if ((r = buffer_hash_of(b, point, hash)) < 0)
		goto fail;
	snprintf(num, sizeof(num), "%lld", (long long)point);
	if ((r = buffer_meta_put(b, "pruned_seq", num)) < 0 ||
	    (r = buffer_meta_put(b, "pruned_hash", hash)) < 0)
		goto fail;
	s = stmt(b, ST_PRUNE);
	sqlite3_bind_int64(s, 1, point);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		r = buffer_sqlite_error(b, rc, "pruning");
		goto fail;
	}
	if ((r = buffer_commit(b)) < 0)
		return r;
	buffer__lock(b);
	sqlite3_exec(b->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
	buffer__unlock(b);
	return point - first + 1;
fail:
	buffer_rollback(b);
	return r;
}
