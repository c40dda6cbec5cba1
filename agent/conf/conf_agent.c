/* conf_agent.c — the configuration's agent, platform, nrii and buffer sections. */
#include "conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* ---- sections ---- */

void conf_parse_agent(struct ctx *c, const cJSON *o, struct agent_cfg *a)
{
	static const char *const keys[] = { "id", "lab_code", "timezone", "state_dir",
		"internal_orgs", "user_ids", "user_id_key_file", NULL };
	static const char *const modes[] = { "plain", "hmac", "omit", NULL };
	const char *P = "agent";
	char p[PATH_BUF];

	conf_check_keys(c, o, P, keys);
	a->id = conf_id_member(c, o, P, "id");
	a->lab_code = conf_xdup(c, conf_str_member(c, o, P, "lab_code", true));
	const char *tz = conf_str_member(c, o, P, "timezone", true);
	if (tz) {
		conf_check_timezone(c, o, P, tz);
		a->timezone = conf_xdup(c, tz);
	}
	if (conf_present(o, "state_dir"))
		a->state_dir = conf_file_member(c, o, P, "state_dir", false);
	else
		a->state_dir = conf_xdup(c, DEFAULT_STATE_DIR);

	const cJSON *orgs = conf_arr_member(c, o, P, "internal_orgs", false);
	size_t n = orgs ? (size_t)cJSON_GetArraySize(orgs) : 0;
	if (n && !(a->internal_orgs = calloc(n, sizeof(*a->internal_orgs))))
		c->nomem = true;
	if (orgs && a->internal_orgs) {
		size_t i = 0;
		for (const cJSON *e = orgs->child; e; e = e->next, i++) {
			const char *s = conf_str_value(c, e, conf_join_index(p, "agent.internal_orgs", i));
			if (s)
				a->internal_orgs[a->n_internal_orgs++] = conf_xdup(c, s);
		}
	}

	int mode = USER_IDS_PLAIN;
	conf_enum_member(c, o, P, "user_ids", false, modes, false, &mode);
	a->user_ids = (enum user_ids_mode)mode;
	a->user_id_key_file = conf_file_member(c, o, P, "user_id_key_file", false);
	if (a->user_ids != USER_IDS_HMAC)
		return;
	if (!conf_present(o, "user_id_key_file")) {
		if (!conf_get(o, "user_id_key_file"))
			conf_err_val(c, o, conf_join(p, P, "user_id_key_file"),
				     "missing required key (user_ids is \"hmac\")");
		else
			conf_err_val(c, conf_get(o, "user_id_key_file"),
				     conf_join(p, P, "user_id_key_file"),
				     "must be a string (user_ids is \"hmac\")");
		return;
	}
	if (!a->user_id_key_file)
		return;
	size_t len = 0;
	char *key = conf_read_secret(c, o, P, "user_id_key_file", a->user_id_key_file, &len);
	if (!key)
		return;
	/* The key is bytes; only the line end an editor adds is not part of it. */
	while (len && (key[len - 1] == '\n' || key[len - 1] == '\r'))
		key[--len] = '\0';
	if (len == 0) {
		conf_err_val(c, conf_get(o, "user_id_key_file"), conf_join(p, P, "user_id_key_file"),
			     "\"%s\" is empty", a->user_id_key_file);
		free(key);
		return;
	}
	a->user_id_key = (unsigned char *)key;
	a->user_id_key_len = len;
}

void conf_parse_platform(struct ctx *c, const cJSON *o, struct platform_cfg *pl)
{
	static const char *const keys[] = { "url", "token_file", "ca_file", "client_cert",
		"client_key", "upload_interval_s", "batch_max_records", "timeout_s", "proxy", NULL };
	const char *P = "platform";
	char p[PATH_BUF], host[256];

	pl->present = true;
	conf_check_keys(c, o, P, keys);

	const char *url = conf_str_member(c, o, P, "url", true);
	if (url) {
		bool https = false;
		const char *why = conf_http_url(url, &https, host, sizeof(host));
		if (!why && !https && !conf_is_loopback(host))
			why = "plain http:// is only allowed to a loopback address (use https://)";
		if (why) {
			conf_err_val(c, conf_get(o, "url"), conf_join(p, P, "url"), "%s", why);
		} else if ((pl->url = conf_xdup(c, url))) {
			size_t n = strlen(pl->url);
			while (n > 0 && pl->url[n - 1] == '/')
				pl->url[--n] = '\0';  /* feeds go to {url}/v1/feeds */
		}
	}

	pl->token_file = conf_file_member(c, o, P, "token_file", true);
	size_t len = 0;
	char *tok = pl->token_file ? conf_read_secret(c, o, P, "token_file", pl->token_file, &len) : NULL;
	if (tok) {
		char *s = tok, *e = tok + len;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
			e--;
		*e = '\0';
		bool clean = s < e;
		for (const char *q = s; q < e; q++)
			clean = clean && (unsigned char)*q > ' ' && (unsigned char)*q < 0x7f;
		if (s == e)
			conf_err_val(c, conf_get(o, "token_file"), conf_join(p, P, "token_file"),
				     "\"%s\" is empty", pl->token_file);
		else if (!clean)
			/* it goes into an HTTP header: a stray line break would split it */
			conf_err_val(c, conf_get(o, "token_file"), conf_join(p, P, "token_file"),
				     "the token in \"%s\" must be one line of printable ASCII without spaces",
				     pl->token_file);
		else
			pl->token = conf_xdup(c, s);
		explicit_bzero(tok, len);
		free(tok);
	}

	const char *files[] = { "ca_file", "client_cert", "client_key" };
	char **dest[] = { &pl->ca_file, &pl->client_cert, &pl->client_key };
	for (int i = 0; i < 3; i++) {
		*dest[i] = conf_file_member(c, o, P, files[i], false);
		if (*dest[i] && !conf_check_readable(c, o, P, files[i], *dest[i])) {
			free(*dest[i]);
			*dest[i] = NULL;
		}
	}
	if (conf_present(o, "client_cert") != conf_present(o, "client_key")) {
		const char *has = conf_present(o, "client_cert") ? "client_cert" : "client_key";
		const char *lacks = conf_present(o, "client_cert") ? "client_key" : "client_cert";
		conf_err_key(c, conf_get(o, has), conf_join(p, P, has), "needs \"%s\" too", lacks);
	}
	pl->proxy = conf_xdup(c, conf_str_member(c, o, P, "proxy", false));
	conf_int_member(c, o, P, "upload_interval_s", false, 1, 86400, &pl->upload_interval_s);
	conf_int_member(c, o, P, "batch_max_records", false, 1, 100000, &pl->batch_max_records);
	conf_int_member(c, o, P, "timeout_s", false, 1, 3600, &pl->timeout_s);
}

void conf_parse_nrii(struct ctx *c, const cJSON *o, struct nrii_cfg *n)
{
	static const char *const keys[] = { "url", "ins_code", "insecure_http", "codes", "defaults",
		NULL };
	static const char *const dkeys[] = { "service_way", "service_direction", "subject_income",
		"subject_area", "comment", "service_content", NULL };
	static const char *const codes[] = { "int", "labels", NULL };
	const char *P = "nrii";
	char p[PATH_BUF], host[256];

	n->present = true;
	conf_check_keys(c, o, P, keys);
	conf_bool_member(c, o, P, "insecure_http", &n->insecure_http);
	const char *url = conf_str_member(c, o, P, "url", true);
	if (url) {
		bool https = false;
		const char *why = conf_http_url(url, &https, host, sizeof(host));
		if (!why && !https && !n->insecure_http)
			why = "plain http:// needs \"insecure_http\": true";
		if (why)
			conf_err_val(c, conf_get(o, "url"), conf_join(p, P, "url"), "%s", why);
		else
			n->url = conf_xdup(c, url);
	}
	n->ins_code = conf_xdup(c, conf_str_member(c, o, P, "ins_code", true));
	int k = NRII_CODES_INT;
	conf_enum_member(c, o, P, "codes", false, codes, false, &k);
	n->codes = (enum nrii_codes)k;

	const cJSON *d = conf_obj_member(c, o, P, "defaults", false);
	const char *D = "nrii.defaults";
	if (d)
		conf_check_keys(c, d, D, dkeys);
	/* The SPEC example's values: what a lab typically reports. */
	const char *skeys[] = { "service_way", "subject_income", "subject_area", "comment",
		"service_content" };
	const char *sdefs[] = { "占用共享", "其他", "化学", "基本满意", "仪器测试" };
	char **dest[] = { &n->service_way, &n->subject_income, &n->subject_area, &n->comment,
		&n->service_content };
	for (int i = 0; i < 5; i++) {
		const char *s = d ? conf_str_member(c, d, D, skeys[i], false) : NULL;
		*dest[i] = conf_xdup(c, s ? s : sdefs[i]);
	}
	n->service_direction = 135;
	if (d)
		conf_int_member(c, d, D, "service_direction", false, 135, 138, &n->service_direction);
}

void conf_parse_buffer(struct ctx *c, const cJSON *o, struct buffer_cfg *b)
{
	static const char *const keys[] = { "max_mb", "keep_acked_days", NULL };
	int mb = (int)b->max_mb;
	conf_check_keys(c, o, "buffer", keys);
	if (conf_int_member(c, o, "buffer", "max_mb", false, 1, 1048576, &mb))
		b->max_mb = mb;
	conf_int_member(c, o, "buffer", "keep_acked_days", false, 1, 36500, &b->keep_acked_days);
}
