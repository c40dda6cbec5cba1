/* config.c — agent.json (SPEC §3) into struct config. Every problem is collected with its
 * file:line:col and JSON path, so `labshare-agent check` can list them all in one go. */
#include "config.h"
#include "fileio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jsonc.h"
#include "log.h"

#define CONFIG_MAX_BYTES ((size_t)4 << 20)  /* a real config is a few KiB */
#define SECRET_MAX_BYTES 4096               /* token and user-id key files */
#define PATTERN_MAX_BYTES 4096              /* a log line regex; regcomp's cost grows with it */
#define PATTERN_MAX_WEIGHT 20000            /* atoms once {n} repeats are unrolled; see regex_weight */
#define PATH_BUF 256                        /* JSON paths; a longer one is cut in messages */
#define PROBLEMS_MAX 200                    /* more are counted, and the count reported */
#define DEFAULT_STATE_DIR "/var/lib/labshare-agent"
#define ROOT_PATH "(top level)"

const char *const session_field_names[SF__COUNT] = {
	[SF_START] = "start", [SF_END] = "end", [SF_DURATION] = "duration", [SF_USER] = "user",
	[SF_ORG] = "org", [SF_SAMPLES] = "samples", [SF_EXTERNAL] = "external", [SF_WAY] = "way",
	[SF_FEE] = "fee", [SF_PROJECT] = "project", [SF_TIME] = "time",
};

/* ---- collecting problems ---- */

struct problem {
	size_t off, seq;  /* sorted by place in the file, then by the order found */
	char *msg;
};

struct ctx {
	const char *name;        /* the file name as given, for messages */
	const char *base_dir;    /* relative file names resolve against it; NULL: as given */
	const struct jsonc_doc *doc;
	struct problem *v;
	size_t n, cap;
	size_t dropped;          /* problems past PROBLEMS_MAX */
	bool nomem;
	bool nrii;               /* "nrii" is configured: every instrument needs inner_id */
};

/* printf into a new string; NULL when out of memory. */
static char *strdupf(const char *fmt, ...) PRINTF_LIKE(1, 2);
static char *strdupf(const char *fmt, ...)
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
	char *msg = strdupf("%s:%u:%u: %s%s%s", c->name, p.line, p.col, path ? path : "",
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

static void err_at(struct ctx *c, size_t off, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
static void err_at(struct ctx *c, size_t off, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, off, path, fmt, ap);
	va_end(ap);
}

/* Bad value: points at the value. */
static void err_val(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
static void err_val(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, jsonc_value_off(c->doc, v), path, fmt, ap);
	va_end(ap);
}

/* A key that must not be there: points at the key. */
static void err_key(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
static void err_key(struct ctx *c, const cJSON *v, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(c, jsonc_key_off(c->doc, v), path, fmt, ap);
	va_end(ap);
}

static int problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- small helpers ---- */

static const char *join(char *buf, const char *parent, const char *key)
{
	if (snprintf(buf, PATH_BUF, "%s%s%s", parent, *parent ? "." : "", key) < 0)
		buf[0] = '\0';
	return buf;  /* cut when too long: it still leads the reader to the place */
}

static const char *join_index(char *buf, const char *parent, size_t i)
{
	if (snprintf(buf, PATH_BUF, "%s[%zu]", parent, i) < 0)
		buf[0] = '\0';
	return buf;
}

static char *xdup(struct ctx *c, const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		c->nomem = true;
	return d;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
	/* The first of duplicate keys; jsonc reports the others. */
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Present and not null: null means "the default" for every optional key. */
static bool present(const cJSON *obj, const char *key)
{
	const cJSON *v = get(obj, key);
	return v && !cJSON_IsNull(v);
}

static void err_missing(struct ctx *c, const cJSON *obj, const char *path, const char *key)
{
	char p[PATH_BUF];
	err_val(c, obj, join(p, path, key), "missing required key");
}

static bool in_list(const char *s, const char *const *list)
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

static void err_unknown(struct ctx *c, const cJSON *m, const char *path, const char *const *allowed)
{
	char p[PATH_BUF];
	const char *near = nearest(m->string, allowed);
	if (near)
		err_key(c, m, join(p, path, m->string), "unknown key (did you mean \"%s\"?)", near);
	else
		err_key(c, m, join(p, path, m->string), "unknown key");
}

/* Typos must not silently disable a source (SPEC §3): every key is checked. */
static void check_keys(struct ctx *c, const cJSON *obj, const char *path, const char *const *allowed)
{
	for (const cJSON *m = obj->child; m; m = m->next)
		if (!in_list(m->string, allowed))
			err_unknown(c, m, path, allowed);
}

/* ---- typed members: each reports its own problem and returns whether a value was set ---- */

static const cJSON *typed(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			  bool required, cJSON_bool (*is)(const cJSON *), const char *want)
{
	char p[PATH_BUF];
	const cJSON *v = get(obj, key);
	if (!v) {
		if (required)
			err_missing(c, obj, path, key);
		return NULL;
	}
	if (cJSON_IsNull(v) && !required)
		return NULL;
	if (!is(v)) {
		err_val(c, v, join(p, path, key), "must be %s", want);
		return NULL;
	}
	return v;
}

static const cJSON *obj_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			       bool required)
{
	return typed(c, obj, path, key, required, cJSON_IsObject, "an object");
}

static const cJSON *arr_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			       bool required)
{
	return typed(c, obj, path, key, required, cJSON_IsArray, "an array");
}

static const char *str_value(struct ctx *c, const cJSON *v, const char *path)
{
	if (!cJSON_IsString(v)) {
		err_val(c, v, path, "must be a string");
		return NULL;
	}
	if (!v->valuestring[0]) {
		err_val(c, v, path, "must not be empty");
		return NULL;
	}
	return v->valuestring;
}

static const char *str_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			      bool required)
{
	char p[PATH_BUF];
	const cJSON *v = typed(c, obj, path, key, required, cJSON_IsString, "a string");
	return v ? str_value(c, v, join(p, path, key)) : NULL;
}

/* 1.5 is not; 1e3 is. Past 2^53 every double is integral, and out of any range here. */
static bool is_integer(const cJSON *v)
{
	double d = v->valuedouble;
	return cJSON_IsNumber(v) && isfinite(d) &&
	       (d > 9e15 || d < -9e15 || d == (double)(long long)d);
}

static bool int_value(struct ctx *c, const cJSON *v, const char *path, long long min, long long max,
		      long long *out)
{
	double d = v->valuedouble;
	if (!is_integer(v)) {
		err_val(c, v, path, "must be an integer");
		return false;
	}
	if (d < (double)min || d > (double)max) {
		err_val(c, v, path, "must be %lld..%lld", min, max);
		return false;
	}
	*out = (long long)d;
	return true;
}

/* Leaves *out (the default) alone when the key is absent or invalid. */
static bool int_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
		       bool required, long long min, long long max, int *out)
{
	char p[PATH_BUF];
	long long x;
	const cJSON *v = get(obj, key);
	if (!v || (cJSON_IsNull(v) && !required)) {
		if (!v && required)
			err_missing(c, obj, path, key);
		return false;
	}
	if (!int_value(c, v, join(p, path, key), min, max, &x))
		return false;
	*out = (int)x;
	return true;
}

/* A finite number in lo..hi, lo excluded when lo_open; why says the rule to the user. */
static const cJSON *num_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			       bool required, double lo, bool lo_open, double hi, const char *why,
			       double *out)
{
	char p[PATH_BUF];
	const cJSON *v = typed(c, obj, path, key, required, cJSON_IsNumber, "a number");
	if (!v)
		return NULL;
	double d = v->valuedouble;
	if (!isfinite(d) || d < lo || (lo_open && d == lo) || d > hi) {
		err_val(c, v, join(p, path, key), "%s", why);
		return NULL;
	}
	*out = d;
	return v;
}

static bool bool_member(struct ctx *c, const cJSON *obj, const char *path, const char *key, bool *out)
{
	const cJSON *v = typed(c, obj, path, key, false, cJSON_IsBool, "true or false");
	if (v)
		*out = cJSON_IsTrue(v);
	return v != NULL;
}

/* One of names (NULL-terminated); *out is its index. */
static bool enum_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			bool required, const char *const *names, bool icase, int *out)
{
	char p[PATH_BUF];
	const char *s = str_member(c, obj, path, key, required);
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
	err_val(c, get(obj, key), join(p, path, key), "must be %s", list);
	return false;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 64 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static char *id_member(struct ctx *c, const cJSON *obj, const char *path, const char *key)
{
	char p[PATH_BUF];
	const char *s = str_member(c, obj, path, key, true);
	if (s && !valid_id(s)) {
		err_val(c, get(obj, key), join(p, path, key), "must match [A-Za-z0-9._-]{1,64}");
		return NULL;
	}
	return xdup(c, s);
}

/* ---- files ---- */

/* Relative names are taken from the config file's folder: the daemon's working folder is
 * "/" under systemd, and a config should mean the same wherever it is checked from. */
static char *resolve(struct ctx *c, const char *file)
{
	if (!file || file[0] == '/' || !c->base_dir)
		return xdup(c, file);
	size_t n = strlen(c->base_dir) + 1 + strlen(file) + 1;
	char *s = malloc(n);
	if (!s) {
		c->nomem = true;
		return NULL;
	}
	snprintf(s, n, "%s/%s", c->base_dir, file);
	return s;
}

static char *file_member(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			 bool required)
{
	return resolve(c, str_member(c, obj, path, key, required));
}

/* An open fd, or -errno; a folder is -EISDIR and anything else not a regular file -EINVAL.
 * O_NONBLOCK: a FIFO or a device named by mistake must not hang the loader. */
static int open_regular(const char *file, struct stat *st)
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

static bool check_readable(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			   const char *file)
{
	char p[PATH_BUF];
	struct stat st;
	int fd = open_regular(file, &st);
	if (fd < 0) {
		err_val(c, get(obj, key), join(p, path, key), "cannot read \"%s\": %s", file,
			open_why(fd));
		return false;
	}
	close(fd);
	return true;
}

/* A secret (token, HMAC key): only the agent's user may read it. The result is
 * NUL-terminated; *len excludes the NUL. */
static char *read_secret(struct ctx *c, const cJSON *obj, const char *path, const char *key,
			 const char *file, size_t *len)
{
	char p[PATH_BUF];
	const cJSON *v = get(obj, key);
	struct stat st;
	join(p, path, key);

	int fd = open_regular(file, &st);
	if (fd < 0) {
		err_val(c, v, p, "cannot read \"%s\": %s", file, open_why(fd));
		return NULL;
	}
	if (st.st_mode & 077) {
		unsigned mode = (unsigned)st.st_mode & 07777;
		const char *what = (st.st_mode & 044) ? "readable" : (st.st_mode & 022) ? "writable" :
				   "accessible";
		err_val(c, v, p, "\"%s\" has mode %04o: must not be group- or world-%s (chmod 600)",
			file, mode, what);
		close(fd);
		return NULL;
	}
	if (st.st_size > SECRET_MAX_BYTES) {
		err_val(c, v, p, "\"%s\" is larger than %d bytes", file, SECRET_MAX_BYTES);
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
		err_val(c, v, p, "cannot read \"%s\": %s", file, strerror(saved));
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Refuses "..", absolute names and anything that is not a TZif file under the zoneinfo
 * folder: the name ends up in TZ= for localtime, which would read any file named. */
static void check_timezone(struct ctx *c, const cJSON *obj, const char *path, const char *tz)
{
	char p[PATH_BUF], file[PATH_MAX];
	const cJSON *v = get(obj, "timezone");
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	join(p, path, "timezone");

	bool bad = tz[0] == '/' || strstr(tz, "..") ||
		   strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-.") !=
			   strlen(tz);
	for (const char *s = tz; !bad && *s; s++)
		if ((s == tz || s[-1] == '/') && s[0] == '.')
			bad = true;  /* "..", "./x", hidden files */
	if (bad) {
		err_val(c, v, p, "\"%.64s\" is not an IANA time zone name (like \"Asia/Shanghai\")", tz);
		return;
	}
	int n = snprintf(file, sizeof(file), "%s/%s", dir, tz);
	struct stat st;
	char magic[4];
	int fd = n > 0 && (size_t)n < sizeof(file) ? open_regular(file, &st) : -1;
	bool ok = fd >= 0 && read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
		  memcmp(magic, "TZif", 4) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		err_val(c, v, p, "unknown time zone \"%.64s\" (no TZif file under %s)", tz, dir);
}

/* ---- URLs ---- */

/* Splits "http[s]://host[:port][/path]". Returns NULL or what is wrong. */
static const char *http_url(const char *url, bool *https, char *host, size_t hostsz)
{
	const char *p;
	if (strncasecmp(url, "https://", 8) == 0) {
		*https = true;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		*https = false;
		p = url + 7;
	} else {
		return "must start with https:// or http://";
	}
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return "must not contain spaces or control characters";
	if (strpbrk(p, "?#"))
		return "must not have a query or a fragment";
	size_t alen = strcspn(p, "/");
	if (memchr(p, '@', alen))
		return "must not contain credentials (the token goes in a file)";
	const char *h = p, *hend, *rest;
	if (*h == '[') {
		hend = memchr(h, ']', alen);
		if (!hend)
			return "has a bad IPv6 address";
		h++;
		rest = hend + 1;
	} else {
		hend = memchr(h, ':', alen);
		if (!hend)
			hend = p + alen;
		rest = hend;
	}
	size_t hlen = (size_t)(hend - h);
	if (hlen == 0)
		return "has no host";
	if (hlen >= hostsz)
		return "has a host name that is too long";
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct in6_addr a6;
	if (*p == '[' && inet_pton(AF_INET6, host, &a6) != 1)
		return "has a bad IPv6 address";
	if (rest < p + alen) {
		if (*rest != ':')
			return "has a bad host";
		size_t plen = (size_t)(p + alen - rest - 1);
		char port[8];
		long v = 0;
		if (plen == 0 || plen >= sizeof(port) ||
		    strspn(rest + 1, "0123456789") < plen)
			return "has a bad port";
		memcpy(port, rest + 1, plen);
		port[plen] = '\0';
		v = strtol(port, NULL, 10);
		if (v < 1 || v > 65535)
			return "has a bad port";
	}
	return NULL;
}

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* Digits only, no sign or spaces: "+9600" or "9600 " in a URL is a typo. */
static bool parse_uint(const char *s, size_t len, long max, long *out)
{
	char buf[16];
	if (len == 0 || len >= sizeof(buf) || strspn(s, "0123456789") < len)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static bool tcp_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz)
{
	const char *host = s, *hend, *rest;
	if (*s == '[') {
		hend = strchr(s, ']');
		host = s + 1;
		rest = hend ? hend + 1 : NULL;
	} else {
		hend = s + strcspn(s, ":");
		rest = hend;
		if (*rest == ':' && strchr(rest + 1, ':')) {
			snprintf(why, whysz, "write an IPv6 address in brackets: tcp://[::1]:502");
			return false;
		}
	}
	if (!hend || hend == host) {
		snprintf(why, whysz, "must be tcp://HOST[:PORT]");
		return false;
	}
	size_t hlen = (size_t)(hend - host);
	char *h = strndup(host, hlen);
	if (!h) {
		c->nomem = true;
		return false;
	}
	struct in6_addr a6;
	bool ok = *s == '[' ? inet_pton(AF_INET6, h, &a6) == 1 :
		  strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") == hlen;
	if (!ok) {
		snprintf(why, whysz, "bad host \"%.64s\"", h);
		free(h);
		return false;
	}
	b->host = h;
	b->port = 502;
	if (*rest == '\0')
		return true;
	long port;
	if (*rest != ':' || !parse_uint(rest + 1, strlen(rest + 1), 65535, &port) || port < 1) {
		snprintf(why, whysz, "port must be 1..65535");
		return false;
	}
	b->port = (int)port;
	return true;
}

static bool rtu_param(struct bus_cfg *b, const char *k, size_t klen, const char *val, size_t vlen,
		      unsigned *seen, char *why, size_t whysz)
{
	static const char *const names[] = { "baud", "parity", "data", "stop" };
	static const long bauds[] = { 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400 };
	int which = -1;
	for (int i = 0; i < 4; i++)
		if (klen == strlen(names[i]) && strncmp(k, names[i], klen) == 0)
			which = i;
	if (which < 0) {
		snprintf(why, whysz, "unknown parameter \"%.*s\" (baud, parity, data, stop)",
			 (int)(klen > 32 ? 32 : klen), k);
		return false;
	}
	if (*seen & (1u << which)) {
		snprintf(why, whysz, "\"%s\" given twice", names[which]);
		return false;
	}
	*seen |= 1u << which;
	long v = 0;
	switch (which) {
	case 0:
		if (parse_uint(val, vlen, 10000000, &v))
			for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++)
				if (bauds[i] == v) {
					b->baud = (int)v;
					return true;
				}
		snprintf(why, whysz, "baud must be 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
			 "115200 or 230400");
		return false;
	case 1:
		if (vlen == 1 && strchr("NEOneo", val[0])) {
			b->parity = (char)(val[0] & ~0x20);
			return true;
		}
		snprintf(why, whysz, "parity must be N, E or O");
		return false;
	case 2:
		if (parse_uint(val, vlen, 8, &v) && v >= 5) {
			b->data_bits = (int)v;
			return true;
		}
		snprintf(why, whysz, "data must be 5..8");
		return false;
	default:
		if (parse_uint(val, vlen, 2, &v) && v >= 1) {
			b->stop_bits = (int)v;
			return true;
		}
		snprintf(why, whysz, "stop must be 1 or 2");
		return false;
	}
}

static bool rtu_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz)
{
	size_t dlen = strcspn(s, "?");
	if (dlen < 2 || s[0] != '/' || strcspn(s, " \t") < dlen) {
		snprintf(why, whysz, "must be rtu:/dev/DEVICE[?baud=9600&parity=N&data=8&stop=1]");
		return false;
	}
	if (!(b->device = strndup(s, dlen))) {
		c->nomem = true;
		return false;
	}
	b->baud = 9600;
	b->parity = 'N';
	b->data_bits = 8;
	b->stop_bits = 1;
	unsigned seen = 0;
	for (const char *q = s[dlen] ? s + dlen + 1 : s + dlen; *q;) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		if (!eq) {
			snprintf(why, whysz, "parameter \"%.*s\" must be NAME=VALUE",
				 (int)(len > 32 ? 32 : len), q);
			return false;
		}
		if (!rtu_param(b, q, (size_t)(eq - q), eq + 1, len - (size_t)(eq - q) - 1, &seen,
			       why, whysz))
			return false;
		q += len + (q[len] == '&');
	}
	return true;
}

/* ---- sections ---- */

static void parse_agent(struct ctx *c, const cJSON *o, struct agent_cfg *a)
{
	static const char *const keys[] = { "id", "lab_code", "timezone", "state_dir",
		"internal_orgs", "user_ids", "user_id_key_file", NULL };
	static const char *const modes[] = { "plain", "hmac", "omit", NULL };
	const char *P = "agent";
	char p[PATH_BUF];

	check_keys(c, o, P, keys);
	a->id = id_member(c, o, P, "id");
	a->lab_code = xdup(c, str_member(c, o, P, "lab_code", true));
	const char *tz = str_member(c, o, P, "timezone", true);
	if (tz) {
		check_timezone(c, o, P, tz);
		a->timezone = xdup(c, tz);
	}
	if (present(o, "state_dir"))
		a->state_dir = file_member(c, o, P, "state_dir", false);
	else
		a->state_dir = xdup(c, DEFAULT_STATE_DIR);

	const cJSON *orgs = arr_member(c, o, P, "internal_orgs", false);
	size_t n = orgs ? (size_t)cJSON_GetArraySize(orgs) : 0;
	if (n && !(a->internal_orgs = calloc(n, sizeof(*a->internal_orgs))))
		c->nomem = true;
	if (orgs && a->internal_orgs) {
		size_t i = 0;
		for (const cJSON *e = orgs->child; e; e = e->next, i++) {
			const char *s = str_value(c, e, join_index(p, "agent.internal_orgs", i));
			if (s)
				a->internal_orgs[a->n_internal_orgs++] = xdup(c, s);
		}
	}

	int mode = USER_IDS_PLAIN;
	enum_member(c, o, P, "user_ids", false, modes, false, &mode);
	a->user_ids = (enum user_ids_mode)mode;
	a->user_id_key_file = file_member(c, o, P, "user_id_key_file", false);
	if (a->user_ids != USER_IDS_HMAC)
		return;
	if (!present(o, "user_id_key_file")) {
		if (!get(o, "user_id_key_file"))
			err_val(c, o, join(p, P, "user_id_key_file"),
				"missing required key (user_ids is \"hmac\")");
		else
			err_val(c, get(o, "user_id_key_file"), join(p, P, "user_id_key_file"),
				"must be a string (user_ids is \"hmac\")");
		return;
	}
	if (!a->user_id_key_file)
		return;
	size_t len = 0;
	char *key = read_secret(c, o, P, "user_id_key_file", a->user_id_key_file, &len);
	if (!key)
		return;
	/* The key is bytes; only the line end an editor adds is not part of it. */
	while (len && (key[len - 1] == '\n' || key[len - 1] == '\r'))
		key[--len] = '\0';
	if (len == 0) {
		err_val(c, get(o, "user_id_key_file"), join(p, P, "user_id_key_file"),
			"\"%s\" is empty", a->user_id_key_file);
		free(key);
		return;
	}
	a->user_id_key = (unsigned char *)key;
	a->user_id_key_len = len;
}

static void parse_platform(struct ctx *c, const cJSON *o, struct platform_cfg *pl)
{
	static const char *const keys[] = { "url", "token_file", "ca_file", "client_cert",
		"client_key", "upload_interval_s", "batch_max_records", "timeout_s", "proxy", NULL };
	const char *P = "platform";
	char p[PATH_BUF], host[256];

	pl->present = true;
	check_keys(c, o, P, keys);

	const char *url = str_member(c, o, P, "url", true);
	if (url) {
		bool https = false;
		const char *why = http_url(url, &https, host, sizeof(host));
		if (!why && !https && !is_loopback(host))
			why = "plain http:// is only allowed to a loopback address (use https://)";
		if (why) {
			err_val(c, get(o, "url"), join(p, P, "url"), "%s", why);
		} else if ((pl->url = xdup(c, url))) {
			size_t n = strlen(pl->url);
			while (n > 0 && pl->url[n - 1] == '/')
				pl->url[--n] = '\0';  /* feeds go to {url}/v1/feeds */
		}
	}

	pl->token_file = file_member(c, o, P, "token_file", true);
	size_t len = 0;
	char *tok = pl->token_file ? read_secret(c, o, P, "token_file", pl->token_file, &len) : NULL;
	if (tok) {
		char *s = tok, *e = tok + len;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
			e--;
		*e = '\0';
		bool clean = s < e;
		for (const char *q = s; q < e; q++)
			clean = clean && (unsigned char)*q > ' ' && (unsigned char)*q < 0x7f;
		if (s == e)
			err_val(c, get(o, "token_file"), join(p, P, "token_file"), "\"%s\" is empty",
				pl->token_file);
		else if (!clean)
			/* it goes into an HTTP header: a stray line break would split it */
			err_val(c, get(o, "token_file"), join(p, P, "token_file"),
				"the token in \"%s\" must be one line of printable ASCII without spaces",
				pl->token_file);
		else
			pl->token = xdup(c, s);
		explicit_bzero(tok, len);
		free(tok);
	}

	const char *files[] = { "ca_file", "client_cert", "client_key" };
	char **dest[] = { &pl->ca_file, &pl->client_cert, &pl->client_key };
	for (int i = 0; i < 3; i++) {
		*dest[i] = file_member(c, o, P, files[i], false);
		if (*dest[i] && !check_readable(c, o, P, files[i], *dest[i])) {
			free(*dest[i]);
			*dest[i] = NULL;
		}
	}
	if (present(o, "client_cert") != present(o, "client_key")) {
		const char *has = present(o, "client_cert") ? "client_cert" : "client_key";
		const char *lacks = present(o, "client_cert") ? "client_key" : "client_cert";
		err_key(c, get(o, has), join(p, P, has), "needs \"%s\" too", lacks);
	}
	pl->proxy = xdup(c, str_member(c, o, P, "proxy", false));
	int_member(c, o, P, "upload_interval_s", false, 1, 86400, &pl->upload_interval_s);
	int_member(c, o, P, "batch_max_records", false, 1, 100000, &pl->batch_max_records);
	int_member(c, o, P, "timeout_s", false, 1, 3600, &pl->timeout_s);
}

static void parse_nrii(struct ctx *c, const cJSON *o, struct nrii_cfg *n)
{
	static const char *const keys[] = { "url", "ins_code", "insecure_http", "codes", "defaults",
		NULL };
	static const char *const dkeys[] = { "service_way", "service_direction", "subject_income",
		"subject_area", "comment", "service_content", NULL };
	static const char *const codes[] = { "int", "labels", NULL };
	const char *P = "nrii";
	char p[PATH_BUF], host[256];

	n->present = true;
	check_keys(c, o, P, keys);
	bool_member(c, o, P, "insecure_http", &n->insecure_http);
	const char *url = str_member(c, o, P, "url", true);
	if (url) {
		bool https = false;
		const char *why = http_url(url, &https, host, sizeof(host));
		if (!why && !https && !n->insecure_http)
			why = "plain http:// needs \"insecure_http\": true";
		if (why)
			err_val(c, get(o, "url"), join(p, P, "url"), "%s", why);
		else
			n->url = xdup(c, url);
	}
	n->ins_code = xdup(c, str_member(c, o, P, "ins_code", true));
	int k = NRII_CODES_INT;
	enum_member(c, o, P, "codes", false, codes, false, &k);
	n->codes = (enum nrii_codes)k;

	const cJSON *d = obj_member(c, o, P, "defaults", false);
	const char *D = "nrii.defaults";
	if (d)
		check_keys(c, d, D, dkeys);
	/* The SPEC example's values: what a lab typically reports. */
	const char *skeys[] = { "service_way", "subject_income", "subject_area", "comment",
		"service_content" };
	const char *sdefs[] = { "占用共享", "其他", "化学", "基本满意", "仪器测试" };
	char **dest[] = { &n->service_way, &n->subject_income, &n->subject_area, &n->comment,
		&n->service_content };
	for (int i = 0; i < 5; i++) {
		const char *s = d ? str_member(c, d, D, skeys[i], false) : NULL;
		*dest[i] = xdup(c, s ? s : sdefs[i]);
	}
	n->service_direction = 135;
	if (d)
		int_member(c, d, D, "service_direction", false, 135, 138, &n->service_direction);
}

static void parse_buffer(struct ctx *c, const cJSON *o, struct buffer_cfg *b)
{
	static const char *const keys[] = { "max_mb", "keep_acked_days", NULL };
	int mb = (int)b->max_mb;
	check_keys(c, o, "buffer", keys);
	if (int_member(c, o, "buffer", "max_mb", false, 1, 1048576, &mb))
		b->max_mb = mb;
	int_member(c, o, "buffer", "keep_acked_days", false, 1, 36500, &b->keep_acked_days);
}

static void parse_bus(struct ctx *c, const cJSON *o, const char *P, struct bus_cfg *b)
{
	static const char *const keys[] = { "id", "url", "timeout_ms", "gap_ms", NULL };
	char p[PATH_BUF], why[160];

	check_keys(c, o, P, keys);
	b->id = id_member(c, o, P, "id");
	b->timeout_ms = 500;
	const char *url = str_member(c, o, P, "url", true);
	if (url) {
		bool ok;
		if (strncmp(url, "tcp://", 6) == 0) {
			b->kind = BUS_TCP;
			ok = tcp_url(c, b, url + 6, why, sizeof(why));
		} else if (strncmp(url, "rtu:", 4) == 0) {
			b->kind = BUS_RTU;
			ok = rtu_url(c, b, url + 4, why, sizeof(why));
		} else {
			ok = false;
			snprintf(why, sizeof(why), "must be tcp://HOST[:PORT] or rtu:/dev/DEVICE[?baud=…"
				 "&parity=…&data=…&stop=…]");
		}
		if (ok)
			b->url = xdup(c, url);
		else if (!c->nomem)
			err_val(c, get(o, "url"), join(p, P, "url"), "%s", why);
	}
	int_member(c, o, P, "timeout_ms", false, 1, 60000, &b->timeout_ms);
	/* RS-485 devices need a silence between frames; a TCP gateway does its own. */
	b->gap_ms = b->kind == BUS_RTU ? 5 : 0;
	int_member(c, o, P, "gap_ms", false, 0, 10000, &b->gap_ms);
}

enum point_role { ROLE_COUNTER, ROLE_IN_USE };

static void parse_point(struct ctx *c, const cJSON *o, const char *P, enum point_role role,
			struct mb_point *pt)
{
	static const char *const keys[] = { "table", "address", "type", "word_order", "scale",
		"above", NULL };
	static const char *const tables[] = { "holding", "input", "coil", "discrete", NULL };
	static const char *const types[] = { "u16", "u32", "i32", "u64", "f32", NULL };
	static const char *const orders[] = { "big", "little", NULL };
	static const int width[] = { [MB_TYPE_U16] = 1, [MB_TYPE_U32] = 2, [MB_TYPE_I32] = 2,
		[MB_TYPE_U64] = 4, [MB_TYPE_F32] = 2, [MB_TYPE_BIT] = 1 };
	char p[PATH_BUF];

	check_keys(c, o, P, keys);
	pt->present = true;
	pt->type = MB_TYPE_U16;
	pt->word_order = MB_WORD_BIG;
	pt->scale = 1.0;

	int table = -1, type = MB_TYPE_U16, order = MB_WORD_BIG, address = -1;
	bool have_table = enum_member(c, o, P, "table", true, tables, false, &table);
	bool bit = have_table && (table == MB_TABLE_COIL || table == MB_TABLE_DISCRETE);
	if (have_table)
		pt->table = (enum mb_table)table;
	if (bit && role == ROLE_COUNTER) {
		err_val(c, get(o, "table"), join(p, P, "table"),
			"a counter must be a register (\"holding\" or \"input\")");
		bit = false;
	}

	bool have_type = true;
	if (bit && get(o, "type")) {
		err_key(c, get(o, "type"), join(p, P, "type"),
			"not allowed for a %s (coils and discretes are bits)", tables[table]);
	} else {
		have_type = !present(o, "type") ||
			    enum_member(c, o, P, "type", false, types, false, &type);
	}
	pt->type = bit ? MB_TYPE_BIT : (enum mb_type)type;

	if (int_member(c, o, P, "address", true, 0, 65535, &address) && have_type && !bit &&
	    address + width[pt->type] - 1 > 65535)
		err_val(c, get(o, "address"), join(p, P, "address"),
			"a %s at %d runs past register 65535", types[pt->type], address);
	pt->address = (uint16_t)(address < 0 ? 0 : address);

	/* Only meaningful for multi-register types, but harmless elsewhere. */
	enum_member(c, o, P, "word_order", false, orders, false, &order);
	pt->word_order = (enum mb_word_order)order;
	num_member(c, o, P, "scale", false, 0, true, INFINITY, "must be greater than 0",
		   &pt->scale);

	const cJSON *above = get(o, "above");
	if (role == ROLE_COUNTER && above) {
		err_key(c, above, join(p, P, "above"), "only for \"in_use\" on a register");
	} else if (role == ROLE_IN_USE && have_table && bit && above) {
		err_key(c, above, join(p, P, "above"), "not allowed for a %s (a bit is in use when set)",
			tables[table]);
	} else if (role == ROLE_IN_USE && have_table && !bit) {
		pt->has_above = num_member(c, o, P, "above", true, -INFINITY, false, INFINITY,
					   "must be a finite number", &pt->above) != NULL;
	}
}

static void parse_modbus(struct ctx *c, const cJSON *o, const char *P, const struct config *cfg,
			 struct modbus_cfg *m)
{
	static const char *const keys[] = { "bus", "unit", "interval_s", "run_counter",
		"samples_counter", "in_use", NULL };
	static const char *const points[] = { "run_counter", "samples_counter", "in_use" };
	struct mb_point *dest[] = { &m->run_counter, &m->samples_counter, &m->in_use };
	char p[PATH_BUF];

	m->present = true;
	check_keys(c, o, P, keys);
	const char *bus = str_member(c, o, P, "bus", true);
	if (bus) {
		m->bus = xdup(c, bus);
		size_t i = 0;
		while (i < cfg->n_buses && !(cfg->buses[i].id && strcmp(cfg->buses[i].id, bus) == 0))
			i++;
		if (i < cfg->n_buses)
			m->bus_index = i;
		else
			err_val(c, get(o, "bus"), join(p, P, "bus"), "unknown bus \"%.64s\"%s", bus,
				cfg->n_buses ? "" : " (no \"buses\" are configured)");
	}
	int_member(c, o, P, "unit", true, 1, 247, &m->unit);
	int_member(c, o, P, "interval_s", false, 1, 86400, &m->interval_s);

	bool any = false;
	for (int i = 0; i < 3; i++) {
		const cJSON *pt = obj_member(c, o, P, points[i], false);
		any = any || present(o, points[i]);
		if (pt)
			parse_point(c, pt, join(p, P, points[i]), i == 2 ? ROLE_IN_USE : ROLE_COUNTER,
				    dest[i]);
	}
	if (!any)
		err_val(c, o, P, "needs at least one of \"run_counter\", \"samples_counter\" or "
			"\"in_use\"");
}

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
		join(p, P, m->string);
		if (f == SF__COUNT) {
			err_unknown(c, m, P, allowed);
			continue;
		}
		if (!in_list(m->string, allowed)) {
			err_key(c, m, p, kind == FIELDS_EVENT ?
				"not used by \"events\" logs (a session's times come from \"time\")" :
				"only used by \"events\" logs");
			continue;
		}
		if (fm->name[f] || fm->group[f])
			continue;  /* a duplicate key, reported by jsonc */
		if (kind == FIELDS_NAMES) {
			fm->name[f] = xdup(c, str_value(c, m, p));
			continue;
		}
		if (!is_integer(m)) {
			err_val(c, m, p, "must be an integer");
			continue;
		}
		double g = m->valuedouble;
		if (g < 1 || g > (re ? (double)re->re_nsub : INT_MAX)) {
			if (!re)
				err_val(c, m, p, "must be a group number (1 or more)");
			else if (re->re_nsub == 0)
				err_val(c, m, p, "the pattern has no groups");
			else if (re->re_nsub == 1)
				err_val(c, m, p, "must be 1: the pattern has 1 group");
			else
				err_val(c, m, p, "must be 1..%zu: the pattern has %zu groups",
					re->re_nsub, re->re_nsub);
			continue;
		}
		fm->group[f] = (int)g;
	}

	if (kind == FIELDS_EVENT) {
		if (!get(o, "time"))
			err_missing(c, o, P, "time");
		return;
	}
	if (!get(o, "start"))
		err_missing(c, o, P, "start");
	if (!get(o, "end") && !get(o, "duration"))
		err_val(c, o, join(p, P, "end"), "missing required key (or \"duration\")");
	else if (get(o, "end") && get(o, "duration"))
		err_key(c, get(o, "duration"), join(p, P, "duration"),
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
	const char *s = str_member(c, o, P, key, true);
	if (!s)
		return false;
	join(p, P, key);
	if (strlen(s) > PATTERN_MAX_BYTES) {
		err_val(c, get(o, key), p, "longer than %d bytes", PATTERN_MAX_BYTES);
		return false;
	}
	if (regex_weight(s) > PATTERN_MAX_WEIGHT) {
		err_val(c, get(o, key), p, "too complex: its repeats expand to over %d elements",
			PATTERN_MAX_WEIGHT);
		return false;
	}
	if (!(*pattern = xdup(c, s)))
		return false;
	int rc = regcomp(re, s, REG_EXTENDED);
	if (rc != 0) {
		regerror(rc, re, why, sizeof(why));
		err_val(c, get(o, key), p, "invalid regular expression: %s", why);
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
			err_val(c, v, path, "ends with an incomplete conversion \"%s\"",
				*s == '%' ? "%" : s - 1);
			return;
		}
		/* One byte at a time: a multi-byte character after "%" is quoted as its first byte. */
		if (!strchr(allowed, s[1]) || (unsigned char)s[1] >= 0x80) {
			err_val(c, v, path, "\"%%%s%c\" is not a strptime(3) conversion",
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
		err_val(c, v, path, "gives no date (it needs a year, a month and a day, e.g. \"%%Y-%%m-%%d "
			"%%H:%%M:%%S\")");
}

static void parse_log(struct ctx *c, const cJSON *o, const char *P, struct log_cfg *l)
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

	check_keys(c, o, P, keys);
	l->path = file_member(c, o, P, "path", true);
	int fmt = -1, enc = 0;
	bool have_fmt = enum_member(c, o, P, "format", true, formats, false, &fmt);
	if (have_fmt)
		l->format = (enum log_format)fmt;
	enum_member(c, o, P, "encoding", false, encodings, true, &enc);
	l->encoding = enc >= 2 ? LOG_ENC_GBK : LOG_ENC_UTF8;
	l->time_format = xdup(c, str_member(c, o, P, "time_format", false));
	if (l->time_format)
		check_time_format(c, get(o, "time_format"), join(p, P, "time_format"), l->time_format);
	bool_member(c, o, P, "follow_symlinks", &l->follow_symlinks);
	l->max_session_h = 12;
	num_member(c, o, P, "max_session_h", false, 0, true, 168,
		   "must be greater than 0 and at most 168", &l->max_session_h);
	if (!have_fmt)
		return;  /* which keys belong depends on the format */

	for (const cJSON *m = o->child; m; m = m->next)
		if (in_list(m->string, format_keys) && !in_list(m->string, uses[fmt]))
			err_key(c, m, join(p, P, m->string), "not used by format \"%s\"", formats[fmt]);

	const cJSON *f;
	switch (l->format) {
	case LOG_FMT_CSV:
	case LOG_FMT_JSONL:
		if ((f = obj_member(c, o, P, "fields", true)))
			parse_fields(c, f, join(p, P, "fields"), FIELDS_NAMES, NULL, &l->fields);
		break;
	case LOG_FMT_REGEX:
		compile(c, o, P, "pattern", &l->pattern, &l->re, &l->re_compiled);
		if ((f = obj_member(c, o, P, "fields", true)))
			parse_fields(c, f, join(p, P, "fields"), FIELDS_GROUPS,
				     l->re_compiled ? &l->re : NULL, &l->fields);
		break;
	case LOG_FMT_EVENTS:
		compile(c, o, P, "start_pattern", &l->start_pattern, &l->start_re,
			&l->start_re_compiled);
		compile(c, o, P, "end_pattern", &l->end_pattern, &l->end_re, &l->end_re_compiled);
		if ((f = obj_member(c, o, P, "start_fields", true)))
			parse_fields(c, f, join(p, P, "start_fields"), FIELDS_EVENT,
				     l->start_re_compiled ? &l->start_re : NULL, &l->start_fields);
		if ((f = obj_member(c, o, P, "end_fields", true)))
			parse_fields(c, f, join(p, P, "end_fields"), FIELDS_EVENT,
				     l->end_re_compiled ? &l->end_re : NULL, &l->end_fields);
		break;
	}
}

static void parse_profile(struct ctx *c, const cJSON *o, const char *P, struct instrument_cfg *in)
{
	char p[PATH_BUF];
	for (const cJSON *m = o->child; m; m = m->next)
		if (!cJSON_IsString(m) && !cJSON_IsNumber(m))
			err_val(c, m, join(p, P, m->string), "must be a string or a number");
	if (!(in->nrii_profile = cJSON_Duplicate(o, true)))
		c->nomem = true;
}

static void parse_instrument(struct ctx *c, const cJSON *o, const char *P, const struct config *cfg,
			     struct instrument_cfg *in)
{
	static const char *const keys[] = { "id", "name", "inner_id", "worth_wan", "rated_hours",
		"modbus", "logs", "nrii_profile", NULL };
	char p[PATH_BUF], q[PATH_BUF];

	check_keys(c, o, P, keys);
	in->id = id_member(c, o, P, "id");
	const char *name = str_member(c, o, P, "name", false);
	in->name = xdup(c, name ? name : in->id);
	in->inner_id = xdup(c, str_member(c, o, P, "inner_id", false));
	if (c->nrii && !present(o, "inner_id"))
		err_val(c, o, join(p, P, "inner_id"), "missing required key (\"nrii\" is configured)");
	in->has_worth = num_member(c, o, P, "worth_wan", false, 0, false, INFINITY,
				   "must be 0 or more", &in->worth_wan) != NULL;
	in->rated_hours = 1400;
	in->modbus.interval_s = 10;
	int_member(c, o, P, "rated_hours", false, 1, 8784, &in->rated_hours);

	const cJSON *m = obj_member(c, o, P, "modbus", false);
	if (m)
		parse_modbus(c, m, join(p, P, "modbus"), cfg, &in->modbus);

	const cJSON *logs = arr_member(c, o, P, "logs", false);
	size_t n = logs ? (size_t)cJSON_GetArraySize(logs) : 0;
	if (n && !(in->logs = calloc(n, sizeof(*in->logs))))
		c->nomem = true;
	if (logs && in->logs) {
		join(p, P, "logs");
		for (const cJSON *e = logs->child; e; e = e->next, in->n_logs++) {
			join_index(q, p, in->n_logs);
			if (!cJSON_IsObject(e))
				err_val(c, e, q, "must be an object");
			else
				parse_log(c, e, q, &in->logs[in->n_logs]);
		}
	}
	/* a "logs" of the wrong type is reported already */
	if (!present(o, "modbus") && (!present(o, "logs") || (logs && n == 0)))
		err_val(c, o, P, "needs \"modbus\" or \"logs\"");

	const cJSON *prof = obj_member(c, o, P, "nrii_profile", false);
	if (prof)
		parse_profile(c, prof, join(p, P, "nrii_profile"), in);
}

/* Finds repeated ids among n entries; a sort keeps it fast for generated configs. */
struct id_ref { const char *id; size_t index; };

static int id_ref_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int r = strcmp(x->id, y->id);
	return r ? r : (x->index > y->index) - (x->index < y->index);
}

static void check_unique(struct ctx *c, const cJSON *arr, const char *arr_path, const char *what,
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
		join_index(elem, arr_path, refs[k].index);
		join_index(first, arr_path, refs[f].index);
		const cJSON *obj = cJSON_GetArrayItem(arr, (int)refs[k].index);
		err_val(c, get(obj, "id"), join(p, elem, "id"), "duplicate %s id \"%s\" (first in %s)",
			what, refs[k].id, first);
	}
}

static void parse_buses(struct ctx *c, const cJSON *arr, struct config *cfg)
{
	char p[PATH_BUF];
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0)
		return;
	cfg->buses = calloc(n, sizeof(*cfg->buses));
	struct id_ref *refs = calloc(n, sizeof(*refs));
	size_t nrefs = 0;
	if (!cfg->buses || !refs) {
		c->nomem = true;
		free(refs);
		return;
	}
	for (const cJSON *e = arr->child; e; e = e->next, cfg->n_buses++) {
		struct bus_cfg *b = &cfg->buses[cfg->n_buses];
		join_index(p, "buses", cfg->n_buses);
		if (!cJSON_IsObject(e)) {
			err_val(c, e, p, "must be an object");
			continue;
		}
		parse_bus(c, e, p, b);
		if (b->id)
			refs[nrefs++] = (struct id_ref){ b->id, cfg->n_buses };
	}
	check_unique(c, arr, "buses", "bus", refs, nrefs);
	free(refs);
}

static void parse_instruments(struct ctx *c, const cJSON *arr, struct config *cfg)
{
	char p[PATH_BUF];
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0) {
		err_val(c, arr, "instruments", "must list at least one instrument");
		return;
	}
	cfg->instruments = calloc(n, sizeof(*cfg->instruments));
	struct id_ref *refs = calloc(n, sizeof(*refs));
	size_t nrefs = 0;
	if (!cfg->instruments || !refs) {
		c->nomem = true;
		free(refs);
		return;
	}
	for (const cJSON *e = arr->child; e; e = e->next, cfg->n_instruments++) {
		struct instrument_cfg *in = &cfg->instruments[cfg->n_instruments];
		join_index(p, "instruments", cfg->n_instruments);
		if (!cJSON_IsObject(e)) {
			err_val(c, e, p, "must be an object");
			continue;
		}
		parse_instrument(c, e, p, cfg, in);
		if (in->id)
			refs[nrefs++] = (struct id_ref){ in->id, cfg->n_instruments };
	}
	check_unique(c, arr, "instruments", "instrument", refs, nrefs);
	free(refs);
}

static void parse_root(struct ctx *c, const cJSON *root, struct config *cfg)
{
	static const char *const keys[] = { "agent", "platform", "nrii", "buffer", "buses",
		"instruments", NULL };
	const cJSON *v;

	if (!cJSON_IsObject(root)) {
		err_val(c, root, ROOT_PATH, "must be an object");
		return;
	}
	check_keys(c, root, "", keys);
	c->nrii = present(root, "nrii");

	if ((v = obj_member(c, root, "", "agent", true)))
		parse_agent(c, v, &cfg->agent);
	if ((v = obj_member(c, root, "", "platform", false)))
		parse_platform(c, v, &cfg->platform);
	if ((v = obj_member(c, root, "", "nrii", false)))
		parse_nrii(c, v, &cfg->nrii);
	if (!present(root, "platform") && !present(root, "nrii"))
		err_val(c, root, "platform", "missing required key (or \"nrii\")");
	if ((v = obj_member(c, root, "", "buffer", false)))
		parse_buffer(c, v, &cfg->buffer);
	if ((v = arr_member(c, root, "", "buses", false)))
		parse_buses(c, v, cfg);
	if ((v = arr_member(c, root, "", "instruments", true)))
		parse_instruments(c, v, cfg);
}

/* ---- the interface ---- */

static void set_defaults(struct config *cfg)
{
	cfg->platform.upload_interval_s = 60;
	cfg->platform.batch_max_records = 1000;
	cfg->platform.timeout_s = 30;
	cfg->buffer.max_mb = 1024;
	cfg->buffer.keep_acked_days = 400;
	cfg->nrii.service_direction = 135;
	/* instrument, bus and log defaults are set as each one is read */
}

static int parse_with_base(const char *name, const char *base_dir, const char *text, size_t len,
			   struct config **out, struct config_errors *errs)
{
	struct ctx c = { .name = name, .base_dir = base_dir };
	struct jsonc_doc *doc = NULL;
	struct config *cfg = NULL;
	int rc;

	*out = NULL;
	if ((rc = jsonc_parse(text, len, &doc)) < 0)
		return rc;
	c.doc = doc;
	if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(name))) {
		rc = -ENOMEM;
		goto done;
	}
	set_defaults(cfg);

	for (size_t i = 0; i < jsonc_n_problems(doc); i++) {
		const struct jsonc_problem *pr = jsonc_problem(doc, i);
		err_at(&c, pr->off, NULL, "%s", pr->msg);
	}
	c.dropped += jsonc_n_dropped(doc);
	if (jsonc_root(doc))
		parse_root(&c, jsonc_root(doc), cfg);
	rc = c.nomem ? -ENOMEM : c.n ? -EINVAL : 0;

done:
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), problem_cmp);
	char *more = c.dropped ? strdupf("%s: %zu more problems not shown", name, c.dropped)
			       : NULL;
	char **nm = errs && c.n ? reallocarray(errs->msg, errs->n + c.n + (more != NULL),
					       sizeof(*nm)) : NULL;
	if (nm)
		errs->msg = nm;
	for (size_t i = 0; i < c.n; i++) {
		if (nm)
			errs->msg[errs->n++] = c.v[i].msg;
		else
			free(c.v[i].msg);
	}
	if (nm && more)
		errs->msg[errs->n++] = more;
	else
		free(more);
	free(c.v);
	jsonc_free(doc);
	if (rc == 0)
		*out = cfg;
	else
		config_free(cfg);
	return rc;
}

int config_parse(const char *name, const char *text, size_t len, struct config **out,
		 struct config_errors *errs)
{
	return parse_with_base(name, NULL, text, len, out, errs);
}

/* One message for a file that can't be read, so that `check` can print errs alone. */
static int file_error(const char *path, int err, const char *why, struct config_errors *errs)
{
	char *msg = errs ? strdupf("%s: %s", path, why) : NULL;
	char **nm = msg ? reallocarray(errs->msg, errs->n + 1, sizeof(*nm)) : NULL;
	if (!nm) {
		free(msg);
		return -err;
	}
	errs->msg = nm;
	errs->msg[errs->n++] = msg;
	return -err;
}

/* The absolute folder of the config file; NULL only when out of memory. */
static char *base_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dl = slash ? (size_t)(slash - path) : 0;
	char cwd[PATH_MAX];

	if (slash == path)
		return strdup("/");
	if (path[0] == '/')
		return strndup(path, dl);
	if (!getcwd(cwd, sizeof(cwd)))
		return slash ? strndup(path, dl) : strdup(".");
	size_t sz = strlen(cwd) + 1 + dl + 1;
	char *base = malloc(sz);
	if (base)
		snprintf(base, sz, "%s%s%.*s", cwd, dl && strcmp(cwd, "/") != 0 ? "/" : "", (int)dl,
			 path);
	return base;
}

int config_load(const char *path, struct config **out, struct config_errors *errs)
{
	size_t n = 0;
	char *text = NULL;

	*out = NULL;
	/* open_regular: non-blocking, so a FIFO named by mistake is refused instead of waited on. */
	struct stat st;
	int fd = open_regular(path, &st);
	if (fd == -EINVAL)
		return file_error(path, EINVAL, "not a regular file", errs);
	if (fd < 0) {
		errno = -fd;
	} else if (st.st_size > (off_t)CONFIG_MAX_BYTES) {
		close(fd);
		errno = EFBIG;
	} else {
		text = fileio_read_all(fd, CONFIG_MAX_BYTES, &n);
		int err = errno;
		close(fd);
		errno = err;
	}
	if (!text) {
		int err = errno;
		if (err == ENOMEM)
			return -ENOMEM;
		return file_error(path, err, err == EFBIG ? "larger than 4 MiB: not a configuration file"
							  : strerror(err), errs);
	}

	char *base = base_dir_of(path);
	int rc = base ? parse_with_base(path, base, text, n, out, errs) : -ENOMEM;
	free(base);
	free(text);
	return rc;
}

static void free_fields(struct field_map *fm)
{
	for (int i = 0; i < SF__COUNT; i++)
		free(fm->name[i]);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	struct agent_cfg *a = &cfg->agent;
	free(a->id);
	free(a->lab_code);
	free(a->timezone);
	free(a->state_dir);
	for (size_t i = 0; i < a->n_internal_orgs; i++)
		free(a->internal_orgs[i]);
	free(a->internal_orgs);
	free(a->user_id_key_file);
	if (a->user_id_key)
		explicit_bzero(a->user_id_key, a->user_id_key_len);
	free(a->user_id_key);

	struct platform_cfg *p = &cfg->platform;
	free(p->url);
	free(p->token_file);
	if (p->token)
		explicit_bzero(p->token, strlen(p->token));
	free(p->token);
	free(p->ca_file);
	free(p->client_cert);
	free(p->client_key);
	free(p->proxy);

	struct nrii_cfg *n = &cfg->nrii;
	free(n->url);
	free(n->ins_code);
	free(n->service_way);
	free(n->subject_income);
	free(n->subject_area);
	free(n->comment);
	free(n->service_content);

	for (size_t i = 0; i < cfg->n_buses; i++) {
		free(cfg->buses[i].id);
		free(cfg->buses[i].url);
		free(cfg->buses[i].host);
		free(cfg->buses[i].device);
	}
	free(cfg->buses);

	for (size_t i = 0; i < cfg->n_instruments; i++) {
		struct instrument_cfg *in = &cfg->instruments[i];
		free(in->id);
		free(in->name);
		free(in->inner_id);
		free(in->modbus.bus);
		for (size_t j = 0; j < in->n_logs; j++) {
			struct log_cfg *l = &in->logs[j];
			free(l->path);
			free(l->time_format);
			free(l->pattern);
			free(l->start_pattern);
			free(l->end_pattern);
			if (l->re_compiled)
				regfree(&l->re);
			if (l->start_re_compiled)
				regfree(&l->start_re);
			if (l->end_re_compiled)
				regfree(&l->end_re);
			free_fields(&l->fields);
			free_fields(&l->start_fields);
			free_fields(&l->end_fields);
		}
		free(in->logs);
		cJSON_Delete(in->nrii_profile);
	}
	free(cfg->instruments);
	free(cfg->path);
	free(cfg);
}

void config_errors_clear(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

size_t config_secret_paths(const struct config *cfg, const char *out[CONFIG_SECRETS_MAX])
{
	const char *all[CONFIG_SECRETS_MAX] = { cfg->platform.token_file, cfg->agent.user_id_key_file,
						cfg->platform.client_key };
	size_t n = 0;
	for (size_t i = 0; i < CONFIG_SECRETS_MAX; i++)
		if (all[i])
			out[n++] = all[i];
	return n;
}

const struct instrument_cfg *config_instrument(const struct config *cfg, const char *id)
{
	for (size_t i = 0; cfg && id && i < cfg->n_instruments; i++)
		if (cfg->instruments[i].id && strcmp(cfg->instruments[i].id, id) == 0)
			return &cfg->instruments[i];
	return NULL;
}
