/* logparse.c — the rules that turn instrument log records into sessions: framing, field
 * values and times, and the record's dispatch to its format (CSV, JSON Lines, regex, events:
 * logparse_formats.c); login/logout pairing in logpairs.c. No files, no clock, no SQLite. */
#include "logparse_priv.h"
#include "clock.h"
#include "plausible.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdarg.h>
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
	 * taken alone (and will be lp_malformed), the rest is framed again. */
	f->consumed = first_nl + 1;
	f->len = strip_cr(buf, first_nl);
	f->lines = 1;
	f->bad_quote = true;
	return 1;
}

/* ---- parser ---- */



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

void lp_why_set(struct lp_result *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

void lp_malformed(struct lp_result *out, const char *fmt, ...)
{
	va_list ap;
	out->kind = LP_MALFORMED;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

/* A value quoted in a message: printable and short, so a bad line can't flood one. */
const char *lp_q(const char *s, char buf[64])
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

/* Trimmed copy into the arena; NULL for an empty lp_value (empty means "not given"). */
const char *lp_value(struct lp_arena *a, const char *s, size_t n, bool *oom)
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
	/* A valid wall time without mktime's cost; anything else as mktime takes it below. */
	if (time_local_quick(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			     out) == 0)
		return 0;
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
			lp_malformed(out, "not valid UTF-8");
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
		lp_malformed(out, "bad samples (not a whole number)");
		return false;
	}
	if (vs->v[SF_EXTERNAL] && (s->external = lp_parse_external(vs->v[SF_EXTERNAL])) < 0) {
		lp_malformed(out, "bad external (yes/no, true/false, 1/0, 是/否, 外部/内部)");
		return false;
	}
	return true;
}

/* The shared plausibility rule (agent/lib/plausible.h), at the agent's clock. */
static bool plausible(const struct obs_session *s, struct lp_result *out)
{
	const char *why;
	if (plausible_session(s->start, s->end, s->samples, clock_wall(), &why) < 0) {
		lp_malformed(out, "%s", why);
		return false;
	}
	return true;
}

void lp_build_session(const struct lp_parser *p, const struct vals *vs, struct lp_result *out)
{
	struct obs_session *s = &out->s;
	memset(s, 0, sizeof(*s));
	if (!vs->v[SF_START]) {
		lp_malformed(out, "no start time");
		return;
	}
	if (time_of(p, vs, SF_START, &s->start) < 0) {
		lp_malformed(out, "bad start time");
		return;
	}
	if (vs->v[SF_END]) {
		if (time_of(p, vs, SF_END, &s->end) < 0) {
			lp_malformed(out, "bad end time");
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
			lp_malformed(out, "bad duration (minutes, more than 0 and at most 31 days)");
			return;
		}
		s->end = s->start + (int64_t)llround(min * 60);
	} else {
		lp_malformed(out, "no end time or duration");
		return;
	}
	if (s->end <= s->start) {
		lp_malformed(out, "end not after start");
		return;
	}
	if (!fill_common(vs, out) || !plausible(s, out))
		return;
	out->kind = LP_SESSION;
}

void lp_build_mark(const struct lp_parser *p, const struct vals *vs, enum lp_kind kind,
		   bool keyed, struct lp_result *out)
{
	struct obs_session *s = &out->s;
	memset(s, 0, sizeof(*s));
	const char *what = kind == LP_START ? "login" : "logout";
	if (!vs->v[SF_TIME]) {
		lp_malformed(out, "%s line without a time", what);
		return;
	}
	if (time_of(p, vs, SF_TIME, &s->start) < 0) {
		lp_malformed(out, "bad %s time", what);
		return;
	}
	s->end = s->start; /* one instant: the pairing makes the session */
	if (!fill_common(vs, out) || !plausible(s, out))
		return;
	out->keyed = keyed;
	if (keyed && !s->user) {
		lp_malformed(out, "%s line without a user", what);
		return;
	}
	out->kind = kind;
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
		lp_malformed(out, "line longer than %d bytes", LP_LINE_MAX);
		return;
	}
	size_t tlen;
	const char *text = enc_to_utf8(p->conv, rec, len, &tlen);
	if (!text) {
		/* Never sealed raw: the platform refuses what is not UTF-8, and the feed stops. */
		lp_malformed(out, "not valid %s", p->cfg->encoding == LOG_ENC_GBK ? "GBK" : "UTF-8");
		return;
	}
	switch (p->cfg->format) {
	case LOG_FMT_CSV:
		if (!cols) {
			lp_malformed(out, "no CSV column state");
			return;
		}
		lp_parse_csv(p, cols, text, tlen, a, out);
		break;
	case LOG_FMT_JSONL:
		lp_parse_jsonl(p, text, tlen, a, out);
		break;
	case LOG_FMT_REGEX:
		lp_parse_regex(p, text, a, out);
		break;
	case LOG_FMT_EVENTS:
		lp_parse_events(p, text, a, out);
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
