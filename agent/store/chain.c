/* chain.c — seals records (contiguous seq, SHA-256 over the previous hash and the exact line)
 * and re-hashes the chain for `verify`. */
#include "chain.h"
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL 3 looks an algorithm up at every EVP_sha256() use: fetch it once. And one digest
 * context per thread, initialised again for each record (not made and freed per record);
 * freed when its thread ends. */
static EVP_MD *sha256;
static pthread_key_t ctx_key;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void fetch_sha256(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (pthread_key_create(&ctx_key, ctx_free) != 0)
		log_errx("chain: no per-thread digest context: one per record instead");
}

/* The calling thread's context; a fresh one (*own: the caller frees it) when there is none. */
static EVP_MD_CTX *thread_ctx(bool *own)
{
	EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
	*own = false;
	if (ctx)
		return ctx;
	if (!(ctx = EVP_MD_CTX_new()))
		return NULL;
	if (pthread_setspecific(ctx_key, ctx) != 0)
		*own = true;
	return ctx;
}

/* chain_hash's work: 0, or -ENOMEM (out holds zeros then). */
static int hash_hex(const char *prev_hex, const char *line, size_t len, char out[HASH_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool own;
	pthread_once(&sha256_once, fetch_sha256);
	EVP_MD_CTX *ctx = thread_ctx(&own);

	if (!ctx || !EVP_DigestInit_ex(ctx, sha256 ? sha256 : EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, prev_hex, HASH_HEX_LEN) || !EVP_DigestUpdate(ctx, "\n", 1) ||
	    !EVP_DigestUpdate(ctx, line, len) || !EVP_DigestFinal_ex(ctx, md, &mdlen))
		mdlen = 0;
	if (own)
		EVP_MD_CTX_free(ctx);
	if (mdlen != HASH_HEX_LEN / 2)
		memset(md, 0, HASH_HEX_LEN / 2);
	for (unsigned int i = 0; i < HASH_HEX_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[HASH_HEX_LEN] = '\0';
	return mdlen == HASH_HEX_LEN / 2 ? 0 : -ENOMEM;
}

void chain_hash(const char *prev_hex, const char *line, size_t len, char out[HASH_HEX_LEN + 1])
{
	hash_hex(prev_hex, line, len, out);
}

/* The kind is read back from the text, so a record can't claim one kind and store another. */
static int kind_of(const char *json, size_t len, char *kind, size_t kindlen)
{
	static const char prefix[] = "{\"kind\":\"";
	size_t plen = sizeof(prefix) - 1;
	if (len < plen + 2 || memcmp(json, prefix, plen) != 0)
		return -EINVAL;
	const char *end = memchr(json + plen, '"', len - plen);
	if (!end || (size_t)(end - json - (long)plen) >= kindlen)
		return -EINVAL;
	size_t n = (size_t)(end - json) - plen;
	memcpy(kind, json + plen, n);
	kind[n] = '\0';
	return 0;
}

/* "{"seq":N," for seq >= 1 (the head + 1), digit by digit: this runs for every record. */
static int seq_prefix(char out[40], int64_t seq)
{
	char digits[24], *d = digits + sizeof(digits);
	uint64_t u = (uint64_t)seq;
	do {
		*--d = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	size_t nd = (size_t)(digits + sizeof(digits) - d);
	memcpy(out, "{\"seq\":", 7);
	memcpy(out + 7, d, nd);
	out[7 + nd] = ',';
	return (int)(8 + nd);
}

int64_t chain_seal_text(struct buffer *b, const char *kind, const char *json, size_t len,
			char **line_out)
{
	char stored_kind[32];
	if (kind_of(json, len, stored_kind, sizeof(stored_kind)) < 0 ||
	    (kind && strcmp(kind, stored_kind) != 0)) {
		log_errx("chain: refusing to seal a record that does not start with its kind");
		return -EINVAL;
	}
	struct chain_head head;
	buffer_head(b, &head);
	int64_t seq = head.seq + 1;

	char prefix[40];
	int plen = seq_prefix(prefix, seq);
	/* json is "{…}": drop its "{" and put "{"seq":N," in front. */
	size_t total = (size_t)plen + len - 1;
	char *line = malloc(total + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, prefix, (size_t)plen);
	memcpy(line + plen, json + 1, len - 1);
	line[total] = '\0';

	char hash[HASH_HEX_LEN + 1];
	int r = hash_hex(head.hash, line, total, hash);
	if (r == 0)
		r = buffer_append_record(b, seq, stored_kind, line, total, hash, clock_wall());
	if (r < 0) {
		free(line);
		return r;
	}
	if (line_out)
		*line_out = line;
	else
		free(line);
	return seq;
}

int64_t chain_seal(struct buffer *b, const cJSON *rec, char **line_out)
{
	if (!cJSON_IsObject(rec) || cJSON_GetObjectItemCaseSensitive(rec, "seq"))
		return -EINVAL;
	const cJSON *first = rec->child;
	if (!first || !first->string || strcmp(first->string, "kind") != 0 || !cJSON_IsString(first))
		return -EINVAL;
	char *json = cJSON_PrintUnformatted(rec);
	if (!json)
		return -ENOMEM;
	int64_t seq = chain_seal_text(b, first->valuestring, json, strlen(json), line_out);
	cJSON_free(json);
	return seq;
}

struct verify_walk {
	struct chain_verify *res;
	int64_t expect;
	char prev[HASH_HEX_LEN + 1];
};

/* The line must carry its own seq first: a record moved to another row is caught here
 * even if someone recomputed the stored hashes. */
static bool line_has_seq(const char *line, size_t len, int64_t seq)
{
	char prefix[40];
	int n = snprintf(prefix, sizeof(prefix), "{\"seq\":%" PRId64, seq);
	if (n < 0 || (size_t)n >= sizeof(prefix) || len <= (size_t)n)
		return false;
	return memcmp(line, prefix, (size_t)n) == 0 && (line[n] == ',' || line[n] == '}');
}

static int verify_one(const struct stored_record *r, void *arg)
{
	struct verify_walk *w = arg;
	struct chain_verify *res = w->res;

	if (r->seq != w->expect) {
		res->bad_seq = w->expect;
		snprintf(res->why, sizeof(res->why), "record %" PRId64 " is missing (next stored is %" PRId64 ")",
			 w->expect, r->seq);
		return 1;
	}
	if (!line_has_seq(r->line, r->line_len, r->seq)) {
		res->bad_seq = r->seq;
		snprintf(res->why, sizeof(res->why), "record %" PRId64 " does not carry its own seq", r->seq);
		return 1;
	}
	char hash[HASH_HEX_LEN + 1];
	chain_hash(w->prev, r->line, r->line_len, hash);
	if (strcmp(hash, r->hash) != 0) {
		res->bad_seq = r->seq;
		snprintf(res->why, sizeof(res->why),
			 "record %" PRId64 " does not match its hash (content or order changed)", r->seq);
		return 1;
	}
	memcpy(w->prev, hash, sizeof(w->prev));
	res->last_seq = r->seq;
	res->records++;
	w->expect++;
	return 0;
}

int chain_verify(struct buffer *b, struct chain_verify *res)
{
	struct chain_head pruned;
	struct verify_walk w = { .res = res };

	memset(res, 0, sizeof(*res));
	buffer_pruned(b, &pruned);
	w.expect = pruned.seq + 1;
	memcpy(w.prev, pruned.hash, sizeof(w.prev));
	res->first_seq = w.expect;
	res->last_seq = pruned.seq;

	int r = buffer_each_record(b, 1, INT64_MAX, verify_one, &w);
	if (r < 0)
		return r;
	memcpy(res->head_hash, w.prev, sizeof(res->head_hash));
	if (r == 1)
		return 1;

	/* Records deleted from the end leave no gap behind them: compare with what was
	 * sealed and what the platform acknowledged. */
	char *v = NULL;
	int64_t sealed = 0;
	if (buffer_meta_get(b, "sealed_seq", &v) == 0 && v)
		sealed = strtoll(v, NULL, 10);
	free(v);
	if (sealed > res->last_seq) {
		res->bad_seq = res->last_seq + 1;
		snprintf(res->why, sizeof(res->why),
			 "records %" PRId64 "..%" PRId64 " were sealed but are missing",
			 res->last_seq + 1, sealed);
		return 1;
	}
	return 0;
}
