/* test_core.c — the core's user ids (SPEC §3 user_ids "hmac"): every session of a batch carries
 * HMAC-SHA256 of its user under the lab's key, from the keyed context the core keeps, exactly
 * what the one-shot HMAC gives; a configuration reloaded with another key is followed at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentfix.h"
#include "buffer.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"

/* 2026-11-02T00:00:00Z */
#define T0 1793577600LL

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"UTC\", \"state_dir\": \"%s/state\","
	"    \"user_ids\": \"hmac\", \"user_id_key_file\": \"%s\", \"internal_orgs\": [\"山西大学\"] },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
	"  \"instruments\": [ { \"id\": \"LOG\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\", \"format\": \"csv\","
	"        \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }";

struct env {
	char *keys;
	char *key1, *key2;
	struct agent_fix *f;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->keys = h_mkdtemp("test_core_keys");
	e->key1 = h_path(e->keys, "one.key");
	e->key2 = h_path(e->keys, "two.key");
	h_write_file(e->key1, "lab-secret-key\n", (size_t)-1, 0600);
	h_write_file(e->key2, "another key, longer than the block of SHA-256 by a good margin: "
			      "0123456789abcdef0123456789abcdef\n", (size_t)-1, 0600);
	char *cfg = h_strdupf(config_fmt, "@DIR@", e->key1, "@DIR@");
	e->f = agent_fix_new("test_core", cfg, "UTC", T0 + 86400);
	free(cfg);
	assert_non_null(e->f);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	agent_fix_free(e->f);
	h_rmtree(e->keys);
	free(e->keys);
	free(e->key1);
	free(e->key2);
	free(e);
	return 0;
}

/* The one-shot HMAC of user under the key the configuration read, as hex. */
static void expect_hex(const struct config *cfg, const char *user, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	assert_non_null(HMAC(EVP_sha256(), cfg->agent.user_id_key, (int)cfg->agent.user_id_key_len,
			     (const unsigned char *)user, strlen(user), md, &len));
	assert_int_equal(len, 32);
	for (unsigned i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct users {
	char *v[16];
	size_t n;
};

static int collect(const struct stored_record *r, void *arg)
{
	struct users *u = arg;
	cJSON *o = cJSON_ParseWithLength(r->line, r->line_len);
	assert_non_null(o);
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(o, "user");
	if (u->n < 16 && strcmp(r->kind, "session") == 0)
		u->v[u->n++] = strdup(cJSON_IsString(user) ? user->valuestring : "-");
	cJSON_Delete(o);
	return 0;
}

static void submit(struct agent_fix *f, const char *const *users, size_t n, int64_t from)
{
	struct obs v[8];
	for (size_t i = 0; i < n; i++)
		v[i] = (struct obs){ .type = OBS_SESSION, .instrument = "LOG",
			.u.session = { .start = from + (int64_t)i * 3600, .end = from + (int64_t)i * 3600 + 600,
				       .user = users[i], .org = "X", .external = -1, .samples = -1 } };
	assert_int_equal(core_submit(f->core, v, n, NULL, NULL, 0), 0);
}

static void test_hmac_users(void **state)
{
	struct env *e = *state;
	struct agent_fix *f = e->f;
	static const char *const batch[] = { "张三", "ann", "张三", NULL, "", "ann" };
	submit(f, batch, 6, T0);

	/* Another key: the configuration reloaded (the core keeps a context per key). */
	char *text = h_strdupf(config_fmt, f->dir, e->key2, f->dir);
	struct config *cfg2 = NULL;
	struct config_errors errs = { 0 };
	assert_int_equal(config_parse("two.json", text, strlen(text), &cfg2, &errs), 0);
	free(text);
	core_set_config(f->core, cfg2);
	static const char *const again[] = { "ann", "张三" };
	submit(f, again, 2, T0 + 10 * 3600);
	core_set_config(f->core, f->cfg);
	static const char *const back[] = { "ann" };
	submit(f, back, 1, T0 + 20 * 3600);

	struct users u = { 0 };
	assert_int_equal(buffer_each_record(f->buf, 1, INT64_MAX, collect, &u), 0);
	assert_int_equal(u.n, 9);
	const struct {
		const struct config *cfg;
		const char *user;
	} want[] = {
		{ f->cfg, "张三" }, { f->cfg, "ann" }, { f->cfg, "张三" }, { NULL, NULL }, { f->cfg, "" },
		{ f->cfg, "ann" }, { cfg2, "ann" }, { cfg2, "张三" }, { f->cfg, "ann" },
	};
	for (size_t i = 0; i < u.n; i++) {
		char hex[65] = "-";
		if (want[i].user)
			expect_hex(want[i].cfg, want[i].user, hex);
		if (strcmp(u.v[i], hex) != 0)
			fail_msg("session %zu: user %s, want %s", i, u.v[i], hex);
		/* What the one-shot path of core_user_id says too. */
		if (want[i].user) {
			char *one = core_user_id(want[i].cfg, want[i].user);
			assert_string_equal(one, hex);
			free(one);
		}
		free(u.v[i]);
	}
	config_free(cfg2);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hmac_users, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
