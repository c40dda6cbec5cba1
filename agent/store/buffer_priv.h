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

struct buffer {
	sqlite3 *db;
	char *path;
	bool readonly;
	int txn_depth;
	/* Inside a write transaction nobody else can seal, so the head is kept here instead
	 * of being asked for at every seal; sealed_seq is written once, at commit. */
	bool head_valid;
	struct chain_head head;
	int64_t sealed_pending;
	pthread_mutex_t mu;          /* recursive: public calls nest inside begin/commit */
	/* Readers (buffer_reader.c): the generation of the writer's file, bumped when it is
	 * written back and reopened, and one idle reader lent to buffer_each_record & co. */
	atomic_uint generation;      /* read without the writer's mutex */
	pthread_mutex_t rmu;         /* guards idle_reader only */
	struct buffer_reader *idle_reader;
	sqlite3_stmt *st[ST__COUNT];
	/* Other modules' persistent statements (buffer_prepare), re-prepared when the file is
	 * written back and reopened under a running daemon. */
	sqlite3_stmt ***ext;
	size_t n_ext, cap_ext;
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

/* The writer's mutex, counted per thread so that buffer__held can say whether the calling
 * thread holds it (its reads must then see its own pending writes: the writer connection). */
void buffer__lock(struct buffer *b);
void buffer__unlock(struct buffer *b);
bool buffer__held(const struct buffer *b);

unsigned buffer__generation(struct buffer *b);
const char *buffer__sql(enum stmt_id id);
void buffer__fill_record(sqlite3_stmt *s, struct stored_record *r, bool copy);
/* SQLite's code as -errno (what buffer_sqlite_error returns, without the logging). */
int buffer__errno(int rc);
/* Borrow and return the buffer's idle reader (or a new one). */
int buffer__reader_get(struct buffer *b, struct buffer_reader **out);
void buffer__reader_put(struct buffer *b, struct buffer_reader *r);

#endif
