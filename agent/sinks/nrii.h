/* nrii.h — the NRII SOAP sink (SPEC §8): sessions as type-6 service records, yearly totals as
 * type-4 instrument records, one call each; the pure pieces are exposed for the tests. */
#ifndef LABSHARE_NRII_H
#define LABSHARE_NRII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"

struct buffer;
struct config;
struct instrument_cfg;
struct cJSON;

extern const struct sink_ops nrii_sink;

#define NRII_NS "http://instru.server.ws.com/"
#define NRII_TYPE_SERVICE 6
#define NRII_TYPE_INSTRUMENT 4
/* The platform's field limits, in characters (not bytes). */
#define NRII_APPLICANT_MAX 20
#define NRII_UNIT_MAX 100
#define NRII_TEXT_MAX 200

/* The SOAP request for one sealed session record (seq, its exact line): the envelope as a
 * malloc'd NUL-terminated string, or NULL with why filled (unknown instrument, malformed). */
char *nrii_envelope_session(const struct config *cfg, int64_t seq, const char *line, char *why,
			    size_t whylen);
/* The type-4 request for one instrument: its nrii_profile, worth_wan, and the year's sums of
 * effective and service seconds (sent as hours with 2 decimals). */
char *nrii_envelope_profile(const struct config *cfg, const struct instrument_cfg *ic,
			    int64_t effective_s, int64_t service_s);
/* Just the instruList JSON of a session (ASCII only: non-ASCII as \uXXXX). */
char *nrii_json_session(const struct config *cfg, int64_t seq, const char *line, char *why,
			size_t whylen);

/* What a reply body came to. */
enum nrii_reply_kind {
	NRII_REPLY_NONE,    /* no SOAP envelope, or one without a usable `return` */
	NRII_REPLY_FAULT,   /* a SOAP Fault */
	NRII_REPLY_RETURN,  /* `return` with a leading integer in code */
};

struct nrii_reply {
	enum nrii_reply_kind kind;
	int code;
	char text[512];     /* the return text or the fault string, cut; "" when none */
};

/* Finds the SOAP envelope in body (it may be wrapped in other text, e.g. a MIME part), parses
 * it with libxml2 and reads `return`. Never fails: what it can't read is NRII_REPLY_NONE. */
void nrii_parse_reply(const char *body, size_t len, struct nrii_reply *out);

/* UTF-8 text cut to at most max characters, never inside a sequence: the byte length kept. */
size_t nrii_utf8_cut(const char *s, size_t len, size_t max_chars);

/* Adds "parked", "parked_count", "parked_totals" and "sent_count" to a sink's status object;
 * read-only, works on a buffer opened READONLY. */
void nrii_status_add(struct buffer *b, struct cJSON *obj);

#endif
