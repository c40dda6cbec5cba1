/* test_modbus_poll.c — `labshare-agent poll` beside a running daemon: it opens no bus (a
 * second master breaks an RS-485 line) and prints the daemon's latest readings instead, read
 * or not, with their age. The daemon and the simulator are real processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/stat.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "mbdecode.h"
#include "metrics.h"
#include "modbus.h"
#include "status.h"
#include "timeutil.h"

#include "test_modbus_env.h"

/* ---- `poll` beside a running daemon ----------------------------------------------- */

/* TCP connections the simulator accepted on both endpoints since it started. */
static long accepted(struct fx *f)
{
	long n = 0;
	for (int e = 0; e < 2; e++) {
		char line[32];
		snprintf(line, sizeof(line), "accepted %d", e);
		char *r = h_request(f->sim, line, 5000);
		assert_non_null(r);
		n += strtol(r, NULL, 10);
		free(r);
	}
	return n;
}

struct poll_run {
	int rc;
	char *out, *err;
};

static struct poll_run run_poll(const char *config)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", (char *)config, (char *)"poll", NULL };
	struct poll_run p = { 0 };
	p.rc = h_run(argv, NULL, &p.out, &p.err, 30000);
	assert_non_null(p.out);
	return p;
}

static void poll_run_free(struct poll_run *p)
{
	free(p->out);
	free(p->err);
}

/* The line of text that starts with prefix (its own copy, without the newline); NULL if none. */
static char *line_with(const char *text, const char *prefix)
{
	for (const char *l = text; l && *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			return strndup(l, len);
		l = nl ? nl + 1 : NULL;
	}
	return NULL;
}

struct live_wait {
	const char *status_path;
	const char *id;          /* this one's reading must be `ok`, the others' ok */
	bool ok;
};

/* status.json holds a reading for every instrument: all ok but w->id, which is w->ok. */
static bool live_readings(void *arg)
{
	struct live_wait *w = arg;
	char *text = h_read_file(w->status_path, NULL);
	cJSON *live = text ? cJSON_Parse(text) : NULL;
	free(text);
	int good = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(live, "instruments")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(it, "id"));
		const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "modbus"), "reading");
		bool want = id && w->id && strcmp(id, w->id) == 0 ? w->ok : true;
		good += cJSON_IsObject(r) && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) == want;
	}
	cJSON_Delete(live);
	return good == 4;
}

static void test_poll_beside_daemon_opens_no_bus(void **state)
{
	struct fx *f = *state;
	sim_cmd(f, "set 0 1 input 10 u32 little 123456");
	sim_cmd(f, "set 0 1 input 12 u16 big 77");
	sim_cmd(f, "set 0 1 coil 3 bit big 1");
	sim_cmd(f, "set 0 2 holding 0 u16 big 4242");
	sim_cmd(f, "set 0 3 holding 0 u64 big 4294967301");
	sim_cmd(f, "set 0 3 input 20 f32 big 75.5");
	sim_cmd(f, "set 1 1 input 0 i32 big -7");
	/* The daemon's own folder: the fixture's core has the other one open. */
	char *d = h_path(f->dir, "d");
	assert_int_equal(mkdir(d, 0700), 0);
	char *token = h_path(d, "token"), *config = h_path(d, "agent.json"), *log = h_path(d, "agent.log");
	char *status_path = h_strdupf("%s/state/status.json", d);
	h_write_file(token, "t\n", (size_t)-1, 0600);
	char *text = h_strdupf(INST_FMT, d, d, f->port[0], f->port[1]);
	/* A generous time-out: a daemon that reconnects after a slow reply on a loaded machine
	 * would count as a connection below. */
	for (char *t = text; (t = strstr(t, "\"timeout_ms\": 200")) != NULL;)
		memcpy(t, "\"timeout_ms\": 900", 17);
	h_write_file(config, text, (size_t)-1, 0644);
	free(text);

	/* Alone, poll reads the instruments itself, and the simulator sees it connect. */
	long before = accepted(f);
	struct poll_run own = run_poll(config);
	if (own.rc != 0)
		fail_msg("poll alone: exit %d\n%s%s", own.rc, own.out, own.err);
	assert_true(accepted(f) > before);
	char *own_run = line_with(own.out, "  run_counter      input       10");
	assert_non_null(own_run);
	assert_non_null(strstr(own_run, "raw 123456"));

	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", config, (char *)"run", NULL };
	struct h_proc *agent = h_spawn(argv, NULL, false, false, log);
	assert_non_null(agent);
	struct live_wait w = { status_path, NULL, true };
	if (!h_wait_for(live_readings, &w, 15000)) {
		char *l = h_read_file(log, NULL), *st = h_read_file(status_path, NULL);
		h_stop(agent, 5000);
		fail_msg("no readings in status.json within 15 s:\n%s\nagent log:\n%s", st ? st : "(none)",
			 l ? l : "");
	}

	/* Beside it, poll prints the daemon's readings and opens no bus. */
	before = accepted(f);
	struct poll_run p = run_poll(config);
	long after = accepted(f);
	char pidtext[32];
	snprintf(pidtext, sizeof(pidtext), "pid %ld", (long)agent->pid);
	char *first = strndup(p.out, strcspn(p.out, "\n"));
	if (p.rc != 0 || !strstr(first, pidtext) || after != before)
		fprintf(stderr, "poll beside the daemon: exit %d, %ld new connections:\n%s%s", p.rc,
			after - before, p.out, p.err);
	assert_int_equal(p.rc, 0);
	assert_non_null(strstr(first, pidtext));
	assert_int_equal(after, before);
	/* The same lines as its own reads give. */
	char *run = line_with(p.out, "  run_counter      input       10");
	assert_non_null(run);
	assert_string_equal(run, own_run);
	static const char *const lines[] = { "A (A) on bus gw unit 1: ok", "B (B) on bus gw unit 2: ok",
					     "D (D) on bus gw2 unit 1: ok", "  read at " };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(p.out, lines[i]))
			fail_msg("no \"%s\" in:\n%s", lines[i], p.out);
	assert_non_null(strstr(p.out, "raw 4242 "));
	assert_non_null(strstr(p.out, "raw 4294967301 "));
	assert_non_null(strstr(p.out, "raw -7 "));
	assert_non_null(strstr(p.out, "in use"));
	free(first);
	free(run);
	poll_run_free(&p);

	/* An instrument the daemon can't read: poll says so, with the daemon's error, and fails. */
	sim_cmd(f, "silence 0 2 on");
	w.id = "B";
	w.ok = false;
	assert_true(h_wait_for(live_readings, &w, 15000));
	p = run_poll(config);
	if (p.rc != 1 || !strstr(p.out, "B (B) on bus gw unit 2: FAILED") || !strstr(p.out, "timed out"))
		fail_msg("poll with B silent: exit %d:\n%s%s", p.rc, p.out, p.err);
	assert_non_null(strstr(p.out, "A (A) on bus gw unit 1: ok"));
	poll_run_free(&p);

	assert_int_equal(h_stop(agent, 10000), 0);
	h_proc_free(agent);
	poll_run_free(&own);
	free(own_run);
	free(d);
	free(token);
	free(config);
	free(log);
	free(status_path);
}

/* The daemon's view when it can't vouch for an instrument: not read yet, not polled at all
 * (a config edited since it started), read on another unit. Each fails `poll`, and says why. */
static void test_poll_daemon_view_unread_and_unknown(void **state)
{
	struct fx *f = *state;
	char *path = h_strdupf("%s/status.json", f->cfg->agent.state_dir);
	h_write_file(path,
		     "{\"instruments\":["
		     "{\"id\":\"A\",\"modbus\":{\"state\":\"starting\",\"bus\":\"gw\",\"unit\":1,\"reading\":null}},"
		     "{\"id\":\"D\",\"modbus\":{\"state\":\"ok\",\"bus\":\"gw2\",\"unit\":1,"
		     "  \"reading\":{\"at\":\"2026-01-01T00:00:00Z\",\"ok\":true,\"run_raw\":-7}}},"
		     "{\"id\":\"B\",\"modbus\":{\"state\":\"ok\",\"bus\":\"gw\",\"unit\":9,"
		     "  \"reading\":{\"at\":\"2026-01-01T00:00:00Z\",\"ok\":true,\"run_raw\":1}}}]}",
		     (size_t)-1, 0644);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_int_equal(modbus_poll_daemon(f->cfg, 4242, out), 1);
	fclose(out);
	static const char *const want[] = {
		"the daemon (pid 4242) owns the buses",
		"A (A) on bus gw unit 1: FAILED\n  error: not read by the daemon yet (starting)\n",
		"B (B) on bus gw unit 2: FAILED\n  error: the daemon (pid 4242) reads it on bus gw unit 9",
		"C (C) on bus gw unit 3: FAILED\n  error: the daemon (pid 4242) does not poll it",
		/* the same instant, in the agent's zone (Asia/Shanghai), as the daemon writes it */
		"D (D) on bus gw2 unit 1: ok\n  read at          2026-01-01T08:00:00+08:00, ",
		"  run_counter      input        0 i32/big    raw -7 = -0.00194444 h\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			fail_msg("no \"%s\" in:\n%s", want[i], text);
	free(text);

	/* A lock that can't be opened (here a symlink loop; for an operator, a state folder of
	 * the service user's) proves nothing: no bus is opened. */
	char *lock = h_strdupf("%s/agent.lock", f->cfg->agent.state_dir);
	assert_int_equal(symlink(lock, lock), 0);
	sim_cmd(f, "reset-stats");
	text = NULL;
	out = open_memstream(&text, &len);
	assert_int_equal(modbus_poll(f->cfg, out), 1);
	fclose(out);
	assert_string_equal(text, "");
	free(text);
	assert_int_equal(accepted(f), 0);
	unlink(lock);
	free(lock);

	/* The daemon stopped meanwhile and took its status with it: poll reads them itself. */
	unlink(path);
	text = NULL;
	out = open_memstream(&text, &len);
	assert_int_equal(modbus_poll_daemon(f->cfg, 4242, out), 0);
	fclose(out);
	assert_null(strstr(text, "the daemon"));
	assert_non_null(strstr(text, "D (D) on bus gw2 unit 1: ok\n  run_counter "));
	free(text);
	free(path);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poll_beside_daemon_opens_no_bus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_daemon_view_unread_and_unknown, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
