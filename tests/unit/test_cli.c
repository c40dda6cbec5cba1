/* test_cli.c — the command line as users meet it: the built binary, real files, real
 * processes stopped by PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include "test_cli_env.h"

static void test_help_version_usage(void **state)
{
	struct env *e = *state;
	char *out, *err;
	char *help[] = { e->agent, (char *)"--help", NULL };
	assert_int_equal(h_run(help, NULL, &out, &err, 5000), 0);
	assert_non_null(strstr(out, "usage: labshare-agent"));
	assert_non_null(strstr(out, "verify"));
	free(out);
	free(err);
	char *ver[] = { e->agent, (char *)"--version", NULL };
	assert_int_equal(h_run(ver, NULL, &out, &err, 5000), 0);
	assert_non_null(strstr(out, "labshare-agent 0."));
	free(out);
	free(err);
	assert_int_equal(agent(e, &out, &err, "frobnicate", NULL), 64);
	assert_non_null(strstr(err, "labshare-agent: unknown command \"frobnicate\""));
	free(out);
	free(err);
	char *none[] = { e->agent, NULL };
	assert_int_equal(h_run(none, NULL, &out, &err, 5000), 64);
	free(out);
	free(err);
}

static void test_check_ok_invalid_missing(void **state)
{
	struct env *e = *state;
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "check", NULL), 0);
	assert_string_equal(out, "ok\n");
	free(out);
	free(err);

	/* $LABSHARE_CONFIG is the default when -c is absent. */
	char *env[] = { h_strdupf("LABSHARE_CONFIG=%s", e->config), NULL };
	char *argv[] = { e->agent, (char *)"check", NULL };
	assert_int_equal(h_run(argv, env, &out, &err, 5000), 0);
	free(env[0]);
	free(out);
	free(err);

	char *text = h_read_file(e->config, NULL);
	char *bad = strdup(text);
	char *p = strstr(bad, "\"id\": \"sxu-nmr-center\"");
	memcpy(p, "\"ib\"", 4); /* a typo must not pass silently */
	h_write_file(e->config, bad, (size_t)-1, 0644);
	assert_int_equal(agent(e, &out, &err, "check", NULL), 78);
	assert_non_null(strstr(err, "agent.json:4:5: agent.ib: unknown key"));
	assert_non_null(strstr(err, "labshare-agent: "));
	free(out);
	free(err);
	h_write_file(e->config, text, (size_t)-1, 0644);
	free(bad);
	free(text);

	char *missing = h_path(e->dir, "nope.json");
	char *argv2[] = { e->agent, (char *)"-c", missing, (char *)"check", NULL };
	assert_int_equal(h_run(argv2, NULL, &out, &err, 5000), 66);
	assert_non_null(strstr(err, "nope.json"));
	free(missing);
	free(out);
	free(err);
}

static void test_verify_and_status_before_any_run(void **state)
{
	struct env *e = *state;
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "verify", NULL), 0);
	assert_non_null(strstr(out, "intact"));
	free(out);
	free(err);
	assert_int_equal(agent(e, &out, &err, "status", "--json", NULL), 0);
	cJSON *st = cJSON_Parse(out);
	assert_non_null(st);
	assert_string_equal(cJSON_GetObjectItem(st, "agent_id")->valuestring, "sxu-nmr-center");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(st, "running")));
	cJSON *buf = cJSON_GetObjectItem(st, "buffer");
	assert_int_equal(cJSON_GetObjectItem(buf, "last_seq")->valueint, 0);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(buf, "full")));
	cJSON *up = cJSON_GetObjectItem(st, "upload");
	assert_non_null(cJSON_GetObjectItem(up, "last_ok"));
	assert_non_null(cJSON_GetObjectItem(up, "next_attempt"));
	cJSON *ins = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "instruments"), 0);
	assert_string_equal(cJSON_GetObjectItem(ins, "id")->valuestring, "SX-INS-000123");
	cJSON *log0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ins, "logs"), 0);
	assert_non_null(strstr(cJSON_GetObjectItem(log0, "path")->valuestring, "usage-*.csv"));
	cJSON_Delete(st);
	free(out);
	free(err);
}

static void test_run_stops_cleanly_on_sigterm(void **state)
{
	struct env *e = *state;
	char *log = h_path(e->dir, "agent.log");
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, log);
	assert_non_null(p);
	assert_true(h_wait_for(status_running, e, 10000));

	/* A second daemon on the same state folder refuses to start. */
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "run", NULL), 73);
	assert_non_null(strstr(err, "another labshare-agent is running"));
	free(out);
	free(err);

	assert_int_equal(h_kill(p, SIGTERM), 0);
	assert_int_equal(h_wait(p, 10000), 0);
	h_proc_free(p);
	assert_false(status_running(e));

	int n;
	char **lines = record_lines(e->state, &n);
	assert_int_equal(n, 2);
	assert_non_null(strstr(lines[0], "{\"seq\":1,\"kind\":\"event\",\"at\":\"20"));
	assert_non_null(strstr(lines[0], "+08:00\",\"instrument\":null,\"type\":\"agent_start\""));
	assert_non_null(strstr(lines[1], "\"type\":\"agent_stop\""));
	free_lines(lines, n);
	char *text = h_read_file(log, NULL);
	assert_non_null(strstr(text, "<5>labshare-agent 0."));
	assert_non_null(strstr(text, "<5>received SIGTERM, stopping"));
	free(text);
	free(log);

	assert_int_equal(agent(e, &out, &err, "verify", NULL), 0);
	assert_non_null(strstr(out, "intact: 2 records"));
	free(out);
	free(err);
}

static double log_lines(struct env *e, bool *running, double *offset)
{
	char *out = NULL, *err = NULL;
	double lines = -1;
	if (agent(e, &out, &err, "status", "--json", NULL) == 0) {
		cJSON *st = cJSON_Parse(out);
		*running = cJSON_IsTrue(cJSON_GetObjectItem(st, "running"));
		cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "instruments"), 0), "logs"), 0);
		lines = cJSON_GetObjectItem(l, "lines")->valuedouble;
		cJSON *off = cJSON_GetObjectItem(l, "offset");
		*offset = cJSON_IsNumber(off) ? off->valuedouble : -1;
		cJSON_Delete(st);
	}
	free(out);
	free(err);
	return lines;
}

static bool three_lines_read(void *arg)
{
	bool running;
	double off;
	return log_lines(arg, &running, &off) == 3;
}

/* A log read by the daemon; status tells its figures live, and after the stop from the
 * cursor the daemon committed. */
static void test_status_of_logs_with_and_without_daemon(void **state)
{
	struct env *e = *state;
	char *log = h_path(e->dir, "usage-1.csv");
	const char *text = "开始时间,结束时间,用户,单位\n"
			   "2026-11-02 08:00:00,2026-11-02 09:00:00,张三,太原理工大学\n"
			   "2026-11-02 10:00:00,2026-11-02 11:00:00,李四,山西大学\n";
	h_write_file(log, text, (size_t)-1, 0644);
	char *alog = h_path(e->dir, "agent.log");
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"run", NULL };
	struct h_proc *p = h_spawn(argv, NULL, false, false, alog);
	assert_true(h_wait_for(three_lines_read, e, 15000));
	bool running;
	double off;
	log_lines(e, &running, &off);
	assert_true(running);
	h_kill(p, SIGTERM);
	assert_int_equal(h_wait(p, 20000), 0);
	h_proc_free(p);
	assert_int_equal((int)log_lines(e, &running, &off), 3);
	assert_false(running);
	assert_int_equal((int)off, (int)strlen(text));
	free(log);
	free(alog);
}

static void test_record_manual_session(void **state)
{
	struct env *e = *state;
	char *out, *err;
	char *argv[] = { e->agent, (char *)"-c", e->config, (char *)"record",
			 (char *)"--instrument", (char *)"SX-INS-000123",
			 (char *)"--start", (char *)"2026-11-02 08:00", (char *)"--end", (char *)"2026-11-02T10:30:00+08:00",
			 (char *)"--user", (char *)"张三", (char *)"--org", (char *)"太原理工大学",
			 (char *)"--samples", (char *)"3", (char *)"--note", (char *)"paper log p.12", NULL };
	char *env[] = { (char *)"SUDO_USER=labadmin", NULL };
	assert_int_equal(h_run(argv, env, &out, &err, 10000), 0);
	assert_non_null(strstr(out, "sealed as seq 1"));
	free(out);
	free(err);
	int n;
	char **lines = record_lines(e->state, &n);
	assert_int_equal(n, 1);
	assert_string_equal(lines[0],
		"{\"seq\":1,\"kind\":\"session\",\"instrument\":\"SX-INS-000123\","
		"\"start\":\"2026-11-02T08:00:00+08:00\",\"end\":\"2026-11-02T10:30:00+08:00\","
		"\"duration_s\":9000,\"user\":\"张三\",\"org\":\"太原理工大学\",\"external\":true,"
		"\"samples\":3,\"source\":\"manual\",\"operator\":\"labadmin\",\"note\":\"paper log p.12\"}");
	free_lines(lines, n);

	/* internal_orgs decides unless --external says otherwise. */
	char *argv2[] = { e->agent, (char *)"-c", e->config, (char *)"record",
			  (char *)"--instrument", (char *)"SX-INS-000123",
			  (char *)"--start", (char *)"2026-11-03T09:00:00Z", (char *)"--end", (char *)"2026-11-03T10:00:00Z",
			  (char *)"--user", (char *)"li", (char *)"--org", (char *)"山西大学", NULL };
	char *env2[] = { (char *)"SUDO_USER=", (char *)"USER=op2", NULL };
	assert_int_equal(h_run(argv2, env2, &out, &err, 10000), 0);
	free(out);
	free(err);
	lines = record_lines(e->state, &n);
	assert_int_equal(n, 2);
	assert_non_null(strstr(lines[1], "\"start\":\"2026-11-03T17:00:00+08:00\""));
	assert_non_null(strstr(lines[1], "\"external\":false"));
	assert_non_null(strstr(lines[1], "\"operator\":\"op2\""));
	free_lines(lines, n);
}

/* user_ids "hmac": the name leaves the lab as HMAC-SHA256 under the lab's key; "omit": not at all. */
static void test_user_ids_hmac_and_omit(void **state)
{
	struct env *e = *state;
	char *key = h_path(e->dir, "user-id.key");
	h_write_file(key, "lab-secret-key\n", (size_t)-1, 0600);
	char *text = h_read_file(e->config, NULL);
	char *with = h_strdupf("%.*s\"user_ids\": \"hmac\", \"user_id_key_file\": \"%s\",\n    %s",
			       (int)(strstr(text, "\"internal_orgs\"") - text), text, key,
			       strstr(text, "\"internal_orgs\""));
	h_write_file(e->config, with, (size_t)-1, 0644);
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", "--start", "2026-11-02 08:00",
			       "--end", "2026-11-02 09:00", "--user", "张三", "--org", "X", NULL), 0);
	free(out);
	free(err);
	int n;
	char **lines = record_lines(e->state, &n);
	/* printf '%s' 张三 | openssl dgst -sha256 -hmac lab-secret-key */
	assert_non_null(strstr(lines[0], "\"user\":\"cf77306d5d087aff9af6b1d1244c4e00ddc0c776b8702350107e6c382238d57a\""));
	free_lines(lines, n);
	char *omit = h_strdupf("%.*s\"user_ids\": \"omit\",\n    %s", (int)(strstr(text, "\"internal_orgs\"") - text),
			       text, strstr(text, "\"internal_orgs\""));
	h_write_file(e->config, omit, (size_t)-1, 0644);
	assert_int_equal(agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", "--start", "2026-11-03 08:00",
			       "--end", "2026-11-03 09:00", "--user", "张三", "--org", "X", NULL), 0);
	free(out);
	free(err);
	lines = record_lines(e->state, &n);
	assert_int_equal(n, 2);
	assert_null(strstr(lines[1], "\"user\""));
	assert_null(strstr(lines[1], "张三"));
	free_lines(lines, n);
	free(omit);
	free(with);
	free(text);
	free(key);
}

static void test_record_bad_data(void **state)
{
	struct env *e = *state;
	static const struct {
		const char *opt, *val, *expect;
	} cases[] = {
		{ "--instrument", "SX-NOPE", "--instrument \"SX-NOPE\": not an instrument" },
		{ "--start", "yesterday", "--start \"yesterday\": not a time" },
		{ "--end", "2026-11-02 07:00", "is not after --start" },
		{ "--samples", "-2", "--samples \"-2\"" },
		{ "--samples", "3x", "--samples \"3x\"" },
		{ "--external", "maybe", "--external \"maybe\": must be yes or no" },
		{ "--end", "2026-02-30 10:00", "--end \"2026-02-30 10:00\": not a time" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *inst = "SX-INS-000123", *start = "2026-11-02 08:00", *end = "2026-11-02 10:00";
		const char *samples = "1", *external = "yes";
		if (strcmp(cases[i].opt, "--instrument") == 0) inst = cases[i].val;
		if (strcmp(cases[i].opt, "--start") == 0) start = cases[i].val;
		if (strcmp(cases[i].opt, "--end") == 0) end = cases[i].val;
		if (strcmp(cases[i].opt, "--samples") == 0) samples = cases[i].val;
		if (strcmp(cases[i].opt, "--external") == 0) external = cases[i].val;
		char *out, *err;
		int rc = agent(e, &out, &err, "record", "--instrument", inst, "--start", start, "--end", end,
			       "--user", "u", "--org", "o", "--samples", samples, "--external", external, NULL);
		if (rc != 65 || !strstr(err, cases[i].expect))
			fail_msg("case %zu: exit %d, stderr: %s", i, rc, err);
		free(out);
		free(err);
	}
	char *out, *err;
	assert_int_equal(agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", NULL), 64);
	free(out);
	free(err);
	/* Nothing was sealed by any of them. */
	assert_int_equal(agent(e, &out, &err, "status", "--json", NULL), 0);
	cJSON *st = cJSON_Parse(out);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "buffer"), "last_seq")->valueint, 0);
	cJSON_Delete(st);
	free(out);
	free(err);
}

static void test_verify_finds_tampering(void **state)
{
	struct env *e = *state;
	char *out, *err;
	for (int i = 0; i < 5; i++) {
		char start[32], end[32];
		snprintf(start, sizeof(start), "2026-11-0%d 08:00", i + 1);
		snprintf(end, sizeof(end), "2026-11-0%d 09:00", i + 1);
		assert_int_equal(agent(e, &out, &err, "record", "--instrument", "SX-INS-000123", "--start",
				       start, "--end", end, "--user", "u", "--org", "o", NULL), 0);
		free(out);
		free(err);
	}
	assert_int_equal(agent(e, &out, &err, "verify", NULL), 0);
	free(out);
	free(err);
	char *path = h_path(e->state, "buffer.db");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER records_sealed;"
					  "UPDATE records SET line = replace(line, '\"duration_s\":3600', "
					  "'\"duration_s\":7200') WHERE seq = 3", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(path);
	assert_int_equal(agent(e, &out, &err, "verify", NULL), 1);
	assert_non_null(strstr(out, "first bad seq 3"));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_help_version_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_ok_invalid_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_and_status_before_any_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_stops_cleanly_on_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_of_logs_with_and_without_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_manual_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_ids_hmac_and_omit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_bad_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_finds_tampering, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
