/* test_config.c — the configuration loader (SPEC §3): every bad file is refused with each
 * problem as "file:line:col: json.path: why", and a good one lands in the struct as written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "harness.h"

/* The fixture folder: token and key files with various modes, and a zoneinfo of our own
 * (TZDIR) so that the tests do not depend on the machine's tzdata. */
static char *dir;

/* ---- writing test configs ----
 * Configs below are written with ' for " (C strings stay readable) and an @ in front of
 * each place an error must point at ("@@" for a real one). The line:col expected is computed from the @, not
 * from the loader, so a wrong position in the loader cannot agree with itself. */

#define MAX_MARKS 8

static char *render(const char *src, size_t marks[MAX_MARKS], size_t *n_marks)
{
	size_t len = strlen(src), n = 0, k = 0;
	char *out = malloc(len + 1);
	assert_non_null(out);
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '@' && src[i + 1] == '@') {
			out[n++] = src[++i];  /* "@@" is a literal @ */
			continue;
		}
		if (src[i] == '@') {
			assert_true(k < MAX_MARKS);
			marks[k++] = n;
			continue;
		}
		out[n++] = src[i] == '\'' ? '"' : src[i];
	}
	out[n] = '\0';
	*n_marks = k;
	return out;
}

/* Columns count characters (UTF-8 code points), as editors show them. */
static void line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* "{dir}" in an expected message stands for the fixture folder. */
static char *with_dir(const char *s)
{
	const char *at = strstr(s, "{dir}");
	if (!at)
		return h_strdupf("%s", s);
	char *rest = with_dir(at + 5);
	char *r = h_strdupf("%.*s%s%s", (int)(at - s), s, dir, rest);
	free(rest);
	return r;
}

static char *config_path(void)
{
	return h_path(dir, "c.json");
}

/* Writes text as dir/c.json and loads it. */
static int load_text(const char *text, struct config **cfg, struct config_errors *errs)
{
	char *path = config_path();
	assert_int_equal(h_write_file(path, text, (size_t)-1, 0644), 0);
	int rc = config_load(path, cfg, errs);
	free(path);
	return rc;
}

static void print_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		print_message("  got: %s\n", errs->msg[i]);
}

/* ---- bad configurations ---- */

#include "test_config_bad.h"

static void test_bad(void **state)
{
	const struct bad *b = *state;
	size_t marks[MAX_MARKS], n_marks, n_why = 0;
	char *text = render(b->json, marks, &n_marks);
	while (n_why < MAX_MARKS && b->why[n_why])
		n_why++;
	assert_int_equal(n_marks, n_why);  /* the case itself is consistent */

	struct config *cfg = (struct config *)1;
	struct config_errors errs = { 0 };
	int rc = load_text(text, &cfg, &errs);
	char *path = config_path();
	bool same = rc == -EINVAL && errs.n == n_why;
	for (size_t i = 0; same && i < n_why; i++) {
		unsigned line, col;
		line_col(text, marks[i], &line, &col);
		char *why = with_dir(b->why[i]);
		char *want = h_strdupf("%s:%u:%u: %s", path, line, col, why);
		if (strcmp(errs.msg[i], want) != 0) {
			print_message("  want: %s\n", want);
			same = false;
		}
		free(why);
		free(want);
	}
	if (!same) {
		print_message("  rc %d, %zu error(s), %zu expected\n", rc, errs.n, n_why);
		print_errors(&errs);
	}
	assert_null(cfg);
	config_errors_clear(&errs);
	free(path);
	free(text);
	assert_true(same);
}

/* ---- good configurations ---- */

static const char full_config[] =
	"// 测试配置: every key the loader knows, none at its default\n"
	"{\n"
	"  /* 实验室 */\n"
	"  'agent': {\n"
	"    'id': 'sxu-nmr-center',            // 中心\n"
	"    'lab_code': 'SXKL-2023-017',\n"
	"    'timezone': 'Asia/Shanghai',       // TZDIR is the fixture's\n"
	"    'state_dir': 'state',              // relative: the config file's folder\n"
	"    'internal_orgs': ['山西大学', 'Shanxi University'],\n"
	"    'user_ids': 'hmac',\n"
	"    'user_id_key_file': 'key'\n"
	"  },\n"
	"  'platform': {\n"
	"    'url': 'https://share.example.gov.cn/api/',  // the slash is dropped\n"
	"    'token_file': 'token',\n"
	"    'ca_file': 'ca.pem', 'client_cert': 'ca.pem', 'client_key': 'ca.pem',\n"
	"    'upload_interval_s': 120, 'batch_max_records': 500, 'timeout_s': 15,\n"
	"    'proxy': 'http://proxy.lab:3128'\n"
	"  },\n"
	"  'nrii': {\n"
	"    'url': 'http://nrii.example.gov.cn/WS_shanxi/cxf/instru', 'ins_code': '14000000SX0001',\n"
	"    'insecure_http': true, 'codes': 'labels',\n"
	"    'defaults': { 'service_way': '委托共享', 'service_direction': 137, 'subject_income': '国家级',\n"
	"                  'subject_area': '物理', 'comment': '满意', 'service_content': '样品测试' }\n"
	"  },\n"
	"  'buffer': { 'max_mb': 64, 'keep_acked_days': 30 },\n"
	"  'buses': [\n"
	"    { 'id': 'gw1', 'url': 'tcp://[fd00::20]:1502', 'timeout_ms': 800, 'gap_ms': 2 },\n"
	"    { 'id': 'rs485', 'url': 'rtu:/dev/ttyUSB0?baud=19200&parity=e&data=7&stop=2', 'timeout_ms': 300 }\n"
	"  ],\n"
	"  'instruments': [\n"
	"    {\n"
	"      'id': 'SX-INS-000123', 'name': '600 MHz 核磁共振波谱仪', 'inner_id': '2019-0042',\n"
	"      'worth_wan': 560.5, 'rated_hours': 800,\n"
	"      'modbus': {\n"
	"        'bus': 'rs485', 'unit': 17, 'interval_s': 30,\n"
	"        'run_counter': { 'table': 'input', 'address': 100, 'type': 'u32', 'word_order': 'little', 'scale': 0.25 },\n"
	"        'samples_counter': { 'table': 'holding', 'address': 65532, 'type': 'u64' },\n"
	"        'in_use': { 'table': 'holding', 'address': 7, 'type': 'i32', 'above': -12.5 }\n"
	"      },\n"
	"      'logs': [\n"
	"        { 'path': 'logs/usage-*.csv', 'format': 'csv', 'encoding': 'GB18030',\n"
	"          'time_format': '%Y/%m/%d %H:%M', 'max_session_h': 2.5, 'follow_symlinks': true,\n"
	"          'fields': { 'start': '开始时间', 'duration': '时长', 'user': '用户', 'org': '单位', 'samples': '样品数',\n"
	"                      'external': '校外', 'way': '方式', 'fee': '费用', 'project': '课题' } },\n"
	"        { 'path': '/srv/sem/access.log', 'format': 'regex',\n"
	"          'pattern': '^([0-9-]+ [0-9:]+) ([0-9-]+ [0-9:]+) ([^,]+),(.*)$',\n"
	"          'fields': { 'start': 1, 'end': 2, 'user': 3, 'org': 4 } },\n"
	"        { 'path': '/srv/sem/login.log', 'format': 'events', 'encoding': 'UTF8',\n"
	"          'start_pattern': '^(.+) LOGIN ([^ ]+) (.*)$', 'start_fields': { 'time': 1, 'user': 2, 'org': 3 },\n"
	"          'end_pattern': '^(.+) LOGOUT ([^ ]+)$', 'end_fields': { 'time': 1, 'user': 2 } },\n"
	"        { 'path': '/srv/lcms/s.jsonl', 'format': 'jsonl', 'fields': { 'start': 'begin', 'end': 'end' } }\n"
	"      ],\n"
	"      'nrii_profile': { 'cname': '核磁共振波谱仪', 'worth': 560.5 }\n"
	"    },\n"
	"    { 'id': 'SX-INS-000124', 'inner_id': '2020-0107',\n"
	"      'modbus': { 'bus': 'gw1', 'unit': 1,\n"
	"                  'run_counter': { 'table': 'input', 'address': 0 },\n"
	"                  'in_use': { 'table': 'discrete', 'address': 3 } } }\n"
	"  ]\n"
	"}\n";

static struct config *load_ok(const char *src)
{
	size_t marks[MAX_MARKS], n;
	char *text = render(src, marks, &n);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	int rc = load_text(text, &cfg, &errs);
	if (rc != 0)
		print_errors(&errs);
	assert_int_equal(rc, 0);
	assert_int_equal(errs.n, 0);
	assert_non_null(cfg);
	free(text);
	return cfg;
}

static void assert_in_dir(const char *got, const char *name)
{
	char *want = h_path(dir, name);
	assert_string_equal(got, want);
	free(want);
}

static void test_full_config(void **state)
{
	(void)state;
	struct config *cfg = load_ok(full_config);
	char *path = config_path();
	assert_string_equal(cfg->path, path);
	free(path);

	const struct agent_cfg *a = &cfg->agent;
	assert_string_equal(a->id, "sxu-nmr-center");
	assert_string_equal(a->lab_code, "SXKL-2023-017");
	assert_string_equal(a->timezone, "Asia/Shanghai");
	assert_in_dir(a->state_dir, "state");
	assert_int_equal(a->n_internal_orgs, 2);
	assert_string_equal(a->internal_orgs[0], "山西大学");
	assert_string_equal(a->internal_orgs[1], "Shanxi University");
	assert_int_equal(a->user_ids, USER_IDS_HMAC);
	assert_in_dir(a->user_id_key_file, "key");
	assert_int_equal(a->user_id_key_len, 3);
	assert_memory_equal(a->user_id_key, "k3y", 3);

	const struct platform_cfg *p = &cfg->platform;
	assert_true(p->present);
	assert_string_equal(p->url, "https://share.example.gov.cn/api");
	assert_in_dir(p->token_file, "token");
	assert_string_equal(p->token, "secret-token-1");
	assert_in_dir(p->ca_file, "ca.pem");
	assert_in_dir(p->client_cert, "ca.pem");
	assert_in_dir(p->client_key, "ca.pem");
	assert_string_equal(p->proxy, "http://proxy.lab:3128");
	assert_int_equal(p->upload_interval_s, 120);
	assert_int_equal(p->batch_max_records, 500);
	assert_int_equal(p->timeout_s, 15);

	const struct nrii_cfg *n = &cfg->nrii;
	assert_true(n->present);
	assert_string_equal(n->url, "http://nrii.example.gov.cn/WS_shanxi/cxf/instru");
	assert_string_equal(n->ins_code, "14000000SX0001");
	assert_true(n->insecure_http);
	assert_int_equal(n->codes, NRII_CODES_LABELS);
	assert_string_equal(n->service_way, "委托共享");
	assert_int_equal(n->service_direction, 137);
	assert_string_equal(n->subject_income, "国家级");
	assert_string_equal(n->subject_area, "物理");
	assert_string_equal(n->comment, "满意");
	assert_string_equal(n->service_content, "样品测试");

	assert_int_equal(cfg->buffer.max_mb, 64);
	assert_int_equal(cfg->buffer.keep_acked_days, 30);

	assert_int_equal(cfg->n_buses, 2);
	const struct bus_cfg *b = &cfg->buses[0];
	assert_string_equal(b->id, "gw1");
	assert_string_equal(b->url, "tcp://[fd00::20]:1502");
	assert_int_equal(b->kind, BUS_TCP);
	assert_string_equal(b->host, "fd00::20");
	assert_int_equal(b->port, 1502);
	assert_int_equal(b->timeout_ms, 800);
	assert_int_equal(b->gap_ms, 2);
	b = &cfg->buses[1];
	assert_int_equal(b->kind, BUS_RTU);
	assert_string_equal(b->device, "/dev/ttyUSB0");
	assert_int_equal(b->baud, 19200);
	assert_int_equal(b->parity, 'E');
	assert_int_equal(b->data_bits, 7);
	assert_int_equal(b->stop_bits, 2);
	assert_int_equal(b->timeout_ms, 300);
	assert_int_equal(b->gap_ms, 5);

	assert_int_equal(cfg->n_instruments, 2);
	const struct instrument_cfg *in = &cfg->instruments[0];
	assert_string_equal(in->id, "SX-INS-000123");
	assert_string_equal(in->name, "600 MHz 核磁共振波谱仪");
	assert_string_equal(in->inner_id, "2019-0042");
	assert_true(in->has_worth);
	assert_true(in->worth_wan == 560.5);
	assert_int_equal(in->rated_hours, 800);

	const struct modbus_cfg *m = &in->modbus;
	assert_true(m->present);
	assert_string_equal(m->bus, "rs485");
	assert_int_equal(m->bus_index, 1);
	assert_int_equal(m->unit, 17);
	assert_int_equal(m->interval_s, 30);
	assert_true(m->run_counter.present);
	assert_int_equal(m->run_counter.table, MB_TABLE_INPUT);
	assert_int_equal(m->run_counter.address, 100);
	assert_int_equal(m->run_counter.type, MB_TYPE_U32);
	assert_int_equal(m->run_counter.word_order, MB_WORD_LITTLE);
	assert_true(m->run_counter.scale == 0.25);
	assert_false(m->run_counter.has_above);
	assert_int_equal(m->samples_counter.table, MB_TABLE_HOLDING);
	assert_int_equal(m->samples_counter.address, 65532);
	assert_int_equal(m->samples_counter.type, MB_TYPE_U64);
	assert_int_equal(m->samples_counter.word_order, MB_WORD_BIG);
	assert_true(m->samples_counter.scale == 1.0);
	assert_int_equal(m->in_use.type, MB_TYPE_I32);
	assert_true(m->in_use.has_above);
	assert_true(m->in_use.above == -12.5);

	assert_int_equal(in->n_logs, 4);
	const struct log_cfg *l = &in->logs[0];
	assert_in_dir(l->path, "logs/usage-*.csv");
	assert_int_equal(l->format, LOG_FMT_CSV);
	assert_int_equal(l->encoding, LOG_ENC_GBK);
	assert_string_equal(l->time_format, "%Y/%m/%d %H:%M");
	assert_true(l->max_session_h == 2.5);
	assert_true(l->follow_symlinks);
	const char *cols[SF__COUNT] = { [SF_START] = "开始时间", [SF_DURATION] = "时长", [SF_USER] = "用户",
		[SF_ORG] = "单位", [SF_SAMPLES] = "样品数", [SF_EXTERNAL] = "校外", [SF_WAY] = "方式",
		[SF_FEE] = "费用", [SF_PROJECT] = "课题" };
	for (int f = 0; f < SF__COUNT; f++) {
		if (cols[f])
			assert_string_equal(l->fields.name[f], cols[f]);
		else
			assert_null(l->fields.name[f]);
	}
	assert_false(l->re_compiled);

	l = &in->logs[1];
	assert_int_equal(l->format, LOG_FMT_REGEX);
	assert_string_equal(l->path, "/srv/sem/access.log");
	assert_int_equal(l->encoding, LOG_ENC_UTF8);
	assert_true(l->re_compiled);
	assert_int_equal(l->re.re_nsub, 4);
	assert_int_equal(l->fields.group[SF_START], 1);
	assert_int_equal(l->fields.group[SF_END], 2);
	assert_int_equal(l->fields.group[SF_USER], 3);
	assert_int_equal(l->fields.group[SF_ORG], 4);
	assert_int_equal(l->fields.group[SF_SAMPLES], 0);
	regmatch_t mt[5];
	assert_int_equal(regexec(&l->re, "2026-11-02 08:00:00 2026-11-02 10:30:00 张三,太原理工大学", 5, mt, 0), 0);
	assert_int_equal(mt[3].rm_so, 40);

	l = &in->logs[2];
	assert_int_equal(l->format, LOG_FMT_EVENTS);
	assert_int_equal(l->encoding, LOG_ENC_UTF8);
	assert_true(l->start_re_compiled && l->end_re_compiled);
	assert_string_equal(l->start_pattern, "^(.+) LOGIN ([^ ]+) (.*)$");
	assert_string_equal(l->end_pattern, "^(.+) LOGOUT ([^ ]+)$");
	assert_int_equal(l->start_fields.group[SF_TIME], 1);
	assert_int_equal(l->start_fields.group[SF_ORG], 3);
	assert_int_equal(l->end_fields.group[SF_USER], 2);
	assert_int_equal(l->end_fields.group[SF_ORG], 0);
	assert_true(l->max_session_h == 12);

	l = &in->logs[3];
	assert_int_equal(l->format, LOG_FMT_JSONL);
	assert_string_equal(l->fields.name[SF_START], "begin");
	assert_string_equal(l->fields.name[SF_END], "end");

	assert_non_null(in->nrii_profile);
	assert_string_equal(cJSON_GetObjectItem(in->nrii_profile, "cname")->valuestring, "核磁共振波谱仪");
	assert_true(cJSON_GetObjectItem(in->nrii_profile, "worth")->valuedouble == 560.5);

	/* the second instrument takes the defaults */
	in = &cfg->instruments[1];
	assert_string_equal(in->name, "SX-INS-000124");
	assert_int_equal(in->rated_hours, 1400);
	assert_false(in->has_worth);
	assert_int_equal(in->n_logs, 0);
	assert_null(in->nrii_profile);
	assert_int_equal(in->modbus.bus_index, 0);
	assert_int_equal(in->modbus.interval_s, 10);
	assert_int_equal(in->modbus.run_counter.type, MB_TYPE_U16);
	assert_int_equal(in->modbus.run_counter.address, 0);
	assert_false(in->modbus.samples_counter.present);
	assert_int_equal(in->modbus.in_use.table, MB_TABLE_DISCRETE);
	assert_int_equal(in->modbus.in_use.type, MB_TYPE_BIT);
	assert_false(in->modbus.in_use.has_above);

	assert_ptr_equal(config_instrument(cfg, "SX-INS-000124"), in);
	assert_null(config_instrument(cfg, "SX-INS-999"));
	config_free(cfg);
}

/* The drivers' part (issue #14): buses, per instrument its id, Modbus part and logs, the names of
 * the files no log may read, and nothing else (the token and keys have no field there). */
static void test_source_conf(void **state)
{
	(void)state;
	struct config *cfg = load_ok(full_config);
	struct source_conf *sc = config_source_conf(cfg);
	assert_non_null(sc);
	assert_int_equal(sc->n_buses, cfg->n_buses);
	assert_ptr_equal(sc->buses, cfg->buses);
	assert_int_equal(sc->n_instruments, cfg->n_instruments);
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		assert_string_equal(sc->instruments[i].id, cfg->instruments[i].id);
		assert_ptr_equal(sc->instruments[i].modbus, &cfg->instruments[i].modbus);
		assert_ptr_equal(sc->instruments[i].logs, cfg->instruments[i].logs);
		assert_int_equal(sc->instruments[i].n_logs, cfg->instruments[i].n_logs);
	}
	/* token_file, user_id_key_file, client_key: their names, so that no log leads to them */
	assert_int_equal(sc->n_never_read, 3);
	assert_string_equal(sc->never_read[0], cfg->platform.token_file);
	assert_string_equal(sc->never_read[1], cfg->agent.user_id_key_file);
	assert_string_equal(sc->never_read[2], cfg->platform.client_key);
	assert_string_equal(sc->state_dir, cfg->agent.state_dir);
	source_conf_free(sc);
	config_free(cfg);
}

static void test_defaults(void **state)
{
	(void)state;
	struct config *cfg = load_ok(AGENT PLATFORM
		" 'buses': [{'id': 'gw', 'url': 'tcp://plc.lab'}, {'id': 'rs', 'url': 'rtu:/dev/ttyS1'}],\n"
		" 'instruments': [{'id': 'I1', 'logs': [" CSV "]},\n"
		"   {'id': 'I2', 'modbus': {'bus': 'rs', 'unit': 2, 'run_counter': {'table': 'holding', 'address': 9},"
		"    'in_use': {'table': 'coil', 'address': 1, 'word_order': 'little'}}}]}\n");

	assert_string_equal(cfg->agent.state_dir, "/var/lib/labshare-agent");
	assert_int_equal(cfg->agent.n_internal_orgs, 0);
	assert_int_equal(cfg->agent.user_ids, USER_IDS_PLAIN);
	assert_null(cfg->agent.user_id_key);
	assert_int_equal(cfg->platform.upload_interval_s, 60);
	assert_int_equal(cfg->platform.batch_max_records, 1000);
	assert_int_equal(cfg->platform.timeout_s, 30);
	assert_null(cfg->platform.ca_file);
	assert_null(cfg->platform.client_cert);
	assert_null(cfg->platform.client_key);
	assert_null(cfg->platform.proxy);
	assert_false(cfg->nrii.present);
	assert_int_equal(cfg->buffer.max_mb, 1024);
	assert_int_equal(cfg->buffer.keep_acked_days, 400);

	const struct bus_cfg *b = &cfg->buses[0];
	assert_string_equal(b->host, "plc.lab");
	assert_int_equal(b->port, 502);
	assert_int_equal(b->timeout_ms, 500);
	assert_int_equal(b->gap_ms, 0);
	b = &cfg->buses[1];
	assert_string_equal(b->device, "/dev/ttyS1");
	assert_int_equal(b->baud, 9600);
	assert_int_equal(b->parity, 'N');
	assert_int_equal(b->data_bits, 8);
	assert_int_equal(b->stop_bits, 1);
	assert_int_equal(b->timeout_ms, 500);
	assert_int_equal(b->gap_ms, 5);

	const struct instrument_cfg *in = &cfg->instruments[0];
	assert_string_equal(in->name, "I1");
	assert_null(in->inner_id);
	assert_int_equal(in->rated_hours, 1400);
	assert_false(in->modbus.present);
	const struct log_cfg *l = &in->logs[0];
	assert_int_equal(l->encoding, LOG_ENC_UTF8);
	assert_null(l->time_format);
	assert_true(l->max_session_h == 12);
	assert_false(l->follow_symlinks);
	assert_in_dir(l->path, "x.csv");

	const struct modbus_cfg *m = &cfg->instruments[1].modbus;
	assert_int_equal(m->bus_index, 1);
	assert_int_equal(m->interval_s, 10);
	assert_int_equal(m->run_counter.type, MB_TYPE_U16);
	assert_int_equal(m->run_counter.word_order, MB_WORD_BIG);
	assert_true(m->run_counter.scale == 1.0);
	assert_int_equal(m->in_use.type, MB_TYPE_BIT);
	assert_int_equal(m->in_use.word_order, MB_WORD_LITTLE);  /* accepted, meaningless on a bit */
	config_free(cfg);
}

static void test_nrii_defaults(void **state)
{
	(void)state;
	struct config *cfg = load_ok(AGENT NRII("") INSTR_N "}\n");
	assert_false(cfg->platform.present);
	assert_null(cfg->platform.url);
	const struct nrii_cfg *n = &cfg->nrii;
	assert_true(n->present);
	assert_false(n->insecure_http);
	assert_int_equal(n->codes, NRII_CODES_INT);
	assert_string_equal(n->service_way, "占用共享");
	assert_int_equal(n->service_direction, 135);
	assert_string_equal(n->subject_income, "其他");
	assert_string_equal(n->subject_area, "化学");
	assert_string_equal(n->comment, "基本满意");
	assert_string_equal(n->service_content, "仪器测试");
	assert_string_equal(cfg->instruments[0].inner_id, "7");
	config_free(cfg);
}

static void test_token_trimmed(void **state)
{
	(void)state;
	char *tok = h_path(dir, "token_ws"), *key = h_path(dir, "key_crlf");
	assert_int_equal(h_write_file(tok, "  tok-123 \r\n\n", (size_t)-1, 0600), 0);
	assert_int_equal(h_write_file(key, " k y\r\n", (size_t)-1, 0400), 0);
	struct config *cfg = load_ok("{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': 'UTC',"
				     " 'user_ids': 'hmac', 'user_id_key_file': 'key_crlf'},\n"
				     " 'platform': {'url': 'https://p.example/api', 'token_file': 'token_ws'},\n"
				     INSTR "}\n");
	assert_string_equal(cfg->platform.token, "tok-123");
	/* the key is bytes: only the line end goes */
	assert_int_equal(cfg->agent.user_id_key_len, 4);
	assert_memory_equal(cfg->agent.user_id_key, " k y", 4);
	config_free(cfg);
	free(tok);
	free(key);
}

static void test_loopback_http_allowed(void **state)
{
	(void)state;
	static const char *const urls[][2] = {
		{ "http://127.0.0.1:8080/api/", "http://127.0.0.1:8080/api" },
		{ "http://127.8.9.10", "http://127.8.9.10" },
		{ "http://[::1]:8443/", "http://[::1]:8443" },
		{ "http://localhost/labshare", "http://localhost/labshare" },
		{ "HTTPS://share.example.gov.cn:8443//", "HTTPS://share.example.gov.cn:8443" },
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char *text = h_strdupf("%s 'platform': {'url': '%s', 'token_file': 'token'},\n%s}\n",
				       AGENT, urls[i][0], INSTR);
		struct config *cfg = load_ok(text);
		assert_string_equal(cfg->platform.url, urls[i][1]);
		config_free(cfg);
		free(text);
	}
}

static void test_token_modes(void **state)
{
	(void)state;
	/* 0600 and 0400 are the agent's alone; anything for group or others is refused above */
	struct config *cfg = load_ok(PLATFORM_WITH("'token_file': 'token400'"));
	assert_string_equal(cfg->platform.token, "secret-token-1");
	config_free(cfg);
}

static void test_missing_file(void **state)
{
	(void)state;
	char *path = h_path(dir, "no-such.json");
	struct config *cfg = (struct config *)1;
	struct config_errors errs = { 0 };
	assert_int_equal(config_load(path, &cfg, &errs), -ENOENT);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	char *want = h_strdupf("%s: No such file or directory", path);
	assert_string_equal(errs.msg[0], want);
	config_errors_clear(&errs);
	assert_int_equal(errs.n, 0);
	/* errs may be NULL */
	assert_int_equal(config_load(path, &cfg, NULL), -ENOENT);
	assert_int_equal(config_load(dir, &cfg, &errs), -EISDIR);
	assert_int_equal(errs.n, 1);
	free(want);
	want = h_strdupf("%s: Is a directory", dir);
	assert_string_equal(errs.msg[0], want);
	config_errors_clear(&errs);
	free(want);
	free(path);
}

static void test_parse_string(void **state)
{
	(void)state;
	char *tok = h_path(dir, "token");
	char *good = h_strdupf("{\"agent\": {\"id\": \"a1\", \"lab_code\": \"L\", \"timezone\": \"UTC\"},\n"
			       " \"platform\": {\"url\": \"https://p\", \"token_file\": \"%s\"},\n"
			       " \"instruments\": [{\"id\": \"I1\", \"modbus\": {\"bus\": \"b\", \"unit\": 1,"
			       " \"in_use\": {\"table\": \"coil\", \"address\": 0}}}],\n"
			       " \"buses\": [{\"id\": \"b\", \"url\": \"tcp://[::1]\"}]}\n"
			       "garbage past len", tok);
	size_t len = strlen(good) - strlen("garbage past len");
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	assert_int_equal(config_parse("inline.json", good, len, &cfg, &errs), 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(cfg->path, "inline.json");
	assert_string_equal(cfg->platform.token_file, tok);
	assert_string_equal(cfg->buses[0].host, "::1");
	assert_int_equal(cfg->buses[0].port, 502);
	config_free(cfg);

	/* messages are named after the name given; errs collects across calls until cleared */
	const char *bad = "{\"agent\": {\"id\": \"a1\"}}";
	assert_int_equal(config_parse("inline.json", bad, strlen(bad), &cfg, &errs), -EINVAL);
	assert_null(cfg);
	assert_int_equal(errs.n, 4);
	assert_string_equal(errs.msg[0], "inline.json:1:1: platform: missing required key (or \"nrii\")");
	assert_string_equal(errs.msg[1], "inline.json:1:1: instruments: missing required key");
	assert_string_equal(errs.msg[2], "inline.json:1:11: agent.lab_code: missing required key");
	assert_string_equal(errs.msg[3], "inline.json:1:11: agent.timezone: missing required key");
	config_errors_clear(&errs);
	config_errors_clear(NULL);
	config_free(NULL);
	free(good);
	free(tok);
}

/* A generated file can hold thousands of mistakes: 200 are listed, the rest counted. */
static void test_many_problems(void **state)
{
	(void)state;
	size_t cap = 64 * 1024, used = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	used += (size_t)snprintf(text, cap, "{\"agent\": {");
	for (int i = 0; i < 300; i++)
		used += (size_t)snprintf(text + used, cap - used, "\"k%d\": 0, ", i);
	snprintf(text + used, cap - used, "\"id\": \"a1\", \"lab_code\": \"L\", \"timezone\": \"UTC\"},"
		 " \"nrii\": {\"url\": \"https://n\", \"ins_code\": \"c\"}, \"instruments\": [{\"id\": \"I\","
		 " \"inner_id\": \"1\", \"logs\": [{\"path\": \"p\", \"format\": \"jsonl\","
		 " \"fields\": {\"start\": \"a\", \"end\": \"b\"}}]}]}");
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	assert_int_equal(config_parse("gen.json", text, strlen(text), &cfg, &errs), -EINVAL);
	assert_int_equal(errs.n, 201);
	assert_string_equal(errs.msg[0], "gen.json:1:12: agent.k0: unknown key");
	assert_string_equal(errs.msg[200], "gen.json: 100 more problems not shown");
	config_errors_clear(&errs);
	free(text);
}

static void test_system_zoneinfo(void **state)
{
	(void)state;
	if (access("/usr/share/zoneinfo/Asia/Shanghai", R_OK) != 0)
		skip();
	const char *tzdir = getenv("TZDIR");
	assert_non_null(tzdir);
	char *saved = h_strdupf("%s", tzdir);
	unsetenv("TZDIR");
	struct config *cfg = load_ok("{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': 'Asia/Shanghai'},\n"
				     PLATFORM INSTR "}\n");
	config_free(cfg);
	struct config_errors errs = { 0 };
	size_t marks[MAX_MARKS], n;
	char *text = render("{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': 'Bad'},\n"
			    PLATFORM INSTR "}\n", marks, &n);
	assert_int_equal(load_text(text, &cfg, &errs), -EINVAL);  /* the fixture's "Bad" is not there */
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.msg[0], "(no TZif file under /usr/share/zoneinfo)"));
	config_errors_clear(&errs);
	setenv("TZDIR", saved, 1);
	free(saved);
	free(text);
}

/* The shipped example must stay valid: its /etc/labshare-agent files are made in the fixture. */
static void test_example_config(void **state)
{
	(void)state;
	char *example = h_read_file("config/agent.example.json", NULL);
	if (!example)
		skip();  /* not run from the source tree */
	char *prefix = h_strdupf("%s/", dir);
	size_t n = 0;
	for (const char *s = example; (s = strstr(s, "/etc/labshare-agent/")); s++)
		n++;
	size_t cap = strlen(example) + n * strlen(prefix) + 1, used = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (const char *s = example;;) {
		const char *at = strstr(s, "/etc/labshare-agent/");
		size_t k = at ? (size_t)(at - s) : strlen(s);
		memcpy(text + used, s, k);
		used += k;
		if (!at)
			break;
		memcpy(text + used, prefix, strlen(prefix));
		used += strlen(prefix);
		s = at + strlen("/etc/labshare-agent/");
	}
	text[used] = '\0';

	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	int rc = load_text(text, &cfg, &errs);
	print_errors(&errs);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->agent.id, "sxu-nmr-center");
	assert_int_equal(cfg->agent.user_ids, USER_IDS_HMAC);
	assert_true(cfg->platform.present && cfg->nrii.present);
	assert_int_equal(cfg->n_buses, 2);
	assert_int_equal(cfg->n_instruments, 4);
	assert_true(cfg->instruments[1].modbus.in_use.has_above);
	assert_int_equal(cfg->instruments[2].logs[1].format, LOG_FMT_EVENTS);
	/* the metered one: the profile's points, in use from power */
	const struct modbus_cfg *m = &cfg->instruments[3].modbus;
	assert_string_equal(m->profile, "chint-ddsu666");
	assert_true(m->power.present && m->energy.present && m->voltage.present && m->frequency.present);
	assert_true(m->hyst.present && !m->in_use.present);
	assert_true(m->hyst.above_w == 150 && m->hyst.below_w == 60);
	config_free(cfg);
	free(text);
	free(prefix);
	free(example);
}

/* ---- fixture ---- */

static void fixture_file(const char *name, const char *data, int mode)
{
	char *p = h_path(dir, name);
	assert_int_equal(h_write_file(p, data, (size_t)-1, mode), 0);
	free(p);
}

static int setup(void **state)
{
	(void)state;
	dir = h_mkdtemp("test-config");
	if (!dir)
		return -1;
	fixture_file("token", "secret-token-1\n", 0600);
	fixture_file("token400", "secret-token-1\n", 0400);
	fixture_file("token640", "secret-token-1\n", 0640);
	fixture_file("token604", "secret-token-1\n", 0604);
	fixture_file("token620", "secret-token-1\n", 0620);
	fixture_file("token_empty", " \n", 0600);
	fixture_file("token_lines", "secret\ntoken\n", 0600);
	fixture_file("key", "k3y\n", 0600);
	fixture_file("key_empty", "\n", 0600);
	fixture_file("key644", "k3y\n", 0644);
	fixture_file("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	fixture_file("user-id.key", "example-key\n", 0600);

	/* A zoneinfo of our own: the loader only checks for a TZif file. */
	char *zi = h_path(dir, "zoneinfo"), *asia = h_path(zi, "Asia");
	if (mkdir(zi, 0755) != 0 || mkdir(asia, 0755) != 0)
		return -1;
	fixture_file("zoneinfo/UTC", "TZif2\n", 0644);
	fixture_file("zoneinfo/Asia/Shanghai", "TZif2\n", 0644);
	fixture_file("zoneinfo/Bad", "not a zone\n", 0644);
	setenv("TZDIR", zi, 1);
	free(asia);
	free(zi);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_rmtree(dir);
	free(dir);
	return 0;
}

int main(void)
{
	size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
	struct CMUnitTest *bad = calloc(n, sizeof(*bad));
	if (!bad)
		return 1;
	for (size_t i = 0; i < n; i++)
		bad[i] = (struct CMUnitTest){ .name = bad_cases[i].name, .test_func = test_bad,
					      .initial_state = (void *)&bad_cases[i] };

	const struct CMUnitTest good[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_source_conf),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_nrii_defaults),
		cmocka_unit_test(test_token_trimmed),
		cmocka_unit_test(test_token_modes),
		cmocka_unit_test(test_loopback_http_allowed),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_parse_string),
		cmocka_unit_test(test_many_problems),
		cmocka_unit_test(test_system_zoneinfo),
		cmocka_unit_test(test_example_config),
	};
	int failed = _cmocka_run_group_tests("config_bad", bad, n, setup, teardown);
	failed += cmocka_run_group_tests_name("config_good", good, setup, teardown);
	free(bad);
	return failed != 0;
}
