/* transfer.c — see transfer.h. */
#include "transfer.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t n = size * nmemb;
	/* Past the cap the reply is cut, not failed: only its start matters. Once cut, nothing
	 * more is kept, or a later piece that fits would be spliced onto the start. */
	if (t->reply_cut)
		return n;
	if (t->reply.len + n + 1 > t->reply.max) {
		size_t room = t->reply.max > t->reply.len + 1 ? t->reply.max - t->reply.len - 1 : 0;
		if (room > 0 && dbuf_add(&t->reply, data, room) < 0)
			dbuf_free(&t->reply);
		t->reply_cut = true;
	} else if (dbuf_add(&t->reply, data, n) < 0) {
		t->reply_cut = true; /* out of memory: dbuf_add freed what there was */
	}
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t n = size * nmemb;
	if (n <= 12 || strncasecmp(data, "Retry-After:", 12) != 0)
		return n;
	char v[128];
	size_t len = n - 12 < sizeof(v) - 1 ? n - 12 : sizeof(v) - 1;
	memcpy(v, data + 12, len);
	v[len] = '\0';
	char *s = v;
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		*--e = '\0';
	char *end;
	long secs = strtol(s, &end, 10);
	if (end != s && *end == '\0' && secs >= 0) {
		t->retry_after = secs;
	} else {
		time_t when = curl_getdate(s, NULL); /* an HTTP-date */
		if (when > 0)
			t->retry_after = (long)(when - clock_wall()) > 0 ? (long)(when - clock_wall()) : 0;
	}
	return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a; (void)b; (void)c; (void)d;
	struct transfer *t = arg;
	return atomic_load(&t->abort) ? 1 : 0;
}

/* splitmix64: small, fast, and good enough to spread retries; not for secrets. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Each process (each transfer) its own schedule: libc's random() unseeded gives every agent
 * the same one, so labs that lost the platform together would return together. */
static uint64_t rng_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* Early boot without entropy yet: still different per process and per moment. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	       (uint64_t)(uintptr_t)&seed;
}

int transfer_init(struct transfer *t, const struct transfer_opts *o)
{
	static atomic_flag curl_ready = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&curl_ready))
		curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(t, 0, sizeof(*t));
	t->reply.max = o->reply_max;
	t->retry_after = -1;
	t->rng = rng_seed();
	if (!(t->curl = curl_easy_init()))
		return -ENOMEM;
	CURL *c = t->curl;
	curl_easy_setopt(c, CURLOPT_URL, o->url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "labshare-agent/" LABSHARE_VERSION);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->protocols);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->timeout_s < 10 ? o->timeout_s : 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	if (o->client_cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, o->client_cert);
	if (o->client_key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, o->client_key);
	if (o->proxy)
		curl_easy_setopt(c, CURLOPT_PROXY, o->proxy);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
	return 0;
}

void transfer_cleanup(struct transfer *t)
{
	if (t->curl)
		curl_easy_cleanup(t->curl);
	t->curl = NULL;
	dbuf_free(&t->reply);
}

static CURLcode perform(struct transfer *t, struct curl_slist *headers, long *status)
{
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, headers);
	dbuf_reset(&t->reply);
	t->reply_cut = false;
	t->retry_after = -1;
	t->errbuf[0] = '\0';
	CURLcode cc = curl_easy_perform(t->curl);
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, NULL);
	*status = 0;
	if (cc == CURLE_OK)
		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, status);
	return cc;
}

CURLcode transfer_post(struct transfer *t, struct curl_slist *headers, const void *body, size_t len,
		       long *status)
{
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	return perform(t, headers, status);
}

CURLcode transfer_get(struct transfer *t, const char *url, struct curl_slist *headers, long *status)
{
	curl_easy_setopt(t->curl, CURLOPT_URL, url);
	curl_easy_setopt(t->curl, CURLOPT_HTTPGET, 1L);
	return perform(t, headers, status);
}

char *transfer_bearer(const char *token)
{
	char *h = NULL;
	if (asprintf(&h, "Authorization: Bearer %s", token) < 0)
		return NULL;
	return h;
}

void transfer_abort(struct transfer *t)
{
	atomic_store(&t->abort, true);
}

const char *transfer_error(const struct transfer *t, CURLcode cc)
{
	return t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc);
}

int64_t transfer_backoff(struct transfer *t, int64_t now, int64_t max_s)
{
	int64_t cap = 1;
	for (int i = 0; i < t->failures && cap < max_s; i++)
		cap *= 2;
	if (cap > max_s)
		cap = max_s;
	/* Full jitter: a lab's agents that lost the platform together don't return together. */
	int64_t d = 1 + (int64_t)(rng_next(&t->rng) % (uint64_t)cap);
	return now + (d > cap ? cap : d);
}
