/* logparse.c — the rules that turn instrument log records into sessions: framing, CSV, JSON
 * Lines, regex, and login/logout pairing. No files, no clock, no SQLite. */
#include "logparse.h"
#include "clock.h"
#include "encoding.h"
#include "plausible.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- arena ---- */

#define ARENA_CHUNK 65536

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct lp_arena {
	struct arena_chunk *head;   /* the chunk being filled */
	struct arena_chunk *spare;  /* emptied chunks kept for the next batch */
};

struct lp_arena *lp_arena_new(void)
{
	return calloc(1, sizeof(struct lp_arena));
}

static void chunks_free(struct arena_chunk *c)
{
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
}

void lp_arena_reset(struct lp_arena *a)
{
	if (!a)
		return;
	/* Keep one standard chunk so a steady stream of batches does not malloc each time. */
	struct arena_chunk *c = a->head;
	while (c) {
		struct arena_chunk *next = c->next;
		if (c->cap == ARENA_CHUNK && !a->spare) {
			c->used = 0;
			c->next = NULL;
			a->spare = c;
		} else {
			free(c);
		}
		c = next;
	}
	a->head = NULL;
}

void lp_arena_free(struct lp_arena *a)
{
	if (!a)
		return;
	chunks_free(a->head);
	chunks_free(a->spare);
	free(a);
}

char *lp_arena_strndup(struct lp_arena *a, const char *s, size_t n)
{
	struct arena_chunk *c = a->head;
	if (!c || c->cap - c->used < n + 1) {
		size_t cap = n + 1 > ARENA_CHUNK ? n + 1 : ARENA_CHUNK;
		if (cap == ARENA_CHUNK && a->spare) {
			c = a->spare;
			a->spare = NULL;
		} else {
			c = malloc(sizeof(*c) + cap);
			if (!c)
				return NULL;
			c->cap = cap;
		}
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	char *p = c->data + c->used;
	memcpy(p, s, n);
	p[n] = '\0';
	c->used += n + 1;
	return p;
}

/* ---- framing ---- */

static size_t strip_cr(const char *buf, size_t len)
{
	return len > 0 && buf[len - 1] == '\r' ? len - 1 : len;
}

int lp_frame(bool csv, const char *buf, size_t n, bool eof, struct lp_frame *f)
{
	memset(f, 0, sizeof(*f));
	const char *nl = memchr(buf, '\n', n);
	if (!csv || (nl && !memchr(buf, '"', (size_t)(nl - buf)))) {
		if (nl) {
			f->consumed = (size_t)(nl - buf) + 1;
			f->len = strip_cr(buf, (size_t)(nl - buf));
			f->lines = 1;
			return 1;
		}
		if (!eof || n == 0)
			return 0;
		f->consumed = n;
		f->len = strip_cr(buf, n);
		f->lines = 1;
		return 1;
	}

	/* A quote opens a quoted field only at a field's start; inside one, "" is a quote and
	 * a newline belongs to the field. */
	bool inq = false, field_start = true;
	unsigned inner = 0;
	size_t first_nl = nl ? (size_t)(nl - buf) : n;
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (inq) {
			if (c == '"') {
				if (i + 1 >= n) {
					if (!eof)
						return 0; /* "" or the closing quote: the next byte decides */
				} else if (buf[i + 1] == '"') {
					i++;
					continue;
				}
				inq = false;
			} else if (c == '\n' && ++inner >= LP_CSV_MAX_SPAN) {
				goto bad_quote;
			}
			continue;
		}
		if (c == '\n') {
			f->consumed = i + 1;
			f->len = strip_cr(buf, i);
			f->lines = inner + 1;
			return 1;
		}
		if (c == ',')
			field_start = true;
		else if (c == '"' && field_start)
			inq = true, field_start = false;
		else if (c != ' ' && c != '\t')
			field_start = false;
	}
	/* Nor may it hold lines back until the record is cut as over-long. */
	if (inq && first_nl < n && n >= LP_LINE_MAX)
		goto bad_quote;
	if (!eof || n == 0)
		return 0;
	if (inq && first_nl < n)
		goto bad_quote;
	f->consumed = n;
	f->len = strip_cr(buf, n);
	f->lines = inner + 1;
	return 1;

bad_quote:
	/* A quote that never closes must not swallow the lines after it: the first line is
	 * taken alone (and will be malformed), the rest is framed again. */
	f->consumed = first_nl + 1;
	f->len = strip_cr(buf, first_nl);
	f->lines = 1;
	f->bad_quote = true;
	return 1;
}

/* ---- parser ---- */

struct lp_parser {
	const struct log_cfg *cfg;
	struct enc_conv *conv;
	char *fbuf;                      /* unescaped CSV fields, NUL-separated */
	size_t fcap;
	const char *fv[LP_CSV_MAX_COLS];
	size_t nf;
	regmatch_t m[32];
};

struct lp_parser *lp_parser_new(const struct log_cfg *cfg)
{
	struct lp_parser *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cfg = cfg;
	p->conv = enc_conv_new(cfg->encoding);
	if (!p->conv) {
		int e = errno;
		free(p);
		errno = e;
		return NULL;
	}
	return p;
}

void lp_parser_free(struct lp_parser *p)
{
	if (!p)
		return;
	enc_conv_free(p->conv);
	free(p->fbuf);
	free(p);
}

void lp_csv_cols_reset(struct lp_csv_cols *c)
{
	c->have_header = false;
	for (int f = 0; f < SF__COUNT; f++)
		c->col[f] = -1;
}

static void why_set(struct lp_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_set(struct lp_result *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

static void malformed(struct lp_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void malformed(struct lp_result *out, const char *fmt, ...)
{
	va_list ap;
	out->kind = LP_MALFORMED;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

/* A value quoted in a message: printable and short, so a bad line can't flood one. */
static const char *q(const char *s, char buf[64])
{
	bool cut;
	size_t n = enc_printable(s, strlen(s), buf, 60, &cut);
	if (cut)
		memcpy(buf + n, "…", sizeof("…")); /* n < 60: the mark and its NUL fit in 64 */
	return buf;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trimmed copy into the arena; NULL for an empty value (empty means "not given"). */
static const char *value(struct lp_arena *a, const char *s, size_t n, bool *oom)
{
	while (n > 0 && is_space(*s))
		s++, n--;
	while (n > 0 && is_space(s[n - 1]))
		n--;
	if (n == 0)
		return NULL;
	char *v = lp_arena_strndup(a, s, n);
	if (!v)
		*oom = true;
	return v;
}

int lp_parse_time(const char *fmt, const char *s, int64_t *out)
{
	char buf[128];
	if (!s)
		return -EINVAL;
	while (is_space(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!fmt)
		return time_parse_iso(buf, out);

	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(buf, fmt, &tm);
	if (!end)
		return -EINVAL;
	while (is_space(*end))
		end++;
	if (*end)
		return -EINVAL;
	if (tm.tm_year < 70 || tm.tm_year > 8099 || tm.tm_mday < 1)
		return -EINVAL; /* a format without a date (or before 1970) is not a session time */
	if (strstr(fmt, "%z")) {
		long off = tm.tm_gmtoff;
		time_t t = timegm(&tm);
		if (t == (time_t)-1)
			return -EINVAL;
		*out = (int64_t)t - off;
		return 0;
	}
	struct tm want = tm;
	tm.tm_isdst = -1; /* the zone's rules decide summer time, not the text */
	time_t t = mktime(&tm);
	if (t == (time_t)-1 || tm.tm_mday != want.tm_mday || tm.tm_mon != want.tm_mon ||
	    tm.tm_year != want.tm_year)
		return -EINVAL; /* 02-30 would normalise into March */
	*out = (int64_t)t;
	return 0;
}

int lp_parse_external(const char *s)
{
	static const char *const yes[] = { "yes", "y", "true", "t", "1", "external", "ext", "是",
					    "外部", "对外", "校外", "外单位", "外", NULL };
	static const char *const no[] = { "no", "n", "false", "f", "0", "internal", "int", "否",
					   "内部", "对内", "校内", "本单位", "内", NULL };
	if (!s)
		return -1;
	for (size_t i = 0; yes[i]; i++)
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
	for (size_t i = 0; no[i]; i++)
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	return -1;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || errno)
		return -EINVAL;
	/* "3.0" from a spreadsheet is 3; "3.5" samples is not a count. */
	if (*end == '.') {
		end++;
		while (*end == '0')
			end++;
	}
	if (*end || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Field values of one record: text (NULL when absent), or a JSON number. */
struct vals {
	const char *v[SF__COUNT];
	bool num[SF__COUNT];
	double d[SF__COUNT];
};

static int time_of(const struct lp_parser *p, const struct vals *vs, int f, int64_t *t)
{
	if (vs->num[f]) {
		double d = vs->d[f];
		if (d > 1e11)
			d /= 1000; /* milliseconds since the epoch */
		if (!isfinite(d) || d < 0 || d > 253402300799.0)
			return -EINVAL;
		*t = (int64_t)d;
		return 0;
	}
	return lp_parse_time(p->cfg->time_format, vs->v[f], t);
}

/* The optional fields every kind of line may carry. Reasons never quote the line: they go
 * into a sealed log_malformed event, and a line's text must not leave the lab (SPEC §3). */
static bool fill_common(const struct vals *vs, struct lp_result *out)
{
	struct obs_session *s = &out->s;
	/* A regex group may end inside a multi-byte character: nothing sealed may be cut UTF-8. */
	for (int f = 0; f < SF__COUNT; f++) {
		if (vs->v[f] && !utf8_valid(vs->v[f], strlen(vs->v[f]))) {
			malformed(out, "not valid UTF-8");
			return false;
		}
	}
	s->user = vs->v[SF_USER];
	s->org = vs->v[SF_ORG];
	s->way = vs->v[SF_WAY];
	s->fee = vs->v[SF_FEE];
	s->project = vs->v[SF_PROJECT];
	s->samples = -1;
	s->external = -1;
	if (vs->v[SF_SAMPLES] && parse_int(vs->v[SF_SAMPLES], &s->samples) < 0) {
		malformed(out, "bad samples (not a whole number)");
		return false;
	}
	if (vs->v[SF_EXTERNAL] && (s->external = lp_parse_external(vs->v[SF_EXTERNAL])) < 0) {
		malformed(out, "bad external (yes/no, true/false, 1/0, 是/否, 外部/内部)");
		return false;
	}
	return true;
}

/* The shared plausibility rule (agent/lib/plausible.h), at the agent's clock. */
static bool plausible(const struct obs_session *s, struct lp_result *out)
{
	const char *why;
	if (plausible_session(s->start, s->end, s->samples, clock_wall(), &why) < 0) {
		malformed(out, "%s", why);
		return false;
	}
	return true;
}

static void build_session(const struct lp_parser *p, const struct vals *vs, struct lp_result *out)
{
	struct obs_session *s = &out->s;
	memset(s, 0, sizeof(*s));
	if (!vs->v[SF_START]) {
		malformed(out, "no start time");
		return;
	}
	if (time_of(p, vs, SF_START, &s->start) < 0) {
		malformed(out, "bad start time");
		return;
	}
	if (vs->v[SF_END]) {
		if (time_of(p, vs, SF_END, &s->end) < 0) {
			malformed(out, "bad end time");
			return;
		}
	} else if (vs->v[SF_DURATION]) {
		char *end;
		double min = vs->num[SF_DURATION] ? vs->d[SF_DURATION] : strtod(vs->v[SF_DURATION], &end);
		if (!vs->num[SF_DURATION]) {
			while (is_space(*end))
				end++;
			if (end == vs->v[SF_DURATION] || *end)
				min = NAN;
		}
		/* Range first: the cast of NaN, inf or 1e300 would be undefined. */
		if (!isfinite(min) || min <= 0 || min > PLAUSIBLE_SPAN_S / 60.0) {
			malformed(out, "bad duration (minutes, more than 0 and at most 31 days)");
			return;
		}
		s->end = s->start + (int64_t)llround(min * 60);
	} else {
		malformed(out, "no end time or duration");
		return;
	}
	if (s->end <= s->start) {
		malformed(out, "end not after start");
		return;
	}
	if (!fill_common(vs, out) || !plausible(s, out))
		return;
	out->kind = LP_SESSION;
}

static void build_mark(const struct lp_parser *p, const struct vals *vs, enum lp_kind kind,
		       bool keyed, struct lp_result *out)
{
	struct obs_session *s = &out->s;
	memset(s, 0, sizeof(*s));
	const char *what = kind == LP_START ? "login" : "logout";
	if (!vs->v[SF_TIME]) {
		malformed(out, "%s line without a time", what);
		return;
	}
	if (time_of(p, vs, SF_TIME, &s->start) < 0) {
		malformed(out, "bad %s time", what);
		return;
	}
	s->end = s->start; /* one instant: the pairing makes the session */
	if (!fill_common(vs, out) || !plausible(s, out))
		return;
	out->keyed = keyed;
	if (keyed && !s->user) {
		malformed(out, "%s line without a user", what);
		return;
	}
	out->kind = kind;
}

/* ---- CSV ---- */

/* Splits a CSV record into p->fv[0..nf); quotes per RFC 4180, blanks around fields ignored,
 * a quote inside an unquoted field kept as it is (instrument software writes 5" tubes). */
static bool csv_split(struct lp_parser *p, const char *s, size_t n, struct lp_result *out)
{
	if (p->fcap < n + LP_CSV_MAX_COLS + 1) {
		size_t cap = n + LP_CSV_MAX_COLS + 1;
		char *b = realloc(p->fbuf, cap);
		if (!b) {
			malformed(out, "out of memory");
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
			malformed(out, "more than %d columns", LP_CSV_MAX_COLS);
			return false;
		}
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		p->fv[p->nf++] = o;
		if (i < n && s[i] == '"') {
			i++;
			for (;;) {
				if (i >= n) {
					malformed(out, "unterminated quote in column %zu", p->nf);
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
				malformed(out, "text after the closing quote in column %zu", p->nf);
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
				 q(name, qb));
		if (k > 0 && (size_t)k < sizeof(out->why) - w)
			w += (size_t)k;
		fatal |= required(cfg, f);
	}
	if (w) {
		char list[sizeof(out->why)];
		memcpy(list, out->why, sizeof(list));
		why_set(out, "%s not in the header%s", list,
			fatal ? ": every line will be malformed" : "");
	}
}

static void parse_csv(struct lp_parser *p, struct lp_csv_cols *cols, const char *text,
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
				malformed(out, "column \"%s\" is not in the header", q(cfg->fields.name[f], qb));
				return;
			}
			continue;
		}
		if ((size_t)c >= p->nf) {
			if (required(cfg, f)) {
				malformed(out, "%zu columns, \"%s\" is column %d", p->nf,
					  cfg->fields.name[f], c + 1);
				return;
			}
			continue;
		}
		vs.v[f] = value(a, p->fv[c], strlen(p->fv[c]), &oom);
	}
	if (oom) {
		malformed(out, "out of memory");
		return;
	}
	build_session(p, &vs, out);
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

static void parse_jsonl(struct lp_parser *p, const char *text, size_t len, struct lp_arena *a,
			struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!root) {
		malformed(out, "not JSON");
		return;
	}
	if (!cJSON_IsObject(root)) {
		malformed(out, "not a JSON object");
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
			vs.v[f] = value(a, it->valuestring, strlen(it->valuestring), &oom);
		} else if (cJSON_IsNumber(it)) {
			char num[64];
			double d = it->valuedouble;
			if (d == floor(d) && fabs(d) < 9e15)
				snprintf(num, sizeof(num), "%.0f", d);
			else
				snprintf(num, sizeof(num), "%.15g", d);
			vs.v[f] = value(a, num, strlen(num), &oom);
			vs.num[f] = true;
			vs.d[f] = d;
		} else if (cJSON_IsBool(it)) {
			vs.v[f] = cJSON_IsTrue(it) ? "true" : "false";
		} else {
			malformed(out, "\"%s\" is not a string or a number", cfg->fields.name[f]);
		}
	}
	cJSON_Delete(root);
	if (out->kind == LP_MALFORMED)
		return;
	if (oom) {
		malformed(out, "out of memory");
		return;
	}
	/* Numbers are epoch times only for the time fields; elsewhere they are just text. */
	for (int f = 0; f < SF__COUNT; f++)
		if (f != SF_START && f != SF_END && f != SF_DURATION && f != SF_TIME)
			vs.num[f] = false;
	build_session(p, &vs, out);
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
		vs->v[f] = value(a, text + p->m[g].rm_so, (size_t)(p->m[g].rm_eo - p->m[g].rm_so), &oom);
	}
	if (oom)
		malformed(out, "out of memory");
	return true;
}

static void parse_regex(struct lp_parser *p, const char *text, struct lp_arena *a,
			struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	struct vals vs;
	if (!cfg->re_compiled || !regex_vals(p, &cfg->re, &cfg->fields, text, a, &vs, out))
		return; /* a line the pattern doesn't describe is not a session */
	if (out->kind != LP_MALFORMED)
		build_session(p, &vs, out);
}

static void parse_events(struct lp_parser *p, const char *text, struct lp_arena *a,
			 struct lp_result *out)
{
	const struct log_cfg *cfg = p->cfg;
	struct vals vs;
	if (cfg->start_re_compiled && regex_vals(p, &cfg->start_re, &cfg->start_fields, text, a, &vs, out)) {
		if (out->kind != LP_MALFORMED)
			build_mark(p, &vs, LP_START, cfg->start_fields.group[SF_USER] > 0, out);
		return;
	}
	if (cfg->end_re_compiled && regex_vals(p, &cfg->end_re, &cfg->end_fields, text, a, &vs, out)) {
		if (out->kind != LP_MALFORMED)
			build_mark(p, &vs, LP_END, cfg->end_fields.group[SF_USER] > 0, out);
	}
}

static bool bom(const struct lp_parser *p, const char *rec, size_t len, size_t *skip)
{
	static const char utf8_bom[] = "\xef\xbb\xbf";
	static const char gb18030_bom[] = "\x84\x31\x95\x33";
	if (len >= 3 && memcmp(rec, utf8_bom, 3) == 0) {
		*skip = 3;
		return true;
	}
	if (p->cfg->encoding == LOG_ENC_GBK && len >= 4 && memcmp(rec, gb18030_bom, 4) == 0) {
		*skip = 4;
		return true;
	}
	return false;
}

void lp_parse(struct lp_parser *p, struct lp_csv_cols *cols, const char *rec, size_t len,
	      struct lp_arena *a, struct lp_result *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = LP_SKIP;
	size_t skip;
	/* Not only the file's first line: logs concatenated from files that each began with a
	 * mark (or an editor that adds one on every save) carry it where a line begins. */
	if (bom(p, rec, len, &skip))
		rec += skip, len -= skip;
	if (blank(rec, len))
		return;
	if (len > LP_LINE_MAX) {
		malformed(out, "line longer than %d bytes", LP_LINE_MAX);
		return;
	}
	size_t tlen;
	const char *text = enc_to_utf8(p->conv, rec, len, &tlen);
	if (!text) {
		/* Never sealed raw: the platform refuses what is not UTF-8, and the feed stops. */
		malformed(out, "not valid %s", p->cfg->encoding == LOG_ENC_GBK ? "GBK" : "UTF-8");
		return;
	}
	switch (p->cfg->format) {
	case LOG_FMT_CSV:
		if (!cols) {
			malformed(out, "no CSV column state");
			return;
		}
		parse_csv(p, cols, text, tlen, a, out);
		break;
	case LOG_FMT_JSONL:
		parse_jsonl(p, text, tlen, a, out);
		break;
	case LOG_FMT_REGEX:
		parse_regex(p, text, a, out);
		break;
	case LOG_FMT_EVENTS:
		parse_events(p, text, a, out);
		break;
	}
}

const char *lp_text(struct lp_parser *p, const char *rec, size_t len, struct lp_arena *a)
{
	char buf[LP_TEXT_MAX + 8];
	bool cut = false;
	size_t tlen, n;
	/* Convert no more than needed: an over-long line is cut anyway. */
	size_t in = len > 4 * LP_TEXT_MAX ? 4 * LP_TEXT_MAX : len;
	const char *text = enc_to_utf8(p->conv, rec, in, &tlen);
	if (!text && in < len) {
		/* The cut may have split a character: retry a few bytes shorter. */
		for (size_t back = 1; back < 4 && !text; back++)
			text = enc_to_utf8(p->conv, rec, in - back, &tlen);
	}
	if (text)
		n = enc_printable(text, tlen, buf, LP_TEXT_MAX - 3, &cut);
	else
		n = enc_printable(rec, in, buf, LP_TEXT_MAX - 3, &cut);
	if (cut || in < len) {
		memcpy(buf + n, "…", 3);
		n += 3;
	}
	return lp_arena_strndup(a, buf, n);
}

/* ---- pairing ---- */

struct open_start {
	char *key;
	bool keyed;
	int64_t start;
	char *user, *org, *way, *fee, *project;
	int64_t samples;
	int external;
};

struct lp_pairs {
	int64_t max_s;
	struct open_start *v;     /* in the order they opened */
	size_t n, cap;
};

struct lp_pairs *lp_pairs_new(double max_session_h)
{
	struct lp_pairs *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	if (!(max_session_h > 0) || max_session_h > 24 * 31)
		max_session_h = 12;
	pp->max_s = (int64_t)llround(max_session_h * 3600);
	return pp;
}

static void open_clear(struct open_start *o)
{
	free(o->key);
	free(o->user);
	free(o->org);
	free(o->way);
	free(o->fee);
	free(o->project);
	memset(o, 0, sizeof(*o));
}

void lp_pairs_clear(struct lp_pairs *pp)
{
	if (!pp)
		return;
	for (size_t i = 0; i < pp->n; i++)
		open_clear(&pp->v[i]);
	pp->n = 0;
}

void lp_pairs_free(struct lp_pairs *pp)
{
	if (!pp)
		return;
	lp_pairs_clear(pp);
	free(pp->v);
	free(pp);
}

size_t lp_pairs_count(const struct lp_pairs *pp)
{
	return pp->n;
}

static void open_remove(struct lp_pairs *pp, size_t i)
{
	open_clear(&pp->v[i]);
	memmove(&pp->v[i], &pp->v[i + 1], (pp->n - i - 1) * sizeof(pp->v[0]));
	pp->n--;
}

static int open_close(struct lp_pairs *pp, size_t i, int64_t end, bool auto_closed,
		      const struct obs_session *mark, lp_emit_fn emit, void *arg)
{
	const struct open_start *o = &pp->v[i];
	struct obs_session s = {
		.start = o->start, .end = end, .user = o->user, .org = o->org,
		.external = o->external, .samples = o->samples, .way = o->way, .fee = o->fee,
		.project = o->project, .closed_auto = auto_closed,
	};
	if (mark) {
		/* A logout may know what the login didn't (samples are often counted at the end). */
		if (!s.org)
			s.org = mark->org;
		if (mark->samples >= 0)
			s.samples = mark->samples;
		if (s.external < 0)
			s.external = mark->external;
		if (!s.way)
			s.way = mark->way;
		if (!s.fee)
			s.fee = mark->fee;
		if (!s.project)
			s.project = mark->project;
	}
	int r = emit(arg, &s);
	if (r < 0)
		return r;
	open_remove(pp, i);
	return 0;
}

int lp_pairs_expire(struct lp_pairs *pp, int64_t now, lp_emit_fn emit, void *arg)
{
	for (size_t i = 0; i < pp->n;) {
		if (pp->v[i].start + pp->max_s < now) {
			int r = open_close(pp, i, pp->v[i].start + pp->max_s, true, NULL, emit, arg);
			if (r < 0)
				return r;
			continue;
		}
		i++;
	}
	return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int lp_pairs_feed(struct lp_pairs *pp, const struct lp_result *mark, lp_emit_fn emit, void *arg,
		  char *why, size_t whylen)
{
	const struct obs_session *m = &mark->s;
	const char *key = mark->keyed && m->user ? m->user : "";
	int r;

	/* The log's own time moving past a start's limit closes it exactly as the wall clock
	 * would have: the result doesn't depend on how fast the log is read. */
	if ((r = lp_pairs_expire(pp, m->start, emit, arg)) < 0)
		return r;

	size_t i;
	if (mark->kind == LP_END) {
		if (mark->keyed) {
			for (i = 0; i < pp->n && strcmp(pp->v[i].key, key) != 0; i++)
				;
		} else {
			i = pp->n ? pp->n - 1 : 0; /* a logout naming nobody ends the latest login */
		}
		if (i >= pp->n) {
			snprintf(why, whylen, "logout without a login");
			return 1;
		}
		if (m->start <= pp->v[i].start) {
			snprintf(why, whylen, "logout not after its login");
			return 1;
		}
		return open_close(pp, i, m->start, false, m, emit, arg);
	}

	for (i = 0; i < pp->n && strcmp(pp->v[i].key, key) != 0; i++)
		;
	if (i < pp->n) {
		if (m->start <= pp->v[i].start) {
			snprintf(why, whylen, "login not after the open login of the same user");
			return 1;
		}
		int64_t end = pp->v[i].start + pp->max_s;
		if ((r = open_close(pp, i, m->start < end ? m->start : end, true, NULL, emit, arg)) < 0)
			return r;
	}
	if (pp->n == LP_OPEN_MAX) {
		/* A log of logins that never log out must not grow without bound. */
		if ((r = open_close(pp, 0, pp->v[0].start + pp->max_s, true, NULL, emit, arg)) < 0)
			return r;
	}
	if (pp->n == pp->cap) {
		size_t cap = pp->cap ? 2 * pp->cap : 8;
		struct open_start *v = realloc(pp->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pp->v = v;
		pp->cap = cap;
	}
	bool oom = false;
	struct open_start o = {
		.key = dup_or_null(key, &oom), .keyed = mark->keyed, .start = m->start,
		.user = dup_or_null(m->user, &oom), .org = dup_or_null(m->org, &oom),
		.way = dup_or_null(m->way, &oom), .fee = dup_or_null(m->fee, &oom),
		.project = dup_or_null(m->project, &oom), .samples = m->samples,
		.external = m->external,
	};
	if (oom) {
		open_clear(&o);
		return -ENOMEM;
	}
	pp->v[pp->n++] = o;
	return 0;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
}

cJSON *lp_pairs_to_json(const struct lp_pairs *pp)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < pp->n; i++) {
		const struct open_start *o = &pp->v[i];
		cJSON *e = cJSON_CreateObject();
		if (!e) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, e);
		cJSON_AddStringToObject(e, "key", o->key);
		cJSON_AddBoolToObject(e, "keyed", o->keyed);
		cJSON_AddNumberToObject(e, "start", (double)o->start);
		add_str(e, "user", o->user);
		add_str(e, "org", o->org);
		add_str(e, "way", o->way);
		add_str(e, "fee", o->fee);
		add_str(e, "project", o->project);
		cJSON_AddNumberToObject(e, "samples", (double)o->samples);
		cJSON_AddNumberToObject(e, "external", o->external);
	}
	return arr;
}

static bool in_range(double d, double lo, double hi)
{
	return isfinite(d) && d >= lo && d <= hi;
}

static char *json_str(const cJSON *o, const char *k, bool *bad)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!it)
		return NULL;
	if (!cJSON_IsString(it)) {
		*bad = true;
		return NULL;
	}
	char *s = strdup(it->valuestring);
	if (!s)
		*bad = true;
	return s;
}

int lp_pairs_from_json(struct lp_pairs *pp, const cJSON *arr)
{
	lp_pairs_clear(pp);
	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return -EINVAL;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *start = cJSON_GetObjectItemCaseSensitive(e, "start");
		const cJSON *samples = cJSON_GetObjectItemCaseSensitive(e, "samples");
		const cJSON *ext = cJSON_GetObjectItemCaseSensitive(e, "external");
		bool bad = !cJSON_IsObject(e) || !cJSON_IsNumber(start) || !cJSON_IsNumber(samples) ||
			   !cJSON_IsNumber(ext) || pp->n >= LP_OPEN_MAX;
		struct open_start o = {
			.key = json_str(e, "key", &bad),
			.keyed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "keyed")),
			.user = json_str(e, "user", &bad), .org = json_str(e, "org", &bad),
			.way = json_str(e, "way", &bad), .fee = json_str(e, "fee", &bad),
			.project = json_str(e, "project", &bad),
		};
		/* Checked before the casts: a number out of range (1e400 parses as inf) is UB. */
		if (!bad && (!in_range(start->valuedouble, 0, 9e15) ||
			     !in_range(samples->valuedouble, -1, 9e15)))
			bad = true;
		if (!bad && o.key) {
			o.start = (int64_t)start->valuedouble;
			o.samples = (int64_t)samples->valuedouble;
			o.external = ext->valueint < 0 ? -1 : ext->valueint > 0;
		}
		if (!bad && pp->n == pp->cap) {
			size_t cap = pp->cap ? 2 * pp->cap : 8;
			struct open_start *v = realloc(pp->v, cap * sizeof(*v));
			if (v) {
				pp->v = v;
				pp->cap = cap;
			} else {
				bad = true;
			}
		}
		if (bad || !o.key) {
			open_clear(&o);
			lp_pairs_clear(pp);
			return -EINVAL;
		}
		pp->v[pp->n++] = o;
	}
	return 0;
}
