/* test_refplat.c — the reference platform itself, over real HTTPS (libcurl) with a CA made at test
 * time: SPEC §6 acks and chain checks (hashes computed here independently), every fault command,
 * mutual TLS, restart on the same db. Each test starts its own refplat and stops it by PID. */
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

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define TOKEN "tok-1"
#define TOKEN2 "tok-2"
#define UA "labshare-agent/test"
#define DEADLINE_MS 10000
#define RP_LONG_TOKEN 6000  /* past the agent's 4 KiB token files */

static char *g_pki; /* made once by mkcerts.sh for the whole group */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- an independent chain: lines and their hashes, computed with SHA256() here ---- */

struct chain {
	char agent[65];
	long long n;
	char **lines;           /* [1..n] */
	char (*hash)[65];       /* [0..n], hash[0] = zeros */
};

static void hash_line(const char *prev, const char *line, char out[65])
{
	size_t ll = strlen(line);
	unsigned char *buf = malloc(64 + 1 + ll);
	unsigned char d[SHA256_DIGEST_LENGTH];
	assert_non_null(buf);
	memcpy(buf, prev, 64);
	buf[64] = '\n';
	memcpy(buf + 65, line, ll);
	SHA256(buf, 65 + ll, d);
	free(buf);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void chain_rehash(struct chain *c, long long from)
{
	for (long long s = from; s <= c->n; s++)
		hash_line(c->hash[s - 1], c->lines[s], c->hash[s]);
}

/* pad > 0 makes each line about that long (benchmark-like records). */
static struct chain *chain_new(const char *agent, long long n, int pad)
{
	static const char *const kinds[] = { "session", "run", "daily", "event" };
	struct chain *c = calloc(1, sizeof(*c));
	snprintf(c->agent, sizeof(c->agent), "%s", agent);
	c->n = n;
	c->lines = calloc((size_t)n + 1, sizeof(*c->lines));
	c->hash = calloc((size_t)n + 1, sizeof(*c->hash));
	memcpy(c->hash[0], ZEROS, 65);
	char padding[512];
	memset(padding, 'x', sizeof(padding));
	padding[pad > 0 && pad < (int)sizeof(padding) ? pad : 0] = '\0';
	for (long long s = 1; s <= n; s++)
		c->lines[s] = h_strdupf("{\"seq\":%lld,\"kind\":\"%s\",\"instrument\":\"SX-INS-000123\","
					"\"org\":\"太原理工大学\",\"note\":\"record %lld\",\"pad\":\"%s\"}",
					s, kinds[s % 4], s, padding);
	chain_rehash(c, 1);
	return c;
}

static void chain_set_line(struct chain *c, long long seq, const char *line)
{
	free(c->lines[seq]);
	c->lines[seq] = strdup(line);
	chain_rehash(c, seq);
}

static void chain_free(struct chain *c)
{
	if (!c)
		return;
	for (long long s = 1; s <= c->n; s++)
		free(c->lines[s]);
	free(c->lines);
	free(c->hash);
	free(c);
}

/* Header + lines first..last; prev NULL = the chain's own hash of first-1. */
static char *chain_batch(const struct chain *c, long long first, long long last, const char *prev)
{
	char *b = h_strdupf("{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"%s\",\"lab_code\":\"SXKL-2023-017\","
			    "\"first_seq\":%lld,\"last_seq\":%lld,\"prev_hash\":\"%s\"}\n",
			    c->agent, first, last, prev ? prev : c->hash[first - 1]);
	for (long long s = first; s <= last; s++) {
		char *nb = h_strdupf("%s%s\n", b, c->lines[s]);
		free(b);
		b = nb;
	}
	return b;
}

static char *batch_key(const struct chain *c, long long first, long long last)
{
	return h_strdupf("%s:%lld-%lld", c->agent, first, last);
}

static unsigned char *gzip_buf(const void *in, size_t len, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, len);
	unsigned char *out = malloc(cap);
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* ---- one refplat per test ---- */

struct fx {
	char *dir, *db, *port_file, *log;
	struct h_proc *rp;
	int port;
	bool mtls_server;           /* started with --client-ca */
	const char *client;         /* "client", "rogue" or NULL: which cert curl presents */
	const char *host;           /* "127.0.0.1" or "[::1]" */
	CURL *curl;                 /* reused: keep-alive like the agent */
};

static char *pki(const char *name)
{
	return h_path(g_pki, name);
}

/* listen: "127.0.0.1:0" or a fixed address for a restart. */
static void rp_start(struct fx *f, const char *listen)
{
	char *cert = pki("server.pem"), *key = pki("server.key"), *ca = pki("ca.pem");
	/* const: -Wwrite-strings makes the literals const; h_spawn takes them as they are. */
	const char *argv[24];
	int i = 0;
	char *prog = strdup(h_build_path("refplat"));
	argv[i++] = prog;
	argv[i++] = "--listen";
	argv[i++] = listen;
	argv[i++] = "--port-file";
	argv[i++] = f->port_file;
	argv[i++] = "--cert";
	argv[i++] = cert;
	argv[i++] = "--key";
	argv[i++] = key;
	argv[i++] = "--db";
	argv[i++] = f->db;
	argv[i++] = "--token";
	argv[i++] = TOKEN;
	argv[i++] = "--token";
	argv[i++] = TOKEN2;
	if (f->mtls_server) {
		argv[i++] = "--client-ca";
		argv[i++] = ca;
	}
	argv[i] = NULL;
	unlink(f->port_file);
	f->rp = h_spawn((char *const *)argv, NULL, true, true, f->log);
	assert_non_null(f->rp);
	free(prog);
	free(cert);
	free(key);
	free(ca);
	if (!h_wait_file(f->port_file, DEADLINE_MS)) {
		char *log = h_read_file(f->log, NULL);
		fprintf(stderr, "refplat did not start; its log:\n%s\n", log ? log : "(none)");
		free(log);
		fail_msg("no port file");
	}
	char *p = h_read_file(f->port_file, NULL);
	assert_non_null(p);
	f->port = (int)strtol(p, NULL, 10);
	free(p);
	assert_true(f->port > 0 && f->port < 65536);
}

static int setup_opts(void **state, bool mtls, const char *host, const char *listen)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_refplat");
	f->db = h_path(f->dir, "store.db");
	f->port_file = h_path(f->dir, "port");
	f->log = h_path(f->dir, "refplat.log");
	f->mtls_server = mtls;
	f->client = mtls ? "client" : NULL;
	f->host = host;
	*state = f;
	rp_start(f, listen);
	f->curl = curl_easy_init();
	return 0;
}

static int setup(void **state)
{
	return setup_opts(state, false, "127.0.0.1", "127.0.0.1:0");
}

static int setup_mtls(void **state)
{
	return setup_opts(state, true, "127.0.0.1", "127.0.0.1:0");
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	if (f->curl)
		curl_easy_cleanup(f->curl);
	h_stop(f->rp, 5000);
	h_proc_free(f->rp);
	h_rmtree(f->dir);
	free(f->dir);
	free(f->db);
	free(f->port_file);
	free(f->log);
	free(f);
	return 0;
}

static char *ctl(struct fx *f, const char *cmd)
{
	char *r = h_request(f->rp, cmd, DEADLINE_MS);
	assert_non_null(r);
	return r;
}

static void ctl_ok(struct fx *f, const char *cmd)
{
	char *r = ctl(f, cmd);
	if (strcmp(r, "ok") != 0)
		fail_msg("control '%s' replied '%s'", cmd, r);
	free(r);
}

/* ---- HTTP with libcurl ---- */

struct reply {
	CURLcode rc;
	long status;
	char *body;
	size_t len;
	char retry_after[32];
	char content_type[64];
	long long ms;
};

static void reply_free(struct reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = sz * n;
	char *nb = realloc(r->body, r->len + len + 1);
	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = sz * n;
	if (len > 13 && strncasecmp(p, "Retry-After: ", 13) == 0)
		snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)strcspn(p + 13, "\r\n"), p + 13);
	if (len > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
		snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
	return len;
}

struct body_src {
	const char *data;
	size_t len, off, piece;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *arg)
{
	struct body_src *s = arg;
	size_t want = sz * n;
	if (want > s->piece)
		want = s->piece;
	if (want > s->len - s->off)
		want = s->len - s->off;
	memcpy(buf, s->data + s->off, want);
	s->off += want;
	return want;
}

struct req {
	const char *method;         /* NULL: POST when there is a body, else GET */
	const char *path;           /* default /v1/feeds */
	const char *token;          /* NULL: TOKEN; "": no Authorization */
	const char *key;            /* Idempotency-Key or NULL */
	const char *ctype;          /* NULL: application/x-ndjson */
	const char *encoding;       /* Content-Encoding or NULL */
	const void *body;
	size_t len;
	bool fresh;                 /* a new connection (curl retries once on a reused one that dies) */
	bool expect;                /* send Expect: 100-continue ourselves */
	bool chunked;               /* Transfer-Encoding: chunked, fed 100 bytes at a time */
	const char *extra;          /* one more header line */
	CURL *curl;                 /* NULL: the fixture's */
};

static void configure(struct fx *f, CURL *c)
{
	curl_easy_reset(c);
	char *ca = pki("ca.pem");
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	free(ca);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, UA);
	if (f->client) {
		char *cert = h_strdupf("%s/%s.pem", g_pki, f->client), *key = h_strdupf("%s/%s.key", g_pki, f->client);
		curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, key);
		free(cert);
		free(key);
	}
}

/* Sets up c for the request; returns the header list to free after the transfer. */
static struct curl_slist *prepare(struct fx *f, CURL *c, const struct req *q, struct reply *r, struct body_src *src,
				  char **url)
{
	struct curl_slist *h = NULL;
	char *line;
	configure(f, c);
	*url = h_strdupf("https://%s:%d%s", f->host, f->port, q->path ? q->path : "/v1/feeds");
	curl_easy_setopt(c, CURLOPT_URL, *url);
	if (!q->token || *q->token) {
		line = h_strdupf("Authorization: Bearer %s", q->token ? q->token : TOKEN);
		h = curl_slist_append(h, line);
		free(line);
	}
	if (q->body) {
		line = h_strdupf("Content-Type: %s", q->ctype ? q->ctype : "application/x-ndjson");
		h = curl_slist_append(h, line);
		free(line);
	}
	if (q->key) {
		line = h_strdupf("Idempotency-Key: %s", q->key);
		h = curl_slist_append(h, line);
		free(line);
	}
	if (q->encoding) {
		line = h_strdupf("Content-Encoding: %s", q->encoding);
		h = curl_slist_append(h, line);
		free(line);
	}
	h = curl_slist_append(h, q->expect ? "Expect: 100-continue" : "Expect:");
	if (q->extra)
		h = curl_slist_append(h, q->extra);
	if (q->body && q->chunked) {
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
		src->data = q->body;
		src->len = q->len;
		src->off = 0;
		src->piece = 100;
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, src);
	} else if (q->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
	}
	if (q->method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	if (q->expect)
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 30000L);
	if (q->fresh)
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	return h;
}

static void http(struct fx *f, const struct req *q, struct reply *r)
{
	CURL *c = q->curl ? q->curl : f->curl;
	struct body_src src;
	char *url;
	memset(r, 0, sizeof(*r));
	struct curl_slist *h = prepare(f, c, q, r, &src, &url);
	long long t0 = now_ms();
	r->rc = curl_easy_perform(c);
	r->ms = now_ms() - t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	free(url);
}

/* POST chain[first..last] as the agent would. */
static void post_range(struct fx *f, const struct chain *c, long long first, long long last, struct reply *r)
{
	char *b = chain_batch(c, first, last, NULL), *key = batch_key(c, first, last);
	struct req q = { .body = b, .len = strlen(b), .key = key };
	http(f, &q, r);
	free(b);
	free(key);
}

static void get(struct fx *f, const char *path, const char *token, struct reply *r)
{
	struct req q = { .path = path, .token = token };
	http(f, &q, r);
}

/* ---- JSON and db checks ---- */

static long long jnum(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	long long x = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
	cJSON_Delete(j);
	return x;
}

static char *jstr(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	char *s = cJSON_IsString(v) ? strdup(v->valuestring) : strdup("(absent)");
	cJSON_Delete(j);
	return s;
}

/* Path into a JSON object, e.g. "by_status.200"; -1 when absent. */
static long long jpath(const char *json, const char *a, const char *b)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	long long x = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
	cJSON_Delete(j);
	return x;
}

static void assert_ack(const struct reply *r, long long ack, const char *hash)
{
	if (r->rc != CURLE_OK)
		fail_msg("transfer failed: %s", curl_easy_strerror(r->rc));
	if (r->status != 200)
		fail_msg("status %ld, body %s", r->status, r->body ? r->body : "");
	assert_int_equal(jnum(r->body, "ack"), ack);
	char *h = jstr(r->body, "hash");
	assert_string_equal(h, hash);
	free(h);
}

static void assert_409(const struct reply *r, long long expected, const char *hash)
{
	assert_int_equal(r->rc, CURLE_OK);
	if (r->status != 409)
		fail_msg("status %ld, body %s", r->status, r->body ? r->body : "");
	char *e = jstr(r->body, "error"), *h = jstr(r->body, "hash");
	assert_string_equal(e, "sequence");
	assert_int_equal(jnum(r->body, "expected_seq"), expected);
	assert_string_equal(h, hash);
	free(e);
	free(h);
}

static void assert_error(const struct reply *r, long status, long long seq)
{
	assert_int_equal(r->rc, CURLE_OK);
	if (r->status != status)
		fail_msg("status %ld (want %ld), body %s", r->status, status, r->body ? r->body : "");
	char *e = jstr(r->body, "error");
	assert_string_not_equal(e, "(absent)");
	free(e);
	assert_int_equal(jnum(r->body, "seq"), seq);
}

/* The platform's head for an agent, through the control channel. */
static long long head_seq(struct fx *f, const char *agent, char hash[65])
{
	char *cmd = h_strdupf("head %s", agent);
	char *r = ctl(f, cmd);
	long long s = jnum(r, "seq");
	if (hash) {
		char *h = jstr(r, "hash");
		snprintf(hash, 65, "%s", h);
		free(h);
	}
	free(cmd);
	free(r);
	return s;
}

static sqlite3 *db_open(struct fx *f)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* First column of the first row as text (caller frees), "(null)" or "(none)". */
static char *db_text(struct fx *f, const char *sql)
{
	sqlite3 *db = db_open(f);
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		fail_msg("sql '%s': %s", sql, sqlite3_errmsg(db));
	char *out;
	if (sqlite3_step(q) == SQLITE_ROW)
		out = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "(null)");
	else
		out = strdup("(none)");
	sqlite3_finalize(q);
	sqlite3_close(db);
	return out;
}

static long long db_num(struct fx *f, const char *sql)
{
	char *s = db_text(f, sql);
	long long v = strtoll(s, NULL, 10);
	free(s);
	return v;
}

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

/* ================= HTTP ================= */

static void test_routing(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 1, 0);
	char *b = chain_batch(c, 1, 1, NULL);
	struct reply r;
	struct req q = { .path = "/api/v2/province/v1/feeds", .body = b, .len = strlen(b), .key = "a1:1-1" };
	http(f, &q, &r);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	struct req nf = { .path = "/v1/feed", .body = b, .len = strlen(b), .key = "a1:1-1" };
	http(f, &nf, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	struct req slash = { .path = "/v1/feeds/", .body = b, .len = strlen(b), .key = "a1:1-1" };
	http(f, &slash, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/v1/feeds", NULL, &r);
	assert_int_equal(r.status, 405);
	reply_free(&r);
	struct req put = { .method = "PUT", .path = "/v1/feeds/a1/head" };
	http(f, &put, &r);
	assert_int_equal(r.status, 405);
	reply_free(&r);
	free(b);
	chain_free(c);
}

static void test_get_endpoints(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 4, 0);
	struct reply r;
	post_range(f, c, 1, 4, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);

	get(f, "/v1/feeds/a1/records?from=2&to=3", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/x-ndjson");
	char *want = h_strdupf("%s\n%s\n", c->lines[2], c->lines[3]);
	assert_string_equal(r.body, want);
	free(want);
	reply_free(&r);

	get(f, "/api/v1/feeds/a1/records", NULL, &r);
	want = h_strdupf("%s\n%s\n%s\n%s\n", c->lines[1], c->lines[2], c->lines[3], c->lines[4]);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, want);
	free(want);
	reply_free(&r);

	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "seq"), 4);
	char *h = jstr(r.body, "hash");
	assert_string_equal(h, c->hash[4]);
	free(h);
	reply_free(&r);

	get(f, "/v1/feeds/nobody/head", NULL, &r);
	assert_int_equal(jnum(r.body, "seq"), 0);
	h = jstr(r.body, "hash");
	assert_string_equal(h, ZEROS);
	free(h);
	reply_free(&r);

	get(f, "/v1/feeds/a1/head", "", &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/v1/feeds/a1/records", "wrong", &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/v1/feeds/a1/records?from=x", NULL, &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);
	get(f, "/v1/feeds/a%2F1/head", NULL, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	chain_free(c);
}

static void test_expect_100_continue(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 3, 0);
	char *b = chain_batch(c, 1, 3, NULL), *key = batch_key(c, 1, 3);
	struct reply r;
	/* curl waits 30 s for "100 Continue" before sending anyway: a quick reply proves it came. */
	struct req q = { .body = b, .len = strlen(b), .key = key, .expect = true };
	http(f, &q, &r);
	assert_ack(&r, 3, c->hash[3]);
	assert_true(r.ms < 10000);
	reply_free(&r);
	free(b);
	free(key);
	chain_free(c);
}

static void test_chunked_body(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 50, 40);
	char *b = chain_batch(c, 1, 50, NULL), *key = batch_key(c, 1, 50);
	struct reply r;
	struct req q = { .body = b, .len = strlen(b), .key = key, .chunked = true };
	http(f, &q, &r);
	assert_ack(&r, 50, c->hash[50]);
	reply_free(&r);
	/* Chunked and gzip together. */
	struct chain *d = chain_new("a2", 20, 40);
	char *b2 = chain_batch(d, 1, 20, NULL), *key2 = batch_key(d, 1, 20);
	size_t zl;
	unsigned char *z = gzip_buf(b2, strlen(b2), &zl);
	struct req q2 = { .body = z, .len = zl, .key = key2, .chunked = true, .encoding = "gzip" };
	http(f, &q2, &r);
	assert_ack(&r, 20, d->hash[20]);
	reply_free(&r);
	free(z);
	free(b2);
	free(key2);
	chain_free(d);
	free(b);
	free(key);
	chain_free(c);
}

static void test_keep_alive(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 3, 0);
	struct reply r;
	for (long long s = 1; s <= 3; s++) {
		post_range(f, c, s, s, &r);
		assert_ack(&r, s, c->hash[s]);
		reply_free(&r);
	}
	/* An error reply keeps the connection too. */
	get(f, "/v1/feeds/a1/head", "wrong", &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "connections"), 1);
	free(st);
	assert_int_equal(db_num(f, "SELECT count(DISTINCT conn) FROM requests"), 1);
	chain_free(c);
}

static void test_header_too_large(void **state)
{
	struct fx *f = *state;
	size_t n = 70 * 1024;
	char *big = malloc(n + 16);
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'a', n);
	big[7 + n] = '\0';
	struct reply r;
	struct req q = { .path = "/v1/feeds/a1/head", .extra = big };
	http(f, &q, &r);
	assert_int_equal(r.status, 431);
	reply_free(&r);
	free(big);
	/* And the server is fine afterwards. */
	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
}

/* ================= faults ================= */

static void test_fault_status(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 3, 0);
	struct reply r;
	ctl_ok(f, "fault status 503 retry_after=7 count=2");
	for (int i = 0; i < 2; i++) {
		post_range(f, c, 1, 3, &r);
		assert_int_equal(r.status, 503);
		assert_string_equal(r.retry_after, "7");
		assert_int_equal(head_seq(f, "a1", NULL), 0); /* nothing stored */
		reply_free(&r);
	}
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	assert_string_equal(r.retry_after, "");
	reply_free(&r);

	/* count=0: until cleared; body= as given; no Retry-After unless asked. */
	ctl_ok(f, "fault status 429 count=0 body={\"error\":\"slow down\", \"x\":1}");
	for (int i = 0; i < 3; i++) {
		post_range(f, c, 1, 3, &r);
		assert_int_equal(r.status, 429);
		assert_string_equal(r.body, "{\"error\":\"slow down\", \"x\":1}");
		assert_string_equal(r.retry_after, "");
		reply_free(&r);
	}
	ctl_ok(f, "clear");
	/* Injected statuses come before the token check: a 401 with a right token. */
	ctl_ok(f, "fault status 401");
	post_range(f, c, 1, 3, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	post_range(f, c, 1, 3, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	/* GETs are not feeds: they never meet a fault. */
	ctl_ok(f, "fault status 500 count=0");
	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	chain_free(c);
}

static void test_fault_drop_reply(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 3, 0);
	struct reply r;
	ctl_ok(f, "fault drop_reply");
	char *b = chain_batch(c, 1, 3, NULL), *key = batch_key(c, 1, 3);
	struct req q = { .body = b, .len = strlen(b), .key = key, .fresh = true };
	http(f, &q, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 0);
	reply_free(&r);
	/* Stored although never acknowledged. */
	assert_int_equal(head_seq(f, "a1", NULL), 3);
	char *row = db_text(f, "SELECT status || ',' || replied || ',' || fault FROM requests ORDER BY id DESC LIMIT 1");
	assert_string_equal(row, "200,0,drop_reply");
	free(row);
	/* The agent's resend: duplicates, acknowledged. */
	http(f, &q, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "dups"), 3);
	assert_int_equal(jnum(st, "dropped"), 1);
	free(st);
	free(b);
	free(key);
	chain_free(c);
}

static void test_fault_drop_before(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 3, 0);
	struct reply r;
	ctl_ok(f, "fault drop_before count=2");
	char *b = chain_batch(c, 1, 3, NULL), *key = batch_key(c, 1, 3);
	struct req q = { .body = b, .len = strlen(b), .key = key, .fresh = true };
	for (int i = 0; i < 2; i++) {
		http(f, &q, &r);
		assert_int_not_equal(r.rc, CURLE_OK);
		reply_free(&r);
		assert_int_equal(head_seq(f, "a1", NULL), 0);
	}
	http(f, &q, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "dups"), 0);
	assert_int_equal(jnum(st, "records"), 3);
	free(st);
	free(b);
	free(key);
	chain_free(c);
}

static void test_fault_max_body(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 10, 100);
	struct reply r;
	char *small = chain_batch(c, 1, 1, NULL);
	char *large = chain_batch(c, 2, 10, NULL), *lkey = batch_key(c, 2, 10);
	size_t limit = strlen(small) + 10;
	assert_true(strlen(large) > limit);
	char *cmd = h_strdupf("fault max_body %zu", limit);
	ctl_ok(f, cmd);
	free(cmd);

	struct req ql = { .body = large, .len = strlen(large), .key = lkey };
	http(f, &ql, &r);
	assert_error(&r, 413, -1);
	reply_free(&r);
	/* The same announced with Expect: refused before the body is sent. */
	struct req qe = { .body = large, .len = strlen(large), .key = lkey, .expect = true };
	http(f, &qe, &r);
	assert_int_equal(r.status, 413);
	assert_true(r.ms < 10000);
	reply_free(&r);
	/* Chunked bodies are measured as they come. */
	struct req qc = { .body = large, .len = strlen(large), .key = lkey, .chunked = true };
	http(f, &qc, &r);
	assert_int_equal(r.status, 413);
	reply_free(&r);
	/* The agent halves the batch: the small one passes. */
	struct req qs = { .body = small, .len = strlen(small), .key = "a1:1-1" };
	http(f, &qs, &r);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	ctl_ok(f, "fault max_body 0");
	http(f, &ql, &r);
	assert_ack(&r, 10, c->hash[10]);
	reply_free(&r);
	free(small);
	free(large);
	free(lkey);
	chain_free(c);
}

static void test_fault_slow(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 1, 0);
	ctl_ok(f, "fault slow 1000");
	char *b = chain_batch(c, 1, 1, NULL);
	struct req qpost = { .body = b, .len = strlen(b), .key = "a1:1-1" };
	struct req qget = { .path = "/v1/feeds/a1/head" };
	struct reply rpost, rget;
	memset(&rpost, 0, sizeof(rpost));
	memset(&rget, 0, sizeof(rget));
	CURL *hp = curl_easy_init(), *hg = curl_easy_init();
	struct body_src sp, sg;
	char *up, *ug;
	struct curl_slist *lp = prepare(f, hp, &qpost, &rpost, &sp, &up);
	CURLM *m = curl_multi_init();
	curl_multi_add_handle(m, hp);
	long long t0 = now_ms();
	int running = 1;
	/* Start the slow POST, let it reach the server, then a GET on a second connection. */
	while (db_num(f, "SELECT count(*) FROM records") == 0 && now_ms() - t0 < DEADLINE_MS) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	assert_true(now_ms() - t0 < DEADLINE_MS);
	struct curl_slist *lg = prepare(f, hg, &qget, &rget, &sg, &ug);
	curl_multi_add_handle(m, hg);
	bool get_done = false, post_done = false;
	long long post_ms = 0, get_ms = 0;
	while (!(get_done && post_done) && now_ms() - t0 < 2 * DEADLINE_MS) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			if (msg->easy_handle == hg) {
				get_done = true;
				get_ms = now_ms() - t0;
			} else {
				post_done = true;
				post_ms = now_ms() - t0;
			}
		}
		curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	assert_true(get_done && post_done);
	/* One slow reply does not hold up another connection: the GET is done long before. */
	if (!(post_ms >= 1000 && post_ms - get_ms >= 500))
		fail_msg("post done at %lld ms, get at %lld ms", post_ms, get_ms);
	long st;
	curl_easy_getinfo(hg, CURLINFO_RESPONSE_CODE, &st);
	assert_int_equal(st, 200);
	curl_easy_getinfo(hp, CURLINFO_RESPONSE_CODE, &st);
	assert_int_equal(st, 200);
	assert_int_equal(jnum(rpost.body, "ack"), 1);
	curl_multi_remove_handle(m, hp);
	curl_multi_remove_handle(m, hg);
	curl_multi_cleanup(m);
	curl_easy_cleanup(hp);
	curl_easy_cleanup(hg);
	curl_slist_free_all(lp);
	curl_slist_free_all(lg);
	free(up);
	free(ug);
	reply_free(&rpost);
	reply_free(&rget);

	/* Used up: the next one is quick. */
	struct reply r;
	http(f, &qpost, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.ms < 1000);
	reply_free(&r);
	free(b);
	chain_free(c);
}

static void test_fault_reject(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 5, 0);
	struct reply r;
	ctl_ok(f, "fault reject 3 error=instrument code unknown: SX-INS-000123");
	post_range(f, c, 1, 5, &r);
	assert_error(&r, 422, 3);
	char *e = jstr(r.body, "error");
	assert_string_equal(e, "instrument code unknown: SX-INS-000123");
	free(e);
	reply_free(&r);
	post_range(f, c, 1, 2, &r);
	assert_ack(&r, 2, c->hash[2]);
	reply_free(&r);
	post_range(f, c, 3, 5, &r); /* still refused: until cleared */
	assert_error(&r, 422, 3);
	reply_free(&r);
	ctl_ok(f, "fault reject 3 status=400");
	post_range(f, c, 3, 5, &r);
	assert_error(&r, 400, 3);
	e = jstr(r.body, "error");
	assert_string_equal(e, "rejected");
	free(e);
	reply_free(&r);
	char *bad = ctl(f, "fault reject 3 status=500");
	assert_true(strncmp(bad, "error:", 6) == 0);
	free(bad);
	ctl_ok(f, "clear");
	post_range(f, c, 3, 5, &r);
	assert_ack(&r, 5, c->hash[5]);
	reply_free(&r);
	chain_free(c);
}

static void test_fault_wrong_hash(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 5, 0);
	struct reply r;
	ctl_ok(f, "fault wrong_hash");
	post_range(f, c, 1, 3, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "ack"), 3);
	char *h = jstr(r.body, "hash");
	assert_string_not_equal(h, c->hash[3]);
	assert_int_equal(strlen(h), 64);
	assert_int_equal(strspn(h, "0123456789abcdef"), 64);
	free(h);
	reply_free(&r);
	/* What was stored is right; the next reply is true again. */
	char hh[65];
	assert_int_equal(head_seq(f, "a1", hh), 3);
	assert_string_equal(hh, c->hash[3]);
	post_range(f, c, 4, 5, &r);
	assert_ack(&r, 5, c->hash[5]);
	reply_free(&r);
	chain_free(c);
}

static void test_fault_ack_behind(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 7, 0);
	struct reply r;
	ctl_ok(f, "fault ack_behind 2");
	post_range(f, c, 1, 5, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	assert_int_equal(head_seq(f, "a1", NULL), 5);
	/* The agent resends from 4: duplicates 4..5 and new 6..7. */
	post_range(f, c, 4, 7, &r);
	assert_ack(&r, 7, c->hash[7]);
	reply_free(&r);
	/* Behind past the start: ack 0 with the zero hash. */
	ctl_ok(f, "fault ack_behind 100");
	post_range(f, c, 7, 7, &r);
	assert_ack(&r, 0, ZEROS);
	reply_free(&r);
	chain_free(c);
}

static void test_clear(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 1, 0);
	struct reply r;
	ctl_ok(f, "fault status 503 count=0");
	ctl_ok(f, "fault drop_before count=0");
	ctl_ok(f, "fault drop_reply count=0");
	ctl_ok(f, "fault max_body 10");
	ctl_ok(f, "fault slow 5000 count=0");
	ctl_ok(f, "fault reject 1");
	ctl_ok(f, "fault wrong_hash count=0");
	ctl_ok(f, "fault ack_behind 1 count=0");
	ctl_ok(f, "token refuse " TOKEN);
	ctl_ok(f, "clear");
	post_range(f, c, 1, 1, &r);
	assert_ack(&r, 1, c->hash[1]);
	assert_true(r.ms < 5000);
	reply_free(&r);
	chain_free(c);
}

/* ================= control, stats, log ================= */

static void test_control_commands(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *cmd;
		const char *want_prefix;
	} cases[] = {
		{ "ping", "ok" },
		{ "", "error:" },
		{ "bogus", "error:" },
		{ "fault", "error:" },
		{ "fault bogus", "error:" },
		{ "fault status", "error:" },
		{ "fault status 99", "error:" },
		{ "fault status 503 count=x", "error:" },
		{ "fault status 503 colour=red", "error:" },
		{ "fault status 503 body={not json", "error:" },
		{ "fault slow", "error:" },
		{ "fault max_body -1", "error:" },
		{ "fault reject 0", "error:" },
		{ "fault ack_behind 0", "error:" },
		{ "fault pad_reply 0", "error:" },
		{ "token refuse nosuchtoken", "error:" },
		{ "token frob " TOKEN, "error:" },
		{ "head", "error:" },
		{ "head nobody", "{\"seq\":0,\"hash\":\"" ZEROS "\"}" },
		{ "clear", "ok" },
		{ "fault status 500 count=0", "ok" },
		{ "clear", "ok" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = ctl(f, cases[i].cmd);
		if (strncmp(r, cases[i].want_prefix, strlen(cases[i].want_prefix)) != 0)
			fail_msg("'%s' replied '%s'", cases[i].cmd, r);
		free(r);
	}
	/* A line too long is one error reply, and the channel goes on. */
	size_t n = 70000;
	char *longline = malloc(n + 1);
	memset(longline, 'x', n);
	longline[n] = '\0';
	char *r = ctl(f, longline);
	assert_string_equal(r, "error: line too long");
	free(r);
	free(longline);
	ctl_ok(f, "ping");

	ctl_ok(f, "quit");
	assert_int_equal(h_wait(f->rp, DEADLINE_MS), 0);
}

static void test_stats(void **state)
{
	struct fx *f = *state;
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "requests"), 0);
	char *ua = jstr(st, "last_user_agent");
	assert_string_equal(ua, "(absent)"); /* null before any feed */
	free(ua);
	free(st);

	struct chain *c = chain_new("a1", 3, 0);
	struct reply r;
	char *b1 = chain_batch(c, 1, 2, NULL), *b2 = chain_batch(c, 3, 3, NULL);
	struct req q1 = { .body = b1, .len = strlen(b1), .key = "a1:1-2" };
	struct req q2 = { .body = b2, .len = strlen(b2), .key = "a1:3-3" };
	struct req qbad = { .body = b2, .len = strlen(b2), .key = "a1:3-3", .token = "nope" };
	http(f, &q1, &r);
	reply_free(&r);
	http(f, &qbad, &r);
	reply_free(&r);
	http(f, &q2, &r);
	reply_free(&r);

	st = ctl(f, "stats");
	assert_int_equal(jnum(st, "requests"), 3);
	assert_int_equal(jnum(st, "feed_posts"), 3);
	assert_int_equal(jpath(st, "by_status", "200"), 2);
	assert_int_equal(jpath(st, "by_status", "401"), 1);
	assert_int_equal(jnum(st, "records"), 3);
	assert_int_equal(jnum(st, "dups"), 0);
	assert_int_equal(jnum(st, "gzip_requests"), 0);
	assert_int_equal(jnum(st, "bytes_in"), (long long)(strlen(b1) + 2 * strlen(b2)));
	assert_int_equal(jpath(st, "last_seq", "a1"), 3);
	ua = jstr(st, "last_user_agent");
	assert_string_equal(ua, UA);
	free(ua);
	char *k = jstr(st, "last_idempotency_key");
	assert_string_equal(k, "a1:3-3");
	free(k);
	free(st);
	free(b1);
	free(b2);
	chain_free(c);
}

static void test_requests_table(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 4, 0);
	struct reply r;
	post_range(f, c, 1, 2, &r);
	reply_free(&r);
	post_range(f, c, 4, 4, &r); /* a gap: 409 */
	reply_free(&r);
	char *b = chain_batch(c, 3, 4, NULL);
	size_t zl;
	unsigned char *z = gzip_buf(b, strlen(b), &zl);
	struct req q = { .body = z, .len = zl, .key = "a1:3-4", .encoding = "gzip" };
	http(f, &q, &r);
	reply_free(&r);
	get(f, "/v1/feeds/a1/head", NULL, &r);
	reply_free(&r);

	sqlite3 *db = db_open(f);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT method, path, status, replied, gzip, body_bytes, coalesce(idempotency_key,'-'),"
					    " coalesce(user_agent,'-'), coalesce(first_seq,0), coalesce(last_seq,0),"
					    " coalesce(content_type,'-') FROM requests ORDER BY id",
					    -1, &st, NULL),
			 SQLITE_OK);
	const char *expect[][4] = {
		/* method path status gzip:key:range */
		{ "POST", "/v1/feeds", "200", "0:a1:1-2:1-2" },
		{ "POST", "/v1/feeds", "409", "0:a1:4-4:4-4" },
		{ "POST", "/v1/feeds", "200", "1:a1:3-4:3-4" },
		{ "GET", "/v1/feeds/a1/head", "200", "0:-:0-0" },
	};
	size_t i = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_true(i < 4);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), expect[i][0]);
		assert_string_equal((const char *)sqlite3_column_text(st, 1), expect[i][1]);
		assert_string_equal((const char *)sqlite3_column_text(st, 2), expect[i][2]);
		assert_int_equal(sqlite3_column_int(st, 3), 1);
		char *got = h_strdupf("%d:%s:%lld-%lld", sqlite3_column_int(st, 4), sqlite3_column_text(st, 6),
				      (long long)sqlite3_column_int64(st, 8), (long long)sqlite3_column_int64(st, 9));
		assert_string_equal(got, expect[i][3]);
		free(got);
		assert_string_equal((const char *)sqlite3_column_text(st, 7), UA);
		if (i == 2)
			assert_int_equal(sqlite3_column_int64(st, 5), (long long)zl);
		if (i < 3)
			assert_string_equal((const char *)sqlite3_column_text(st, 10), "application/x-ndjson");
		i++;
	}
	assert_int_equal(i, 4);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(z);
	free(b);
	chain_free(c);
}

/* ================= TLS, lifecycle ================= */

static void test_mtls(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 1, 0);
	char *b = chain_batch(c, 1, 1, NULL);
	struct req q = { .body = b, .len = strlen(b), .key = "a1:1-1", .fresh = true };
	struct reply r;
	f->client = NULL; /* no client certificate */
	http(f, &q, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	reply_free(&r);
	f->client = "rogue"; /* self-signed, not from the CA */
	http(f, &q, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	reply_free(&r);
	assert_int_equal(head_seq(f, "a1", NULL), 0);
	f->client = "client";
	http(f, &q, &r);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "tls_failures"), 2);
	assert_int_equal(jnum(st, "connections"), 1);
	free(st);
	free(b);
	chain_free(c);
}

static void test_server_verified(void **state)
{
	struct fx *f = *state;
	struct reply r;
	/* Checked by name too: localhost is in the certificate. */
	const char *host = f->host;
	f->host = "localhost";
	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	f->host = host;
	/* A client trusting another CA refuses the server. */
	CURL *c = curl_easy_init();
	struct req q = { .path = "/v1/feeds/a1/head", .curl = c };
	configure(f, c);
	char *rogue = pki("rogue.pem");
	struct body_src src;
	char *url;
	memset(&r, 0, sizeof(r));
	struct curl_slist *h = prepare(f, c, &q, &r, &src, &url);
	curl_easy_setopt(c, CURLOPT_CAINFO, rogue);
	r.rc = curl_easy_perform(c);
	assert_int_equal(r.rc, CURLE_PEER_FAILED_VERIFICATION);
	curl_slist_free_all(h);
	free(url);
	free(rogue);
	reply_free(&r);
	curl_easy_cleanup(c);
}

static void test_restart_keeps_chain(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 6, 0);
	struct reply r;
	post_range(f, c, 1, 3, &r);
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);

	/* An outage: stop, the port refuses, then the same db and port again. */
	assert_int_equal(h_stop(f->rp, 5000), 0);
	h_proc_free(f->rp);
	f->rp = NULL;
	post_range(f, c, 4, 5, &r);
	assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
	reply_free(&r);
	char *listen = h_strdupf("127.0.0.1:%d", f->port);
	int old = f->port;
	rp_start(f, listen);
	free(listen);
	assert_int_equal(f->port, old);

	char hh[65];
	assert_int_equal(head_seq(f, "a1", hh), 3);
	assert_string_equal(hh, c->hash[3]);
	post_range(f, c, 1, 3, &r); /* known: duplicates */
	assert_ack(&r, 3, c->hash[3]);
	reply_free(&r);
	char *st = ctl(f, "stats");
	assert_int_equal(jnum(st, "dups"), 3);
	assert_int_equal(jnum(st, "records"), 0);
	free(st);
	post_range(f, c, 5, 6, &r); /* a gap after the restart too */
	assert_409(&r, 4, c->hash[3]);
	reply_free(&r);
	post_range(f, c, 4, 6, &r);
	assert_ack(&r, 6, c->hash[6]);
	reply_free(&r);
	get(f, "/v1/feeds/a1/records", NULL, &r);
	char *want = h_strdupf("%s\n%s\n%s\n%s\n%s\n%s\n", c->lines[1], c->lines[2], c->lines[3], c->lines[4],
			       c->lines[5], c->lines[6]);
	assert_string_equal(r.body, want);
	free(want);
	reply_free(&r);
	chain_free(c);
}

static void test_stop_signals(void **state)
{
	struct fx *f = *state;
	struct reply r;
	/* An idle keep-alive connection must not hold up a clean stop. */
	get(f, "/v1/feeds/a1/head", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	assert_int_equal(h_kill(f->rp, SIGINT), 0);
	assert_int_equal(h_wait(f->rp, 5000), 0);
	h_proc_free(f->rp);

	rp_start(f, "127.0.0.1:0");
	/* A slow reply in progress does not either. */
	ctl_ok(f, "fault slow 60000");
	CURL *c = curl_easy_init();
	struct chain *ch = chain_new("a1", 1, 0);
	char *b = chain_batch(ch, 1, 1, NULL);
	struct req q = { .body = b, .len = strlen(b), .key = "a1:1-1", .curl = c };
	struct body_src src;
	char *url;
	memset(&r, 0, sizeof(r));
	struct curl_slist *h = prepare(f, c, &q, &r, &src, &url);
	CURLM *m = curl_multi_init();
	curl_multi_add_handle(m, c);
	int running = 1;
	long long t0 = now_ms();
	while (db_num(f, "SELECT count(*) FROM records") == 0 && now_ms() - t0 < DEADLINE_MS) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	assert_true(now_ms() - t0 < DEADLINE_MS);
	assert_int_equal(h_kill(f->rp, SIGTERM), 0);
	assert_int_equal(h_wait(f->rp, 5000), 0);
	curl_multi_remove_handle(m, c);
	curl_multi_cleanup(m);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(url);
	reply_free(&r);
	free(b);
	chain_free(ch);
}

static int setup_v6(void **state)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (s >= 0)
		close(s);
	if (!ok) {
		*state = NULL; /* no ::1 here (a container without IPv6): the test skips */
		return 0;
	}
	return setup_opts(state, false, "[::1]", "[::1]:0");
}

static void test_ipv6(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	struct chain *c = chain_new("v6", 2, 0);
	struct reply r;
	post_range(f, c, 1, 2, &r);
	assert_ack(&r, 2, c->hash[2]);
	reply_free(&r);
	chain_free(c);
}

static void test_bad_command_line(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	char *prog = strdup(h_build_path("refplat"));
	const char *argv[] = { prog, "--listen", "127.0.0.1:0", NULL };
	assert_int_equal(h_run((char *const *)argv, NULL, &out, &err, DEADLINE_MS), 64);
	assert_non_null(strstr(err, "required"));
	free(out);
	free(err);
	char *dir = h_mkdtemp("test_refplat");
	char *db = h_path(dir, "db"), *cert = pki("server.pem"), *key = pki("server.key");
	const char *argv2[] = { prog, "--listen", "nonsense", "--cert", cert, "--key", key, "--db", db, "--token", "t", NULL };
	assert_int_equal(h_run((char *const *)argv2, NULL, &out, &err, DEADLINE_MS), 1);
	assert_non_null(strstr(err, "--listen"));
	free(out);
	free(err);
	const char *argv3[] = { prog, "--listen", "127.0.0.1:0", "--cert", key, "--key", key, "--db", db, "--token", "t", NULL };
	assert_int_equal(h_run((char *const *)argv3, NULL, &out, &err, DEADLINE_MS), 1);
	assert_non_null(strstr(err, "--cert"));
	free(out);
	free(err);
	h_rmtree(dir);
	free(dir);
	free(db);
	free(cert);
	free(key);
	free(prog);
}

/* ================= main ================= */

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	g_pki = h_mkdtemp("test_refplat_pki");
	char *script = strdup("tests/refplat/mkcerts.sh");
	char *argv[] = { script, g_pki, NULL };
	char *out = NULL, *err = NULL;
	int rc = h_run(argv, NULL, &out, &err, 30000);
	if (rc != 0)
		fprintf(stderr, "mkcerts.sh failed (%d): %s\n", rc, err ? err : "");
	free(out);
	free(err);
	free(script);
	return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	h_rmtree(g_pki);
	free(g_pki);
	curl_global_cleanup();
	return 0;
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

/* fault pad_reply: the reply comes after that many spaces (still the same JSON). */
static void test_fault_pad_reply(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new("a1", 2, 0);
	struct reply r;
	ctl_ok(f, "fault pad_reply 70000 count=1");
	post_range(f, c, 1, 1, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.len > 70000);
	assert_int_equal(strspn(r.body, " "), 70000);
	assert_ack(&r, 1, c->hash[1]);
	reply_free(&r);
	post_range(f, c, 2, 2, &r);
	assert_ack(&r, 2, c->hash[2]);
	assert_int_not_equal(r.body[0], ' ');
	reply_free(&r);
	chain_free(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

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
		T(test_routing),
		T(test_get_endpoints),
		T(test_checkpoints),
		T(test_long_token),
		T(test_fault_pad_reply),
		T(test_expect_100_continue),
		T(test_chunked_body),
		T(test_keep_alive),
		T(test_header_too_large),
		T(test_fault_status),
		T(test_fault_drop_reply),
		T(test_fault_drop_before),
		T(test_fault_max_body),
		T(test_fault_slow),
		T(test_fault_reject),
		T(test_fault_wrong_hash),
		T(test_fault_ack_behind),
		T(test_clear),
		T(test_control_commands),
		T(test_stats),
		T(test_requests_table),
		cmocka_unit_test_setup_teardown(test_mtls, setup_mtls, teardown),
		T(test_server_verified),
		T(test_restart_keeps_chain),
		T(test_stop_signals),
		cmocka_unit_test_setup_teardown(test_ipv6, setup_v6, teardown),
		cmocka_unit_test(test_bad_command_line),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
