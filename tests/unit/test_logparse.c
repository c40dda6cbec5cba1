/* test_logparse.c — the log line rules without files: framing, CSV quoting and headers, JSON
 * Lines, regex, login/logout pairing, times, encodings. */
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

/* ---- framing ---- */

static void test_frame_lines(void **state)
{
	(void)state;
	struct lp_frame f;
	static const struct {
		bool csv;
		const char *in;
		bool eof;
		int ret;
		size_t len, consumed;
		unsigned lines;
		bool bad_quote;
	} cases[] = {
		{ false, "abc\ndef\n", false, 1, 3, 4, 1, false },
		{ false, "abc\r\ndef", false, 1, 3, 5, 1, false },
		{ false, "abc", false, 0, 0, 0, 0, false },          /* a partial line waits */
		{ false, "abc\r", true, 1, 3, 4, 1, false },         /* at a file's very end it is a line */
		{ false, "", true, 0, 0, 0, 0, false },
		{ true, "a,b\nc\n", false, 1, 3, 4, 1, false },
		{ true, "a,\"b\nc\",d\r\ne\n", false, 1, 9, 11, 2, false },
		{ true, "a,\"b\"\"\nc\"\n", false, 1, 9, 10, 2, false },
		{ true, "a,\"b\n", false, 0, 0, 0, 0, false },        /* quote still open: more to come */
		{ true, "a,\"b\"", false, 0, 0, 0, 0, false },       /* "" or a closing quote? wait */
		{ true, "a,5\" tube,c\nx\n", false, 1, 11, 12, 1, false }, /* a quote inside a field is text */
		{ true, "a,\"open\nx\n", true, 1, 7, 8, 1, true },   /* never closed: first line alone */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = lp_frame(cases[i].csv, cases[i].in, strlen(cases[i].in), cases[i].eof, &f);
		if (r != cases[i].ret || (r && (f.len != cases[i].len || f.consumed != cases[i].consumed ||
						f.lines != cases[i].lines || f.bad_quote != cases[i].bad_quote)))
			fail_msg("case %zu: ret %d len %zu consumed %zu lines %u bad %d", i, r, f.len,
				 f.consumed, f.lines, f.bad_quote);
	}
}

static void test_frame_quote_span_cap(void **state)
{
	(void)state;
	char buf[512] = "a,\"never closed";
	size_t n = strlen(buf);
	for (int i = 0; i < LP_CSV_MAX_SPAN + 2; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\nx,y");
	struct lp_frame f;
	assert_int_equal(lp_frame(true, buf, strlen(buf), false, &f), 1);
	assert_true(f.bad_quote);
	assert_int_equal(f.lines, 1);
	assert_int_equal(f.consumed, strlen("a,\"never closed") + 1);
}

/* ---- CSV ---- */

static void test_csv_header_and_rows(void **state)
{
	(void)state;
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_result r;
	struct lp_parser *p = csv_parser_hdr(&c, &cols, "\xef\xbb\xbf编号,开始时间,结束时间,用户,单位,样品数,备注", &r);
	assert_true(strstr(r.why, "对外") != NULL); /* an optional column missing is reported */
	assert_int_equal(cols.col[SF_START], 1);
	assert_int_equal(cols.col[SF_SAMPLES], 5);
	assert_int_equal(cols.col[SF_EXTERNAL], -1);

	parse(p, &cols, "1,2026-11-02 08:00:00,2026-11-02 10:30:00,张三,\"太原理工大学, 化学院\",3,\"说 \"\"好\"\"\"\r", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	assert_int_equal(r.s.end, T0 + 9000);
	assert_string_equal(r.s.user, "张三");
	assert_string_equal(r.s.org, "太原理工大学, 化学院");
	assert_int_equal(r.s.samples, 3);
	assert_int_equal(r.s.external, -1);

	/* Midnight: the session keeps both days; the core splits it. */
	parse(p, &cols, "2,2026-11-02 23:30:00,2026-11-03 01:00:00,李四,,,", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.end - r.s.start, 5400);
	assert_null(r.s.org);
	assert_int_equal(r.s.samples, -1);

	parse(p, &cols, "  ", &r);
	assert_int_equal(r.kind, LP_SKIP);

	/* A header written again mid-file is learnt again, not malformed. */
	parse(p, &cols, CSV_HDR, &r);
	assert_int_equal(r.kind, LP_HEADER);
	assert_int_equal(r.why[0], '\0');
	assert_int_equal(cols.col[SF_START], 0);
	parse(p, &cols, "2026-11-02 08:00:00,2026-11-02 09:00:00,u,o,1,是", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.external, 1);
	lp_parser_free(p);
}

static void test_csv_malformed(void **state)
{
	(void)state;
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_parser *p = csv_parser(&c, &cols);
	struct lp_result r;
	static const struct {
		const char *line;
		const char *why;
	} bad[] = {
		{ "2026-11-02 08:00:00,2026-11-02 07:00:00,u,o,1,是", "end not after start" },
		{ "2026-11-02 08:00:00,2026-11-02 08:00:00,u,o,1,是", "end not after start" },
		{ "2026-13-02 08:00:00,2026-11-02 09:00:00,u,o,1,是", "bad start time" },
		{ "2026-02-30 08:00:00,2026-03-02 09:00:00,u,o,1,是", "bad start time" },
		{ "2026-11-02 08:00:00,,u,o,1,是", "no end time" },
		{ ",2026-11-02 09:00:00,u,o,1,是", "no start time" },
		{ "2026-11-02 08:00:00,2026-11-02 09:00:00,u,o,三,是", "bad samples" },
		{ "2026-11-02 08:00:00,2026-11-02 09:00:00,u,o,1,也许", "bad external" },
		{ "2026-11-02 08:00:00,\"2026-11-02 09:00:00\"x,u,o,1,是", "after the closing quote" },
		{ "2026-11-02 08:00:00,\"2026-11-02 09:00:00,u,o,1,是", "unterminated quote" },
		{ "2026-11-02 08:00:00", "columns" },
		{ "2025-11-02 08:00:00,2026-11-02 09:00:00,u,o,1,是", "longer than 31 days" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(p, &cols, bad[i].line, &r);
		if (r.kind != LP_MALFORMED || !strstr(r.why, bad[i].why))
			fail_msg("case %zu: kind %d why \"%s\"", i, r.kind, r.why);
	}
	/* Invalid UTF-8 is malformed, not passed on into a record. */
	parse(p, &cols, "2026-11-02 08:00:00,2026-11-02 09:00:00,\xff\xfe,o,1,是", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_non_null(strstr(r.why, "UTF-8"));
	lp_parser_free(p);
}

static void test_csv_required_column_missing(void **state)
{
	(void)state;
	struct log_cfg c;
	csv_cfg(&c);
	struct lp_csv_cols cols;
	struct lp_result r;
	struct lp_parser *p = csv_parser_hdr(&c, &cols, "start,结束时间", &r);
	assert_non_null(strstr(r.why, "every line will be malformed"));
	parse(p, &cols, "2026-11-02 08:00:00,2026-11-02 09:00:00", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_non_null(strstr(r.why, "not in the header"));
	lp_parser_free(p);
}

static void test_csv_duration_and_time_format(void **state)
{
	(void)state;
	struct log_cfg c;
	memset(&c, 0, sizeof(c));
	c.format = LOG_FMT_CSV;
	c.time_format = (char *)"%Y/%m/%d %H:%M";
	c.fields.name[SF_START] = (char *)"start";
	c.fields.name[SF_DURATION] = (char *)"minutes";
	c.fields.name[SF_WAY] = (char *)"way";
	c.fields.name[SF_FEE] = (char *)"fee";
	c.fields.name[SF_PROJECT] = (char *)"project";
	struct lp_csv_cols cols;
	struct lp_result r;
	struct lp_parser *p = csv_parser_hdr(&c, &cols, "start,minutes,way,fee,project", &r);
	parse(p, &cols, "2026/11/02 08:00,90.5,委托,120.00,NSFC-1", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	assert_int_equal(r.s.end, T0 + 5430);
	assert_string_equal(r.s.way, "委托");
	assert_string_equal(r.s.fee, "120.00");
	assert_string_equal(r.s.project, "NSFC-1");
	parse(p, &cols, "2026/11/02 08:00,-5,,,", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	parse(p, &cols, "2026-11-02 08:00,30,,,", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	lp_parser_free(p);
}

/* ---- GBK ---- */

static void test_gbk(void **state)
{
	(void)state;
	struct log_cfg c;
	csv_cfg(&c);
	c.encoding = LOG_ENC_GBK;
	struct lp_csv_cols cols;
	struct lp_parser *p = csv_parser(&c, &cols); /* the header in GBK */
	struct lp_result r;
	char buf[512];
	/* 𠀀 (U+20000) is one of GB18030's four-byte characters. */
	size_t n = h_to_gbk("2026-11-02 08:00:00,2026-11-02 09:00:00,王𠀀,山西大学,2,否", buf, sizeof(buf));
	lp_parse(p, &cols, buf, n, arena, &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_string_equal(r.s.user, "王𠀀");
	assert_string_equal(r.s.org, "山西大学");
	assert_int_equal(r.s.external, 0);

	/* A lead byte with no trail byte, and a byte GBK doesn't use. */
	static const char bad1[] = "2026-11-02 08:00:00,2026-11-02 09:00:00,\xd5,o,1,0";
	lp_parse(p, &cols, bad1, strlen(bad1), arena, &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	assert_non_null(strstr(r.why, "GBK"));
	static const char bad2[] = "2026-11-02 08:00:00,2026-11-02 09:00:00,\xff\xff,o,1,0";
	lp_parse(p, &cols, bad2, strlen(bad2), arena, &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	/* The bad line is shown in the event as printable text. */
	const char *text = lp_text(p, bad2, strlen(bad2), arena);
	assert_non_null(strstr(text, "\\xff\\xff"));
	lp_parser_free(p);
}

static void test_printable(void **state)
{
	(void)state;
	char out[16];
	bool cut;
	assert_int_equal(enc_printable("a\tb", 3, out, sizeof(out), &cut), 6);
	assert_string_equal(out, "a\\x09b");
	/* A cut never splits a character. */
	enc_printable("一二三四五六", strlen("一二三四五六"), out, 8, &cut);
	assert_string_equal(out, "一二");
	assert_true(cut);
	assert_true(utf8_valid("山西", 6));
	assert_false(utf8_valid("\xc0\xaf", 2));       /* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));   /* surrogate */
	assert_false(utf8_valid("\xe5\xb1", 2));       /* cut */
}

/* ---- JSON Lines ---- */

static void test_jsonl(void **state)
{
	(void)state;
	struct log_cfg c;
	jsonl_cfg(&c);
	c.fields.name[SF_USER] = (char *)"who.name";
	c.fields.name[SF_ORG] = (char *)"org";
	c.fields.name[SF_SAMPLES] = (char *)"n";
	c.fields.name[SF_EXTERNAL] = (char *)"ext";
	c.fields.name[SF_FEE] = (char *)"fee";
	struct lp_parser *p = lp_parser_new(&c);
	struct lp_result r;
	parse(p, NULL, "{\"start\":\"2026-11-02T08:00:00+08:00\",\"end\":1793581200,\"who\":{\"name\":\"赵\"},\"org\":null,\"n\":4,\"ext\":true,\"fee\":35.5}", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	assert_int_equal(r.s.end, T0 + 3600);
	assert_string_equal(r.s.user, "赵");
	assert_null(r.s.org);
	assert_int_equal(r.s.samples, 4);
	assert_int_equal(r.s.external, 1);
	assert_string_equal(r.s.fee, "35.5");
	/* Milliseconds since the epoch are recognised. */
	parse(p, NULL, "{\"start\":1793577600000,\"end\":\"2026-11-02 09:00:00\"}", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	static const char *const bad[] = {
		"{\"start\":\"2026-11-02 08:00:00\"",
		"[1,2]",
		"{\"start\":\"2026-11-02 08:00:00\",\"end\":[1]}",
		"{\"start\":\"2026-11-02 08:00:00\",\"end\":\"soon\"}",
		"{\"end\":\"2026-11-02 08:00:00\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(p, NULL, bad[i], &r);
		if (r.kind != LP_MALFORMED)
			fail_msg("case %zu: kind %d", i, r.kind);
	}
	lp_parser_free(p);
}

/* ---- regex ---- */

static void test_regex(void **state)
{
	(void)state;
	struct log_cfg c;
	memset(&c, 0, sizeof(c));
	c.format = LOG_FMT_REGEX;
	assert_int_equal(regcomp(&c.re, "^SESSION ([^ ]+) ([^ ]+) ([^ ]+) ([0-9]+)$", REG_EXTENDED), 0);
	c.re_compiled = true;
	c.time_format = (char *)"%Y%m%dT%H%M%S%z";
	c.fields.group[SF_START] = 1;
	c.fields.group[SF_END] = 2;
	c.fields.group[SF_USER] = 3;
	c.fields.group[SF_SAMPLES] = 4;
	struct lp_parser *p = lp_parser_new(&c);
	struct lp_result r;
	parse(p, NULL, "SESSION 20261102T000000+0000 20261102T013000+0000 alice 2", &r);
	assert_int_equal(r.kind, LP_SESSION);
	assert_int_equal(r.s.start, T0);
	assert_int_equal(r.s.end, T0 + 5400);
	assert_string_equal(r.s.user, "alice");
	parse(p, NULL, "INFO lamp warmed up", &r);
	assert_int_equal(r.kind, LP_SKIP); /* lines the pattern doesn't describe are not sessions */
	parse(p, NULL, "SESSION 20261102T000000+0000 20261101T013000+0000 alice 2", &r);
	assert_int_equal(r.kind, LP_MALFORMED);
	lp_parser_free(p);
	cfg_clear(&c);
}

/* ---- times ---- */

static void test_times(void **state)
{
	(void)state;
	int64_t t;
	assert_int_equal(lp_parse_time(NULL, " 2026-11-02 08:00:00 ", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(lp_parse_time("%d.%m.%Y %H:%M:%S", "02.11.2026 08:00:00", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(lp_parse_time("%Y-%m-%d %H:%M:%S %z", "2026-11-02 00:00:00 +0000", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(lp_parse_time("%H:%M", "08:00", &t), -EINVAL);          /* no date */
	assert_int_equal(lp_parse_time("%Y-%m-%d", "2026-11-02 junk", &t), -EINVAL);
	assert_int_equal(lp_parse_time("%Y-%m-%d", "2026-02-29", &t), -EINVAL);  /* not a leap year */
	assert_int_equal(lp_parse_time(NULL, "", &t), -EINVAL);
	/* A zone with summer time: the text's wall time is taken in the zone's rules. */
	assert_int_equal(timeutil_set_zone("Europe/Berlin"), 0);
	assert_int_equal(lp_parse_time("%Y-%m-%d %H:%M:%S", "2026-07-01 12:00:00", &t), 0);
	assert_int_equal(t, 1782900000); /* 10:00Z */
	assert_int_equal(timeutil_set_zone("Asia/Shanghai"), 0);

	static const struct {
		const char *in;
		int want;
	} ext[] = { { "是", 1 }, { "否", 0 }, { "外部", 1 }, { "内部", 0 }, { "YES", 1 }, { "no", 0 },
		    { "1", 1 }, { "0", 0 }, { "True", 1 }, { "false", 0 }, { "maybe", -1 } };
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		assert_int_equal(lp_parse_external(ext[i].in), ext[i].want);
}

/* ---- events ---- */

static void test_events_pairing(void **state)
{
	(void)state;
	struct log_cfg c;
	events_cfg(&c, true);
	struct lp_parser *p = lp_parser_new(&c);
	struct lp_pairs *pp = lp_pairs_new(c.max_session_h);
	struct sessions out = { 0 };
	char why[192];

	assert_int_equal(feed(p, pp, "2026-11-02 08:00:00 LOGIN user=alice org=太原理工大学", &out, why), 0);
	assert_int_equal(feed(p, pp, "2026-11-02 08:10:00 LOGIN user=bob org=山西大学", &out, why), 0);
	assert_int_equal(feed(p, pp, "2026-11-02 08:15:00 lamp on", &out, why), 2);
	assert_int_equal(lp_pairs_count(pp), 2);
	/* bob's logout closes bob's session, not alice's. */
	assert_int_equal(feed(p, pp, "2026-11-02 09:10:00 LOGOUT user=bob samples=3", &out, why), 0);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.user[0], "bob");
	assert_int_equal(out.s[0].start, T0 + 600);
	assert_int_equal(out.s[0].end, T0 + 4200);
	assert_int_equal(out.s[0].samples, 3);
	assert_false(out.s[0].closed_auto);

	/* Logout without login, logout before login: the line is malformed, nothing else changes. */
	assert_int_equal(feed(p, pp, "2026-11-02 09:20:00 LOGOUT user=carol", &out, why), 1);
	assert_non_null(strstr(why, "without a login"));
	assert_null(strstr(why, "carol")); /* the reason is sealed: it never quotes the line */
	assert_int_equal(feed(p, pp, "2026-11-02 07:00:00 LOGOUT user=alice", &out, why), 1);
	assert_non_null(strstr(why, "not after"));
	assert_int_equal(lp_pairs_count(pp), 1);

	/* Open logins survive a restart through the cursor. */
	cJSON *j = lp_pairs_to_json(pp);
	struct lp_pairs *pp2 = lp_pairs_new(c.max_session_h);
	assert_int_equal(lp_pairs_from_json(pp2, j), 0);
	cJSON_Delete(j);
	assert_int_equal(lp_pairs_count(pp2), 1);

	/* alice logs in again without logging out: the first session is closed there, auto. */
	assert_int_equal(feed(p, pp2, "2026-11-02 10:00:00 LOGIN user=alice org=太原理工大学", &out, why), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.s[1].start, T0);
	assert_int_equal(out.s[1].end, T0 + 7200);
	assert_true(out.s[1].closed_auto);

	/* A login never closed ends at max_session_h, whatever the clock says after. */
	assert_int_equal(lp_pairs_expire(pp2, T0 + 7200 + 12 * 3600, collect, &out), 0);
	assert_int_equal(out.n, 2); /* exactly at the limit: not yet */
	assert_int_equal(lp_pairs_expire(pp2, T0 + 7200 + 12 * 3600 + 1, collect, &out), 0);
	assert_int_equal(out.n, 3);
	assert_int_equal(out.s[2].end - out.s[2].start, 12 * 3600);
	assert_true(out.s[2].closed_auto);
	assert_int_equal(lp_pairs_count(pp2), 0);

	/* A later line in the log closes a stale login the same way, so a replay gives the same
	 * sessions as reading live. */
	assert_int_equal(feed(p, pp2, "2026-11-03 08:00:00 LOGIN user=dave org=x", &out, why), 0);
	assert_int_equal(feed(p, pp2, "2026-11-04 08:00:00 LOGOUT user=dave", &out, why), 1);
	assert_int_equal(out.n, 4);
	assert_true(out.s[3].closed_auto);
	assert_int_equal(out.s[3].end - out.s[3].start, 12 * 3600);

	lp_pairs_free(pp);
	lp_pairs_free(pp2);
	lp_parser_free(p);
	cfg_clear(&c);
}

static void test_events_instrument_key(void **state)
{
	(void)state;
	struct log_cfg c;
	events_cfg(&c, false);
	struct lp_parser *p = lp_parser_new(&c);
	struct lp_pairs *pp = lp_pairs_new(2);
	struct sessions out = { 0 };
	char why[192];
	assert_int_equal(feed(p, pp, "2026-11-02 23:30:00 RUN START", &out, why), 0);
	assert_int_equal(feed(p, pp, "2026-11-03 00:30:00 RUN END samples=1", &out, why), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.s[0].start, T0 + 15.5 * 3600);
	assert_int_equal(out.s[0].end, T0 + 16.5 * 3600); /* across midnight */
	assert_int_equal(feed(p, pp, "2026-11-03 01:00:00 RUN START", &out, why), 0);
	/* The next start of the same key comes after the limit: closed at the limit. */
	assert_int_equal(feed(p, pp, "2026-11-03 01:30:00 RUN START", &out, why), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.s[1].end - out.s[1].start, 1800);
	assert_int_equal(feed(p, pp, "2026-11-03 08:00:00 RUN START", &out, why), 0);
	assert_int_equal(out.n, 3);
	assert_int_equal(out.s[2].end - out.s[2].start, 2 * 3600);
	assert_true(out.s[2].closed_auto);
	/* Bad cursor text is refused, not half-loaded. */
	cJSON *bad = cJSON_Parse("[{\"key\":\"\",\"start\":\"x\"}]");
	assert_int_equal(lp_pairs_from_json(pp, bad), -EINVAL);
	assert_int_equal(lp_pairs_count(pp), 0);
	cJSON_Delete(bad);
	lp_pairs_free(pp);
	lp_parser_free(p);
	cfg_clear(&c);
}

static void test_arena(void **state)
{
	(void)state;
	struct lp_arena *a = lp_arena_new();
	char big[100000];
	memset(big, 'x', sizeof(big));
	const char *s1 = lp_arena_strndup(a, "abc", 3);
	const char *s2 = lp_arena_strndup(a, big, sizeof(big));
	const char *s3 = lp_arena_strndup(a, "def", 3);
	assert_string_equal(s1, "abc");
	assert_int_equal(strlen(s2), sizeof(big));
	assert_string_equal(s3, "def");
	lp_arena_reset(a);
	assert_string_equal(lp_arena_strndup(a, "g", 1), "g");
	lp_arena_free(a);
	lp_arena_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_lines),
		cmocka_unit_test(test_frame_quote_span_cap),
		cmocka_unit_test(test_csv_header_and_rows),
		cmocka_unit_test(test_csv_malformed),
		cmocka_unit_test(test_csv_required_column_missing),
		cmocka_unit_test(test_csv_duration_and_time_format),
		cmocka_unit_test(test_gbk),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_events_pairing),
		cmocka_unit_test(test_events_instrument_key),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
