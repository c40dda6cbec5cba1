/* nrii.h — the NRII SOAP sink (SPEC §8): sessions as type-6 service records, yearly totals as
 * type-4 instrument records, one call each, with its own cursor and per-record state. What it
 * sends is nrii_format.h, how it reads the answer nrii_reply.h; this is the sink itself. */
#ifndef LABSHARE_NRII_H
#define LABSHARE_NRII_H

#include "sink.h"

struct buffer;
struct cJSON;
struct store_schema;

extern const struct sink_ops nrii_sink;
/* The sink's tables (nrii_*), fed to the store's migration registry (nrii_schema.c) when the
 * sink is created. */
extern const struct store_schema nrii_schema;

/* Adds "parked", "parked_count", "parked_totals" and "sent_count" to a sink's status object;
 * read-only, works on a buffer opened READONLY. */
void nrii_status_add(struct buffer *b, struct cJSON *obj);

#endif
