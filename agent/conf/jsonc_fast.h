/* jsonc_fast.h — jsonc's fast path (private to agent/conf/jsonc.c): a valid JSON text parsed
 * into the tree cJSON would build, its nodes and strings kept in one arena. */
#ifndef LABSHARE_JSONC_FAST_H
#define LABSHARE_JSONC_FAST_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct jsonc_arena;

/* text[0..len) with a NUL at text[len]. The root, equal field by field to what
 * cJSON_ParseWithLengthOpts would give, with nothing but whitespace after it; NULL for anything
 * else (invalid JSON, trailing text, a \u escape it leaves to cJSON, deep nesting, long numbers,
 * out of memory), with nothing kept: the caller then asks cJSON, whose errors are the ones
 * reported. The tree belongs to *arena: never cJSON_Delete it, free the arena. */
cJSON *jsonc_fast_parse(const char *text, size_t len, struct jsonc_arena **arena);
void jsonc_arena_free(struct jsonc_arena *a);

/* Whether any object in the tree repeats a key (or has a member without one: the walk's to
 * judge): 1, 0, or -1 when out of memory. jsonc's walk reports them; this only decides whether
 * it has to run at once. */
int jsonc_has_duplicates(const cJSON *root);

/* The value of four hex digits (a \u escape's), or -1 when one is not a hex digit. Shared with
 * jsonc.c's walk. */
int jsonc_hex4(const char *s);

#endif
