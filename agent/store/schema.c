/* schema.c — the migration registry: one version per owner in the file, each owner's steps
 * applied in one transaction, files from before the registry adopted without a table
 * re-created, and a file a newer agent wrote refused. */
#include "schema.h"
#include "buffer.h"
#include "buffer_priv.h"
#include "log.h"
#include "stmt.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

/* PRAGMA user_version says how the file keeps its versions: 0 a new file, 1..3 the single
 * version of a file from before the registry, STORE_FORMAT per owner in schema_owners. An
 * older agent reads 4 as "newer than mine" and refuses the file instead of misreading it. */
#define STORE_FORMAT 4
#define META_LEGACY "legacy_user_version"

static int exec(struct buffer *b, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		log_errx("buffer: \"%s\": %s", b->path, err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return buffer_sqlite_error(NULL, rc, "changing the schema");
	}
	return 0;
}

/* One integer from a query with at most one text parameter; *found false when no row. On the
 * writer inside its transaction (or at open), else on a reader (a READONLY buffer). */
static int query_int(struct buffer *b, const char *sql, const char *param, int64_t *out, bool *found)
{
	struct store_stmt *st;
	*found = false;
	int r = stmt_read(b, sql, &st);
	if (r < 0)
		return r;
	if (param)
		stmt_bind_text(st, 1, param);
	int rc = stmt_step(st);
	if (rc == STMT_ROW) {
		*out = stmt_int64(st, 0);
		*found = true;
	}
	r = rc == STMT_ROW || rc == STMT_DONE ? 0 : stmt_error(st, rc, "reading the schema");
	stmt_done(st);
	return r;
}

static int64_t legacy_version(const struct buffer *b, const struct store_schema *s)
{
	return s->legacy_from > 0 && b->legacy >= s->legacy_from ? 1 : 0;
}

/* *v the owner's version; *row false when it is only implied by a file from before the
 * registry (a writer then records it). */
static int owner_version(struct buffer *b, const struct store_schema *s, int64_t *v, bool *row)
{
	bool found = false;
	*v = 0;
	if (b->registry) {
		int r = query_int(b, "SELECT version FROM schema_owners WHERE owner = ?1", s->owner, v, &found);
		if (r < 0)
			return r;
	}
	if (!found)
		*v = legacy_version(b, s);
	*row = found;
	return 0;
}

/* A READONLY buffer may read the tables at version v as they are. */
static bool readable(const struct store_schema *s, int64_t v)
{
	return v == (int64_t)s->n || (s->readable_from > 0 && v >= (int64_t)s->readable_from && v < (int64_t)s->n);
}

static int refuse_newer(struct buffer *b, const struct store_schema *s, int64_t v)
{
	log_errx("buffer: \"%s\" holds %s tables of version %lld, newer than this agent's %zu: "
		 "written by a newer labshare-agent", b->path, s->owner, (long long)v, s->n);
	return -EPROTO;
}

/* Inside a write transaction: the steps from v on, then the owner's row. */
static int apply_steps(struct buffer *b, const struct store_schema *s, int64_t v)
{
	int r = 0;
	for (size_t i = (size_t)v; i < s->n && r == 0; i++)
		r = exec(b, s->steps[i]);
	if (r < 0)
		return r;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(b->db, "INSERT INTO schema_owners(owner, version) VALUES(?1, ?2)"
				    " ON CONFLICT(owner) DO UPDATE SET version = excluded.version",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, s->owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)s->n);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE)
		return buffer_sqlite_error(b, rc, "recording a schema version");
	if ((size_t)v < s->n && v > 0)
		log_notice("buffer: \"%s\": %s tables migrated from version %lld to %zu", b->path, s->owner,
			   (long long)v, s->n);
	return 0;
}

/* Read without the writer's mutex too (readers ask before each read): an entry is written
 * before the count that publishes it. */
static bool known(const struct buffer *b, const struct store_schema *s)
{
	size_t n = atomic_load_explicit(&b->n_known, memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		if (b->known[i] == s)
			return true;
	return false;
}

static void remember(struct buffer *b, const struct store_schema *s)
{
	size_t n = atomic_load_explicit(&b->n_known, memory_order_relaxed);
	if (n < sizeof(b->known) / sizeof(b->known[0])) {
		b->known[n] = s;
		atomic_store_explicit(&b->n_known, n + 1, memory_order_release);
	}
}

int buffer_schema(struct buffer *b, const struct store_schema *s)
{
	int64_t v = 0;
	bool row = false;
	if (known(b, s))
		return 0; /* up to date already: no need to wait for the writer */
	if (buffer__held(b)) {
		log_errx("buffer: %s tables first used inside a transaction: their owner brings them up "
			 "to date before (buffer_schema)", s->owner);
		return -EDEADLK;
	}
	int r;
	if (b->readonly) {
		/* Read as it is, on a reader: a READONLY buffer never migrates. */
		if ((r = owner_version(b, s, &v, &row)) < 0)
			return r;
		if (v > (int64_t)s->n)
			return refuse_newer(b, s, v);
		if (!readable(s, v)) {
			if (v > 0)
				log_errx("buffer: \"%s\" needs its %s tables migrated to version %zu: start the "
					 "daemon once", b->path, s->owner, s->n);
			return v > 0 ? -EROFS : -ENOENT;
		}
		remember(b, s);
		return 0;
	}
	/* Asked inside the write lock: another process (a `record` beside the daemon) may have
	 * migrated meanwhile. */
	if ((r = buffer_begin(b)) < 0)
		return r;
	r = owner_version(b, s, &v, &row);
	if (r == 0 && v > (int64_t)s->n)
		r = refuse_newer(b, s, v);
	else if (r == 0 && (v < (int64_t)s->n || !row))
		r = apply_steps(b, s, v);
	if (r < 0) {
		buffer_rollback(b);
		return r;
	}
	if ((r = buffer_commit(b)) < 0)
		return r;
	remember(b, s);
	return 0;
}

/* How the file keeps its versions, and the store's own version in it. */
static int read_state(struct buffer *b, const struct store_schema *store, int64_t *uv, int64_t *v,
		      bool *row)
{
	bool found;
	int r = query_int(b, "PRAGMA user_version", NULL, uv, &found);
	if (r < 0)
		return r;
	if (*uv > STORE_FORMAT) {
		log_errx("buffer: \"%s\" has schema format %lld, newer than this agent's %d: written by "
			 "a newer labshare-agent", b->path, (long long)*uv, STORE_FORMAT);
		return -EPROTO;
	}
	b->registry = *uv == STORE_FORMAT;
	b->legacy = b->registry ? 0 : *uv;
	if (b->registry) {
		/* meta is the store's step 1, made in the transaction that set the format. */
		int64_t legacy = 0;
		if ((r = query_int(b, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = '" META_LEGACY "'",
				   NULL, &legacy, &found)) < 0)
			return r;
		b->legacy = legacy;
	}
	if ((r = owner_version(b, store, v, row)) < 0)
		return r;
	return *v > (int64_t)store->n ? refuse_newer(b, store, *v) : 0;
}

/* At open, the store's own entry: a file from before the registry is adopted (schema_owners
 * made, the old number kept in meta for the other owners' first use) in the same
 * transaction that brings the store's tables up to date. */
int buffer__schema_open(struct buffer *b, const struct store_schema *store)
{
	int64_t uv = 0, v = 0;
	bool row = false;
	int r = read_state(b, store, &uv, &v, &row);
	if (r < 0)
		return r;
	if (b->registry && row && v == (int64_t)store->n) {
		remember(b, store);
		return 0;
	}
	if (b->readonly) {
		if (readable(store, v)) {
			remember(b, store); /* read as it is; adopted or migrated at the daemon's next start */
			return 0;
		}
		log_errx("buffer: \"%s\" needs migrating to schema %zu: start the daemon once", b->path,
			 store->n);
		return -EROFS;
	}
	if ((r = exec(b, "BEGIN IMMEDIATE")) < 0)
		return r;
	/* Again inside the write lock: another process may have adopted the file meanwhile. */
	if ((r = read_state(b, store, &uv, &v, &row)) < 0)
		goto fail;
	if (b->registry && row && v == (int64_t)store->n) {
		if ((r = exec(b, "COMMIT")) < 0)
			goto fail;
		remember(b, store);
		return 0;
	}
	if (!b->registry) {
		char sql[160];
		snprintf(sql, sizeof(sql), "CREATE TABLE schema_owners(owner TEXT PRIMARY KEY,"
			 " version INTEGER NOT NULL) WITHOUT ROWID; PRAGMA user_version = %d", STORE_FORMAT);
		if ((r = exec(b, sql)) < 0)
			goto fail;
		b->registry = true;
	}
	if ((r = apply_steps(b, store, v)) < 0)
		goto fail;
	if (uv > 0 && uv < STORE_FORMAT) {
		char sql[128];
		snprintf(sql, sizeof(sql), "INSERT INTO meta(key, value) VALUES('" META_LEGACY "', '%lld')",
			 (long long)uv);
		if ((r = exec(b, sql)) < 0)
			goto fail;
		log_notice("buffer: \"%s\": schema %lld adopted into per-module versions", b->path,
			   (long long)uv);
	}
	if ((r = exec(b, "COMMIT")) < 0)
		goto fail;
	remember(b, store);
	return 0;
fail:
	sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	b->registry = uv == STORE_FORMAT;
	return r;
}
