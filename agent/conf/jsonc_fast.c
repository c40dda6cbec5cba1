/* jsonc_fast.c — the tree cJSON 1.7 would build from a valid text, in one pass and without a
 * malloc per node: a 5,000-instrument configuration is some 150,000 nodes and as many strings,
 * and cJSON's allocations and frees were most of the cost of reading it. The rules are cJSON's
 * (parse_value, parse_string, parse_number, parse_array, parse_object): whitespace is any byte
 * <= 0x20, a number is the run of "0-9+-eE." strtod reads with the locale's decimal point,
 * true has valueint 1, a list's first child's prev is its last. Whatever this path does not
 * take exactly as cJSON would (an error, a \u escape that is 0, bad or a lone surrogate, a
 * number of 63 characters or more, nesting deeper than FAST_DEPTH) it leaves to cJSON. */
#include "jsonc_fast.h"

#include <limits.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MIN ((size_t)256 << 10)
#define FAST_DEPTH 200         /* cJSON allows 1000; deeper is no configuration */
#define NUMBER_MAX 63          /* cJSON copies at most 63 characters of a number */

struct jsonc_arena {
	struct jsonc_arena *next;
	size_t used, cap;
	_Alignas(max_align_t) unsigned char data[];
};

void jsonc_arena_free(struct jsonc_arena *a)
{
	while (a) {
		struct jsonc_arena *next = a->next;
		free(a);
		a = next;
	}
}

/* size bytes, aligned for a cJSON, not zeroed (strings are written whole). */
static void *take(struct jsonc_arena **head, size_t size)
{
	size = (size + 7) & ~(size_t)7;
	struct jsonc_arena *a = *head;
	if (!a || a->cap - a->used < size) {
		size_t cap = size > BLOCK_MIN ? size : BLOCK_MIN;
		struct jsonc_arena *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		b->next = a;
		*head = a = b;
	}
	void *p = a->data + a->used;
	a->used += size;
	return p;
}

static cJSON *node(struct jsonc_arena **head)
{
	cJSON *c = take(head, sizeof(*c));
	if (c)
		memset(c, 0, sizeof(*c));
	return c;
}

struct fast {
	const char *t;
	size_t i, len;
	struct jsonc_arena *arena;
	char point;  /* the locale's decimal point, as cJSON's get_decimal_point */
	int depth;
};

static void skip_ws(struct fast *f)
{
	while (f->i < f->len && (unsigned char)f->t[f->i] <= ' ')
		f->i++;
}

int jsonc_hex4(const char *s)
{
	int v = 0;
	for (int k = 0; k < 4; k++) {
		char c = s[k];
		int x = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (x < 0)
			return -1;
		v = v << 4 | x;
	}
	return v;
}

/* A \u escape at s (inside end): the code point and the bytes it took, or 0 for cJSON to judge. */
static uint32_t escape_u(const char *s, const char *end, size_t *used)
{
	if (end - s < 6)
		return 0;
	int a = jsonc_hex4(s + 2);
	if (a <= 0 || (a >= 0xDC00 && a <= 0xDFFF))
		return 0;
	if (a < 0xD800 || a > 0xDBFF) {
		*used = 6;
		return (uint32_t)a;
	}
	if (end - s < 12 || s[6] != '\\' || s[7] != 'u')
		return 0;
	int b = jsonc_hex4(s + 8);
	if (b < 0xDC00 || b > 0xDFFF)
		return 0;
	*used = 12;
	return 0x10000 + (((uint32_t)a & 0x3FF) << 10 | ((uint32_t)b & 0x3FF));
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A string at f->i (its opening quote), decoded into the arena. */
static char *string(struct fast *f)
{
	const char *t = f->t;
	if (f->i >= f->len || t[f->i] != '"')
		return NULL;
	size_t start = f->i + 1, end = start;
	bool plain = true;
	while (end < f->len && t[end] != '"') {
		if (t[end] == '\\') {
			plain = false;
			if (end + 1 >= f->len)
				return NULL;
			end++;
		}
		end++;
	}
	if (end >= f->len)
		return NULL;
	unsigned char *out = take(&f->arena, end - start + 1);
	if (!out)
		return NULL;
	f->i = end + 1;
	if (plain) {
		memcpy(out, t + start, end - start);
		out[end - start] = '\0';
		return (char *)out;
	}
	size_t o = 0;
	for (size_t k = start; k < end;) {
		if (t[k] != '\\') {
			out[o++] = (unsigned char)t[k++];
			continue;
		}
		char e = t[k + 1];
		const char *from = "bfnrt\"\\/", *to = "\b\f\n\r\t\"\\/";
		const char *hit = e ? strchr(from, e) : NULL;
		if (hit) {
			out[o++] = (unsigned char)to[hit - from];
			k += 2;
			continue;
		}
		size_t used = 0;
		uint32_t cp = e == 'u' ? escape_u(t + k, t + end, &used) : 0;
		if (!cp)
			return NULL;
		o += put_utf8(out + o, cp);
		k += used;
	}
	out[o] = '\0';
	return (char *)out;
}

static bool number(struct fast *f, cJSON *item)
{
	char buf[NUMBER_MAX + 1];
	size_t n = 0;
	while (f->i + n < f->len && n < NUMBER_MAX && strchr("0123456789+-eE.", f->t[f->i + n]) &&
	       f->t[f->i + n]) {
		char c = f->t[f->i + n];
		buf[n++] = c == '.' ? f->point : c;
	}
	if (n == 0 || n >= NUMBER_MAX)
		return false;
	buf[n] = '\0';
	char *after = NULL;
	double d = strtod(buf, &after);
	if (after != buf + n)
		return false;  /* cJSON would stop inside the run, and the rest is not JSON */
	item->valuedouble = d;
	item->valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
	item->type = cJSON_Number;
	f->i += n;
	return true;
}

static bool value(struct fast *f, cJSON *item);

/* An array or object at f->i; members take their key first. */
static bool list(struct fast *f, cJSON *item, bool object)
{
	if (++f->depth > FAST_DEPTH)
		return false;
	f->i++;
	skip_ws(f);
	cJSON *head = NULL, *last = NULL;
	char close = object ? '}' : ']';
	if (f->i < f->len && f->t[f->i] == close) {
		f->i++;
	} else {
		for (;;) {
			cJSON *c = node(&f->arena);
			if (!c)
				return false;
			if (!head) {
				head = c;
			} else {
				last->next = c;
				c->prev = last;
			}
			last = c;
			skip_ws(f);
			if (object) {
				if (!(c->string = string(f)))
					return false;
				skip_ws(f);
				if (f->i >= f->len || f->t[f->i] != ':')
					return false;
				f->i++;
				skip_ws(f);
			}
			if (!value(f, c))
				return false;
			skip_ws(f);
			if (f->i < f->len && f->t[f->i] == ',') {
				f->i++;
				continue;
			}
			if (f->i >= f->len || f->t[f->i] != close)
				return false;
			f->i++;
			break;
		}
		head->prev = last;
	}
	f->depth--;
	item->type = object ? cJSON_Object : cJSON_Array;
	item->child = head;
	return true;
}

static bool literal(struct fast *f, const char *word, int type, cJSON *item)
{
	size_t n = strlen(word);
	if (f->len - f->i < n || memcmp(f->t + f->i, word, n) != 0)
		return false;
	item->type = type;
	item->valueint = type == cJSON_True;
	f->i += n;
	return true;
}

static bool value(struct fast *f, cJSON *item)
{
	if (f->i >= f->len)
		return false;
	char c = f->t[f->i];
	switch (c) {
	case 'n': return literal(f, "null", cJSON_NULL, item);
	case 'f': return literal(f, "false", cJSON_False, item);
	case 't': return literal(f, "true", cJSON_True, item);
	case '"':
		item->type = cJSON_String;
		return (item->valuestring = string(f)) != NULL;
	case '[': return list(f, item, false);
	case '{': return list(f, item, true);
	default:
		return (c == '-' || (c >= '0' && c <= '9')) && number(f, item);
	}
}

cJSON *jsonc_fast_parse(const char *text, size_t len, struct jsonc_arena **arena)
{
	const struct lconv *lc = localeconv();
	struct fast f = { .t = text, .len = len, .point = lc && lc->decimal_point ? lc->decimal_point[0] : '.' };
	*arena = NULL;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		f.i = 3;
	skip_ws(&f);
	cJSON *root = node(&f.arena);
	bool ok = root && value(&f, root);
	if (ok) {
		skip_ws(&f);
		ok = f.i == len;
	}
	if (!ok) {
		jsonc_arena_free(f.arena);
		return NULL;
	}
	*arena = f.arena;
	return root;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Small objects are compared pairwise, large ones sorted. */
static int dup_under(const cJSON *node, size_t depth)
{
	if (depth > CJSON_NESTING_LIMIT)
		return 1;
	if (cJSON_IsObject(node)) {
		size_t n = 0;
		for (const cJSON *c = node->child; c; c = c->next, n++)
			if (!c->string)
				return 1;
		if (n > 1 && n <= 16) {
			for (const cJSON *a = node->child; a; a = a->next)
				for (const cJSON *b = a->next; b; b = b->next)
					if (strcmp(a->string, b->string) == 0)
						return 1;
		} else if (n > 16) {
			const char **v = malloc(n * sizeof(*v));
			if (!v)
				return -1;
			size_t k = 0;
			for (const cJSON *c = node->child; c; c = c->next)
				v[k++] = c->string;
			qsort(v, n, sizeof(*v), name_cmp);
			bool dup = false;
			for (k = 1; k < n && !dup; k++)
				dup = strcmp(v[k - 1], v[k]) == 0;
			free(v);
			if (dup)
				return 1;
		}
	}
	if (cJSON_IsObject(node) || cJSON_IsArray(node))
		for (const cJSON *c = node->child; c; c = c->next) {
			int r = dup_under(c, depth + 1);
			if (r)
				return r;
		}
	return 0;
}

int jsonc_has_duplicates(const cJSON *root)
{
	return dup_under(root, 0);
}
