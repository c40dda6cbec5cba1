/* test_refplat.c — the reference platform's feed protocol, over real HTTPS (libcurl) with a CA
 * made at test time: SPEC §6 acks and chain checks (hashes computed here independently), auth,
 * bad records, checkpoints. HTTP and TLS are in test_refplat_http.c, faults and the control
 * channel in test_refplat_faults.c; the fixture is test_refplat_env.h. Each test starts its own
 * refplat and stops it by PID. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <zlib.h>

#include "../lib/harness.h"
#include "test_refplat_env.h"

/* ================= the protocol ================= */

static void test_first_batch_ack(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("sxu-nmr-center", 3, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);

	/* Stored exactly: the lines as sent and the hashes computed here. */
	for (long long s = 1; s <= 3; s++) {
		char *sql = h_strdupf("SELECT line || '|' || hash FROM records WHERE agent_id='sxu-nmr-center' AND seq=%lld", s);
		char *got = db_text(f, sql), *want = h_strdupf("%s|%s", c->lines[s], c->hash[s]);
		assert_string_equal(got, want);
		free(sql);
		free(got);
		free(want);
	}
	assert_int_equal(db_num(f, "SELECT count(*) FROM records"), 3);
	chain_free(c);
}

static void test_duplicate_resend(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 5, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	/* The reply was "lost": the same batch again is harmless. */
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	/* Overlapping: 2..3 are duplicates, 4..5 new. */
	post_range(f, c, 2, 5, &r);
	assert_ack(&r, 5, c->hash[5]);
	reply_free(&r);

	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "records"), 5);
	assert_int_equal(jnum(st, "dups"), 5);
	free(st);
	assert_int_equal(db_num(f, "SELECT count(*) FROM records"), 5);
	chain_free(c);
}

static void test_gap_409(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 6, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	post_range(f, c, 5, 6, &r);
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	assert_int_equal(head_seq(f, "a1", NULL), 3);

	/* A fresh agent starting past 1: expected 1 and the zero hash. */
	struct chain *d = chain_new("fresh", 3, 0);
	post_range(f, d, 2, 3, &r);
	assert_409(&r, 1, ZEROS);
	reply_free(&r);
	chain_free(c);
	chain_free(d);
}

static void test_wrong_prev_hash_409(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 5, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);

	char *b = chain_batch(c, 4, 5, c->hash[2]); /* prev of 3, not of 4 */
	char *key = batch_key(c, 4, 5);
	struct req q = { .body = b, .len = strlen(b), .key = key };
	http(f, &q, &r);
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	free(b);
	free(key);

	/* prev_hash at seq 1 must be zeros. */
	b = chain_batch(c, 1, 1, c->hash[3]);
	key = batch_key(c, 1, 1);
	struct req q1 = { .body = b, .len = strlen(b), .key = key };
	http(f, &q1, &r);
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	free(b);
	free(key);
	assert_int_equal(head_seq(f, "a1", NULL), 3);
	chain_free(c);
}

static void test_altered_duplicate_409(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 5, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);

	/* The same seqs, record 2 altered (a buffer restored from another history). */
	struct chain *d = chain_new("a1", 5, 0);
	chain_set_line(d, 2, "{\"seq\":2,\"kind\":\"run\",\"run_s\":999}");
	post_range(f, d, 1, 3, &r);
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	/* Altered 3 with new 4..5: refused whole, nothing of it stored. */
	struct chain *e = chain_new("a1", 5, 0);
	chain_set_line(e, 3, "{\"seq\":3,\"kind\":\"event\",\"type\":\"gap\"}");
	post_range(f, e, 3, 5, &r);
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	assert_int_equal(db_num(f, "SELECT count(*) FROM records"), 3);
	chain_free(c);
	chain_free(d);
	chain_free(e);
}

static void test_independent_agents(void **state)
{
	struct fx *f = *state;
	struct chain *a = chain_new("agent-a", 4, 0), *b = chain_new("agent-b", 2, 7);
	struct reply r;
	post_range(f, a, 1, 3, &r);
	assert_ack(&r, 3, a->hash[3]);
	reply_free(&r);
	post_range(f, b, 1, 2, &r);
	assert_ack(&r, 2, b->hash[2]);
	reply_free(&r);
	/* a's next batch chained to b's head is another chain. */
	char *body = chain_batch(a, 4, 4, b->hash[2]);
	char *key = batch_key(a, 4, 4);
	struct req q = { .body = body, .len = strlen(body), .key = key };
	http(f, &q, &r);
	assert_409(&r, 4, a->hash[3]);
	reply_free(&r);
	free(body);
	free(key);
	char *st = ctl(f, "stats");
	assert_int_equal(jpath(st, "last_seq", "agent-a"), 3);
	assert_int_equal(jpath(st, "last_seq", "agent-b"), 2);
	free(st);
	chain_free(a);
	chain_free(b);
}

static void test_gzip_body(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("gz", 200, 200);
	char *b = chain_batch(c, 1, 200, NULL), *key = batch_key(c, 1, 200);
	size_t zl;
	unsigned char *z = gzip_buf(b, strlen(b), &zl);
	assert_true(zl < strlen(b));
	struct reply r;
	struct req q = { .body = z, .len = zl, .key = key, .encoding = "gzip" };
	http(f, &q, &r);
	assert_ack(&r, 200, c->hash[200]);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "gzip_requests"), 1);
	assert_int_equal(jnum(st, "bytes_in"), (long long)zl);
	free(st);
	assert_int_equal(db_num(f, "SELECT gzip FROM requests ORDER BY id DESC LIMIT 1"), 1);

	/* Corrupt: bytes flipped in the middle of the deflate stream. */
	unsigned char *bad = malloc(zl);
	memcpy(bad, z, zl);
	for (size_t i = zl / 2; i < zl / 2 + 16; i++)
		bad[i] ^= 0x5a;
	struct req qb = { .body = bad, .len = zl, .key = key, .encoding = "gzip" };
	http(f, &qb, &r);
	assert_error(&r, 400, 0);
	reply_free(&r);
	/* Truncated. */
	struct req qt = { .body = z, .len = zl - 20, .key = key, .encoding = "gzip" };
	http(f, &qt, &r);
	assert_error(&r, 400, 0);
	reply_free(&r);
	/* Another coding: refused as unsupported. */
	struct req qd = { .body = z, .len = zl, .key = key, .encoding = "br" };
	http(f, &qd, &r);
	assert_int_equal(r.status, 415);
	reply_free(&r);
	free(bad);
	free(z);
	free(b);
	free(key);
	chain_free(c);
}

static void test_auth(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 1, 0);
	char *b = chain_batch(c, 1, 1, NULL), *key = batch_key(c, 1, 1);
	struct reply r;
	static const struct {
		const char *token;
		long status;
	} cases[] = {
		{ "", 401 },            /* no Authorization */
		{ "tok-wrong", 401 },
		{ "tok-", 401 },        /* a prefix of a real token */
		{ TOKEN "x", 401 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct req q = { .body = b, .len = strlen(b), .key = key, .token = cases[i].token };
		http(f, &q, &r);
		assert_error(&r, cases[i].status, -1);
		reply_free(&r);
	}
	struct req basic = { .body = b, .len = strlen(b), .key = key, .token = "",
			     .extra = "Authorization: Basic dG9rLTE6" };
	http(f, &basic, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	assert_int_equal(head_seq(f, "a1", NULL), 0);

	/* The second --token works; refused by control → 403; allowed again → 200. */
	struct req q2 = { .body = b, .len = strlen(b), .key = key, .token = TOKEN2 };
	http(f, &q2, &r);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	ctl_ok(f, "token refuse " TOKEN2);
	http(f, &q2, &r);
	assert_error(&r, 403, -1);
	reply_free(&r);
	ctl_ok(f, "token allow " TOKEN2);
	http(f, &q2, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	/* Added at run time, removed again. */
	ctl_ok(f, "token add tok-3");
	struct req q3 = { .body = b, .len = strlen(b), .key = key, .token = "tok-3" };
	http(f, &q3, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	ctl_ok(f, "token remove tok-3");
	http(f, &q3, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	free(b);
	free(key);
	chain_free(c);
}

/* Table-driven: a batch broken one way each, the status and seq the platform must name. */
static void test_bad_records(void **state)
{
	struct fx *f = *state;
	static const char H0[] = "{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"a1\",\"lab_code\":\"L\","
				 "\"first_seq\":1,\"last_seq\":3,\"prev_hash\":\"" ZEROS "\"}\n";
	static const char R1[] = "{\"seq\":1,\"kind\":\"event\"}\n";
	/* Every part of the grammar, so the accepted batch at the end proves the scanner takes it. */
	static const char R2[] = "{\"seq\":2,\"kind\":\"run\",\"a\":[1,-2.5e3,0.1E+2,true,false,null,{\"b\":"
				 "\"\\u00e9\\n\\\"\\/\"},[]],\"o\":{},\"c\":\"太原 𝄞\"} \n";
	/* Escaped key and value: JSON says this is seq 3 of kind daily. */
	static const char R3[] = "{\"s\\u0065q\":3,\"kind\":\"d\\u0061ily\"}\n";
	static const struct {
		const char *name, *header, *r1, *r2, *r3, *extra;
		long long seq;
	} cases[] = {
		{ "seq out of order", H0, R1, "{\"seq\":3,\"kind\":\"run\"}\n", R3, "", 2 },
		{ "not json", H0, R1, R2, "{\"seq\":3,\"kind\":\"daily\"\n", "", 3 },
		{ "trailing garbage", H0, R1, R2, "{\"seq\":3,\"kind\":\"daily\"} x\n", "", 3 },
		{ "unknown kind", H0, "{\"seq\":1,\"kind\":\"bogus\"}\n", R2, R3, "", 1 },
		{ "kind missing", H0, R1, "{\"seq\":2}\n", R3, "", 2 },
		{ "seq a string", H0, R1, R2, "{\"seq\":\"3\",\"kind\":\"daily\"}\n", "", 3 },
		{ "an array", H0, "[1]\n", R2, R3, "", 1 },
		{ "a record missing", H0, R1, R2, "", "", 3 },
		{ "one record too many", H0, R1, R2, R3, "{\"seq\":4,\"kind\":\"event\"}\n", 4 },
		{ "an empty line", H0, R1, "\n", R3, "", 2 },
		{ "bad schema", "{\"schema\":\"labshare.feed.v2\",\"agent_id\":\"a1\",\"lab_code\":\"L\",\"first_seq\":1,"
				"\"last_seq\":3,\"prev_hash\":\"" ZEROS "\"}\n", R1, R2, R3, "", 0 },
		{ "bad agent id", "{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"a/1\",\"lab_code\":\"L\",\"first_seq\":1,"
				  "\"last_seq\":3,\"prev_hash\":\"" ZEROS "\"}\n", R1, R2, R3, "", 0 },
		{ "uppercase prev_hash", "{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"a1\",\"lab_code\":\"L\",\"first_seq\":1,"
					 "\"last_seq\":3,\"prev_hash\":\"" ZEROS "A\"}\n", R1, R2, R3, "", 0 },
		{ "last before first", "{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"a1\",\"lab_code\":\"L\",\"first_seq\":3,"
				       "\"last_seq\":1,\"prev_hash\":\"" ZEROS "\"}\n", R1, R2, R3, "", 0 },
		{ "header not json", "not json\n", R1, R2, R3, "", 0 },
		{ "gbk bytes", H0, R1, "{\"seq\":2,\"kind\":\"run\",\"org\":\"\xc9\xbd\xce\xf7\"}\n", R3, "", 2 },
		{ "overlong utf-8", H0, R1, R2, "{\"seq\":3,\"kind\":\"daily\",\"x\":\"\xc0\xaf\"}\n", "", 3 },
		{ "raw tab in a string", H0, "{\"seq\":1,\"kind\":\"event\",\"x\":\"a\tb\"}\n", R2, R3, "", 1 },
		{ "bad escape", H0, R1, "{\"seq\":2,\"kind\":\"run\",\"x\":\"\\x41\"}\n", R3, "", 2 },
		{ "seq 2.0", H0, R1, "{\"seq\":2.0,\"kind\":\"run\"}\n", R3, "", 2 },
		{ "leading zero", H0, R1, "{\"seq\":02,\"kind\":\"run\"}\n", R3, "", 2 },
		{ "trailing comma", H0, R1, R2, "{\"seq\":3,\"kind\":\"daily\",}\n", "", 3 },
		{ "kind not a string", H0, "{\"seq\":1,\"kind\":[\"event\"]}\n", R2, R3, "", 1 },
		{ "kind escaped into another word", H0, "{\"seq\":1,\"kind\":\"ev\\u0065nts\"}\n", R2, R3, "", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *b = h_strdupf("%s%s%s%s%s", cases[i].header, cases[i].r1, cases[i].r2, cases[i].r3, cases[i].extra);
		/* The key matches whatever header the case has, so only the body is wrong. */
		cJSON *hj = cJSON_ParseWithLength(b, strcspn(b, "\n"));
		const cJSON *fs = cJSON_GetObjectItem(hj, "first_seq"), *ls = cJSON_GetObjectItem(hj, "last_seq");
		const cJSON *ag = cJSON_GetObjectItem(hj, "agent_id");
		char *key = h_strdupf("%s:%lld-%lld", cJSON_IsString(ag) ? ag->valuestring : "a1",
				      cJSON_IsNumber(fs) ? (long long)fs->valuedouble : 1,
				      cJSON_IsNumber(ls) ? (long long)ls->valuedouble : 3);
		cJSON_Delete(hj);
		struct reply r;
		struct req q = { .body = b, .len = strlen(b), .key = key };
		http(f, &q, &r);
		if (r.status != 422 || jnum(r.body, "seq") != cases[i].seq)
			fail_msg("case '%s': status %ld body %s (want 422 seq %lld)", cases[i].name, r.status,
				 r.body ? r.body : "", cases[i].seq);
		reply_free(&r);
		free(b);
		free(key);
	}
	/* Nesting: 100 levels is refused (a cap on the scanner's recursion), 50 is fine. */
	for (int depth = 100; depth >= 50; depth -= 50) {
		char open[128], close[128];
		memset(open, '[', (size_t)depth);
		memset(close, ']', (size_t)depth);
		open[depth] = close[depth] = '\0';
		char *b = h_strdupf("{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"deep\",\"lab_code\":\"L\","
				    "\"first_seq\":1,\"last_seq\":1,\"prev_hash\":\"" ZEROS "\"}\n"
				    "{\"seq\":1,\"kind\":\"daily\",\"x\":%s%s}\n", open, close);
		struct reply r;
		struct req q = { .body = b, .len = strlen(b), .key = "deep:1-1" };
		http(f, &q, &r);
		if (depth == 100)
			assert_error(&r, 422, 1);
		else
			assert_int_equal(r.status, 200);
		reply_free(&r);
		free(b);
	}
	assert_int_equal(db_num(f, "SELECT count(*) FROM records WHERE agent_id = 'a1'"), 0);

	/* The same records well-formed are accepted: the cases failed for their fault only. */
	char *b = h_strdupf("%s%s%s%s", H0, R1, R2, R3);
	struct reply r;
	struct req q = { .body = b, .len = strlen(b), .key = "a1:1-3" };
	http(f, &q, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	free(b);
}

static void test_content_type_and_key(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 2, 0);
	char *b = chain_batch(c, 1, 2, NULL);
	struct reply r;
	struct req q = { .body = b, .len = strlen(b), .key = "a1:1-2", .ctype = "application/json" };
	http(f, &q, &r);
	assert_error(&r, 415, -1);
	reply_free(&r);
	/* Parameters after the media type are fine. */
	struct req qp = { .body = b, .len = strlen(b), .key = "a1:1-2", .ctype = "application/x-ndjson; charset=utf-8",
			  .method = "POST" };
	static const char *const bad_keys[] = { "a1:1-3", "a2:1-2", "A1:1-2", "a1-1-2", "a1:01-2", NULL };
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		struct req qk = { .body = b, .len = strlen(b), .key = bad_keys[i] };
		http(f, &qk, &r);
		if (r.status != 400 || jnum(r.body, "seq") != 0)
			fail_msg("key '%s': status %ld body %s", bad_keys[i] ? bad_keys[i] : "(none)", r.status,
				 r.body ? r.body : "");
		reply_free(&r);
	}
	assert_int_equal(head_seq(f, "a1", NULL), 0);
	http(f, &qp, &r);
	assert_ack(&r, 2, c->hash[2]);
	reply_free(&r);
	free(b);
	chain_free(c);
}

static void test_large_batch(void **state)
{
	struct fx *f = *state;
	/* 2,000 records of ~300 bytes, plain: the body is read straight into its buffer. */
	struct chain *c = chain_new("big", 2000, 180);
	struct reply r;
	post_range(f, c, 1, 1000, &r);
	assert_ack(&r, 1000, c->hash[1000]);
	reply_free(&r);
	char *b = chain_batch(c, 1001, 2000, NULL), *key = batch_key(c, 1001, 2000);
	size_t zl;
	unsigned char *z = gzip_buf(b, strlen(b), &zl);
	struct req q = { .body = z, .len = zl, .key = key, .encoding = "gzip" };
	http(f, &q, &r);
	assert_ack(&r, 2000, c->hash[2000]);
	reply_free(&r);
	assert_int_equal(db_num(f, "SELECT count(*) FROM records WHERE agent_id='big'"), 2000);
	free(z);
	free(b);
	free(key);
	chain_free(c);
}

/* SPEC §6 checkpoints, what `verify --remote` asks: head and hash of one seq, by ?agent_id=. */
static void test_checkpoints(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 4, 0);
	struct reply r;
	get(f, "/api/v1/feeds/head?agent_id=a1", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "seq"), 0);
	char *h = jstr(r.body, "hash");
	assert_string_equal(h, ZEROS);
	free(h);
	reply_free(&r);
	post_range(f, c, 1, 4, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);

	static const struct {
		const char *path;
		long status;
		long long seq;            /* hash expected: c->hash[seq] */
	} cases[] = {
		{ "/api/v1/feeds/head?agent_id=a1", 200, 4 },
		{ "/v1/feeds/head?agent_id=a1", 200, 4 },
		{ "/api/v1/feeds/hash?agent_id=a1&seq=2", 200, 2 },
		{ "/api/v1/feeds/hash?seq=3&agent_id=a1", 200, 3 },
		{ "/api/v1/feeds/hash?agent_id=a1&seq=0", 200, 0 },
		{ "/api/v1/feeds/hash?agent_id=a1&seq=5", 404, -1 },
		{ "/api/v1/feeds/hash?agent_id=b2&seq=1", 404, -1 },
		{ "/api/v1/feeds/hash?agent_id=a1&seq=x", 400, -1 },
		{ "/api/v1/feeds/hash?agent_id=a1&seq=-1", 400, -1 },
		{ "/api/v1/feeds/hash?agent_id=a1", 400, -1 },
		{ "/api/v1/feeds/head", 400, -1 },
		{ "/api/v1/feeds/head?agent_id=a%2F1", 400, -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		get(f, cases[i].path, NULL, &r);
		if (r.status != cases[i].status)
			fail_msg("%s: status %ld (want %ld), body %s", cases[i].path, r.status, cases[i].status,
				 r.body ? r.body : "");
		if (cases[i].seq >= 0) {
			assert_int_equal(jnum(r.body, "seq"), cases[i].seq);
			h = jstr(r.body, "hash");
			assert_string_equal(h, c->hash[cases[i].seq]);
			free(h);
		}
		reply_free(&r);
	}
	/* The same bearer token as the feed. */
	get(f, "/api/v1/feeds/head?agent_id=a1", "", &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/api/v1/feeds/hash?agent_id=a1&seq=1", "wrong", &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	ctl_ok(f, "token refuse " TOKEN);
	get(f, "/api/v1/feeds/head?agent_id=a1", NULL, &r);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	chain_free(c);
}

/* Tokens as long as the agent takes (4 KiB files) and longer. */
static void test_long_token(void **state)
{
	struct fx *f = *state;
	size_t n = RP_LONG_TOKEN;
	char *tok = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		tok[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[i % 36];
	tok[n] = '\0';
	char *cmd = h_strdupf("token add %s", tok);
	ctl_ok(f, cmd);
	free(cmd);
	struct chain *c = chain_new("a1", 1, 0);
	char *b = chain_batch(c, 1, 1, NULL), *key = batch_key(c, 1, 1);
	struct req q = { .body = b, .len = strlen(b), .key = key, .token = tok };
	struct reply r;
	http(f, &q, &r);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	/* One byte less is another token. */
	tok[n - 1] = '\0';
	http(f, &q, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	free(b);
	free(key);
	free(tok);
	chain_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_first_batch_ack),
		T(test_duplicate_resend),
		T(test_gap_409),
		T(test_wrong_prev_hash_409),
		T(test_altered_duplicate_409),
		T(test_independent_agents),
		T(test_gzip_body),
		T(test_auth),
		T(test_bad_records),
		T(test_content_type_and_key),
		T(test_large_batch),
		T(test_checkpoints),
		T(test_long_token),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
