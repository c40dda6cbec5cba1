/* test_logtail_env.h — the fixture of the log driver's tests (test_logtail.c,
 * test_logtail_hardening.c): a temporary folder, a configuration with the logs given, a real
 * buffer and core, the driver started and stopped, and the sealed records read back. Each
 * program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_LOGTAIL_ENV_H
#define LABSHARE_TEST_LOGTAIL_ENV_H

#define LT_FIX static __attribute__((unused))

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

LT_FIX const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
	"    \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
	"  \"instruments\": [ { \"id\": \"" INST "\", \"logs\": [ %s ] } ] }";

/* The logs array may name files as {dir}/name: {dir} becomes the test's folder. */
LT_FIX char *expand(const char *s, const char *dir)
{
	const char *at = strstr(s, "{dir}");
	if (!at)
		return h_strdupf("%s", s);
	char *rest = expand(at + 5, dir);
	char *r = h_strdupf("%.*s%s%s", (int)(at - s), s, dir, rest);
	free(rest);
	return r;
}

LT_FIX void env_start(struct env *e)
{
	if (!e->sc)
		assert_non_null(e->sc = config_source_conf(e->cfg));
	assert_int_equal(logtail_source.create(e->sc, e->core, &e->lt), 0);
	assert_non_null(e->lt);
	assert_int_equal(logtail_source.start(e->lt), 0);
}

LT_FIX void env_halt(struct env *e)
{
	logtail_source.stop(e->lt);
	logtail_source.destroy(e->lt);
	e->lt = NULL;
}

LT_FIX void env_restart(struct env *e)
{
	env_halt(e);
	env_start(e);
}

LT_FIX void env_open_buffer(struct env *e)
{
	assert_int_equal(buffer_open(e->cfg->agent.state_dir, 0, &e->buf, NULL), 0);
	e->core = core_new(e->cfg, e->buf);
	assert_non_null(e->core);
}

LT_FIX struct env *env_new_stopped(const char *logs)
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

LT_FIX struct env *env_new(const char *logs)
{
	struct env *e = env_new_stopped(logs);
	env_start(e);
	return e;
}

LT_FIX void env_free(struct env *e)
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

LT_FIX char *fpath(struct env *e, const char *name)
{
	return h_path(e->dir, name);
}

/* An existing file is rewritten in place: the same inode, truncated (not a new file). */
LT_FIX void write_file(struct env *e, const char *name, const char *data)
{
	char *p = fpath(e, name);
	assert_int_equal(h_write_file(p, data, (size_t)-1, 0644), 0);
	free(p);
}

LT_FIX void append(struct env *e, const char *name, const char *data)
{
	char *p = fpath(e, name);
	assert_int_equal(h_append_file(p, data, strlen(data)), 0);
	free(p);
}

LT_FIX int collect_cb(const struct stored_record *r, void *arg)
{
	struct recs *rs = arg;
	if (rs->n < sizeof(rs->v) / sizeof(rs->v[0]))
		rs->v[rs->n++] = cJSON_ParseWithLength(r->line, r->line_len);
	return 0;
}

LT_FIX void recs_load(struct env *e, struct recs *rs, const char *kind, const char *type)
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

LT_FIX void recs_clear(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		cJSON_Delete(rs->v[i]);
	rs->n = 0;
}

LT_FIX const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

LT_FIX size_t count(struct env *e, const char *kind, const char *type)
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

LT_FIX bool have_at_least(void *arg)
{
	struct want *w = arg;
	return count(w->e, w->kind, w->type) >= w->n;
}

LT_FIX void wait_count(struct env *e, const char *kind, const char *type, size_t n)
{
	struct want w = { e, kind, type, n };
	if (!h_wait_for(have_at_least, &w, WAIT_MS))
		fail_msg("waited for %zu %s %s records, have %zu", n, kind, type ? type : "",
			 count(e, kind, type));
}

LT_FIX void wait_sessions(struct env *e, size_t n)
{
	wait_count(e, "session", NULL, n);
}

struct rounds {
	void *lt;
	uint64_t until;
};

LT_FIX bool rounds_done(void *arg)
{
	struct rounds *r = arg;
	return logtail_rounds(r->lt) >= r->until;
}

/* Let the driver look at everything twice more: a check that something did NOT happen. */
LT_FIX void settle(struct env *e)
{
	struct rounds r = { e->lt, logtail_rounds(e->lt) + 2 };
	assert_true(h_wait_for(rounds_done, &r, WAIT_MS));
}

/* The users of the sealed sessions, in seal order, joined by spaces. */
LT_FIX char *session_users(struct env *e)
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

LT_FIX void assert_users(struct env *e, const char *want)
{
	char *got = session_users(e);
	if (strcmp(got, want) != 0)
		fail_msg("sessions: got \"%s\", want \"%s\"", got, want);
	free(got);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The same users in any order: files of different logs (or globs) are read in rounds whose
 * order is not a promise; want's names are space-separated and sorted. */
LT_FIX void assert_users_any_order(struct env *e, const char *want)
{
	char *got = session_users(e);
	char *words[64];
	size_t n = 0;
	for (char *save = NULL, *w = strtok_r(got, " ", &save); w && n < 64; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	qsort(words, n, sizeof(words[0]), cmp_str);
	char sorted[1024] = "";
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(sorted + len, sizeof(sorted) - len, "%s%s", i ? " " : "", words[i]);
		if (k < 0 || (size_t)k >= sizeof(sorted) - len)
			fail_msg("sessions: too many users to compare");
		len += (size_t)k;
	}
	if (strcmp(sorted, want) != 0)
		fail_msg("sessions (any order): got \"%s\", want \"%s\"", sorted, want);
	free(got);
}

LT_FIX void append_gbk(struct env *e, const char *name, const char *utf8)
{
	char buf[4096];
	size_t n = h_to_gbk(utf8, buf, sizeof(buf));
	char *p = fpath(e, name);
	assert_int_equal(h_append_file(p, buf, n), 0);
	free(p);
}

LT_FIX int setup(void **state)
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

LT_FIX char *csv_row(int i, const char *user)
{
	return h_strdupf("2026-11-02 %02d:%02d:00,2026-11-02 %02d:%02d:30,%s,太原理工大学,%d,\r\n",
			 8 + i / 60, i % 60, 8 + i / 60, i % 60, user, i);
}


LT_FIX int64_t db_sessions(const char *state_dir)
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


#endif
