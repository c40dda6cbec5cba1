/* buffer_rows.c — the store's own rows: sealed records, the chain head, facts (meta), sink and
 * driver cursors, pruning. Reads run where the calling thread reads (stmt_read: the writer
 * inside its transaction, else a reader); every write runs inside buffer_begin … commit. */
#include "buffer.h"
#include "buffer_priv.h"
#include "clock.h"
#include "log.h"
#include "stmt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char zero_hash[HASH_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static void copy_hash(char dst[HASH_HEX_LEN + 1], const char *src)
{
	if (src && strlen(src) == HASH_HEX_LEN)
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
			copy_hash(pruned->hash, v);
		free(v);
	}
}

void buffer_head(struct buffer *b, struct chain_head *head)
{
	bool txn = buffer__in_txn(b);
	if (txn && b->head_valid) {
		*head = b->head;
		return;
	}
	struct store_stmt *s;
	bool found = false;
	if (stmt_read(b, buffer__sql(ST_HEAD), &s) == 0) {
		if (stmt_step(s) == STMT_ROW) {
			head->seq = stmt_int64(s, 0);
			copy_hash(head->hash, stmt_text(s, 1));
			found = true;
		}
		stmt_done(s);
	}
	if (!found)
		buffer_pruned(b, head);
	if (txn) {
		/* Inside a write transaction nobody else can seal: kept until it ends. */
		b->head = *head;
		b->head_valid = true;
	}
}

int64_t buffer_first_seq(struct buffer *b)
{
	int64_t seq = 0;
	struct store_stmt *s;
	if (stmt_read(b, buffer__sql(ST_FIRST), &s) == 0) {
		if (stmt_step(s) == STMT_ROW)
			seq = stmt_int64(s, 0);
		stmt_done(s);
	}
	return seq;
}

int buffer_append_record(struct buffer *b, int64_t seq, const char *kind, const char *line,
			 size_t line_len, const char *hash, int64_t sealed_at)
{
	/* Sealing outside a transaction could tear a record from its cursor. */
	if (!buffer__in_txn(b))
		return -EPERM;
	/* Contiguous: the next seq after the head, which the writer holds for the whole
	 * transaction (no trigger in the file: store step 2). */
	struct chain_head head;
	buffer_head(b, &head);
	if (seq != head.seq + 1) {
		log_errx("buffer: record %lld refused: the chain head is %lld", (long long)seq,
			 (long long)head.seq);
		return -EINVAL;
	}
	struct store_stmt *s;
	int r = stmt__write(b, buffer__sql(ST_APPEND), &s);
	if (r < 0)
		return r;
	stmt_bind_int64(s, 1, seq);
	stmt_bind_text(s, 2, kind);
	stmt_bind_textn(s, 3, line, line_len);
	stmt_bind_textn(s, 4, hash, HASH_HEX_LEN);
	stmt_bind_int64(s, 5, sealed_at);
	r = stmt_step(s);
	if (r != STMT_DONE) {
		b->head_valid = false;
		r = stmt_error(s, r, "sealing a record");
		stmt_done(s);
		return r;
	}
	stmt_done(s);
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
	/* One snapshot for the whole walk: the writer's transaction, or a reader's while sealing
	 * goes on. The callback may read the buffer again (a nested walk gets its own statement). */
	int ret = buffer_read_begin(b);
	if (ret < 0)
		return ret;
	struct store_stmt *s;
	if ((ret = stmt_read(b, buffer__sql(ST_RANGE), &s)) == 0) {
		stmt_bind_int64(s, 1, from);
		stmt_bind_int64(s, 2, to);
		int rc;
		while ((rc = stmt_step(s)) == STMT_ROW) {
			struct stored_record r;
			buffer__fill_record(s->st, &r, false);
			if ((ret = cb(&r, arg)) != 0)
				break;
		}
		if (ret == 0 && rc != STMT_DONE)
			ret = stmt_error(s, rc, "reading records");
		stmt_done(s);
	}
	buffer_read_end(b);
	return ret;
}

int buffer_get_record(struct buffer *b, int64_t seq, struct stored_record *r)
{
	memset(r, 0, sizeof(*r));
	struct store_stmt *s;
	int ret = stmt_read(b, buffer__sql(ST_ONE), &s);
	if (ret < 0)
		return ret;
	stmt_bind_int64(s, 1, seq);
	int rc = stmt_step(s);
	ret = -ENOENT;
	if (rc == STMT_ROW) {
		buffer__fill_record(s->st, r, true);
		ret = r->kind && r->line ? 0 : -ENOMEM;
	} else if (rc != STMT_DONE) {
		ret = stmt_error(s, rc, "reading a record");
	}
	stmt_done(s);
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
		copy_hash(hash, r.hash);
	buffer_record_clear(&r);
	return ret;
}

int buffer_meta_get(struct buffer *b, const char *key, char **value)
{
	*value = NULL;
	struct store_stmt *s;
	int ret = stmt_read(b, buffer__sql(ST_META_GET), &s);
	if (ret < 0)
		return ret;
	stmt_bind_text(s, 1, key);
	int rc = stmt_step(s);
	if (rc == STMT_ROW) {
		*value = strdup(stmt_text(s, 0));
		if (!*value)
			ret = -ENOMEM;
	} else if (rc != STMT_DONE) {
		ret = stmt_error(s, rc, "reading meta");
	}
	stmt_done(s);
	return ret;
}

/* One write of the store's, inside the caller's transaction. */
static int write_done(struct store_stmt *s, const char *what)
{
	int rc = stmt_step(s);
	int r = rc == STMT_DONE ? 0 : stmt_error(s, rc, what);
	stmt_done(s);
	return r;
}

int buffer_meta_put(struct buffer *b, const char *key, const char *value)
{
	struct store_stmt *s;
	int r = stmt__write(b, buffer__sql(ST_META_PUT), &s);
	if (r < 0)
		return r;
	stmt_bind_text(s, 1, key);
	stmt_bind_text(s, 2, value);
	return write_done(s, "writing meta");
}

static char *dup_col(struct store_stmt *s, int col)
{
	const char *t = stmt_text(s, col);
	return t ? strdup(t) : NULL;
}

int buffer_sink_get(struct buffer *b, const char *sink, struct sink_state *st)
{
	memset(st, 0, sizeof(*st));
	struct store_stmt *s;
	int ret = stmt_read(b, buffer__sql(ST_SINK_GET), &s);
	if (ret < 0)
		return ret;
	stmt_bind_text(s, 1, sink);
	int rc = stmt_step(s);
	if (rc == STMT_ROW) {
		st->acked_seq = stmt_int64(s, 0);
		st->last_ok = stmt_int64(s, 1);
		st->next_attempt = stmt_int64(s, 2);
		st->last_error = dup_col(s, 3);
		st->alarm = dup_col(s, 4);
	} else if (rc != STMT_DONE) {
		ret = stmt_error(s, rc, "reading a sink");
	}
	stmt_done(s);
	return ret;
}

int buffer_sink_put(struct buffer *b, const char *sink, const struct sink_state *st)
{
	struct store_stmt *s;
	int r = stmt__write(b, buffer__sql(ST_SINK_PUT), &s);
	if (r < 0)
		return r;
	stmt_bind_text(s, 1, sink);
	stmt_bind_int64(s, 2, st->acked_seq);
	stmt_bind_int64(s, 3, st->last_ok);
	stmt_bind_int64(s, 4, st->next_attempt);
	stmt_bind_text(s, 5, st->last_error);
	stmt_bind_text(s, 6, st->alarm);
	return write_done(s, "writing a sink");
}

int buffer_sink_update(struct buffer *b, const char *sink, int64_t acked, int64_t last_ok,
		       int64_t next_attempt, const char *error, const char *alarm)
{
	if (!buffer__in_txn(b)) {
		log_errx("buffer: updating sink \"%s\" outside a transaction (buffer_begin … commit)", sink);
		return -EPERM;
	}
	struct sink_state st;
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
	*data = NULL;
	*len = 0;
	struct store_stmt *s;
	int ret = stmt_read(b, buffer__sql(ST_CURSOR_GET), &s);
	if (ret < 0)
		return ret;
	stmt_bind_text(s, 1, key);
	int rc = stmt_step(s);
	ret = -ENOENT;
	if (rc == STMT_ROW) {
		size_t n = stmt_bytes(s, 0);
		*data = malloc(n + 1);
		if (*data) {
			if (n)
				memcpy(*data, stmt_blob(s, 0), n);
			((char *)*data)[n] = '\0';
			*len = n;
			ret = 0;
		} else {
			ret = -ENOMEM;
		}
	} else if (rc != STMT_DONE) {
		ret = stmt_error(s, rc, "reading a cursor");
	}
	stmt_done(s);
	return ret;
}

int buffer_cursor_put(struct buffer *b, const char *key, const void *data, size_t len)
{
	struct store_stmt *s;
	int r = stmt__write(b, buffer__sql(ST_CURSOR_PUT), &s);
	if (r < 0)
		return r;
	stmt_bind_text(s, 1, key);
	stmt_bind_blob(s, 2, data, len);
	stmt_bind_int64(s, 3, clock_wall());
	return write_done(s, "writing a cursor");
}

static int64_t pragma(struct buffer *b, const char *sql, int64_t dflt)
{
	struct store_stmt *s;
	int64_t v = dflt;
	if (stmt_read(b, sql, &s) == 0) {
		if (stmt_step(s) == STMT_ROW)
			v = stmt_int64(s, 0);
		stmt_done(s);
	}
	return v;
}

int64_t buffer_bytes(struct buffer *b)
{
	/* The WAL is not counted: its content moves into these pages at each checkpoint, and
	 * journal_size_limit keeps the file itself small. */
	int64_t pages = pragma(b, "PRAGMA page_count", 0);
	int64_t freelist = pragma(b, "PRAGMA freelist_count", 0);
	return (pages - freelist) * pragma(b, "PRAGMA page_size", 4096);
}

/* The one value of a query with one integer or text parameter; dflt when no row. */
static int64_t query_one(struct buffer *b, enum stmt_id id, const char *text, int64_t num, int64_t dflt)
{
	struct store_stmt *s;
	int64_t v = dflt;
	if (stmt_read(b, buffer__sql(id), &s) == 0) {
		if (text)
			stmt_bind_text(s, 1, text);
		else
			stmt_bind_int64(s, 1, num);
		if (stmt_step(s) == STMT_ROW)
			v = stmt_int64(s, 0);
		stmt_done(s);
	}
	return v;
}

int64_t buffer_prune(struct buffer *b, const char *const sinks[], int64_t before)
{
	int64_t min_acked = INT64_MAX;
	int r = buffer_begin(b);
	if (r < 0)
		return r;
	for (size_t i = 0; sinks && sinks[i]; i++) {
		int64_t acked = query_one(b, ST_MIN_ACK, sinks[i], 0, 0);
		if (acked < min_acked)
			min_acked = acked;
	}
	if (min_acked == INT64_MAX)
		min_acked = 0; /* no sink configured: nothing is acknowledged, nothing goes */
	int64_t point = 0;
	struct store_stmt *s;
	if ((r = stmt__write(b, buffer__sql(ST_PRUNE_POINT), &s)) < 0)
		goto fail;
	stmt_bind_int64(s, 1, min_acked);
	stmt_bind_int64(s, 2, before);
	if (stmt_step(s) == STMT_ROW)
		point = stmt_int64(s, 0);
	stmt_done(s);
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
	if ((r = stmt__write(b, buffer__sql(ST_PRUNE), &s)) < 0)
		goto fail;
	stmt_bind_int64(s, 1, point);
	if ((r = write_done(s, "pruning")) < 0)
		goto fail;
	if ((r = buffer_commit(b)) < 0)
		return r;
	/* The pages freed go back to the file system, in a transaction of their own. */
	if (buffer_begin(b) == 0) {
		sqlite3_exec(b->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
		buffer_commit(b);
	}
	return point - first + 1;
fail:
	buffer_rollback(b);
	return r;
}
