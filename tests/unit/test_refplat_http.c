/* test_refplat_http.c — the reference platform's HTTP and TLS, over real HTTPS (libcurl):
 * routing, GET endpoints, Expect: 100-continue, chunked bodies, keep-alive, header limits,
 * mutual TLS, restart on the same db, signals, IPv6 and the command line. Fixture:
 * test_refplat_env.h. Each test starts its own refplat and stops it by PID. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_routing),
		T(test_get_endpoints),
		T(test_expect_100_continue),
		T(test_chunked_body),
		T(test_keep_alive),
		T(test_header_too_large),
		cmocka_unit_test_setup_teardown(test_mtls, setup_mtls, teardown),
		T(test_server_verified),
		T(test_restart_keeps_chain),
		T(test_stop_signals),
		cmocka_unit_test_setup_teardown(test_ipv6, setup_v6, teardown),
		cmocka_unit_test(test_bad_command_line),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
