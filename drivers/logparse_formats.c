/* logparse_formats.c — one record of each log format to field values: CSV with a header row
 * (RFC 4180 quotes), JSON Lines, a line regex, and login/logout events. */
#include "logparse_priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <strings.h>

/* ---- CSV ---- */

/* Splits a CSV record into p->fv[0..nf); quotes per RFC 4180, blanks around fields ignored,
 * a quote inside an unquoted field kept as it is (instrument software writes 5" tubes). */
static bool csv_split(struct lp_parser *p, const char *s, size_t n, struct lp_result *out)
{
	if (p->fcap < n + LP_CSV_MAX_COLS + 1) {
		size_t cap = n + LP_CSV_MAX_COLS + 1;
		char *b = realloc(p->fbuf, cap);
		if (!b) {
			lp_malformed(out, "out of memory");
			return false;
		}
		p->fbuf = b;
		p->fcap = cap;
	}
	char *o = p->fbuf;
	size_t i = 0;
	p->nf = 0;
	for (;;) {
		if (p->nf == LP_CSV_MAX_COLS) {
			lp_malformed(out, "more than %d columns", LP_CSV_MAX_COLS);
			return false;
		}
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		p->fv[p->nf++] = o;
		if (i < n && s[i] == '"') {
			i++;
			for (;;) {
				if (i >= n) {
					lp_malformed(out, "unterminated quote in column %zu", p->nf);
					return false;
				}
				if (s[i] == '"') {
					if (i + 1 < n && s[i + 1] == '"') {
						*o++ = '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				*o++ = s[i++];
			}
			while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
				i++;
			if (i < n && s[i] != ',') {
				lp_malformed(out, "text after the closing quote in column %zu", p->nf);
				return false;
			}
		} else {
			char *start = o;
			while (i < n && s[i] != ',')
				*o++ = s[i++];
			while (o > start && (o[-1] == ' ' || o[-1] == '\t' || o[-1] == '\r'))
				o--;
		}
		*o++ = '\0';
		if (i >= n)
			return true;
		i++; /* the comma */
	}
}

static bool required(const struct log_cfg *cfg, int f)
{
	if (f == SF_START)
		return true;
	if (f == SF_END)
		return !cfg->fields.name[SF_DURATION];
	if (f == SF_DURATION)
		return !cfg->fields.name[SF_END];
	return false;
}

static void csv_header(struct lp_parser *p, struct lp_csv_cols *cols, struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	size_t w = 0;
	bool fatal = false;
	lp_csv_cols_reset(cols);
	cols->have_header = true;
	out->kind = LP_HEADER;
	out->why[0] = '\0';
	for (int f = 0; f < SF__COUNT; f++) {
		const char *name = cfg->fields.name[f];
		if (!name)
			continue;
		for (size_t c = 0; c < p->nf; c++)
			if (strcmp(p->fv[c], name) == 0) {
				cols->col[f] = (int)c;
				break;
			}
		if (cols->col[f] >= 0)
			continue;
		char qb[64];
		int k = snprintf(out->why + w, sizeof(out->why) - w, "%s\"%s\"", w ? ", " : "",
				 lp_q(name, qb));
		if (k > 0 && (size_t)k < sizeof(out->why) - w)
			w += (size_t)k;
		fatal |= required(cfg, f);
	}
	if (w) {
		char list[sizeof(out->why)];
		memcpy(list, out->why, sizeof(list));
		lp_why_set(out, "%s not in the header%s", list,
			   fatal ? ": every line will be malformed" : "");
	}
}

void lp_parse_csv(struct lp_parser *p, struct lp_csv_cols *cols, const char *text,
		  size_t len, struct lp_arena *a, struct lp_result *out)
{
	if (!csv_split(p, text, len, out))
		return;
	const struct log_cfg *cfg = p->cfg;
	if (!cols->have_header) {
		csv_header(p, cols, out);
		return;
	}
	/* Some programs write the header again each time they open the file (maybe with other
	 * columns): a row naming the start column is a header, no start time looks like that. */
	for (size_t c = 0; cfg->fields.name[SF_START] && c < p->nf; c++)
		if (strcmp(p->fv[c], cfg->fields.name[SF_START]) == 0) {
			csv_header(p, cols, out);
			return;
		}
	struct vals vs;
	memset(&vs, 0, sizeof(vs));
	bool oom = false;
	for (int f = 0; f < SF__COUNT; f++) {
		if (!cfg->fields.name[f])
			continue;
		int c = cols->col[f];
		if (c < 0) {
			if (required(cfg, f)) {
				char qb[64];
				lp_malformed(out, "column \"%s\" is not in the header", lp_q(cfg->fields.name[f], qb));
				return;
			}
			continue;
		}
		if ((size_t)c >= p->nf) {
			if (required(cfg, f)) {
				lp_malformed(out, "%zu columns, \"%s\" is column %d", p->nf,
					     cfg->fields.name[f], c + 1);
				return;
			}
			continue;
		}
		vs.v[f] = lp_value(a, p->fv[c], strlen(p->fv[c]), &oom);
	}
	if (oom) {
		lp_malformed(out, "out of memory");
		return;
	}
	lp_build_session(p, &vs, out);
}

/* ---- JSON Lines ---- */

static const cJSON *json_field(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (it || !strchr(key, '.'))
		return it;
	/* "session.user" reaches into nested objects when no key has the dotted name. */
	char buf[256];
	if (strlen(key) >= sizeof(buf))
		return NULL;
	memcpy(buf, key, strlen(key) + 1);
	const cJSON *cur = obj;
	for (char *part = buf, *dot; cur; part = dot + 1) {
		dot = strchr(part, '.');
		if (dot)
			*dot = '\0';
		cur = cJSON_GetObjectItemCaseSensitive(cur, part);
		if (!dot)
			return cur;
	}
	return NULL;
}

void lp_parse_jsonl(struct lp_parser *p, const char *text, size_t len, struct lp_arena *a,
		    struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!root) {
		lp_malformed(out, "not JSON");
		return;
	}
	if (!cJSON_IsObject(root)) {
		lp_malformed(out, "not a JSON object");
		cJSON_Delete(root);
		return;
	}
	struct vals vs;
	memset(&vs, 0, sizeof(vs));
	bool oom = false;
	for (int f = 0; f < SF__COUNT && out->kind != LP_MALFORMED; f++) {
		if (!cfg->fields.name[f])
			continue;
		const cJSON *it = json_field(root, cfg->fields.name[f]);
		if (!it || cJSON_IsNull(it))
			continue;
		if (cJSON_IsString(it)) {
			vs.v[f] = lp_value(a, it->valuestring, strlen(it->valuestring), &oom);
		} else if (cJSON_IsNumber(it)) {
			char num[64];
			double d = it->valuedouble;
			if (d == floor(d) && fabs(d) < 9e15)
				snprintf(num, sizeof(num), "%.0f", d);
			else
				snprintf(num, sizeof(num), "%.15g", d);
			vs.v[f] = lp_value(a, num, strlen(num), &oom);
			vs.num[f] = true;
			vs.d[f] = d;
		} else if (cJSON_IsBool(it)) {
			vs.v[f] = cJSON_IsTrue(it) ? "true" : "false";
		} else {
			lp_malformed(out, "\"%s\" is not a string or a number", cfg->fields.name[f]);
		}
	}
	cJSON_Delete(root);
	if (out->kind == LP_MALFORMED)
		return;
	if (oom) {
		lp_malformed(out, "out of memory");
		return;
	}
	/* Numbers are epoch times only for the time fields; elsewhere they are just text. */
	for (int f = 0; f < SF__COUNT; f++)
		if (f != SF_START && f != SF_END && f != SF_DURATION && f != SF_TIME)
			vs.num[f] = false;
	lp_build_session(p, &vs, out);
}

/* ---- regex and events ---- */

static bool regex_vals(struct lp_parser *p, const regex_t *re, const struct field_map *fm,
		       const char *text, struct lp_arena *a, struct vals *vs, struct lp_result *out)
{
	/* Most lines of a log are not sessions: a match without groups is much cheaper. */
	if (regexec(re, text, 0, NULL, 0) != 0)
		return false;
	size_t nm = re->re_nsub + 1;
	if (nm > sizeof(p->m) / sizeof(p->m[0]))
		nm = sizeof(p->m) / sizeof(p->m[0]);
	if (regexec(re, text, nm, p->m, 0) != 0)
		return false;
	bool oom = false;
	memset(vs, 0, sizeof(*vs));
	for (int f = 0; f < SF__COUNT; f++) {
		int g = fm->group[f];
		if (g <= 0 || (size_t)g >= nm || p->m[g].rm_so < 0)
			continue;
		vs->v[f] = lp_value(a, text + p->m[g].rm_so, (size_t)(p->m[g].rm_eo - p->m[g].rm_so), &oom);
	}
	if (oom)
		lp_malformed(out, "out of memory");
	return true;
}

void lp_parse_regex(struct lp_parser *p, const char *text, struct lp_arena *a,
		    struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	struct vals vs;
	if (!cfg->re_compiled || !regex_vals(p, &cfg->re, &cfg->fields, text, a, &vs, out))
		return; /* a line the pattern doesn't describe is not a session */
	if (out->kind != LP_MALFORMED)
		lp_build_session(p, &vs, out);
}

void lp_parse_events(struct lp_parser *p, const char *text, struct lp_arena *a,
		     struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	struct vals vs;
	if (cfg->start_re_compiled && regex_vals(p, &cfg->start_re, &cfg->start_fields, text, a, &vs, out)) {
		if (out->kind != LP_MALFORMED)
			lp_build_mark(p, &vs, LP_START, cfg->start_fields.group[SF_USER] > 0, out);
		return;
	}
	if (cfg->end_re_compiled && regex_vals(p, &cfg->end_re, &cfg->end_fields, text, a, &vs, out)) {
		if (out->kind != LP_MALFORMED)
			lp_build_mark(p, &vs, LP_END, cfg->end_fields.group[SF_USER] > 0, out);
	}
}
