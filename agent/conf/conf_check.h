/* conf_check.h — what the parts of the config reader share, seen by no one outside agent/conf:
 * the problems collected (struct ctx) and the checker helpers (conf_check.c) that each section's
 * walk uses: config.c (the file, the top level), conf_agent.c (agent, platform, nrii, buffer),
 * conf_instruments.c (buses, instruments and their modbus part), conf_logs.c (an instrument's
 * logs) and conf_url.c (platform and bus URLs). */
#ifndef LABSHARE_CONF_CHECK_H
#define LABSHARE_CONF_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "jsonc.h"
#include "log.h"

#define CONFIG_MAX_BYTES ((size_t)4 << 20)  /* a real config is a few KiB */
#define SECRET_MAX_BYTES 4096               /* token and user-id key files */
#define PATTERN_MAX_BYTES 4096              /* a log line regex; regcomp's cost grows with it */
#define PATTERN_MAX_WEIGHT 20000            /* atoms once {n} repeats are unrolled; see regex_weight */
#define PATH_BUF 256                        /* JSON paths; a longer one is cut in messages */
#define PROBLEMS_MAX 200                    /* more are counted, and the count reported */
#define DEFAULT_STATE_DIR "/var/lib/labshare-agent"
#define ROOT_PATH "(top level)"

struct problem {
	size_t off, seq;  /* sorted by place in the file, then by the order found */
	char *msg;
};

struct ctx {
	const char *name;        /* the file name as given, for messages */
	const char *base_dir;    /* relative file names resolve against it; NULL: as given */
	const struct jsonc_doc *doc;
	struct problem *v;
	size_t n, cap;
	size_t dropped;          /* problems past PROBLEMS_MAX */
	bool nomem;
	bool nrii;               /* "nrii" is configured: every instrument needs inner_id */
	size_t *bus_by_id;       /* indexes of cfg->buses sorted by id (then index), for the
				  * instruments' "bus"; NULL: none, or look them up in order */
	size_t n_bus_by_id;
};

/* Finds repeated ids among n entries; a sort keeps it fast for generated configs. */
struct id_ref { const char *id; size_t index; };

/* conf_check.c */
char *conf_strdupf(const char *fmt, ...) PRINTF_LIKE(1, 2);
void conf_err_at(struct ctx *c, size_t off, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
void conf_err_val(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
void conf_err_key(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
int conf_problem_cmp(const void *a, const void *b);
const char *conf_join(char *buf, const char *parent, const char *key);
const char *conf_join_index(char *buf, const char *parent, size_t i);
char *conf_xdup(struct ctx *c, const char *s);
const cJSON *conf_get(const cJSON *obj, const char *key);
bool conf_present(const cJSON *obj, const char *key);
void conf_err_missing(struct ctx *c, const cJSON *obj, const char *path, const char *key);
bool conf_in_list(const char *s, const char *const *list);
void conf_err_unknown(struct ctx *c, const cJSON *m, const char *path, const char *const *allowed);
void conf_check_keys(struct ctx *c, const cJSON *obj, const char *path, const char *const *allowed);
const cJSON *conf_obj_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required);
const cJSON *conf_arr_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required);
const char *conf_str_value(struct ctx *c, const cJSON *v, const char *path);
const char *conf_str_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			    bool required);
bool conf_is_integer(const cJSON *v);
bool conf_int_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		     bool required, long long min, long long max, int *out);
const cJSON *conf_num_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required, double lo, bool lo_open, double hi, const char *why,
			     double *out);
bool conf_bool_member(struct ctx *c, const cJSON *obj, const char *path, const char *key, bool *out);
bool conf_enum_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		      bool required, const char *const *names, bool icase, int *out);
char *conf_id_member(struct ctx *c, const cJSON *obj, const char *path, const char *key);
char *conf_file_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		       bool required);
int conf_open_regular(const char *file, struct stat *st);
bool conf_check_readable(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			 const char *file);
char *conf_read_secret(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		       const char *file, size_t *len);
void conf_check_timezone(struct ctx *c, const cJSON *obj, const char *path, const char *tz);
void conf_check_unique(struct ctx *c, const cJSON *arr, const char *arr_path, const char *what,
		       struct id_ref *refs, size_t n);

/* conf_url.c */
const char *conf_http_url(const char *url, bool *https, char *host, size_t hostsz);
bool conf_is_loopback(const char *host);
bool conf_tcp_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz);
bool conf_rtu_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz);

/* conf_agent.c */
void conf_parse_agent(struct ctx *c, const cJSON *o, struct agent_cfg *a);
void conf_parse_platform(struct ctx *c, const cJSON *o, struct platform_cfg *pl);
void conf_parse_nrii(struct ctx *c, const cJSON *o, struct nrii_cfg *n);
void conf_parse_buffer(struct ctx *c, const cJSON *o, struct buffer_cfg *b);

/* conf_instruments.c */
void conf_parse_buses(struct ctx *c, const cJSON *arr, struct config *cfg);
void conf_parse_instruments(struct ctx *c, const cJSON *arr, struct config *cfg);
/* A Modbus point: a counter, the in-use signal, or a meter's value (power, energy, …). */
enum conf_point_role { CONF_POINT_COUNTER, CONF_POINT_IN_USE, CONF_POINT_METER };
void conf_parse_point(struct ctx *c, const cJSON *o, const char *P, enum conf_point_role role,
		      struct mb_point *pt);
/* conf_meter.c: "profile", the meter points beside it and "in_use" from power; true when
 * "in_use" was taken as the hysteresis form (then the caller leaves it alone). */
bool conf_parse_meter(struct ctx *c, const cJSON *o, const char *P, struct modbus_cfg *m);

/* conf_logs.c */
void conf_parse_log(struct ctx *c, const cJSON *o, const char *P, struct log_cfg *l);

#endif
