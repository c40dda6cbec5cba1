/* feed_batch.c — see feed_batch.h. */
#include "feed_batch.h"
#include "config.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GZIP_OVER 4096

void feed_body_init(struct feed_body *fb)
{
	memset(fb, 0, sizeof(*fb));
	fb->body.max = 256u * 1024 * 1024;
	fb->gz.max = 256u * 1024 * 1024;
}

void feed_body_free(struct feed_body *fb)
{
	dbuf_free(&fb->body);
	dbuf_free(&fb->gz);
	if (fb->z_ready)
		deflateEnd(&fb->z);
	fb->z_ready = false;
}

struct collect {
	struct feed_body *fb;
	int64_t next;
	int err;
};

static int add_line(const struct stored_record *r, void *arg)
{
	struct collect *c = arg;
	if (r->seq != c->next) {
		c->err = -EBADMSG; /* a hole in the chain: never send around it */
		return 1;
	}
	c->next++;
	if (dbuf_add(&c->fb->body, r->line, r->line_len) < 0 || dbuf_add(&c->fb->body, "\n", 1) < 0) {
		c->err = -ENOMEM;
		return 1;
	}
	memcpy(c->fb->last_hash, r->hash, sizeof(c->fb->last_hash));
	return 0;
}

static int gzip_body(struct feed_body *fb)
{
	if (!fb->z_ready) {
		memset(&fb->z, 0, sizeof(fb->z));
		if (deflateInit2(&fb->z, FEED_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		fb->z_ready = true;
	} else if (deflateReset(&fb->z) != Z_OK) {
		return -EIO;
	}
	dbuf_reset(&fb->gz);
	size_t bound = deflateBound(&fb->z, (uLong)fb->body.len);
	if (fb->gz.cap < bound + 1) {
		char *q = realloc(fb->gz.p, bound + 1);
		if (!q)
			return -ENOMEM;
		fb->gz.p = q;
		fb->gz.cap = bound + 1;
	}
	fb->z.next_in = (Bytef *)fb->body.p;
	fb->z.avail_in = (uInt)fb->body.len;
	fb->z.next_out = (Bytef *)fb->gz.p;
	fb->z.avail_out = (uInt)bound;
	int rc = deflate(&fb->z, Z_FINISH);
	fb->gz.len = bound - fb->z.avail_out;
	return rc == Z_STREAM_END ? 0 : -EIO;
}

int feed_body_build(struct feed_body *fb, const struct config *cfg, struct buffer *b, struct buffer_reader *rd,
		    int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1])
{
	fb->first = first;
	fb->last = last;
	fb->gzipped = false;
	memcpy(fb->prev, prev, sizeof(fb->prev));
	fb->last_hash[0] = '\0';
	/* The header line, then each record exactly as stored. */
	dbuf_reset(&fb->body);
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "schema", "labshare.feed.v1");
	cJSON_AddStringToObject(h, "agent_id", cfg->agent.id);
	cJSON_AddStringToObject(h, "lab_code", cfg->agent.lab_code);
	cJSON_AddNumberToObject(h, "first_seq", (double)first);
	cJSON_AddNumberToObject(h, "last_seq", (double)last);
	cJSON_AddStringToObject(h, "prev_hash", prev);
	char *htext = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	int r = htext ? dbuf_add(&fb->body, htext, strlen(htext)) : -ENOMEM;
	cJSON_free(htext);
	if (r == 0)
		r = dbuf_add(&fb->body, "\n", 1);
	struct collect c = { fb, first, 0 };
	if (r == 0) {
		r = rd ? buffer_reader_each_record(rd, first, last, add_line, &c)
		       : buffer_each_record(b, first, last, add_line, &c);
		if (r == 0 && c.err == 0 && c.next != last + 1)
			c.err = -EBADMSG;
	}
	if (r < 0 || c.err < 0) {
		fb->last_hash[0] = '\0'; /* only a whole batch says what last's hash is (feed.c) */
		return r < 0 ? r : c.err;
	}
	fb->gzipped = fb->body.len > GZIP_OVER && gzip_body(fb) == 0;
	return 0;
}

const void *feed_body_payload(const struct feed_body *fb, size_t *len)
{
	*len = fb->gzipped ? fb->gz.len : fb->body.len;
	return fb->gzipped ? fb->gz.p : fb->body.p;
}

/* Swaps what two bodies hold, each keeping its own deflate state (zlib's state points back
 * at its z_stream: it must not move). */
static void body_swap(struct feed_body *a, struct feed_body *b)
{
	struct feed_body t = *a;
	a->first = b->first;
	a->last = b->last;
	memcpy(a->prev, b->prev, sizeof(a->prev));
	memcpy(a->last_hash, b->last_hash, sizeof(a->last_hash));
	a->body = b->body;
	a->gz = b->gz;
	a->gzipped = b->gzipped;
	b->first = t.first;
	b->last = t.last;
	memcpy(b->prev, t.prev, sizeof(b->prev));
	memcpy(b->last_hash, t.last_hash, sizeof(b->last_hash));
	b->body = t.body;
	b->gz = t.gz;
	b->gzipped = t.gzipped;
}

enum job { JOB_NONE, JOB_ASKED, JOB_BUSY, JOB_DONE };

struct feed_prep {
	const struct config *cfg;
	struct buffer *buf;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	enum job job;
	int64_t first, last;
	char prev[HASH_HEX_LEN + 1];
	int err;                    /* of the batch made (JOB_DONE) */
	struct feed_body fb;        /* the worker's: touched by it only while JOB_BUSY */
};

static void *prep_main(void *arg)
{
	struct feed_prep *p = arg;
	struct buffer_reader *rd = NULL;
	int opened = buffer_reader_open(p->buf, &rd);
	if (opened < 0)
		log_warnx("upload: no reader of its own for the next batch (%s): batches are read one at a time",
			  strerror(-opened));
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && p->job != JOB_ASKED)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stopping)
			break;
		p->job = JOB_BUSY;
		int64_t first = p->first, last = p->last;
		char prev[HASH_HEX_LEN + 1];
		memcpy(prev, p->prev, sizeof(prev));
		pthread_mutex_unlock(&p->mu);
		int e = rd ? feed_body_build(&p->fb, p->cfg, p->buf, rd, first, last, prev) : -ENOTCONN;
		pthread_mutex_lock(&p->mu);
		p->err = e;
		p->job = JOB_DONE;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (rd)
		buffer_reader_close(rd);
	return NULL;
}

int feed_prep_start(const struct config *cfg, struct buffer *b, struct feed_prep **out)
{
	struct feed_prep *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->buf = b;
	feed_body_init(&p->fb);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	int e = pthread_create(&p->thread, NULL, prep_main, p);
	if (e != 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return -e;
	}
	*out = p;
	return 0;
}

void feed_prep_stop(struct feed_prep *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	feed_body_free(&p->fb);
	free(p);
}

/* Under p->mu: the job in hand done or dropped. */
static void prep_wait_idle(struct feed_prep *p)
{
	while (p->job == JOB_BUSY)
		pthread_cond_wait(&p->cv, &p->mu);
}

void feed_prep_ask(struct feed_prep *p, int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1])
{
	pthread_mutex_lock(&p->mu);
	prep_wait_idle(p);
	p->first = first;
	p->last = last;
	memcpy(p->prev, prev, sizeof(p->prev));
	p->job = JOB_ASKED;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

bool feed_prep_take(struct feed_prep *p, int64_t first, int64_t last, const char prev[HASH_HEX_LEN + 1],
		    struct feed_body *fb)
{
	pthread_mutex_lock(&p->mu);
	bool same = p->job != JOB_NONE && p->first == first && p->last == last &&
		    memcmp(p->prev, prev, HASH_HEX_LEN) == 0;
	if (!same) {
		if (p->job == JOB_ASKED)
			p->job = JOB_NONE; /* not started: drop it */
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	while (p->job == JOB_ASKED || p->job == JOB_BUSY)
		pthread_cond_wait(&p->cv, &p->mu);
	bool ok = p->err == 0;
	if (ok)
		body_swap(fb, &p->fb);
	p->job = JOB_NONE;
	pthread_mutex_unlock(&p->mu);
	return ok;
}
