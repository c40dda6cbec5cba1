/* test_utf8.c — the agent's one UTF-8 validator, and the conversion `record` uses from the
 * terminal's charset, with named charsets (a test can't count on a GBK locale). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
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

/* The one decoder: code points out, and every malformed byte one character of its own. */
static void test_decoder(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
		uint32_t cp;
		size_t len;
	} cases[] = {
		{ "A", 1, 'A', 1 }, { "\x7f", 1, 0x7f, 1 }, { "\xc2\x80", 2, 0x80, 2 }, { "张", 3, 0x5f20, 3 },
		{ "\xef\xbf\xbd", 3, 0xfffd, 3 }, { "\xf0\xa0\x80\x80", 4, 0x20000, 4 },
		{ "\xf4\x8f\xbf\xbf", 4, 0x10ffff, 4 },
		{ "\xf0\xa0\x80\x80", 3, UTF8_INVALID, 1 },  /* 4 bytes, only 3 left: cut */
		{ "\xf0\xa0\x80" "A", 4, UTF8_INVALID, 1 },   /* 4-byte lead, an ASCII byte in the sequence */
		{ "\xc0\xaf", 2, UTF8_INVALID, 1 },           /* overlong */
		{ "\xf0\x8f\xbf\xbf", 4, UTF8_INVALID, 1 },  /* overlong, 4 bytes */
		{ "\xed\xb0\x80", 3, UTF8_INVALID, 1 },       /* a low surrogate */
		{ "\xf4\x90\x80\x80", 4, UTF8_INVALID, 1 },  /* past U+10FFFF */
		{ "\x80", 1, UTF8_INVALID, 1 }, { "\xbf\xbf", 2, UTF8_INVALID, 1 }, { "\xf8\x88\x80\x80\x80", 5, UTF8_INVALID, 1 },
		{ "\xff", 1, UTF8_INVALID, 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 99;
		uint32_t cp = utf8_decode(cases[i].s, cases[i].n, &len);
		if (cp != cases[i].cp || len != cases[i].len)
			fail_msg("case %zu: U+%04X length %zu, wanted U+%04X length %zu", i, (unsigned)cp, len,
				 (unsigned)cases[i].cp, cases[i].len);
		assert_int_equal(utf8_char_len(cases[i].s, cases[i].n), cp == UTF8_INVALID ? 0 : len);
	}
}

/* The one cutter: whole characters only, 4-byte sequences at the cut included; a malformed
 * byte counts as one character, so hostile text can't make the cut run past the limit. */
static void test_cutter(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len, max, kept;
	} cases[] = {
		{ "张三", 6, 1, 3 }, { "张三", 6, 2, 6 }, { "张三", 6, 0, 0 }, { "ab", 2, 10, 2 }, { "", 0, 5, 0 },
		{ "张三", 5, 2, 4 },                               /* a cut tail: one byte a character */
		{ "\xff\xfe" "a", 3, 2, 2 },
		{ "a\xf0\x9f\x94\xac", 5, 1, 1 },                 /* a 4-byte sequence right at the cut */
		{ "a\xf0\x9f\x94\xac", 5, 2, 5 },                 /* ... kept whole, never 2 or 3 of its bytes */
		{ "a\xf0\x9f\x94\xac", 4, 2, 2 },                 /* ... cut short by len: its lead is one bad char */
		{ "\xf0\x9f\x94\xac\xf0\x9f\x94\xac", 8, 1, 4 },
		{ "\xed\xa0\x80z", 4, 2, 2 },                       /* a surrogate: three bad characters */
		{ "\xc0\xaf\xc0\xaf", 4, 3, 3 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t kept = utf8_cut(cases[i].s, cases[i].len, cases[i].max);
		if (kept != cases[i].kept)
			fail_msg("case %zu: kept %zu bytes, wanted %zu", i, kept, cases[i].kept);
	}
	/* Every cut of valid text is valid text. */
	const char *mixed = "a张\xf0\x9f\x94\xac\xc2\x80z\xf4\x8f\xbf\xbf";
	for (size_t max = 0; max < 10; max++)
		assert_true(utf8_valid(mixed, utf8_cut(mixed, strlen(mixed), max)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validator),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_from_charset),
		cmocka_unit_test(test_decoder),
		cmocka_unit_test(test_cutter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
