/* feed.h — the chained feed of SPEC §6: sealed records in batches to the platform over HTTPS. */
#ifndef LABSHARE_FEED_H
#define LABSHARE_FEED_H

#include "sink.h"

extern const struct sink_ops feed_sink;

#endif
