/* jsonc.h — JSON with // and block comments, parsed by cJSON, with the line:col of every key and
 * value kept so that a configuration error can point at the exact place in the file. */
#ifndef LABSHARE_JSONC_H
#define LABSHARE_JSONC_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct jsonc_doc;

/* Something wrong in the text, at a byte offset; msg is complete apart from the
 * "file:line:col: " prefix, e.g. "syntax error: unexpected ','" or
 * "agent.id: duplicate key (first at 3:5)". */
struct jsonc_problem {
	size_t off;
	char *msg;
};

struct jsonc_pos {
	unsigned line;  /* 1-based */
	unsigned col;   /* 1-based, in characters (UTF-8 code points), a tab counts as one */
};

/* Parses len bytes (no NUL needed). Returns 0 with *out set, also when the text is not
 * JSON: then jsonc_root() is NULL and the problems say why. -ENOMEM otherwise. */
int jsonc_parse(const char *text, size_t len, struct jsonc_doc **out);
void jsonc_free(struct jsonc_doc *doc);

/* Plain JSON that the agent wrote itself (status.json): no comments, no positions, no checks; read
 * as cJSON_ParseWithLength would (text after the value is let be), only faster on a large text.
 * jsonc_root() is the value or NULL; the tree lives as long as the doc. 0, or -ENOMEM. */
int jsonc_parse_plain(const char *text, size_t len, struct jsonc_doc **out);

/* The parsed value, or NULL when the text has a fatal error (syntax, encoding). */
const cJSON *jsonc_root(const struct jsonc_doc *doc);

/* Problems in text order: one fatal error, or any number of non-fatal ones (duplicate
 * keys, \u0000 in a string) beside a root. */
size_t jsonc_n_problems(const struct jsonc_doc *doc);
const struct jsonc_problem *jsonc_problem(const struct jsonc_doc *doc, size_t i);
/* Problems past the first 200, counted but not kept. */
size_t jsonc_n_dropped(const struct jsonc_doc *doc);

/* Byte offset of a node's key (its opening quote; the value's for the root and array
 * elements) and of its value's first character. 0 for a node not from this document. */
size_t jsonc_key_off(const struct jsonc_doc *doc, const cJSON *node);
size_t jsonc_value_off(const struct jsonc_doc *doc, const cJSON *node);

struct jsonc_pos jsonc_pos_of(const struct jsonc_doc *doc, size_t off);

#endif
