/* feed_batch.h — the feed's request bodies (SPEC §6): the header line and the records of
 * first..last exactly as stored, gzipped over 4 KiB; and a worker that makes the next one
 * while the current one is in flight. The worker only prepares bytes: what is acknowledged
 * moves on the platform's reply alone, in feed.c, as before. */
#ifndef LABSHARE_FEED_BATCH_H
#define LABSHARE_FEED_BATCH_H

#include "buffer.h"
#include "transfer.h"

#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>

struct config;

/* zlib's fastest level: 2.5× the speed of the default for 13 % more bytes on these records
 * (ndjson sessions: 10.4:1 instead of 11.8:1), so the next batch is ready before the reply. */
#define FEED_GZIP_LEVEL Z_BEST_SPEED

struct feed_body {
	int64_t first, last;
	char prev[HASH_HEX_LEN + 1];      /* hash of first - 1, as in the header */
	char last_hash[HASH_HEX_LEN + 1]; /* hash of last: the next batch's prev; "" unless whole */
	struct dbuf body, gz;
	bool gzipped;                     /* gz holds the payload (body over 4 KiB) */
	z_stream z;                       /* kept and reset: a deflate state per batch is 256 KiB */
	bool z_ready;
};

void feed_body_init(struct feed_body *fb);
void feed_body_free(struct feed_body *fb);
/* Fills fb with records first..last (through rd, or b's own reader when rd is NULL); 0, or
 * -EBADMSG when a record is missing (a hole: never send around it), or another -errno. */
int feed_body_build(struct feed_body *fb, const struct config *cfg, struct buffer *b, struct buffer_reader *rd,
		    int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1]);
const void *feed_body_payload(const struct feed_body *fb, size_t *len);

/* The worker, with its own read-only connection to the buffer. */
struct feed_prep;
int feed_prep_start(const struct config *cfg, struct buffer *b, struct feed_prep **out);
void feed_prep_stop(struct feed_prep *p);
/* Starts making first..last after prev in the background (a guess: the batch that follows if
 * the one in flight is acknowledged whole). Drops a guess not taken. */
void feed_prep_ask(struct feed_prep *p, int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1]);
/* When the worker makes or made exactly first..last after prev: waits for it and swaps it
 * into *fb; true then. False (and fb untouched) for any other guess or a failed one. */
bool feed_prep_take(struct feed_prep *p, int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1],
		    struct feed_body *fb);

#endif
