/* transfer.h — what the sinks share to talk HTTP(S) with libcurl: one reused connection,
 * verification always on, a capped reply buffer, Retry-After, an abort that works mid-way,
 * and the back-off with full jitter. */
#ifndef LABSHARE_TRANSFER_H
#define LABSHARE_TRANSFER_H

#include "dynbuf.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transfer_opts {
	const char *url;
	const char *protocols;       /* "https" or "https,http" */
	long timeout_s;
	const char *ca_file, *client_cert, *client_key, *proxy; /* NULL: libcurl's defaults */
	size_t reply_max;            /* replies are cut, not failed, past this */
};

struct transfer {
	CURL *curl;
	struct dbuf reply;
	bool reply_cut;              /* the last reply was longer than reply_max: reply is its start */
	char errbuf[CURL_ERROR_SIZE];
	long retry_after;            /* seconds from the last reply's Retry-After; -1 none */
	atomic_bool abort;
	int failures;                /* consecutive temporary failures, for transfer_backoff */
	uint64_t rng;                /* this transfer's jitter generator, seeded from getrandom(2) */
};

int transfer_init(struct transfer *t, const struct transfer_opts *o);
void transfer_cleanup(struct transfer *t);
/* POST body with the given headers; returns libcurl's code and the HTTP status (0 when none).
 * The reply is in t->reply: its first reply_max - 1 bytes, t->reply_cut when there was more. */
CURLcode transfer_post(struct transfer *t, struct curl_slist *headers, const void *body, size_t len,
		       long *status);
/* GET url (another path on the same server, same TLS settings and connection) the same way. */
CURLcode transfer_get(struct transfer *t, const char *url, struct curl_slist *headers, long *status);
/* "Authorization: Bearer <token>" as long as the token is; NULL when out of memory. */
char *transfer_bearer(const char *token);
/* Makes a transfer under way give up (the daemon is stopping). */
void transfer_abort(struct transfer *t);
/* The error text of the last failed transfer. */
const char *transfer_error(const struct transfer *t, CURLcode cc);
/* When to try again after t->failures failures: full jitter, 1 s doubling up to max_s, drawn
 * from a generator seeded per transfer (so per process) from the kernel's entropy. */
int64_t transfer_backoff(struct transfer *t, int64_t now, int64_t max_s);

#endif
