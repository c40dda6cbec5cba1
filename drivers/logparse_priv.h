/* logparse_priv.h — what the parser's parts share and no one else sees: the parser, one
 * record's field values, and the helpers that build a result from them (logparse.c) for the
 * formats (logparse_formats.c). */
#ifndef LABSHARE_LOGPARSE_PRIV_H
#define LABSHARE_LOGPARSE_PRIV_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logparse.h"
#include "encoding.h"

struct lp_parser {
	const struct log_cfg *cfg;
	struct enc_conv *conv;
	char *fbuf;                      /* unescaped CSV fields, NUL-separated */
	size_t fcap;
	const char *fv[LP_CSV_MAX_COLS];
	size_t nf;
	regmatch_t m[32];
};

/* Field values of one record: text (NULL when absent), or a JSON number. */
struct vals {
	const char *v[SF__COUNT];
	bool num[SF__COUNT];
	double d[SF__COUNT];
};

/* logparse.c */
void lp_why_set(struct lp_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lp_malformed(struct lp_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *lp_q(const char *s, char buf[64]);
const char *lp_value(struct lp_arena *a, const char *s, size_t n, bool *oom);
void lp_build_session(const struct lp_parser *p, const struct vals *vs, struct lp_result *out);
void lp_build_mark(const struct lp_parser *p, const struct vals *vs, enum lp_kind kind,
		   bool keyed, struct lp_result *out);

/* logparse_formats.c */
void lp_parse_csv(struct lp_parser *p, struct lp_csv_cols *cols, const char *text,
		  size_t len, struct lp_arena *a, struct lp_result *out);
void lp_parse_jsonl(struct lp_parser *p, const char *text, size_t len, struct lp_arena *a,
		    struct lp_result *out);
void lp_parse_regex(struct lp_parser *p, const char *text, struct lp_arena *a,
		    struct lp_result *out);
void lp_parse_events(struct lp_parser *p, const char *text, struct lp_arena *a,
		     struct lp_result *out);

#endif
