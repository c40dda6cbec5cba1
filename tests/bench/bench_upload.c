/* bench_upload.c — how fast `labshare-agent flush` drains a backlog of sealed records to the
 * reference platform over HTTPS on 127.0.0.1, beside libcurl alone posting the same bodies in the
 * same batches with keep-alive and gzip (the limit of the link and the platform). Prints figures. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "benchlib.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "feed_batch.h"
#include "harness.h"
#include "log.h"
#include "timeutil.h"

#define AGENT_ID "bench-upload"
#define LAB_CODE "SXKL-BENCH"
#define SUBMIT_BATCH 10000

static long n_records, batch;

static char *write_config(const char *dir, const struct bench_platform *pf)
{
	char *path = h_path(dir, "agent.json"), *token = h_path(dir, "token");
	h_write_file(token, BENCH_TOKEN "\n", (size_t)-1, 0600);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"%s\", \"lab_code\": \"%s\", \"timezone\": \"Asia/Shanghai\","
		" \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },\n"
		"  \"platform\": { \"url\": \"https://127.0.0.1:%d/api\", \"token_file\": \"%s\", \"ca_file\": \"%s\","
		" \"batch_max_records\": %ld },\n"
		"  \"instruments\": [ { \"id\": \"SX-INS-000123\", \"name\": \"600 MHz 核磁共振波谱仪\","
		" \"logs\": [ { \"path\": \"%s/none.csv\", \"format\": \"csv\","
		" \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }\n",
		AGENT_ID, LAB_CODE, dir, pf->fix.port, token, pf->ca, batch, dir);
	h_write_file(path, text, (size_t)-1, 0644);
	free(text);
	free(token);
	return path;
}

/* The backlog, sealed through the core as the log driver would: sessions in large transactions. */
static int build_backlog(const char *cfg_path, double *secs, double *bytes)
{
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_load(cfg_path, &cfg, &errs) != 0) {
		fprintf(stderr, "bench: config: %s\n", errs.n ? errs.msg[0] : "?");
		return -1;
	}
	timeutil_set_zone(cfg->agent.timezone);
	struct buffer *b;
	if (buffer_open(cfg->agent.state_dir, 0, &b, NULL) < 0) {
		config_free(cfg);
		return -1;
	}
	struct core *c = core_new(cfg, b);
	struct obs *v = calloc(SUBMIT_BATCH, sizeof(*v));
	char (*users)[16] = calloc(SUBMIT_BATCH, 16);
	/* All in the past: a session more than 24 h ahead of the clock is refused (SPEC §3). */
	const int64_t base = clock_wall() - (int64_t)n_records * 60 - 2 * 86400;
	double t0 = bench_mono();
	int r = 0;
	for (long k = 0; k < n_records && r == 0; k += SUBMIT_BATCH) {
		long n = n_records - k < SUBMIT_BATCH ? n_records - k : SUBMIT_BATCH;
		for (long i = 0; i < n; i++) {
			long s = k + i;
			snprintf(users[i], 16, "user%05ld", s % 5000);
			v[i] = (struct obs){ .type = OBS_SESSION, .instrument = "SX-INS-000123",
				.u.session = { .start = base + s * 60, .end = base + s * 60 + 1800 + s % 600,
					       .user = users[i], .org = s % 3 ? "太原理工大学" : "山西大学",
					       .external = -1, .samples = s % 7 } };
		}
		r = core_submit(c, v, (size_t)n, NULL, NULL, 0);
	}
	*secs = bench_mono() - t0;
	free(v);
	free(users);
	core_free(c);
	/* The file and its WAL: what was sealed may not be checkpointed yet. */
	struct stat st;
	*bytes = stat(buffer_path(b), &st) == 0 ? (double)st.st_size : 0;
	char *wal = h_strdupf("%s-wal", buffer_path(b));
	*bytes += stat(wal, &st) == 0 ? (double)st.st_size : 0;
	free(wal);
	buffer_close(b);
	config_free(cfg);
	if (r < 0)
		fprintf(stderr, "bench: core_submit: %s\n", strerror(-r));
	return r;
}

/* ---- libcurl alone: the same bodies, the same batches, one keep-alive connection ------------ */

struct body {
	unsigned char *gz;
	size_t len;
	int64_t first, last;
};

struct collect {
	char *p;
	size_t len, cap;
	char prev[HASH_HEX_LEN + 1];
};

static int add_line(const struct stored_record *r, void *arg)
{
	struct collect *c = arg;
	if (c->len + r->line_len + 2 > c->cap) {
		c->cap = (c->len + r->line_len + 2) * 2;
		c->p = realloc(c->p, c->cap);
	}
	memcpy(c->p + c->len, r->line, r->line_len);
	c->len += r->line_len;
	c->p[c->len++] = '\n';
	memcpy(c->prev, r->hash, sizeof(c->prev));
	return 0;
}

static int gzip(const char *in, size_t len, struct body *out)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, FEED_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	size_t bound = deflateBound(&z, (uLong)len);
	out->gz = malloc(bound);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out->gz;
	z.avail_out = (uInt)bound;
	int rc = deflate(&z, Z_FINISH);
	out->len = bound - z.avail_out;
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -1;
}

/* Reads the buffer as the agent does and gzips each batch, as the agent does (timed apart). */
static struct body *make_bodies(const char *state_dir, size_t *n_bodies, double *read_s, double *gzip_s,
				double *raw_bytes)
{
	struct buffer *b;
	if (buffer_open(state_dir, BUFFER_READONLY, &b, NULL) < 0)
		return NULL;
	size_t n = (size_t)((n_records + batch - 1) / batch);
	struct body *bodies = calloc(n, sizeof(*bodies));
	struct collect c = { 0 };
	memset(c.prev, '0', HASH_HEX_LEN);
	*read_s = *gzip_s = *raw_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t first = (int64_t)i * batch + 1, last = first + batch - 1 > n_records ? n_records : first + batch - 1;
		double t0 = bench_mono();
		c.len = 0;
		char header[512];
		int hl = snprintf(header, sizeof(header),
				  "{\"schema\":\"labshare.feed.v1\",\"agent_id\":\"%s\",\"lab_code\":\"%s\",\"first_seq\":%" PRId64
				  ",\"last_seq\":%" PRId64 ",\"prev_hash\":\"%s\"}\n",
				  AGENT_ID, LAB_CODE, first, last, c.prev);
		struct stored_record hdr = { .line = header, .line_len = (size_t)hl - 1 };
		memcpy(hdr.hash, c.prev, sizeof(hdr.hash));
		add_line(&hdr, &c);
		buffer_each_record(b, first, last, add_line, &c);
		double t1 = bench_mono();
		gzip(c.p, c.len, &bodies[i]);
		*gzip_s += bench_mono() - t1;
		*read_s += t1 - t0;
		*raw_bytes += (double)c.len;
		bodies[i].first = first;
		bodies[i].last = last;
	}
	free(c.p);
	buffer_close(b);
	*n_bodies = n;
	return bodies;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data;
	(void)arg;
	return size * nmemb;
}

static double curl_post_all(const struct bench_platform *pf, const struct body *bodies, size_t n, long *failed)
{
	CURL *c = curl_easy_init();
	char *url = h_strdupf("https://127.0.0.1:%d/api/v1/feeds", pf->fix.port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_CAINFO, pf->ca);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "bench_upload/curl");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	*failed = 0;
	double t0 = bench_mono();
	for (size_t i = 0; i < n; i++) {
		char idem[128];
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s:%" PRId64 "-%" PRId64, AGENT_ID, bodies[i].first,
			 bodies[i].last);
		struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " BENCH_TOKEN);
		h = curl_slist_append(h, "Content-Type: application/x-ndjson");
		h = curl_slist_append(h, "Content-Encoding: gzip");
		h = curl_slist_append(h, idem);
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, bodies[i].gz);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodies[i].len);
		long status = 0;
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200)
			(*failed)++;
		curl_slist_free_all(h);
	}
	double took = bench_mono() - t0;
	curl_easy_cleanup(c);
	free(url);
	return took;
}

/* The platform's stored head for the agent. */
static double platform_head(struct bench_platform *pf)
{
	char *reply = h_request(pf->fix.p, "head " AGENT_ID, 10000);
	cJSON *j = reply ? cJSON_Parse(reply) : NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seq");
	double v = cJSON_IsNumber(s) ? s->valuedouble : -1;
	cJSON_Delete(j);
	free(reply);
	return v;
}

/* From refplat's request log: seconds from the first to the last acknowledged POST; *first_s
 * and *last_s when they were logged (wall clock, as refplat logs). */
static double platform_span(const char *db_path, double *posts, double *first_s, double *last_s)
{
	sqlite3 *db;
	double span = 0;
	*posts = *first_s = *last_s = 0;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT (MAX(at_ms) - MIN(at_ms)) / 1000.0, COUNT(*), MIN(at_ms) / 1000.0,"
				   " MAX(at_ms) / 1000.0 FROM requests WHERE status = 200",
			       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		span = sqlite3_column_double(st, 0);
		*posts = sqlite3_column_double(st, 1);
		*first_s = sqlite3_column_double(st, 2);
		*last_s = sqlite3_column_double(st, 3);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return span;
}

int main(void)
{
	/* A child that died must show as an error here, not kill the benchmark on a write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	n_records = bench_env_long("BENCH_RECORDS", 1000000);
	batch = bench_env_long("BENCH_BATCH", 1000);
	if (n_records < 1 || batch < 1)
		return 64;
	log_set_level(LOG_PRI_WARNING);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	bench_machine("upload");
	char *dir = h_mkdtemp("bench_upload");
	struct bench_platform pf;
	if (bench_platform_init(&pf, dir, "curl") < 0)
		return 1;
	char *cfg = write_config(dir, &pf), *state = h_path(dir, "state");

	double build_s, db_bytes;
	if (build_backlog(cfg, &build_s, &db_bytes) < 0)
		return 1;
	printf("upload: backlog of %ld session records sealed through core_submit (%d per transaction) in %.1f s "
	       "(%.0f records/s), buffer.db with its WAL %.0f MB\n",
	       n_records, SUBMIT_BATCH, build_s, (double)n_records / build_s, db_bytes / 1048576.0);

	/* The limit: libcurl alone. */
	size_t n_bodies;
	double read_s, gzip_s, raw_bytes;
	struct body *bodies = make_bodies(state, &n_bodies, &read_s, &gzip_s, &raw_bytes);
	if (!bodies)
		return 1;
	double gz_bytes = 0;
	for (size_t i = 0; i < n_bodies; i++)
		gz_bytes += (double)bodies[i].len;
	struct bench_proc rp0, rp1;
	bench_proc_read(pf.fix.p->pid, &rp0);
	long failed;
	double curl_s = curl_post_all(&pf, bodies, n_bodies, &failed);
	bench_proc_read(pf.fix.p->pid, &rp1);
	double curl_head = platform_head(&pf);
	bench_platform_stop(&pf);
	double curl_rate = (double)n_records / curl_s;
	printf("upload: curl alone    %8.0f records/s  (%ld records in %.2f s, %zu POSTs of %ld, gzip %.0f -> %.0f MB, "
	       "keep-alive; %ld failed; platform head %.0f; refplat cpu %.2f s)\n",
	       curl_rate, n_records, curl_s, n_bodies, batch, raw_bytes / 1048576.0, gz_bytes / 1048576.0, failed,
	       curl_head, rp1.cpu_s - rp0.cpu_s);
	printf("upload:   (outside that: reading the batches from buffer.db %.2f s, gzip %.2f s = %.1f us per record)\n",
	       read_s, gzip_s, 1e6 * (read_s + gzip_s) / (double)n_records);
	for (size_t i = 0; i < n_bodies; i++)
		free(bodies[i].gz);
	free(bodies);

	/* The agent, against a fresh platform on the same port. */
	platfix_use_db(&pf.fix, "agent.db");
	if (bench_platform_start(&pf) < 0)
		return 1;
	bench_proc_read(pf.fix.p->pid, &rp0);
	char *log = h_path(dir, "flush.log");
	char *argv[] = { strdup(h_build_path("labshare-agent")), (char *)"-c", cfg, (char *)"flush", NULL };
	struct timespec wall0;
	clock_gettime(CLOCK_REALTIME, &wall0);
	double t0 = bench_mono();
	struct h_proc *agent = h_spawn(argv, NULL, false, false, log);
	int status = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	while (wait4(agent->pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	double flush_s = bench_mono() - t0;
	agent->reaped = true;
	agent->status = status;
	bench_proc_read(pf.fix.p->pid, &rp1);
	double agent_head = platform_head(&pf);
	bench_platform_stop(&pf);
	double posts, first_ack, last_ack, span = platform_span(pf.fix.db, &posts, &first_ack, &last_ack);
	double rate = (double)n_records / flush_s;
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		     (double)ru.ru_stime.tv_usec / 1e6;
	/* Where the rest of the time went: before the first acknowledged POST (start-up: the
	 * configuration, the buffer's opening, the TLS handshake, the first batch), after the last. */
	double spawn_s = (double)wall0.tv_sec + (double)wall0.tv_nsec / 1e9;
	printf("upload: agent flush   %8.0f records/s  (%ld records in %.2f s incl. start-up, exit %d, platform head %.0f; "
	       "first to last ack %.2f s over %.0f POSTs = %.0f records/s; first ack %.2f s after the start, exit %.2f s "
	       "after the last; agent cpu %.2f s, peak rss %.1f MB; refplat cpu %.2f s)\n",
	       rate, n_records, flush_s, WIFEXITED(status) ? WEXITSTATUS(status) : -1, agent_head, span, posts,
	       span > 0 && posts > 1 ? (double)n_records * (posts - 1) / posts / span : 0,
	       posts > 0 ? first_ack - spawn_s : 0, posts > 0 ? spawn_s + flush_s - last_ack : 0, cpu,
	       (double)ru.ru_maxrss / 1024.0, rp1.cpu_s - rp0.cpu_s);
	/* Issue #15: the agent's flush (start-up included) at least 0.8× of curl alone, same run. */
	bench_goal_ratio("flush", "records/s", rate, curl_rate, ">=", 0.8);
	int rc = 0;
	if (failed > 0 || curl_head != (double)n_records) {
		fprintf(stderr, "bench: curl alone: %ld POSTs failed, platform head %.0f of %ld (see %s/curl.log)\n",
			failed, curl_head, n_records, dir);
		rc = 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || agent_head != (double)n_records) {
		fprintf(stderr, "bench: agent flush: exit %d, platform head %.0f of %ld (see %s)\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, agent_head, n_records, log);
		rc = 1;
	}
	h_proc_free(agent);
	free(argv[0]);
	bench_platform_free(&pf);
	free(cfg);
	free(state);
	free(log);
	if (!bench_env_long("BENCH_KEEP", 0) && rc == 0)
		h_rmtree(dir);
	free(dir);
	curl_global_cleanup();
	return rc;
}
