/* jsonw.h — writes one JSON object straight into a buffer: the sealed records are built
 * at tens of thousands a second, and a tree of cJSON nodes per record costs more than the
 * SQLite insert that stores it. Output is what cJSON_PrintUnformatted gives for the same. */
#ifndef LABSHARE_JSONW_H
#define LABSHARE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jsonw {
	char *p;
	size_t len, cap;
	bool failed;        /* out of memory: everything after is ignored */
	bool invalid;       /* a string was not valid UTF-8: the object is refused (SPEC §3) */
	bool empty;         /* no member written yet */
};

void jw_begin(struct jsonw *w);
void jw_str(struct jsonw *w, const char *key, const char *val);   /* NULL val: null */
void jw_int(struct jsonw *w, const char *key, int64_t val);
void jw_num(struct jsonw *w, const char *key, double val);
void jw_bool(struct jsonw *w, const char *key, bool val);
void jw_null(struct jsonw *w, const char *key);
/* Nested containers: a member named key, or an array's element when key is NULL (the value
 * functions above take a NULL key the same way inside an array). */
void jw_object(struct jsonw *w, const char *key);
void jw_array(struct jsonw *w, const char *key);
void jw_close_object(struct jsonw *w);
void jw_close_array(struct jsonw *w);
/* Closes the object; returns the text (caller frees) and its length, or NULL: out of memory
 * (failed) or a string that was not valid UTF-8 (invalid), so nothing invalid is ever sealed. */
char *jw_end(struct jsonw *w, size_t *len);

#endif
