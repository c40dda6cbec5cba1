/* checkpoint.c — `verify --remote`: a local `verify` proves the chain is consistent, only the
 * platform's copy proves it is the chain that was sent. Asks GET {url}/v1/feeds/head and
 * …/hash (SPEC §6) and finds the first seq where the two differ. */
#include "checkpoint.h"
#include "config.h"
#include "log.h"
#include "transfer.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define REPLY_MAX 4096
#define SEQ_LIMIT 9007199254740992.0 /* 2^53 */

struct cp {
	const struct config *cfg;
	struct transfer http;
	struct curl_slist *hdrs;
	char *auth;
	int code;                   /* exit code of a failed request */
};

static bool is_hash(const char *s)
{
	return s && strlen(s) == HASH_HEX_LEN && strspn(s, "0123456789abcdef") == HASH_HEX_LEN;
}

/* {"seq":N,"hash":H} with N an exact integer checked before the cast. */
static bool parse_checkpoint(const char *text, int64_t *seq, char hash[HASH_HEX_LEN + 1])
{
	cJSON *o = text ? cJSON_Parse(text) : NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "seq");
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hash");
	bool ok = cJSON_IsNumber(s) && isfinite(s->valuedouble) && s->valuedouble >= 0 &&
		  s->valuedouble < SEQ_LIMIT && s->valuedouble == floor(s->valuedouble) &&
		  cJSON_IsString(h) && is_hash(h->valuestring);
	if (ok) {
		*seq = (int64_t)s->valuedouble;
		memcpy(hash, h->valuestring, HASH_HEX_LEN + 1);
	}
	cJSON_Delete(o);
	return ok;
}

/* want < 0: the platform's head; else its hash of seq want. 0 held (seq, hash filled), 1 not
 * held (404 for a seq), -1 failed (c->code set, the reason printed). */
static int ask(struct cp *c, int64_t want, int64_t *seq, char hash[HASH_HEX_LEN + 1])
{
	const struct config *cfg = c->cfg;
	char *url = NULL;
	int n = want < 0 ? asprintf(&url, "%s/v1/feeds/head?agent_id=%s", cfg->platform.url, cfg->agent.id)
			 : asprintf(&url, "%s/v1/feeds/hash?agent_id=%s&seq=%" PRId64, cfg->platform.url,
				    cfg->agent.id, want);
	if (n < 0) {
		cli_error("verify --remote: out of memory");
		c->code = EX_OSERR;
		return -1;
	}
	long status = 0;
	CURLcode cc = transfer_get(&c->http, url, c->hdrs, &status);
	int r = -1;
	c->code = EX_TEMPFAIL;
	if (cc != CURLE_OK) {
		cli_error("verify --remote: cannot reach \"%s\": %s", url, transfer_error(&c->http, cc));
	} else if (status == 404 && want >= 0 && !c->http.reply_cut) {
		r = 1;
	} else if (status == 401 || status == 403) {
		cli_error("verify --remote: the platform refused the credentials (HTTP %ld): check "
			  "platform.token_file", status);
	} else if (status >= 500 || status == 429) {
		cli_error("verify --remote: \"%s\": the platform replied HTTP %ld, try again later", url, status);
	} else if (status != 200) {
		cli_error("verify --remote: \"%s\": the platform replied HTTP %ld: does it serve the SPEC §6 "
			  "checkpoints?", url, status);
		c->code = EX_PROTOCOL;
	} else if (c->http.reply_cut || !parse_checkpoint(c->http.reply.p, seq, hash) ||
		   (want >= 0 && *seq != want)) {
		cli_error("verify --remote: \"%s\": the reply is not {\"seq\":N,\"hash\":\"<64 hex>\"}%s", url,
			  want >= 0 ? " for that seq" : "");
		c->code = EX_PROTOCOL;
	} else {
		r = 0;
	}
	free(url);
	return r;
}

static int differs(FILE *out, int64_t bad, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int differs(FILE *out, int64_t bad, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(out, "differs: first bad seq %" PRId64 ": %s\n", bad, why);
	cli_error("chain differs from the platform's at seq %" PRId64 ": %s", bad, why);
	return 1;
}

/* Hashes chain every record to all before it: once a seq matches, every earlier one does.
 * So the first seq that differs in lo..hi (hi known to differ, lo - 1 known to match) is
 * found in log2(hi - lo) requests. 0 and *bad set, or -1 (c->code set). */
static int first_difference(struct cp *c, struct buffer *b, int64_t lo, int64_t hi, int64_t *bad)
{
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2, seq;
		char ours[HASH_HEX_LEN + 1], theirs[HASH_HEX_LEN + 1];
		int r = ask(c, mid, &seq, theirs);
		if (r < 0)
			return -1;
		if (buffer_hash_of(b, mid, ours) < 0) {
			cli_error("verify --remote: cannot read record %" PRId64 " of the local chain", mid);
			c->code = EX_IOERR;
			return -1;
		}
		if (r == 1 || strcmp(ours, theirs) != 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*bad = lo;
	return 0;
}

static int compare(struct cp *c, struct buffer *b, const struct checkpoint_local *l, FILE *out)
{
	int64_t n, p = l->pruned.seq, h = l->head.seq, seq;
	char nhash[HASH_HEX_LEN + 1], theirs[HASH_HEX_LEN + 1], ours[HASH_HEX_LEN + 1];
	if (ask(c, -1, &n, nhash) < 0)
		return c->code;

	/* What was pruned here must be what the platform acknowledged: else records were
	 * deleted and passed off as pruned. */
	if (p > 0) {
		if (n < p)
			return differs(out, n + 1,
					"records up to %" PRId64 " are gone from the buffer as if pruned, but the "
					"platform holds only up to %" PRId64 ": they never reached it", p, n);
		int r = ask(c, p, &seq, theirs);
		if (r < 0)
			return c->code;
		if (r == 1)
			return differs(out, p, "the platform does not hold seq %" PRId64 ", the pruned head here", p);
		if (strcmp(theirs, l->pruned.hash) != 0)
			return differs(out, p,
					"the platform's hash of seq %" PRId64 " (%s) is not the pruned head's "
					"here (%s): the records pruned here are not the ones it holds", p, theirs,
					l->pruned.hash);
	}

	/* Where both have records, the platform's last one must be ours. */
	int64_t m = n < h ? n : h;
	if (m > p) {
		if (m == n) {
			memcpy(theirs, nhash, sizeof(theirs));
		} else {
			int r = ask(c, m, &seq, theirs);
			if (r < 0)
				return c->code;
			if (r == 1)
				memset(theirs, 0, sizeof(theirs));
		}
		if (buffer_hash_of(b, m, ours) < 0) {
			cli_error("verify --remote: cannot read record %" PRId64 " of the local chain", m);
			return EX_IOERR;
		}
		if (strcmp(ours, theirs) != 0) {
			int64_t bad;
			if (first_difference(c, b, p + 1, m, &bad) < 0)
				return c->code;
			if (buffer_hash_of(b, bad, ours) < 0)
				ours[0] = '\0';
			return differs(out, bad,
					"record %" PRId64 " is not the one the platform acknowledged (local hash %s): "
					"the local chain was rewritten from there", bad, ours);
		}
	}
	if (n > h)
		return differs(out, h + 1,
				"the platform holds records up to %" PRId64 " (hash %s) but the local chain ends at "
				"%" PRId64 ": acknowledged records are missing here (cut from the buffer, or it "
				"was restored from an older backup)", n, nhash, h);

	if (n == 0)
		fprintf(out, "matches the platform: it holds nothing of agent \"%s\" yet; %" PRId64
			" local records not uploaded\n", c->cfg->agent.id, h - p);
	else
		fprintf(out, "matches the platform: it holds seq 1..%" PRId64 " (head hash %s), the same "
			"chain as here; %" PRId64 " local records not uploaded yet\n", n, nhash, h - n);
	return 0;
}

int checkpoint_verify(const struct config *cfg, struct buffer *b, const struct checkpoint_local *local,
		      FILE *out)
{
	if (!cfg->platform.present) {
		cli_error("verify --remote: the configuration has no \"platform\": nothing to compare with");
		return EX_CONFIG;
	}
	const struct platform_cfg *p = &cfg->platform;
	struct cp c = { .cfg = cfg, .code = EX_TEMPFAIL };
	/* The same TLS settings, proxy and token as the uploads. */
	struct transfer_opts o = { .url = p->url, .protocols = "https,http", .timeout_s = p->timeout_s,
				   .ca_file = p->ca_file, .client_cert = p->client_cert,
				   .client_key = p->client_key, .proxy = p->proxy, .reply_max = REPLY_MAX };
	int code = EX_OSERR;
	if (transfer_init(&c.http, &o) < 0 || !(c.auth = transfer_bearer(p->token))) {
		cli_error("verify --remote: out of memory");
		goto out;
	}
	c.hdrs = curl_slist_append(NULL, c.auth);
	struct curl_slist *more = c.hdrs ? curl_slist_append(c.hdrs, "Accept: application/json") : NULL;
	if (!more) {
		cli_error("verify --remote: out of memory");
		goto out;
	}
	c.hdrs = more;
	code = compare(&c, b, local, out);
out:
	curl_slist_free_all(c.hdrs);
	if (c.auth) {
		explicit_bzero(c.auth, strlen(c.auth));
		free(c.auth);
	}
	transfer_cleanup(&c.http);
	return code;
}
