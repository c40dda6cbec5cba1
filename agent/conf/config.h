/* config.h — the agent's configuration (SPEC §3) as typed structs; config.c fills them from JSON. */
#ifndef LABSHARE_CONFIG_H
#define LABSHARE_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "part/source_conf.h" /* the drivers' part: buses, modbus, logs */

struct cJSON;

enum user_ids_mode { USER_IDS_PLAIN, USER_IDS_HMAC, USER_IDS_OMIT };

struct instrument_cfg {
	char *id;
	char *name;                  /* default: the id */
	char *inner_id;              /* optional (required when nrii is configured) */
	bool has_worth;
	double worth_wan;
	int rated_hours;             /* default 1400 */
	struct modbus_cfg modbus;
	struct log_cfg *logs;
	size_t n_logs;
	struct cJSON *nrii_profile;  /* optional object, owned */
};

struct platform_cfg {
	bool present;
	char *url;                   /* feeds go to {url}/v1/feeds; no trailing slash kept */
	char *token_file;
	char *token;                 /* read from token_file, surrounding whitespace cut */
	char *ca_file, *client_cert, *client_key, *proxy; /* NULL when null/absent */
	int upload_interval_s;       /* default 60 */
	int batch_max_records;       /* default 1000 */
	int timeout_s;               /* default 30 */
};

enum nrii_codes { NRII_CODES_INT, NRII_CODES_LABELS };

struct nrii_cfg {
	bool present;
	char *url;
	char *ins_code;
	bool insecure_http;
	enum nrii_codes codes;       /* default int */
	char *service_way;           /* defaults.*, with the SPEC example's values as defaults */
	int service_direction;       /* 135..138 */
	char *subject_income, *subject_area, *comment, *service_content;
};

struct buffer_cfg {
	int64_t max_mb;              /* default 1024 */
	int keep_acked_days;         /* default 400 */
};

struct agent_cfg {
	char *id;
	char *lab_code;
	char *timezone;
	char *state_dir;             /* default /var/lib/labshare-agent */
	char **internal_orgs;
	size_t n_internal_orgs;
	enum user_ids_mode user_ids; /* default plain */
	char *user_id_key_file;
	unsigned char *user_id_key;  /* read from the file when hmac */
	size_t user_id_key_len;
};

struct config {
	char *path;
	struct agent_cfg agent;
	struct platform_cfg platform;
	struct nrii_cfg nrii;
	struct buffer_cfg buffer;
	struct bus_cfg *buses;
	size_t n_buses;
	struct instrument_cfg *instruments;
	size_t n_instruments;
	size_t *by_id;               /* indexes of instruments, sorted by id (config_instrument) */
	size_t n_by_id;
};

/* Errors found while loading: every one, in file order, each a complete
 * "agent.json:14:9: instruments[2].modbus.unit: must be 1..247" line. */
struct config_errors {
	char **msg;
	size_t n;
};

/* Load and validate. Returns 0 and *out on success; -ENOENT (or another
 * negative errno) when the file can't be read; -EINVAL when it is invalid, with
 * every problem in errs. errs may be NULL.
 * Messages are appended to errs (zero it first; config_errors_clear frees them); a
 * file that can't be read gives one "path: why" message too. Past 200 problems the
 * rest are counted in a last "path: N more problems not shown".
 * Relative file names in the config (token, key, TLS files, log paths, state_dir)
 * are resolved against the config file's folder and stored absolute. */
int config_load(const char *path, struct config **out, struct config_errors *errs);
/* Same from a string; name is used in messages (and relative files resolve against cwd). */
int config_parse(const char *name, const char *text, size_t len, struct config **out,
		 struct config_errors *errs);
void config_free(struct config *cfg);
void config_errors_clear(struct config_errors *errs);

/* By id, in O(log n) (a sorted index built once by the parse); NULL when not configured. */
const struct instrument_cfg *config_instrument(const struct config *cfg, const char *id);

/* The drivers' part of cfg (source_conf.h), for source_ops.create: it borrows from cfg, which
 * must outlive it. NULL when out of memory. */
struct source_conf *config_source_conf(const struct config *cfg);
void source_conf_free(struct source_conf *sc);

/* The agent's secret files, which must never be read as a log: platform.token_file,
 * agent.user_id_key_file, platform.client_key (those configured). Fills out[0..n), n <= 3. */
#define CONFIG_SECRETS_MAX 3
size_t config_secret_paths(const struct config *cfg, const char *out[CONFIG_SECRETS_MAX]);

#endif
