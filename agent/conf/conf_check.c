/* conf_check.c — the config reader's checker helpers: problems collected with their place,
 * typed members that report their own problem, ids, files and secrets, time zones, repeated ids. */
#include "conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- collecting problems ---- */

/* printf into a new string; NULL when out of memory. */
char *conf_strdupf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n < 0 ? NULL : malloc((size_t)n + 1);
	if (s) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	return s;
}

static void add_problem(struct ctx *c, size_t off, const char *path, const char *fmt, va_list ap)
	PRINTF_LIKE(4, 0);
static void add_problem(struct ctx *c, size_t off, const char *path, const char *fmt, va_list ap)
{
	char why[1024];
	if (c->n >= PROBLEMS_MAX) {
		c->dropped++;
		return;
	}
	if (vsnprintf(why, sizeof(why), fmt, ap) < 0)
		return;  /* a cut message is still worth showing; only an encoding error drops it */

	struct jsonc_pos p = jsonc_pos_of(c->doc, off);
	char *msg = conf_strdupf("%s:%u:%u: %s%s%s", c->name, p.line, p.col, path ? path : "",
				 path ? ": " : "", why);
	if (msg && c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct problem *nv = reallocarray(c->v, ncap, sizeof(*nv));
		if (nv) {
			c->v = nv;
			c->cap = ncap;
		}
	}
	if (!msg || c->n == c->cap) {
		free(msg);
		c->nomem = true;
		return;
	}
	c->v[c->n] = (struct problem){ .off = off, .seq = c->n, .msg = msg };
	c->n++;
}

void conf_err_at(struct ctx *c, size_t off, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, off, path, fmt, ap);
	va_end(ap);
}

/* Bad value: points at the value. */
void conf_err_val(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, jsonc_value_off(c->doc, v), path, fmt, ap);
	va_end(ap);
}

/* A key that must not be there: points at the key. */
void conf_err_key(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, jsonc_key_off(c->doc, v), path, fmt, ap);
	va_end(ap);
}

int conf_problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- small helpers ---- */

/* Appends s at *n, cut at PATH_BUF - 1 as snprintf would; buf is always terminated. Paths are
 * made for every member read, so this is plain copying rather than a printf. */
static void put(char *buf, size_t *n, const char *s, size_t len)
{
	size_t room = PATH_BUF - 1 - *n;
	if (len > room)
		len = room;
	memmove(buf + *n, s, len);  /* parent may be buf itself */
	*n += len;
	buf[*n] = '\0';
}

const char *conf_join(char *buf, const char *parent, const char *key)
{
	size_t n = 0;
	put(buf, &n, parent, strlen(parent));
	if (n)
		put(buf, &n, ".", 1);
	put(buf, &n, key, strlen(key));
	return buf;  /* cut when too long: it still leads the reader to the place */
}

const char *conf_join_index(char *buf, const char *parent, size_t i)
{
	char num[24];
	size_t k = sizeof(num);
	num[--k] = ']';
	do
		num[--k] = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	num[--k] = '[';
	size_t n = 0;
	put(buf, &n, parent, strlen(parent));
	put(buf, &n, num + k, sizeof(num) - k);
	return buf;
}

char *conf_xdup(struct ctx *c, const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		c->nomem = true;
	return d;
}

/* cJSON_GetObjectItemCaseSensitive's answer (the first member of that name, none past a member
 * without one), the first character compared before a call: the checks ask some 200 times per
 * instrument, a million times at 5,000. */
const cJSON *conf_get(const cJSON *obj, const char *key)
{
	/* The first of duplicate keys; jsonc reports the others. */
	if (!obj || !key)
		return NULL;
	for (const cJSON *c = obj->child; c && c->string; c = c->next)
		if (c->string[0] == key[0] && strcmp(c->string, key) == 0)
			return c;
	return NULL;
}

/* Present and not null: null means "the default" for every optional key. */
bool conf_present(const cJSON *obj, const char *key)
{
	const cJSON *v = conf_get(obj, key);
	return v && !cJSON_IsNull(v);
}

void conf_err_missing(struct ctx *c, const cJSON *obj, const char *path, const char *key)
{
	char p[PATH_BUF];
	conf_err_val(c, obj, conf_join(p, path, key), "missing required key");
}

bool conf_in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Edit distance, for "did you mean": keys are short, so the O(n*m) table is tiny. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[33];
	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *nearest(const char *key, const char *const *list)
{
	const char *best = NULL;
	size_t bd = 3;  /* more than two edits away is not a typo */
	for (; *list; list++) {
		size_t d = distance(key, *list);
		if (d < bd && d < strlen(*list)) {
			bd = d;
			best = *list;
		}
	}
	return best;
}

void conf_err_unknown(struct ctx *c, const cJSON *m, const char *path, const char *const *allowed)
{
	char p[PATH_BUF];
	const char *near = nearest(m->string, allowed);
	if (near)
		conf_err_key(c, m, conf_join(p, path, m->string),
			     "unknown key (did you mean \"%s\"?)", near);
	else
		conf_err_key(c, m, conf_join(p, path, m->string), "unknown key");
}

/* Typos must not silently disable a source (SPEC §3): every key is checked. */
void conf_check_keys(struct ctx *c, const cJSON *obj, const char *path, const char *const *allowed)
{
	for (const cJSON *m = obj->child; m; m = m->next)
		if (!conf_in_list(m->string, allowed))
			conf_err_unknown(c, m, path, allowed);
}

/* ---- typed members: each reports its own problem and returns whether a value was set ---- */

static const cJSON *typed(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			  bool required, cJSON_bool (*is)(const cJSON *), const char *want)
{
	char p[PATH_BUF];
	const cJSON *v = conf_get(obj, key);
	if (!v) {
		if (required)
			conf_err_missing(c, obj, path, key);
		return NULL;
	}
	if (cJSON_IsNull(v) && !required)
		return NULL;
	if (!is(v)) {
		conf_err_val(c, v, conf_join(p, path, key), "must be %s", want);
		return NULL;
	}
	return v;
}

const cJSON *conf_obj_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required)
{
	return typed(c, obj, path, key, required, cJSON_IsObject, "an object");
}

const cJSON *conf_arr_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required)
{
	return typed(c, obj, path, key, required, cJSON_IsArray, "an array");
}

const char *conf_str_value(struct ctx *c, const cJSON *v, const char *path)
{
	if (!cJSON_IsString(v)) {
		conf_err_val(c, v, path, "must be a string");
		return NULL;
	}
	if (!v->valuestring[0]) {
		conf_err_val(c, v, path, "must not be empty");
		return NULL;
	}
	return v->valuestring;
}

const char *conf_str_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			    bool required)
{
	char p[PATH_BUF];
	const cJSON *v = typed(c, obj, path, key, required, cJSON_IsString, "a string");
	return v ? conf_str_value(c, v, conf_join(p, path, key)) : NULL;
}

/* 1.5 is not; 1e3 is. Past 2^53 every double is integral, and out of any range here. */
bool conf_is_integer(const cJSON *v)
{
	double d = v->valuedouble;
	return cJSON_IsNumber(v) && isfinite(d) &&
	       (d > 9e15 || d < -9e15 || d == (double)(long long)d);
}

static bool int_value(struct ctx *c, const cJSON *v, const char *path, long long min, long long max,
		      long long *out)
{
	double d = v->valuedouble;
	if (!conf_is_integer(v)) {
		conf_err_val(c, v, path, "must be an integer");
		return false;
	}
	if (d < (double)min || d > (double)max) {
		conf_err_val(c, v, path, "must be %lld..%lld", min, max);
		return false;
	}
	*out = (long long)d;
	return true;
}

/* Leaves *out (the default) alone when the key is absent or invalid. */
bool conf_int_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		     bool required, long long min, long long max, int *out)
{
	char p[PATH_BUF];
	long long x;
	const cJSON *v = conf_get(obj, key);
	if (!v || (cJSON_IsNull(v) && !required)) {
		if (!v && required)
			conf_err_missing(c, obj, path, key);
		return false;
	}
	if (!int_value(c, v, conf_join(p, path, key), min, max, &x))
		return false;
	*out = (int)x;
	return true;
}

/* A finite number in lo..hi, lo excluded when lo_open; why says the rule to the user. */
const cJSON *conf_num_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			     bool required, double lo, bool lo_open, double hi, const char *why,
			     double *out)
{
	char p[PATH_BUF];
	const cJSON *v = typed(c, obj, path, key, required, cJSON_IsNumber, "a number");
	if (!v)
		return NULL;
	double d = v->valuedouble;
	if (!isfinite(d) || d < lo || (lo_open && d == lo) || d > hi) {
		conf_err_val(c, v, conf_join(p, path, key), "%s", why);
		return NULL;
	}
	*out = d;
	return v;
}

bool conf_bool_member(struct ctx *c, const cJSON *obj, const char *path, const char *key, bool *out)
{
	const cJSON *v = typed(c, obj, path, key, false, cJSON_IsBool, "true or false");
	if (v)
		*out = cJSON_IsTrue(v);
	return v != NULL;
}

/* One of names (NULL-terminated); *out is its index. */
bool conf_enum_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		      bool required, const char *const *names, bool icase, int *out)
{
	char p[PATH_BUF];
	const char *s = conf_str_member(c, obj, path, key, required);
	if (!s)
		return false;
	for (int i = 0; names[i]; i++) {
		if (icase ? strcasecmp(s, names[i]) == 0 : strcmp(s, names[i]) == 0) {
			*out = i;
			return true;
		}
	}
	char list[256] = "";
	size_t used = 0;
	for (int i = 0; names[i] && used < sizeof(list); i++) {
		const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
		int n = snprintf(list + used, sizeof(list) - used, "%s\"%s\"", sep, names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	conf_err_val(c, conf_get(obj, key), conf_join(p, path, key), "must be %s", list);
	return false;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 64 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

char *conf_id_member(struct ctx *c, const cJSON *obj, const char *path, const char *key)
{
	char p[PATH_BUF];
	const char *s = conf_str_member(c, obj, path, key, true);
	if (s && !valid_id(s)) {
		conf_err_val(c, conf_get(obj, key), conf_join(p, path, key),
			     "must match [A-Za-z0-9._-]{1,64}");
		return NULL;
	}
	return conf_xdup(c, s);
}

/* ---- files ---- */

/* Relative names are taken from the config file's folder: the daemon's working folder is
 * "/" under systemd, and a config should mean the same wherever it is checked from. */
static char *resolve(struct ctx *c, const char *file)
{
	if (!file || file[0] == '/' || !c->base_dir)
		return conf_xdup(c, file);
	size_t n = strlen(c->base_dir) + 1 + strlen(file) + 1;
	char *s = malloc(n);
	if (!s) {
		c->nomem = true;
		return NULL;
	}
	snprintf(s, n, "%s/%s", c->base_dir, file);
	return s;
}

char *conf_file_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		       bool required)
{
	return resolve(c, conf_str_member(c, obj, path, key, required));
}

/* An open fd, or -errno; a folder is -EISDIR and anything else not a regular file -EINVAL.
 * O_NONBLOCK: a FIFO or a device named by mistake must not hang the loader. */
int conf_open_regular(const char *file, struct stat *st)
{
	int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, st) != 0 ? -errno : S_ISREG(st->st_mode) ? 0 :
		 S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

static const char *open_why(int rc)
{
	return rc == -EINVAL ? "not a regular file" : strerror(-rc);
}

bool conf_check_readable(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			 const char *file)
{
	char p[PATH_BUF];
	struct stat st;
	int fd = conf_open_regular(file, &st);
	if (fd < 0) {
		conf_err_val(c, conf_get(obj, key), conf_join(p, path, key), "cannot read \"%s\": %s", file,
			     open_why(fd));
		return false;
	}
	close(fd);
	return true;
}

/* A secret (token, HMAC key): only the agent's user may read it. The result is
 * NUL-terminated; *len excludes the NUL. */
char *conf_read_secret(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		       const char *file, size_t *len)
{
	char p[PATH_BUF];
	const cJSON *v = conf_get(obj, key);
	struct stat st;
	conf_join(p, path, key);

	int fd = conf_open_regular(file, &st);
	if (fd < 0) {
		conf_err_val(c, v, p, "cannot read \"%s\": %s", file, open_why(fd));
		return NULL;
	}
	if (st.st_mode & 077) {
		unsigned mode = (unsigned)st.st_mode & 07777;
		const char *what = (st.st_mode & 044) ? "readable" : (st.st_mode & 022) ? "writable" :
				   "accessible";
		conf_err_val(c, v, p, "\"%s\" has mode %04o: must not be group- or world-%s (chmod 600)",
			     file, mode, what);
		close(fd);
		return NULL;
	}
	if (st.st_size > SECRET_MAX_BYTES) {
		conf_err_val(c, v, p, "\"%s\" is larger than %d bytes", file, SECRET_MAX_BYTES);
		close(fd);
		return NULL;
	}
	char *buf = malloc(SECRET_MAX_BYTES + 1);
	size_t n = 0;
	ssize_t r = 0;
	while (buf && n < SECRET_MAX_BYTES &&
	       ((r = read(fd, buf + n, SECRET_MAX_BYTES - n)) > 0 || (r < 0 && errno == EINTR)))
		n += r > 0 ? (size_t)r : 0;
	int saved = errno;
	close(fd);
	if (!buf) {
		c->nomem = true;
		return NULL;
	}
	if (r < 0) {
		conf_err_val(c, v, p, "cannot read \"%s\": %s", file, strerror(saved));
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Refuses "..", absolute names and anything that is not a TZif file under the zoneinfo
 * folder: the name ends up in TZ= for localtime, which would read any file named. */
void conf_check_timezone(struct ctx *c, const cJSON *obj, const char *path, const char *tz)
{
	char p[PATH_BUF], file[PATH_MAX];
	const cJSON *v = conf_get(obj, "timezone");
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	conf_join(p, path, "timezone");

	bool bad = tz[0] == '/' || strstr(tz, "..") ||
		   strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-.") !=
			   strlen(tz);
	for (const char *s = tz; !bad && *s; s++)
		if ((s == tz || s[-1] == '/') && s[0] == '.')
			bad = true;  /* "..", "./x", hidden files */
	if (bad) {
		conf_err_val(c, v, p,
			     "\"%.64s\" is not an IANA time zone name (like \"Asia/Shanghai\")", tz);
		return;
	}
	int n = snprintf(file, sizeof(file), "%s/%s", dir, tz);
	struct stat st;
	char magic[4];
	int fd = n > 0 && (size_t)n < sizeof(file) ? conf_open_regular(file, &st) : -1;
	bool ok = fd >= 0 && read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
		  memcmp(magic, "TZif", 4) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		conf_err_val(c, v, p, "unknown time zone \"%.64s\" (no TZif file under %s)", tz, dir);
}


static int id_ref_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int r = strcmp(x->id, y->id);
	return r ? r : (x->index > y->index) - (x->index < y->index);
}

void conf_check_unique(struct ctx *c, const cJSON *arr, const char *arr_path, const char *what,
		       struct id_ref *refs, size_t n)
{
	char p[PATH_BUF], elem[PATH_BUF], first[PATH_BUF];
	if (n < 2)
		return;
	qsort(refs, n, sizeof(*refs), id_ref_cmp);
	for (size_t k = 1, f = 0; k < n; k++) {
		if (strcmp(refs[k].id, refs[f].id) != 0) {
			f = k;
			continue;
		}
		conf_join_index(elem, arr_path, refs[k].index);
		conf_join_index(first, arr_path, refs[f].index);
		const cJSON *obj = cJSON_GetArrayItem(arr, (int)refs[k].index);
		conf_err_val(c, conf_get(obj, "id"), conf_join(p, elem, "id"),
			     "duplicate %s id \"%s\" (first in %s)", what, refs[k].id, first);
	}
}
