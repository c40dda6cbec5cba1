/* nrii_format.c — what the NRII sink sends (SPEC §8): a sealed session as the type-6 instruList
 * JSON, an instrument's year-to-date sums as type 4, each wrapped in the SOAP 1.1 request a CXF
 * client would send. Pure: the configuration and a record in, bytes out. */
#include "nrii_format.h"
#include "config.h"
#include "dynbuf.h"
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENVELOPE_MAX (1024 * 1024)  /* one record; a profile is the largest and still tiny */
#define NRII_DURATION_MAX_S 1e9     /* ~31 years: past it duration_s is no session (and no integer cast) */

/* ---- the instruList JSON: a fixed field order, ASCII only (lib/jsonw's JW_ASCII) ---- */

static void jw_nrii_begin(struct jsonw *w)
{
	jw_begin_opt(w, JW_ASCII, ENVELOPE_MAX);
}

/* "无" (none) is what the platform's forms expect for a field nobody filled in. */
static void jw_str_or_none(struct jsonw *w, const char *key, const char *v, size_t max_chars)
{
	jw_str_cut(w, key, v && *v ? v : "无", max_chars);
}

/* scaled / 10^decimals with exactly that many decimals ("2.5", "99.99"); scaled >= 0. */
static void jw_fixed(struct jsonw *w, const char *key, long long scaled, int decimals)
{
	long long div = decimals == 1 ? 10 : 100;
	char num[48];
	snprintf(num, sizeof(num), "%lld.%0*lld", scaled / div, decimals, scaled % div);
	jw_raw(w, key, num);
}

void nrii_hours2(int64_t seconds, char out[32])
{
	long long h = (long long)((seconds * 100 + 1800) / 3600);
	snprintf(out, 32, "%lld.%02lld", h / 100, h % 100);
}

/* ---- the envelope ---- */

/* XML character data: the three markup characters escaped; characters XML 1.0 can't carry at
 * all (C0 controls but tab, LF, CR) become '?', CR a reference so it survives line-end
 * normalisation. Our JSON is ASCII, so only the institution code can meet the last two. */
static int xml_text(struct dbuf *b, const char *s)
{
	int r = 0;
	for (const char *p = s; *p && r == 0; p++) {
		unsigned char c = (unsigned char)*p;
		switch (c) {
		case '&': r = dbuf_str(b, "&amp;"); break;
		case '<': r = dbuf_str(b, "&lt;"); break;
		case '>': r = dbuf_str(b, "&gt;"); break;
		case '\r': r = dbuf_str(b, "&#13;"); break;
		default:
			r = c < 0x20 && c != '\t' && c != '\n' ? dbuf_add(b, "?", 1) : dbuf_add(b, p, 1);
		}
	}
	return r;
}

/* One SOAP 1.1 request, as a CXF client of the service sends it: the wrapper elements in the
 * service's namespace, their children unqualified, no whitespace between elements. */
static char *envelope(const char *ins_code, int type, const char *json)
{
	struct dbuf b = { .max = ENVELOPE_MAX };
	char t[8];
	snprintf(t, sizeof(t), "%d", type); /* 4 or 6 */
	int r = dbuf_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""
			 " xmlns:ins=\"" NRII_NS "\">"
			 "<soapenv:Header><ins:MySoapHeader><UserName></UserName><PassWord></PassWord>"
			 "</ins:MySoapHeader></soapenv:Header>"
			 "<soapenv:Body><ins:instruInfo><insCode>");
	if (r == 0)
		r = xml_text(&b, ins_code);
	if (r == 0)
		r = dbuf_str(&b, "</insCode><instruType>");
	if (r == 0)
		r = dbuf_str(&b, t);
	if (r == 0)
		r = dbuf_str(&b, "</instruType><instruList>");
	if (r == 0)
		r = xml_text(&b, json);
	if (r == 0)
		r = dbuf_str(&b, "</instruList></ins:instruInfo></soapenv:Body></soapenv:Envelope>\n");
	if (r < 0) {
		dbuf_free(&b);
		return NULL;
	}
	return b.p;
}

/* ---- session → type 6 ---- */

static const char *jget_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "2026-11-02T08:00:00+08:00" (the lab's offset, as sealed) → "2026-11-02 08". */
static bool local_hour(const char *rfc3339, char out[14])
{
	static const char shape[] = "dddd-dd-ddTdd";
	if (!rfc3339 || strlen(rfc3339) < 13)
		return false;
	for (size_t i = 0; i < 13; i++) {
		char c = rfc3339[i];
		if (shape[i] == 'd' ? !(c >= '0' && c <= '9') : shape[i] == 'T' ? (c != 'T' && c != ' ') : c != shape[i])
			return false;
	}
	memcpy(out, rfc3339, 10);
	out[10] = ' ';
	out[11] = rfc3339[11];
	out[12] = rfc3339[12];
	out[13] = '\0';
	return true;
}

/* The session's fee in fen (1/100 yuan): "120", "120.5", " 98.00 元"; -1 when not a plain
 * non-negative amount (then 0 is reported: the platform's field is a number). */
static long long fee_fen(const char *fee)
{
	if (!fee)
		return -1;
	char *end = NULL;
	errno = 0;
	double v = strtod(fee, &end);
	if (end == fee || errno || !isfinite(v) || v < 0 || v > 1e12)
		return -1;
	while (*end == ' ' || *end == '\t')
		end++;
	if (strcmp(end, "元") == 0)
		end += strlen("元");
	if (*end)
		return -1;
	return llround(v * 100.0);
}

/* Money with no trailing zeros after the point: 120, 120.5, 99.99. */
static void jw_money(struct jsonw *w, const char *key, long long fen)
{
	if (fen % 100 == 0)
		jw_int(w, key, fen / 100);
	else if (fen % 10 == 0)
		jw_fixed(w, key, fen / 10, 1);
	else
		jw_fixed(w, key, fen, 2);
}

/* The session's `way` (SPEC §3: 占用, 技术, 委托, 远程, 其他) as the platform's service way. */
static const char *service_way(const struct config *cfg, const char *way)
{
	static const char *const map[][2] = {
		{ "占用", "占用共享" }, { "技术", "技术共享" }, { "委托", "委托共享" },
		{ "远程", "远程共享" }, { "其他", "其他" },
	};
	for (size_t i = 0; way && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(way, map[i][0]) == 0 || strcmp(way, map[i][1]) == 0)
			return map[i][1];
	return cfg->nrii.service_way;
}

/* With "codes": "labels" the platform takes text; this is the label set (README). */
static const char *const direction_labels[] = { "科学研究", "技术开发", "教学培训", "其他" };

static void session_fields(struct jsonw *w, const struct config *cfg, const struct instrument_cfg *ic,
			   int64_t seq, const cJSON *rec, const char *start, const char *end)
{
	const struct nrii_cfg *n = &cfg->nrii;
	const cJSON *dur = cJSON_GetObjectItemCaseSensitive(rec, "duration_s");
	long long duration = (long long)dur->valuedouble;
	bool external = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "external"));
	long long fen = fee_fen(jget_str(rec, "fee"));
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)seq); /* fits */

	jw_str(w, "insCode", n->ins_code);
	jw_str(w, "recordInnerId", id);
	jw_int(w, "auditStatus", -1);
	jw_str(w, "innerId", ic->inner_id);
	jw_money(w, "amounts", fen < 0 ? 0 : fen);
	jw_str(w, "serviceTime", start);
	jw_str(w, "endTime", end);
	/* Hours to 0.1, half up, in integers: 0.25 h must not become 0.2 through a double. */
	jw_fixed(w, "serviceAmount", (duration + 180) / 360, 1);
	jw_str_cut(w, "serviceContent", n->service_content, NRII_TEXT_MAX);
	jw_str_cut(w, "serviceWay", service_way(cfg, jget_str(rec, "way")), NRII_TEXT_MAX);
	if (n->codes == NRII_CODES_INT) {
		jw_int(w, "serviceType", external ? 130 : 120);
		jw_int(w, "serviceDirection", n->service_direction);
	} else {
		jw_str(w, "serviceType", external ? "外部用户" : "内部用户");
		jw_str(w, "serviceDirection", direction_labels[n->service_direction - 135]);
	}
	jw_str_or_none(w, "subjectName", jget_str(rec, "project"), NRII_TEXT_MAX);
	jw_str_or_none(w, "subjectContent", NULL, NRII_TEXT_MAX);
	jw_str_or_none(w, "record", NULL, NRII_TEXT_MAX);
	jw_str_cut(w, "subjectIncome", n->subject_income, NRII_TEXT_MAX);
	jw_str_cut(w, "subjectArea", n->subject_area, NRII_TEXT_MAX);
	jw_str_or_none(w, "applicant", jget_str(rec, "user"), NRII_APPLICANT_MAX);
	jw_str_or_none(w, "applicantUnit", jget_str(rec, "org"), NRII_UNIT_MAX);
	jw_str_or_none(w, "applicantPhone", NULL, NRII_TEXT_MAX);
	jw_str_or_none(w, "applicantEmail", NULL, NRII_TEXT_MAX);
	jw_str_cut(w, "comment", n->comment, NRII_TEXT_MAX);
	jw_int(w, "adressType", 0); /* sic: the platform's spelling */
	jw_int(w, "signAgreement", 1);
}

char *nrii_json_session(const struct config *cfg, int64_t seq, const char *line, char *why, size_t whylen)
{
	cJSON *rec = line ? cJSON_Parse(line) : NULL;
	const char *kind = jget_str(rec, "kind"), *inst = jget_str(rec, "instrument");
	const cJSON *dur = cJSON_GetObjectItemCaseSensitive(rec, "duration_s");
	char start[14], end[14];
	char *out = NULL;
	/* duration_s bounded before session_fields casts it: a cast of 1e300 is undefined. */
	if (!kind || strcmp(kind, "session") != 0 || !inst || !cJSON_IsNumber(dur) ||
	    !(dur->valuedouble >= 0 && dur->valuedouble <= NRII_DURATION_MAX_S) ||
	    !local_hour(jget_str(rec, "start"), start) || !local_hour(jget_str(rec, "end"), end)) {
		snprintf(why, whylen, "record %" PRId64 " is not a well-formed session record", seq);
		goto out;
	}
	const struct instrument_cfg *ic = config_instrument(cfg, inst);
	if (!ic || !ic->inner_id) {
		snprintf(why, whylen, "instrument \"%s\" of record %" PRId64 " %s", inst, seq,
			 ic ? "has no inner_id" : "is no longer in the configuration");
		goto out;
	}
	struct jsonw w;
	jw_nrii_begin(&w);
	session_fields(&w, cfg, ic, seq, rec, start, end);
	out = jw_end(&w, NULL);
	if (!out)
		snprintf(why, whylen, "%s", w.invalid ? "not valid UTF-8" : "out of memory");
out:
	cJSON_Delete(rec);
	return out;
}

char *nrii_envelope_session(const struct config *cfg, int64_t seq, const char *line, char *why, size_t whylen)
{
	char *json = nrii_json_session(cfg, seq, line, why, whylen);
	if (!json)
		return NULL;
	char *env = envelope(cfg->nrii.ins_code, NRII_TYPE_SERVICE, json);
	free(json);
	if (!env)
		snprintf(why, whylen, "out of memory");
	return env;
}

/* ---- yearly totals → type 4 ---- */

/* Keys the agent fills itself; the same keys in nrii_profile are ignored (README). */
static bool own_key(const char *k)
{
	return strcmp(k, "insCode") == 0 || strcmp(k, "innerId") == 0 || strcmp(k, "runMachine") == 0 ||
	       strcmp(k, "serviceMachine") == 0;
}

char *nrii_envelope_profile(const struct config *cfg, const struct instrument_cfg *ic, int64_t effective_s,
			    int64_t service_s)
{
	struct jsonw w;
	bool profile_worth = false;
	jw_nrii_begin(&w);
	jw_str(&w, "insCode", cfg->nrii.ins_code);
	jw_str(&w, "innerId", ic->inner_id ? ic->inner_id : "");
	const cJSON *m;
	cJSON_ArrayForEach(m, ic->nrii_profile) {
		if (!m->string || own_key(m->string))
			continue;
		if (strcmp(m->string, "worth") == 0)
			profile_worth = true;
		if (cJSON_IsString(m))
			jw_str(&w, m->string, m->valuestring);
		else if (cJSON_IsNumber(m))
			jw_num(&w, m->string, m->valuedouble);
	}
	if (ic->has_worth && !profile_worth)
		jw_num(&w, "worth", ic->worth_wan);
	char run[32], svc[32];
	nrii_hours2(effective_s, run);
	nrii_hours2(service_s, svc);
	jw_raw(&w, "runMachine", run);
	jw_raw(&w, "serviceMachine", svc);
	char *json = jw_end(&w, NULL);
	char *env = json ? envelope(cfg->nrii.ins_code, NRII_TYPE_INSTRUMENT, json) : NULL;
	free(json);
	return env;
}

/* ---- what shapes it all ---- */

int nrii_config_digest(const struct config *cfg, char out[65])
{
	const struct nrii_cfg *n = &cfg->nrii;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "url", n->url ? n->url : "");
	cJSON_AddStringToObject(o, "ins_code", n->ins_code ? n->ins_code : "");
	cJSON_AddNumberToObject(o, "codes", n->codes);
	cJSON_AddStringToObject(o, "service_way", n->service_way ? n->service_way : "");
	cJSON_AddNumberToObject(o, "service_direction", n->service_direction);
	cJSON_AddStringToObject(o, "subject_income", n->subject_income ? n->subject_income : "");
	cJSON_AddStringToObject(o, "subject_area", n->subject_area ? n->subject_area : "");
	cJSON_AddStringToObject(o, "comment", n->comment ? n->comment : "");
	cJSON_AddStringToObject(o, "service_content", n->service_content ? n->service_content : "");
	cJSON *insts = cJSON_AddArrayToObject(o, "instruments");
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "id", ic->id);
		cJSON_AddStringToObject(e, "inner_id", ic->inner_id ? ic->inner_id : "");
		cJSON_AddNumberToObject(e, "worth", ic->has_worth ? ic->worth_wan : -1);
		if (ic->nrii_profile)
			cJSON_AddItemToObject(e, "profile", cJSON_Duplicate(ic->nrii_profile, true));
		cJSON_AddItemToArray(insts, e);
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return -ENOMEM;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
	cJSON_free(text);
	if (ok != 1 || mdlen != 32)
		return -EIO;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}
