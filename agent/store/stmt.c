/* stmt.c — statements owned by the store (stmt.h): the callers' writer statements, the cached
 * read statements of each connection, the check that only the writer's holder touches the
 * writer's, and each thread's read of a buffer (buffer_read_begin: one reader, one snapshot). */
#include "stmt.h"
#include "buffer.h"
#include "buffer_priv.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int list_add(struct stmt_list *l, struct store_stmt *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct store_stmt **v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

static void list_del(struct stmt_list *l, struct store_stmt *s)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i] == s) {
			l->v[i] = l->v[--l->n];
			return;
		}
	}
}

static void stmt_destroy(struct store_stmt *s)
{
	sqlite3_finalize(s->st);
	free(s->sql);
	free(s);
}

void stmt__list_close(struct stmt_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct store_stmt *s = l->v[i];
		sqlite3_finalize(s->st);
		s->st = NULL;
		if (s->cached || s->temp) {
			stmt_destroy(s);
		} else {
			s->b = NULL; /* the caller's: freed by stmt_free, its connection gone */
			s->r = NULL;
		}
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void stmt__list_drop(struct stmt_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		sqlite3_finalize(l->v[i]->st);
		l->v[i]->st = NULL;
	}
}

static int prepare(sqlite3 *db, struct store_stmt *s)
{
	int rc = sqlite3_prepare_v3(db, s->sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL);
	if (rc != SQLITE_OK) {
		log_errx("buffer: preparing \"%s\": %s", s->sql, sqlite3_errmsg(db));
		sqlite3_finalize(s->st);
		s->st = NULL;
		return buffer__errno(rc);
	}
	return 0;
}

static struct store_stmt *stmt_new(const char *sql)
{
	struct store_stmt *s = calloc(1, sizeof(*s));
	if (s && !(s->sql = strdup(sql))) {
		free(s);
		s = NULL;
	}
	return s;
}

int stmt_prepare(struct buffer *b, const char *sql, struct store_stmt **out)
{
	*out = NULL;
	struct store_stmt *s = stmt_new(sql);
	if (!s)
		return -ENOMEM;
	s->b = b;
	/* The writer's connection is touched under its mutex, whoever asks. */
	bool mine = !buffer__held(b);
	if (mine)
		buffer__lock(b);
	int r = prepare(b->db, s);
	if (r == 0 && (r = list_add(&b->stmts, s)) < 0)
		sqlite3_finalize(s->st);
	if (mine)
		buffer__unlock(b);
	if (r < 0) {
		free(s->sql);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void stmt_free(struct store_stmt *s)
{
	if (!s)
		return;
	if (s->b) {
		bool mine = !buffer__held(s->b);
		if (mine)
			buffer__lock(s->b);
		list_del(&s->b->stmts, s);
		sqlite3_finalize(s->st);
		s->st = NULL;
		if (mine)
			buffer__unlock(s->b);
	} else if (s->r) {
		list_del(&s->r->stmts, s);
	}
	stmt_destroy(s);
}

/* A cached statement of the list, prepared on db; a temporary one when it is in use. */
static int cache_get(struct stmt_list *l, sqlite3 *db, struct buffer *b, struct buffer_reader *r,
		     const char *sql, struct store_stmt **out)
{
	struct store_stmt *c = NULL;
	for (size_t i = 0; i < l->n && !c; i++)
		if (l->v[i]->cached && (l->v[i]->key == sql || strcmp(l->v[i]->sql, sql) == 0))
			c = l->v[i];
	bool temp = c && c->busy;
	if (!c || temp) {
		if (!(c = stmt_new(sql)))
			return -ENOMEM;
		c->b = b;
		c->r = r;
		c->key = sql;
		c->cached = !temp;
		c->temp = temp;
		if (list_add(l, c) < 0) {
			stmt_destroy(c);
			return -ENOMEM;
		}
	}
	if (!c->st) {
		int e = prepare(db, c);
		if (e < 0) {
			if (c->temp) {
				list_del(l, c);
				stmt_destroy(c);
			}
			return e;
		}
	}
	c->busy = true;
	if (r)
		r->busy++;
	*out = c;
	return 0;
}

int stmt__write(struct buffer *b, const char *sql, struct store_stmt **out)
{
	*out = NULL;
	if (!buffer__held(b)) {
		log_errx("buffer: a write outside a transaction (buffer_begin … commit): \"%.80s\"", sql);
		return -EPERM;
	}
	return cache_get(&b->stmts, b->db, b, NULL, sql, out);
}

int stmt_reader(struct buffer_reader *r, const char *sql, struct store_stmt **out)
{
	*out = NULL;
	/* A reader follows a file written back, between snapshots and statements only. */
	if (r->busy == 0 && !r->in_read) {
		int e = buffer__reader_sync(r);
		if (e < 0)
			return e;
	}
	return cache_get(&r->stmts, r->db, NULL, r, sql, out);
}

int stmt_read(struct buffer *b, const char *sql, struct store_stmt **out)
{
	*out = NULL;
	if (buffer__held(b))
		return cache_get(&b->stmts, b->db, b, NULL, sql, out);
	struct buffer_reader *r;
	int e = buffer__read_enter(b, &r);
	if (e < 0)
		return e;
	if ((e = stmt_reader(r, sql, out)) < 0) {
		buffer__read_exit(b);
		return e;
	}
	(*out)->lent = true;
	return 0;
}

static int misuse(const struct store_stmt *s)
{
	log_errx("buffer: a statement on the writer used by a thread that does not hold it "
		 "(outside buffer_begin … commit): \"%.80s\"", s->sql);
	return -EPERM;
}

/* 0 when the calling thread may use s. */
static int usable(const struct store_stmt *s)
{
	if (s->b && !buffer__held(s->b))
		return misuse(s);
	return s->st ? 0 : -EIO;
}

void stmt_done(struct store_stmt *s)
{
	if (!s)
		return;
	struct buffer_reader *r = s->r;
	bool lent = s->lent;
	s->lent = false;
	if (s->b && !buffer__held(s->b)) {
		misuse(s); /* given back after the transaction: left as it is */
		s->busy = false;
		return;
	}
	if (r && s->busy)
		r->busy--;
	if (s->temp) {
		list_del(s->b ? &s->b->stmts : &r->stmts, s);
		stmt_destroy(s);
	} else {
		if (s->st) {
			sqlite3_reset(s->st);
			sqlite3_clear_bindings(s->st);
		}
		s->busy = false;
	}
	if (lent && r)
		buffer__read_exit(r->b);
}

void stmt_reset(struct store_stmt *s)
{
	if (usable(s) == 0) {
		sqlite3_reset(s->st);
		sqlite3_clear_bindings(s->st);
	}
}

static int bound(int rc)
{
	return rc == SQLITE_OK ? 0 : buffer__errno(rc);
}

int stmt_bind_int64(struct store_stmt *s, int i, int64_t v)
{
	int e = usable(s);
	return e < 0 ? e : bound(sqlite3_bind_int64(s->st, i, v));
}

int stmt_bind_double(struct store_stmt *s, int i, double v)
{
	int e = usable(s);
	return e < 0 ? e : bound(sqlite3_bind_double(s->st, i, v));
}

int stmt_bind_text(struct store_stmt *s, int i, const char *t)
{
	int e = usable(s);
	if (e < 0)
		return e;
	return bound(t ? sqlite3_bind_text(s->st, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(s->st, i));
}

int stmt_bind_textn(struct store_stmt *s, int i, const char *t, size_t len)
{
	int e = usable(s);
	if (e < 0)
		return e;
	if (len > INT32_MAX)
		return -E2BIG;
	return bound(sqlite3_bind_text(s->st, i, t, (int)len, SQLITE_STATIC));
}

int stmt_bind_blob(struct store_stmt *s, int i, const void *p, size_t len)
{
	int e = usable(s);
	if (e < 0)
		return e;
	if (len > INT32_MAX)
		return -E2BIG;
	/* An empty blob is a blob, not NULL. */
	return bound(sqlite3_bind_blob(s->st, i, len ? p : "", (int)len, SQLITE_STATIC));
}

int stmt_bind_null(struct store_stmt *s, int i)
{
	int e = usable(s);
	return e < 0 ? e : bound(sqlite3_bind_null(s->st, i));
}

int stmt_step(struct store_stmt *s)
{
	int e = usable(s);
	if (e < 0)
		return e;
	int rc = sqlite3_step(s->st);
	return rc == SQLITE_ROW ? STMT_ROW : rc == SQLITE_DONE ? STMT_DONE : buffer__errno(rc);
}

int64_t stmt_changes(struct store_stmt *s)
{
	return s->st ? sqlite3_changes(sqlite3_db_handle(s->st)) : 0;
}

int64_t stmt_int64(struct store_stmt *s, int col) { return sqlite3_column_int64(s->st, col); }
int stmt_int(struct store_stmt *s, int col) { return sqlite3_column_int(s->st, col); }
double stmt_double(struct store_stmt *s, int col) { return sqlite3_column_double(s->st, col); }
const char *stmt_text(struct store_stmt *s, int col) { return (const char *)sqlite3_column_text(s->st, col); }
const void *stmt_blob(struct store_stmt *s, int col) { return sqlite3_column_blob(s->st, col); }
size_t stmt_bytes(struct store_stmt *s, int col) { return (size_t)sqlite3_column_bytes(s->st, col); }
bool stmt_is_null(struct store_stmt *s, int col) { return sqlite3_column_type(s->st, col) == SQLITE_NULL; }
bool stmt_is_blob(struct store_stmt *s, int col) { return sqlite3_column_type(s->st, col) == SQLITE_BLOB; }

int stmt_error(struct store_stmt *s, int e, const char *what)
{
	const char *msg = "no connection";
	if (s && s->st && (!s->b || buffer__held(s->b)))
		msg = sqlite3_errmsg(sqlite3_db_handle(s->st));
	else if (e < 0)
		msg = strerror(-e);
	log_errx("buffer: %s: %s", what, e == STMT_ROW ? "a row where none was expected" :
		 e == STMT_DONE ? "no row where one was expected" : msg);
	return e < 0 ? e : -EIO;
}

int stmt__swap(struct buffer *b, sqlite3 *ndb)
{
	struct stmt_list *l = &b->stmts;
	sqlite3_stmt **fresh = l->n ? calloc(l->n, sizeof(*fresh)) : NULL;
	int rc = l->n && !fresh ? SQLITE_NOMEM : SQLITE_OK;
	for (size_t i = 0; rc == SQLITE_OK && i < l->n; i++)
		rc = sqlite3_prepare_v3(ndb, l->v[i]->sql, -1, SQLITE_PREPARE_PERSISTENT, &fresh[i], NULL);
	if (rc != SQLITE_OK) {
		for (size_t i = 0; fresh && i < l->n; i++)
			sqlite3_finalize(fresh[i]);
		free(fresh);
		return rc;
	}
	for (size_t i = 0; i < l->n; i++) {
		sqlite3_finalize(l->v[i]->st);
		l->v[i]->st = fresh[i];
	}
	free(fresh);
	return SQLITE_OK;
}

/* ---- each thread's read of a buffer -------------------------------------------------- */

/* The buffers this thread reads, on which reader, how deeply; began: inside a snapshot of
 * buffer_read_begin (else each statement reads the latest commit). */
static _Thread_local struct {
	struct buffer *b;
	struct buffer_reader *r;
	int depth;
	bool began;
} reading[4];

static int slot_of(struct buffer *b, bool make)
{
	int free_slot = -1;
	for (int i = 0; i < 4; i++) {
		if (reading[i].b == b)
			return i;
		if (!reading[i].b && free_slot < 0)
			free_slot = i;
	}
	if (!make)
		return -1;
	if (free_slot >= 0)
		reading[free_slot].b = b;
	return free_slot;
}

int buffer__read_enter(struct buffer *b, struct buffer_reader **out)
{
	int i = slot_of(b, true);
	if (i < 0)
		return -EMFILE; /* reads of more than four buffers at once on one thread */
	if (!reading[i].r) {
		int e = buffer__reader_get(b, &reading[i].r);
		if (e < 0) {
			if (reading[i].depth == 0)
				reading[i].b = NULL;
			return e;
		}
	}
	reading[i].depth++;
	*out = reading[i].r;
	return 0;
}

void buffer__read_exit(struct buffer *b)
{
	int i = slot_of(b, false);
	if (i < 0 || --reading[i].depth > 0)
		return;
	if (reading[i].r)
		buffer__reader_put(b, reading[i].r); /* ends the snapshot too */
	reading[i].r = NULL;
	reading[i].b = NULL;
	reading[i].began = false;
}

int buffer_read_begin(struct buffer *b)
{
	int i = slot_of(b, true);
	if (i < 0)
		return -EMFILE;
	if (buffer__held(b) && !reading[i].r) {
		reading[i].depth++; /* the writer's transaction is the snapshot */
		return 0;
	}
	struct buffer_reader *r;
	int e = buffer__read_enter(b, &r);
	if (e < 0)
		return e;
	if (!reading[i].began && r->busy == 0 && !r->in_read) {
		if ((e = buffer_reader_begin(r)) < 0) {
			buffer__read_exit(b);
			return e;
		}
		reading[i].began = true;
	}
	return 0;
}

void buffer_read_end(struct buffer *b)
{
	int i = slot_of(b, false);
	if (i < 0)
		return;
	if (!reading[i].r) {
		if (--reading[i].depth == 0)
			reading[i].b = NULL;
		return;
	}
	buffer__read_exit(b);
}
