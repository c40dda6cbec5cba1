/* test_refplat_env.h — the fixture of the reference platform's tests (test_refplat.c,
 * test_refplat_http.c, test_refplat_faults.c): an independent chain with its hashes computed
 * here, one refplat per test started and stopped by PID, libcurl requests as the agent makes
 * them, JSON and db checks, and the group setup that makes the CA once. Each program includes
 * it once, after its system headers, and uses what it needs. */
#ifndef LABSHARE_TEST_REFPLAT_ENV_H
#define LABSHARE_TEST_REFPLAT_ENV_H

#define RP_FIX static __attribute__((unused))

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define TOKEN "tok-1"
#define TOKEN2 "tok-2"
#define UA "labshare-agent/test"
#define DEADLINE_MS 10000
#define RP_LONG_TOKEN 6000  /* past the agent's 4 KiB token files */

static char *g_pki; /* made once by mkcerts.sh for the whole group */

RP_FIX long long now_ms(void)
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

RP_FIX void hash_line(const char *prev, const char *line, char out[65])
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

RP_FIX void chain_rehash(struct chain *c, long long from)
{
	for (long long s = from; s <= c->n; s++)
		hash_line(c->hash[s - 1], c->lines[s], c->hash[s]);
}

/* pad > 0 makes each line about that long (benchmark-like records). */
RP_FIX struct chain *chain_new(const char *agent, long long n, int pad)
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

RP_FIX void chain_set_line(struct chain *c, long long seq, const char *line)
{
	free(c->lines[seq]);
	c->lines[seq] = strdup(line);
	chain_rehash(c, seq);
}

RP_FIX void chain_free(struct chain *c)
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
RP_FIX char *chain_batch(const struct chain *c, long long first, long long last, const char *prev)
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

RP_FIX char *batch_key(const struct chain *c, long long first, long long last)
{
	return h_strdupf("%s:%lld-%lld", c->agent, first, last);
}

RP_FIX unsigned char *gzip_buf(const void *in, size_t len, size_t *outlen)
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

RP_FIX char *pki(const char *name)
{
	return h_path(g_pki, name);
}

/* listen: "127.0.0.1:0" or a fixed address for a restart. */
RP_FIX void rp_start(struct fx *f, const char *listen)
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

RP_FIX int setup_opts(void **state, bool mtls, const char *host, const char *listen)
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

RP_FIX int setup(void **state)
{
	return setup_opts(state, false, "127.0.0.1", "127.0.0.1:0");
}

RP_FIX int setup_mtls(void **state)
{
	return setup_opts(state, true, "127.0.0.1", "127.0.0.1:0");
}

RP_FIX int teardown(void **state)
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

RP_FIX char *ctl(struct fx *f, const char *cmd)
{
	char *r = h_request(f->rp, cmd, DEADLINE_MS);
	assert_non_null(r);
	return r;
}

RP_FIX void ctl_ok(struct fx *f, const char *cmd)
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

RP_FIX void reply_free(struct reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

RP_FIX size_t on_body(char *p, size_t sz, size_t n, void *arg)
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

RP_FIX size_t on_header(char *p, size_t sz, size_t n, void *arg)
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

RP_FIX size_t on_read(char *buf, size_t sz, size_t n, void *arg)
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

RP_FIX void configure(struct fx *f, CURL *c)
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
RP_FIX struct curl_slist *prepare(struct fx *f, CURL *c, const struct req *q, struct reply *r, struct body_src *src,
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

RP_FIX void http(struct fx *f, const struct req *q, struct reply *r)
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
RP_FIX void post_range(struct fx *f, const struct chain *c, long long first, long long last, struct reply *r)
{
	char *b = chain_batch(c, first, last, NULL), *key = batch_key(c, first, last);
	struct req q = { .body = b, .len = strlen(b), .key = key };
	http(f, &q, r);
	free(b);
	free(key);
}

RP_FIX void get(struct fx *f, const char *path, const char *token, struct reply *r)
{
	struct req q = { .path = path, .token = token };
	http(f, &q, r);
}

/* ---- JSON and db checks ---- */

RP_FIX long long jnum(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	long long x = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
	cJSON_Delete(j);
	return x;
}

RP_FIX char *jstr(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	char *s = cJSON_IsString(v) ? strdup(v->valuestring) : strdup("(absent)");
	cJSON_Delete(j);
	return s;
}

/* Path into a JSON object, e.g. "by_status.200"; -1 when absent. */
RP_FIX long long jpath(const char *json, const char *a, const char *b)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	long long x = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
	cJSON_Delete(j);
	return x;
}

RP_FIX void assert_ack(const struct reply *r, long long ack, const char *hash)
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

RP_FIX void assert_409(const struct reply *r, long long expected, const char *hash)
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

RP_FIX void assert_error(const struct reply *r, long status, long long seq)
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
RP_FIX long long head_seq(struct fx *f, const char *agent, char hash[65])
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

RP_FIX sqlite3 *db_open(struct fx *f)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* First column of the first row as text (caller frees), "(null)" or "(none)". */
RP_FIX char *db_text(struct fx *f, const char *sql)
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

RP_FIX long long db_num(struct fx *f, const char *sql)
{
	char *s = db_text(f, sql);
	long long v = strtoll(s, NULL, 10);
	free(s);
	return v;
}

RP_FIX int group_setup(void **state)
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

RP_FIX int group_teardown(void **state)
{
	(void)state;
	h_rmtree(g_pki);
	free(g_pki);
	curl_global_cleanup();
	return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

#endif
