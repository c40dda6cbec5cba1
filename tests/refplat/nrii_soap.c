/* nrii_soap.c — the NRII service's wire checks, without state: the SOAP 1.1 envelope checked with
 * libxml2 as SPEC §8 describes it, and the instruList JSON checked field by field and format by
 * format. The service (faults, replies, storage) is nrii.c. */
#include "nrii_soap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the envelope ---- */

static bool is_elem(const xmlNode *n, const char *local, const char *ns)
{
	if (!n || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0)
		return false;
	if (!ns)
		return n->ns == NULL; /* unqualified, as the service's schema has its children */
	return n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

/* Only element children named in want[] (each exactly once, in any order), whitespace between. */
static const char *only_children(const xmlNode *parent, const char *const want[], const char *ns, xmlNode *out[],
				 size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	for (xmlNode *c = parent->children; c; c = c->next) {
		if (c->type == XML_TEXT_NODE) {
			for (const xmlChar *t = c->content; t && *t; t++)
				if (*t != ' ' && *t != '\t' && *t != '\r' && *t != '\n')
					return "text between elements";
			continue;
		}
		if (c->type != XML_ELEMENT_NODE)
			continue; /* comments */
		size_t i = 0;
		while (i < n && !is_elem(c, want[i], ns))
			i++;
		if (i == n)
			return (const char *)c->name;
		if (out[i])
			return "an element twice";
		out[i] = c;
	}
	for (size_t i = 0; i < n; i++)
		if (!out[i])
			return want[i];
	return NULL;
}

/* A leaf's text; NULL when it has element children. Caller xmlFree()s. */
static xmlChar *leaf_text(const xmlNode *n)
{
	for (const xmlNode *c = n->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return NULL;
	return xmlNodeGetContent(n);
}

/* NULL when the envelope is what SPEC §8 describes, else why not (a SOAP fault). */
const char *nrii_check_envelope(xmlDoc *doc, struct call *call, char *why, size_t whylen)
{
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!is_elem(root, "Envelope", NS_SOAP))
		return "not a SOAP 1.1 Envelope";
	static const char *const parts[] = { "Header", "Body" };
	xmlNode *hb[2];
	const char *miss = only_children(root, parts, NS_SOAP, hb, 2);
	if (miss) {
		snprintf(why, whylen, "Envelope: unexpected or missing \"%s\"", miss);
		return why;
	}
	static const char *const hdr[] = { "MySoapHeader" };
	xmlNode *h[1];
	if ((miss = only_children(hb[0], hdr, NS_NRII, h, 1))) {
		snprintf(why, whylen, "Header: unexpected or missing \"%s\" (MySoapHeader in " NS_NRII ")", miss);
		return why;
	}
	static const char *const cred[] = { "UserName", "PassWord" };
	xmlNode *c[2];
	if ((miss = only_children(h[0], cred, NULL, c, 2))) {
		snprintf(why, whylen, "MySoapHeader: unexpected or missing \"%s\"", miss);
		return why;
	}
	static const char *const op[] = { "instruInfo" };
	xmlNode *body[1];
	if ((miss = only_children(hb[1], op, NS_NRII, body, 1))) {
		snprintf(why, whylen, "Body: unexpected or missing \"%s\" (instruInfo in " NS_NRII ")", miss);
		return why;
	}
	static const char *const args[] = { "insCode", "instruType", "instruList" };
	xmlNode *a[3];
	if ((miss = only_children(body[0], args, NULL, a, 3))) {
		snprintf(why, whylen, "instruInfo: unexpected or missing \"%s\" (unqualified)", miss);
		return why;
	}
	call->ins_code = leaf_text(a[0]);
	call->type = leaf_text(a[1]);
	call->list = leaf_text(a[2]);
	if (!call->ins_code || !call->type || !call->list)
		return "instruInfo: arguments must be text";
	return NULL;
}

/* ---- the record ---- */

static size_t chars(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			n++;
	return n;
}

static bool fail(struct verdict *v, int code, const char *what, const char *field)
{
	if (!v->code) {
		v->code = code;
		snprintf(v->text, sizeof(v->text), "%s %s", what, field); /* a cut is fine: a message */
	}
	return false;
}

static const cJSON *need(const cJSON *o, const char *k, struct verdict *v)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!x)
		fail(v, 201, "缺少字段", k);
	return x;
}

static bool str_field(const cJSON *o, const char *k, size_t max, struct verdict *v)
{
	const cJSON *x = need(o, k, v);
	if (!x)
		return false;
	if (!cJSON_IsString(x) || !x->valuestring[0] || chars(x->valuestring) > max)
		return fail(v, 202, "字段格式错误", k);
	return true;
}

/* A number with at most `decimals` decimals, in [min, max]. */
static bool num_field(const cJSON *o, const char *k, double min, double max, int decimals, struct verdict *v)
{
	const cJSON *x = need(o, k, v);
	if (!x)
		return false;
	double scale = decimals == 0 ? 1 : decimals == 1 ? 10 : 100;
	if (!cJSON_IsNumber(x) || x->valuedouble < min || x->valuedouble > max ||
	    fabs(x->valuedouble * scale - round(x->valuedouble * scale)) > 1e-6)
		return fail(v, 202, "字段格式错误", k);
	return true;
}

/* "YYYY-MM-DD HH", a real date and hour. */
static bool hour_field(const cJSON *o, const char *k, struct verdict *v)
{
	const cJSON *x = need(o, k, v);
	if (!x)
		return false;
	int y, m, d, h;
	char tail;
	const char *s = cJSON_IsString(x) ? x->valuestring : "";
	struct tm tm = { 0 };
	if (strlen(s) != 13 || sscanf(s, "%4d-%2d-%2d %2d%c", &y, &m, &d, &h, &tail) != 4 || s[4] != '-' ||
	    s[7] != '-' || s[10] != ' ' || m < 1 || m > 12 || d < 1 || h < 0 || h > 23)
		return fail(v, 202, "字段格式错误", k);
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	if (timegm(&tm) == (time_t)-1 || tm.tm_mday != d)
		return fail(v, 202, "字段格式错误", k); /* 2026-02-30 */
	return true;
}

/* One of the integer codes, or (codes "labels") one of the labels. */
static bool code_field(const cJSON *o, const char *k, const int codes[], size_t nc, const char *const labels[],
		       size_t nl, struct verdict *v)
{
	const cJSON *x = need(o, k, v);
	if (!x)
		return false;
	for (size_t i = 0; cJSON_IsNumber(x) && i < nc; i++)
		if (x->valuedouble == codes[i])
			return true;
	for (size_t i = 0; cJSON_IsString(x) && i < nl; i++)
		if (strcmp(x->valuestring, labels[i]) == 0)
			return true;
	return fail(v, 202, "字段格式错误", k);
}

static bool exact_field(const cJSON *o, const char *k, double want, struct verdict *v)
{
	const cJSON *x = need(o, k, v);
	if (!x)
		return false;
	if (!cJSON_IsNumber(x) || x->valuedouble != want)
		return fail(v, 202, "字段格式错误", k);
	return true;
}

static bool only_keys(const cJSON *o, const char *const keys[], struct verdict *v)
{
	for (const cJSON *m = o->child; m; m = m->next) {
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], m->string) != 0)
			i++;
		if (!keys[i])
			return fail(v, 202, "未知字段", m->string);
	}
	return true;
}

/* Type 6, a service record: every field SPEC §8 lists, each in its format and length. */
void nrii_check_service(const cJSON *o, const char *ins_code, struct verdict *v)
{
	static const char *const keys[] = { "insCode", "recordInnerId", "auditStatus", "innerId", "amounts",
		"serviceTime", "endTime", "serviceAmount", "serviceContent", "serviceWay", "serviceType",
		"serviceDirection", "subjectName", "subjectContent", "record", "subjectIncome", "subjectArea",
		"applicant", "applicantUnit", "applicantPhone", "applicantEmail", "comment", "adressType",
		"signAgreement", NULL };
	static const char *const types[] = { "内部用户", "外部用户" };
	static const char *const directions[] = { "科学研究", "技术开发", "教学培训", "其他" };
	static const int type_codes[] = { 120, 130 }, direction_codes[] = { 135, 136, 137, 138 };
	if (str_field(o, "insCode", 64, v) && strcmp(cJSON_GetObjectItem(o, "insCode")->valuestring, ins_code) != 0)
		fail(v, 202, "字段格式错误", "insCode");
	str_field(o, "recordInnerId", 50, v);
	exact_field(o, "auditStatus", -1, v);
	str_field(o, "innerId", 50, v);
	num_field(o, "amounts", 0, 1e12, 2, v);
	if (hour_field(o, "serviceTime", v) && hour_field(o, "endTime", v) &&
	    strcmp(cJSON_GetObjectItem(o, "endTime")->valuestring, cJSON_GetObjectItem(o, "serviceTime")->valuestring) < 0)
		fail(v, 202, "字段格式错误", "endTime");
	num_field(o, "serviceAmount", 0, 1e6, 1, v);
	str_field(o, "serviceContent", 200, v);
	str_field(o, "serviceWay", 200, v);
	code_field(o, "serviceType", type_codes, 2, types, 2, v);
	code_field(o, "serviceDirection", direction_codes, 4, directions, 4, v);
	str_field(o, "subjectName", 200, v);
	str_field(o, "subjectContent", 200, v);
	str_field(o, "record", 200, v);
	str_field(o, "subjectIncome", 200, v);
	str_field(o, "subjectArea", 200, v);
	str_field(o, "applicant", 20, v);
	str_field(o, "applicantUnit", 100, v);
	str_field(o, "applicantPhone", 50, v);
	str_field(o, "applicantEmail", 100, v);
	str_field(o, "comment", 200, v);
	exact_field(o, "adressType", 0, v);
	exact_field(o, "signAgreement", 1, v);
	only_keys(o, keys, v);
}

/* Type 4, an instrument: its keys and the year's machine hours; the rest of the profile is
 * the lab's to fill, strings and numbers only. */
void nrii_check_instrument(const cJSON *o, const char *ins_code, struct verdict *v)
{
	if (str_field(o, "insCode", 64, v) && strcmp(cJSON_GetObjectItem(o, "insCode")->valuestring, ins_code) != 0)
		fail(v, 202, "字段格式错误", "insCode");
	str_field(o, "innerId", 50, v);
	num_field(o, "runMachine", 0, 8784, 2, v);
	num_field(o, "serviceMachine", 0, 8784, 2, v);
	for (const cJSON *m = o->child; m; m = m->next)
		if (!cJSON_IsString(m) && !cJSON_IsNumber(m))
			fail(v, 202, "字段格式错误", m->string);
}

bool nrii_ascii(const xmlChar *s)
{
	for (; *s; s++)
		if (*s >= 0x80)
			return false;
	return true;
}
