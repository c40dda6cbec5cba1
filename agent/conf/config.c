/* config.c — agent.json (SPEC §3) into struct config. Every problem is collected with its
 * file:line:col and JSON path, so `labshare-agent check` can list them all in one go.
 * This file: the file and its top level; each section's walk in conf_*.c. */
#include "conf_check.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const session_field_names[SF__COUNT] = {
	[SF_START] = "start", [SF_END] = "end", [SF_DURATION] = "duration", [SF_USER] = "user",
	[SF_ORG] = "org", [SF_SAMPLES] = "samples", [SF_EXTERNAL] = "external", [SF_WAY] = "way",
	[SF_FEE] = "fee", [SF_PROJECT] = "project", [SF_TIME] = "time",
};

static void parse_root(struct ctx *c, const cJSON *root, struct config *cfg)
{
	static const char *const keys[] = { "agent", "platform", "nrii", "buffer", "buses",
		"instruments", NULL };
	const cJSON *v;

	if (!cJSON_IsObject(root)) {
		conf_err_val(c, root, ROOT_PATH, "must be an object");
		return;
	}
	conf_check_keys(c, root, "", keys);
	c->nrii = conf_present(root, "nrii");

	if ((v = conf_obj_member(c, root, "", "agent", true)))
		conf_parse_agent(c, v, &cfg->agent);
	if ((v = conf_obj_member(c, root, "", "platform", false)))
		conf_parse_platform(c, v, &cfg->platform);
	if ((v = conf_obj_member(c, root, "", "nrii", false)))
		conf_parse_nrii(c, v, &cfg->nrii);
	if (!conf_present(root, "platform") && !conf_present(root, "nrii"))
		conf_err_val(c, root, "platform", "missing required key (or \"nrii\")");
	if ((v = conf_obj_member(c, root, "", "buffer", false)))
		conf_parse_buffer(c, v, &cfg->buffer);
	if ((v = conf_arr_member(c, root, "", "buses", false)))
		conf_parse_buses(c, v, cfg);
	if ((v = conf_arr_member(c, root, "", "instruments", true)))
		conf_parse_instruments(c, v, cfg);
}

/* ---- the interface ---- */

static void set_defaults(struct config *cfg)
{
	cfg->platform.upload_interval_s = 60;
	cfg->platform.batch_max_records = 1000;
	cfg->platform.timeout_s = 30;
	cfg->buffer.max_mb = 1024;
	cfg->buffer.keep_acked_days = 400;
	cfg->nrii.service_direction = 135;
	/* instrument, bus and log defaults are set as each one is read */
}

static int parse_with_base(const char *name, const char *base_dir, const char *text, size_t len,
			   struct config **out, struct config_errors *errs)
{
	struct ctx c = { .name = name, .base_dir = base_dir };
	struct jsonc_doc *doc = NULL;
	struct config *cfg = NULL;
	int rc;

	*out = NULL;
	if ((rc = jsonc_parse(text, len, &doc)) < 0)
		return rc;
	c.doc = doc;
	if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(name))) {
		rc = -ENOMEM;
		goto done;
	}
	set_defaults(cfg);

	for (size_t i = 0; i < jsonc_n_problems(doc); i++) {
		const struct jsonc_problem *pr = jsonc_problem(doc, i);
		conf_err_at(&c, pr->off, NULL, "%s", pr->msg);
	}
	c.dropped += jsonc_n_dropped(doc);
	if (jsonc_root(doc))
		parse_root(&c, jsonc_root(doc), cfg);
	rc = c.nomem ? -ENOMEM : c.n ? -EINVAL : 0;

done:
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), conf_problem_cmp);
	char *more = c.dropped ? conf_strdupf("%s: %zu more problems not shown", name, c.dropped)
			       : NULL;
	char **nm = errs && c.n ? reallocarray(errs->msg, errs->n + c.n + (more != NULL),
					       sizeof(*nm)) : NULL;
	if (nm)
		errs->msg = nm;
	for (size_t i = 0; i < c.n; i++) {
		if (nm)
			errs->msg[errs->n++] = c.v[i].msg;
		else
			free(c.v[i].msg);
	}
	if (nm && more)
		errs->msg[errs->n++] = more;
	else
		free(more);
	free(c.v);
	free(c.bus_by_id);
	jsonc_free(doc);
	if (rc == 0)
		*out = cfg;
	else
		config_free(cfg);
	return rc;
}

int config_parse(const char *name, const char *text, size_t len, struct config **out,
		 struct config_errors *errs)
{
	return parse_with_base(name, NULL, text, len, out, errs);
}

/* One message for a file that can't be read, so that `check` can print errs alone. */
static int file_error(const char *path, int err, const char *why, struct config_errors *errs)
{
	char *msg = errs ? conf_strdupf("%s: %s", path, why) : NULL;
	char **nm = msg ? reallocarray(errs->msg, errs->n + 1, sizeof(*nm)) : NULL;
	if (!nm) {
		free(msg);
		return -err;
	}
	errs->msg = nm;
	errs->msg[errs->n++] = msg;
	return -err;
}

/* The absolute folder of the config file; NULL only when out of memory. */
static char *base_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dl = slash ? (size_t)(slash - path) : 0;
	char cwd[PATH_MAX];

	if (slash == path)
		return strdup("/");
	if (path[0] == '/')
		return strndup(path, dl);
	if (!getcwd(cwd, sizeof(cwd)))
		return slash ? strndup(path, dl) : strdup(".");
	size_t sz = strlen(cwd) + 1 + dl + 1;
	char *base = malloc(sz);
	if (base)
		snprintf(base, sz, "%s%s%.*s", cwd, dl && strcmp(cwd, "/") != 0 ? "/" : "", (int)dl,
			 path);
	return base;
}

int config_load(const char *path, struct config **out, struct config_errors *errs)
{
	size_t n = 0;
	char *text = NULL;

	*out = NULL;
	/* open_regular: non-blocking, so a FIFO named by mistake is refused instead of waited on. */
	struct stat st;
	int fd = conf_open_regular(path, &st);
	if (fd == -EINVAL)
		return file_error(path, EINVAL, "not a regular file", errs);
	if (fd < 0) {
		errno = -fd;
	} else if (st.st_size > (off_t)CONFIG_MAX_BYTES) {
		close(fd);
		errno = EFBIG;
	} else {
		text = fileio_read_all(fd, CONFIG_MAX_BYTES, &n);
		int err = errno;
		close(fd);
		errno = err;
	}
	if (!text) {
		int err = errno;
		if (err == ENOMEM)
			return -ENOMEM;
		return file_error(path, err, err == EFBIG ? "larger than 4 MiB: not a configuration file"
							  : strerror(err), errs);
	}

	char *base = base_dir_of(path);
	int rc = base ? parse_with_base(path, base, text, n, out, errs) : -ENOMEM;
	free(base);
	free(text);
	return rc;
}

static void free_fields(struct field_map *fm)
{
	for (int i = 0; i < SF__COUNT; i++)
		free(fm->name[i]);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	struct agent_cfg *a = &cfg->agent;
	free(a->id);
	free(a->lab_code);
	free(a->timezone);
	free(a->state_dir);
	for (size_t i = 0; i < a->n_internal_orgs; i++)
		free(a->internal_orgs[i]);
	free(a->internal_orgs);
	free(a->user_id_key_file);
	if (a->user_id_key)
		explicit_bzero(a->user_id_key, a->user_id_key_len);
	free(a->user_id_key);

	struct platform_cfg *p = &cfg->platform;
	free(p->url);
	free(p->token_file);
	if (p->token)
		explicit_bzero(p->token, strlen(p->token));
	free(p->token);
	free(p->ca_file);
	free(p->client_cert);
	free(p->client_key);
	free(p->proxy);

	struct nrii_cfg *n = &cfg->nrii;
	free(n->url);
	free(n->ins_code);
	free(n->service_way);
	free(n->subject_income);
	free(n->subject_area);
	free(n->comment);
	free(n->service_content);

	for (size_t i = 0; i < cfg->n_buses; i++) {
		free(cfg->buses[i].id);
		free(cfg->buses[i].url);
		free(cfg->buses[i].host);
		free(cfg->buses[i].device);
	}
	free(cfg->buses);

	for (size_t i = 0; i < cfg->n_instruments; i++) {
		struct instrument_cfg *in = &cfg->instruments[i];
		free(in->id);
		free(in->name);
		free(in->inner_id);
		free(in->modbus.bus);
		free(in->modbus.profile);
		for (size_t j = 0; j < in->n_logs; j++) {
			struct log_cfg *l = &in->logs[j];
			free(l->path);
			free(l->time_format);
			free(l->pattern);
			free(l->start_pattern);
			free(l->end_pattern);
			if (l->re_compiled)
				regfree(&l->re);
			if (l->start_re_compiled)
				regfree(&l->start_re);
			if (l->end_re_compiled)
				regfree(&l->end_re);
			free_fields(&l->fields);
			free_fields(&l->start_fields);
			free_fields(&l->end_fields);
		}
		free(in->logs);
		cJSON_Delete(in->nrii_profile);
	}
	free(cfg->instruments);
	free(cfg->by_id);
	free(cfg->path);
	free(cfg);
}

void config_errors_clear(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

size_t config_secret_paths(const struct config *cfg, const char *out[CONFIG_SECRETS_MAX])
{
	const char *all[CONFIG_SECRETS_MAX] = { cfg->platform.token_file, cfg->agent.user_id_key_file,
						cfg->platform.client_key };
	size_t n = 0;
	for (size_t i = 0; i < CONFIG_SECRETS_MAX; i++)
		if (all[i])
			out[n++] = all[i];
	return n;
}

const struct instrument_cfg *config_instrument(const struct config *cfg, const char *id)
{
	if (!cfg || !id)
		return NULL;
	if (!cfg->by_id) {
		for (size_t i = 0; i < cfg->n_instruments; i++)
			if (cfg->instruments[i].id && strcmp(cfg->instruments[i].id, id) == 0)
				return &cfg->instruments[i];
		return NULL;
	}
	/* The first of equal ids (the lowest index: sorted by id, then index), as a scan would. */
	size_t lo = 0, hi = cfg->n_by_id;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(cfg->instruments[cfg->by_id[mid]].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < cfg->n_by_id && strcmp(cfg->instruments[cfg->by_id[lo]].id, id) == 0)
		return &cfg->instruments[cfg->by_id[lo]];
	return NULL;
}

_Static_assert(SOURCE_NEVER_READ_MAX == CONFIG_SECRETS_MAX, "every secret is a file no log may read");

struct source_conf *config_source_conf(const struct config *cfg)
{
	struct source_conf *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (cfg->n_instruments &&
	    !(sc->instruments = calloc(cfg->n_instruments, sizeof(*sc->instruments)))) {
		free(sc);
		return NULL;
	}
	sc->buses = cfg->buses;
	sc->n_buses = cfg->n_buses;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *in = &cfg->instruments[i];
		sc->instruments[i] = (struct source_instrument){ in->id, &in->modbus, in->logs, in->n_logs };
	}
	sc->n_instruments = cfg->n_instruments;
	sc->n_never_read = config_secret_paths(cfg, sc->never_read);
	sc->state_dir = cfg->agent.state_dir;
	return sc;
}

void source_conf_free(struct source_conf *sc)
{
	if (!sc)
		return;
	free(sc->instruments);
	free(sc);
}
