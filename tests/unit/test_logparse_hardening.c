/* test_logparse_hardening.c — the parser against hostile or broken lines (issue 13):
 * implausible sessions and numbers out of range are malformed, reasons never quote the line,
 * a BOM on a data line, bytes that are not UTF-8. */
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

#include "clock.h"
#include "encoding.h"
#include "harness.h"
#include "logparse.h"
#include "plausible.h"
#include "timeutil.h"

#include "test_logparse_env.h"

/* ---- hardening (issue 13) ---- */

/* The plausibility rule, table-driven: each case names its expected reason (NULL: passes). */
static void test_plausible_session(void **state)
{
	(void)state;
	const int64_t now = T0;
	static const struct {
		int64_t start, end, samples;
		const char *why;
	} cases[] = {
		{ T0, T0 + 3600, 3, NULL },
		{ T0, T0 + 3600, -1, NULL },                     /* samples not given */
		{ T0, T0, 0, NULL },                             /* one instant (a login mark) */
		{ 946684800, 946684800 + 60, 0, NULL },          /* 2000-01-01T00:00:00Z itself */
		{ T0 - 31 * 86400, T0, 1000000, NULL },          /* the limits themselves */
		{ T0 + 86400, T0 + 86400, 0, NULL },             /* 24 h ahead exactly */
		{ 0, 3600, 0, "start before 2000-01-01" },       /* the reset instrument clock */
		{ 946684799, 946684800 + 60, 0, "start before 2000-01-01" },
		{ -86400, 3600, 0, "start before 2000-01-01" },  /* before 1970 */
		{ T0, INT64_MIN, 0, "end before 2000-01-01" },
		{ T0 + 86401, T0 + 90000, 0, "start more than 24 h ahead of the agent's clock" },
		{ T0, T0 + 86401, 0, "end more than 24 h ahead of the agent's clock" },
		{ T0, INT64_MAX, 0, "end more than 24 h ahead of the agent's clock" },
		{ T0, T0 - 1, 0, "end before start" },
		{ T0 - 40 * 86400, T0 - 40 * 86400 + 31 * 86400 + 1, 0, "session longer than 31 days" },
		{ T0, T0 + 60, 1000001, "samples outside 0..1000000" },
		{ T0, T0 + 60, -2, "samples outside 0..1000000" },
		{ T0, T0 + 60, INT64_MAX, "samples outside 0..1000000" },
		{ T0, T0 + 60, INT64_MIN, "samples outside 0..1000000" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = "unset";
		int r = plausible_session(cases[i].start, cases[i].end, cases[i].samples, now, &why);
		if (!cases[i].why) {
			if (r != 0)
				fail_msg("case %zu: refused: %s", i, why);
			continue;
		}
		if (r != -EINVAL || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r, r ? why : "", cases[i].why);
	}
	assert_int_equal(plausible_session(0, 0, 0, now, NULL), -EINVAL); /* why may be NULL */
}

struct bad_line {
	const char *line;
	const char *why;   /* a prefix of the reason */
};

static void expect_malformed(struct lp_parser *p, struct lp_csv_cols *cols, const struct bad_line *v,
			     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct lp_result r;
		parse(p, cols, v[i].line, &r);
		if (r.kind != LP_MALFORMED || strncmp(r.why, v[i].why, strlen(v[i].why)) != 0)
			fail_msg("\"%s\": kind %d, why \"%s\", want \"%s…\"", v[i].line, r.kind, r.why,
				 v[i].why);
	}
}

/* A time before 2000 or a day ahead, samples past a million, a month-long session: malformed
 * with the reason named, at the agent's clock. */
static void test_implausible_values(void **state)
{
	(void)state;
	struct fake_clock fc;
	fake_clock_install(&fc, T0 + 7200);
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_parser *p = csv_parser(&c, &cols);
	struct lp_result r;
	static const struct bad_line bad[] = {
		{ "1970-01-01 08:00:00,1970-01-01 09:00:00,a,o,1,", "start before 2000-01-01" },
		{ "1999-12-31 23:59:59,2026-11-02 09:00:00,a,o,1,", "start before 2000-01-01" },
		{ "2026-11-04 08:00:00,2026-11-04 09:00:00,a,o,1,", "start more than 24 h ahead" },
		{ "2026-11-02 08:00:00,2026-11-04 09:00:00,a,o,1,", "end more than 24 h ahead" },
		{ "2026-09-02 08:00:00,2026-10-04 09:00:00,a,o,1,", "session longer than 31 days" },
		{ "2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,1000001,", "samples outside 0..1000000" },
		{ "2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,9223372036854775807,", "samples outside" },
	};
	expect_malformed(p, &cols, bad, sizeof(bad) / sizeof(bad[0]));
	parse(p, &cols, "2026-11-03 09:00:00,2026-11-03 09:30:00,a,o,1000000,", &r);
	assert_int_equal(r.kind, LP_SESSION); /* within a day ahead, a million samples */
	lp_parser_free(p);

	/* events: a login from 1970 is malformed, not an open session */
	events_cfg(&c, true);
	p = lp_parser_new(&c);
	parse(p, NULL, "1970-01-01 08:00:00 LOGIN user=a org=o", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_string_equal(r.why, "start before 2000-01-01");
	lp_parser_free(p);
	cfg_clear(&c);
	clock_set(NULL);
}

/* Numbers that don't fit an integer (1e300, nan, -1e20) are checked before any cast. */
static void test_out_of_range_numbers(void **state)
{
	(void)state;
	struct fake_clock fc;
	fake_clock_install(&fc, T0 + 7200);
	struct log_cfg c;
	jsonl_cfg(&c);
	c.fields.name[SF_SAMPLES] = (char *)"n";
	struct lp_parser *p = lp_parser_new(&c);
	static const struct bad_line bad[] = {
		{ "{\"start\":1793577600,\"end\":1793581200,\"n\":1e300}", "bad samples" },
		{ "{\"start\":1793577600,\"end\":1793581200,\"n\":-1e20}", "bad samples" },
		{ "{\"start\":1793577600,\"end\":1793581200,\"n\":\"nan\"}", "bad samples" },
		{ "{\"start\":1793577600,\"end\":1793581200,\"n\":1e400}", "bad samples" },
		{ "{\"start\":1e300,\"end\":1793581200}", "bad start time" },
		{ "{\"start\":-1e20,\"end\":1793581200}", "bad start time" },
		{ "{\"start\":1793577600,\"end\":1e400}", "bad end time" },
	};
	expect_malformed(p, NULL, bad, sizeof(bad) / sizeof(bad[0]));
	lp_parser_free(p);

	c.fields.name[SF_END] = NULL;
	c.fields.name[SF_DURATION] = (char *)"min";
	p = lp_parser_new(&c);
	static const struct bad_line bad_duration[] = {
		{ "{\"start\":1793577600,\"min\":1e300}", "bad duration" },
		{ "{\"start\":1793577600,\"min\":-1e20}", "bad duration" },
		{ "{\"start\":1793577600,\"min\":\"nan\"}", "bad duration" },
		{ "{\"start\":1793577600,\"min\":\"inf\"}", "bad duration" },
		{ "{\"start\":1793577600,\"min\":44641}", "bad duration" }, /* 31 days and a minute */
	};
	expect_malformed(p, NULL, bad_duration, sizeof(bad_duration) / sizeof(bad_duration[0]));
	struct lp_result r;
	parse(p, NULL, "{\"start\":1793577600,\"min\":90}", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.end, T0 + 5400);
	lp_parser_free(p);

	/* An events cursor with numbers no int64 holds is refused, not cast. */
	struct lp_pairs *pp = lp_pairs_new(12);
	static const char *const cursors[] = {
		"[{\"key\":\"a\",\"keyed\":true,\"start\":1e300,\"samples\":-1,\"external\":-1}]",
		"[{\"key\":\"a\",\"keyed\":true,\"start\":1793577600,\"samples\":1e400,\"external\":-1}]",
		"[{\"key\":\"a\",\"keyed\":true,\"start\":-1e20,\"samples\":-1,\"external\":-1}]",
	};
	for (size_t i = 0; i < sizeof(cursors) / sizeof(cursors[0]); i++) {
		cJSON *arr = cJSON_Parse(cursors[i]);
		assert_non_null(arr);
		assert_int_equal(lp_pairs_from_json(pp, arr), -EINVAL);
		assert_int_equal(lp_pairs_count(pp), 0);
		cJSON_Delete(arr);
	}
	lp_pairs_free(pp);
	clock_set(NULL);
}

/* A reason is sealed in a log_malformed event: it never quotes the line's text. */
static void test_reasons_never_quote_the_line(void **state)
{
	(void)state;
	static const char secret[] = "ghp_SECRETtoken0123456789";
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_parser *p = csv_parser(&c, &cols);
	struct lp_result r;
	char *lines[] = {
		h_strdupf("%s,2026-11-02 09:00:00,a,o,1,", secret),
		h_strdupf("2026-11-02 08:00:00,%s,a,o,1,", secret),
		h_strdupf("2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,%s,", secret),
		h_strdupf("2026-11-02 08:00:00,2026-11-02 09:00:00,a,o,1,%s", secret),
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		parse(p, &cols, lines[i], &r);
		assert_int_equal(r.kind, LP_MALFORMED);
		if (strstr(r.why, "SECRET"))
			fail_msg("line %zu: the reason quotes the line: %s", i, r.why);
		free(lines[i]);
	}
	lp_parser_free(p);

	c.fields.name[SF_END] = NULL;
	c.fields.name[SF_DURATION] = (char *)"结束时间";
	p = csv_parser(&c, &cols);
	char *l = h_strdupf("2026-11-02 08:00:00,%s,a,o,1,", secret);
	parse(p, &cols, l, &r);
	free(l);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_null(strstr(r.why, "SECRET"));
	lp_parser_free(p);

	events_cfg(&c, true);
	p = lp_parser_new(&c);
	parse(p, NULL, "2026-11-02 99:00:00 LOGIN user=ghp_SECRET org=o", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_null(strstr(r.why, "SECRET"));
	assert_null(strstr(r.why, "99:00"));
	lp_parser_free(p);
	cfg_clear(&c);
}

/* A byte-order mark where any line begins (files concatenated, an editor's save) is dropped. */
static void test_bom_on_data_lines(void **state)
{
	(void)state;
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_result r;
	struct lp_parser *p = csv_parser_hdr(&c, &cols, "\xef\xbb\xbf" CSV_HDR, &r);
	assert_int_equal(r.why[0], '\0');
	parse(p, &cols, "\xef\xbb\xbf" "2026-11-02 08:00:00,2026-11-02 09:00:00,张三,山西大学,2,否", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	assert_string_equal(r.s.user, "张三");
	lp_parser_free(p);

	jsonl_cfg(&c);
	p = lp_parser_new(&c);
	parse(p, NULL, "\xef\xbb\xbf{\"start\":1793577600,\"end\":1793581200}", &r);
	assert_int_equal(r.kind, LP_SESSION);
	lp_parser_free(p);

	/* GB18030's own mark (U+FEFF encoded as 84 31 95 33) likewise, in a gbk log */
	csv_cfg(&c);
	c.encoding = LOG_ENC_GBK;
	p = csv_parser(&c, &cols);
	char buf[512];
	memcpy(buf, "\x84\x31\x95\x33", 4);
	size_t n = 4 + h_to_gbk("2026-11-02 08:00:00,2026-11-02 09:00:00,王,山西大学,2,否", buf + 4, sizeof(buf) - 4);
	lp_parse(p, &cols, buf, n, arena, &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_string_equal(r.s.user, "王");
	lp_parser_free(p);
}

/* Nothing that is not UTF-8 is ever a session: bad bytes, bad GBK, a regex group that ends
 * inside a character. */
static void test_not_utf8_is_malformed(void **state)
{
	(void)state;
	struct log_cfg c;
	jsonl_cfg(&c);
	c.fields.name[SF_USER] = (char *)"user";
	struct lp_parser *p = lp_parser_new(&c);
	struct lp_result r;
	parse(p, NULL, "{\"start\":1793577600,\"end\":1793581200,\"user\":\"\xd5\xc5\xc8\xfd\"}", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_string_equal(r.why, "not valid UTF-8");
	lp_parser_free(p);

	csv_cfg(&c);
	c.encoding = LOG_ENC_GBK;
	struct lp_csv_cols cols;
	p = csv_parser(&c, &cols);
	static const char bad[] = "2026-11-02 08:00:00,2026-11-02 09:00:00,\xff\xff,o,1,0";
	lp_parse(p, &cols, bad, strlen(bad), arena, &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_string_equal(r.why, "not valid GBK");
	lp_parser_free(p);

	/* In the C locale "." is one byte: the group holds half of 张. */
	memset(&c, 0, sizeof(c));
	c.format = LOG_FMT_REGEX;
	assert_int_equal(regcomp(&c.re, "^U=(.).* S=([^ ]+) E=([^ ]+)$", REG_EXTENDED), 0);
	c.re_compiled = true;
	c.fields.group[SF_USER] = 1;
	c.fields.group[SF_START] = 2;
	c.fields.group[SF_END] = 3;
	p = lp_parser_new(&c);
	parse(p, NULL, "U=张三 S=2026-11-02T08:00:00 E=2026-11-02T09:00:00", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_string_equal(r.why, "not valid UTF-8");
	parse(p, NULL, "U=a S=2026-11-02T08:00:00 E=2026-11-02T09:00:00", &r);
	assert_int_equal(r.kind, LP_SESSION);
	lp_parser_free(p);
	cfg_clear(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plausible_session),
		cmocka_unit_test(test_implausible_values),
		cmocka_unit_test(test_out_of_range_numbers),
		cmocka_unit_test(test_reasons_never_quote_the_line),
		cmocka_unit_test(test_bom_on_data_lines),
		cmocka_unit_test(test_not_utf8_is_malformed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
