/* test_profiles.c — the built-in meter profiles (SPEC §3 "profile", issue #16): every file in
 * agent/conf/profiles/ is compiled in and parses, and each is read through the real driver
 * code from the simulator serving its own register map (tests/sim/meters/NAME.script, written
 * from the maker's table independently of the JSON), with the values its `# expect` lines give.
 * Table-driven over the files present, so a profile added later is covered; one without a
 * script fails. Also: `profiles`, and the config's profile errors with file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "modbus.h"
#include "profiles.h"

enum quantity { Q_POWER, Q_ENERGY, Q_VOLTAGE, Q_FREQUENCY, Q__COUNT };
static const char *const expect_key[Q__COUNT] = { "power_w", "energy_kwh", "voltage_v", "frequency_hz" };

struct expect {
	bool have[Q__COUNT];
	double value[Q__COUNT];
};

static char *profile_name(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strlen(b);
	assert_true(n > 5 && strcmp(b + n - 5, ".json") == 0);
	return strndup(b, n - 5);
}

/* The script's "# expect KEY VALUE" lines. */
static void read_expect(const char *script, const char *text, struct expect *e)
{
	memset(e, 0, sizeof(*e));
	for (const char *l = text; l && *l;) {
		const char *nl = strchr(l, '\n');
		char key[32];
		double v;
		if (sscanf(l, "# expect %31s %lf", key, &v) == 2) {
			int q = 0;
			while (q < Q__COUNT && strcmp(key, expect_key[q]) != 0)
				q++;
			if (q == Q__COUNT)
				fail_msg("%s: unknown expect key \"%s\"", script, key);
			e->have[q] = true;
			e->value[q] = v;
		}
		l = nl ? nl + 1 : NULL;
	}
}

static struct h_proc *start_sim(const char *dir, const char *script, int *port)
{
	char *pf = h_path(dir, "ports"), *log = h_path(dir, "sim.log");
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--tcp", (char *)"127.0.0.1:0",
			 (char *)"--units", (char *)"1", (char *)"--regs", (char *)"65536", (char *)"--port-file",
			 pf, (char *)"--script", (char *)script, NULL };
	remove(pf);
	struct h_proc *p = h_spawn(argv, NULL, true, true, log);
	assert_non_null(p);
	if (!h_wait_file(pf, 10000)) {
		char *l = h_read_file(log, NULL);
		fail_msg("%s: the simulator did not start: %s", script, l ? l : "");
	}
	char *ports = h_read_file(pf, NULL);
	assert_int_equal(sscanf(ports, "%d", port), 1);
	free(ports);
	free(pf);
	free(log);
	return p;
}

static struct config *meter_config(const char *dir, int port, const char *modbus)
{
	char *text = h_strdupf("{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
			       " \"state_dir\": \"%s/state\" }, \"platform\": { \"url\": \"https://127.0.0.1:9\","
			       " \"token_file\": \"%s/token\" }, \"buses\": [ { \"id\": \"gw\", \"url\":"
			       " \"tcp://127.0.0.1:%d\", \"timeout_ms\": 1000 } ], \"instruments\": [ { \"id\": \"M\","
			       " \"modbus\": { \"bus\": \"gw\", \"unit\": 1, %s } } ] }", dir, dir, port, modbus);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse("agent.json", text, strlen(text), &cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	return cfg;
}

static void close_to(const char *name, const char *what, double got, double want)
{
	/* f32 registers hold about 7 digits. */
	if (!(fabs(got - want) <= 1e-6 * fabs(want) + 1e-6))
		fail_msg("%s: %s reads %.9g, the script expects %.9g", name, what, got, want);
}

static void test_every_profile_reads_its_own_map(void **state)
{
	(void)state;
	glob_t g;
	assert_int_equal(glob("agent/conf/profiles/*.json", 0, NULL, &g), 0);
	size_t n_compiled;
	const struct meter_profile *all = profiles_all(&n_compiled);
	size_t n_problems;
	const char *const *problems = profiles_problems(&n_problems);
	for (size_t i = 0; i < n_problems; i++)
		fprintf(stderr, "  %s\n", problems[i]);
	assert_int_equal(n_problems, 0);
	/* Compiled in are exactly the files present (a stale build would differ). */
	assert_int_equal(n_compiled, g.gl_pathc);
	assert_non_null(all);
	char *dir = h_mkdtemp("test_profiles");
	char *token = h_path(dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *name = profile_name(g.gl_pathv[i]);
		const struct meter_profile *mp = profile_find(name);
		if (!mp)
			fail_msg("%s is not compiled in", g.gl_pathv[i]);
		char *script = h_strdupf("tests/sim/meters/%s.script", name);
		char *text = h_read_file(script, NULL);
		if (!text)
			fail_msg("%s has no simulator map: %s is missing", g.gl_pathv[i], script);
		struct expect e;
		read_expect(script, text, &e);
		free(text);
		const struct mb_point *pts[Q__COUNT] = { &mp->power, &mp->energy, &mp->voltage, &mp->frequency };
		for (int q = 0; q < Q__COUNT; q++)
			if (pts[q]->present != e.have[q])
				fail_msg("%s: the profile %s %s but the script %s \"# expect %s\"", name,
					 pts[q]->present ? "has" : "lacks", expect_key[q],
					 e.have[q] ? "has" : "lacks", expect_key[q]);
		int port;
		struct h_proc *sim = start_sim(dir, script, &port);
		char *modbus = h_strdupf("\"profile\": \"%s\"", name);
		struct config *cfg = meter_config(dir, port, modbus);
		free(modbus);
		const struct modbus_cfg *m = &cfg->instruments[0].modbus;
		assert_string_equal(m->profile, name);
		struct mb_bus *bus = mb_bus_new(&cfg->buses[0]);
		struct mb_values v;
		mb_read_points(bus, m, true, &v);
		if (!v.ok)
			fail_msg("%s: %s", name, v.error);
		double got[Q__COUNT] = { v.power_raw * m->power.scale, v.energy_raw * m->energy.scale,
					 v.voltage_raw * m->voltage.scale, v.frequency_raw * m->frequency.scale };
		bool has[Q__COUNT] = { v.has_power, v.has_energy, v.has_voltage, v.has_frequency };
		for (int q = 0; q < Q__COUNT; q++) {
			assert_int_equal(has[q], e.have[q]);
			if (e.have[q])
				close_to(name, expect_key[q], got[q], e.value[q]);
		}
		/* What the daemon reads each poll: power and energy only. */
		mb_read_instrument(bus, m, &v);
		assert_true(v.ok && v.has_power && v.has_energy && !v.has_voltage && !v.has_frequency);
		mb_bus_free(bus);
		config_free(cfg);
		assert_int_equal(h_stop(sim, 5000), 0);
		h_proc_free(sim);
		fprintf(stderr, "  %s: ok\n", name);
		free(script);
		free(name);
	}
	globfree(&g);
	h_done_dir(dir);
}

static void test_profiles_command_lists_every_profile(void **state)
{
	(void)state;
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"profiles", NULL };
	char *out = NULL, *err = NULL;
	assert_int_equal(h_run(argv, NULL, &out, &err, 10000), 0);
	size_t n;
	const struct meter_profile *all = profiles_all(&n);
	for (size_t i = 0; i < n; i++) {
		char *head = h_strdupf("%s: %s", all[i].name, all[i].model);
		assert_non_null(strstr(out, head));
		assert_non_null(strstr(out, all[i].source));
		free(head);
	}
	assert_true(err == NULL || err[0] == '\0');
	free(out);
	free(err);
}

/* ---- configuration errors --------------------------------------------------------- */

struct bad_case {
	const char *modbus;          /* the modbus part; '@' marks where the error must point */
	const char *path, *why;      /* the JSON path and a part of the message */
};

static void test_profile_config_errors(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "'profile': @'nosuch-meter'", "instruments[0].modbus.profile", "unknown profile \"nosuch-meter\" (known: " },
		{ "'profile': 'chint-ddsu666', 'power': { 'table': 'holding', 'address': @70000, 'type': 'f32' }",
		  "instruments[0].modbus.power.address", "must be" },
		{ "'profile': 'chint-ddsu666', 'energy': { 'table': @'coil', 'address': 1 }",
		  "instruments[0].modbus.energy.table", "a meter value must be a register" },
		{ "'profile': 'chint-ddsu666', 'power': { 'table': 'holding', 'address': 1, @'above': 3 }",
		  "instruments[0].modbus.power.above", "only for" },
		{ "'profile': 'chint-ddsu666', 'in_use': { 'above_w': 50, 'below_w': @60 }",
		  "instruments[0].modbus.in_use.below_w", "must not be more than above_w" },
		{ "'profile': 'chint-ddsu666', 'in_use': { 'above_w': @-1, 'below_w': 0 }",
		  "instruments[0].modbus.in_use.above_w", "must be 0 or more" },
		{ "'profile': 'chint-ddsu666', 'in_use': { 'above_w': 100, 'below_w': 50, 'min_on_s': @86401 }",
		  "instruments[0].modbus.in_use.min_on_s", "" },
		{ "'profile': 'chint-ddsu666', 'in_use': { 'above_w': 100, 'below_w': 50, @'table': 'coil' }",
		  "instruments[0].modbus.in_use.table", "unknown key" },
		{ "'profile': 'chint-ddsu666', 'in_use': @{ 'above_w': 100 }",
		  "instruments[0].modbus.in_use.below_w", "missing required key" },
		{ "'in_use': @{ 'above_w': 100, 'below_w': 50 }", "instruments[0].modbus.in_use",
		  "in use from power needs a \"power\" point or a meter's \"profile\"" },
		{ "'profile': @7", "instruments[0].modbus.profile", "" },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct bad_case *bc = &cases[k];
		char *src = h_strdupf("{ 'agent': { 'id': 't', 'lab_code': 'L', 'timezone': 'Asia/Shanghai' },\n"
				      "  'platform': { 'url': 'https://127.0.0.1:9', 'token_file': '/nonexistent' },\n"
				      "  'buses': [ { 'id': 'gw', 'url': 'tcp://127.0.0.1:502' } ],\n"
				      "  'instruments': [ { 'id': 'M', 'modbus': { 'bus': 'gw', 'unit': 1,\n    %s } } ] }",
				      bc->modbus);
		size_t mark = (size_t)-1, n = 0, len = strlen(src);
		char *text = malloc(len + 1);
		unsigned line = 1, col = 1, mline = 0, mcol = 0;
		for (size_t i = 0; i < len; i++) {
			if (src[i] == '@') {
				mark = n;
				mline = line;
				mcol = col;
				continue;
			}
			text[n++] = src[i] == '\'' ? '"' : src[i];
			if (src[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		text[n] = '\0';
		assert_true(mark != (size_t)-1);
		struct config *cfg = NULL;
		struct config_errors errs = { 0 };
		assert_int_not_equal(config_parse("agent.json", text, n, &cfg, &errs), 0);
		char *want = h_strdupf("agent.json:%u:%u: %s: %s", mline, mcol, bc->path, bc->why);
		bool found = false;
		for (size_t i = 0; i < errs.n && !found; i++)
			found = strncmp(errs.msg[i], want, strlen(want)) == 0;
		if (!found) {
			for (size_t i = 0; i < errs.n; i++)
				fprintf(stderr, "  got: %s\n", errs.msg[i]);
			fail_msg("case %zu: no \"%s…\"", k, want);
		}
		config_errors_clear(&errs);
		free(want);
		free(text);
		free(src);
	}
}

/* Overrides replace the profile's point; the rest stays the profile's. */
static void test_override_replaces_one_point(void **state)
{
	(void)state;
	char *dir = h_mkdtemp("test_profiles");
	char *token = h_path(dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	struct config *cfg = meter_config(dir, 502, "\"profile\": \"chint-ddsu666\", \"power\": { \"table\": \"input\","
					  " \"address\": 12, \"type\": \"u32\", \"scale\": 0.1 }, \"in_use\": { \"above_w\": 150,"
					  " \"below_w\": 60, \"min_on_s\": 60, \"min_off_s\": 120 }");
	const struct modbus_cfg *m = &cfg->instruments[0].modbus;
	const struct meter_profile *mp = profile_find("chint-ddsu666");
	assert_int_equal(m->power.table, MB_TABLE_INPUT);
	assert_int_equal(m->power.address, 12);
	assert_true(m->power.scale == 0.1);
	assert_int_equal(m->energy.address, mp->energy.address);
	assert_true(m->hyst.present && m->hyst.above_w == 150 && m->hyst.below_w == 60);
	assert_int_equal(m->hyst.min_on_s, 60);
	assert_int_equal(m->hyst.min_off_s, 120);
	assert_false(m->in_use.present);
	config_free(cfg);
	h_done_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_profile_reads_its_own_map),
		cmocka_unit_test(test_profiles_command_lists_every_profile),
		cmocka_unit_test(test_profile_config_errors),
		cmocka_unit_test(test_override_replaces_one_point),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
