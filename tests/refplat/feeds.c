/* feeds.c — SPEC §6 exactly: POST {prefix}/v1/feeds (headers, gzip, the NDJSON batch, the chain)
 * the checkpoints GET …/v1/feeds/head?agent_id= and …/hash?agent_id=&seq= (what `verify --remote`
 * asks), and the test helpers GET …/v1/feeds/<agent>/records and …/head. */
#include "refplat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <zlib.h>

#define SCHEMA "labshare.feed.v1"
#define SEQ_MAX 9007199254740992.0 /* 2^53: a JSON number still exact as a double */

const char rp_zero_hash[RP_HASH_HEX + 1] = "0000000000000000000000000000000000000000000000000000000000000000";

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: an implicit fetch per digest costs more than hashing a 300-byte line. */
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* hash = SHA-256(prev_hex + "\n" + line), lowercase hex. */
static int chain_hash(EVP_MD_CTX *ctx, const char *prev, const char *line, size_t len, char out[RP_HASH_HEX + 1])
{
	unsigned char d[32];
	unsigned int dl = 0;
	if (EVP_DigestInit_ex(ctx, sha256_md, NULL) != 1 || EVP_DigestUpdate(ctx, prev, RP_HASH_HEX) != 1 ||
	    EVP_DigestUpdate(ctx, "\n", 1) != 1 || EVP_DigestUpdate(ctx, line, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, d, &dl) != 1 || dl != 32)
		return -EIO;
	to_hex(d, 32, out);
	return 0;
}

static bool valid_agent_id(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= RP_AGENT_ID_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static bool valid_hash(const char *s)
{
	return strlen(s) == RP_HASH_HEX && strspn(s, "0123456789abcdef") == RP_HASH_HEX;
}

/* A positive integral JSON number, exact as a double. */
static bool json_seq(const cJSON *o, const char *key, long long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	if (!(d >= 1 && d <= SEQ_MAX) || d != (double)(long long)d)
		return false;
	*out = (long long)d;
	return true;
}

/* The header line, validated strictly first (UTF-8 too), then read with cJSON; NULL when not JSON. */
static cJSON *parse_line(const char *line, size_t len)
{
	struct json_top top;
	if (!json_scan(line, len, &top))
		return NULL;
	return cJSON_ParseWithLength(line, len);
}

/* Inflate a gzip body with a cap on the result: 0, 400 (corrupt) or 413 (too large). */
static int gunzip(const unsigned char *in, size_t inlen, size_t cap, unsigned char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) /* 15 + 16: gzip wrapper only */
		return 500;
	size_t alloc = inlen < cap / 8 ? inlen * 8 + 4096 : cap + 1;
	unsigned char *buf = malloc(alloc + 1);
	int status = 400;
	if (!buf) {
		status = 500;
		goto fail;
	}
	z.next_in = (unsigned char *)in; /* zlib's API is not const-correct */
	z.avail_in = (uInt)inlen;
	size_t n = 0;
	for (;;) {
		z.next_out = buf + n;
		z.avail_out = (uInt)(alloc - n);
		int r = inflate(&z, Z_NO_FLUSH);
		n = alloc - z.avail_out;
		if (r == Z_STREAM_END)
			break;
		if (n > cap) {
			status = 413;
			goto fail;
		}
		if (r == Z_BUF_ERROR && z.avail_out != 0)
			goto fail; /* input ended before the stream did */
		if (r != Z_OK && r != Z_BUF_ERROR)
			goto fail;
		if (z.avail_out == 0) {
			size_t na = alloc * 2 > cap + 1 ? cap + 1 : alloc * 2;
			if (na <= alloc) {
				status = 413;
				goto fail;
			}
			unsigned char *nb = realloc(buf, na + 1);
			if (!nb) {
				status = 500;
				goto fail;
			}
			buf = nb;
			alloc = na;
		}
	}
	if (n > cap) {
		status = 413;
		goto fail;
	}
	if (z.avail_in != 0)
		goto fail; /* trailing bytes after the gzip member */
	inflateEnd(&z);
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
fail:
	inflateEnd(&z);
	free(buf);
	return status;
}

/* The header line → b; an error text for a 422 with seq 0, or NULL. */
static const char *parse_header(const char *line, size_t len, struct rp_batch *b)
{
	cJSON *h = parse_line(line, len);
	const char *err = NULL;
	if (!cJSON_IsObject(h)) {
		err = "header line is not a json object";
		goto out;
	}
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(h, "schema");
	const cJSON *agent = cJSON_GetObjectItemCaseSensitive(h, "agent_id");
	const cJSON *lab = cJSON_GetObjectItemCaseSensitive(h, "lab_code");
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(h, "prev_hash");
	if (!cJSON_IsString(schema) || strcmp(schema->valuestring, SCHEMA) != 0)
		err = "header: schema must be \"" SCHEMA "\"";
	else if (!cJSON_IsString(agent) || !valid_agent_id(agent->valuestring))
		err = "header: agent_id must match [A-Za-z0-9._-]{1,64}";
	else if (!cJSON_IsString(lab) || !lab->valuestring[0] || strlen(lab->valuestring) >= sizeof(b->lab_code))
		err = "header: lab_code must be a non-empty string";
	else if (!json_seq(h, "first_seq", &b->first_seq))
		err = "header: first_seq must be an integer >= 1";
	else if (!json_seq(h, "last_seq", &b->last_seq) || b->last_seq < b->first_seq)
		err = "header: last_seq must be an integer >= first_seq";
	else if (!cJSON_IsString(prev) || !valid_hash(prev->valuestring))
		err = "header: prev_hash must be 64 lowercase hex digits";
	if (!err) {
		memcpy(b->agent_id, agent->valuestring, strlen(agent->valuestring) + 1);
		memcpy(b->lab_code, lab->valuestring, strlen(lab->valuestring) + 1);
		memcpy(b->prev_hash, prev->valuestring, RP_HASH_HEX + 1);
	}
out:
	cJSON_Delete(h);
	return err;
}

static bool valid_kind(const struct json_top *t)
{
	static const char *const kinds[] = { "session", "run", "daily", "event", NULL };
	/* The span holds the quotes (a kind must be a string); compared with escapes decoded. */
	if (!t->kind || t->kind_len < 2 || t->kind[0] != '"')
		return false;
	for (size_t i = 0; kinds[i]; i++)
		if (json_raw_equals(t->kind + 1, t->kind_len - 2, kinds[i]))
			return true;
	return false;
}

/* The record lines after the header: each valid, seq = position, hashed along the chain from
 * prev_hash. Returns NULL or an error text with *bad_seq set. */
static const char *parse_records(const char *p, const char *end, struct rp_batch *b, long long *bad_seq)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t alloc = 0;
	const char *err = NULL;
	/* A copy, not a pointer into b->recs: the array moves when it grows. */
	char prev[RP_HASH_HEX + 1];
	memcpy(prev, b->prev_hash, sizeof(prev));
	long long count = b->last_seq - b->first_seq + 1;

	if (!ctx) {
		*bad_seq = 0;
		return "out of memory";
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		long long seq = b->first_seq + (long long)b->nrecs;
		*bad_seq = seq;
		if ((long long)b->nrecs == count) {
			err = "more records than first_seq..last_seq";
			goto out;
		}
		struct json_top top;
		long long got = 0;
		if (!json_scan(p, len, &top))
			err = "record is not valid json (utf-8)";
		else if (!top.is_object)
			err = "record is not a json object";
		else if (!json_span_seq(top.seq, top.seq_len, &got) || got != seq)
			err = "record seq out of order (must be contiguous from first_seq)";
		else if (!valid_kind(&top))
			err = "record kind must be session, run, daily or event";
		if (err)
			goto out;
		if (b->nrecs == alloc) {
			/* Grown, not sized from last_seq: the header's numbers are the client's to choose. */
			size_t na = alloc ? alloc * 2 : 1024;
			struct rp_record *nr = realloc(b->recs, na * sizeof(*nr));
			if (!nr) {
				err = "out of memory";
				goto out;
			}
			b->recs = nr;
			alloc = na;
		}
		struct rp_record *r = &b->recs[b->nrecs];
		r->line = p;
		r->len = len;
		if (chain_hash(ctx, prev, p, len, r->hash) < 0) {
			err = "hashing failed";
			goto out;
		}
		memcpy(prev, r->hash, sizeof(prev));
		b->nrecs++;
		p = nl ? nl + 1 : end;
	}
	if ((long long)b->nrecs < count) {
		*bad_seq = b->first_seq + (long long)b->nrecs;
		err = "fewer records than first_seq..last_seq";
	}
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

/* "application/x-ndjson" with optional parameters. */
static bool is_ndjson(const char *ct)
{
	static const char want[] = "application/x-ndjson";
	if (!ct || strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	char c = ct[sizeof(want) - 1];
	return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

static void reply_sequence(struct rp_response *resp, const struct rp_head *h)
{
	char body[192];
	int n = snprintf(body, sizeof(body), "{\"error\":\"sequence\",\"expected_seq\":%lld,\"hash\":\"%s\"}",
			 h->seq + 1, h->hash);
	rp_reply_json(resp, 409, n > 0 && (size_t)n < sizeof(body) ? strdup(body) : NULL);
	snprintf(resp->error, sizeof(resp->error), "sequence, expected %lld", h->seq + 1);
}

static void reply_ack(struct rp_response *resp, long long seq, const char *hash)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "{\"ack\":%lld,\"hash\":\"%s\"}", seq, hash);
	rp_reply_json(resp, 200, n > 0 && (size_t)n < sizeof(body) ? strdup(body) : NULL);
}

void feeds_post(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	const char *key = rp_header(req, "Idempotency-Key");
	const char *ce = rp_header(req, "Content-Encoding");
	bool gzip = ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0);
	unsigned char *inflated = NULL;
	struct rp_batch b;
	struct rp_fault_plan plan;

	pthread_once(&sha256_once, sha256_fetch);
	memset(&b, 0, sizeof(b));
	resp->gzip = gzip;
	stats_feed_post(srv, rp_header(req, "User-Agent"), key, gzip);

	faults_take(srv, &plan);
	if (plan.slow_ms > 0) {
		resp->delay_ms = plan.slow_ms;
		rp_fault_note(resp, "slow");
	}
	if (plan.pad) {
		resp->pad = plan.pad;
		rp_fault_note(resp, "pad_reply");
	}
	if (plan.drop_reply) {
		resp->drop = true;
		rp_fault_note(resp, "drop_reply");
	}
	if (plan.drop_before) {
		resp->drop = true;
		resp->status = 0;
		rp_fault_note(resp, "drop_before");
		goto out;
	}
	if (plan.status) {
		rp_reply_json(resp, plan.status, plan.status_body);
		plan.status_body = NULL;
		resp->retry_after = plan.retry_after;
		rp_fault_note(resp, "status");
		goto out;
	}

	int a = auth_check(srv, rp_header(req, "Authorization"));
	if (a) {
		rp_reply_error(resp, a, a == 401 ? "unauthorized" : "token refused", -1);
		goto out;
	}
	if (!is_ndjson(rp_header(req, "Content-Type"))) {
		rp_reply_error(resp, 415, "content-type must be application/x-ndjson", -1);
		goto out;
	}
	if (ce && !gzip && strcasecmp(ce, "identity") != 0) {
		rp_reply_error(resp, 415, "content-encoding must be gzip or absent", -1);
		goto out;
	}

	const char *body = (const char *)req->body;
	size_t len = req->body_len;
	if (gzip) {
		int st = gunzip(req->body, req->body_len, RP_BODY_MAX, &inflated, &len);
		if (st) {
			rp_reply_error(resp, st,
				       st == 413 ? "body too large once inflated" : st == 400 ? "corrupt gzip body" : "inflate failed",
				       st == 400 ? 0 : -1);
			goto out;
		}
		body = (const char *)inflated;
	}
	if (len == 0 || !body) {
		rp_reply_error(resp, 422, "empty body", 0);
		goto out;
	}

	const char *end = body + len;
	const char *nl = memchr(body, '\n', len);
	const char *err = parse_header(body, nl ? (size_t)(nl - body) : len, &b);
	if (err) {
		rp_reply_error(resp, 422, err, 0);
		goto out;
	}
	snprintf(resp->agent_id, sizeof(resp->agent_id), "%s", b.agent_id);
	resp->first_seq = b.first_seq;
	resp->last_seq = b.last_seq;

	char want[RP_AGENT_ID_MAX + 64];
	int wl = snprintf(want, sizeof(want), "%s:%lld-%lld", b.agent_id, b.first_seq, b.last_seq);
	if (wl < 0 || (size_t)wl >= sizeof(want) || !key || strcmp(key, want) != 0) {
		rp_reply_error(resp, 400, key ? "idempotency-key does not match the batch" : "idempotency-key missing", 0);
		goto out;
	}

	long long bad_seq = 0;
	err = parse_records(nl ? nl + 1 : end, end, &b, &bad_seq);
	if (err) {
		rp_reply_error(resp, 422, err, bad_seq);
		goto out;
	}

	long long rseq;
	int rstatus;
	char rerr[256];
	if (faults_reject(srv, b.first_seq, b.last_seq, &rseq, &rstatus, rerr, sizeof(rerr))) {
		rp_reply_error(resp, rstatus, rerr, rseq);
		rp_fault_note(resp, "reject");
		goto out;
	}

	struct rp_apply ap;
	if (store_apply(srv->store, &b, &ap) < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		goto out;
	}
	if (ap.outcome == RP_APPLY_SEQUENCE) {
		reply_sequence(resp, &ap.head);
		goto out;
	}
	stats_records(srv, ap.inserted, ap.dups);

	long long ack = ap.head.seq;
	char hash[RP_HASH_HEX + 1];
	memcpy(hash, ap.head.hash, sizeof(hash));
	long long behind = faults_take_ack_behind(srv);
	if (behind > 0) {
		ack = ack > behind ? ack - behind : 0;
		if (store_hash_at(srv->store, b.agent_id, ack, hash) < 0) {
			rp_reply_error(resp, 500, "storage failed", -1);
			goto out;
		}
		rp_fault_note(resp, "ack_behind");
	}
	if (faults_take_wrong_hash(srv)) {
		/* Still well-formed hex, so only the comparison with the agent's own hash can catch it. */
		for (size_t i = 0; i < RP_HASH_HEX; i++)
			hash[i] = hash[i] == 'f' ? '0' : 'f';
		rp_fault_note(resp, "wrong_hash");
	}
	reply_ack(resp, ack, hash);
out:
	fault_plan_free(&plan);
	free(b.recs);
	free(inflated);
}

/* The bearer token and a valid agent id in the path; false when a reply has been made. */
static bool get_preamble(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	int a = auth_check(srv, rp_header(req, "Authorization"));
	if (a) {
		rp_reply_error(resp, a, a == 401 ? "unauthorized" : "token refused", -1);
		return false;
	}
	if (req->nparams < 1 || !valid_agent_id(req->params[0])) {
		rp_reply_error(resp, 404, "no such agent id", -1);
		return false;
	}
	size_t n = strlen(req->params[0]); /* <= RP_AGENT_ID_MAX: checked above */
	memcpy(resp->agent_id, req->params[0], n + 1);
	return true;
}

static bool query_seq(const struct rp_request *req, const char *name, long long dflt, long long *out)
{
	char v[32];
	if (!rp_query_param(req, name, v, sizeof(v))) {
		*out = dflt;
		return true;
	}
	char *end = NULL;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < 0)
		return false;
	*out = x;
	return true;
}

void feeds_get_records(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	if (!get_preamble(srv, req, resp))
		return;
	struct rp_head h;
	if (store_head(srv->store, req->params[0], &h) < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		return;
	}
	long long from, to;
	if (!query_seq(req, "from", 1, &from) || !query_seq(req, "to", h.seq, &to)) {
		rp_reply_error(resp, 400, "from and to must be integers >= 0", -1);
		return;
	}
	char *out = NULL;
	size_t outlen = 0;
	int r = store_records(srv->store, req->params[0], from, to, RP_BODY_MAX, &out, &outlen);
	if (r == -E2BIG) {
		rp_reply_error(resp, 400, "range too large, ask for fewer records", -1);
		return;
	}
	if (r < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		return;
	}
	free(resp->body);
	resp->status = 200;
	resp->content_type = "application/x-ndjson";
	resp->body = out;
	resp->body_len = outlen;
	resp->first_seq = from;
	resp->last_seq = to;
}

void feeds_get_head(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	if (!get_preamble(srv, req, resp))
		return;
	struct rp_head h;
	if (store_head(srv->store, req->params[0], &h) < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		return;
	}
	char body[160];
	int n = snprintf(body, sizeof(body), "{\"seq\":%lld,\"hash\":\"%s\"}", h.seq, h.hash);
	rp_reply_json(resp, 200, n > 0 && (size_t)n < sizeof(body) ? strdup(body) : NULL);
}

/* SPEC §6 checkpoints: the bearer token and ?agent_id=; false when a reply has been made. */
static bool checkpoint_preamble(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	int a = auth_check(srv, rp_header(req, "Authorization"));
	if (a) {
		rp_reply_error(resp, a, a == 401 ? "unauthorized" : "token refused", -1);
		return false;
	}
	if (!rp_query_param(req, "agent_id", resp->agent_id, sizeof(resp->agent_id)) ||
	    !valid_agent_id(resp->agent_id)) {
		resp->agent_id[0] = '\0';
		rp_reply_error(resp, 400, "agent_id must match [A-Za-z0-9._-]{1,64}", -1);
		return false;
	}
	return true;
}

static void reply_checkpoint(struct rp_response *resp, long long seq, const char *hash)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "{\"seq\":%lld,\"hash\":\"%s\"}", seq, hash);
	rp_reply_json(resp, 200, n > 0 && (size_t)n < sizeof(body) ? strdup(body) : NULL);
}

void feeds_checkpoint_head(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	if (!checkpoint_preamble(srv, req, resp))
		return;
	struct rp_head h;
	if (store_head(srv->store, resp->agent_id, &h) < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		return;
	}
	resp->last_seq = h.seq;
	reply_checkpoint(resp, h.seq, h.hash);
}

void feeds_checkpoint_hash(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	if (!checkpoint_preamble(srv, req, resp))
		return;
	long long seq = -1;
	char v[32];
	if (!rp_query_param(req, "seq", v, sizeof(v)) || !query_seq(req, "seq", -1, &seq) || seq < 0 ||
	    seq > (long long)SEQ_MAX) {
		rp_reply_error(resp, 400, "seq must be an integer >= 0", -1);
		return;
	}
	char hash[RP_HASH_HEX + 1];
	int r = store_hash_at(srv->store, resp->agent_id, seq, hash);
	if (r == -ENOENT) {
		rp_reply_error(resp, 404, "seq not held", seq);
		return;
	}
	if (r < 0) {
		rp_reply_error(resp, 500, "storage failed", -1);
		return;
	}
	resp->first_seq = resp->last_seq = seq;
	reply_checkpoint(resp, seq, hash);
}
