/* buffer.h — the crash-safe SQLite buffer (SPEC §5): sealed records, sink cursors, driver
 * cursors. One writer connection behind a plain mutex: every write, and every read that must
 * see pending writes, runs inside buffer_begin … buffer_commit/rollback on the thread that
 * began; begin takes the mutex, commit/rollback give it back, and transactions do not nest
 * (-EDEADLK). Reads outside a transaction run on read-only connections of their own and never
 * wait for the writer. Other modules reach their own tables through stmt.h, never a handle. */
#ifndef LABSHARE_BUFFER_H
#define LABSHARE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buffer;

#define BUFFER_FILE "buffer.db"
#define HASH_HEX_LEN 64

enum buffer_open_flags {
	BUFFER_READONLY = 1 << 0,   /* status, verify, report: never create or repair */
	BUFFER_CHECK_LATER = 1 << 1, /* `flush`: quick_check beside the first reads (buffer_check_*) */
};

/* Opens {state_dir}/buffer.db (creating state_dir and the file unless READONLY), runs
 * PRAGMA quick_check, moves a corrupt file aside ("buffer.db.corrupt-<time>") and starts
 * a fresh one, and brings the store's own tables up to date (schema.h; the other modules'
 * at their first use). *moved_aside (may be NULL) gets the new name of a corrupt file,
 * caller frees. Returns 0 or a negative errno (-ENOENT: READONLY and no buffer yet;
 * -EPROTO: written by a newer agent; -EROFS: READONLY and the file needs migrating). */
int buffer_open(const char *state_dir, int flags, struct buffer **out, char **moved_aside);
void buffer_close(struct buffer *b);
const char *buffer_path(const struct buffer *b);

/* BUFFER_CHECK_LATER (a writer; issue #15): buffer_open leaves quick_check out, and
 * buffer_check_start runs it on a read-only connection of its own, on a thread, while the
 * caller reads and sends. Until it has passed nothing reaches the main file: the writer does
 * not checkpoint, so what it commits meanwhile stays in the WAL, and after a failure it is
 * closed without a checkpoint, so the next buffer_open moves the file aside as it was found.
 * Called on the thread that opened b; buffer_check_wait before buffer_close. Without the flag
 * these say 0 (checked at open). */
int buffer_check_start(struct buffer *b);
/* 1 while the check runs, 0 when it passed (or none is deferred), a negative errno when it
 * failed (-EBADMSG: the file is damaged). Never waits. */
int buffer_check_poll(struct buffer *b);
/* Waits for the check (logs a failure, once): 0 or a negative errno; the same again after. */
int buffer_check_wait(struct buffer *b);

/* Write transactions (BEGIN IMMEDIATE … COMMIT) under the buffer's mutex, so sealing and
 * the cursors that go with it commit together or not at all. buffer_begin on a thread inside
 * a transaction of b already is -EDEADLK (logged); commit/rollback by a thread outside one is
 * -EPERM (logged). */
int buffer_begin(struct buffer *b);
int buffer_commit(struct buffer *b);
void buffer_rollback(struct buffer *b);
/* fn(arg) is called under the writer whenever a transaction is undone (a rollback, or a
 * commit that failed), so what memory holds of it goes with it (metrics' state). */
int buffer_on_undo(struct buffer *b, void (*fn)(void *arg), void *arg);
void buffer_undo_remove(struct buffer *b, void (*fn)(void *arg), void *arg);

/* Reads (the head, records, hashes, meta, sinks, cursors, bytes): inside the calling thread's
 * transaction they read on the writer and see its pending writes; outside one, on a reader
 * (committed data, never waiting for the writer). */

/* The chain head as committed (or as pending inside the current transaction). */
struct chain_head {
	int64_t seq;                    /* 0 when nothing was ever sealed */
	char hash[HASH_HEX_LEN + 1];    /* 64 zeros when seq == 0 */
};
void buffer_head(struct buffer *b, struct chain_head *head);

/* Appends a sealed record; only chain.c calls this, inside a transaction (-EPERM outside). */
int buffer_append_record(struct buffer *b, int64_t seq, const char *kind, const char *line,
			 size_t line_len, const char *hash, int64_t sealed_at);

/* One stored record; line and kind are malloc'd, freed by buffer_record_clear. */
struct stored_record {
	int64_t seq;
	char *kind;
	char *line;
	size_t line_len;
	char hash[HASH_HEX_LEN + 1];
	int64_t sealed_at;
};
void buffer_record_clear(struct stored_record *r);

/* Iterate records with seq in [from, to] in ascending order; cb returns 0 to go on,
 * anything else stops and is returned. Reads happen in one snapshot. */
typedef int (*buffer_record_cb)(const struct stored_record *r, void *arg);
int buffer_each_record(struct buffer *b, int64_t from, int64_t to, buffer_record_cb cb, void *arg);
/* One record; -ENOENT when absent. */
int buffer_get_record(struct buffer *b, int64_t seq, struct stored_record *r);
/* Hash of record seq (64 zeros for 0; the pruned head's hash when seq == pruned seq). */
int buffer_hash_of(struct buffer *b, int64_t seq, char hash[HASH_HEX_LEN + 1]);

/* Readers of their own (SPEC §5 unchanged; issue #14): a read-only connection to the same
 * file, reading committed data only, in one WAL snapshot per begin … end (or per call), never
 * taking the writer's mutex nor waiting for it. Keep a snapshot to one batch or one report: a
 * reader that stays inside one stops checkpoints from recycling the WAL. A reader follows the
 * file when the writer writes it back (buffer_check_file) at its next begin or call. One
 * reader per thread at a time; close it before buffer_close.
 * The buffer's read calls use one themselves unless the calling thread holds the writer (inside
 * buffer_begin … commit), whose pending writes it must see. */
struct buffer_reader;
int buffer_reader_open(struct buffer *b, struct buffer_reader **out);
void buffer_reader_close(struct buffer_reader *r);
int buffer_reader_begin(struct buffer_reader *r);
void buffer_reader_end(struct buffer_reader *r);
int buffer_reader_each_record(struct buffer_reader *r, int64_t from, int64_t to,
			      buffer_record_cb cb, void *arg);
int buffer_reader_get_record(struct buffer_reader *r, int64_t seq, struct stored_record *rec);
/* One snapshot for the calling thread's reads of b (the calls here, stmt_read, period sums)
 * until the matching buffer_read_end: a reader lent by the buffer, taken at the first begin
 * and given back at the last end (they nest). Inside the thread's own transaction the reads
 * stay on the writer. 0 or -errno. */
int buffer_read_begin(struct buffer *b);
void buffer_read_end(struct buffer *b);
/* 1 when the calling thread holds the writer (inside buffer_begin … commit). */
int buffer_holds_writer(const struct buffer *b);

/* What was pruned: records 1..seq are gone, hash is that of seq (verify starts there). */
void buffer_pruned(struct buffer *b, struct chain_head *pruned);
/* Lowest seq still stored (pruned.seq + 1 when any record is kept), 0 when none. */
int64_t buffer_first_seq(struct buffer *b);

/* Writes (sink rows, driver cursors, meta): inside the calling thread's transaction only;
 * -EPERM (logged) outside one. */

/* Delivery cursors, one per sink ("platform", "nrii"). */
struct sink_state {
	int64_t acked_seq;
	int64_t last_ok;        /* unix time of the last acknowledged upload, 0 never */
	int64_t next_attempt;   /* unix time, 0 = now */
	char *last_error;       /* NULL when none */
	char *alarm;            /* integrity alarm: upload stopped until resolved */
};
int buffer_sink_get(struct buffer *b, const char *sink, struct sink_state *st);
int buffer_sink_put(struct buffer *b, const char *sink, const struct sink_state *st);
void buffer_sink_clear(struct sink_state *st);
/* Read-modify-write of a sink's row after a delivery attempt: acked < 0 and last_ok == 0 leave
 * those as they are; error NULL clears last_error; alarm NULL keeps any alarm. */
int buffer_sink_update(struct buffer *b, const char *sink, int64_t acked, int64_t last_ok,
		       int64_t next_attempt, const char *error, const char *alarm);

/* Opaque driver cursors, committed in the same transaction as what they produced. */
int buffer_cursor_get(struct buffer *b, const char *key, void **data, size_t *len);
int buffer_cursor_put(struct buffer *b, const char *key, const void *data, size_t len);

/* Small key/value facts about the agent ("agent_id", "buffer_full", …). */
int buffer_meta_get(struct buffer *b, const char *key, char **value);
int buffer_meta_put(struct buffer *b, const char *key, const char *value);

/* Bytes in use by the database (pages in use, not free ones; the WAL is bounded apart). */
int64_t buffer_bytes(struct buffer *b);

/* Delete records acknowledged by every sink in `sinks` (NULL-terminated) and sealed
 * before `before` (unix time), oldest first, keeping the chain's head hash. Its own
 * transactions: -EDEADLK inside one. Returns how many were pruned or a negative errno. */
int64_t buffer_prune(struct buffer *b, const char *const sinks[], int64_t before);

/* The daemon's chore (SPEC §5): when buffer.db was deleted or replaced since it was opened,
 * writes the open database back to the path (a replacing file is moved aside, never
 * deleted), reopens it so later writes go to the file on disk, and says so in `what`.
 * Returns 0 when the file is in place, 1 when it was written back, or a negative errno with
 * the reason in `what`, not logged (the old file stays in use; call again later); -EDEADLK
 * inside a transaction. */
int buffer_check_file(struct buffer *b, char *what, size_t whatlen);

/* Creates the state folder (and its parents) for a daemon that must lock it first. */
int buffer_make_state_dir(const char *state_dir);

#endif
