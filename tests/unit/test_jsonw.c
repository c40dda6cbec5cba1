/* test_jsonw.c — the record writer prints exactly what cJSON prints for the same object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_cjson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
