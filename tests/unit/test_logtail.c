/* test_logtail.c — the log source driver on real files and a real SQLite buffer: every format
 * and encoding, rotation by rename, copytruncate, truncation, globs, inode reuse, partial lines,
 * restarts and SIGKILL at random moments, malformed lines, back-pressure and status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "logtail.h"
#include "timeutil.h"

#define WAIT_MS 10000
#define INST "SX-INS-000123"

struct env {
	char *dir;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct source_conf *sc;  /* the driver's part of cfg */
	void *lt;
};

/* Sealed records of the buffer, as parsed JSON, for assertions. */
struct recs {
	cJSON *v[4096];
	size_t n;
};

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
	"    \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
	"  \"instruments\": [ { \"id\": \"" INST "\", \"logs\": [ %s ] } ] }";

/* The logs array may name files as {dir}/name: {dir} becomes the test's folder. */
static char *expand(const char *s, const char *dir)
{
	const char *at = strstr(s, "{dir}");
	if (!at)
		return h_strdupf("%s", s);
	char *rest = expand(at + 5, dir);
	char *r = h_strdupf("%.*s%s%s", (int)(at - s), s, dir, rest);
	free(rest);
	return r;
}

static void env_start(struct env *e)
{
	if (!e->sc)
		assert_non_null(e->sc = config_source_conf(e->cfg));
	assert_int_equal(logtail_source.create(e->sc, e->core, &e->lt), 0);
	assert_non_null(e->lt);
	assert_int_equal(logtail_source.start(e->lt), 0);
}

static void env_halt(struct env *e)
{
	logtail_source.stop(e->lt);
	logtail_source.destroy(e->lt);
	e->lt = NULL;
}

static void env_restart(struct env *e)
{
	env_halt(e);
	env_start(e);
}

static void env_open_buffer(struct env *e)
{
	assert_int_equal(buffer_open(e->cfg->agent.state_dir, 0, &e->buf, NULL), 0);
	e->core = core_new(e->cfg, e->buf);
	assert_non_null(e->core);
}

static struct env *env_new_stopped(const char *logs)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = h_mkdtemp("test_logtail");
	char *token = h_path(e->dir, "token");
	assert_int_equal(h_write_file(token, "t\n", (size_t)-1, 0600), 0);
	free(token);
	char *l = expand(logs, e->dir);
	char *text = h_strdupf(config_fmt, e->dir, e->dir, l);
	free(l);
	struct config_errors errs = { 0 };
	if (config_parse("test.json", text, strlen(text), &e->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	assert_int_equal(timeutil_set_zone("Asia/Shanghai"), 0);
	env_open_buffer(e);
	return e;
}

static struct env *env_new(const char *logs)
{
	struct env *e = env_new_stopped(logs);
	env_start(e);
	return e;
}

static void env_free(struct env *e)
{
	if (e->lt)
		env_halt(e);
	core_free(e->core);
	buffer_close(e->buf);
	source_conf_free(e->sc);
	config_free(e->cfg);
	h_rmtree(e->dir);
	free(e->dir);
	free(e);
}

static char *fpath(struct env *e, const char *name)
{
	return h_path(e->dir, name);
}

static void write_file(struct env *e, const char *name, const char *data)
{
	char *p = fpath(e, name);
	assert_int_equal(h_write_file(p, data, (size_t)-1, 0644), 0);
	free(p);
}

static void append(struct env *e, const char *name, const char *data)
{
	char *p = fpath(e, name);
	assert_int_equal(h_append_file(p, data, strlen(data)), 0);
	free(p);
}

static int collect_cb(const struct stored_record *r, void *arg)
{
	struct recs *rs = arg;
	if (rs->n < sizeof(rs->v) / sizeof(rs->v[0]))
		rs->v[rs->n++] = cJSON_ParseWithLength(r->line, r->line_len);
	return 0;
}

static void recs_load(struct env *e, struct recs *rs, const char *kind, const char *type)
{
	struct recs all = { .n = 0 };
	assert_int_equal(buffer_each_record(e->buf, 1, INT64_MAX, collect_cb, &all), 0);
	rs->n = 0;
	for (size_t i = 0; i < all.n; i++) {
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(all.v[i], "kind");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(all.v[i], "type");
		if (strcmp(k->valuestring, kind) == 0 &&
		    (!type || (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)))
			rs->v[rs->n++] = all.v[i];
		else
			cJSON_Delete(all.v[i]);
	}
}

static void recs_clear(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		cJSON_Delete(rs->v[i]);
	rs->n = 0;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static size_t count(struct env *e, const char *kind, const char *type)
{
	struct recs rs;
	recs_load(e, &rs, kind, type);
	size_t n = rs.n;
	recs_clear(&rs);
	return n;
}

struct want {
	struct env *e;
	const char *kind, *type;
	size_t n;
};

static bool have_at_least(void *arg)
{
	struct want *w = arg;
	return count(w->e, w->kind, w->type) >= w->n;
}

static void wait_count(struct env *e, const char *kind, const char *type, size_t n)
{
	struct want w = { e, kind, type, n };
	if (!h_wait_for(have_at_least, &w, WAIT_MS))
		fail_msg("waited for %zu %s %s records, have %zu", n, kind, type ? type : "",
			 count(e, kind, type));
}

static void wait_sessions(struct env *e, size_t n)
{
	wait_count(e, "session", NULL, n);
}

struct rounds {
	void *lt;
	uint64_t until;
};

static bool rounds_done(void *arg)
{
	struct rounds *r = arg;
	return logtail_rounds(r->lt) >= r->until;
}

/* Let the driver look at everything twice more: a check that something did NOT happen. */
static void settle(struct env *e)
{
	struct rounds r = { e->lt, logtail_rounds(e->lt) + 2 };
	assert_true(h_wait_for(rounds_done, &r, WAIT_MS));
}

/* The users of the sealed sessions, in seal order, joined by spaces. */
static char *session_users(struct env *e)
{
	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	size_t cap = 16, n = 0;
	char *out = calloc(1, cap);
	for (size_t i = 0; i < rs.n; i++) {
		const char *u = str(rs.v[i], "user");
		if (!u)
			u = "-";
		size_t k = strlen(u) + 1;
		while (n + k + 1 > cap)
			out = realloc(out, cap *= 2);
		memcpy(out + n, u, k - 1);
		n += k;
		out[n - 1] = ' ';
		out[n] = '\0';
	}
	if (n)
		out[n - 1] = '\0';
	recs_clear(&rs);
	return out;
}

static void assert_users(struct env *e, const char *want)
{
	char *got = session_users(e);
	if (strcmp(got, want) != 0)
		fail_msg("sessions: got \"%s\", want \"%s\"", got, want);
	free(got);
}

static size_t to_gbk(const char *utf8, char *out, size_t cap)
{
	iconv_t cd = iconv_open("GB18030", "UTF-8");
	assert_true(cd != (iconv_t)-1);
	char *in = (char *)utf8, *o = out;
	size_t il = strlen(utf8), ol = cap;
	assert_int_not_equal(iconv(cd, &in, &il, &o, &ol), (size_t)-1);
	iconv_close(cd);
	return cap - ol;
}

static void append_gbk(struct env *e, const char *name, const char *utf8)
{
	char buf[4096];
	size_t n = to_gbk(utf8, buf, sizeof(buf));
	char *p = fpath(e, name);
	assert_int_equal(h_append_file(p, buf, n), 0);
	free(p);
}

static int setup(void **state)
{
	(void)state;
	logtail_tuning.poll_ms = 10;
	logtail_tuning.rotate_wait_ms = 200;
	log_set_level(LOG_PRI_WARNING);
	return 0;
}

#define CSV_LOG "{ \"path\": \"{dir}/usage.csv\", \"format\": \"csv\", \"fields\": { \"start\": \"开始时间\"," \
		" \"end\": \"结束时间\", \"user\": \"用户\", \"org\": \"单位\", \"samples\": \"样品数\", \"external\": \"对外\" } }"
#define CSV_HEADER "开始时间,结束时间,用户,单位,样品数,对外\r\n"

static char *csv_row(int i, const char *user)
{
	return h_strdupf("2026-11-02 %02d:%02d:00,2026-11-02 %02d:%02d:30,%s,太原理工大学,%d,\r\n",
			 8 + i / 60, i % 60, 8 + i / 60, i % 60, user, i);
}

/* ---- CSV: header, BOM, CRLF, quotes, partial line, restart ---- */

static void test_csv_partial_line_and_restart(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	write_file(e, "usage.csv", "\xef\xbb\xbf" CSV_HEADER
		   "2026-11-02 08:00:00,2026-11-02 10:30:00,张三,\"太原理工大学, 化学\",3,\r\n"
		   "2026-11-02 23:00:00,2026-11-03 01:00:00,李四,山西大学,,\r\n"
		   "2026-11-03 09:00:00,2026-11-03 10:00:00,\"王 \"\"五\"\"\",山西大学,1,是\r\n");
	wait_sessions(e, 3);
	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_string_equal(str(rs.v[0], "start"), "2026-11-02T08:00:00+08:00");
	assert_string_equal(str(rs.v[0], "end"), "2026-11-02T10:30:00+08:00");
	assert_string_equal(str(rs.v[0], "org"), "太原理工大学, 化学");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[0], "external")));
	assert_string_equal(str(rs.v[0], "source"), "log");
	/* across midnight: one session, the core splits the hours */
	assert_string_equal(str(rs.v[1], "end"), "2026-11-03T01:00:00+08:00");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(rs.v[1], "external")));
	assert_string_equal(str(rs.v[2], "user"), "王 \"五\"");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[2], "external"))); /* the column overrides */
	recs_clear(&rs);

	/* A line without its newline waits for it. */
	append(e, "usage.csv", "2026-11-04 09:00:00,2026-11-04 10:00:00,赵六");
	settle(e);
	assert_int_equal(count(e, "session", NULL), 3);

	/* Stopped mid-file, restarted: nothing lost, nothing twice. */
	env_halt(e);
	append(e, "usage.csv", ",山西大学,,\r\n");
	char *r = csv_row(5, "钱七");
	append(e, "usage.csv", r);
	free(r);
	env_start(e);
	wait_sessions(e, 5);
	settle(e);
	assert_users(e, "张三 李四 王 \"五\" 赵六 钱七");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_free(e);
}

/* ---- malformed lines ---- */

static void test_malformed_lines(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *big = malloc(100 * 1024 + 1);
	memset(big, 'x', 100 * 1024);
	big[100 * 1024] = '\0';
	write_file(e, "usage.csv", CSV_HEADER
		   "2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,1,\n"
		   "2026-11-02 08:00:00,2026-11-02 07:00:00,b,o,1,\n"      /* line 3: end before start */
		   "2026-11-02 08:00:00,2026-11-02 09:00:00,\"c,o,1,\n"    /* line 4: open quote... */
		   "2026-11-02 25:00:00,2026-11-02 09:00:00,d,o,1,\n");
	append(e, "usage.csv", big); /* line 6 with the quote's 16-line window, over-long */
	append(e, "usage.csv", "\n2026-11-02 10:00:00,2026-11-02 11:00:00,e,\xff,1,\n"
		   "2026-11-02 12:00:00,2026-11-02 13:00:00,f,o,1,\n");
	free(big);
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 5);
	settle(e);
	assert_users(e, "a f");
	struct recs rs;
	recs_load(e, &rs, "event", "log_malformed");
	assert_int_equal(rs.n, 5);
	char *want = h_strdupf("%s/usage.csv:3: end not after start", e->dir);
	assert_string_equal(str(rs.v[0], "detail"), want); /* file, line, reason: not the text */
	free(want);
	assert_string_equal(str(rs.v[0], "instrument"), INST);
	assert_non_null(strstr(str(rs.v[1], "detail"), "usage.csv:4: quote not closed"));
	assert_non_null(strstr(str(rs.v[2], "detail"), "usage.csv:5: bad start time"));
	assert_non_null(strstr(str(rs.v[3], "detail"), "usage.csv:6: line longer than 65536 bytes"));
	assert_null(strstr(str(rs.v[3], "detail"), "xxx"));
	assert_non_null(strstr(str(rs.v[4], "detail"), "usage.csv:7: not valid UTF-8"));
	recs_clear(&rs);

	/* status: lines and malformed per log, added to an instrument the Modbus driver added */
	cJSON *insts = cJSON_CreateArray();
	cJSON *mine = cJSON_CreateObject();
	cJSON_AddStringToObject(mine, "id", INST);
	cJSON_AddObjectToObject(mine, "modbus");
	cJSON_AddItemToArray(insts, mine);
	logtail_source.status(e->lt, insts);
	assert_int_equal(cJSON_GetArraySize(insts), 1);
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(mine, "logs"), 0);
	assert_non_null(l);
	assert_int_equal(cJSON_GetObjectItem(l, "malformed")->valueint, 5);
	assert_int_equal(cJSON_GetObjectItem(l, "lines")->valueint, 8);
	char *p = fpath(e, "usage.csv");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal((int64_t)cJSON_GetObjectItem(l, "offset")->valuedouble, st.st_size);
	assert_string_equal(str(l, "file"), p);
	free(p);
	cJSON_Delete(insts);
	env_free(e);
}

/* ---- rotation ---- */

static void test_rename_rotation(void **state)
{
	(void)state;
	/* Long enough that the old file is still followed when the test writes to it again. */
	logtail_tuning.rotate_wait_ms = 5000;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "u1"), *r2 = csv_row(2, "u2"), *r3 = csv_row(3, "u3"), *r4 = csv_row(4, "u4");
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r1);
	wait_sessions(e, 1);
	char *old = fpath(e, "usage.csv"), *moved = fpath(e, "usage.csv.1");
	assert_int_equal(rename(old, moved), 0);
	/* The program still had the old file open: what it writes there is read too. */
	assert_int_equal(h_append_file(moved, r2, strlen(r2)), 0);
	/* The new file has its own header, with the columns in another order. */
	write_file(e, "usage.csv", "用户,开始时间,结束时间,单位,样品数,对外\n"
		   "u3,2026-11-02 09:00:00,2026-11-02 09:30:00,山西大学,1,\n");
	wait_sessions(e, 3);
	assert_int_equal(h_append_file(moved, r4, strlen(r4)), 0);
	wait_sessions(e, 4);
	wait_count(e, "event", "log_rotated", 1);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 4);
	assert_int_equal(count(e, "event", "log_malformed"), 0);

	/* Rotated while the agent was stopped: the lines the old file got before its rename are
	 * found under its new name. */
	env_halt(e);
	char *r6 = csv_row(6, "u6"), *moved2 = fpath(e, "usage.csv.2");
	append(e, "usage.csv", "u5,2026-11-02 09:35:00,2026-11-02 09:40:00,山西大学,1,\n");
	assert_int_equal(rename(old, moved2), 0);
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r6);
	env_start(e);
	wait_sessions(e, 6);
	wait_count(e, "event", "log_rotated", 2);
	settle(e);
	assert_users(e, "u1 u2 u3 u4 u5 u6");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(r6);
	free(moved2);
	free(old);
	free(moved);
	free(r1);
	free(r2);
	free(r3);
	free(r4);
	env_free(e);
	logtail_tuning.rotate_wait_ms = 200;
}

static void test_copytruncate_and_truncation(void **state)
{
	(void)state;
	/* A glob that matches copytruncate's copy too: the copy must not be read again. */
	struct env *e = env_new("{ \"path\": \"{dir}/app.log*\", \"format\": \"jsonl\","
				" \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" } }");
	write_file(e, "app.log", "{\"s\":\"2026-11-02 08:00:00\",\"e\":\"2026-11-02 09:00:00\",\"u\":\"a\"}\n"
		   "{\"s\":\"2026-11-02 09:00:00\",\"e\":\"2026-11-02 10:00:00\",\"u\":\"b\"}\n");
	wait_sessions(e, 2);
	/* copytruncate: copy, a line slips in between, truncate, new lines. */
	char *log = fpath(e, "app.log"), *copy = fpath(e, "app.log.1");
	append(e, "app.log", "{\"s\":\"2026-11-02 10:00:00\",\"e\":\"2026-11-02 11:00:00\",\"u\":\"c\"}\n");
	size_t len;
	char *data = h_read_file(log, &len);
	assert_int_equal(h_write_file(copy, data, len, 0644), 0);
	free(data);
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 11:00:00\",\"e\":\"2026-11-02 12:00:00\",\"u\":\"d\"}\n");
	wait_sessions(e, 4);
	settle(e);
	char *users = session_users(e);
	/* c is in both files; whichever is read first, it counts once. */
	assert_int_equal(count(e, "session", NULL), 4);
	assert_non_null(strstr(users, "c"));
	free(users);

	/* Plain truncation while running. */
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 13:00:00\",\"e\":\"2026-11-02 14:00:00\",\"u\":\"e\"}\n");
	wait_sessions(e, 5);
	wait_count(e, "event", "log_rotated", 2);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 5);

	/* Truncated and written longer than before while the agent was down: the fingerprint
	 * tells it is not the same content. */
	env_halt(e);
	assert_int_equal(truncate(log, 0), 0);
	append(e, "app.log", "{\"s\":\"2026-11-02 15:00:00\",\"e\":\"2026-11-02 16:00:00\",\"u\":\"f\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"
		   "{\"s\":\"2026-11-02 16:00:00\",\"e\":\"2026-11-02 17:00:00\",\"u\":\"g\"}\n");
	env_start(e);
	wait_sessions(e, 7);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 7);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(log);
	free(copy);
	env_free(e);
}

static void test_glob_pickup(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage-*.csv\", \"format\": \"csv\", \"fields\": {"
				" \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\" } }");
	write_file(e, "usage-2026-11-01.csv", "开始时间,结束时间,用户\n2026-11-01 08:00:00,2026-11-01 09:00:00,a\n");
	wait_sessions(e, 1);
	write_file(e, "usage-2026-11-02.csv", "开始时间,结束时间,用户\n2026-11-02 08:00:00,2026-11-02 09:00:00,b\n");
	write_file(e, "usage-2026-11-02.csv.gz", "\x1f\x8b binary");
	wait_sessions(e, 2);
	append(e, "usage-2026-11-01.csv", "2026-11-01 10:00:00,2026-11-01 11:00:00,c\n");
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "a b c");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_halt(e);
	/* One file goes away while stopped, the other grows: on restart both are right. */
	char *p = fpath(e, "usage-2026-11-01.csv");
	assert_int_equal(unlink(p), 0);
	free(p);
	append(e, "usage-2026-11-02.csv", "2026-11-02 10:00:00,2026-11-02 11:00:00,d\n");
	env_start(e);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	env_free(e);
}

static bool no_files_followed(void *arg)
{
	struct env *e = arg;
	cJSON *insts = cJSON_CreateArray();
	logtail_source.status(e->lt, insts);
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	bool none = cJSON_GetObjectItem(l, "files")->valueint == 0;
	cJSON_Delete(insts);
	return none;
}

/* A share that goes away and comes back (remounted: maybe another device, another inode) must
 * not be read again from its first byte. */
static void test_share_away_and_back(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/share/usage.csv\", \"format\": \"csv\", \"fields\": {"
				" \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\" } }");
	char *share = fpath(e, "share"), *away = fpath(e, "away"), *log = fpath(e, "share/usage.csv");
	assert_int_equal(mkdir(share, 0755), 0);
	assert_int_equal(h_write_file(log, "开始时间,结束时间,用户\n2026-11-02 08:00:00,2026-11-02 09:00:00,a\n"
				      "2026-11-02 09:00:00,2026-11-02 10:00:00,b\n", (size_t)-1, 0644), 0);
	wait_sessions(e, 2);
	/* The folder disappears (unmounted, an empty mount point left) long enough for the file
	 * to be given up. */
	assert_int_equal(rename(share, away), 0);
	assert_int_equal(mkdir(share, 0755), 0);
	if (!h_wait_for(no_files_followed, e, WAIT_MS))
		fail_msg("the vanished file is still followed");
	/* It comes back as a copy (another inode), with one line more. */
	char *old = h_path(away, "usage.csv");
	size_t len;
	char *data = h_read_file(old, &len);
	assert_int_equal(h_write_file(log, data, len, 0644), 0);
	free(data);
	append(e, "share/usage.csv", "2026-11-02 10:00:00,2026-11-02 11:00:00,c\n");
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "a b c");
	/* And across a restart, still once. */
	env_restart(e);
	append(e, "share/usage.csv", "2026-11-02 11:00:00,2026-11-02 12:00:00,d\n");
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	free(old);
	free(share);
	free(away);
	free(log);
	env_free(e);
}

static void test_inode_reuse(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/run.log\", \"format\": \"regex\","
				" \"pattern\": \"^S ([^ ]+) ([^ ]+) (.*)$\","
				" \"fields\": { \"start\": 1, \"end\": 2, \"user\": 3 } }");
	write_file(e, "run.log", "S 2026-11-02T08:00 2026-11-02T09:00 first-file-user-a\n"
		   "noise line\n");
	wait_sessions(e, 1);
	/* Lines that are no session still move the committed offset. */
	append(e, "run.log", "more noise\n");
	settle(e);
	char *p = fpath(e, "run.log");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	cJSON *insts = cJSON_CreateArray();
	logtail_source.status(e->lt, insts);
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	assert_int_equal((int64_t)cJSON_GetObjectItem(l, "offset")->valuedouble, (int64_t)st.st_size);
	assert_int_equal(cJSON_GetObjectItem(l, "lines")->valueint, 3);
	cJSON_Delete(insts);
	env_halt(e);
	assert_int_equal(stat(p, &st), 0);
	ino_t old = st.st_ino;
	/* Delete it and create another file; file systems hand the freed inode out again. */
	bool reused = false;
	for (int i = 0; i < 20 && !reused; i++) {
		assert_int_equal(unlink(p), 0);
		assert_int_equal(h_write_file(p, "S 2026-11-03T08:00 2026-11-03T09:00 second-file-user-b\n"
					      "S 2026-11-03T10:00 2026-11-03T11:00 second-file-user-c\n",
					      (size_t)-1, 0644), 0);
		assert_int_equal(stat(p, &st), 0);
		reused = st.st_ino == old;
	}
	if (!reused)
		print_message("note: the file system did not reuse the inode; the new file is read as new\n");
	free(p);
	env_start(e);
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "first-file-user-a second-file-user-b second-file-user-c");
	if (reused)
		assert_int_equal(count(e, "event", "log_rotated"), 1);
	env_free(e);
}

/* ---- events, GBK ---- */

#define EVENTS_LOG "{ \"path\": \"{dir}/login.log\", \"format\": \"events\", \"encoding\": \"gbk\"," \
	" \"time_format\": \"%Y/%m/%d %H:%M:%S\", \"max_session_h\": 12," \
	" \"start_pattern\": \"^([0-9/: ]+) 登录 用户=([^ ]+) 单位=([^ ]+)$\"," \
	" \"start_fields\": { \"time\": 1, \"user\": 2, \"org\": 3 }," \
	" \"end_pattern\": \"^([0-9/: ]+) 注销 用户=([^ ]+) 样品=([0-9]+)$\"," \
	" \"end_fields\": { \"time\": 1, \"user\": 2, \"samples\": 3 } }"

static void test_events_gbk_restart_and_orphans(void **state)
{
	(void)state;
	struct fake_clock fc;
	fake_clock_install(&fc, 1793577600 + 3600); /* 2026-11-02 09:00 */
	struct env *e = env_new(EVENTS_LOG);
	append_gbk(e, "login.log", "2026/11/02 08:00:00 登录 用户=张三 单位=太原理工大学\r\n"
		   "2026/11/02 08:05:00 系统 自检完成\r\n"
		   "2026/11/02 08:10:00 登录 用户=李四 单位=山西大学\r\n"
		   "2026/11/02 08:30:00 注销 用户=李四 样品=2\r\n");
	wait_sessions(e, 1);
	/* Restart with 张三 still logged in: the open login is in the cursor. */
	env_restart(e);
	append_gbk(e, "login.log", "2026/11/02 23:00:00 注销 用户=张三 样品=5\r\n");
	/* 张三's logout is 15 h after the login: past max_session_h, so closed at 12 h and the
	 * logout is an orphan. */
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 1);
	append_gbk(e, "login.log", "2026/11/02 23:30:00 登录 用户=王五 单位=太原理工大学\r\n"
		   "2026/11/03 00:30:00 注销 用户=王五 样品=1\r\n"
		   "2026/11/03 01:00:00 登录 用户=赵六 单位=山西大学\r\n");
	wait_sessions(e, 3);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 3);
	/* 赵六 never logs out: the clock passing max_session_h closes the session. */
	fake_clock_advance(&fc, (int64_t)(48 * 3600) * 1000000);
	wait_sessions(e, 4);
	settle(e);
	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_int_equal(rs.n, 4);
	assert_string_equal(str(rs.v[0], "user"), "李四");
	assert_string_equal(str(rs.v[0], "org"), "山西大学");
	assert_int_equal(cJSON_GetObjectItem(rs.v[0], "samples")->valueint, 2);
	assert_null(cJSON_GetObjectItem(rs.v[0], "closed"));
	assert_string_equal(str(rs.v[1], "user"), "张三");
	assert_string_equal(str(rs.v[1], "end"), "2026-11-02T20:00:00+08:00");
	assert_string_equal(str(rs.v[1], "closed"), "auto");
	assert_string_equal(str(rs.v[2], "user"), "王五");
	assert_string_equal(str(rs.v[2], "start"), "2026-11-02T23:30:00+08:00");
	assert_string_equal(str(rs.v[2], "end"), "2026-11-03T00:30:00+08:00");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rs.v[2], "external")));
	assert_string_equal(str(rs.v[3], "user"), "赵六");
	assert_string_equal(str(rs.v[3], "end"), "2026-11-03T13:00:00+08:00");
	assert_string_equal(str(rs.v[3], "closed"), "auto");
	recs_clear(&rs);
	recs_load(e, &rs, "event", "log_malformed");
	assert_non_null(strstr(str(rs.v[0], "detail"), "login.log:5: logout without a login"));
	assert_null(strstr(str(rs.v[0], "detail"), "张三")); /* the line stays in the lab */
	recs_clear(&rs);
	env_free(e);
	clock_set(NULL);
}

/* ---- back-pressure ---- */

static void test_paused_while_buffer_full(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "u1"), *r2 = csv_row(2, "u2");
	write_file(e, "usage.csv", CSV_HEADER);
	append(e, "usage.csv", r1);
	wait_sessions(e, 1);
	e->cfg->buffer.max_mb = 0; /* whatever is in use is "full" */
	core_set_config(e->core, e->cfg);
	core_check_space(e->core);
	assert_true(core_paused(e->core));
	append(e, "usage.csv", r2);
	settle(e);
	assert_int_equal(count(e, "session", NULL), 1);
	cJSON *insts = cJSON_CreateArray();
	logtail_source.status(e->lt, insts);
	const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
	assert_string_equal(str(l, "state"), "paused");
	assert_string_equal(str(l, "path"), e->cfg->instruments[0].logs[0].path);
	cJSON_Delete(insts);
	e->cfg->buffer.max_mb = 1024;
	core_set_config(e->core, e->cfg);
	core_check_space(e->core);
	wait_sessions(e, 2);
	settle(e);
	assert_users(e, "u1 u2");
	free(r1);
	free(r2);
	env_free(e);
}

/* ---- bounded stop ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_big_csv(const char *path, int n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(CSV_HEADER, f);
	for (int i = 0; i < n; i++)
		fprintf(f, "2026-11-02 08:00:00,2026-11-02 09:00:00,u%06d,太原理工大学,1,\n", i);
	fclose(f);
}

static void test_stop_is_bounded(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(CSV_LOG);
	char *p = fpath(e, "usage.csv");
	write_big_csv(p, 200000);
	free(p);
	env_start(e);
	wait_sessions(e, 1);
	int64_t t0 = now_ms();
	env_halt(e);
	int64_t took = now_ms() - t0;
	if (took > 1000)
		fail_msg("stop took %" PRId64 " ms", took);
	env_free(e);
}

/* ---- crashes ---- */

#define CRASH_SESSIONS 3000
/* The agent's clock in that test: its 3,000 sessions (20 s apart) lie within 24 h ahead of it
 * (plausible) and no login is 12 h older than it (none closed by the clock). */
#define CRASH_NOW (1793577600 + 11 * 3600)

static int64_t db_sessions(const char *state_dir)
{
	char *path = h_strdupf("%s/" BUFFER_FILE, state_dir);
	sqlite3 *db = NULL;
	int64_t n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 1000);
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM records WHERE kind = 'session'", -1, &st,
				       NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(path);
	return n;
}

struct db_want {
	const char *state_dir;
	int64_t n;
	pid_t child;
};

static bool db_reached(void *arg)
{
	struct db_want *w = arg;
	int status;
	if (w->child > 0 && waitpid(w->child, &status, WNOHANG) == w->child)
		fail_msg("the tailing child exited early (status %d)", status);
	return db_sessions(w->state_dir) >= w->n;
}

static void test_sigkill_at_random_moments(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(EVENTS_LOG);
	/* Interleaved logins and logouts of ten users with noise, so the cursor always holds
	 * open logins when the child dies. */
	char *path = fpath(e, "login.log");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	int64_t t = 1793577600;
	char line[256], gbk[512];
	/* Interleaved: user u's next login comes 200 s after the last, its logout 190 s after. */
	for (int i = 0; i < CRASH_SESSIONS; i++) {
		int u = i % 10;
		struct tm tm;
		time_t a = (time_t)(t + (int64_t)i * 20), b = (time_t)(t + (int64_t)i * 20 + 200);
		char ta[32], tb[32];
		localtime_r(&a, &tm);
		strftime(ta, sizeof(ta), "%Y/%m/%d %H:%M:%S", &tm);
		localtime_r(&b, &tm);
		strftime(tb, sizeof(tb), "%Y/%m/%d %H:%M:%S", &tm);
		snprintf(line, sizeof(line), "%s 登录 用户=用户%d 单位=太原理工大学\n%s 其他 %d\n", ta, u, ta, i);
		fwrite(gbk, 1, to_gbk(line, gbk, sizeof(gbk)), f);
		if (i >= 9) {
			/* the logout of the session opened nine logins ago */
			time_t c = (time_t)(t + (int64_t)(i - 9) * 20 + 190);
			localtime_r(&c, &tm);
			char tc[32];
			strftime(tc, sizeof(tc), "%Y/%m/%d %H:%M:%S", &tm);
			snprintf(line, sizeof(line), "%s 注销 用户=用户%d 样品=%d\n", tc, (i - 9) % 10, i - 9);
			fwrite(gbk, 1, to_gbk(line, gbk, sizeof(gbk)), f);
		}
	}
	fclose(f);
	free(path);
	/* The first 2991 sessions close by logout; nine stay open. */
	const int64_t want = CRASH_SESSIONS - 9;
	core_free(e->core);
	buffer_close(e->buf);
	e->core = NULL;
	e->buf = NULL;

	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	print_message("seed %u\n", seed);
	srand(seed);
	int64_t last = 0;
	for (int k = 0; k < 6; k++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* The sessions are in 2026: a frozen clock keeps max_session_h out of it. */
			struct fake_clock fc;
			fake_clock_install(&fc, CRASH_NOW);
			struct buffer *b;
			if (buffer_open(e->cfg->agent.state_dir, 0, &b, NULL) < 0)
				_exit(2);
			struct core *c = core_new(e->cfg, b);
			void *lt = NULL;
			logtail_tuning.batch_obs = 1 + (size_t)(rand() % 40);
			if (logtail_source.create(config_source_conf(e->cfg), c, &lt) < 0 || logtail_source.start(lt) < 0)
				_exit(3);
			for (;;)
				pause();
		}
		/* Kill it at a random point: somewhere after the next few commits. */
		int64_t target = last + 1 + rand() % (want / 6);
		struct db_want w = { e->cfg->agent.state_dir, target > want ? want : target, pid };
		if (!h_wait_for(db_reached, &w, 30000))
			fail_msg("child made no progress past %" PRId64, last);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		last = db_sessions(e->cfg->agent.state_dir);
	}
	/* And once more to the end, in this process. */
	struct fake_clock fc;
	fake_clock_install(&fc, CRASH_NOW);
	env_open_buffer(e);
	env_start(e);
	wait_sessions(e, (size_t)want);
	settle(e);
	env_halt(e);

	struct recs rs;
	recs_load(e, &rs, "session", NULL);
	assert_int_equal(rs.n, (size_t)want);
	/* Each session exactly once: the samples number them 0..want-1. */
	char *seen = calloc((size_t)want, 1);
	for (size_t i = 0; i < rs.n; i++) {
		int s = cJSON_GetObjectItem(rs.v[i], "samples")->valueint;
		assert_true(s >= 0 && s < want);
		if (seen[s]++)
			fail_msg("session %d sealed twice", s);
		assert_null(cJSON_GetObjectItem(rs.v[i], "closed"));
	}
	free(seen);
	recs_clear(&rs);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	struct chain_verify v;
	assert_int_equal(chain_verify(e->buf, &v), 0);
	env_free(e);
	clock_set(NULL);
}

/* ---- hardening (issue 13) ---- */

#define JSONL_FIELDS "\"format\": \"jsonl\", \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" }"
#define SECRET "tok_SECRET_7c1f0a9e"

static char *jsonl_row(int i, const char *user)
{
	return h_strdupf("{\"s\":\"2026-11-02T%02d:%02d:00+08:00\",\"e\":\"2026-11-02T%02d:%02d:30+08:00\",\"u\":\"%s\"}\n",
			 8 + i / 60 % 12, i % 60, 8 + i / 60 % 12, i % 60, user);
}

struct find_text {
	const char *needle;
	size_t hits;
};

static int find_cb(const struct stored_record *r, void *arg)
{
	struct find_text *ft = arg;
	if (memmem(r->line, r->line_len, ft->needle, strlen(ft->needle)))
		ft->hits++;
	return 0;
}

/* How many sealed records hold the text anywhere. */
static size_t sealed_with(struct env *e, const char *needle)
{
	struct find_text ft = { needle, 0 };
	assert_int_equal(buffer_each_record(e->buf, 1, INT64_MAX, find_cb, &ft), 0);
	return ft.hits;
}

static void make_dir(struct env *e, const char *name)
{
	char *p = fpath(e, name);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void link_to(struct env *e, const char *target, const char *name)
{
	char *p = fpath(e, name);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

/* The reproduction: a log replaced by a link to the token file sent the token inside a
 * log_malformed detail. Links are followed only with follow_symlinks, and never to the agent's
 * own secrets or state, whatever the name or the link. */
static void test_symlinks_and_own_files(void **state)
{
	(void)state;
	struct env *e = env_new_stopped(
		"{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " },"
		"{ \"path\": \"{dir}/g/*.jsonl\", " JSONL_FIELDS " },"
		"{ \"path\": \"{dir}/f/*.jsonl\", \"follow_symlinks\": true, " JSONL_FIELDS " }");
	char *token = fpath(e, "token");
	assert_int_equal(h_write_file(token, SECRET "\n", (size_t)-1, 0600), 0);
	make_dir(e, "g");
	make_dir(e, "f");
	char *row = jsonl_row(0, "a");
	write_file(e, "usage.jsonl", row);
	free(row);
	env_start(e);
	wait_sessions(e, 1);

	/* swapped for a link to the token while followed; in the glob, links to the token, to a
	 * good file and a hard link to the token */
	char *usage = fpath(e, "usage.jsonl");
	assert_int_equal(unlink(usage), 0);
	assert_int_equal(symlink(token, usage), 0);
	row = jsonl_row(1, "linked");
	write_file(e, "other.txt", row);
	free(row);
	char *other = fpath(e, "other.txt");
	link_to(e, token, "g/token.jsonl");
	link_to(e, other, "g/other.jsonl");
	char *hard = fpath(e, "g/hard.jsonl");
	assert_int_equal(link(token, hard), 0);
	/* with follow_symlinks: a link to a good file is read; to the token, the buffer or the
	 * state folder's files, never */
	link_to(e, other, "f/other.jsonl");
	link_to(e, token, "f/token.jsonl");
	char *db = h_strdupf("%s/" BUFFER_FILE, e->cfg->agent.state_dir);
	link_to(e, db, "f/buffer.jsonl");
	char *hard2 = fpath(e, "f/hard.jsonl");
	assert_int_equal(link(token, hard2), 0);
	/* the other files go on */
	row = jsonl_row(2, "b");
	write_file(e, "g/good.jsonl", row);
	free(row);
	wait_sessions(e, 3);
	settle(e);
	assert_users(e, "a b linked"); /* "linked" once: through f/, not through g/ */
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	assert_int_equal(count(e, "event", "log_malformed"), 0);

	/* A file made in the state folder after the start (status.json is replaced each time it
	 * is written) is known for what it is too. */
	char *status = h_strdupf("%s/status.json", e->cfg->agent.state_dir);
	assert_int_equal(h_write_file(status, "{\"" SECRET "\":1}\n", (size_t)-1, 0644), 0);
	link_to(e, status, "f/status.jsonl");
	row = jsonl_row(3, "c");
	write_file(e, "f/good.jsonl", row);
	free(row);
	wait_sessions(e, 4);
	settle(e);
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	assert_users(e, "a b linked c");
	free(status);
	free(db);
	free(hard);
	free(hard2);
	free(other);
	free(usage);
	free(token);
	env_free(e);
}

/* A malformed line's text never goes into a sealed record: file, line and reason only. */
static void test_malformed_detail_without_text(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
	char *row = jsonl_row(0, "a");
	write_file(e, "usage.jsonl", row);
	free(row);
	append(e, "usage.jsonl", "{\"s\":\"2026-11-02 " SECRET "\",\"e\":\"2026-11-02T09:00:00+08:00\",\"u\":\"x\"}\n");
	append(e, "usage.jsonl", "password=" SECRET "\n");
	append(e, "usage.jsonl", "{\"s\":\"2026-11-02T10:00:00+08:00\",\"e\":\"2026-11-02T11:00:00+08:00\",\"u\":\"" SECRET "\xff\"}\n");
	row = jsonl_row(5, "b");
	append(e, "usage.jsonl", row);
	free(row);
	wait_sessions(e, 2);
	wait_count(e, "event", "log_malformed", 3);
	settle(e);
	assert_int_equal(sealed_with(e, "SECRET"), 0);
	struct recs rs;
	recs_load(e, &rs, "event", "log_malformed");
	assert_int_equal(rs.n, 3);
	const char *want[] = { "usage.jsonl:2: bad start time", "usage.jsonl:3: not JSON",
			       "usage.jsonl:4: not valid UTF-8" };
	for (size_t i = 0; i < 3; i++) {
		char *full = h_strdupf("%s/%s", e->dir, want[i]);
		assert_string_equal(str(rs.v[i], "detail"), full);
		free(full);
	}
	recs_clear(&rs);
	env_free(e);
}

/* A BOM where a data line begins (files concatenated) doesn't make the line malformed. */
static void test_bom_on_data_line(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *r1 = csv_row(1, "a"), *r2 = csv_row(2, "b");
	char *text = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s\xef\xbb\xbf%s", r1, r2);
	write_file(e, "usage.csv", text);
	wait_sessions(e, 2);
	settle(e);
	assert_users(e, "a b");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(text);
	free(r1);
	free(r2);
	env_free(e);
}

static bool sessions_reached(void *arg)
{
	struct db_want *w = arg;
	return db_sessions(w->state_dir) >= w->n;
}

static void wait_db_sessions(struct env *e, int64_t n)
{
	struct db_want w = { e->cfg->agent.state_dir, n, 0 };
	if (!h_wait_for(sessions_reached, &w, 60000))
		fail_msg("waited for %" PRId64 " sessions, have %" PRId64, n, db_sessions(w.state_dir));
}

#define MANY_FILES 4200

/* A glob matches any number of files: all are read, and one made later is found too. */
static void test_glob_without_cap(void **state)
{
	(void)state;
	struct env *e = env_new_stopped("{ \"path\": \"{dir}/many/*.jsonl\", " JSONL_FIELDS " }");
	make_dir(e, "many");
	for (int i = 0; i < MANY_FILES; i++) {
		char name[64], user[32];
		snprintf(name, sizeof(name), "many/u%05d.jsonl", i);
		snprintf(user, sizeof(user), "u%05d", i);
		char *row = jsonl_row(i % 720, user);
		write_file(e, name, row);
		free(row);
	}
	env_start(e);
	wait_db_sessions(e, MANY_FILES);
	char *row = jsonl_row(1, "later");
	write_file(e, "many/later.jsonl", row);
	free(row);
	wait_db_sessions(e, MANY_FILES + 1);
	settle(e);
	assert_int_equal(db_sessions(e->cfg->agent.state_dir), MANY_FILES + 1);
	assert_int_equal(sealed_with(e, "\"user\":\"later\""), 1);
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	env_free(e);
}

/* A log rewritten shorter in place, keeping its last line (a log trimmed by a script, an
 * editor's save): the lines already read are not read again. */
static void test_rewritten_shorter_in_place(void **state)
{
	(void)state;
	struct env *e = env_new("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
	char *a = jsonl_row(0, "a"), *b = jsonl_row(1, "b"), *c = jsonl_row(2, "c"), *d = jsonl_row(3, "d");
	char *abc = h_strdupf("%s%s%s", a, b, c);
	write_file(e, "usage.jsonl", abc);
	wait_sessions(e, 3);
	settle(e);
	/* in place: same inode, truncated and written again with the last line only */
	char *p = fpath(e, "usage.jsonl");
	int fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, c, strlen(c)), (ssize_t)strlen(c));
	close(fd);
	settle(e);
	append(e, "usage.jsonl", d);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");

	/* the last two lines kept, and a new one: only the new one is read */
	char *e5 = jsonl_row(4, "e");
	char *cde = h_strdupf("%s%s%s", c, d, e5);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, cde, strlen(cde)), (ssize_t)strlen(cde));
	close(fd);
	wait_sessions(e, 5);
	settle(e);
	assert_users(e, "a b c d e");

	/* truncated and written with lines that were not its tail: read as new */
	char *f = jsonl_row(5, "f"), *g = jsonl_row(6, "g");
	char *fg = h_strdupf("%s%s", f, g);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, fg, strlen(fg)), (ssize_t)strlen(fg));
	close(fd);
	wait_sessions(e, 7);
	settle(e);
	assert_users(e, "a b c d e f g");
	free(fg);
	free(f);
	free(g);
	free(cde);
	free(e5);
	free(p);
	free(abc);
	free(a);
	free(b);
	free(c);
	free(d);
	env_free(e);
}

/* The same for CSV: the rewritten file starts with its header again, then the kept lines. */
static void test_csv_rewritten_shorter_in_place(void **state)
{
	(void)state;
	struct env *e = env_new(CSV_LOG);
	char *a = csv_row(1, "a"), *b = csv_row(2, "b"), *c = csv_row(3, "c"), *d = csv_row(4, "d");
	char *all = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s%s%s", a, b, c);
	write_file(e, "usage.csv", all);
	wait_sessions(e, 3);
	settle(e);
	char *kept = h_strdupf("\xef\xbb\xbf" CSV_HEADER "%s%s", c, d);
	char *p = fpath(e, "usage.csv");
	int fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, kept, strlen(kept)), (ssize_t)strlen(kept));
	close(fd);
	wait_sessions(e, 4);
	settle(e);
	assert_users(e, "a b c d");
	assert_int_equal(count(e, "event", "log_malformed"), 0);
	free(p);
	free(kept);
	free(all);
	free(a);
	free(b);
	free(c);
	free(d);
	env_free(e);
}

/* A cursor whose numbers no int64 holds (1e400 reads as inf) is unreadable, not cast: the
 * log stops loudly instead of reading from a made-up offset. */
static void test_cursor_numbers_out_of_range(void **state)
{
	(void)state;
	static const char *const bad[] = { "1e400", "-1e20", "1e300" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env *e = env_new_stopped("{ \"path\": \"{dir}/usage.jsonl\", " JSONL_FIELDS " }");
		char *row = jsonl_row(0, "a");
		write_file(e, "usage.jsonl", row);
		free(row);
		char *path = fpath(e, "usage.jsonl");
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		char *key = logtail_cursor_key(INST, e->cfg->instruments[0].logs[0].path);
		char *cur = h_strdupf("{\"v\":1,\"lines\":0,\"malformed\":0,\"files\":[{\"path\":\"%s\","
				      "\"dev\":\"%ju\",\"ino\":\"%ju\",\"fp\":\"0\",\"sum\":\"0\",\"fp_len\":0,"
				      "\"off\":%s,\"line\":0}]}", path, (uintmax_t)st.st_dev,
				      (uintmax_t)st.st_ino, bad[i]);
		assert_int_equal(core_submit(e->core, NULL, 0, key, cur, strlen(cur)), 0);
		env_start(e);
		cJSON *insts = cJSON_CreateArray();
		logtail_source.status(e->lt, insts);
		const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "logs"), 0);
		assert_string_equal(str(l, "state"), "error");
		cJSON_Delete(insts);
		settle(e);
		assert_int_equal(count(e, "session", NULL), 0);
		free(cur);
		free(key);
		free(path);
		env_free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_partial_line_and_restart),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_rename_rotation),
		cmocka_unit_test(test_copytruncate_and_truncation),
		cmocka_unit_test(test_glob_pickup),
		cmocka_unit_test(test_share_away_and_back),
		cmocka_unit_test(test_inode_reuse),
		cmocka_unit_test(test_events_gbk_restart_and_orphans),
		cmocka_unit_test(test_paused_while_buffer_full),
		cmocka_unit_test(test_stop_is_bounded),
		cmocka_unit_test(test_sigkill_at_random_moments),
		cmocka_unit_test(test_symlinks_and_own_files),
		cmocka_unit_test(test_malformed_detail_without_text),
		cmocka_unit_test(test_bom_on_data_line),
		cmocka_unit_test(test_glob_without_cap),
		cmocka_unit_test(test_rewritten_shorter_in_place),
		cmocka_unit_test(test_csv_rewritten_shorter_in_place),
		cmocka_unit_test(test_cursor_numbers_out_of_range),
	};
	const char *only = getenv("LOGTAIL_TESTS"); /* e.g. "test_glob*": one test while working */
	if (only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, setup, NULL);
}
