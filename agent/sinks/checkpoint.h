/* checkpoint.h — `verify --remote` (SPEC §6 checkpoints): the local chain held against the
 * platform's acknowledged copy, with the feed's token and TLS settings. */
#ifndef LABSHARE_CHECKPOINT_H
#define LABSHARE_CHECKPOINT_H

#include <stdint.h>
#include <stdio.h>

#include "buffer.h"

struct config;

/* What the local chain is: its head, and what was pruned below it (seq 0: nothing). */
struct checkpoint_local {
	struct chain_head head;
	struct chain_head pruned;
};

/* Compares the local chain (already verified intact) with the platform's checkpoints.
 * b may be NULL when nothing was ever sealed. Prints the outcome on out and errors on
 * stderr. Returns 0 matching, 1 differs (the first bad seq printed), 75 platform
 * unreachable or refusing the token, 76 a reply that is not the protocol, 78 no
 * platform configured. */
int checkpoint_verify(const struct config *cfg, struct buffer *b, const struct checkpoint_local *local,
		      FILE *out);

#endif
