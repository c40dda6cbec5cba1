/* buffer_priv.h — the buffer's insides, shared by buffer.c (statements, transactions) and
 * buffer_file.c (the file on disk); no other module includes this. */
#ifndef LABSHARE_BUFFER_PRIV_H
#define LABSHARE_BUFFER_PRIV_H

#include "buffer.h"
#include "schema.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum stmt_id {
	ST_HEAD, ST_APPEND, ST_RANGE, ST_ONE, ST_FIRST, ST_META_GET, ST_META_PUT,
	ST_SINK_GET, ST_SINK_PUT, ST_CURSOR_GET, ST_CURSOR_PUT, ST_PRUNE_POINT, ST_PRUNE,
	ST_MIN_ACK, ST__COUNT
};

/* The statements of one connection (stmt.c): the callers' writer statements and the cached
 * ones, so they can be re-prepared (the writer) or finalized (a reader) when it changes. */
struct stmt_list {
	struct store_stmt **v;
	size_t n, cap;
};

struct store_stmt {
	struct buffer *b;            /* a writer statement's buffer; NULL on a reader */
	struct buffer_reader *r;     /* a reader statement's reader */
	sqlite3_stmt *st;            /* NULL until prepared on the current connection */
	char *sql;
	const char *key;             /* a cached one: the SQL pointer it was asked for by */
	bool cached;                 /* the store's (stmt_read), else the caller's */
	bool busy;                   /* a cached one handed out and not given back */
	bool temp;                   /* prepared for one use (the cached one was busy) */
	bool lent;                   /* off the writer: the thread's read ends at stmt_done */
};

struct buffer_reader {
	struct buffer *b;
	sqlite3 *db;
	unsigned gen;                /* the buffer's generation the connection was opened at */
	bool in_read;                /* inside buffer_reader_begin … end */
	sqlite3_stmt *range, *one;
	struct stmt_list stmts;
	int busy;                    /* statements handed out: no reconnect meanwhile */
};

/* Called under the writer when a transaction is undone (rollback, or a commit that failed):
 * what memory holds of it goes with it. */
struct buffer_undo {
	void (*fn)(void *arg);
	void *arg;
};

struct buffer_check;

struct buffer {
	sqlite3 *db;
	char *path;
	bool readonly;
	/* BUFFER_CHECK_LATER (buffer_file.c): the first open leaves quick_check out (check_due)
	 * and no checkpoint is made until it has passed on its thread (check); its outcome is
	 * kept once waited for (check_result: 0 or a negative errno). */
	bool check_later, check_due;
	struct buffer_check *check;
	int check_result;
	bool in_txn;                 /* between buffer_begin and commit/rollback (the holder's) */
	/* Inside a write transaction nobody else can seal, so the head is kept here instead
	 * of being asked for at every seal; sealed_seq is written once, at commit. */
	bool head_valid;
	struct chain_head head;
	int64_t sealed_pending;
	pthread_mutex_t mu;          /* plain: taken by buffer_begin, given back by commit/rollback */
	/* Readers (buffer_reader.c): the generation of the writer's file, bumped when it is
	 * written back and reopened, and one idle reader lent to buffer_each_record & co. */
	atomic_uint generation;      /* read without the writer's mutex */
	pthread_mutex_t rmu;         /* guards idle_reader only */
	struct buffer_reader *idle_reader;
	/* Every statement on the writer (stmt.c), re-prepared when the file is written back and
	 * reopened under a running daemon. */
	struct stmt_list stmts;
	struct buffer_undo undo[4];
	size_t n_undo;
	/* The migration registry (schema.c): whether the file keeps versions per owner, the
	 * single version of a file from before it, and the owners already brought up to date. */
	bool registry;
	int64_t legacy;
	const struct store_schema *known[8];
	_Atomic size_t n_known;      /* read without the writer's mutex (schema.c) */
};

/* Opens b->path into b->db with the module's pragmas and a quick_check; SQLite's code. */
int buffer__open_db(struct buffer *b, char *why, size_t whylen);
/* Renames path (when present) and its -wal/-shm (when present) to "<path>.<tag>-<time>…";
 * never deletes. The new name of path, caller frees; NULL on failure. */
char *buffer__move_aside(const char *path, const char *tag);
/* The store's own entry of the registry, at open: adopts a file from before the registry
 * and migrates the store's tables, in one transaction. 0 or a negative errno (logged). */
int buffer__schema_open(struct buffer *b, const struct store_schema *store);

/* The writer's mutex, marked per thread so that buffer__held can say whether the calling
 * thread holds it (its reads must then see its own pending writes: the writer connection).
 * Plain: the store takes it only when the thread does not hold it already. */
void buffer__lock(struct buffer *b);
void buffer__unlock(struct buffer *b);
bool buffer__held(const struct buffer *b);
/* The calling thread is inside its transaction of b. */
bool buffer__in_txn(struct buffer *b);

unsigned buffer__generation(struct buffer *b);
const char *buffer__sql(enum stmt_id id);
void buffer__fill_record(sqlite3_stmt *s, struct stored_record *r, bool copy);
/* Translate the last SQLite error of the connection into -errno, logging it; the message is
 * the writer's when the thread holds it, else SQLite's text for rc. */
int buffer_sqlite_error(struct buffer *b, int rc, const char *what);

/* stmt.c: a cached statement on the writer for the thread that holds it (-EPERM, logged,
 * when it does not): every write goes through here. */
int stmt__write(struct buffer *b, const char *sql, struct store_stmt **out);
/* Re-prepares every writer statement on ndb into fresh handles; on success swaps them in
 * and finalizes the old ones. SQLite's code. */
int stmt__swap(struct buffer *b, sqlite3 *ndb);
/* Finalizes every statement of the list and frees the store's (at close). */
void stmt__list_close(struct stmt_list *l);
/* Finalizes the handles of a reader's statements (it reconnects); prepared again at next use. */
void stmt__list_drop(struct stmt_list *l);
/* The thread's read of b (stmt.c): its reader, borrowed at the first enter. */
int buffer__read_enter(struct buffer *b, struct buffer_reader **r);
void buffer__read_exit(struct buffer *b);
/* (Re)connects a reader whose buffer was reopened; never inside a snapshot or a statement. */
int buffer__reader_sync(struct buffer_reader *r);
/* SQLite's code as -errno (what buffer_sqlite_error returns, without the logging). */
int buffer__errno(int rc);
/* Borrow and return the buffer's idle reader (or a new one). */
int buffer__reader_get(struct buffer *b, struct buffer_reader **out);
void buffer__reader_put(struct buffer *b, struct buffer_reader *r);

#endif
