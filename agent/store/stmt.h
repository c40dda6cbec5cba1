/* stmt.h — SQL for the modules that keep tables in the buffer's file (metrics, NRII, period
 * sums, status): each module keeps its SQL text and its tables (schema.h), the store owns the
 * statements and the connections, so no module ever sees a sqlite3 handle (issue #14).
 *
 * Two kinds of statement:
 *  - writer statements (stmt_prepare): prepared once on the writer's connection, re-prepared
 *    in place when buffer_check_file writes the file back. Only the thread that holds the
 *    writer (inside buffer_begin … buffer_commit/rollback) may bind, step or reset one; from
 *    any other thread they fail with -EPERM and a log line, and the statement is left alone.
 *  - read statements (stmt_read, stmt_reader): cached by the store per connection and keyed
 *    by the SQL text, prepared at first use; given back with stmt_done.
 *
 * Steps return STMT_ROW, STMT_DONE or a negative errno (not logged: stmt_error says what
 * failed, with the connection's message). Text and blobs are bound without a copy: they must
 * stay valid until the statement is reset or given back. */
#ifndef LABSHARE_STMT_H
#define LABSHARE_STMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buffer;
struct buffer_reader;
struct store_stmt;

enum { STMT_DONE = 0, STMT_ROW = 1 };

/* A writer statement of the caller's, freed with stmt_free before buffer_close. 0 or -errno
 * (logged). */
int stmt_prepare(struct buffer *b, const char *sql, struct store_stmt **out);
void stmt_free(struct store_stmt *s);

/* A statement for a read where the calling thread reads: on the writer when it holds it (its
 * own pending writes are seen), else on its reader (buffer_read_begin: one snapshot) or on a
 * reader lent until stmt_done (committed data). sql must outlive the buffer (a literal). A
 * statement already in use (a nested read of the same SQL) gives a second one. 0 or -errno
 * (logged). */
int stmt_read(struct buffer *b, const char *sql, struct store_stmt **out);
/* The same on a reader the caller owns (buffer_reader_open), on the thread that owns it. */
int stmt_reader(struct buffer_reader *r, const char *sql, struct store_stmt **out);
/* Gives back a statement of stmt_read or stmt_reader (reset, bindings cleared). NULL is fine. */
void stmt_done(struct store_stmt *s);

/* Bindings (parameters from 1); 0, or -EPERM on a writer statement the thread does not hold. */
int stmt_bind_int64(struct store_stmt *s, int i, int64_t v);
int stmt_bind_double(struct store_stmt *s, int i, double v);
/* NULL binds SQL NULL. */
int stmt_bind_text(struct store_stmt *s, int i, const char *t);
int stmt_bind_textn(struct store_stmt *s, int i, const char *t, size_t len);
int stmt_bind_blob(struct store_stmt *s, int i, const void *p, size_t len);
int stmt_bind_null(struct store_stmt *s, int i);

int stmt_step(struct store_stmt *s);
/* Resets the statement and clears its bindings. */
void stmt_reset(struct store_stmt *s);
/* Rows the last INSERT, UPDATE or DELETE on the statement's connection changed. */
int64_t stmt_changes(struct store_stmt *s);

/* Columns of the current row (from 0). Text and blobs stay valid until the next step or reset. */
int64_t stmt_int64(struct store_stmt *s, int col);
int stmt_int(struct store_stmt *s, int col);
double stmt_double(struct store_stmt *s, int col);
const char *stmt_text(struct store_stmt *s, int col);
const void *stmt_blob(struct store_stmt *s, int col);
size_t stmt_bytes(struct store_stmt *s, int col);
bool stmt_is_null(struct store_stmt *s, int col);
bool stmt_is_blob(struct store_stmt *s, int col);

/* Logs "buffer: what: <the connection's message>" and returns e (-EIO when e is not an errno:
 * a step that gave a row where none was expected, or none where one was). */
int stmt_error(struct store_stmt *s, int e, const char *what);

#endif
