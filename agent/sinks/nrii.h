/* nrii.h — the NRII SOAP sink (SPEC §8): sessions as type-6 service records, yearly totals as
 * type-4 instrument records, one call each, with its own cursor and per-record state. What it
 * sends is nrii_format.h, how it reads the answer nrii_reply.h; this is the sink itself. */
#ifndef LABSHARE_NRII_H
#define LABSHARE_NRII_H

#include "sink.h"

#include <stddef.h>
#include <stdint.h>

struct buffer;
struct store_schema;

extern const struct sink_ops nrii_sink;
/* The sink's tables (nrii_*), fed to the store's migration registry (nrii_schema.c) when the
 * sink is created. */
extern const struct store_schema nrii_schema;

/* The sink's part of the status (SPEC §8): every parked record and yearly total, and the
 * counts. */
struct nrii_parked {
	int64_t seq;
	int code;
	char *text;
};

struct nrii_parked_total {
	char *instrument, *text;
	int year, month, code;
};

struct nrii_status {
	struct nrii_parked *parked;
	size_t n_parked;
	struct nrii_parked_total *totals;
	size_t n_totals;
	int64_t parked_count, sent_count;
};

/* Fills ns (cleared first); read-only, works on a buffer opened READONLY. 0 or -errno (ns
 * then holds what was read). */
int nrii_status_get(struct buffer *b, struct nrii_status *ns);
void nrii_status_clear(struct nrii_status *ns);

#endif
