/* schema.h — the migration registry of the buffer's file: each module (the store itself,
 * metrics, NRII) owns its tables as an ordered list of steps under its own name, and the
 * file keeps one version per owner (table schema_owners). */
#ifndef LABSHARE_SCHEMA_H
#define LABSHARE_SCHEMA_H

#include <stddef.h>

struct buffer;

/* steps[i] takes the owner's tables from version i to i + 1: SQL run as one script. Append
 * only; never edit a shipped step. legacy_from: in a file from before the registry (one
 * PRAGMA user_version for the whole file, 1..3), the owner's step 1 is in place when that
 * number is at least legacy_from; 0 for an owner that came after the registry.
 * readable_from: a READONLY buffer reads tables of this version or later as they are (the
 * steps after it change nothing a reader relies on, e.g. a trigger dropped); 0: only n. */
struct store_schema {
	const char *owner;
	const char *const *steps;
	size_t n;
	int legacy_from;
	size_t readable_from;
};

/* Brings s's tables to version s->n in one transaction, at the module's first use of the
 * buffer (cheap afterwards: remembered per buffer). Idempotent. Returns 0, -EPROTO when the
 * file holds a newer version than s knows (logged: a newer agent wrote it), or on a
 * READONLY buffer -EROFS when the tables are behind (logged) and -ENOENT when the owner has
 * no tables yet (not logged: nothing of it was ever written). */
int buffer_schema(struct buffer *b, const struct store_schema *s);

#endif
