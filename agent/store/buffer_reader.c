/* buffer_reader.c — read-only connections of their own for the buffer's readers (the report,
 * the sinks' batch reads, period sums): each reads one WAL snapshot and never takes the
 * writer's mutex, so a long read never holds up sealing. A reader follows a file written back
 * under the daemon (buffer_check_file) through the buffer's generation, checked at each use. */
#include "buffer.h"
#include "buffer_priv.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reader_disconnect(struct buffer_reader *r)
{
	sqlite3_finalize(r->range);
	sqlite3_finalize(r->one);
	r->range = r->one = NULL;
	stmt__list_drop(&r->stmts); /* prepared again on the next connection, at their next use */
	if (r->db)
		sqlite3_close_v2(r->db);
	r->db = NULL;
	r->in_read = false;
}

static int reader_error(struct buffer_reader *r, int rc, const char *what)
{
	log_errx("buffer: %s: %s", what, r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
	return buffer__errno(rc);
}

/* (Re)connects when the writer reopened its file since; never inside a snapshot, nor while a
 * statement of the reader is handed out. */
int buffer__reader_sync(struct buffer_reader *r)
{
	unsigned gen = buffer__generation(r->b);
	if (r->db && (r->gen == gen || r->in_read || r->busy > 0))
		return 0;
	reader_disconnect(r);
	int rc = sqlite3_open_v2(r->b->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(r->db, 0);
		/* Only a writer's recovery of the WAL index makes a reader wait, and briefly. */
		sqlite3_busy_timeout(r->db, 10000);
		rc = sqlite3_prepare_v3(r->db, buffer__sql(ST_RANGE), -1, SQLITE_PREPARE_PERSISTENT,
					&r->range, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db, buffer__sql(ST_ONE), -1, SQLITE_PREPARE_PERSISTENT,
					&r->one, NULL);
	if (rc != SQLITE_OK) {
		int e = reader_error(r, rc, "opening a reader");
		reader_disconnect(r);
		return e;
	}
	r->gen = gen;
	return 0;
}

int buffer_reader_open(struct buffer *b, struct buffer_reader **out)
{
	struct buffer_reader *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->b = b;
	int e = buffer__reader_sync(r);
	if (e < 0) {
		free(r);
		return e;
	}
	*out = r;
	return 0;
}

void buffer_reader_close(struct buffer_reader *r)
{
	if (!r)
		return;
	reader_disconnect(r);
	stmt__list_close(&r->stmts);
	free(r);
}

int buffer_reader_begin(struct buffer_reader *r)
{
	if (r->in_read || r->busy > 0)
		return -EBUSY;
	int e = buffer__reader_sync(r);
	if (e < 0)
		return e;
	/* BEGIN is deferred: the snapshot starts at the first read, made here at once. */
	int rc = sqlite3_exec(r->db, "BEGIN; SELECT 1 FROM meta LIMIT 1", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
		return reader_error(r, rc, "starting a read");
	}
	r->in_read = true;
	return 0;
}

void buffer_reader_end(struct buffer_reader *r)
{
	if (!r->in_read)
		return;
	sqlite3_reset(r->range);
	sqlite3_reset(r->one);
	sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	r->in_read = false;
}

int buffer_reader_each_record(struct buffer_reader *r, int64_t from, int64_t to,
			      buffer_record_cb cb, void *arg)
{
	bool own = !r->in_read;
	int ret = own ? buffer_reader_begin(r) : 0;
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = r->range;
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, to);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct stored_record rec;
		buffer__fill_record(s, &rec, false);
		if ((ret = cb(&rec, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = reader_error(r, rc, "reading records");
	sqlite3_reset(s);
	if (own)
		buffer_reader_end(r);
	return ret;
}

int buffer_reader_get_record(struct buffer_reader *r, int64_t seq, struct stored_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	int ret = r->in_read ? 0 : buffer__reader_sync(r);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = r->one;
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, seq);
	int rc = sqlite3_step(s);
	ret = -ENOENT;
	if (rc == SQLITE_ROW) {
		buffer__fill_record(s, rec, true);
		ret = rec->kind && rec->line ? 0 : -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		ret = reader_error(r, rc, "reading a record");
	}
	sqlite3_reset(s);
	return ret;
}

/* The buffer's own idle reader, lent to buffer_each_record & co. for callers that do not hold
 * the writer; a second concurrent borrower gets a connection of its own. */
int buffer__reader_get(struct buffer *b, struct buffer_reader **out)
{
	pthread_mutex_lock(&b->rmu);
	struct buffer_reader *r = b->idle_reader;
	b->idle_reader = NULL;
	pthread_mutex_unlock(&b->rmu);
	if (r) {
		*out = r;
		return 0;
	}
	return buffer_reader_open(b, out);
}

void buffer__reader_put(struct buffer *b, struct buffer_reader *r)
{
	if (!r)
		return;
	buffer_reader_end(r);
	pthread_mutex_lock(&b->rmu);
	if (!b->idle_reader) {
		b->idle_reader = r;
		r = NULL;
	}
	pthread_mutex_unlock(&b->rmu);
	buffer_reader_close(r);
}
