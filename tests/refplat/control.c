/* control.c — the stdin control channel tests drive: fault injection, tokens, counters.
 * One command a line, exactly one reply line on stdout per command, flushed. */
#include "refplat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#define LINE_MAX_ 65536
#define STATUS_MIN 100
#define STATUS_MAX 599
#define FOREVER (-1L)   /* count=0 on the command line: until cleared */

struct token {
	char text[RP_TOKEN_LEN];
	size_t len;
	bool refused;
};

struct reject {
	long long seq;
	int status;
	char error[256];
};

struct rp_control {
	pthread_mutex_t mu; /* everything below */

	/* Faults; a count is remaining uses, FOREVER, or 0 when off. */
	int status_code, status_retry_after;
	long status_count;
	char *status_body;
	long drop_reply, drop_before, wrong_hash;
	size_t max_body;
	int slow_ms;
	long slow_count;
	size_t pad;
	long pad_count;
	long long ack_k;
	long ack_count;
	struct reject rejects[RP_REJECTS_MAX];
	size_t nrejects;

	struct token tokens[RP_TOKENS_MAX];
	size_t ntokens;

	/* Counters since this process started. */
	unsigned long long requests, by_status[STATUS_MAX + 1], dropped, bytes_in;
	unsigned long long feed_posts, gzip_requests, records, dups, connections, tls_failures;
	char last_user_agent[256], last_key[256];
	bool have_user_agent, have_key;
};

static struct rp_control control;
/* Held while a command runs; the main thread takes it for good before freeing the store. */
static pthread_mutex_t command_mu = PTHREAD_MUTEX_INITIALIZER;

int control_init(struct rp_server *srv)
{
	pthread_mutex_init(&control.mu, NULL);
	for (size_t i = 0; i < srv->ninitial_tokens; i++) {
		struct token *t = &control.tokens[control.ntokens++];
		t->len = strlen(srv->initial_tokens[i]);
		memcpy(t->text, srv->initial_tokens[i], t->len + 1);
	}
	srv->ctl = &control;
	return 0;
}

void control_free(struct rp_server *srv)
{
	(void)srv;
	pthread_mutex_lock(&command_mu); /* never released: the process is ending */
	pthread_mutex_lock(&control.mu);
	free(control.status_body);
	control.status_body = NULL;
	pthread_mutex_unlock(&control.mu);
}

/* ---- used by requests ---- */

static bool take(long *count)
{
	if (*count == 0)
		return false;
	if (*count > 0)
		(*count)--;
	return true;
}

void faults_take(struct rp_server *srv, struct rp_fault_plan *plan)
{
	(void)srv;
	memset(plan, 0, sizeof(*plan));
	plan->retry_after = -1;
	pthread_mutex_lock(&control.mu);
	plan->drop_before = take(&control.drop_before);
	if (!plan->drop_before && take(&control.status_count)) {
		plan->status = control.status_code;
		plan->retry_after = control.status_retry_after;
		if (control.status_body) {
			plan->status_body = strdup(control.status_body);
		} else {
			char b[64];
			int n = snprintf(b, sizeof(b), "{\"error\":\"injected %d\"}", control.status_code);
			plan->status_body = n > 0 && (size_t)n < sizeof(b) ? strdup(b) : NULL;
		}
	}
	plan->drop_reply = take(&control.drop_reply);
	if (take(&control.slow_count))
		plan->slow_ms = control.slow_ms;
	if (take(&control.pad_count))
		plan->pad = control.pad;
	pthread_mutex_unlock(&control.mu);
}

void fault_plan_free(struct rp_fault_plan *plan)
{
	free(plan->status_body);
	plan->status_body = NULL;
}

bool faults_reject(struct rp_server *srv, long long first, long long last, long long *seq, int *status, char *error,
		   size_t errlen)
{
	(void)srv;
	bool hit = false;
	pthread_mutex_lock(&control.mu);
	for (size_t i = 0; i < control.nrejects; i++) {
		const struct reject *r = &control.rejects[i];
		if (r->seq >= first && r->seq <= last && (!hit || r->seq < *seq)) {
			hit = true;
			*seq = r->seq;
			*status = r->status;
			snprintf(error, errlen, "%s", r->error); /* both capped at 256 */
		}
	}
	pthread_mutex_unlock(&control.mu);
	return hit;
}

long long faults_take_ack_behind(struct rp_server *srv)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	long long k = take(&control.ack_count) ? control.ack_k : 0;
	pthread_mutex_unlock(&control.mu);
	return k;
}

bool faults_take_wrong_hash(struct rp_server *srv)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	bool w = take(&control.wrong_hash);
	pthread_mutex_unlock(&control.mu);
	return w;
}

size_t faults_max_body(struct rp_server *srv)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	size_t m = control.max_body ? control.max_body : RP_BODY_MAX;
	pthread_mutex_unlock(&control.mu);
	return m;
}

int auth_check(struct rp_server *srv, const char *authorization)
{
	(void)srv;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 401;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strlen(tok);
	int ret = 401;
	pthread_mutex_lock(&control.mu);
	for (size_t i = 0; i < control.ntokens; i++) {
		const struct token *t = &control.tokens[i];
		/* Constant time over the token's bytes: the habit, even in a test server. */
		if (t->len == len && CRYPTO_memcmp(t->text, tok, len) == 0)
			ret = t->refused ? 403 : 0;
	}
	pthread_mutex_unlock(&control.mu);
	return ret;
}

static void copy_capped(char *dst, size_t cap, const char *src, bool *have)
{
	*have = src != NULL;
	snprintf(dst, cap, "%s", src ? src : ""); /* cut at the cap: a counter, not the record */
}

void stats_feed_post(struct rp_server *srv, const char *user_agent, const char *key, bool gzip)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	control.feed_posts++;
	if (gzip)
		control.gzip_requests++;
	copy_capped(control.last_user_agent, sizeof(control.last_user_agent), user_agent, &control.have_user_agent);
	copy_capped(control.last_key, sizeof(control.last_key), key, &control.have_key);
	pthread_mutex_unlock(&control.mu);
}

void stats_records(struct rp_server *srv, long long inserted, long long dups)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	control.records += (unsigned long long)inserted;
	control.dups += (unsigned long long)dups;
	pthread_mutex_unlock(&control.mu);
}

void stats_request(struct rp_server *srv, int status, bool replied, size_t body_bytes)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	control.requests++;
	control.bytes_in += body_bytes;
	if (replied && status >= STATUS_MIN && status <= STATUS_MAX)
		control.by_status[status]++;
	else if (!replied)
		control.dropped++;
	pthread_mutex_unlock(&control.mu);
}

void stats_connection(struct rp_server *srv, bool tls_ok)
{
	(void)srv;
	pthread_mutex_lock(&control.mu);
	if (tls_ok)
		control.connections++;
	else
		control.tls_failures++;
	pthread_mutex_unlock(&control.mu);
}

/* ---- commands ---- */

struct word {
	const char *s;
	size_t len;
};

static bool next_word(const char **p, struct word *w)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (!**p)
		return false;
	w->s = *p;
	while (**p && **p != ' ' && **p != '\t')
		(*p)++;
	w->len = (size_t)(*p - w->s);
	return true;
}

static bool word_is(const struct word *w, const char *s)
{
	return w->len == strlen(s) && memcmp(w->s, s, w->len) == 0;
}

static bool parse_num(const char *s, size_t len, long long min, long long max, long long *out)
{
	char buf[32];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *end = NULL;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (errno || *end || end == buf || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Options after the fixed arguments: key=N words; "body=" and "error=" take the rest of the line. */
struct opts {
	long long count;            /* default 1 */
	long long retry_after;      /* -1 none */
	long long status;           /* 0 unset */
	const char *text;           /* body= or error=, rest of the line */
	size_t text_len;
};

static const char *parse_opts(const char *p, bool allow_count, bool allow_retry, bool allow_status, const char *text_key,
			      struct opts *o)
{
	struct word w;
	o->count = 1;
	o->retry_after = -1;
	o->status = 0;
	o->text = NULL;
	o->text_len = 0;
	while (next_word(&p, &w)) {
		const char *eq = memchr(w.s, '=', w.len);
		if (!eq)
			return "expected key=value";
		size_t kl = (size_t)(eq - w.s);
		const char *v = eq + 1;
		size_t vl = w.len - kl - 1;
		if (text_key && kl == strlen(text_key) && memcmp(w.s, text_key, kl) == 0) {
			size_t rest = strlen(v);
			while (rest > 0 && (v[rest - 1] == ' ' || v[rest - 1] == '\t'))
				rest--;
			o->text = v;
			o->text_len = rest;
			return NULL;
		}
		if (allow_count && kl == 5 && memcmp(w.s, "count", 5) == 0) {
			if (!parse_num(v, vl, 0, 1000000000, &o->count))
				return "count must be 0..1000000000";
		} else if (allow_retry && kl == 11 && memcmp(w.s, "retry_after", 11) == 0) {
			if (!parse_num(v, vl, 0, 86400, &o->retry_after))
				return "retry_after must be 0..86400";
		} else if (allow_status && kl == 6 && memcmp(w.s, "status", 6) == 0) {
			if (!parse_num(v, vl, 400, 499, &o->status))
				return "status must be 400..499";
		} else {
			return "unknown option";
		}
	}
	return NULL;
}

static long to_count(long long c)
{
	return c == 0 ? FOREVER : (long)c;
}

static void clear_faults_locked(void)
{
	control.status_count = 0;
	free(control.status_body);
	control.status_body = NULL;
	control.drop_reply = control.drop_before = control.wrong_hash = 0;
	control.max_body = 0;
	control.slow_count = 0;
	control.pad_count = 0;
	control.ack_count = 0;
	control.nrejects = 0;
	for (size_t i = 0; i < control.ntokens; i++)
		control.tokens[i].refused = false;
}

/* "fault …": NULL (ok) or an error text. */
static const char *cmd_fault(const char *p)
{
	struct word kind, arg;
	struct opts o;
	const char *err;
	long long n;

	if (!next_word(&p, &kind))
		return "fault: what kind?";
	if (word_is(&kind, "status")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, STATUS_MIN, STATUS_MAX, &n))
			return "fault status: CODE must be 100..599";
		if ((err = parse_opts(p, true, true, false, "body", &o)))
			return err;
		char *body = NULL;
		if (o.text) {
			cJSON *j = cJSON_ParseWithLength(o.text, o.text_len);
			if (!j)
				return "fault status: body is not json";
			cJSON_Delete(j);
			body = strndup(o.text, o.text_len);
			if (!body)
				return "out of memory";
		}
		pthread_mutex_lock(&control.mu);
		free(control.status_body);
		control.status_body = body;
		control.status_code = (int)n;
		control.status_retry_after = (int)o.retry_after;
		control.status_count = to_count(o.count);
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	if (word_is(&kind, "drop_reply") || word_is(&kind, "drop_before") || word_is(&kind, "wrong_hash")) {
		if ((err = parse_opts(p, true, false, false, NULL, &o)))
			return err;
		pthread_mutex_lock(&control.mu);
		long *slot = word_is(&kind, "drop_reply")    ? &control.drop_reply
			     : word_is(&kind, "drop_before") ? &control.drop_before
							     : &control.wrong_hash;
		*slot = to_count(o.count);
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	if (word_is(&kind, "max_body")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 0, (long long)RP_BODY_MAX, &n))
			return "fault max_body: BYTES must be 0..67108864";
		if ((err = parse_opts(p, false, false, false, NULL, &o)))
			return err;
		pthread_mutex_lock(&control.mu);
		control.max_body = (size_t)n;
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	if (word_is(&kind, "slow")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 0, 600000, &n))
			return "fault slow: MS must be 0..600000";
		if ((err = parse_opts(p, true, false, false, NULL, &o)))
			return err;
		pthread_mutex_lock(&control.mu);
		control.slow_ms = (int)n;
		control.slow_count = to_count(o.count);
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	if (word_is(&kind, "pad_reply")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 1, 16 << 20, &n))
			return "fault pad_reply: BYTES must be 1..16777216";
		if ((err = parse_opts(p, true, false, false, NULL, &o)))
			return err;
		pthread_mutex_lock(&control.mu);
		control.pad = (size_t)n;
		control.pad_count = to_count(o.count);
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	if (word_is(&kind, "reject")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 1, 9007199254740992LL, &n))
			return "fault reject: SEQ must be an integer >= 1";
		if ((err = parse_opts(p, false, false, true, "error", &o)))
			return err;
		if (o.status && o.status != 400 && o.status != 422)
			return "fault reject: status must be 400 or 422";
		pthread_mutex_lock(&control.mu);
		struct reject *r = NULL;
		for (size_t i = 0; i < control.nrejects; i++)
			if (control.rejects[i].seq == n)
				r = &control.rejects[i];
		if (!r && control.nrejects < RP_REJECTS_MAX)
			r = &control.rejects[control.nrejects++];
		if (r) {
			r->seq = n;
			r->status = o.status ? (int)o.status : 422;
			int m = snprintf(r->error, sizeof(r->error), "%.*s", (int)o.text_len, o.text ? o.text : "");
			if (!o.text || m <= 0)
				snprintf(r->error, sizeof(r->error), "rejected");
		}
		pthread_mutex_unlock(&control.mu);
		return r ? NULL : "fault reject: too many (clear first)";
	}
	if (word_is(&kind, "ack_behind")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 1, 9007199254740992LL, &n))
			return "fault ack_behind: K must be an integer >= 1";
		if ((err = parse_opts(p, true, false, false, NULL, &o)))
			return err;
		pthread_mutex_lock(&control.mu);
		control.ack_k = n;
		control.ack_count = to_count(o.count);
		pthread_mutex_unlock(&control.mu);
		return NULL;
	}
	return "fault: unknown kind (status, drop_reply, drop_before, max_body, slow, pad_reply, reject, wrong_hash, "
	       "ack_behind)";
}

/* "nrii …": the NRII endpoint's faults (SPEC §8), kept in nrii.c. NULL (ok) or an error text. */
static const char *cmd_nrii(const char *p)
{
	struct word verb, kind, arg;
	struct opts o;
	const char *err;
	long long n = 0;
	if (!next_word(&p, &verb))
		return "nrii: expected return, fault, unknown_instrument or ins_code";
	if (word_is(&verb, "return")) {
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 0, 999, &n))
			return "nrii return: CODE must be 0..999";
		if ((err = parse_opts(p, true, false, false, "text", &o)))
			return err;
		return nrii_fault_set(NRII_F_RETURN, (int)n, to_count(o.count), o.text, o.text_len);
	}
	if (word_is(&verb, "unknown_instrument") || word_is(&verb, "ins_code")) {
		if (!next_word(&p, &arg))
			return "nrii: expected a value";
		return word_is(&verb, "ins_code") ? nrii_add_ins_code(arg.s, arg.len)
						  : nrii_unknown_instrument(arg.s, arg.len);
	}
	if (!word_is(&verb, "fault") || !next_word(&p, &kind))
		return "nrii: expected return, fault, unknown_instrument or ins_code";
	enum nrii_fault_kind k;
	if (word_is(&kind, "status")) {
		k = NRII_F_STATUS;
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, STATUS_MIN, STATUS_MAX, &n))
			return "nrii fault status: CODE must be 100..599";
	} else if (word_is(&kind, "slow")) {
		k = NRII_F_SLOW;
		if (!next_word(&p, &arg) || !parse_num(arg.s, arg.len, 0, 600000, &n))
			return "nrii fault slow: MS must be 0..600000";
	} else if (word_is(&kind, "soap")) {
		k = NRII_F_SOAP;
	} else if (word_is(&kind, "noreturn")) {
		k = NRII_F_NORETURN;
	} else if (word_is(&kind, "drop_reply")) {
		k = NRII_F_DROP;
	} else if (word_is(&kind, "wrap")) {
		k = NRII_F_WRAP;
	} else {
		return "nrii fault: unknown kind (status, slow, soap, noreturn, drop_reply, wrap)";
	}
	if ((err = parse_opts(p, true, false, false, NULL, &o)))
		return err;
	return nrii_fault_set(k, (int)n, to_count(o.count), NULL, 0);
}

static const char *cmd_token(const char *p)
{
	struct word verb, tok;
	if (!next_word(&p, &verb) || !next_word(&p, &tok))
		return "token: expected add|remove|refuse|allow TOKEN";
	if (tok.len >= RP_TOKEN_LEN)
		return "token: too long";
	const char *err = NULL;
	pthread_mutex_lock(&control.mu);
	struct token *t = NULL;
	for (size_t i = 0; i < control.ntokens; i++)
		if (control.tokens[i].len == tok.len && memcmp(control.tokens[i].text, tok.s, tok.len) == 0)
			t = &control.tokens[i];
	if (word_is(&verb, "add")) {
		if (!t) {
			if (control.ntokens == RP_TOKENS_MAX) {
				err = "token add: too many tokens";
			} else {
				t = &control.tokens[control.ntokens++];
				memcpy(t->text, tok.s, tok.len);
				t->text[tok.len] = '\0';
				t->len = tok.len;
				t->refused = false;
			}
		}
	} else if (word_is(&verb, "remove")) {
		if (t)
			*t = control.tokens[--control.ntokens];
	} else if (word_is(&verb, "refuse") || word_is(&verb, "allow")) {
		if (!t)
			err = "token: unknown token";
		else
			t->refused = word_is(&verb, "refuse");
	} else {
		err = "token: expected add|remove|refuse|allow TOKEN";
	}
	pthread_mutex_unlock(&control.mu);
	return err;
}

static char *cmd_stats(struct rp_server *srv)
{
	cJSON *o = cJSON_CreateObject(), *bs = cJSON_CreateObject();
	cJSON *heads = store_heads_json(srv->store);
	pthread_mutex_lock(&control.mu);
	cJSON_AddNumberToObject(o, "requests", (double)control.requests);
	for (int s = STATUS_MIN; s <= STATUS_MAX; s++) {
		if (control.by_status[s]) {
			char k[16];
			snprintf(k, sizeof(k), "%d", s); /* 100..599: fits */
			cJSON_AddNumberToObject(bs, k, (double)control.by_status[s]);
		}
	}
	cJSON_AddItemToObject(o, "by_status", bs);
	cJSON_AddNumberToObject(o, "dropped", (double)control.dropped);
	cJSON_AddNumberToObject(o, "feed_posts", (double)control.feed_posts);
	cJSON_AddNumberToObject(o, "records", (double)control.records);
	cJSON_AddNumberToObject(o, "dups", (double)control.dups);
	cJSON_AddNumberToObject(o, "gzip_requests", (double)control.gzip_requests);
	cJSON_AddItemToObject(o, "last_seq", heads ? heads : cJSON_CreateObject());
	cJSON_AddNumberToObject(o, "bytes_in", (double)control.bytes_in);
	cJSON_AddNumberToObject(o, "connections", (double)control.connections);
	cJSON_AddNumberToObject(o, "tls_failures", (double)control.tls_failures);
	if (control.have_user_agent)
		cJSON_AddStringToObject(o, "last_user_agent", control.last_user_agent);
	else
		cJSON_AddNullToObject(o, "last_user_agent");
	if (control.have_key)
		cJSON_AddStringToObject(o, "last_idempotency_key", control.last_key);
	else
		cJSON_AddNullToObject(o, "last_idempotency_key");
	pthread_mutex_unlock(&control.mu);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static char *cmd_head(struct rp_server *srv, const char *p)
{
	struct word a;
	char agent[RP_AGENT_ID_MAX + 1];
	struct rp_head h;
	if (!next_word(&p, &a) || a.len > RP_AGENT_ID_MAX)
		return strdup("error: head: expected AGENT_ID");
	memcpy(agent, a.s, a.len);
	agent[a.len] = '\0';
	if (store_head(srv->store, agent, &h) < 0)
		return strdup("error: head: storage failed");
	char out[160];
	int n = snprintf(out, sizeof(out), "{\"seq\":%lld,\"hash\":\"%s\"}", h.seq, h.hash);
	return n > 0 && (size_t)n < sizeof(out) ? strdup(out) : NULL;
}

/* One command → one reply line (malloc'd, without newline). */
static char *run_command(struct rp_server *srv, const char *line, bool *quit)
{
	const char *p = line;
	struct word cmd;
	const char *err = NULL;
	if (!next_word(&p, &cmd))
		return strdup("error: empty command");
	if (word_is(&cmd, "ping"))
		return strdup("ok");
	if (word_is(&cmd, "quit")) {
		*quit = true;
		return strdup("ok");
	}
	if (word_is(&cmd, "stats"))
		return cmd_stats(srv);
	if (word_is(&cmd, "nrii")) {
		struct word w;
		const char *q = p;
		if (next_word(&q, &w) && word_is(&w, "stats"))
			return nrii_stats_json();
	}
	if (word_is(&cmd, "head"))
		return cmd_head(srv, p);
	if (word_is(&cmd, "clear")) {
		pthread_mutex_lock(&control.mu);
		clear_faults_locked();
		pthread_mutex_unlock(&control.mu);
		nrii_clear();
		return strdup("ok");
	}
	if (word_is(&cmd, "fault"))
		err = cmd_fault(p);
	else if (word_is(&cmd, "token"))
		err = cmd_token(p);
	else if (word_is(&cmd, "nrii"))
		err = cmd_nrii(p);
	else
		err = "unknown command (ping, stats, head, fault, token, nrii, clear, quit)";
	if (!err)
		return strdup("ok");
	char out[512];
	int n = snprintf(out, sizeof(out), "error: %s", err);
	return strdup(n > 0 ? out : "error");
}

static void reply(const char *s)
{
	/* The reply must be one line whatever a command returned. */
	for (const char *c = s; *c; c++)
		fputc(*c == '\n' ? ' ' : *c, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

void *control_main(void *arg)
{
	struct rp_server *srv = arg;
	char *line = malloc(LINE_MAX_);
	size_t n = 0;
	bool toolong = false;
	if (!line)
		return NULL;
	for (;;) {
		char buf[4096];
		ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* EOF: keep serving without control */
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			if (c != '\n') {
				if (n + 1 < LINE_MAX_)
					line[n++] = c;
				else
					toolong = true;
				continue;
			}
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			pthread_mutex_lock(&command_mu);
			bool quit = false;
			char *out = toolong ? strdup("error: line too long") : run_command(srv, line, &quit);
			reply(out ? out : "error: out of memory");
			free(out);
			pthread_mutex_unlock(&command_mu);
			n = 0;
			toolong = false;
			if (quit)
				rp_request_stop();
		}
	}
	free(line);
	return NULL;
}
