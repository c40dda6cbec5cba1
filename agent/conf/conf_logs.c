/* conf_logs.c — an instrument's logs: format, path, fields, regexes (size and weight bounded
 * before regcomp) and time formats. */
#include "conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <regex.h>
#include <time.h>

enum fields_kind { FIELDS_NAMES, FIELDS_GROUPS, FIELDS_EVENT };

static void parse_fields(struct ctx *c, const cJSON *o, const char *P, enum fields_kind kind,
			 const regex_t *re, struct field_map *fm)
{
	static const char *const session_keys[] = { "start", "end", "duration", "user", "org",
		"samples", "external", "way", "fee", "project", NULL };
	static const char *const event_keys[] = { "time", "user", "org", "samples", "external",
		"way", "fee", "project", NULL };
	const char *const *allowed = kind == FIELDS_EVENT ? event_keys : session_keys;
	char p[PATH_BUF];

	for (const cJSON *m = o->child; m; m = m->next) {
		int f = 0;
		while (f < SF__COUNT && strcmp(session_field_names[f], m->string) != 0)
			f++;
		conf_join(p, P, m->string);
		if (f == SF__COUNT) {
			conf_err_unknown(c, m, P, allowed);
			continue;
		}
		if (!conf_in_list(m->string, allowed)) {
			conf_err_key(c, m, p, kind == FIELDS_EVENT ?
				     "not used by \"events\" logs (a session's times come from \"time\")" :
				     "only used by \"events\" logs");
			continue;
		}
		if (fm->name[f] || fm->group[f])
			continue;  /* a duplicate key, reported by jsonc */
		if (kind == FIELDS_NAMES) {
			fm->name[f] = conf_xdup(c, conf_str_value(c, m, p));
			continue;
		}
		if (!conf_is_integer(m)) {
			conf_err_val(c, m, p, "must be an integer");
			continue;
		}
		double g = m->valuedouble;
		if (g < 1 || g > (re ? (double)re->re_nsub : INT_MAX)) {
			if (!re)
				conf_err_val(c, m, p, "must be a group number (1 or more)");
			else if (re->re_nsub == 0)
				conf_err_val(c, m, p, "the pattern has no groups");
			else if (re->re_nsub == 1)
				conf_err_val(c, m, p, "must be 1: the pattern has 1 group");
			else
				conf_err_val(c, m, p, "must be 1..%zu: the pattern has %zu groups",
					     re->re_nsub, re->re_nsub);
			continue;
		}
		fm->group[f] = (int)g;
	}

	if (kind == FIELDS_EVENT) {
		if (!conf_get(o, "time"))
			conf_err_missing(c, o, P, "time");
		return;
	}
	if (!conf_get(o, "start"))
		conf_err_missing(c, o, P, "start");
	if (!conf_get(o, "end") && !conf_get(o, "duration"))
		conf_err_val(c, o, conf_join(p, P, "end"), "missing required key (or \"duration\")");
	else if (conf_get(o, "end") && conf_get(o, "duration"))
		conf_err_key(c, conf_get(o, "duration"), conf_join(p, P, "duration"),
			     "give \"end\" or \"duration\", not both");
}

static size_t sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
	return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* The number of atoms a pattern grows to once glibc's regcomp unrolls it: "x{n}" copies x
 * n times and "x+" is "xx*", so nested or stacked repeats multiply: "((a{255}){255}){255}"
 * or "a+++…+" would take regcomp minutes and gigabytes. An upper bound (alternatives are
 * added, not maxed); SIZE_MAX past 64 nested groups. */
static size_t regex_weight(const char *s)
{
	size_t stack[64], depth = 0, cur = 0, last = 0;
	while (*s) {
		const char *q = s + 1;
		size_t atom = 1;
		if (*s == '(') {
			if (depth == sizeof(stack) / sizeof(stack[0]))
				return SIZE_MAX;
			stack[depth++] = cur;
			cur = last = 0;
			s++;
			continue;
		}
		if (*s == ')' && depth > 0) {
			last = cur;
			cur = sat_add(stack[--depth], cur);
			s++;
			continue;
		}
		if (*s == '{' && *q >= '0' && *q <= '9') {
			char *end;
			unsigned long lo = strtoul(q, &end, 10), hi = lo;
			if (*end == ',') {
				end++;
				hi = *end >= '0' && *end <= '9' ? strtoul(end, &end, 10) : lo;
			}
			if (*end == '}') {
				size_t n = hi > lo ? hi : lo;  /* regcomp refuses hi < lo itself */
				cur = sat_add(cur, sat_mul(last, n ? n - 1 : 0));
				last = sat_mul(last, n ? n : 1);
				s = end + 1;
				continue;
			}
		} else if (*s == '\\') {
			q = s[1] ? s + 2 : s + 1;
		} else if (*s == '[') {
			/* a bracket expression is one atom: skip to its closing ']' */
			q += *q == '^';
			q += *q == ']';
			while (*q && *q != ']') {
				if (*q == '[' && (q[1] == ':' || q[1] == '=' || q[1] == '.')) {
					const char *e = q + 2;
					while (*e && !(e[0] == q[1] && e[1] == ']'))
						e++;
					q = *e ? e + 2 : e;
				} else {
					q++;
				}
			}
			q += *q == ']';
		} else if (*s == '+') {
			cur = sat_add(cur, last);
			last = sat_mul(last, 2);
			atom = 0;
		} else if (strchr("*?|^$", *s)) {
			atom = 0;  /* no copy: a loop or a branch over what is there */
		}
		if (atom) {
			last = atom;
			cur = sat_add(cur, atom);
		}
		s = q;
	}
	return cur;
}

static bool compile(struct ctx *c, const cJSON *o, const char *P, const char *key, char **pattern,
		    regex_t *re, bool *compiled)
{
	char p[PATH_BUF], why[160];
	const char *s = conf_str_member(c, o, P, key, true);
	if (!s)
		return false;
	conf_join(p, P, key);
	if (strlen(s) > PATTERN_MAX_BYTES) {
		conf_err_val(c, conf_get(o, key), p, "longer than %d bytes", PATTERN_MAX_BYTES);
		return false;
	}
	if (regex_weight(s) > PATTERN_MAX_WEIGHT) {
		conf_err_val(c, conf_get(o, key), p, "too complex: its repeats expand to over %d elements",
			     PATTERN_MAX_WEIGHT);
		return false;
	}
	if (!(*pattern = conf_xdup(c, s)))
		return false;
	int rc = regcomp(re, s, REG_EXTENDED);
	if (rc != 0) {
		regerror(rc, re, why, sizeof(why));
		conf_err_val(c, conf_get(o, key), p, "invalid regular expression: %s", why);
		return false;
	}
	*compiled = true;
	return true;
}

/* strptime(3) (glibc) conversions: anything else, a lone "%" at the end, or a format with no
 * date in it is one that every line of the log would fail, silently, had check let it pass. */
static void check_time_format(struct ctx *c, const cJSON *v, const char *path, const char *fmt)
{
	static const char conv[] = "%ntaAbBhcCdeFxDkHlIjmMprRsSXTugGUVWwyYZz";
	static const char with_e[] = "cCxXyY", with_o[] = "deHImMSUVwWy";
	bool whole = false, year = false, month = false, day = false;
	for (const char *s = fmt; *s; s++) {
		if (*s != '%')
			continue;
		const char *allowed = conv;
		if (s[1] == 'E' || s[1] == 'O') {
			allowed = s[1] == 'E' ? with_e : with_o;
			s++;
		}
		if (!s[1]) {
			conf_err_val(c, v, path, "ends with an incomplete conversion \"%s\"",
				     *s == '%' ? "%" : s - 1);
			return;
		}
		/* One byte at a time: a multi-byte character after "%" is quoted as its first byte. */
		if (!strchr(allowed, s[1]) || (unsigned char)s[1] >= 0x80) {
			conf_err_val(c, v, path, "\"%%%s%c\" is not a strptime(3) conversion",
				     allowed == conv ? "" : allowed == with_e ? "E" : "O",
				     (unsigned char)s[1] < 0x80 && s[1] >= 0x20 ? s[1] : '?');
			return;
		}
		s++;
		if (strchr("scxDF", *s))
			whole = true;
		year |= *s == 'Y' || *s == 'y';
		month |= strchr("mbBh", *s) != NULL;
		day |= *s == 'd' || *s == 'e';
	}
	/* Without a date every line would be malformed: a time of day alone is not a session. */
	if (!whole && !(year && month && day))
		conf_err_val(c, v, path,
			     "gives no date (it needs a year, a month and a day, e.g. \"%%Y-%%m-%%d "
			     "%%H:%%M:%%S\")");
}

void conf_parse_log(struct ctx *c, const cJSON *o, const char *P, struct log_cfg *l)
{
	static const char *const keys[] = { "path", "format", "encoding", "time_format",
		"max_session_h", "fields", "pattern", "start_pattern", "end_pattern", "start_fields",
		"end_fields", "follow_symlinks", NULL };
	static const char *const format_keys[] = { "fields", "pattern", "start_pattern",
		"end_pattern", "start_fields", "end_fields", NULL };
	static const char *const formats[] = { "csv", "jsonl", "regex", "events", NULL };
	static const char *const encodings[] = { "utf-8", "utf8", "gbk", "gb18030", NULL };
	static const char *const uses[][5] = {
		[LOG_FMT_CSV] = { "fields", NULL },
		[LOG_FMT_JSONL] = { "fields", NULL },
		[LOG_FMT_REGEX] = { "pattern", "fields", NULL },
		[LOG_FMT_EVENTS] = { "start_pattern", "end_pattern", "start_fields", "end_fields", NULL },
	};
	char p[PATH_BUF];

	conf_check_keys(c, o, P, keys);
	l->path = conf_file_member(c, o, P, "path", true);
	int fmt = -1, enc = 0;
	bool have_fmt = conf_enum_member(c, o, P, "format", true, formats, false, &fmt);
	if (have_fmt)
		l->format = (enum log_format)fmt;
	conf_enum_member(c, o, P, "encoding", false, encodings, true, &enc);
	l->encoding = enc >= 2 ? LOG_ENC_GBK : LOG_ENC_UTF8;
	l->time_format = conf_xdup(c, conf_str_member(c, o, P, "time_format", false));
	if (l->time_format)
		check_time_format(c, conf_get(o, "time_format"), conf_join(p, P, "time_format"),
				  l->time_format);
	conf_bool_member(c, o, P, "follow_symlinks", &l->follow_symlinks);
	l->max_session_h = 12;
	conf_num_member(c, o, P, "max_session_h", false, 0, true, 168,
			"must be greater than 0 and at most 168", &l->max_session_h);
	if (!have_fmt)
		return;  /* which keys belong depends on the format */

	for (const cJSON *m = o->child; m; m = m->next)
		if (conf_in_list(m->string, format_keys) && !conf_in_list(m->string, uses[fmt]))
			conf_err_key(c, m, conf_join(p, P, m->string),
				     "not used by format \"%s\"", formats[fmt]);

	const cJSON *f;
	switch (l->format) {
	case LOG_FMT_CSV:
	case LOG_FMT_JSONL:
		if ((f = conf_obj_member(c, o, P, "fields", true)))
			parse_fields(c, f, conf_join(p, P, "fields"), FIELDS_NAMES, NULL, &l->fields);
		break;
	case LOG_FMT_REGEX:
		compile(c, o, P, "pattern", &l->pattern, &l->re, &l->re_compiled);
		if ((f = conf_obj_member(c, o, P, "fields", true)))
			parse_fields(c, f, conf_join(p, P, "fields"), FIELDS_GROUPS,
				     l->re_compiled ? &l->re : NULL, &l->fields);
		break;
	case LOG_FMT_EVENTS:
		compile(c, o, P, "start_pattern", &l->start_pattern, &l->start_re,
			&l->start_re_compiled);
		compile(c, o, P, "end_pattern", &l->end_pattern, &l->end_re, &l->end_re_compiled);
		if ((f = conf_obj_member(c, o, P, "start_fields", true)))
			parse_fields(c, f, conf_join(p, P, "start_fields"), FIELDS_EVENT,
				     l->start_re_compiled ? &l->start_re : NULL, &l->start_fields);
		if ((f = conf_obj_member(c, o, P, "end_fields", true)))
			parse_fields(c, f, conf_join(p, P, "end_fields"), FIELDS_EVENT,
				     l->end_re_compiled ? &l->end_re : NULL, &l->end_fields);
		break;
	}
}
