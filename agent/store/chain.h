/* chain.h — sealing records into the SHA-256 chain (SPEC §5) and verifying it. */
#ifndef LABSHARE_CHAIN_H
#define LABSHARE_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

struct cJSON;

/* hex(SHA-256(prev_hex + "\n" + line)) into out (65 bytes). */
void chain_hash(const char *prev_hex, const char *line, size_t len, char out[HASH_HEX_LEN + 1]);

/* Seals rec (an object whose first member is "kind" and which has no "seq"): assigns the
 * next seq, writes the exact line `{"seq":N,…}` with its hash. Must be called inside
 * buffer_begin/buffer_commit so the record and whatever produced it commit together.
 * Returns the seq (> 0) or a negative errno. line_out, when non-NULL, gets a copy. */
int64_t chain_seal(struct buffer *b, const struct cJSON *rec, char **line_out);

/* The same for a record already printed as JSON text "{…}" without "seq". */
int64_t chain_seal_text(struct buffer *b, const char *kind, const char *json, size_t len,
			char **line_out);

struct chain_verify {
	int64_t first_seq;       /* first record checked (after pruning) */
	int64_t last_seq;        /* last record checked */
	int64_t records;         /* how many were checked */
	int64_t bad_seq;         /* 0 when intact, else the first bad seq */
	char head_hash[HASH_HEX_LEN + 1];
	char why[256];           /* what is wrong with bad_seq */
};

/* Re-hash the whole local chain. Returns 0 when intact, 1 when broken (res says where),
 * a negative errno when it could not be read. */
int chain_verify(struct buffer *b, struct chain_verify *res);

#endif
