/* test_cli_env.h — the fixture of the command line's tests (test_cli.c, test_cli_hardening.c):
 * a temporary folder with a lab's configuration and token, the built binary run with -c, and
 * the sealed records read back. Each program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_CLI_ENV_H
#define LABSHARE_TEST_CLI_ENV_H

#define CLI_FIX static __attribute__((unused))

struct env {
	char *dir;
	char *state;
	char *config;
	char *agent;
};

CLI_FIX const char config_fmt[] =
	"// a lab's configuration, with comments\n"
	"{\n"
	"  \"agent\": {\n"
	"    \"id\": \"sxu-nmr-center\",\n"
	"    \"lab_code\": \"SXKL-2023-017\",\n"
	"    \"timezone\": \"Asia/Shanghai\",\n"
	"    \"state_dir\": \"%s\",\n"
	"    \"internal_orgs\": [\"山西大学\"]\n"
	"  },\n"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9/api\", \"token_file\": \"%s/token\" },\n"
	"  /* one instrument, fed by its log */\n"
	"  \"instruments\": [\n"
	"    { \"id\": \"SX-INS-000123\", \"name\": \"600 MHz 核磁共振波谱仪\",\n"
	"      \"logs\": [ { \"path\": \"%s/usage-*.csv\", \"format\": \"csv\",\n"
	"                  \"fields\": { \"start\": \"开始时间\", \"end\": \"结束时间\", \"user\": \"用户\", \"org\": \"单位\" } } ] }\n"
	"  ]\n"
	"}\n";

CLI_FIX int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = h_mkdtemp("test_cli");
	e->state = h_path(e->dir, "state");
	e->config = h_path(e->dir, "agent.json");
	e->agent = strdup(h_build_path("labshare-agent"));
	char *token = h_path(e->dir, "token");
	h_write_file(token, "s3cret-token\n", (size_t)-1, 0600);
	free(token);
	char *text = h_strdupf(config_fmt, e->state, e->dir, e->dir);
	h_write_file(e->config, text, (size_t)-1, 0644);
	free(text);
	*state = e;
	return 0;
}

CLI_FIX int teardown(void **state)
{
	struct env *e = *state;
	h_rmtree(e->dir);
	free(e->dir);
	free(e->state);
	free(e->config);
	free(e->agent);
	free(e);
	return 0;
}

/* Runs the agent with -c config and up to 28 more arguments (NULL-terminated). */
CLI_FIX int agent(struct env *e, char **out, char **err, ...)
{
	char *argv[32] = { e->agent, (char *)"-c", e->config };
	int n = 3;
	va_list ap;
	va_start(ap, err);
	char *a;
	while ((a = va_arg(ap, char *)) && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return h_run(argv, NULL, out, err, 20000);
}

struct running_arg {
	struct env *e;
};

CLI_FIX bool status_running(void *arg)
{
	struct env *e = arg;
	char *out = NULL, *err = NULL;
	bool running = false;
	if (agent(e, &out, &err, "status", "--json", NULL) == 0) {
		cJSON *st = cJSON_Parse(out);
		running = st && cJSON_IsTrue(cJSON_GetObjectItem(st, "running"));
		cJSON_Delete(st);
	}
	free(out);
	free(err);
	return running;
}

CLI_FIX char **record_lines(const char *state, int *n)
{
	char *path = h_path(state, "buffer.db");
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT line FROM records ORDER BY seq", -1, &st, NULL), SQLITE_OK);
	char **lines = calloc(1024, sizeof(char *));
	*n = 0;
	while (sqlite3_step(st) == SQLITE_ROW && *n < 1023)
		lines[(*n)++] = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return lines;
}

CLI_FIX void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

CLI_FIX int last_seq(struct env *e)
{
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "status", "--json", NULL), 0);
	cJSON *st = cJSON_Parse(out);
	int seq = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "buffer"), "last_seq")->valueint;
	cJSON_Delete(st);
	free(out);
	free(err);
	return seq;
}

#endif
