/* source_conf.h — the part of the configuration that source drivers see (issue #14: no driver
 * can read the platform token): the buses, and per instrument its id, its Modbus part and its
 * logs, with the paths a log must never lead to. config.h includes it for the whole; drivers
 * compile with -Iagent/conf/part only, so config.h is out of their reach. */
#ifndef LABSHARE_SOURCE_CONF_H
#define LABSHARE_SOURCE_CONF_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Power-based in-use with hysteresis (a meter, SPEC §3): in use once power has stayed above
 * above_w for min_on_s, idle once it has stayed below below_w for min_off_s. */
struct mb_hysteresis {
	bool present;
	double above_w, below_w;     /* 0 <= below_w <= above_w */
	int min_on_s, min_off_s;     /* 0..86400, default 0 */
};

struct modbus_cfg {
	bool present;
	char *bus;                   /* the bus id, resolved to bus_index */
	size_t bus_index;
	int unit;                    /* 1..247 (SPEC), also for TCP gateways */
	int interval_s;              /* default 10, 1..86400 */
	struct mb_point run_counter, samples_counter, in_use; /* at least one present (or power) */
	/* A meter: "profile" names a built-in map (agent/conf/profiles/NAME.json), resolved at
	 * load with the points written beside it laid over; the driver sees only the result.
	 * power in W, energy (import, a counter) in kWh, voltage in V, frequency in Hz after scale. */
	char *profile;               /* NULL: none */
	struct mb_point power, energy, voltage, frequency;
	struct mb_hysteresis hyst;   /* in_use from power; then in_use (the point) is absent */
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

/* One instrument as a driver sees it. */
struct source_instrument {
	const char *id;
	const struct modbus_cfg *modbus;  /* never NULL; modbus->present says whether it has one */
	const struct log_cfg *logs;
	size_t n_logs;
};

#define SOURCE_NEVER_READ_MAX 3

struct source_conf {
	const struct bus_cfg *buses;
	size_t n_buses;
	struct source_instrument *instruments;
	size_t n_instruments;
	/* Files no log may lead to, by any name or link (the names only, never the contents):
	 * platform.token_file, agent.user_id_key_file, platform.client_key (those configured) … */
	const char *never_read[SOURCE_NEVER_READ_MAX];
	size_t n_never_read;
	const char *state_dir;            /* … and everything in the state folder */
};

#endif
