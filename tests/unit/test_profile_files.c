/* test_profile_files.c — the meter profiles as data: every agent/conf/profiles/NAME.json is well
 * formed and has a simulator map tests/sim/meters/NAME.script whose `# expect` lines cover its
 * points, and the map's raw values, decoded with the profile's own type and scale, give those
 * expected readings. No simulator and no agent code: this checks the files against each other;
 * test_profiles.c polls the simulator through the real driver. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_DIR "agent/conf/profiles"
#define SCRIPT_DIR  "tests/sim/meters"
#define MAX_FILES   64
#define NAME_MAX_LEN 64

/* The points a profile may have, the expect key the script gives for each, whether required. */
static const struct point_kind {
	const char *point;
	const char *expect;
	bool required;
} KINDS[] = {
	{ "power", "power_w", true },
	{ "energy", "energy_kwh", true },
	{ "voltage", "voltage_v", false },
	{ "frequency", "frequency_hz", false },
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

struct point {
	bool present;
	char table[16], type[8], order[8];
	long address;
	double scale;
};

struct expect {
	bool present;
	double value;
};

struct setline {
	char table[16], type[8], order[8];
	long address;
	char value[64];
};

#define MAX_SETS 32
struct script {
	struct expect expects[NKINDS];
	struct setline sets[MAX_SETS];
	size_t nsets;
};

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *n = realloc(buf, cap);
			if (!n) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = n;
		}
		size_t got = fread(buf + len, 1, 4096, f);
		len += got;
		if (got < 4096)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int why_set(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static unsigned type_words(const char *type)
{
	if (!strcmp(type, "u16"))
		return 1;
	if (!strcmp(type, "u32") || !strcmp(type, "i32") || !strcmp(type, "f32"))
		return 2;
	if (!strcmp(type, "u64"))
		return 4;
	return 0;
}

static int copy_str(const cJSON *o, const char *key, char *dst, size_t n, const char *ctx, char *why,
		    size_t wn)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return why_set(why, wn, "%s.%s: missing or not a non-empty string", ctx, key);
	if (strlen(v->valuestring) >= n)
		return why_set(why, wn, "%s.%s: too long", ctx, key);
	snprintf(dst, n, "%s", v->valuestring);
	return 0;
}

/* One point object: exactly table/address/type/word_order/scale, with SPEC §3's values. */
static int parse_point(const cJSON *o, const char *ctx, struct point *p, char *why, size_t wn)
{
	if (!cJSON_IsObject(o))
		return why_set(why, wn, "%s: not an object", ctx);
	for (const cJSON *k = o->child; k; k = k->next)
		if (strcmp(k->string, "table") && strcmp(k->string, "address") && strcmp(k->string, "type") &&
		    strcmp(k->string, "word_order") && strcmp(k->string, "scale"))
			return why_set(why, wn, "%s: unknown key \"%s\"", ctx, k->string);
	if (copy_str(o, "table", p->table, sizeof p->table, ctx, why, wn) ||
	    copy_str(o, "type", p->type, sizeof p->type, ctx, why, wn) ||
	    copy_str(o, "word_order", p->order, sizeof p->order, ctx, why, wn))
		return -1;
	if (strcmp(p->table, "holding") && strcmp(p->table, "input"))
		return why_set(why, wn, "%s.table: \"%s\" (a meter reading is a holding or input register)", ctx,
			       p->table);
	unsigned words = type_words(p->type);
	if (!words)
		return why_set(why, wn, "%s.type: \"%s\" is not one of SPEC's u16 u32 i32 u64 f32", ctx, p->type);
	if (strcmp(p->order, "big") && strcmp(p->order, "little"))
		return why_set(why, wn, "%s.word_order: \"%s\"", ctx, p->order);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "address");
	if (!cJSON_IsNumber(a) || a->valuedouble != floor(a->valuedouble) || a->valuedouble < 0 ||
	    a->valuedouble + words - 1 > 65535)
		return why_set(why, wn, "%s.address: not an integer 0..65535 (with its %u registers)", ctx, words);
	p->address = (long)a->valuedouble;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "scale");
	if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble) || s->valuedouble <= 0)
		return why_set(why, wn, "%s.scale: missing or not a positive number", ctx);
	p->scale = s->valuedouble;
	p->present = true;
	return 0;
}

static int parse_profile(const char *name, const char *text, struct point pts[NKINDS], char *why, size_t wn)
{
	char *copy = strdup(text);
	if (!copy)
		return why_set(why, wn, "out of memory");
	cJSON_Minify(copy); /* drops the // and block comments the config's JSONC reader allows */
	cJSON *root = cJSON_Parse(copy);
	free(copy);
	int rc = -1;
	if (!cJSON_IsObject(root)) {
		why_set(why, wn, "not a JSON object");
		goto out;
	}
	for (const cJSON *k = root->child; k; k = k->next)
		if (strcmp(k->string, "name") && strcmp(k->string, "model") && strcmp(k->string, "phases") &&
		    strcmp(k->string, "source") && strcmp(k->string, "defaults") && strcmp(k->string, "points")) {
			why_set(why, wn, "unknown key \"%s\"", k->string);
			goto out;
		}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, name)) {
		why_set(why, wn, "name: must be \"%s\", the file's name", name);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (!cJSON_IsString(v) || strlen(v->valuestring) < 4) {
		why_set(why, wn, "model: missing");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "phases");
	if (!cJSON_IsNumber(v) || (v->valuedouble != 1 && v->valuedouble != 3)) {
		why_set(why, wn, "phases: must be 1 or 3");
		goto out;
	}
	/* A source names a document or a repository and file: a word or two is not one. */
	v = cJSON_GetObjectItemCaseSensitive(root, "source");
	if (!cJSON_IsString(v) || strlen(v->valuestring) < 40) {
		why_set(why, wn, "source: missing or too short to name a public source");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "defaults");
	if (v) {
		const cJSON *baud = cJSON_GetObjectItemCaseSensitive(v, "baud");
		const cJSON *par = cJSON_GetObjectItemCaseSensitive(v, "parity");
		if (!cJSON_IsObject(v) || !cJSON_IsNumber(baud) || baud->valuedouble < 1200 ||
		    !cJSON_IsString(par) ||
		    (strcmp(par->valuestring, "N") && strcmp(par->valuestring, "E") && strcmp(par->valuestring, "O"))) {
			why_set(why, wn, "defaults: want {\"baud\": N, \"parity\": \"N\"|\"E\"|\"O\"}");
			goto out;
		}
	}
	const cJSON *points = cJSON_GetObjectItemCaseSensitive(root, "points");
	if (!cJSON_IsObject(points)) {
		why_set(why, wn, "points: missing");
		goto out;
	}
	for (const cJSON *k = points->child; k; k = k->next) {
		size_t i;
		for (i = 0; i < NKINDS; i++)
			if (!strcmp(k->string, KINDS[i].point))
				break;
		if (i == NKINDS) {
			why_set(why, wn, "points: unknown point \"%s\"", k->string);
			goto out;
		}
	}
	for (size_t i = 0; i < NKINDS; i++) {
		char ctx[64];
		snprintf(ctx, sizeof ctx, "points.%s", KINDS[i].point);
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(points, KINDS[i].point);
		memset(&pts[i], 0, sizeof pts[i]);
		if (!o) {
			if (KINDS[i].required) {
				why_set(why, wn, "%s: required", ctx);
				goto out;
			}
			continue;
		}
		if (parse_point(o, ctx, &pts[i], why, wn))
			goto out;
	}
	/* Two points never share a register. */
	for (size_t i = 0; i < NKINDS; i++)
		for (size_t j = i + 1; j < NKINDS; j++) {
			const struct point *a = &pts[i], *b = &pts[j];
			if (!a->present || !b->present || strcmp(a->table, b->table))
				continue;
			if (a->address < b->address + (long)type_words(b->type) &&
			    b->address < a->address + (long)type_words(a->type)) {
				why_set(why, wn, "points.%s and points.%s overlap", KINDS[i].point, KINDS[j].point);
				goto out;
			}
		}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

/* The script: `# expect KEY VALUE` comments and `set 0 1 TABLE ADDR TYPE ORDER VALUE` lines. */
static int parse_script(const char *text, struct script *sc, char *why, size_t wn)
{
	memset(sc, 0, sizeof *sc);
	unsigned lineno = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[512];
		lineno++;
		if (len >= sizeof buf)
			return why_set(why, wn, "line %u: too long", lineno);
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = nl ? nl + 1 : line + len;

		char key[32], val[64], extra[8];
		if (sscanf(buf, "# expect %31s %63s %7s", key, val, extra) >= 2) {
			size_t i;
			for (i = 0; i < NKINDS; i++)
				if (!strcmp(key, KINDS[i].expect))
					break;
			if (i == NKINDS)
				return why_set(why, wn, "line %u: unknown expect \"%s\"", lineno, key);
			if (sscanf(buf, "# expect %31s %63s %7s", key, val, extra) == 3)
				return why_set(why, wn, "line %u: text after the value", lineno);
			char *end;
			errno = 0;
			double d = strtod(val, &end);
			if (errno || *end || !isfinite(d))
				return why_set(why, wn, "line %u: \"%s\" is not a number", lineno, val);
			if (sc->expects[i].present)
				return why_set(why, wn, "line %u: %s given twice", lineno, key);
			sc->expects[i].present = true;
			sc->expects[i].value = d;
			continue;
		}
		if (buf[0] == '#' || buf[strspn(buf, " \t\r")] == '\0')
			continue;
		struct setline s;
		char ep[8], unit[8], addr[16];
		if (sscanf(buf, "set %7s %7s %15s %15s %7s %7s %63s %7s", ep, unit, s.table, addr, s.type, s.order,
			   s.value, extra) != 7)
			return why_set(why, wn, "line %u: not `set E U TABLE ADDR TYPE ORDER VALUE`", lineno);
		if (strcmp(ep, "0") || strcmp(unit, "1"))
			return why_set(why, wn, "line %u: the map is endpoint 0, unit 1", lineno);
		char *end;
		errno = 0;
		long a = strtol(addr, &end, 10);
		if (errno || *end || a < 0 || a > 65535)
			return why_set(why, wn, "line %u: address \"%s\"", lineno, addr);
		s.address = a;
		if (sc->nsets == MAX_SETS)
			return why_set(why, wn, "line %u: more than %d set lines", lineno, MAX_SETS);
		sc->sets[sc->nsets++] = s;
	}
	return 0;
}

/* The raw value a `set` wrote, read back as the profile's point reads it, in physical units. */
static int decode_set(const struct setline *s, const struct point *p, double *out, char *why, size_t wn)
{
	if (strcmp(s->type, p->type) || strcmp(s->order, p->order))
		return why_set(why, wn, "map writes %s %s at %s %ld, the profile reads %s %s", s->type, s->order,
			       s->table, s->address, p->type, p->order);
	char *end;
	errno = 0;
	double raw;
	if (!strcmp(p->type, "f32")) {
		raw = (double)strtof(s->value, &end);
	} else if (!strcmp(p->type, "i32")) {
		long long v = strtoll(s->value, &end, 0);
		if (v < INT32_MIN || v > INT32_MAX)
			errno = ERANGE;
		raw = (double)v;
	} else {
		unsigned long long v = strtoull(s->value, &end, 0);
		if (s->value[0] == '-' || (!strcmp(p->type, "u16") && v > UINT16_MAX) ||
		    (!strcmp(p->type, "u32") && v > UINT32_MAX))
			errno = ERANGE;
		raw = (double)v;
	}
	if (errno || *end)
		return why_set(why, wn, "map value \"%s\" is not a %s", s->value, p->type);
	*out = raw * p->scale;
	return 0;
}

/* The whole check of one profile against its map; 0 or -1 with why. */
static int check_profile(const char *name, const char *json, const char *script, char *why, size_t wn)
{
	struct point pts[NKINDS];
	struct script sc;
	char sub[256];
	if (!valid_name(name))
		return why_set(why, wn, "profile name \"%s\" is not [a-z0-9-]+", name);
	if (parse_profile(name, json, pts, sub, sizeof sub))
		return why_set(why, wn, "%s/%s.json: %s", PROFILE_DIR, name, sub);
	if (!script)
		return why_set(why, wn, "%s/%s.json has no %s/%s.script", PROFILE_DIR, name, SCRIPT_DIR, name);
	if (parse_script(script, &sc, sub, sizeof sub))
		return why_set(why, wn, "%s/%s.script: %s", SCRIPT_DIR, name, sub);
	for (size_t i = 0; i < NKINDS; i++) {
		if (pts[i].present != sc.expects[i].present)
			return why_set(why, wn, "%s/%s.script: %s `# expect %s` line for %s point %s", SCRIPT_DIR, name,
				       pts[i].present ? "no" : "an", KINDS[i].expect,
				       pts[i].present ? "the profile's" : "a missing", KINDS[i].point);
		if (!pts[i].present)
			continue;
		const struct setline *s = NULL;
		for (size_t j = 0; j < sc.nsets; j++)
			if (!strcmp(sc.sets[j].table, pts[i].table) && sc.sets[j].address == pts[i].address)
				s = &sc.sets[j];
		if (!s)
			return why_set(why, wn, "%s/%s.script: nothing set at %s %ld, where the profile reads %s",
				       SCRIPT_DIR, name, pts[i].table, pts[i].address, KINDS[i].point);
		double got = 0;
		if (decode_set(s, &pts[i], &got, sub, sizeof sub))
			return why_set(why, wn, "%s: %s: %s", name, KINDS[i].point, sub);
		double want = sc.expects[i].value;
		/* An f32 holds 24 bits: a value it cannot hold exactly (1.2345 kW) is off by half a unit
		 * in the last place, a relative 6e-8; integers decode exactly. */
		double tol = !strcmp(pts[i].type, "f32") ? 1.2e-7 * fabs(want) : 1e-9 * fmax(1.0, fabs(want));
		if (fabs(got - want) > tol)
			return why_set(why, wn, "%s: %s decodes to %.9g, the script expects %.9g", name, KINDS[i].point,
				       got, want);
	}
	return 0;
}

/* Names of the files in dir ending in ext, without it. */
static size_t list_names(const char *dir, const char *ext, char names[][NAME_MAX_LEN + 1], size_t max)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0, el = strlen(ext);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= el || strcmp(e->d_name + len - el, ext))
			continue;
		assert_true(len - el <= NAME_MAX_LEN);
		assert_true(n < max);
		memcpy(names[n], e->d_name, len - el);
		names[n][len - el] = '\0';
		n++;
	}
	closedir(d);
	return n;
}

static void make_path(char *buf, size_t n, const char *dir, const char *name, const char *ext)
{
	int w = snprintf(buf, n, "%s/%s%s", dir, name, ext);
	assert_true(w > 0 && (size_t)w < n);
}

static char *script_for(const char *name)
{
	char path[256];
	make_path(path, sizeof path, SCRIPT_DIR, name, ".script");
	return read_text(path);
}

static void test_every_profile_matches_its_map(void **state)
{
	(void)state;
	static char names[MAX_FILES][NAME_MAX_LEN + 1];
	size_t n = list_names(PROFILE_DIR, ".json", names, MAX_FILES);
	unsigned bad = 0, single = 0, three = 0;
	for (size_t i = 0; i < n; i++) {
		char path[256], why[512];
		make_path(path, sizeof path, PROFILE_DIR, names[i], ".json");
		char *json = read_text(path);
		assert_non_null(json);
		char *script = script_for(names[i]);
		if (check_profile(names[i], json, script, why, sizeof why)) {
			print_error("%s\n", why);
			bad++;
		} else {
			single += strstr(json, "\"phases\": 1") != NULL;
			three += strstr(json, "\"phases\": 3") != NULL;
		}
		free(json);
		free(script);
	}
	assert_int_equal(bad, 0);
	/* Issue #16: eight or more models, single- and three-phase. */
	assert_true(n >= 8);
	assert_true(single >= 1);
	assert_true(three >= 1);
}

static void test_every_map_has_a_profile(void **state)
{
	(void)state;
	static char names[MAX_FILES][NAME_MAX_LEN + 1];
	size_t n = list_names(SCRIPT_DIR, ".script", names, MAX_FILES);
	assert_true(n >= 1);
	for (size_t i = 0; i < n; i++) {
		char path[256];
		make_path(path, sizeof path, PROFILE_DIR, names[i], ".json");
		FILE *f = fopen(path, "rb");
		if (!f)
			print_error("%s/%s.script has no profile %s\n", SCRIPT_DIR, names[i], path);
		assert_non_null(f);
		fclose(f);
	}
}

/* The checker itself: each broken pair below must be refused, for the reason given. */
#define GOOD_POINTS                                                                                        \
	"\"power\": {\"table\": \"input\", \"address\": 12, \"type\": \"f32\", \"word_order\": \"big\", "     \
	"\"scale\": 1}, "                                                                                  \
	"\"energy\": {\"table\": \"input\", \"address\": 72, \"type\": \"u32\", \"word_order\": \"little\", " \
	"\"scale\": 0.01}"
#define HEAD                                                                                               \
	"{ \"name\": \"x-meter\", \"model\": \"X meter\", \"phases\": 1, "                                   \
	"\"source\": \"X maker's Modbus protocol, V1, register table page 9\", "
#define GOOD_JSON HEAD "\"points\": {" GOOD_POINTS "} }"
#define GOOD_SCRIPT                                                                                        \
	"# expect power_w 812.25\n# expect energy_kwh 1234.56\n"                                            \
	"set 0 1 input 12 f32 big 812.25\nset 0 1 input 72 u32 little 123456\n"

static void test_checker_refuses_broken_files(void **state)
{
	(void)state;
	char why[512];
	assert_int_equal(check_profile("x-meter", GOOD_JSON, GOOD_SCRIPT, why, sizeof why), 0);
	/* JSONC comments are allowed, as the config's reader allows them. */
	assert_int_equal(check_profile("x-meter", "// a comment\n" GOOD_JSON, GOOD_SCRIPT, why, sizeof why), 0);

	static const struct {
		const char *json, *script, *reason;
	} cases[] = {
		{ HEAD "\"points\": {" GOOD_POINTS "} }", NULL, "has no" },
		{ HEAD "\"points\": {\"power\": {\"table\": \"input\", \"address\": 12, \"type\": \"f32\", "
		       "\"word_order\": \"big\", \"scale\": 1}} }",
		  GOOD_SCRIPT, "points.energy: required" },
		{ HEAD "\"points\": {" GOOD_POINTS ", \"current\": {}} }", GOOD_SCRIPT, "unknown point" },
		{ HEAD "\"points\": {\"power\": {\"table\": \"input\", \"address\": 12, \"type\": \"i16\", "
		       "\"word_order\": \"big\", \"scale\": 1}, \"energy\": {\"table\": \"input\", \"address\": 72, "
		       "\"type\": \"u32\", \"word_order\": \"little\", \"scale\": 0.01}} }",
		  GOOD_SCRIPT, "not one of SPEC" },
		{ HEAD "\"points\": {\"power\": {\"table\": \"coil\", \"address\": 12, \"type\": \"f32\", "
		       "\"word_order\": \"big\", \"scale\": 1}, \"energy\": {\"table\": \"input\", \"address\": 72, "
		       "\"type\": \"u32\", \"word_order\": \"little\", \"scale\": 0.01}} }",
		  GOOD_SCRIPT, "points.power.table" },
		{ HEAD "\"points\": {\"power\": {\"table\": \"input\", \"address\": 71, \"type\": \"f32\", "
		       "\"word_order\": \"big\", \"scale\": 1}, \"energy\": {\"table\": \"input\", \"address\": 72, "
		       "\"type\": \"u32\", \"word_order\": \"little\", \"scale\": 0.01}} }",
		  GOOD_SCRIPT, "overlap" },
		{ "{ \"name\": \"y-meter\", \"model\": \"X meter\", \"phases\": 1, \"source\": \"X maker's Modbus "
		  "protocol, V1, register table page 9\", \"points\": {" GOOD_POINTS "} }",
		  GOOD_SCRIPT, "the file's name" },
		{ "{ \"name\": \"x-meter\", \"model\": \"X meter\", \"phases\": 1, \"source\": \"a manual\", "
		  "\"points\": {" GOOD_POINTS "} }",
		  GOOD_SCRIPT, "source" },
		{ GOOD_JSON, "# expect power_w 812.25\nset 0 1 input 12 f32 big 812.25\nset 0 1 input 72 u32 little 1\n",
		  "no `# expect energy_kwh`" },
		{ GOOD_JSON, GOOD_SCRIPT "# expect voltage_v 230\n", "`# expect voltage_v` line for a missing point" },
		{ GOOD_JSON, "# expect power_w 812.25\n# expect energy_kwh 1234.56\nset 0 1 input 12 f32 big 812.25\n",
		  "nothing set at input 72" },
		{ GOOD_JSON,
		  "# expect power_w 812.25\n# expect energy_kwh 1234.56\n"
		  "set 0 1 input 12 f32 big 812.25\nset 0 1 input 72 u32 big 123456\n",
		  "the profile reads u32 little" },
		{ GOOD_JSON,
		  "# expect power_w 812.25\n# expect energy_kwh 1234.57\n"
		  "set 0 1 input 12 f32 big 812.25\nset 0 1 input 72 u32 little 123456\n",
		  "decodes to" },
		{ GOOD_JSON,
		  "# expect power_w 812.25\n# expect energy_kwh 1234.56\n"
		  "set 0 1 holding 12 f32 big 812.25\nset 0 1 input 72 u32 little 123456\n",
		  "nothing set at input 12" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		why[0] = '\0';
		int rc = check_profile("x-meter", cases[i].json, cases[i].script, why, sizeof why);
		if (rc == 0 || !strstr(why, cases[i].reason))
			print_error("case %zu: rc %d, why \"%s\", want \"%s\"\n", i, rc, why, cases[i].reason);
		assert_int_equal(rc, -1);
		assert_non_null(strstr(why, cases[i].reason));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_profile_matches_its_map),
		cmocka_unit_test(test_every_map_has_a_profile),
		cmocka_unit_test(test_checker_refuses_broken_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
