/* test_scan.c — `labshare-agent scan BUS [--units A-B]` (SPEC §2, issue #16) on a simulated bus:
 * every profile that has voltage and frequency serves its own map (tests/sim/meters/NAME.script)
 * on a unit of its own, beside blank units, units the gateway can't reach and a unit that never
 * answers. scan lists the units that answer and, for each meter, its profile; it exits 1 when
 * nothing answered and 73 without opening the bus while a daemon owns it (when `poll` prints
 * the daemon's latest power and energy instead). The agent, its
 * daemon and the simulator are real processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "harness.h"
#include "profiles.h"

#define FIRST_METER_UNIT 10

struct fx {
	char *dir, *config;
	struct h_proc *sim;
	int port;
	size_t n_meters;
	const char *meter[64];   /* profile names, meter[i] on unit FIRST_METER_UNIT + 2i */
};

static char *sim_cmd(struct fx *f, const char *line)
{
	char *reply = h_request(f->sim, line, 5000);
	if (!reply || strncmp(reply, "error", 5) == 0)
		fail_msg("simulator: \"%s\": %s", line, reply ? reply : "(no reply)");
	return reply;
}

/* The profile's script, moved from unit 1 to unit u, as control commands. */
static void serve_meter(struct fx *f, const char *name, int u)
{
	char *path = h_strdupf("tests/sim/meters/%s.script", name);
	char *text = h_read_file(path, NULL);
	if (!text)
		fail_msg("%s: no simulator map", path);
	for (char *l = text, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(l, "set 0 1 ", 8) == 0) {
			char *cmd = h_strdupf("set 0 %d %s", u, l + 8);
			free(sim_cmd(f, cmd));
			free(cmd);
		} else if (l[0] && l[0] != '#') {
			fail_msg("%s: a line test_scan can't move to another unit: %s", path, l);
		}
	}
	free(text);
	free(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_scan");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	char *pf = h_path(f->dir, "ports"), *log = h_path(f->dir, "sim.log");
	/* Units 1-40 are on the line; a TCP gateway answers for any other "no answer" (0x0B). */
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--tcp", (char *)"127.0.0.1:0",
			 (char *)"--units", (char *)"1-40", (char *)"--regs", (char *)"65536", (char *)"--port-file",
			 pf, NULL };
	assert_non_null(f->sim = h_spawn(argv, NULL, true, true, log));
	assert_true(h_wait_file(pf, 10000));
	char *ports = h_read_file(pf, NULL);
	assert_int_equal(sscanf(ports, "%d", &f->port), 1);
	size_t n;
	const struct meter_profile *all = profiles_all(&n);
	for (size_t i = 0; i < n && f->n_meters < 15; i++) {
		if (!all[i].voltage.present || !all[i].frequency.present)
			continue;
		f->meter[f->n_meters] = all[i].name;
		serve_meter(f, all[i].name, FIRST_METER_UNIT + 2 * (int)f->n_meters);
		f->n_meters++;
	}
	assert_true(f->n_meters > 0);
	free(sim_cmd(f, "silence 0 3 on")); /* on the line, but it never answers */
	f->config = h_path(f->dir, "agent.json");
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\", \"state_dir\": \"%s/state\" },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s\" },"
		"  \"buses\": [ { \"id\": \"rs485\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 200, \"gap_ms\": 2 } ],"
		"  \"instruments\": [ { \"id\": \"M\", \"modbus\": { \"bus\": \"rs485\", \"unit\": %d,"
		"     \"profile\": \"%s\" } } ] }",
		f->dir, token, f->port, FIRST_METER_UNIT, f->meter[0]);
	h_write_file(f->config, text, (size_t)-1, 0600);
	free(text);
	free(ports);
	free(pf);
	free(log);
	free(token);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_proc_free(f->sim);
	h_done_dir(f->dir);
	free(f->config);
	free(f);
	return 0;
}

static int scan(struct fx *f, const char *units, char **out, char **err)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"scan",
			 (char *)"rs485", (char *)"--units", (char *)units, NULL };
	return h_run(argv, NULL, out, err, 60000);
}

static long sim_count(struct fx *f, const char *line)
{
	char *r = sim_cmd(f, line);
	long n = strtol(r, NULL, 10);
	free(r);
	return n;
}

static void test_scan_finds_each_meter(void **state)
{
	struct fx *f = *state;
	int last = FIRST_METER_UNIT + 2 * (int)f->n_meters + 1; /* past the line's last unit too */
	if (last < 45)
		last = 45;
	char *units = h_strdupf("1-%d", last), *out = NULL, *err = NULL;
	int rc = scan(f, units, &out, &err);
	if (rc != 0)
		fail_msg("scan: exit %d\n%s%s", rc, out ? out : "", err ? err : "");
	/* Units 1-40 answer but 3, which never does; none past 40 (the gateway can't reach them). */
	for (int u = 1; u <= last; u++) {
		char *head = h_strdupf("\nunit %d: answers; ", u);
		const char *at = strstr(out, head);
		if ((u <= 40 && u != 3) != (at != NULL))
			fail_msg("unit %d %s:\n%s", u, at ? "listed" : "missing", out);
		int k = u - FIRST_METER_UNIT;
		if (at && k >= 0 && k % 2 == 0 && (size_t)(k / 2) < f->n_meters) {
			const char *eol = strchr(at + 1, '\n');
			char *line = strndup(at + 1, eol ? (size_t)(eol - at - 1) : strlen(at + 1));
			char *fit = h_strdupf(" %s (", f->meter[k / 2]);
			if (!strstr(line, fit))
				fail_msg("unit %d serves %s: %s", u, f->meter[k / 2], line);
			free(fit);
			free(line);
		} else if (at) {
			assert_true(strncmp(at + strlen(head), "no profile fits", 15) == 0);
		}
		free(head);
	}
	char *total = h_strdupf("%d of %d units answer", 39, last);
	assert_non_null(strstr(out, total));
	free(total);
	free(units);
	free(out);
	free(err);
}

static void test_scan_nothing_answers(void **state)
{
	struct fx *f = *state;
	char *out = NULL, *err = NULL;
	assert_int_equal(scan(f, "41-60", &out, &err), 1);
	assert_non_null(strstr(out, "0 of 20 units answer"));
	free(out);
	free(err);
	/* A unit that never answers costs one request and one time-out: no retries. */
	free(sim_cmd(f, "reset-stats"));
	assert_int_equal(scan(f, "3", &out, &err), 1);
	char *stats = sim_cmd(f, "stats");
	assert_non_null(strstr(stats, "\"requests\":1,"));
	free(stats);
	free(out);
	free(err);
	/* Usage errors. */
	assert_int_equal(scan(f, "0-5", &out, &err), 64);
	free(out);
	free(err);
}

/* The daemon holds its lock and has written its status once: it is up, not starting. */
static bool daemon_up(void *state_dir)
{
	char *status = h_strdupf("%s/status.json", (const char *)state_dir);
	bool up = daemon_running(state_dir, NULL) && h_wait_file(status, 0);
	free(status);
	return up;
}

static bool poll_ok(void *arg)
{
	struct fx *f = arg;
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"poll", NULL };
	char *out = NULL, *err = NULL;
	int rc = h_run(argv, NULL, &out, &err, 30000);
	free(out);
	free(err);
	return rc == 0;
}

static void test_scan_refuses_beside_daemon(void **state)
{
	struct fx *f = *state;
	char *log = h_path(f->dir, "agent.log"), *state_dir = h_path(f->dir, "state");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"-v", (char *)"run", NULL };
	struct h_proc *agent = h_spawn(argv, NULL, false, false, log);
	assert_non_null(agent);
	if (!h_wait_for(daemon_up, state_dir, 15000)) {
		char *l = h_read_file(log, NULL);
		h_stop(agent, 5000);
		fail_msg("the daemon did not take its lock:\n%s", l ? l : "");
	}
	/* poll beside it prints the daemon's latest meter readings: power and energy. */
	if (!h_wait_for(poll_ok, f, 15000))
		fail_msg("poll beside the daemon never printed a good reading");
	char *pout = NULL, *perr = NULL;
	char *pargv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"poll", NULL };
	assert_int_equal(h_run(pargv, NULL, &pout, &perr, 30000), 0);
	assert_non_null(strstr(pout, "  read at "));
	assert_non_null(strstr(pout, "  power            "));
	assert_non_null(strstr(pout, "  energy           "));
	free(pout);
	free(perr);
	/* status beside it shows the meter's power and energy, not an unknown run total. */
	char *sargv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->config, (char *)"status", NULL };
	assert_int_equal(h_run(sargv, NULL, &pout, &perr, 30000), 0);
	if (!strstr(pout, "  meter   ok, last ok ") || !strstr(pout, " W, energy ") || strstr(pout, "run total unknown"))
		fail_msg("status of a metered instrument:\n%s", pout);
	free(pout);
	free(perr);

	long before = sim_count(f, "accepted 0");
	char *out = NULL, *err = NULL;
	int rc = scan(f, "1-5", &out, &err);
	long after = sim_count(f, "accepted 0");
	assert_int_equal(h_stop(agent, 10000), 0);
	h_proc_free(agent);
	if (rc != 73)
		fail_msg("scan beside the daemon: exit %d\n%s%s", rc, out, err);
	assert_non_null(strstr(err, "owns bus \"rs485\""));
	assert_int_equal(after, before); /* no connection of its own */
	free(out);
	free(err);
	free(log);
	free(state_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_finds_each_meter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_nothing_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_refuses_beside_daemon, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
