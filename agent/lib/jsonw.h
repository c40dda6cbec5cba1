/* jsonw.h — writes one JSON object straight into a buffer: the sealed records are built
 * at tens of thousands a second, and a tree of cJSON nodes per record costs more than the
 * SQLite insert that stores it. Output is what cJSON_PrintUnformatted gives for the same. */
#ifndef LABSHARE_JSONW_H
#define LABSHARE_JSONW_H

#include "dynbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* jw_begin_opt's flags. JW_ASCII: every character outside printable ASCII as \uXXXX, past
 * U+FFFF as a UTF-16 surrogate pair (for a peer whose stack guesses the charset). */
#define JW_ASCII 1u

struct jsonw {
	struct dbuf b;
	bool failed;        /* out of memory or past the cap: everything after is ignored */
	bool invalid;       /* a string was not valid UTF-8: the object is refused (SPEC §3) */
	bool empty;         /* no member written yet */
	bool ascii;         /* JW_ASCII */
};

/* An object with no cap but memory, UTF-8 passed through as it is (as cJSON prints it). */
void jw_begin(struct jsonw *w);
/* The same with flags (JW_ASCII) and a cap on the text's size in bytes (DBUF_NO_MAX: none). */
void jw_begin_opt(struct jsonw *w, unsigned flags, size_t max);
void jw_str(struct jsonw *w, const char *key, const char *val);   /* NULL val: null */
/* val cut to at most max_chars characters (utf8_cut: never inside a sequence). */
void jw_str_cut(struct jsonw *w, const char *key, const char *val, size_t max_chars);
void jw_int(struct jsonw *w, const char *key, int64_t val);
void jw_num(struct jsonw *w, const char *key, double val);
void jw_bool(struct jsonw *w, const char *key, bool val);
void jw_null(struct jsonw *w, const char *key);
/* A value given as its JSON text, written as it is (a number in a form of the caller's:
 * "2.50", "0.1"): the caller answers for it being JSON. */
void jw_raw(struct jsonw *w, const char *key, const char *json);
/* Nested containers: a member named key, or an array's element when key is NULL (the value
 * functions above take a NULL key the same way inside an array). */
void jw_object(struct jsonw *w, const char *key);
void jw_array(struct jsonw *w, const char *key);
void jw_close_object(struct jsonw *w);
void jw_close_array(struct jsonw *w);
/* Closes the object; returns the text (caller frees) and its length, or NULL: out of memory
 * or past the cap (failed) or a string that was not valid UTF-8 (invalid), so nothing invalid is ever sealed. */
char *jw_end(struct jsonw *w, size_t *len);

#endif
