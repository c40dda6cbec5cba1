/* test_refplat_faults.c — the reference platform's fault commands (status, drops, body limit,
 * slow replies, rejects, wrong hashes, padded replies, clear) and its control channel, stats and
 * request log, over real HTTPS (libcurl). Fixture: test_refplat_env.h. Each test starts its own
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fault_pad_reply),
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
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
