/* test_jsonw.c — the record writer prints exactly what cJSON prints for the same object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "utf8.h"

static const char *const strings[] = {
	"", "plain", "太原理工大学", "quote \" backslash \\ slash /", "tab\tnewline\nreturn\r",
	"bell\a backspace\b formfeed\f", "\x01\x1f control", "<&> '", "emoji 🧪 and 𠀀",
};

static const double numbers[] = {
	0, 1, -1, 9000, 0.3333, 0.5, 4.0, 1.0 / 3.0, 123456789012.0, -0.0001, 1e20, 3.14159265358979,
};

static void test_same_as_cjson(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		for (size_t k = 0; k < sizeof(numbers) / sizeof(numbers[0]); k++) {
			struct jsonw w;
			jw_begin(&w);
			jw_str(&w, "kind", "session");
			jw_str(&w, "s", strings[i]);
			jw_num(&w, "x", numbers[k]);
			jw_int(&w, "n", (int64_t)k * -1000000007LL);
			jw_bool(&w, "t", true);
			jw_bool(&w, "f", false);
			jw_null(&w, "z");
			jw_str(&w, "y", NULL);
			size_t len;
			char *ours = jw_end(&w, &len);
			assert_non_null(ours);
			assert_int_equal(len, strlen(ours));

			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "kind", "session");
			cJSON_AddStringToObject(o, "s", strings[i]);
			cJSON_AddNumberToObject(o, "x", numbers[k]);
			cJSON_AddNumberToObject(o, "n", (double)((int64_t)k * -1000000007LL));
			cJSON_AddBoolToObject(o, "t", 1);
			cJSON_AddBoolToObject(o, "f", 0);
			cJSON_AddNullToObject(o, "z");
			cJSON_AddNullToObject(o, "y");
			char *theirs = cJSON_PrintUnformatted(o);
			if (strcmp(ours, theirs) != 0)
				fail_msg("string %zu number %zu:\n ours   %s\n cJSON  %s", i, k, ours, theirs);
			/* And it reads back. */
			cJSON *back = cJSON_Parse(ours);
			assert_non_null(back);
			assert_string_equal(cJSON_GetObjectItem(back, "s")->valuestring, strings[i]);
			cJSON_Delete(back);
			cJSON_free(theirs);
			cJSON_Delete(o);
			free(ours);
		}
	}
}

/* Numbers that are no int64_t: printed as cJSON prints them, and never converted to an
 * integer on the way (that conversion is undefined: build with
 * -fsanitize=float-cast-overflow -fno-sanitize-recover to see it stop). */
static void test_non_finite_and_huge_numbers(void **state)
{
	(void)state;
	static const double cases[] = {
		NAN, INFINITY, -INFINITY, 1e300, -1e300, 9.3e18, -9.3e18, 9223372036854775808.0,
		-9223372036854775808.0, 1.8446744073709552e19, 1e15, 999999999999999.0, -1e15, 1e-300,
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jsonw w;
		jw_begin(&w);
		jw_num(&w, "x", cases[i]);
		char *ours = jw_end(&w, NULL);
		assert_non_null(ours);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "x", cases[i]);
		char *theirs = cJSON_PrintUnformatted(o);
		if (strcmp(ours, theirs) != 0)
			fail_msg("case %zu (%g):\n ours   %s\n cJSON  %s", i, cases[i], ours, theirs);
		cJSON_free(theirs);
		cJSON_Delete(o);
		free(ours);
	}
}

/* SPEC §3: nothing that is not UTF-8 is ever sealed; the writer refuses the whole object. */
static void test_invalid_utf8_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"\xd5\xc5\xc8\xfd",      /* 张三 in GBK */
		"ok \xc0\xaf",           /* overlong '/' */
		"\xed\xa0\x80",           /* a surrogate */
		"cut \xe5\xb1",          /* a character cut at the end */
		"\xf4\x90\x80\x80",       /* past U+10FFFF */
		"\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jsonw w;
		jw_begin(&w);
		jw_str(&w, "kind", "session");
		jw_str(&w, "user", bad[i]);
		jw_int(&w, "n", 1);
		size_t len = 0;
		char *text = jw_end(&w, &len);
		if (text)
			fail_msg("case %zu: sealed as %s", i, text);
		assert_true(w.invalid);
		assert_false(w.failed);
	}
	/* The same writer takes valid text, four-byte characters included. */
	struct jsonw w;
	jw_begin(&w);
	jw_str(&w, "user", "张三 🧪 𠀀");
	char *text = jw_end(&w, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"user\":\"张三 🧪 𠀀\"}");
	free(text);
}

/* Every lead byte past ASCII with every second byte and the edges of the continuation
 * range after it: the writer takes exactly what utf8_valid takes, and prints it as it is. */
static void test_utf8_same_as_decode(void **state)
{
	(void)state;
	static const unsigned char tail[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	const size_t nt = sizeof(tail);
	for (unsigned lead = 0x80; lead <= 0xff; lead++) {
		for (unsigned b1 = 0; b1 <= 0xff; b1++) {
			for (size_t i = 0; i < nt * nt; i++) {
				char str[8] = { 'x', (char)lead, (char)b1, (char)tail[i / nt], (char)tail[i % nt], 'y' };
				size_t n = strlen(str);
				struct jsonw w;
				jw_begin(&w);
				jw_str(&w, "v", str);
				size_t len = 0;
				char *text = jw_end(&w, &len);
				bool valid = utf8_valid(str, n);
				if (valid != (text != NULL))
					fail_msg("%02x %02x %02x %02x: writer %s, utf8_valid %s", lead, b1, tail[i / nt],
						 tail[i % nt], text ? "took it" : "refused", valid ? "takes it" : "refuses");
				bool plain = b1 >= 0x20 && b1 != '"' && b1 != '\\';
				if (text && plain && (len != n + 8 || memcmp(text + 6, str, n) != 0))
					fail_msg("%02x %02x: printed as %s", lead, b1, text);
				free(text);
			}
		}
	}
}

/* Objects and arrays nested in the object, and arrays of values and of objects: what cJSON
 * prints for the same tree. */
static void test_nested_same_as_cjson(void **state)
{
	(void)state;
	struct jsonw w;
	jw_begin(&w);
	jw_str(&w, "id", "A");
	jw_object(&w, "empty");
	jw_close_object(&w);
	jw_array(&w, "none");
	jw_close_array(&w);
	jw_object(&w, "modbus");
	jw_str(&w, "state", "ok");
	jw_object(&w, "reading");
	jw_bool(&w, "ok", true);
	jw_num(&w, "run_raw", 0.5);
	jw_close_object(&w);
	jw_int(&w, "polls", 3);
	jw_close_object(&w);
	jw_array(&w, "logs");
	for (int i = 0; i < 2; i++) {
		jw_object(&w, NULL);
		jw_int(&w, "lines", i);
		jw_null(&w, "offset");
		jw_close_object(&w);
	}
	jw_close_array(&w);
	jw_array(&w, "values");
	jw_str(&w, NULL, "x");
	jw_int(&w, NULL, -2);
	jw_null(&w, NULL);
	jw_close_array(&w);
	jw_int(&w, "after", 1);
	char *text = jw_end(&w, NULL);
	assert_non_null(text);
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	char *again = cJSON_PrintUnformatted(j);
	assert_string_equal(text, again);
	assert_string_equal(text, "{\"id\":\"A\",\"empty\":{},\"none\":[],\"modbus\":{\"state\":\"ok\","
			   "\"reading\":{\"ok\":true,\"run_raw\":0.5},\"polls\":3},\"logs\":[{\"lines\":0,"
			   "\"offset\":null},{\"lines\":1,\"offset\":null}],\"values\":[\"x\",-2,null],\"after\":1}");
	cJSON_free(again);
	cJSON_Delete(j);
	free(text);
}

static char *one_str(unsigned flags, size_t max, const char *val, size_t cut)
{
	struct jsonw w;
	jw_begin_opt(&w, flags, max);
	if (cut == SIZE_MAX)
		jw_str(&w, "s", val);
	else
		jw_str_cut(&w, "s", val, cut);
	return jw_end(&w, NULL);
}

/* JW_ASCII: nothing but printable ASCII goes out; past U+FFFF a surrogate pair; what comes
 * back through a JSON parser is the text that went in. */
static void test_ascii_only(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain", "{\"s\":\"plain\"}" },
		{ "张三", "{\"s\":\"\\u5f20\\u4e09\"}" },
		{ "\xc2\x80 del\x7f", "{\"s\":\"\\u0080 del\\u007f\"}" },
		{ "𠀀", "{\"s\":\"\\ud840\\udc00\"}" },
		{ "\xf4\x8f\xbf\xbf", "{\"s\":\"\\udbff\\udfff\"}" },
		{ "🧪\"\\\n\x01", "{\"s\":\"\\ud83e\\uddea\\\"\\\\\\n\\u0001\"}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = one_str(JW_ASCII, DBUF_NO_MAX, cases[i].in, SIZE_MAX);
		assert_non_null(t);
		if (strcmp(t, cases[i].out) != 0)
			fail_msg("case %zu: %s, wanted %s", i, t, cases[i].out);
		for (const char *p = t; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
		cJSON *o = cJSON_Parse(t);
		assert_non_null(o);
		assert_string_equal(cJSON_GetObjectItem(o, "s")->valuestring, cases[i].in);
		cJSON_Delete(o);
		free(t);
	}
	/* Keys too; and invalid UTF-8 is refused here as well, never escaped as if it were text. */
	struct jsonw w;
	jw_begin_opt(&w, JW_ASCII, DBUF_NO_MAX);
	jw_int(&w, "张", 1);
	char *t = jw_end(&w, NULL);
	assert_string_equal(t, "{\"\\u5f20\":1}");
	free(t);
	static const char *const bad[] = { "\xd5\xc5", "a\xf0\x9f\x94", "\xed\xa0\x80", "\x80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jw_begin_opt(&w, JW_ASCII, DBUF_NO_MAX);
		jw_str(&w, "s", bad[i]);
		assert_null(jw_end(&w, NULL));
		assert_true(w.invalid);
	}
}

/* Cut by characters: whole characters only, a 4-byte one at the cut kept whole or left out. */
static void test_cut_by_characters(void **state)
{
	(void)state;
	static const struct {
		unsigned flags;
		const char *in;
		size_t cut;
		const char *out;
	} cases[] = {
		{ 0, "张三丰", 2, "{\"s\":\"张三\"}" },
		{ 0, "a🔬b", 1, "{\"s\":\"a\"}" },
		{ 0, "a🔬b", 2, "{\"s\":\"a🔬\"}" },
		{ JW_ASCII, "a🔬b", 2, "{\"s\":\"a\\ud83d\\udd2c\"}" },
		{ JW_ASCII, "🔬🔬🔬", 1, "{\"s\":\"\\ud83d\\udd2c\"}" },
		{ 0, "abc", 0, "{\"s\":\"\"}" },
		{ 0, "abc", 99, "{\"s\":\"abc\"}" },
		{ 0, "q\"\\", 2, "{\"s\":\"q\\\"\"}" },
		/* Invalid bytes past the cut are never looked at; before it they refuse the object. */
		{ 0, "ok\xff", 2, "{\"s\":\"ok\"}" },
		{ 0, "\xffok", 2, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = one_str(cases[i].flags, DBUF_NO_MAX, cases[i].in, cases[i].cut);
		if (cases[i].out ? !t || strcmp(t, cases[i].out) != 0 : t != NULL)
			fail_msg("case %zu: %s, wanted %s", i, t ? t : "(refused)", cases[i].out ? cases[i].out : "(refused)");
		free(t);
	}
}

/* The cap: an object that fits exactly is written; one byte more fails the whole object. */
static void test_cap(void **state)
{
	(void)state;
	/* {"s":"xxxx"} is 12 bytes; with its NUL 13. */
	char *t = one_str(0, 13, "xxxx", SIZE_MAX);
	assert_string_equal(t, "{\"s\":\"xxxx\"}");
	free(t);
	struct jsonw w;
	jw_begin_opt(&w, 0, 12);
	jw_str(&w, "s", "xxxx");
	assert_null(jw_end(&w, NULL));
	assert_true(w.failed);
	assert_false(w.invalid);
	/* An escape that crosses the cap, in ASCII mode (6 bytes for one character). */
	jw_begin_opt(&w, JW_ASCII, 12);
	jw_str(&w, "s", "张");
	assert_null(jw_end(&w, NULL));
	t = one_str(JW_ASCII, 15, "张", SIZE_MAX);
	assert_string_equal(t, "{\"s\":\"\\u5f20\"}");
	free(t);
}

/* jw_raw: a value in the caller's own form, as it is. */
static void test_raw(void **state)
{
	(void)state;
	struct jsonw w;
	jw_begin(&w);
	jw_raw(&w, "h", "2.50");
	jw_array(&w, "a");
	jw_raw(&w, NULL, "0.1");
	jw_close_array(&w);
	char *t = jw_end(&w, NULL);
	assert_string_equal(t, "{\"h\":2.50,\"a\":[0.1]}");
	free(t);
}



int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_cjson),
		cmocka_unit_test(test_non_finite_and_huge_numbers),
		cmocka_unit_test(test_invalid_utf8_refused),
		cmocka_unit_test(test_utf8_same_as_decode),
		cmocka_unit_test(test_nested_same_as_cjson),
		cmocka_unit_test(test_ascii_only),
		cmocka_unit_test(test_cut_by_characters),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_raw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
