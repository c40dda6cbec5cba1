/* profiles.c — the built-in meter profiles: the files the Makefile embeds (conf_profile_files,
 * generated build/gen/profiles.S), each parsed with jsonc and the config's point checks, so a
 * problem names profiles/NAME.json:line:col like any config error. */
#include "profiles.h"
#include "conf_check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Makefile's table: one entry per agent/conf/profiles/NAME.json, then a NULL name. */
struct profile_file {
	const char *name;
	const char *data;
	size_t len;
};
extern const struct profile_file conf_profile_files[];

static struct meter_profile *profiles;
static size_t n_profiles;
static char **problems;
static size_t n_problems;
static char names[1024];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

static void parse_points(struct ctx *c, const cJSON *o, const char *P, struct meter_profile *mp)
{
	static const char *const keys[] = { "power", "energy", "voltage", "frequency", NULL };
	struct mb_point *dest[] = { &mp->power, &mp->energy, &mp->voltage, &mp->frequency };
	char p[PATH_BUF];
	conf_check_keys(c, o, P, keys);
	for (int i = 0; keys[i]; i++) {
		const cJSON *pt = conf_obj_member(c, o, P, keys[i], i < 2);
		if (pt)
			conf_parse_point(c, pt, conf_join(p, P, keys[i]), CONF_POINT_METER, dest[i]);
	}
}

static void parse_profile(struct ctx *c, const cJSON *o, const char *file, struct meter_profile *mp)
{
	static const char *const keys[] = { "name", "model", "phases", "source", "defaults", "points", NULL };
	static const char *const dkeys[] = { "baud", "parity", NULL };
	static const char *const parities[] = { "N", "E", "O", NULL };
	if (!cJSON_IsObject(o)) {
		conf_err_val(c, o, ROOT_PATH, "must be an object");
		return;
	}
	conf_check_keys(c, o, "", keys);
	const char *name = conf_str_member(c, o, "", "name", true);
	if (name && (strcmp(name, file) != 0 || !name_ok(name)))
		conf_err_val(c, conf_get(o, "name"), "name", "must be the file's name, \"%s\" ([a-z0-9-]+)", file);
	mp->name = conf_xdup(c, file);
	mp->model = conf_xdup(c, conf_str_member(c, o, "", "model", true));
	const char *src = conf_str_member(c, o, "", "source", true);
	if (src && !*src)
		conf_err_val(c, conf_get(o, "source"), "source", "must name the public document the map is from");
	mp->source = conf_xdup(c, src);
	if (conf_int_member(c, o, "", "phases", true, 1, 3, &mp->phases) && mp->phases == 2)
		conf_err_val(c, conf_get(o, "phases"), "phases", "must be 1 or 3");
	const cJSON *d = conf_obj_member(c, o, "", "defaults", false);
	if (d) {
		conf_check_keys(c, d, "defaults", dkeys);
		conf_int_member(c, d, "defaults", "baud", false, 300, 921600, &mp->baud);
		int par;
		if (conf_enum_member(c, d, "defaults", "parity", false, parities, false, &par))
			mp->parity = parities[par][0];
	}
	const cJSON *pts = conf_obj_member(c, o, "", "points", true);
	if (pts)
		parse_points(c, pts, "points", mp);
}

static void add_problem(char *msg)
{
	char **v = msg ? realloc(problems, (n_problems + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(msg);
		return;
	}
	problems = v;
	problems[n_problems++] = msg;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct meter_profile *)a)->name, ((const struct meter_profile *)b)->name);
}

static void load(void)
{
	size_t n = 0;
	while (conf_profile_files[n].name)
		n++;
	profiles = calloc(n ? n : 1, sizeof(*profiles));
	if (!profiles)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct profile_file *pf = &conf_profile_files[i];
		char *fname = conf_strdupf("profiles/%s.json", pf->name);
		struct jsonc_doc *doc = NULL;
		if (!fname || jsonc_parse(pf->data, pf->len, &doc) < 0) {
			free(fname);
			add_problem(conf_strdupf("profiles/%s.json: out of memory", pf->name));
			continue;
		}
		struct ctx c = { .name = fname, .doc = doc };
		for (size_t k = 0; k < jsonc_n_problems(doc); k++)
			conf_err_at(&c, jsonc_problem(doc, k)->off, NULL, "%s", jsonc_problem(doc, k)->msg);
		struct meter_profile mp = { 0 };
		if (jsonc_root(doc))
			parse_profile(&c, jsonc_root(doc), pf->name, &mp);
		if (c.n > 1)
			qsort(c.v, c.n, sizeof(*c.v), conf_problem_cmp);
		for (size_t k = 0; k < c.n; k++)
			add_problem(c.v[k].msg);
		if (c.n == 0 && !c.nomem) {
			profiles[n_profiles++] = mp;
		} else {
			free(mp.name);
			free(mp.model);
			free(mp.source);
		}
		free(c.v);
		jsonc_free(doc);
		free(fname);
	}
	qsort(profiles, n_profiles, sizeof(*profiles), by_name);
	size_t at = 0;
	for (size_t i = 0; i < n_profiles && at < sizeof(names); i++) {
		int w = snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "", profiles[i].name);
		if (w < 0)
			break;
		at += (size_t)w;
	}
}

const struct meter_profile *profiles_all(size_t *n)
{
	pthread_once(&once, load);
	*n = n_profiles;
	return profiles;
}

const struct meter_profile *profile_find(const char *name)
{
	size_t n;
	const struct meter_profile *v = profiles_all(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

const char *const *profiles_problems(size_t *n)
{
	pthread_once(&once, load);
	*n = n_problems;
	return (const char *const *)problems;
}

const char *profile_problem(const char *name)
{
	size_t n;
	const char *const *v = profiles_problems(&n);
	char prefix[96];
	snprintf(prefix, sizeof(prefix), "profiles/%s.json:", name);
	for (size_t i = 0; i < n; i++)
		if (strncmp(v[i], prefix, strlen(prefix)) == 0)
			return v[i];
	return NULL;
}

const char *profiles_names(void)
{
	pthread_once(&once, load);
	return names;
}
