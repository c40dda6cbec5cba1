/* test_status.c — the status struct printed as JSON reads back to the same struct (what
 * `status` and `poll` beside a running daemon rely on), and only what a driver filled is
 * taken from the daemon's status.json as live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "status.h"
#include "timeutil.h"

struct fx {
	char *dir;
	struct config *cfg;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("status");
	char *token = h_strdupf("%s/token", f->dir);
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"lab\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\","
		" \"state_dir\": \"%s/state\" }, \"platform\": { \"url\": \"https://127.0.0.1:9\","
		" \"token_file\": \"%s/token\" }, \"buses\": [ { \"id\": \"gw\", \"url\": \"tcp://127.0.0.1:9\" } ],"
		" \"instruments\": ["
		" { \"id\": \"A\", \"name\": \"核磁 \\\"A\\\"\", \"modbus\": { \"bus\": \"gw\", \"unit\": 1,"
		"   \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u16\" } } },"
		" { \"id\": \"B\", \"logs\": ["
		"   { \"path\": \"%s/b-*.csv\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" } },"
		"   { \"path\": \"%s/b2.csv\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\", \"user\": \"u\" } } ] },"
		" { \"id\": \"C\", \"modbus\": { \"bus\": \"gw\", \"unit\": 2,"
		"   \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u16\" } } } ] }",
		f->dir, f->dir, f->dir, f->dir);
	struct config_errors errs = { 0 };
	if (config_parse("t.json", text, strlen(text), &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	timeutil_set_zone(f->cfg->agent.timezone);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	config_free(f->cfg);
	h_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Every kind of field set, as a daemon with both drivers running would have it. */
static struct status *filled(const struct config *cfg)
{
	struct status *st = status_new(cfg);
	assert_non_null(st);
	st->running = true;
	st->pid = 4242;
	inst_status_set(&st->buffer.path, "/var/lib/labshare/buffer.db");
	st->buffer.last_seq = 12;
	st->buffer.acked_seq = 10;
	st->buffer.pending = 2;
	st->buffer.bytes = 123456;
	st->buffer.max_bytes = 1 << 30;
	snprintf(st->buffer.head_hash, sizeof(st->buffer.head_hash), "%064d", 7);
	st->buffer.oldest_pending_age_s = 30;
	st->upload.acked_seq = 10;
	st->upload.pending = 2;
	st->upload.last_ok = 1793577600;
	inst_status_set(&st->upload.last_error, "platform replied HTTP 503");
	struct modbus_status *m = &st->insts[0].modbus;
	m->live = true;
	snprintf(m->state, sizeof(m->state), "ok");
	m->last_ok = 1793577601;
	m->has_run_hours = true;
	m->run_hours_total = 12.25;
	inst_status_set(&m->bus, "gw");
	m->unit = 1;
	m->reading.at = 1793577601;
	m->reading.ok = true;
	m->reading.has_run = true;
	m->reading.run_raw = 44100;
	m->polls = 9;
	struct log_status *l = &st->insts[1].logs[0];
	l->live = true;
	inst_status_set(&l->file, "/data/b-1.csv");
	l->has_offset = true;
	l->offset = 512;
	l->lines = 8;
	l->malformed = 1;
	l->files = 1;
	snprintf(l->state, sizeof(l->state), "ok");
	st->insts[1].sessions_repeated = 2;
	snprintf(st->insts[2].modbus.state, sizeof(st->insts[2].modbus.state), "starting");
	return st;
}

static void test_json_reads_back_the_same(void **state)
{
	struct fx *f = *state;
	struct status *st = filled(f->cfg);
	size_t len = 0;
	char *text = status_json(st, &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	/* SPEC §7's fields, where the spec puts them. */
	assert_string_equal(cJSON_GetObjectItem(j, "agent_id")->valuestring, "lab");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "running")));
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "buffer"), "pending")->valueint, 2);
	cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instruments"), 0);
	assert_string_equal(cJSON_GetObjectItem(a, "name")->valuestring, "核磁 \"A\"");
	cJSON *am = cJSON_GetObjectItem(a, "modbus");
	assert_string_equal(cJSON_GetObjectItem(am, "last_ok")->valuestring, "2026-11-02T08:00:01+08:00");
	assert_true(cJSON_GetObjectItem(am, "run_hours_total")->valuedouble == 12.25);
	cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instruments"), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "modbus")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "logs")), 2);

	struct status *back = status_from_json(j);
	assert_non_null(back);
	char *again = status_json(back, NULL);
	assert_string_equal(text, again);
	/* And the text of both is the same. */
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;
	FILE *o1 = open_memstream(&t1, &l1), *o2 = open_memstream(&t2, &l2);
	status_text(st, o1);
	status_text(back, o2);
	fclose(o1);
	fclose(o2);
	assert_string_equal(t1, t2);
	assert_non_null(strstr(t1, "buffer    /var/lib/labshare/buffer.db: last seq 12, acked 10, pending 2, 0.1 MB\n"));
	assert_non_null(strstr(t1, "          last error: platform replied HTTP 503\n"));
	assert_non_null(strstr(t1, "  modbus  ok, last ok 2026-11-02T08:00:01+08:00, run total 12.25 h\n"));
	assert_non_null(strstr(t1, "  repeats 2 (the same session seen again, sealed once)\n"));
	char *p = status_prometheus(st, NULL);
	assert_non_null(strstr(p, "labshare_instrument_up{instrument=\"A\"} 1\n"));
	assert_non_null(strstr(p, "labshare_instrument_up{instrument=\"C\"} 0\n"));
	assert_non_null(strstr(p, "labshare_upload_failing 1\n"));
	free(p);
	free(t1);
	free(t2);
	free(again);
	status_free(back);
	cJSON_Delete(j);
	free(text);
	status_free(st);
}

/* Beside a daemon: its driver-filled parts are taken (in any order, by id), what it wrote as
 * a stopped agent would (C "starting", B's second log from the cursor) is not. */
static void test_live_parts_only_what_a_driver_filled(void **state)
{
	struct fx *f = *state;
	struct status *daemon = filled(f->cfg);
	char *text = status_json(daemon, NULL);
	cJSON *j = cJSON_Parse(text);
	/* The daemon's list in another order than this config's. */
	cJSON *arr = cJSON_GetObjectItem(j, "instruments");
	cJSON_AddItemToArray(arr, cJSON_DetachItemFromArray(arr, 0));
	struct status *st = status_new(f->cfg);
	assert_int_equal(status_live_from_json(st, j), 0);
	assert_true(st->insts[0].modbus.live);
	assert_string_equal(st->insts[0].modbus.state, "ok");
	assert_true(st->insts[0].modbus.reading.run_raw == 44100);
	assert_string_equal(st->insts[0].modbus.bus, "gw");
	assert_true(st->insts[1].logs[0].live);
	assert_int_equal(st->insts[1].logs[0].offset, 512);
	assert_string_equal(st->insts[1].logs[0].file, "/data/b-1.csv");
	assert_false(st->insts[1].logs[1].live);
	assert_false(st->insts[2].modbus.live);
	/* Not a daemon's status at all. */
	cJSON *junk = cJSON_Parse("{\"instruments\":{}}");
	assert_int_equal(status_live_from_json(st, junk), -EINVAL);
	cJSON_Delete(junk);
	status_free(st);
	cJSON_Delete(j);
	free(text);
	status_free(daemon);
}

/* A file name that is not UTF-8 (a share written from a GBK machine) is shown with its odd
 * bytes spelled out; the rest of the status is still written. */
static void test_bytes_not_utf8_do_not_stop_the_status(void **state)
{
	struct fx *f = *state;
	struct status *st = filled(f->cfg);
	inst_status_set(&st->insts[1].logs[0].file, "/data/\xd5\xc5-1.csv");
	char *text = status_json(st, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"file\":\"/data/\\\\xd5\\\\xc5-1.csv\""));
	assert_non_null(strstr(text, "\"id\":\"C\""));
	free(text);
	status_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_reads_back_the_same, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_parts_only_what_a_driver_filled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_not_utf8_do_not_stop_the_status, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
