/* test_config_fast.c — jsonc's fast path (jsonc_fast.c) builds the tree cJSON would, field by
 * field, or leaves the text to cJSON: over every fuzz corpus input of the configuration and of
 * the JSON lines reader, the example configuration, and texts made to sit on each of its edges
 * (escapes, numbers, literals, nesting, trailing text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include "config.h"
#include "harness.h"
#include "jsonc.h"
#include "jsonc_fast.h"

static int n_fast, n_left;

/* Field by field, links included: prev of a first child is the last, as cJSON builds it. */
static void same_tree(const cJSON *a, const cJSON *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->valueint, b->valueint);
	if (isnan(a->valuedouble))
		assert_true(isnan(b->valuedouble));
	else
		assert_memory_equal(&a->valuedouble, &b->valuedouble, sizeof(double));
	assert_int_equal(a->valuestring == NULL, b->valuestring == NULL);
	if (a->valuestring)
		assert_string_equal(a->valuestring, b->valuestring);
	assert_int_equal(a->string == NULL, b->string == NULL);
	if (a->string)
		assert_string_equal(a->string, b->string);
	assert_int_equal(a->child == NULL, b->child == NULL);
	const cJSON *x = a->child, *y = b->child;
	if (x) {
		assert_int_equal(x->prev->next == NULL, y->prev->next == NULL);
		for (; x && y; x = x->next, y = y->next) {
			same_tree(x, y);
			if (x != a->child)
				assert_int_equal(x->prev->next == x, y->prev->next == y);
		}
		assert_null(x);
		assert_null(y);
		/* the first's prev is the last */
		const cJSON *la = a->child, *lb = b->child;
		while (la->next)
			la = la->next;
		while (lb->next)
			lb = lb->next;
		assert_ptr_equal(a->child->prev, la);
		assert_ptr_equal(b->child->prev, lb);
	}
}

/* What jsonc gives cJSON: the text with a NUL after it (comments are not cJSON's to see, so
 * only texts cJSON can take as they are are compared). */
static void check_text(const char *text, size_t len)
{
	char *t = malloc(len + 1);
	assert_non_null(t);
	memcpy(t, text, len);
	t[len] = '\0';
	const char *end = NULL;
	cJSON *ref = cJSON_ParseWithLengthOpts(t, len + 1, &end, false);
	size_t rest = ref ? (size_t)(end - t) : 0;
	while (ref && rest < len && (unsigned char)t[rest] <= ' ')
		rest++;
	struct jsonc_arena *arena = NULL;
	cJSON *fast = jsonc_fast_parse(t, len, &arena);
	if (fast) {
		/* taken only what cJSON takes whole */
		assert_non_null(ref);
		assert_int_equal(rest, len);
		same_tree(fast, ref);
		n_fast++;
	} else {
		assert_null(arena);
		n_left++;
	}
	jsonc_arena_free(arena);
	cJSON_Delete(ref);
	free(t);
}

static void check_dir(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *path = h_strdupf("%s/%s", dir, e->d_name);
		size_t len = 0;
		char *text = h_read_file(path, &len);
		assert_non_null(text);
		check_text(text, len);
		free(text);
		free(path);
	}
	closedir(d);
}

static void test_corpus_same_as_cjson(void **state)
{
	(void)state;
	n_fast = n_left = 0;
	check_dir("tests/fuzz/corpus/fuzz_config");
	check_dir("tests/fuzz/corpus/fuzz_jsonl");
	check_dir("tests/fuzz/corpus/fuzz_nrii_reply");
	assert_true(n_fast > 10);
}

static void test_edges_same_as_cjson(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"{}", "[]", "{ }", "[ ]", "0", "-0", "1", "-1", "1.5", "1e3", "1E+3", "-1.25e-2", "2147483647",
		"2147483648", "-2147483648", "-2147483649", "1e999", "-1e999", "123456789012345678901234567890",
		"0.1000000000000000055511151231257827021181583404541015625", "01", "1.2.3", "1e", "-", "--1",
		"+1", ".5", "1.", "1e5e5", "1-2", "true", "false", "null", "tru", "nul", "truex", "[true,false,null]",
		"\"\"", "\"a\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\"", "\"\\u4e2d\\u6587\"",
		"\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83dx\"", "\"\\u0000\"", "\"\\u00zz\"",
		"\"\\x\"", "\"\\u12\"", "\"中文\"", "\"tab\there\"", "\"unterminated", "{\"a\":1,}", "[1,]", "[1 2]",
		"{\"a\" 1}", "{\"a\":}", "{1:2}", "{\"a\":1}x", "{\"a\":1} ", "{\"a\":1}\n\n", " \t\r\n{\"a\":[1,{\"b\":null}]}",
		"\xEF\xBB\xBF{\"bom\":1}", "{\"a\":1,\"a\":2}", "[[[[[[[[[[1]]]]]]]]]]", "{\"\":\"\"}", "[\"\\/\"]",
		"{\"k\":[1,2,3],\"o\":{\"x\":{\"y\":{}}},\"s\":\"v\"}", "", " ", "]", "}", ",", "[1]]", "{\"a\":1}}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		check_text(texts[i], strlen(texts[i]));

	/* nesting: within the fast path's depth, and past it (left to cJSON, which still parses it) */
	for (int depth = 150; depth <= 260; depth += 110) {
		size_t len = 2 * (size_t)depth + 1;
		char *t = malloc(len + 1);
		memset(t, '[', (size_t)depth);
		t[depth] = '1';
		memset(t + depth + 1, ']', (size_t)depth);
		t[len] = '\0';
		check_text(t, len);
		free(t);
	}
	/* a number of 62 characters is taken, one of 63 left to cJSON */
	for (size_t n = 62; n <= 64; n++) {
		char t[80];
		memset(t, '1', n);
		t[n] = '\0';
		check_text(t, n);
	}
}

/* The same configuration read through the fast path and through cJSON (a \u escape sends a text
 * to cJSON): the same struct, the same errors at the same places. */
static void test_config_both_paths(void **state)
{
	(void)state;
	char *example = h_read_file("config/agent.example.json", NULL);
	assert_non_null(example);
	const char *lab = strstr(example, "\"lab_code\"");
	assert_non_null(lab);
	struct config *a = NULL, *b = NULL;
	struct config_errors ea = { 0 }, eb = { 0 };
	int ra = config_parse("x.json", example, strlen(example), &a, &ea);
	/* the same text with one character as an escape: identical once decoded */
	char *escaped = h_strdupf("%.*s\"lab_\\u0063ode\"%s", (int)(lab - example), example, lab + strlen("\"lab_code\""));
	int rb = config_parse("x.json", escaped, strlen(escaped), &b, &eb);
	assert_int_equal(ra, rb);
	assert_int_equal(ea.n, eb.n);
	for (size_t i = 0; i < ea.n; i++)
		assert_string_equal(ea.msg[i], eb.msg[i]);
	if (a && b) {
		assert_int_equal(a->n_instruments, b->n_instruments);
		assert_string_equal(a->agent.lab_code, b->agent.lab_code);
		for (size_t i = 0; i < a->n_instruments; i++) {
			assert_string_equal(a->instruments[i].id, b->instruments[i].id);
			assert_ptr_equal(config_instrument(a, a->instruments[i].id), &a->instruments[i]);
		}
	}
	config_free(a);
	config_free(b);
	config_errors_clear(&ea);
	config_errors_clear(&eb);
	free(escaped);
	free(example);
}

/* status.json's reader: the fast tree, or cJSON's where cJSON reads more (text after the value). */
static void test_plain(void **state)
{
	(void)state;
	static const char *const texts[] = { "{\"instruments\":[{\"id\":\"A\",\"logs\":[]}]}",
		"{\"a\":1} trailing", "[1,2]]", "{\"s\":\"\\u0000x\"}", "not json", "" };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct jsonc_doc *doc = NULL;
		assert_int_equal(jsonc_parse_plain(texts[i], strlen(texts[i]), &doc), 0);
		cJSON *ref = cJSON_ParseWithLength(texts[i], strlen(texts[i]));
		assert_int_equal(jsonc_root(doc) == NULL, ref == NULL);
		if (ref)
			same_tree(jsonc_root(doc), ref);
		cJSON_Delete(ref);
		jsonc_free(doc);
	}
}

/* The indexes by id: each instrument's bus (40 buses listed out of order) and config_instrument. */
static void test_lookups_by_id(void **state)
{
	(void)state;
	char *dir = h_mkdtemp("cfgfast");
	char *token = h_strdupf("%s/token", dir);
	h_write_file(token, "t\n", (size_t)-1, 0600);
	size_t cap = 1 << 20, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "{ \"agent\": { \"id\": \"a\", \"lab_code\": \"L\","
		" \"timezone\": \"Asia/Shanghai\", \"state_dir\": \"%s/state\" }, \"platform\": { \"url\":"
		" \"https://127.0.0.1:9\", \"token_file\": \"%s\" }, \"buses\": [", dir, token);
	for (int b = 39; b >= 0; b--)
		len += (size_t)snprintf(text + len, cap - len, "%s{ \"id\": \"gw-%02d\", \"url\": \"tcp://127.0.0.1:%d\" }",
					b == 39 ? "" : ",", b, 1000 + b);
	len += (size_t)snprintf(text + len, cap - len, "], \"instruments\": [");
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s{ \"id\": \"I-%03d\", \"modbus\": { \"bus\": \"gw-%02d\","
					" \"unit\": 1, \"run_counter\": { \"table\": \"input\", \"address\": 0 } } }",
					i ? "," : "", (i * 37) % 200, (i * 7) % 40);
	snprintf(text + len, cap - len, "] }");
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	int r = config_parse("ids.json", text, strlen(text), &cfg, &errs);
	if (r != 0)
		fprintf(stderr, "%s\n", errs.n ? errs.msg[0] : "?");
	assert_int_equal(r, 0);
	assert_int_equal(cfg->n_instruments, 200);
	for (int i = 0; i < 200; i++) {
		const struct instrument_cfg *in = &cfg->instruments[i];
		char want[16];
		snprintf(want, sizeof(want), "gw-%02d", (i * 7) % 40);
		assert_string_equal(cfg->buses[in->modbus.bus_index].id, want);
		assert_ptr_equal(config_instrument(cfg, in->id), in);
	}
	assert_null(config_instrument(cfg, "I-200"));
	assert_null(config_instrument(cfg, ""));
	assert_null(config_instrument(cfg, NULL));
	config_free(cfg);
	config_errors_clear(&errs);
	free(text);
	free(token);
	h_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_same_as_cjson),
		cmocka_unit_test(test_edges_same_as_cjson),
		cmocka_unit_test(test_config_both_paths),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_lookups_by_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
