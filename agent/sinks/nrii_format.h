/* nrii_format.h — what the NRII sink sends (SPEC §8), as pure functions of the configuration and
 * a sealed record: the SOAP request, its instruList JSON, and the digest of every setting that
 * shapes them. No I/O: the golden tests compare these byte for byte. */
#ifndef LABSHARE_NRII_FORMAT_H
#define LABSHARE_NRII_FORMAT_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct instrument_cfg;

#define NRII_NS "http://instru.server.ws.com/"
#define NRII_TYPE_SERVICE 6
#define NRII_TYPE_INSTRUMENT 4
/* The platform's field limits, in characters (not bytes). */
#define NRII_APPLICANT_MAX 20
#define NRII_UNIT_MAX 100
#define NRII_TEXT_MAX 200

/* The SOAP request for one sealed session record (seq, its exact line): the envelope as a
 * malloc'd NUL-terminated string, or NULL with why filled (unknown instrument, malformed;
 * "out of memory" when that was all). */
char *nrii_envelope_session(const struct config *cfg, int64_t seq, const char *line, char *why,
			    size_t whylen);
/* The type-4 request for one instrument: its nrii_profile, worth_wan, and the year's sums of
 * effective and service seconds (sent as hours with 2 decimals). NULL when out of memory. */
char *nrii_envelope_profile(const struct config *cfg, const struct instrument_cfg *ic,
			    int64_t effective_s, int64_t service_s);
/* Just the instruList JSON of a session (ASCII only: non-ASCII as \uXXXX). */
char *nrii_json_session(const struct config *cfg, int64_t seq, const char *line, char *why,
			size_t whylen);

/* Seconds as the hours sent, 2 decimals, half up: "5.00", "3.43". */
void nrii_hours2(int64_t seconds, char out[32]);

/* The SHA-256 (hex) of every setting the requests are built from: when it changes (a reload or
 * a restart with a corrected config), what the platform refused is worth sending again.
 * 0 or -ENOMEM / -EIO. */
int nrii_config_digest(const struct config *cfg, char out[65]);

#endif
