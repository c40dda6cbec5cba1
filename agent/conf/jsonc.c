/* jsonc.c — comments are blanked in a copy (newlines kept, so every offset still holds), the
 * copy is parsed (jsonc_fast.c: cJSON's tree in one pass; cJSON itself for whatever that path
 * leaves, errors included), then a walk over the text beside the tree records where each node
 * sits: at once when it has something to report, else on the first position asked for. */
#include "jsonc.h"
#include "jsonc_fast.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "utf8.h"

#define PATH_CAP 512       /* JSON paths in messages; a longer one is cut */
#define PROBLEMS_MAX 200    /* more are counted, not kept: nobody reads the 201st */

struct node_pos {
	const cJSON *node;
	size_t key_off, val_off;
};

struct jsonc_doc {
	cJSON *root;                 /* in arena when the fast path built it (jsonc_fast.c) */
	struct jsonc_arena *arena;
	char *text;                  /* the input with comments blanked, NUL-terminated */
	char *orig;                  /* NULL while text is the input as given (no comment blanked);
				      * else the input as given: columns count its characters, and a
				      * comment's 中文 is one column a character, not three */
	size_t len;
	size_t *lines;               /* offset where each line starts */
	size_t n_lines;
	struct node_pos *pos;        /* sorted by node address once the walk is done */
	size_t n_pos, cap_pos;
	bool u_escape;               /* a string holds a \u escape: the walk has it to look at */
	bool walk_pending;           /* a valid text with nothing for the walk to report: the
				      * positions are mapped on the first question (walk_now) */
	struct jsonc_problem *problems;
	size_t n_problems, cap_problems, dropped;
	bool nomem;
};

/* Room for one more of n elements: v itself, a larger copy, or NULL (v left as it was). */
static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = reallocarray(v, ncap, size);
	if (p)
		*cap = ncap;
	return p;
}

static void problem(struct jsonc_doc *d, size_t off, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void problem(struct jsonc_doc *d, size_t off, const char *fmt, ...)
{
	char buf[PATH_CAP + 256];

	if (d->n_problems >= PROBLEMS_MAX) {
		d->dropped++;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char *msg = strdup(buf);  /* a cut message is still worth showing */
	struct jsonc_problem *v = msg ? grow(d->problems, &d->cap_problems, d->n_problems,
					     sizeof(*v)) : NULL;
	if (!v) {
		free(msg);
		d->nomem = true;
		return;
	}
	d->problems = v;
	d->problems[d->n_problems++] = (struct jsonc_problem){ .off = off, .msg = msg };
}

/* Keeps the input as given before the first comment is blanked (text is still that then). */
static bool keep_orig(struct jsonc_doc *d)
{
	if (d->orig)
		return true;
	if (!(d->orig = malloc(d->len + 1))) {
		d->nomem = true;
		return false;
	}
	memcpy(d->orig, d->text, d->len + 1);
	return true;
}

/* Plain bytes, which change nothing and need no look: printable ASCII (and tab, CR, and in code
 * a newline) but for what opens or closes a string, an escape or a comment. */
static bool plain_code(unsigned char ch)
{
	return ch < 0x80 && ch != '"' && ch != '/' && (ch >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r');
}

static bool plain_string(unsigned char ch)
{
	return ch < 0x80 && ch != '"' && ch != '\\' && (ch >= 0x20 || ch == '\t' || ch == '\r');
}

/* Blanks comments in d->text. Also refuses what cJSON would let through but a config must
 * not hold: invalid UTF-8, control characters, and strings running past the end of a line
 * (a missing closing quote, which cJSON would report far away). */
static bool blank_comments(struct jsonc_doc *d)
{
	enum { CODE, STRING, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
	unsigned char *t = (unsigned char *)d->text;
	size_t start = 0;     /* where the current string or block comment opened */
	bool esc = false;

	unsigned char plain[256];  /* 1: plain in code, 2: plain in a string */
	for (int c = 0; c < 256; c++)
		plain[c] = (unsigned char)(plain_code((unsigned char)c) | plain_string((unsigned char)c) << 1);
	for (size_t i = 0; i < d->len;) {
		if (st == CODE)
			while (i < d->len && (plain[t[i]] & 1))
				i++;
		else if (st == STRING && !esc)
			while (i < d->len && (plain[t[i]] & 2))
				i++;
		if (i >= d->len)
			break;
		unsigned char ch = t[i];
		/* ASCII is one byte and valid: the decoder only for the rest (a per-byte call was a
		 * sixth of the reader's own time on a generated file) */
		size_t n = ch < 0x80 ? 1 : utf8_char_len((const char *)t + i, d->len - i);

		if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
			problem(d, i, "control character 0x%02x is not allowed", ch);
			return false;
		}
		if (n == 0) {
			problem(d, i, "invalid UTF-8 (save the file as UTF-8)");
			return false;
		}
		switch (st) {
		case CODE:
			if (ch == '"') {
				st = STRING;
				start = i;
				esc = false;
			} else if (ch == '/' && i + 1 < d->len && t[i + 1] == '/') {
				if (!keep_orig(d))
					return false;
				st = LINE_COMMENT;
				continue;  /* blank this byte below, as a comment */
			} else if (ch == '/' && i + 1 < d->len && t[i + 1] == '*') {
				if (!keep_orig(d))
					return false;
				st = BLOCK_COMMENT;
				start = i;
				t[i] = t[i + 1] = ' ';
				i += 2;
				continue;
			}
			break;
		case STRING:
			if (ch == '\n') {
				problem(d, start, "syntax error: unterminated string");
				return false;
			}
			if (esc) {
				esc = false;
				d->u_escape = d->u_escape || ch == 'u';
			} else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				st = CODE;
			break;
		case LINE_COMMENT:
			if (ch == '\n') {
				st = CODE;
				break;
			}
			memset(t + i, ' ', n);
			break;
		case BLOCK_COMMENT:
			if (ch == '*' && i + 1 < d->len && t[i + 1] == '/') {
				t[i] = t[i + 1] = ' ';
				i += 2;
				st = CODE;
				continue;
			}
			if (ch != '\n')
				memset(t + i, ' ', n);
			break;
		}
		i += n;
	}
	if (st == STRING) {
		problem(d, start, "syntax error: unterminated string");
		return false;
	}
	if (st == BLOCK_COMMENT) {
		problem(d, start, "syntax error: unterminated comment");
		return false;
	}
	return true;
}

/* ---- syntax errors ----
 * cJSON says where it stopped but not what it wanted, and when a key was expected it
 * stops one character late. A scan of the structure alone (strings skipped, numbers and
 * literals taken as runs) finds the first token that does not fit and what would have. */

enum want { W_VALUE, W_VALUE_OR_END, W_KEY, W_KEY_OR_END, W_COLON, W_COMMA_OR_END, W_END };

struct scan {
	size_t i;
	enum want want;
	bool too_deep;
	size_t depth;
	char stack[CJSON_NESTING_LIMIT];  /* '{' or '[' */
};

static bool is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '+' || c == '.';
}

/* Follows the text up to limit; s->i stops on the first token that does not fit. */
static void scan(const struct jsonc_doc *d, size_t limit, struct scan *s)
{
	const char *t = d->text;
	s->i = d->len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
	s->want = W_VALUE;
	s->depth = 0;
	s->too_deep = false;
	for (;;) {
		while (s->i < limit && (unsigned char)t[s->i] <= ' ')
			s->i++;
		if (s->i >= limit)
			return;
		char ch = t[s->i];
		bool closes = (ch == ']' && s->want == W_VALUE_OR_END) ||
			      (ch == '}' && s->want == W_KEY_OR_END) ||
			      (s->want == W_COMMA_OR_END && ch == (s->stack[s->depth - 1] == '{' ? '}' : ']'));
		if (closes) {
			s->depth--;
		} else if (s->want == W_VALUE || s->want == W_VALUE_OR_END) {
			if (ch == '{' || ch == '[') {
				if (s->depth == sizeof(s->stack)) {
					s->too_deep = true;
					return;
				}
				s->stack[s->depth++] = ch;
				s->i++;
				s->want = ch == '{' ? W_KEY_OR_END : W_VALUE_OR_END;
				continue;
			}
			if (ch != '"' && !is_word(ch))
				return;
		} else if (s->want == W_KEY || s->want == W_KEY_OR_END) {
			if (ch != '"')
				return;
		} else if (s->want == W_COLON || (s->want == W_COMMA_OR_END && ch == ',')) {
			if (ch != (s->want == W_COLON ? ':' : ','))
				return;
			s->i++;
			s->want = s->want == W_COLON || s->stack[s->depth - 1] == '[' ? W_VALUE : W_KEY;
			continue;
		} else {
			return;  /* W_END, or no comma or closing bracket where one was due */
		}

		/* One token: a closing bracket, a string or a run of number/literal characters. */
		bool key = s->want == W_KEY || s->want == W_KEY_OR_END;
		if (closes) {
			s->i++;
		} else if (ch == '"') {
			for (s->i++; s->i < limit && t[s->i] != '"'; s->i++)
				s->i += t[s->i] == '\\';
			s->i += s->i < limit;
		} else {
			while (s->i < limit && is_word(t[s->i]))
				s->i++;
		}
		s->want = key ? W_COLON : s->depth ? W_COMMA_OR_END : W_END;
	}
}

static const char *want_text(const struct scan *s)
{
	switch (s->want) {
	case W_VALUE: return "a value";
	case W_VALUE_OR_END: return "a value or ']'";
	case W_KEY: return "a key in double quotes";
	case W_KEY_OR_END: return "a key in double quotes or '}'";
	case W_COLON: return "':'";
	case W_COMMA_OR_END: return s->stack[s->depth - 1] == '{' ? "',' or '}'" : "',' or ']'";
	case W_END: break;
	}
	return "the end of the document";
}

/* cjson_off: where cJSON gave up; it wins when it is earlier (a bad escape, number or
 * literal, which the scan does not look into). */
static void syntax_error(struct jsonc_doc *d, size_t cjson_off)
{
	struct scan *s = malloc(sizeof(*s));
	if (!s) {
		d->nomem = true;
		return;
	}
	scan(d, d->len, s);
	size_t off = s->i;
	bool in_token = cjson_off < off;  /* inside a string, number or literal */
	if (in_token) {
		off = cjson_off;
		scan(d, off, s);
	}

	const char *t = d->text;
	size_t n = off < d->len ? utf8_char_len(t + off, d->len - off) : 0;
	bool at_value = s->want == W_VALUE || s->want == W_VALUE_OR_END;
	if (off >= d->len) {
		problem(d, d->len, "syntax error: unexpected end of input, expected %s", want_text(s));
	} else if (s->too_deep && off == s->i) {
		problem(d, off, "syntax error: nested more than %d deep", CJSON_NESTING_LIMIT);
	} else if (in_token && t[off] == '\\') {
		problem(d, off, "syntax error: invalid escape sequence");
	} else if (at_value && is_word(t[off])) {
		size_t w = 0;
		while (off + w < d->len && w < 24 && is_word(t[off + w]))
			w++;
		problem(d, off, "syntax error: invalid value '%.*s'", (int)w, t + off);
	} else {
		/* the whole character: a full-width comma from a Chinese input method is a classic */
		problem(d, off, "syntax error: unexpected '%.*s', expected %s", (int)(n ? n : 1),
			t + off, want_text(s));
	}
	free(s);
}

/* The walk: the text is known to be valid JSON and cJSON keeps members in order, so the
 * walk only has to skip tokens; a mismatch would be a bug, reported rather than trusted. */
struct walk {
	struct jsonc_doc *d;
	size_t i;
	char path[PATH_CAP];
	size_t plen;
};

static void skip_ws(struct walk *w)
{
	while (w->i < w->d->len && (unsigned char)w->d->text[w->i] <= ' ')
		w->i++;
}

static bool expect(struct walk *w, char c)
{
	skip_ws(w);
	if (w->i >= w->d->len || w->d->text[w->i] != c)
		return false;
	w->i++;
	return true;
}

/* Skips a string. cJSON reads a bad \u escape as U+0000 and cuts the string at a \u0000,
 * so both are reported here instead of silently shortening a value. */
static bool skip_string(struct walk *w)
{
	const char *t = w->d->text;
	if (w->i >= w->d->len || t[w->i] != '"')
		return false;
	for (size_t i = w->i + 1; i < w->d->len; i++) {
		if (t[i] == '"') {
			w->i = i + 1;
			return true;
		}
		if (t[i] != '\\')
			continue;
		if (t[i + 1] == 'u') {
			int v = i + 6 <= w->d->len ? jsonc_hex4(t + i + 2) : -1;
			if (v <= 0)
				problem(w->d, i, "%s%s%s", w->path, w->plen ? ": " : "",
					v < 0 ? "invalid \\u escape" : "\\u0000 is not allowed in a string");
		}
		i++;
	}
	return false;
}

static void path_push(struct walk *w, const char *key, size_t index)
{
	size_t room = sizeof(w->path) - w->plen;
	int n = key ? snprintf(w->path + w->plen, room, "%s%s", w->plen ? "." : "", key)
		    : snprintf(w->path + w->plen, room, "[%zu]", index);
	if (n < 0)
		return;
	w->plen = (size_t)n < room ? w->plen + (size_t)n : sizeof(w->path) - 1;
}

static bool record(struct walk *w, const cJSON *node, size_t key_off, size_t val_off)
{
	struct jsonc_doc *d = w->d;
	struct node_pos *v = grow(d->pos, &d->cap_pos, d->n_pos, sizeof(*v));
	if (!v) {
		d->nomem = true;
		return false;
	}
	d->pos = v;
	d->pos[d->n_pos++] = (struct node_pos){ node, key_off, val_off };
	return true;
}

struct member { const char *name; size_t off; };

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorting the names makes this O(n log n): a generated file may have thousands of keys. */
static void report_duplicates(struct walk *w, struct member *m, size_t n)
{
	if (n < 2)
		return;
	qsort(m, n, sizeof(*m), member_cmp);
	for (size_t k = 1, first = 0; k < n; k++) {
		if (strcmp(m[k].name, m[first].name) != 0) {
			first = k;
			continue;
		}
		if (w->d->n_problems >= PROBLEMS_MAX) {
			w->d->dropped++;  /* and spare the line:col of the first */
			continue;
		}
		struct jsonc_pos p = jsonc_pos_of(w->d, m[first].off);
		size_t base = w->plen;
		path_push(w, m[k].name, 0);
		problem(w->d, m[k].off, "%s: duplicate key (first at %u:%u)", w->path, p.line, p.col);
		w->plen = base;
		w->path[base] = '\0';
	}
}

static bool walk_value(struct walk *w, const cJSON *node, size_t key_off);

static bool walk_members(struct walk *w, const cJSON *node)
{
	size_t n = 0, base = w->plen;
	for (const cJSON *c = node->child; c; c = c->next)
		n++;
	struct member *m = n ? calloc(n, sizeof(*m)) : NULL;
	if (n && !m) {
		w->d->nomem = true;
		return false;
	}
	bool ok = true;
	size_t k = 0;
	for (const cJSON *c = node->child; c && ok; c = c->next, k++) {
		if (c != node->child && !expect(w, ','))
			ok = false;
		skip_ws(w);
		size_t key = w->i;
		if (!ok || !c->string || !skip_string(w) || !expect(w, ':')) {
			ok = false;
			break;
		}
		m[k] = (struct member){ c->string, key };
		path_push(w, c->string, 0);
		ok = walk_value(w, c, key);
		w->plen = base;
		w->path[base] = '\0';
	}
	if (ok)
		report_duplicates(w, m, n);
	free(m);
	return ok && expect(w, '}');
}

static bool walk_value(struct walk *w, const cJSON *node, size_t key_off)
{
	skip_ws(w);
	size_t at = w->i;
	if (!record(w, node, key_off, at) || at >= w->d->len)
		return false;

	const char *t = w->d->text;
	if (cJSON_IsObject(node)) {
		w->i++;
		return t[at] == '{' && walk_members(w, node);
	}
	if (cJSON_IsArray(node)) {
		if (t[at] != '[')
			return false;
		w->i++;
		size_t base = w->plen, k = 0;
		for (const cJSON *c = node->child; c; c = c->next, k++) {
			if (c != node->child && !expect(w, ','))
				return false;
			path_push(w, NULL, k);
			skip_ws(w);
			bool ok = walk_value(w, c, w->i);
			w->plen = base;
			w->path[base] = '\0';
			if (!ok)
				return false;
		}
		return expect(w, ']');
	}
	if (cJSON_IsString(node))
		return skip_string(w);
	if (cJSON_IsNumber(node)) {
		while (w->i < w->d->len && strchr("0123456789+-eE.", t[w->i]))
			w->i++;
		return w->i > at;
	}
	const char *lit = cJSON_IsNull(node) ? "null" : cJSON_IsTrue(node) ? "true" :
			  cJSON_IsFalse(node) ? "false" : NULL;
	if (!lit || strncmp(t + at, lit, strlen(lit)) != 0)
		return false;
	w->i += strlen(lit);
	return true;
}

static int pos_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct node_pos *)a)->node;
	uintptr_t y = (uintptr_t)((const struct node_pos *)b)->node;
	return x < y ? -1 : x > y;
}

static int problem_cmp(const void *a, const void *b)
{
	const struct jsonc_problem *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static bool index_lines(struct jsonc_doc *d)
{
	size_t n = 1;
	const char *t = d->text, *end = t + d->len, *p;
	for (p = t; p < end && (p = memchr(p, '\n', (size_t)(end - p))); p++)
		n++;
	d->lines = calloc(n, sizeof(*d->lines));
	if (!d->lines)
		return false;
	d->n_lines = 0;
	d->lines[d->n_lines++] = 0;
	for (p = t; p < end && (p = memchr(p, '\n', (size_t)(end - p))); p++)
		d->lines[d->n_lines++] = (size_t)(p - t) + 1;
	return true;
}

/* Maps every node to its place; false (with a problem) when the walk and cJSON disagree. */
static bool walk(struct jsonc_doc *d)
{
	struct walk w = { .d = d };
	w.i = d->len >= 3 && memcmp(d->text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
	skip_ws(&w);
	if (!walk_value(&w, d->root, w.i)) {
		if (!d->nomem)
			problem(d, w.i, "internal error: position map out of step with the parser");
		return false;
	}
	if (d->n_pos > 1)
		qsort(d->pos, d->n_pos, sizeof(*d->pos), pos_cmp);
	return true;
}

/* The tree is the fast path's arena or cJSON's own. */
static void drop_root(struct jsonc_doc *d)
{
	if (d->arena)
		jsonc_arena_free(d->arena);
	else
		cJSON_Delete(d->root);
	d->arena = NULL;
	d->root = NULL;
}

static void parse(struct jsonc_doc *d)
{
	if (!blank_comments(d))
		return;

	/* The NUL is part of the buffer cJSON sees: at the end of the text it then fails *at*
	 * the end instead of on the last character, which the error offset needs. The global
	 * cJSON_GetErrorPtr() is not used: a reload may parse while another thread does. */
	const char *end = d->text + d->len;
	d->root = jsonc_fast_parse(d->text, d->len, &d->arena);
	if (!d->root)  /* not valid, or not plain enough: cJSON's word and place */
		d->root = cJSON_ParseWithLengthOpts(d->text, d->len + 1, &end, false);
	if (!d->root) {
		size_t off = end && end >= d->text ? (size_t)(end - d->text) : 0;
		syntax_error(d, off);
		return;
	}

	struct walk w = { .d = d, .i = (size_t)(end - d->text) };
	skip_ws(&w);
	if (w.i < d->len) {
		size_t n = utf8_char_len(d->text + w.i, d->len - w.i);
		problem(d, w.i, "syntax error: unexpected '%.*s' after the end of the document",
			(int)(n ? n : 1), d->text + w.i);
		goto drop;
	}

	/* A valid configuration is asked for no position at all: the walk (a second pass over the
	 * text, a record per node, a sort) waits for the first question, unless it has something
	 * to report (a \u escape to look at, a repeated key), in the same order as ever. */
	int dup = d->u_escape ? 1 : jsonc_has_duplicates(d->root);
	if (dup < 0) {
		d->nomem = true;
		goto drop;
	}
	if (!dup) {
		d->walk_pending = true;
		return;
	}
	if (!walk(d))
		goto drop;
	return;
drop:
	drop_root(d);
}

int jsonc_parse(const char *text, size_t len, struct jsonc_doc **out)
{
	*out = NULL;
	struct jsonc_doc *d = calloc(1, sizeof(*d));
	if (!d || len == SIZE_MAX || !(d->text = malloc(len + 1))) {
		jsonc_free(d);
		return -ENOMEM;
	}
	if (len)
		memcpy(d->text, text, len);
	d->text[len] = '\0';
	d->len = len;
	if (!index_lines(d)) {
		jsonc_free(d);
		return -ENOMEM;
	}
	parse(d);
	if (d->nomem) {
		jsonc_free(d);
		return -ENOMEM;
	}
	if (d->n_problems > 1)
		qsort(d->problems, d->n_problems, sizeof(*d->problems), problem_cmp);
	*out = d;
	return 0;
}

int jsonc_parse_plain(const char *text, size_t len, struct jsonc_doc **out)
{
	*out = NULL;
	struct jsonc_doc *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->root = jsonc_fast_parse(text, len, &d->arena);
	if (!d->root)
		d->root = cJSON_ParseWithLength(text, len);
	*out = d;
	return 0;
}

void jsonc_free(struct jsonc_doc *d)
{
	if (!d)
		return;
	drop_root(d);
	for (size_t i = 0; i < d->n_problems; i++)
		free(d->problems[i].msg);
	free(d->problems);
	free(d->pos);
	free(d->lines);
	free(d->text);
	free(d->orig);
	free(d);
}

const cJSON *jsonc_root(const struct jsonc_doc *d)
{
	return d ? d->root : NULL;
}

size_t jsonc_n_problems(const struct jsonc_doc *d)
{
	return d ? d->n_problems : 0;
}

const struct jsonc_problem *jsonc_problem(const struct jsonc_doc *d, size_t i)
{
	return d && i < d->n_problems ? &d->problems[i] : NULL;
}

size_t jsonc_n_dropped(const struct jsonc_doc *d)
{
	return d ? d->dropped : 0;
}

/* The walk put off by parse: the doc is the caller's alone (one thread), and nothing it maps
 * can fail to map (parse looked), so at worst a position is 0, never a new problem. */
static void walk_now(const struct jsonc_doc *cd)
{
	struct jsonc_doc *d = (struct jsonc_doc *)cd;  /* allocated writable by jsonc_parse */
	d->walk_pending = false;
	size_t n_problems = d->n_problems;
	if (!walk(d)) {
		d->n_pos = 0;
		d->nomem = false;
	}
	/* nothing new to report: the reader has taken the problems already */
	while (d->n_problems > n_problems)
		free(d->problems[--d->n_problems].msg);
}

static const struct node_pos *find(const struct jsonc_doc *d, const cJSON *node)
{
	if (d && d->walk_pending)
		walk_now(d);
	struct node_pos key = { .node = node };
	return d && d->n_pos ? bsearch(&key, d->pos, d->n_pos, sizeof(key), pos_cmp) : NULL;
}

size_t jsonc_key_off(const struct jsonc_doc *d, const cJSON *node)
{
	const struct node_pos *p = find(d, node);
	return p ? p->key_off : 0;
}

size_t jsonc_value_off(const struct jsonc_doc *d, const cJSON *node)
{
	const struct node_pos *p = find(d, node);
	return p ? p->val_off : 0;
}

struct jsonc_pos jsonc_pos_of(const struct jsonc_doc *d, size_t off)
{
	if (!d->lines)  /* a plain doc keeps no lines */
		return (struct jsonc_pos){ .line = 1, .col = 1 };
	if (off > d->len)
		off = d->len;
	size_t lo = 0, hi = d->n_lines;  /* the last line starting at or before off */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->lines[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	size_t from = d->lines[lo];
	const char *orig = d->orig ? d->orig : d->text;
	if (lo == 0 && off >= 3 && d->len >= 3 && memcmp(orig, "\xEF\xBB\xBF", 3) == 0)
		from = 3;  /* editors do not show the BOM as a character */
	unsigned col = 1;
	for (size_t i = from; i < off; i++)
		col += ((unsigned char)orig[i] & 0xc0) != 0x80;
	return (struct jsonc_pos){ .line = (unsigned)lo + 1, .col = col };
}
