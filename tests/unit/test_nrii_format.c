/* test_nrii_format.c — the NRII SOAP sink's formats (SPEC §8), no platform needed: golden
 * envelopes byte for byte, cuts by characters, records refused before sending, and the reply
 * parser on every shape of reply seen. test_nrii.c drives the sink against the platform. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "nrii_format.h"
#include "nrii_reply.h"

#define INNER "2019-0042"

/* ---- golden envelopes ---- */

static const char golden_config[] =
	"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
	"    \"internal_orgs\": [\"山西大学\"] },"
	"  \"nrii\": { \"url\": \"https://nrii.example.gov.cn/WS_shanxi/cxf/instru\", \"ins_code\": \"SX-14000123\","
	"    \"codes\": \"%s\", \"defaults\": { \"service_direction\": %d } },"
	"  \"instruments\": [ { \"id\": \"NMR\", \"name\": \"600 MHz 核磁共振波谱仪\", \"inner_id\": \"2019-0042\","
	"    \"worth_wan\": 560.5, \"nrii_profile\": { \"cname\": \"600 MHz 核磁共振波谱仪\","
	"      \"ename\": \"600 MHz NMR spectrometer\", \"instrCategory\": \"03040100\", \"beginDate\": \"2019-06-01\","
	"      \"innerId\": \"ignored: the agent's own\", \"location\": \"理科楼 B-112 <&>\" },"
	"    \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }";

static struct config *golden_cfg(const char *codes, int direction)
{
	char *text = h_strdupf(golden_config, codes, direction);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse("golden.json", text, strlen(text), &cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	return cfg;
}

/* Byte-exact against tests/nrii/NAME; NRII_GOLDEN_UPDATE=1 rewrites the file (then review it). */
static void assert_golden(const char *name, const char *got)
{
	char *path = h_strdupf("tests/nrii/%s", name);
	if (getenv("NRII_GOLDEN_UPDATE"))
		h_write_file(path, got, (size_t)-1, 0644);
	char *want = h_read_file(path, NULL);
	if (!want)
		fail_msg("missing golden file %s", path);
	if (strcmp(want, got) != 0)
		fail_msg("%s differs:\n--- want\n%s--- got\n%s", path, want, got);
	free(want);
	free(path);
}

/* The instruList of an envelope, decoded, as cJSON: what the platform reads. */
static cJSON *instru_list(const char *env)
{
	const char *a = strstr(env, "<instruList>"), *b = strstr(env, "</instruList>");
	assert_non_null(a);
	assert_non_null(b);
	a += strlen("<instruList>");
	char *raw = strndup(a, (size_t)(b - a)), *out = malloc(strlen(raw) + 1);
	size_t j = 0;
	for (const char *p = raw; *p;) {
		if (strncmp(p, "&amp;", 5) == 0) { out[j++] = '&'; p += 5; }
		else if (strncmp(p, "&lt;", 4) == 0) { out[j++] = '<'; p += 4; }
		else if (strncmp(p, "&gt;", 4) == 0) { out[j++] = '>'; p += 4; }
		else out[j++] = *p++;
	}
	out[j] = '\0';
	for (const char *p = out; *p; p++)
		assert_true((unsigned char)*p < 0x80); /* non-ASCII only as \uXXXX */
	cJSON *o = cJSON_Parse(out);
	assert_non_null(o);
	free(raw);
	free(out);
	return o;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(v))
		fail_msg("\"%s\" is not a string", k);
	return v->valuestring;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v))
		fail_msg("\"%s\" is not a number", k);
	return v->valuedouble;
}

/* One session line's envelope under golden_cfg(codes, direction), byte-exact against
 * tests/nrii/<golden>: its instruList decoded, *env the envelope (caller frees both). */
static cJSON *golden_session(const char *codes, int direction, int64_t seq, const char *line, const char *golden,
			     char **env)
{
	struct config *cfg = golden_cfg(codes, direction);
	char why[256] = "";
	*env = nrii_envelope_session(cfg, seq, line, why, sizeof(why));
	if (!*env)
		fail_msg("no envelope for %s: %s", golden, why);
	config_free(cfg);
	assert_golden(golden, *env);
	return instru_list(*env);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (*p & 0xc0) != 0x80;
	return n;
}

static void test_golden_session_chinese(void **state)
{
	(void)state;
	/* A rare name beyond the BMP (U+20000): a UTF-16 surrogate pair in the JSON. */
	const char *line = "{\"seq\":42,\"kind\":\"session\",\"instrument\":\"NMR\",\"start\":\"2026-11-02T08:00:00+08:00\","
			   "\"end\":\"2026-11-02T10:30:00+08:00\",\"duration_s\":9000,\"user\":\"张\xf0\xa0\x80\x80\","
			   "\"org\":\"太原理工大学\",\"external\":true,\"samples\":3,\"way\":\"委托\",\"fee\":\"120.5\","
			   "\"project\":\"国家自然科学基金面上项目\",\"source\":\"log\"}";
	char *env;
	cJSON *o = golden_session("int", 135, 42, line, "session_chinese.xml", &env);
	assert_string_equal(jstr(o, "applicant"), "张\xf0\xa0\x80\x80");
	assert_string_equal(jstr(o, "recordInnerId"), "42");
	assert_string_equal(jstr(o, "serviceWay"), "委托共享");
	assert_int_equal((int)jnum(o, "serviceType"), 130);
	assert_true(jnum(o, "amounts") == 120.5);
	assert_true(jnum(o, "serviceAmount") == 2.5);
	assert_non_null(strstr(env, "\\ud840\\udc00")); /* the surrogate pair as sent */
	cJSON_Delete(o);
	free(env);
}

static void test_golden_session_hostile(void **state)
{
	(void)state;
	/* Labels instead of codes, and names made to break XML and JSON. */
	const char *line = "{\"seq\":7,\"kind\":\"session\",\"instrument\":\"NMR\",\"start\":\"2026-11-03T14:05:00+08:00\","
			   "\"end\":\"2026-11-03T14:50:00+08:00\",\"duration_s\":2700,\"user\":\"O'Brien <&> \\\"Bob\\\"\","
			   "\"org\":\"山西大学\",\"external\":false,\"fee\":\"not a number\",\"project\":\"]]></instruList>\","
			   "\"source\":\"manual\",\"operator\":\"root\",\"note\":\"a\\\\b\"}";
	char *env;
	cJSON *o = golden_session("labels", 137, 7, line, "session_hostile.xml", &env);
	assert_string_equal(jstr(o, "applicant"), "O'Brien <&> \"Bob\"");
	assert_string_equal(jstr(o, "subjectName"), "]]></instruList>");
	assert_string_equal(jstr(o, "serviceType"), "内部用户");
	assert_string_equal(jstr(o, "serviceDirection"), "教学培训");
	assert_true(jnum(o, "amounts") == 0); /* unknown fee */
	assert_true(jnum(o, "serviceAmount") == 0.8); /* 0.75 h, half up */
	cJSON_Delete(o);
	free(env);
}

static void test_golden_session_midnight(void **state)
{
	(void)state;
	/* Across midnight; user omitted (user_ids "omit") and no org: both "无". */
	const char *line = "{\"seq\":1001,\"kind\":\"session\",\"instrument\":\"NMR\",\"start\":\"2026-12-31T23:30:00+08:00\","
			   "\"end\":\"2027-01-01T01:15:00+08:00\",\"duration_s\":6300,\"org\":\"\",\"external\":false,"
			   "\"closed\":\"auto\",\"source\":\"log\"}";
	char *env;
	cJSON *o = golden_session("int", 138, 1001, line, "session_midnight.xml", &env);
	assert_string_equal(jstr(o, "serviceTime"), "2026-12-31 23");
	assert_string_equal(jstr(o, "endTime"), "2027-01-01 01");
	assert_string_equal(jstr(o, "applicant"), "无");
	assert_string_equal(jstr(o, "applicantUnit"), "无");
	assert_true(jnum(o, "serviceAmount") == 1.8);
	cJSON_Delete(o);
	free(env);
}

static void test_golden_profile(void **state)
{
	(void)state;
	struct config *cfg = golden_cfg("int", 135);
	char *env = nrii_envelope_profile(cfg, &cfg->instruments[0], 12345, 6789);
	assert_non_null(env);
	assert_golden("profile_type4.xml", env);
	assert_non_null(strstr(env, "<instruType>4</instruType>"));
	cJSON *o = instru_list(env);
	assert_string_equal(jstr(o, "innerId"), INNER); /* the profile's innerId is not taken */
	assert_string_equal(jstr(o, "location"), "理科楼 B-112 <&>");
	assert_true(jnum(o, "worth") == 560.5);
	assert_true(jnum(o, "runMachine") == 3.43);
	assert_true(jnum(o, "serviceMachine") == 1.89);
	cJSON_Delete(o);
	free(env);
	config_free(cfg);
}

static void test_lengths_cut_by_characters(void **state)
{
	(void)state;
	struct config *cfg = golden_cfg("int", 135);
	char user[256] = "", org[1024] = "", project[2048] = "";
	for (int i = 0; i < 25; i++)
		strcat(user, "张");
	for (int i = 0; i < 60; i++)
		strcat(org, "太原a");       /* 180 characters, mixed widths */
	for (int i = 0; i < 210; i++)
		strcat(project, "\xf0\x9f\x94\xac"); /* U+1F52C, 4 bytes, two UTF-16 units each */
	char *line = h_strdupf("{\"seq\":5,\"kind\":\"session\",\"instrument\":\"NMR\",\"start\":\"2026-11-02T08:00:00+08:00\","
			       "\"end\":\"2026-11-02T09:00:00+08:00\",\"duration_s\":3600,\"user\":\"%s\",\"org\":\"%s\","
			       "\"external\":true,\"project\":\"%s\",\"source\":\"log\"}", user, org, project);
	char why[256];
	char *env = nrii_envelope_session(cfg, 5, line, why, sizeof(why));
	assert_non_null(env);
	cJSON *o = instru_list(env);
	assert_int_equal(utf8_chars(jstr(o, "applicant")), NRII_APPLICANT_MAX);
	assert_int_equal(utf8_chars(jstr(o, "applicantUnit")), NRII_UNIT_MAX);
	assert_int_equal(utf8_chars(jstr(o, "subjectName")), NRII_TEXT_MAX);
	assert_int_equal(strlen(jstr(o, "subjectName")), 4 * NRII_TEXT_MAX); /* whole characters only */
	cJSON_Delete(o);
	free(env);
	free(line);
	config_free(cfg);
}

static void test_session_refused_locally(void **state)
{
	(void)state;
	struct config *cfg = golden_cfg("int", 135);
	char why[256] = "";
	assert_null(nrii_envelope_session(cfg, 3, "{\"seq\":3,\"kind\":\"session\",\"instrument\":\"GONE\","
					  "\"start\":\"2026-11-02T08:00:00+08:00\",\"end\":\"2026-11-02T09:00:00+08:00\","
					  "\"duration_s\":3600,\"org\":\"x\",\"external\":true,\"source\":\"log\"}", why, sizeof(why)));
	assert_non_null(strstr(why, "\"GONE\""));
	assert_null(nrii_envelope_session(cfg, 4, "{\"seq\":4,\"kind\":\"run\"}", why, sizeof(why)));
	assert_non_null(strstr(why, "not a well-formed session"));
	/* A duration no integer holds is refused before any cast (a tampered or hostile record). */
	static const char *const durations[] = { "1e300", "-1", "9.3e18", "1e10" };
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		char *line = h_strdupf("{\"seq\":5,\"kind\":\"session\",\"instrument\":\"NMR\","
				       "\"start\":\"2026-11-02T08:00:00+08:00\",\"end\":\"2026-11-02T09:00:00+08:00\","
				       "\"duration_s\":%s,\"org\":\"x\",\"external\":true,\"source\":\"log\"}",
				       durations[i]);
		why[0] = '\0';
		char *env = nrii_envelope_session(cfg, 5, line, why, sizeof(why));
		if (env)
			fail_msg("duration_s %s: an envelope was made", durations[i]);
		assert_non_null(strstr(why, "not a well-formed session"));
		free(line);
	}
	config_free(cfg);
}

/* ---- the reply parser ---- */

struct reply_case {
	const char *name;
	const char *body;
	enum nrii_reply_kind kind;
	int code;
	const char *text;
};

#define ENV11 "xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""
#define RESP(x) "<soap:Envelope " ENV11 "><soap:Body><ns2:instruInfoResponse xmlns:ns2=\"http://instru.server.ws.com/\">" x \
		"</ns2:instruInfoResponse></soap:Body></soap:Envelope>"

static const struct reply_case reply_cases[] = {
	{ "plain", RESP("<return>100</return>"), NRII_REPLY_RETURN, 100, "100" },
	{ "text after the code", RESP("<return>201:缺少字段 applicant</return>"), NRII_REPLY_RETURN, 201,
	  "201:缺少字段 applicant" },
	{ "whitespace", RESP("<return>\n  203 busy \n</return>"), NRII_REPLY_RETURN, 203, "203 busy" },
	{ "entities", RESP("<return>&#50;04:&lt;gone&gt; &amp; &#x4E0D;在</return>"), NRII_REPLY_RETURN, 204,
	  "204:<gone> & 不在" },
	{ "cdata", RESP("<return><![CDATA[101:<bad> json]]></return>"), NRII_REPLY_RETURN, 101, "101:<bad> json" },
	{ "default namespace, other prefix",
	  "<?xml version=\"1.0\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Header/><S:Body>"
	  "<instruInfoResponse xmlns=\"http://instru.server.ws.com/\"><return xmlns=\"\">100</return></instruInfoResponse>"
	  "</S:Body></S:Envelope>", NRII_REPLY_RETURN, 100, "100" },
	{ "wrapped in a MIME part",
	  "--uuid:1\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	  RESP("<return>202:格式</return>") "\r\n--uuid:1--\r\n", NRII_REPLY_RETURN, 202, "202:格式" },
	{ "after an html banner", "<html><body>proxy says hi</body></html>\n" RESP("<return>100</return>") "\ntrailer",
	  NRII_REPLY_RETURN, 100, "100" },
	{ "unprefixed envelope",
	  "<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body><r xmlns=\"urn:x\"><return>301</return></r>"
	  "</Body></Envelope>", NRII_REPLY_RETURN, 301, "301" },
	{ "soap 1.1 fault",
	  "<soap:Envelope " ENV11 "><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>db &lt;down&gt;"
	  "</faultstring></soap:Fault></soap:Body></soap:Envelope>", NRII_REPLY_FAULT, 0, "db <down>" },
	{ "soap 1.2 fault",
	  "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body><e:Fault><e:Code><e:Value>e:Receiver"
	  "</e:Value></e:Code><e:Reason><e:Text xml:lang=\"en\">busy</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>",
	  NRII_REPLY_FAULT, 0, "busy" },
	{ "no return", RESP(""), NRII_REPLY_NONE, 0, "the reply has no \"return\"" },
	{ "return without a number", RESP("<return>ok</return>"), NRII_REPLY_NONE, 0, "ok" },
	{ "html only", "<html><body>502 Bad Gateway</body></html>", NRII_REPLY_NONE, 0, "no SOAP envelope in the reply" },
	{ "empty", "", NRII_REPLY_NONE, 0, "no SOAP envelope in the reply" },
	{ "cut short", "<soap:Envelope " ENV11 "><soap:Body><ns2:x xmlns:ns2=\"urn:x\"><return>10", NRII_REPLY_NONE, 0,
	  "no SOAP envelope in the reply" },
	{ "not well-formed", "<soap:Envelope " ENV11 "><soap:Body><return>100</soap:Body></soap:Envelope>",
	  NRII_REPLY_NONE, 0, "the reply's envelope is not well-formed XML" },
	{ "wrong namespace", "<soap:Envelope xmlns:soap=\"urn:not-soap\"><soap:Body><return>100</return></soap:Body>"
	  "</soap:Envelope>", NRII_REPLY_NONE, 0, "the reply is not a SOAP envelope" },
	{ "a DTD is refused",
	  "<!DOCTYPE soap:Envelope [<!ENTITY a \"100\">]><soap:Envelope " ENV11 "><soap:Body><return>&a;</return>"
	  "</soap:Body></soap:Envelope>", NRII_REPLY_NONE, 0, "" },
	{ "code too long", RESP("<return>1000000000000</return>"), NRII_REPLY_NONE, 0, "1000000000000" },
};

static void test_parse_reply_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct nrii_reply r;
		nrii_parse_reply(c->body, strlen(c->body), &r);
		if (r.kind != c->kind || r.code != c->code || (c->text[0] && strcmp(r.text, c->text) != 0))
			fail_msg("case \"%s\": kind %d code %d text \"%s\" (want %d %d \"%s\")", c->name, r.kind, r.code,
				 r.text, c->kind, c->code, c->text);
	}
	/* A reply cut at the cap, and NULL, are "no return" too. */
	struct nrii_reply r;
	nrii_parse_reply(NULL, 0, &r);
	assert_int_equal(r.kind, NRII_REPLY_NONE);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_session_chinese),
		cmocka_unit_test(test_golden_session_hostile),
		cmocka_unit_test(test_golden_session_midnight),
		cmocka_unit_test(test_golden_profile),
		cmocka_unit_test(test_lengths_cut_by_characters),
		cmocka_unit_test(test_session_refused_locally),
		cmocka_unit_test(test_parse_reply_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
