/* config.h — the agent's configuration (SPEC §3) as typed structs; config.c fills them from JSON. */
#ifndef LABSHARE_CONFIG_H
#define LABSHARE_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

enum user_ids_mode { USER_IDS_PLAIN, USER_IDS_HMAC, USER_IDS_OMIT };

enum mb_table { MB_TABLE_HOLDING, MB_TABLE_INPUT, MB_TABLE_COIL, MB_TABLE_DISCRETE };
/* MB_TYPE_BIT is implied for coils and discretes (no "type" key allowed there). */
enum mb_type { MB_TYPE_U16, MB_TYPE_U32, MB_TYPE_I32, MB_TYPE_U64, MB_TYPE_F32, MB_TYPE_BIT };
enum mb_word_order { MB_WORD_BIG, MB_WORD_LITTLE };

/* One Modbus point: a counter or the in-use signal. */
struct mb_point {
	bool present;
	enum mb_table table;
	uint16_t address;            /* 0..65535; the last register of the value must fit too */
	enum mb_type type;           /* default u16 for registers, BIT for coils/discretes */
	enum mb_word_order word_order; /* default big */
	double scale;                /* default 1.0; must be finite and > 0 */
	bool has_above;              /* in_use only: register value > above means in use */
	double above;
};

struct modbus_cfg {
	bool present;
	char *bus;                   /* the bus id, resolved to bus_index */
	size_t bus_index;
	int unit;                    /* 1..247 (SPEC), also for TCP gateways */
	int interval_s;              /* default 10, 1..86400 */
	struct mb_point run_counter, samples_counter, in_use; /* at least one present */
};

enum log_format { LOG_FMT_CSV, LOG_FMT_JSONL, LOG_FMT_REGEX, LOG_FMT_EVENTS };
enum log_encoding { LOG_ENC_UTF8, LOG_ENC_GBK };

/* Session fields a log can map (SPEC §3). SF_TIME exists only for "events" logs. */
enum session_field {
	SF_START, SF_END, SF_DURATION, SF_USER, SF_ORG, SF_SAMPLES,
	SF_EXTERNAL, SF_WAY, SF_FEE, SF_PROJECT, SF_TIME,
	SF__COUNT
};
extern const char *const session_field_names[SF__COUNT];

/* For csv: column names; for jsonl: keys; for regex/events: group numbers (0 = unmapped). */
struct field_map {
	char *name[SF__COUNT];
	int group[SF__COUNT];
};

struct log_cfg {
	char *path;                  /* a path or a glob(7) pattern */
	enum log_format format;
	enum log_encoding encoding;  /* default utf-8; "gbk" also accepts GB18030 */
	char *time_format;           /* strptime(3) format, or NULL for ISO 8601 / RFC 3339 */
	struct field_map fields;     /* csv, jsonl, regex */
	char *pattern;               /* regex: POSIX ERE */
	regex_t re;
	bool re_compiled;
	char *start_pattern, *end_pattern; /* events */
	regex_t start_re, end_re;
	bool start_re_compiled, end_re_compiled;
	struct field_map start_fields, end_fields; /* events: time, user, org, samples (…) */
	double max_session_h;        /* default 12 */
	bool follow_symlinks;        /* default false: a symbolic link (path or glob match) is not read */
};

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

enum bus_kind { BUS_TCP, BUS_RTU };

struct bus_cfg {
	char *id;
	char *url;
	enum bus_kind kind;
	char *host;                  /* tcp: IPv4, IPv6 (written [::1]) or name */
	int port;                    /* tcp: default 502 */
	char *device;                /* rtu */
	int baud;                    /* rtu: default 9600 */
	char parity;                 /* 'N', 'E', 'O'; default 'N' */
	int data_bits;               /* 5..8, default 8 */
	int stop_bits;               /* 1..2, default 1 */
	int timeout_ms;              /* default 500 */
	int gap_ms;                  /* default 0 for tcp, 5 for rtu */
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

const struct instrument_cfg *config_instrument(const struct config *cfg, const char *id);

/* The agent's secret files, which must never be read as a log: platform.token_file,
 * agent.user_id_key_file, platform.client_key (those configured). Fills out[0..n), n <= 3. */
#define CONFIG_SECRETS_MAX 3
size_t config_secret_paths(const struct config *cfg, const char *out[CONFIG_SECRETS_MAX]);

#endif
