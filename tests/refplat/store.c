/* store.c — what the platform holds, in SQLite: records(agent_id, seq, line, hash) per chain and
 * a requests log for tests. Every statement of the module is here, prepared once, under one mutex.
 * Heads are always read from records (never cached) so a test may tamper with the file directly. */
#include "refplat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

static const char SCHEMA_SQL[] =
	/* 16 KiB pages and a 64 MiB cache: ~25 % more ingest on 300-byte lines than the defaults.
	 * page_size only takes on a new file, and must come before WAL. */
	"PRAGMA page_size=16384;"
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"PRAGMA cache_size=-65536;"
	"CREATE TABLE IF NOT EXISTS records(agent_id TEXT, seq INTEGER, line TEXT, hash TEXT,"
	" received_at INTEGER, PRIMARY KEY(agent_id, seq));"
	"CREATE TABLE IF NOT EXISTS requests(id INTEGER PRIMARY KEY, at_ms INTEGER, conn INTEGER,"
	" method TEXT, path TEXT, status INTEGER, replied INTEGER, body_bytes INTEGER, gzip INTEGER,"
	" idempotency_key TEXT, user_agent TEXT, content_type TEXT, content_encoding TEXT,"
	" agent_id TEXT, first_seq INTEGER, last_seq INTEGER, fault TEXT, error TEXT);";

enum stmt_id {
	S_HEAD, S_HASH_AT, S_RANGE_HASH, S_INSERT, S_RECORDS, S_LOG, S_NEXT_AGENT,
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_COUNT
};

static const char *const STMT_SQL[S_COUNT] = {
	[S_HEAD] = "SELECT seq, hash FROM records WHERE agent_id = ?1 ORDER BY seq DESC LIMIT 1",
	[S_HASH_AT] = "SELECT hash FROM records WHERE agent_id = ?1 AND seq = ?2",
	[S_RANGE_HASH] = "SELECT seq, hash FROM records WHERE agent_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
	[S_INSERT] = "INSERT INTO records(agent_id, seq, line, hash, received_at) VALUES(?1, ?2, ?3, ?4, ?5)",
	[S_RECORDS] = "SELECT line FROM records WHERE agent_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
	[S_LOG] = "INSERT INTO requests(at_ms, conn, method, path, status, replied, body_bytes, gzip,"
		  " idempotency_key, user_agent, content_type, content_encoding, agent_id, first_seq, last_seq,"
		  " fault, error) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	/* Walks the distinct agents through the primary-key index, one seek each, not a scan. */
	[S_NEXT_AGENT] = "SELECT agent_id FROM records WHERE agent_id > ?1 ORDER BY agent_id LIMIT 1",
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
};

struct rp_store {
	sqlite3 *db;
	pthread_mutex_t mu;
	sqlite3_stmt *st[S_COUNT];
};

static int db_error(struct rp_store *s, const char *what)
{
	rp_log("sqlite: %s: %s", what, sqlite3_errmsg(s->db));
	return -EIO;
}

/* Reset and clear bindings so no statement keeps pointers into a freed request body. */
static sqlite3_stmt *stmt(struct rp_store *s, enum stmt_id id)
{
	sqlite3_reset(s->st[id]);
	sqlite3_clear_bindings(s->st[id]);
	return s->st[id];
}

static int exec_simple(struct rp_store *s, enum stmt_id id)
{
	sqlite3_stmt *q = stmt(s, id);
	int r = sqlite3_step(q);
	sqlite3_reset(q);
	return r == SQLITE_DONE ? 0 : db_error(s, STMT_SQL[id]);
}

int store_open(const char *path, struct rp_store **out)
{
	struct rp_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		rp_log("cannot open --db '%s': %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	/* Tests read the file while we write: wait for their locks instead of failing. */
	sqlite3_busy_timeout(s->db, 5000);
	char *err = NULL;
	if (sqlite3_exec(s->db, SCHEMA_SQL, NULL, NULL, &err) != SQLITE_OK) {
		rp_log("cannot set up --db '%s': %s", path, err ? err : "?");
		sqlite3_free(err);
		goto fail;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
			db_error(s, STMT_SQL[i]);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	store_free(s);
	return -EIO;
}

void store_free(struct rp_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void copy_hash(char dst[RP_HASH_HEX + 1], const unsigned char *src, int len)
{
	if (!src || len != RP_HASH_HEX) {
		/* Not a hash we wrote (a tampered file): something no client can match. */
		memset(dst, '?', RP_HASH_HEX);
	} else {
		memcpy(dst, src, RP_HASH_HEX);
	}
	dst[RP_HASH_HEX] = '\0';
}

static int head_locked(struct rp_store *s, const char *agent, struct rp_head *out)
{
	sqlite3_stmt *q = stmt(s, S_HEAD);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	int r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		out->seq = sqlite3_column_int64(q, 0);
		copy_hash(out->hash, sqlite3_column_text(q, 1), sqlite3_column_bytes(q, 1));
	} else if (r == SQLITE_DONE) {
		out->seq = 0;
		memcpy(out->hash, rp_zero_hash, sizeof(out->hash));
	} else {
		return db_error(s, "head");
	}
	sqlite3_reset(q);
	return 0;
}

static int hash_at_locked(struct rp_store *s, const char *agent, long long seq, char out[RP_HASH_HEX + 1])
{
	if (seq == 0) {
		memcpy(out, rp_zero_hash, RP_HASH_HEX + 1);
		return 0;
	}
	sqlite3_stmt *q = stmt(s, S_HASH_AT);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, seq);
	int r = sqlite3_step(q);
	int ret = 0;
	if (r == SQLITE_ROW)
		copy_hash(out, sqlite3_column_text(q, 0), sqlite3_column_bytes(q, 0));
	else if (r == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = db_error(s, "hash at seq");
	sqlite3_reset(q);
	return ret;
}

int store_head(struct rp_store *s, const char *agent, struct rp_head *out)
{
	pthread_mutex_lock(&s->mu);
	int r = head_locked(s, agent, out);
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_hash_at(struct rp_store *s, const char *agent, long long seq, char out[RP_HASH_HEX + 1])
{
	pthread_mutex_lock(&s->mu);
	int r = hash_at_locked(s, agent, seq, out);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Every stored record of first..upto must carry the hash the batch computes for it. */
static int overlap_matches(struct rp_store *s, const struct rp_batch *b, long long upto, bool *match)
{
	sqlite3_stmt *q = stmt(s, S_RANGE_HASH);
	sqlite3_bind_text(q, 1, b->agent_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, b->first_seq);
	sqlite3_bind_int64(q, 3, upto);
	long long want = b->first_seq;
	int r;
	*match = true;
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		long long seq = sqlite3_column_int64(q, 0);
		const unsigned char *h = sqlite3_column_text(q, 1);
		const struct rp_record *rec = &b->recs[seq - b->first_seq];
		if (seq != want || sqlite3_column_bytes(q, 1) != RP_HASH_HEX || memcmp(h, rec->hash, RP_HASH_HEX) != 0) {
			*match = false;
			break;
		}
		want++;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		sqlite3_reset(q);
		return db_error(s, "duplicate check");
	}
	if (want != upto + 1)
		*match = false; /* a hole in the stored chain (a tampered file) */
	sqlite3_reset(q);
	return 0;
}

static int insert_new(struct rp_store *s, const struct rp_batch *b, long long from)
{
	if (exec_simple(s, S_BEGIN) < 0)
		return -EIO;
	sqlite3_int64 now = (sqlite3_int64)time(NULL);
	sqlite3_stmt *q = stmt(s, S_INSERT);
	sqlite3_bind_text(q, 1, b->agent_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, now);
	for (long long seq = from; seq <= b->last_seq; seq++) {
		const struct rp_record *rec = &b->recs[seq - b->first_seq];
		sqlite3_bind_int64(q, 2, seq);
		sqlite3_bind_text(q, 3, rec->line, (int)rec->len, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, rec->hash, RP_HASH_HEX, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE) {
			db_error(s, "insert record");
			sqlite3_reset(q);
			exec_simple(s, S_ROLLBACK);
			return -EIO;
		}
		sqlite3_reset(q);
	}
	sqlite3_clear_bindings(q);
	if (exec_simple(s, S_COMMIT) < 0) {
		exec_simple(s, S_ROLLBACK);
		return -EIO;
	}
	return 0;
}

int store_apply(struct rp_store *s, const struct rp_batch *b, struct rp_apply *out)
{
	int ret = 0;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->mu);
	struct rp_head h;
	if ((ret = head_locked(s, b->agent_id, &h)) < 0)
		goto out;
	out->head = h;
	out->outcome = RP_APPLY_SEQUENCE;
	if (b->first_seq > h.seq + 1)
		goto out; /* a gap */

	char prev[RP_HASH_HEX + 1];
	if (b->first_seq - 1 == h.seq) {
		memcpy(prev, h.hash, sizeof(prev));
	} else {
		ret = hash_at_locked(s, b->agent_id, b->first_seq - 1, prev);
		if (ret == -ENOENT) {
			ret = 0;
			goto out; /* a hole in the stored chain: nothing to verify against */
		}
		if (ret < 0)
			goto out;
	}
	if (strcmp(prev, b->prev_hash) != 0)
		goto out; /* another chain */

	long long upto = b->last_seq < h.seq ? b->last_seq : h.seq;
	if (upto >= b->first_seq) {
		bool match;
		if ((ret = overlap_matches(s, b, upto, &match)) < 0)
			goto out;
		if (!match)
			goto out; /* an altered duplicate */
		out->dups = upto - b->first_seq + 1;
	}
	if (b->last_seq > h.seq) {
		long long from = h.seq + 1 > b->first_seq ? h.seq + 1 : b->first_seq;
		if ((ret = insert_new(s, b, from)) < 0)
			goto out;
		out->inserted = b->last_seq - from + 1;
		out->head.seq = b->last_seq;
		memcpy(out->head.hash, b->recs[b->nrecs - 1].hash, sizeof(out->head.hash));
	}
	out->outcome = RP_APPLY_OK;
out:
	pthread_mutex_unlock(&s->mu);
	return ret;
}

int store_records(struct rp_store *s, const char *agent, long long from, long long to, size_t cap, char **out,
		  size_t *outlen)
{
	size_t n = 0, alloc = 4096;
	char *buf = malloc(alloc);
	int ret = 0, r;
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = stmt(s, S_RECORDS);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, from);
	sqlite3_bind_int64(q, 3, to);
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		const void *line = sqlite3_column_blob(q, 0);
		size_t len = (size_t)sqlite3_column_bytes(q, 0);
		if (n + len + 1 > cap) {
			ret = -E2BIG;
			break;
		}
		if (n + len + 1 > alloc) {
			size_t na = alloc;
			while (na < n + len + 1)
				na *= 2;
			char *nb = realloc(buf, na);
			if (!nb) {
				ret = -ENOMEM;
				break;
			}
			buf = nb;
			alloc = na;
		}
		if (len)
			memcpy(buf + n, line, len);
		n += len;
		buf[n++] = '\n';
	}
	if (ret == 0 && r != SQLITE_DONE)
		ret = db_error(s, "read records");
	sqlite3_reset(q);
	pthread_mutex_unlock(&s->mu);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

static void bind_opt_text(sqlite3_stmt *q, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

int store_log_request(struct rp_store *s, const struct rp_reqlog *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&s->mu);
	sqlite3_stmt *q = stmt(s, S_LOG);
	sqlite3_bind_int64(q, 1, (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)l->conn_id);
	bind_opt_text(q, 3, l->method);
	bind_opt_text(q, 4, l->path);
	sqlite3_bind_int(q, 5, l->status);
	sqlite3_bind_int(q, 6, l->replied);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)l->body_bytes);
	sqlite3_bind_int(q, 8, l->gzip);
	bind_opt_text(q, 9, l->idempotency_key);
	bind_opt_text(q, 10, l->user_agent);
	bind_opt_text(q, 11, l->content_type);
	bind_opt_text(q, 12, l->content_encoding);
	bind_opt_text(q, 13, l->agent_id);
	if (l->first_seq > 0) {
		sqlite3_bind_int64(q, 14, l->first_seq);
		sqlite3_bind_int64(q, 15, l->last_seq);
	}
	bind_opt_text(q, 16, l->fault);
	bind_opt_text(q, 17, l->error);
	int r = sqlite3_step(q);
	int ret = r == SQLITE_DONE ? 0 : db_error(s, "log request");
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

cJSON *store_heads_json(struct rp_store *s)
{
	cJSON *o = cJSON_CreateObject();
	char agent[RP_AGENT_ID_MAX + 1] = "";
	if (!o)
		return NULL;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		sqlite3_stmt *q = stmt(s, S_NEXT_AGENT);
		sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
		int r = sqlite3_step(q);
		if (r != SQLITE_ROW) {
			if (r != SQLITE_DONE)
				db_error(s, "list agents");
			sqlite3_reset(q);
			break;
		}
		const char *a = (const char *)sqlite3_column_text(q, 0);
		int n = snprintf(agent, sizeof(agent), "%s", a ? a : "");
		sqlite3_reset(q);
		if (n <= 0 || (size_t)n >= sizeof(agent))
			break; /* not an id we stored (a tampered file): stop rather than loop */
		struct rp_head h;
		if (head_locked(s, agent, &h) < 0)
			break;
		cJSON_AddNumberToObject(o, agent, (double)h.seq);
	}
	pthread_mutex_unlock(&s->mu);
	return o;
}
