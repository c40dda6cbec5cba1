/* refplat.h — the reference platform's internal contract: the server, a request and its reply,
 * the SQLite store, fault injection and the route handlers (one function per endpoint). */
#ifndef LABSHARE_REFPLAT_H
#define LABSHARE_REFPLAT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define RP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Caps on everything a client can grow. */
#define RP_HEADER_MAX    (64 * 1024)              /* request line + headers: 431 above */
#define RP_HEADERS_MAX   100                      /* header fields: 431 above */
#define RP_BODY_MAX      ((size_t)64 << 20)       /* body as received and once inflated: 413 above */
#define RP_PARAMS_MAX    4                        /* '*' captures in a route pattern */
#define RP_PARAM_LEN     128
#define RP_TOKENS_MAX    16
#define RP_TOKEN_LEN     16384                    /* far above the agent's 4 KiB token files */
#define RP_REJECTS_MAX   16
#define RP_AGENT_ID_MAX  64                       /* SPEC §3: [A-Za-z0-9._-]{1,64} */
#define RP_CONNS_MAX     512
#define RP_HASH_HEX      64
#define RP_INS_CODES_MAX 16                       /* --ins-code */
#define RP_INS_CODE_LEN  128

struct rp_server;

struct rp_header {
	const char *name;
	const char *value;
};

/* A parsed request; every string points into hbuf, which the connection owns. */
struct rp_request {
	unsigned long conn_id;
	char method[16];
	const char *path;                             /* without the query */
	const char *query;                            /* after '?', or "" */
	int minor;                                    /* HTTP/1.minor */
	struct rp_header headers[RP_HEADERS_MAX];
	size_t nheaders;
	unsigned char *body;                          /* NUL-terminated for convenience, not counted */
	size_t body_len;                              /* as received (after de-chunking) */
	char params[RP_PARAMS_MAX][RP_PARAM_LEN];     /* '*' captures of the matched route */
	size_t nparams;
};

/* A handler fills this; the connection writes it (or not, for a dropped reply). */
struct rp_response {
	int status;
	const char *content_type;
	char *body;                                   /* malloc'd, may be NULL */
	size_t body_len;
	int retry_after;                              /* seconds, -1: no Retry-After header */
	bool close;                                   /* Connection: close after this reply */
	bool drop;                                    /* close the connection without any reply */
	int delay_ms;                                 /* wait before replying (fault slow) */
	size_t pad;                                   /* spaces sent before body (fault pad_reply) */
	/* For the request log, filled by handlers where they know it. */
	bool gzip;
	char agent_id[RP_AGENT_ID_MAX + 1];
	long long first_seq, last_seq;                /* 0 when unknown */
	char fault[64];                               /* faults applied, comma-separated */
	char error[128];                              /* the reply's "error", for the log */
};

/* Header lookup, case-insensitive; NULL when absent. */
const char *rp_header(const struct rp_request *req, const char *name);
/* Query parameter value copied into dst (cap dstlen); false when absent or too long. */
bool rp_query_param(const struct rp_request *req, const char *name, char *dst, size_t dstlen);

/* Reply helpers: a JSON body (takes ownership of json, may be NULL → "{}"). */
void rp_reply_json(struct rp_response *resp, int status, char *json);
/* {"error":TEXT} plus "seq":S when seq >= 0. */
void rp_reply_error(struct rp_response *resp, int status, const char *text, long long seq);
void rp_fault_note(struct rp_response *resp, const char *name);

/* A route: method, a path pattern matched against the END of the request path on segment
 * boundaries ("/v1/feeds" matches "/api/v1/feeds"; '*' captures one segment), a handler. */
struct rp_route {
	const char *method;
	const char *pattern;
	void (*handler)(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
};
extern const struct rp_route rp_routes[];

/* Handlers (feeds.c). */
void feeds_post(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
void feeds_get_records(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
void feeds_get_head(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
void feeds_checkpoint_head(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
void feeds_checkpoint_hash(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);

/* ---- NRII SOAP, SPEC §8 (nrii.c): its own table in the same db, its own faults ---- */

void nrii_post(struct rp_server *srv, struct rp_request *req, struct rp_response *resp);
/* ins_codes: the institution codes accepted (none: any non-empty one). */
int nrii_init(struct rp_server *srv, const char *db_path, const char *const ins_codes[], size_t n);
void nrii_free(struct rp_server *srv);

enum nrii_fault_kind {
	NRII_F_RETURN,      /* answer `return` CODE[:TEXT] without storing */
	NRII_F_SOAP,        /* a SOAP Fault, HTTP 500 */
	NRII_F_STATUS,      /* a bare HTTP status with a text body */
	NRII_F_NORETURN,    /* an envelope without `return` */
	NRII_F_DROP,        /* store, then close without replying */
	NRII_F_SLOW,        /* store, then wait arg ms before replying */
	NRII_F_WRAP,        /* the reply inside a MIME multipart, another prefix, CDATA */
};
/* count: remaining uses, -1 until clear. text (may be NULL) is copied. NULL or an error text. */
const char *nrii_fault_set(enum nrii_fault_kind kind, int arg, long count, const char *text, size_t text_len);
/* 204 for type-6 records of this innerId, until clear. */
const char *nrii_unknown_instrument(const char *inner_id, size_t len);
const char *nrii_add_ins_code(const char *code, size_t len);
void nrii_clear(void);
/* {"posts","stored","dups","updates","faults","dropped","by_return":{…},"last_soap_action",
 * "last_content_type"}: malloc'd. */
char *nrii_stats_json(void);

/* ---- the store (store.c): one SQLite connection behind one mutex ---- */

struct rp_record {
	const char *line;                             /* points into the request body */
	size_t len;
	char hash[RP_HASH_HEX + 1];
};

struct rp_batch {
	char agent_id[RP_AGENT_ID_MAX + 1];
	char lab_code[128];
	long long first_seq, last_seq;
	char prev_hash[RP_HASH_HEX + 1];
	struct rp_record *recs;                       /* last_seq - first_seq + 1 of them */
	size_t nrecs;
};

struct rp_head {
	long long seq;
	char hash[RP_HASH_HEX + 1];
};

enum rp_apply_outcome { RP_APPLY_OK, RP_APPLY_SEQUENCE };

struct rp_apply {
	enum rp_apply_outcome outcome;
	struct rp_head head;                          /* highest stored after the request */
	long long inserted, dups;
};

struct rp_reqlog {
	unsigned long conn_id;
	const char *method, *path;
	int status;
	bool replied;
	size_t body_bytes;
	bool gzip;
	const char *idempotency_key, *user_agent, *content_type, *content_encoding;
	const char *agent_id;
	long long first_seq, last_seq;
	const char *fault, *error;
};

struct rp_store;
int store_open(const char *path, struct rp_store **out);
void store_free(struct rp_store *st);
/* Head of an agent's chain: seq 0 and 64 zeros when nothing is stored. */
int store_head(struct rp_store *st, const char *agent_id, struct rp_head *out);
/* Stored hash of one seq (0 → zeros); -ENOENT when not stored. */
int store_hash_at(struct rp_store *st, const char *agent_id, long long seq, char out[RP_HASH_HEX + 1]);
/* Check the batch against the stored chain and insert its new records in one transaction. */
int store_apply(struct rp_store *st, const struct rp_batch *b, struct rp_apply *out);
/* Stored lines from..to, each with its newline, into a malloc'd buffer of at most cap bytes
 * (-E2BIG beyond). */
int store_records(struct rp_store *st, const char *agent_id, long long from, long long to, size_t cap,
		  char **out, size_t *outlen);
int store_log_request(struct rp_store *st, const struct rp_reqlog *log);
/* {"agent": last_seq, …} of every agent, as a cJSON object (caller deletes); NULL on error. */
struct cJSON *store_heads_json(struct rp_store *st);

/* ---- faults, tokens and counters (control.c) ---- */

/* The faults one POST /v1/feeds meets, decided (and counted down) when it arrives. */
struct rp_fault_plan {
	bool drop_before, drop_reply;
	int status;                                   /* 0: none */
	int retry_after;                              /* -1: none */
	char *status_body;                            /* malloc'd JSON or NULL */
	int slow_ms;
	size_t pad;                                   /* fault pad_reply: leading spaces in the reply */
};

void faults_take(struct rp_server *srv, struct rp_fault_plan *plan);
void fault_plan_free(struct rp_fault_plan *plan);
/* Refusal of a seq in first..last: true with status and error text copied out. */
bool faults_reject(struct rp_server *srv, long long first, long long last, long long *seq, int *status,
		   char *error, size_t errlen);
/* Consumed only by a 200 reply: records to ack fewer (0 none), and whether to send a wrong hash. */
long long faults_take_ack_behind(struct rp_server *srv);
bool faults_take_wrong_hash(struct rp_server *srv);
/* Effective body cap: the fault max_body when set, else RP_BODY_MAX. */
size_t faults_max_body(struct rp_server *srv);

/* Authorization header → 0 accepted, 401 missing/unknown, 403 refused by control. */
int auth_check(struct rp_server *srv, const char *authorization);

void stats_feed_post(struct rp_server *srv, const char *user_agent, const char *idempotency_key, bool gzip);
void stats_records(struct rp_server *srv, long long inserted, long long dups);
void stats_request(struct rp_server *srv, int status, bool replied, size_t body_bytes);
void stats_connection(struct rp_server *srv, bool tls_ok);

/* The stdin control loop (its own thread). */
void *control_main(void *arg);
int control_init(struct rp_server *srv);
void control_free(struct rp_server *srv);

/* ---- the server (refplat.c) ---- */

struct rp_conn;
struct rp_control;

struct rp_server {
	SSL_CTX *ssl_ctx;
	struct rp_store *store;
	struct rp_control *ctl;                       /* faults, tokens, counters */
	int listen_fd;
	int http_fd;                                  /* --listen-http, -1 when not given */
	int wake_fd;                                  /* eventfd: wakes the accept loop at shutdown */
	pthread_mutex_t mu;                           /* conns, nconns, stopping */
	pthread_cond_t cv;                            /* signalled on stop and when a connection ends */
	struct rp_conn *conns;
	size_t nconns;
	unsigned long next_conn_id;
	bool stopping;
	const char *initial_tokens[RP_TOKENS_MAX];
	size_t ninitial_tokens;
};

void rp_log(const char *fmt, ...) RP_PRINTF(1, 2);
/* Wait ms or until shutdown, whichever comes first (fault slow must not delay a clean stop). */
void rp_wait_ms(struct rp_server *srv, int ms);
/* Ask the main thread to stop (quit command). */
void rp_request_stop(void);
int64_t rp_now_ms(void);

/* One connection's life: TLS handshake (ssl NULL: plain HTTP on fd), requests until close (http.c). */
void http_serve(struct rp_server *srv, SSL *ssl, int fd, unsigned long conn_id);

/* 64 zeros: the hash before seq 1 (feeds.c). */
extern const char rp_zero_hash[RP_HASH_HEX + 1];

/* json.c: validate one JSON text; for a top-level object, the raw spans of the first "seq" value
 * and "kind" value (a kind span includes its quotes). */
struct json_top {
	bool is_object;
	const char *seq, *kind;
	size_t seq_len, kind_len;
};
bool json_scan(const char *text, size_t len, struct json_top *top);
/* Raw string bytes (between the quotes) equal to the ASCII want once escapes are decoded. */
bool json_raw_equals(const char *raw, size_t n, const char *want);
/* A seq span as an integer literal 1..2^53. */
bool json_span_seq(const char *span, size_t len, long long *out);

#endif
