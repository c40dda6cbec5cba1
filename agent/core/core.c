/* core.c — observations in, sealed records out: the one place where a driver's batch, the
 * records it yields and the driver's cursor meet in a single transaction. */
#include "core.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "plausible.h"
#include "records.h"
#include "timeutil.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct core {
	const struct config *cfg;
	struct buffer *buf;
	struct metrics *metrics;
	atomic_bool full;
	_Atomic int64_t space_checked_ms;
	int64_t max_bytes;
	/* HMAC-SHA256 keyed with the lab's key, kept between sessions (user_id); used and made
	 * again only inside a write transaction, so under the buffer's writer lock. */
	EVP_MAC_CTX *mac;
	unsigned char *mac_key;
	size_t mac_key_len;
};

struct core *core_new(const struct config *cfg, struct buffer *buf)
{
	struct core *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->buf = buf;
	c->cfg = cfg;
	c->metrics = metrics_new(buf, cfg);
	if (!c->metrics) {
		free(c);
		return NULL;
	}
	core_set_config(c, cfg);
	return c;
}

static void mac_drop(struct core *c)
{
	EVP_MAC_CTX_free(c->mac);
	c->mac = NULL;
	if (c->mac_key)
		explicit_bzero(c->mac_key, c->mac_key_len);
	free(c->mac_key);
	c->mac_key = NULL;
	c->mac_key_len = 0;
}

void core_free(struct core *c)
{
	if (!c)
		return;
	metrics_free(c->metrics);
	mac_drop(c);
	free(c);
}

int core_tick(struct core *c)
{
	return metrics_tick(c->metrics, clock_wall());
}

int core_stop(struct core *c)
{
	return metrics_stop(c->metrics, clock_wall());
}

struct metrics *core_metrics(struct core *c)
{
	return c->metrics;
}

void core_set_config(struct core *c, const struct config *cfg)
{
	c->cfg = cfg;
	c->max_bytes = cfg->buffer.max_mb * 1024 * 1024;
	metrics_set_config(c->metrics, cfg);
}

struct buffer *core_buffer(struct core *c) { return c->buf; }

static char *hex_of(const unsigned char *md, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char *out = malloc(2 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * len] = '\0';
	return out;
}

/* The keyed context for cfg's key: kept while the key stays the same (compared by value: a
 * reloaded configuration brings its own copy). */
static EVP_MAC_CTX *mac_for(struct core *c, const struct config *cfg)
{
	const unsigned char *key = (const unsigned char *)cfg->agent.user_id_key;
	size_t len = cfg->agent.user_id_key_len;
	if (c->mac && c->mac_key_len == len && memcmp(c->mac_key, key, len) == 0)
		return c->mac;
	mac_drop(c);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	c->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context keeps its own reference */
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
				OSSL_PARAM_construct_end() };
	if (!c->mac || !(c->mac_key = malloc(len ? len : 1)) ||
	    !EVP_MAC_init(c->mac, key, len, params)) {
		mac_drop(c);
		return NULL;
	}
	memcpy(c->mac_key, key, len);
	c->mac_key_len = len;
	return c->mac;
}

/* core_user_id for the core's sessions: the HMAC from the kept keyed context (OpenSSL 3's
 * one-shot HMAC() fetches the digest and keys a new context at every call). */
static char *user_id(struct core *c, const char *user)
{
	const struct config *cfg = c->cfg;
	if (!user || cfg->agent.user_ids != USER_IDS_HMAC)
		return core_user_id(cfg, user);
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t len = 0;
	EVP_MAC_CTX *m = mac_for(c, cfg);
	if (!m || !EVP_MAC_init(m, NULL, 0, NULL) || !EVP_MAC_update(m, (const unsigned char *)user, strlen(user)) ||
	    !EVP_MAC_final(m, md, &len, sizeof(md))) {
		mac_drop(c);
		return NULL;
	}
	return hex_of(md, len);
}

char *core_user_id(const struct config *cfg, const char *user)
{
	if (!user)
		return NULL;
	switch (cfg->agent.user_ids) {
	case USER_IDS_OMIT:
		return NULL;
	case USER_IDS_PLAIN:
		return strdup(user);
	case USER_IDS_HMAC:
		break;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), cfg->agent.user_id_key, (int)cfg->agent.user_id_key_len,
		  (const unsigned char *)user, strlen(user), md, &len))
		return NULL;
	return hex_of(md, len);
}

bool core_org_external(const struct config *cfg, const char *org)
{
	if (!org || !*org)
		return false; /* unknown affiliation can't earn external hours */
	for (size_t i = 0; i < cfg->agent.n_internal_orgs; i++)
		if (strcmp(org, cfg->agent.internal_orgs[i]) == 0)
			return false;
	return true;
}

int core_session_check(const struct config *cfg, const char *instrument, const struct obs_session *s,
		       int64_t now, const char **why)
{
	if (!instrument || !config_instrument(cfg, instrument)) {
		*why = "not an instrument of this agent";
		return -EINVAL;
	}
	int r = plausible_session(s->start, s->end, s->samples, now, why);
	if (r < 0)
		return r;
	if (s->end <= s->start) { /* plausible_session lets an instant pass; a session is not one */
		*why = "does not end after it starts";
		return -EINVAL;
	}
	const struct {
		const char *v, *why;
	} strs[] = {
		{ s->user, "user: not valid UTF-8" }, { s->org, "org: not valid UTF-8" },
		{ s->way, "way: not valid UTF-8" }, { s->fee, "fee: not valid UTF-8" },
		{ s->project, "project: not valid UTF-8" },
		{ s->operator_name, "operator: not valid UTF-8" }, { s->note, "note: not valid UTF-8" },
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (!utf8_str_valid(strs[i].v)) {
			*why = strs[i].why;
			return -EILSEQ;
		}
	}
	return 0;
}

int core_check_session(struct core *c, const char *instrument, const struct obs_session *s,
		       int64_t now, const char **why)
{
	return core_session_check(c->cfg, instrument, s, now, why);
}

static int submit_session(struct core *c, const char *instrument, const struct obs_session *s)
{
	const char *why = NULL;
	int r = core_session_check(c->cfg, instrument, s, clock_wall(), &why);
	if (r < 0) {
		/* A driver checks first (and turns it into log_malformed); this is the last line,
		 * whatever the source. Names only, never the session's text (SPEC §3). */
		log_warnx("core: session of \"%s\" refused: %s", instrument && utf8_str_valid(instrument) ?
			  instrument : "?", why);
		return r;
	}
	bool external = s->external >= 0 ? s->external == 1 : core_org_external(c->cfg, s->org);
	/* Kept first under the seq its record gets next (one insert, which is also the repeat
	 * check); both go or stay with the transaction. */
	struct chain_head head;
	buffer_head(c->buf, &head);
	r = metrics_session(c->metrics, head.seq + 1, instrument, s, external);
	if (r != 0)
		return r < 0 ? r : 0; /* the same session again: counted, sealed once */
	char *user = user_id(c, s->user);
	if (s->user && !user && c->cfg->agent.user_ids != USER_IDS_OMIT)
		return -ENOMEM; /* never sealed without the user it has */
	int64_t seq = record_session(c->buf, instrument, s, user, external);
	free(user);
	if (seq < 0)
		return (int)seq;
	return seq == head.seq + 1 ? 0 : -EIO;
}

int core_submit(struct core *c, const struct obs *v, size_t n, const char *cursor_key,
		const void *cursor, size_t cursor_len)
{
	if (atomic_load(&c->full))
		return -ENOSPC;
	int r = buffer_begin(c->buf);
	if (r < 0)
		return r;
	metrics_batch(c->metrics, true);
	for (size_t i = 0; i < n && r == 0; i++) {
		if (v[i].instrument && !utf8_str_valid(v[i].instrument)) {
			log_warnx("core: observation refused: its instrument is not valid UTF-8");
			r = -EILSEQ;
			break;
		}
		switch (v[i].type) {
		case OBS_EVENT: {
			const struct obs_event *e = &v[i].u.event;
			int64_t seq = record_event(c->buf, e->at, v[i].instrument, e->type, e->detail);
			r = seq < 0 ? (int)seq : 0;
			break;
		}
		case OBS_SESSION:
			r = submit_session(c, v[i].instrument, &v[i].u.session);
			break;
		case OBS_READING:
			r = metrics_reading(c->metrics, v[i].instrument, &v[i].u.reading);
			break;
		default:
			r = -EINVAL;
			break;
		}
	}
	metrics_batch(c->metrics, false);
	if (r == 0 && cursor_key)
		r = buffer_cursor_put(c->buf, cursor_key, cursor, cursor_len);
	if (r < 0) {
		/* What the batch changed in memory goes with it (metrics' undo hook). */
		buffer_rollback(c->buf);
		return r;
	}
	r = buffer_commit(c->buf); /* a failed commit is undone, memory with it */
	/* The cap holds between the daemon's ticks too: a fast source fills a buffer in
	 * well under a second. Measuring is three pragmas; still, not at every batch. */
	int64_t now = clock_mono_ms();
	if (r == 0 && now - atomic_load(&c->space_checked_ms) >= 50) {
		atomic_store(&c->space_checked_ms, now);
		core_check_space(c);
	}
	return r;
}

int core_event(struct core *c, const char *instrument, const char *type, const char *detail)
{
	struct obs o = { .type = OBS_EVENT, .instrument = instrument,
			 .u.event = { .at = clock_wall(), .type = type, .detail = detail } };
	int r = buffer_begin(c->buf);
	if (r < 0)
		return r;
	/* Events are sealed even when the buffer is full: they are few and say why. */
	int64_t seq = record_event(c->buf, o.u.event.at, o.instrument, o.u.event.type, o.u.event.detail);
	if (seq < 0) {
		r = (int)seq;
		buffer_rollback(c->buf);
		return r;
	}
	return buffer_commit(c->buf);
}

int core_cursor(struct core *c, const char *key, void **data, size_t *len)
{
	return buffer_cursor_get(c->buf, key, data, len);
}

bool core_paused(struct core *c)
{
	return atomic_load(&c->full);
}

void core_check_space(struct core *c)
{
	int64_t used = buffer_bytes(c->buf);
	bool was = atomic_load(&c->full);
	bool now = used >= c->max_bytes;
	if (now == was)
		return;
	atomic_store(&c->full, now);
	if (buffer_begin(c->buf) == 0) {
		if (buffer_meta_put(c->buf, "buffer_full", now ? "1" : "0") == 0)
			buffer_commit(c->buf);
		else
			buffer_rollback(c->buf);
	}
	if (now) {
		char detail[128];
		snprintf(detail, sizeof(detail), "buffer at %lld of %lld bytes: sources paused",
			 (long long)used, (long long)c->max_bytes);
		log_errx("buffer: full (%lld of %lld MB): sources paused until the platform acknowledges records",
			 (long long)(used >> 20), (long long)(c->max_bytes >> 20));
		core_event(c, NULL, "buffer_full", detail);
	} else {
		log_notice("buffer: space freed (%lld MB in use): sources resume", (long long)(used >> 20));
	}
}

int64_t core_sessions_repeated(struct core *c, const char *instrument)
{
	return metrics_sessions_repeated(c->metrics, instrument);
}
