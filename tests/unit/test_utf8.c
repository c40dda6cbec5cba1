/* test_utf8.c — the agent's one UTF-8 validator, and the conversion `record` uses from the
 * terminal's charset, with named charsets (a test can't count on a GBK locale). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static void test_validator(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool valid;
	} cases[] = {
		{ "", true }, { "plain", true }, { "山西大学", true }, { "🧪 𠀀", true }, { "\xf4\x8f\xbf\xbf", true },
		{ "\xd5\xc5\xc8\xfd", false },  /* GBK */
		{ "\xc0\xaf", false },          /* overlong */
		{ "\xe0\x80\xaf", false },      /* overlong, 3 bytes */
		{ "\xed\xa0\x80", false },      /* surrogate */
		{ "\xf4\x90\x80\x80", false },  /* past U+10FFFF */
		{ "\xe5\xb1", false },          /* cut */
		{ "\x80", false }, { "\xff", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (utf8_str_valid(cases[i].s) != cases[i].valid)
			fail_msg("case %zu: not %s", i, cases[i].valid ? "valid" : "refused");
		assert_true(utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].valid);
	}
	assert_true(utf8_str_valid(NULL));
}

static void test_repair(void **state)
{
	(void)state;
	char *s = utf8_repair("/srv/\xd5\xc5.csv 山西 \xe5\xb1");
	assert_string_equal(s, "/srv/\\xd5\\xc5.csv 山西 \\xe5\\xb1");
	assert_true(utf8_str_valid(s));
	free(s);
}

static void test_from_charset(void **state)
{
	(void)state;
	static const struct {
		const char *charset, *in, *out;
		int rc;
	} cases[] = {
		{ "GBK", "\xd5\xc5\xc8\xfd", "张三", 0 },
		{ "GB18030", "\xcc\xab\xd4\xad\xc0\xed\xb9\xa4\xb4\xf3\xd1\xa7", "太原理工大学", 0 },
		{ "GB18030", "\x81\x30\x81\x30", "\xc2\x80", 0 },     /* a four-byte GB18030 character */
		{ "GBK", "u\x81", NULL, -EILSEQ },                   /* a lead byte with nothing after */
		{ "GBK", "\xff\xfe", NULL, -EILSEQ },
		{ "ISO-8859-1", "Jos\xe9", "José", 0 },
		{ "UTF-8", "张三", "张三", 0 },
		{ "UTF-8", "\xd5\xc5\xc8\xfd", NULL, -EILSEQ },
		{ "utf8", "\xed\xa0\x80", NULL, -EILSEQ },
		{ "ANSI_X3.4-1968", "张三", "张三", 0 },           /* the C locale: UTF-8 as it is */
		{ "ANSI_X3.4-1968", "\xd5\xc5\xc8\xfd", NULL, -EILSEQ },
		{ "NO-SUCH-CHARSET", "x", NULL, -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = (char *)"untouched";
		int rc = utf8_from_charset(cases[i].charset, cases[i].in, &out);
		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): %d, not %d", i, cases[i].charset, rc, cases[i].rc);
		if (cases[i].out)
			assert_string_equal(out, cases[i].out);
		else
			assert_null(out);
		free(rc == 0 ? out : NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validator),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_from_charset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
