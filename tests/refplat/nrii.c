/* nrii.c — SPEC §8 as the platform sees it: POST …/cxf/instru with a SOAP 1.1 envelope checked with
 * libxml2, the instruList JSON checked field by field and format by format (both in nrii_soap.c),
 * each record stored once in nrii_records (same db, own connection), replies shaped as CXF shapes
 * them, and every return code on demand from the control. */
#include "nrii_soap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <sqlite3.h>

#define UNKNOWN_MAX 16
#define RETURN_MAX 999
#define FOREVER (-1L)

static const char SCHEMA_SQL[] =
	"CREATE TABLE IF NOT EXISTS nrii_records(ins_code TEXT NOT NULL, type INTEGER NOT NULL,"
	" record_key TEXT NOT NULL, inner_id TEXT NOT NULL, json TEXT NOT NULL, received_at INTEGER NOT NULL,"
	" updates INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(ins_code, type, record_key));";

/* Type 6 is stored once per recordInnerId (a resend is a duplicate); type 4 is the instrument's
 * current state, so a later one replaces it. */
static const char INSERT6_SQL[] =
	"INSERT OR IGNORE INTO nrii_records(ins_code, type, record_key, inner_id, json, received_at)"
	" VALUES(?1, 6, ?2, ?3, ?4, ?5)";
static const char UPSERT4_SQL[] =
	"INSERT INTO nrii_records(ins_code, type, record_key, inner_id, json, received_at)"
	" VALUES(?1, 4, ?2, ?2, ?3, ?4) ON CONFLICT(ins_code, type, record_key) DO UPDATE SET"
	" json = excluded.json, received_at = excluded.received_at, updates = updates + 1";

struct fault {
	long count;                 /* remaining uses, FOREVER, 0 off */
	int arg;
	char text[TEXT_MAX];
};

static struct {
	pthread_mutex_t mu;         /* everything below */
	sqlite3 *db;
	sqlite3_stmt *insert6, *upsert4;
	char ins_codes[RP_INS_CODES_MAX][RP_INS_CODE_LEN];
	size_t nins_codes;
	struct fault faults[NRII_F_WRAP + 1];
	char unknown[UNKNOWN_MAX][RP_PARAM_LEN];
	size_t nunknown;
	unsigned long long posts, stored, dups, updates, faults_sent, dropped, by_return[RETURN_MAX + 1];
	char last_soap_action[256], last_content_type[256];
	bool have_soap_action, have_content_type;
} nrii = { .mu = PTHREAD_MUTEX_INITIALIZER };

int nrii_init(struct rp_server *srv, const char *db_path, const char *const ins_codes[], size_t n)
{
	(void)srv;
	xmlInitParser(); /* before any connection thread parses */
	for (size_t i = 0; i < n && i < RP_INS_CODES_MAX; i++)
		snprintf(nrii.ins_codes[nrii.nins_codes++], RP_INS_CODE_LEN, "%s", ins_codes[i]); /* checked */
	if (sqlite3_open_v2(db_path, &nrii.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		rp_log("nrii: cannot open --db '%s': %s", db_path, nrii.db ? sqlite3_errmsg(nrii.db) : "out of memory");
		return -EIO;
	}
	sqlite3_busy_timeout(nrii.db, 5000); /* the feeds' connection and tests share the file */
	char *err = NULL;
	if (sqlite3_exec(nrii.db, SCHEMA_SQL, NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_prepare_v3(nrii.db, INSERT6_SQL, -1, SQLITE_PREPARE_PERSISTENT, &nrii.insert6, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(nrii.db, UPSERT4_SQL, -1, SQLITE_PREPARE_PERSISTENT, &nrii.upsert4, NULL) != SQLITE_OK) {
		rp_log("nrii: cannot set up --db '%s': %s", db_path, err ? err : sqlite3_errmsg(nrii.db));
		sqlite3_free(err);
		return -EIO;
	}
	return 0;
}

void nrii_free(struct rp_server *srv)
{
	(void)srv;
	pthread_mutex_lock(&nrii.mu);
	sqlite3_finalize(nrii.insert6);
	sqlite3_finalize(nrii.upsert4);
	sqlite3_close(nrii.db);
	nrii.db = NULL;
	pthread_mutex_unlock(&nrii.mu);
}

/* ---- control ---- */

const char *nrii_fault_set(enum nrii_fault_kind kind, int arg, long count, const char *text, size_t text_len)
{
	if (text_len >= TEXT_MAX)
		return "nrii: text too long";
	pthread_mutex_lock(&nrii.mu);
	struct fault *f = &nrii.faults[kind];
	f->count = count;
	f->arg = arg;
	snprintf(f->text, sizeof(f->text), "%.*s", (int)text_len, text ? text : ""); /* checked above */
	pthread_mutex_unlock(&nrii.mu);
	return NULL;
}

const char *nrii_unknown_instrument(const char *inner_id, size_t len)
{
	if (len == 0 || len >= RP_PARAM_LEN)
		return "nrii unknown_instrument: INNERID must be 1..127 bytes";
	const char *err = NULL;
	pthread_mutex_lock(&nrii.mu);
	if (nrii.nunknown == UNKNOWN_MAX) {
		err = "nrii unknown_instrument: too many (clear first)";
	} else {
		memcpy(nrii.unknown[nrii.nunknown], inner_id, len);
		nrii.unknown[nrii.nunknown++][len] = '\0';
	}
	pthread_mutex_unlock(&nrii.mu);
	return err;
}

const char *nrii_add_ins_code(const char *code, size_t len)
{
	if (len == 0 || len >= RP_INS_CODE_LEN)
		return "nrii ins_code: CODE must be 1..127 bytes";
	const char *err = NULL;
	pthread_mutex_lock(&nrii.mu);
	if (nrii.nins_codes == RP_INS_CODES_MAX) {
		err = "nrii ins_code: too many";
	} else {
		memcpy(nrii.ins_codes[nrii.nins_codes], code, len);
		nrii.ins_codes[nrii.nins_codes++][len] = '\0';
	}
	pthread_mutex_unlock(&nrii.mu);
	return err;
}

void nrii_clear(void)
{
	pthread_mutex_lock(&nrii.mu);
	memset(nrii.faults, 0, sizeof(nrii.faults));
	nrii.nunknown = 0;
	pthread_mutex_unlock(&nrii.mu);
}

char *nrii_stats_json(void)
{
	cJSON *o = cJSON_CreateObject(), *br = cJSON_CreateObject();
	pthread_mutex_lock(&nrii.mu);
	cJSON_AddNumberToObject(o, "posts", (double)nrii.posts);
	cJSON_AddNumberToObject(o, "stored", (double)nrii.stored);
	cJSON_AddNumberToObject(o, "dups", (double)nrii.dups);
	cJSON_AddNumberToObject(o, "updates", (double)nrii.updates);
	cJSON_AddNumberToObject(o, "faults", (double)nrii.faults_sent);
	cJSON_AddNumberToObject(o, "dropped", (double)nrii.dropped);
	for (int c = 0; c <= RETURN_MAX; c++) {
		if (nrii.by_return[c]) {
			char k[16];
			snprintf(k, sizeof(k), "%d", c); /* 0..999: fits */
			cJSON_AddNumberToObject(br, k, (double)nrii.by_return[c]);
		}
	}
	cJSON_AddItemToObject(o, "by_return", br);
	if (nrii.have_soap_action)
		cJSON_AddStringToObject(o, "last_soap_action", nrii.last_soap_action);
	else
		cJSON_AddNullToObject(o, "last_soap_action");
	if (nrii.have_content_type)
		cJSON_AddStringToObject(o, "last_content_type", nrii.last_content_type);
	else
		cJSON_AddNullToObject(o, "last_content_type");
	pthread_mutex_unlock(&nrii.mu);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* ---- one request's faults, decided (and counted down) when it arrives ---- */

struct plan {
	bool on[NRII_F_WRAP + 1];
	int arg[NRII_F_WRAP + 1];
	char return_text[TEXT_MAX];
};

static bool take(long *count)
{
	if (*count == 0)
		return false;
	if (*count > 0)
		(*count)--;
	return true;
}

static void take_plan(struct plan *p, const struct rp_request *req)
{
	memset(p, 0, sizeof(*p));
	const char *sa = rp_header(req, "SOAPAction"), *ct = rp_header(req, "Content-Type");
	pthread_mutex_lock(&nrii.mu);
	nrii.posts++;
	nrii.have_soap_action = sa != NULL;
	snprintf(nrii.last_soap_action, sizeof(nrii.last_soap_action), "%s", sa ? sa : ""); /* a cut is fine */
	nrii.have_content_type = ct != NULL;
	snprintf(nrii.last_content_type, sizeof(nrii.last_content_type), "%s", ct ? ct : "");
	for (int k = 0; k <= NRII_F_WRAP; k++) {
		if (take(&nrii.faults[k].count)) {
			p->on[k] = true;
			p->arg[k] = nrii.faults[k].arg;
		}
	}
	memcpy(p->return_text, nrii.faults[NRII_F_RETURN].text, sizeof(p->return_text));
	pthread_mutex_unlock(&nrii.mu);
}

/* ---- replies, shaped as Apache CXF shapes them ---- */

static int add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 1024;
		while (c < *len + n + 1)
			c *= 2;
		char *q = realloc(*buf, c);
		if (!q)
			return -ENOMEM;
		*buf = q;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

static int add_s(char **buf, size_t *len, size_t *cap, const char *s)
{
	return add(buf, len, cap, s, strlen(s));
}

static int add_escaped(char **buf, size_t *len, size_t *cap, const char *s)
{
	int r = 0;
	for (; *s && r == 0; s++) {
		switch (*s) {
		case '&': r = add_s(buf, len, cap, "&amp;"); break;
		case '<': r = add_s(buf, len, cap, "&lt;"); break;
		case '>': r = add_s(buf, len, cap, "&gt;"); break;
		default: r = add(buf, len, cap, s, 1);
		}
	}
	return r;
}

#define WRAP_BOUNDARY "uuid:7c1e5a0e-refplat-mtom"

static void reply_body(struct rp_response *resp, int status, bool wrap, const char *inner)
{
	char *b = NULL;
	size_t len = 0, cap = 0;
	int r = 0;
	if (wrap) {
		/* An MTOM reply: the envelope is one MIME part among text that is not XML. */
		r = add_s(&b, &len, &cap, "--" WRAP_BOUNDARY "\r\nContent-Type: application/xop+xml; charset=UTF-8; "
			  "type=\"text/xml\"\r\nContent-Transfer-Encoding: binary\r\nContent-ID: "
			  "<root.message@cxf.apache.org>\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
			  "<S:Envelope xmlns:S=\"" NS_SOAP "\"><S:Header/><S:Body>");
	} else {
		r = add_s(&b, &len, &cap, "<soap:Envelope xmlns:soap=\"" NS_SOAP "\"><soap:Body>");
	}
	if (r == 0)
		r = add_s(&b, &len, &cap, inner);
	if (r == 0)
		r = add_s(&b, &len, &cap, wrap ? "</S:Body></S:Envelope>\r\n--" WRAP_BOUNDARY "--\r\n"
					      : "</soap:Body></soap:Envelope>");
	free(resp->body);
	resp->status = status;
	resp->content_type = wrap ? "multipart/related; type=\"application/xop+xml\"; boundary=\"" WRAP_BOUNDARY
				    "\"; start=\"<root.message@cxf.apache.org>\"; start-info=\"text/xml\""
				  : "text/xml;charset=UTF-8";
	resp->body = r == 0 ? b : NULL;
	resp->body_len = r == 0 ? len : 0;
	if (r != 0)
		free(b);
}

static void reply_fault(struct rp_response *resp, const char *code, const char *why, bool wrap)
{
	char *inner = NULL;
	size_t len = 0, cap = 0;
	int r = add_s(&inner, &len, &cap, wrap ? "<S:Fault><faultcode>S:" : "<soap:Fault><faultcode>soap:");
	if (r == 0)
		r = add_s(&inner, &len, &cap, code);
	if (r == 0)
		r = add_s(&inner, &len, &cap, "</faultcode><faultstring>");
	if (r == 0)
		r = add_escaped(&inner, &len, &cap, why);
	if (r == 0)
		r = add_s(&inner, &len, &cap, wrap ? "</faultstring></S:Fault>" : "</faultstring></soap:Fault>");
	reply_body(resp, 500, wrap, r == 0 ? inner : "");
	free(inner);
	snprintf(resp->error, sizeof(resp->error), "soap fault: %s", why); /* only logged */
	pthread_mutex_lock(&nrii.mu);
	nrii.faults_sent++;
	pthread_mutex_unlock(&nrii.mu);
}

/* `return` as CXF writes it for a String result; wrapped: another prefix, a default namespace
 * and the text in CDATA, which a reader must handle as well. */
static void reply_return(struct rp_response *resp, int code, const char *text, bool wrap)
{
	char num[16], *inner = NULL;
	size_t len = 0, cap = 0;
	snprintf(num, sizeof(num), "%d", code); /* 0..999 */
	int r = add_s(&inner, &len, &cap, wrap ? "<instruInfoResponse xmlns=\"" NS_NRII "\"><return xmlns=\"\"><![CDATA["
					       : "<ns2:instruInfoResponse xmlns:ns2=\"" NS_NRII "\"><return>");
	if (r == 0)
		r = add_s(&inner, &len, &cap, num);
	if (r == 0 && text && *text) {
		r = add_s(&inner, &len, &cap, ":");
		if (r == 0 && wrap)
			r = strstr(text, "]]>") ? -EINVAL : add_s(&inner, &len, &cap, text);
		else if (r == 0)
			r = add_escaped(&inner, &len, &cap, text);
	}
	if (r == 0)
		r = add_s(&inner, &len, &cap, wrap ? "]]></return></instruInfoResponse>" : "</return></ns2:instruInfoResponse>");
	reply_body(resp, 200, wrap, r == 0 ? inner : "");
	free(inner);
	if (code != 100)
		snprintf(resp->error, sizeof(resp->error), "return %d:%s", code, text ? text : ""); /* only logged */
	pthread_mutex_lock(&nrii.mu);
	if (code >= 0 && code <= RETURN_MAX)
		nrii.by_return[code]++;
	pthread_mutex_unlock(&nrii.mu);
}

static bool ins_code_known(const char *code)
{
	pthread_mutex_lock(&nrii.mu);
	bool ok = nrii.nins_codes == 0 && *code;
	for (size_t i = 0; i < nrii.nins_codes; i++)
		if (strcmp(nrii.ins_codes[i], code) == 0)
			ok = true;
	pthread_mutex_unlock(&nrii.mu);
	return ok;
}

static bool inner_id_unknown(const char *inner)
{
	pthread_mutex_lock(&nrii.mu);
	bool hit = false;
	for (size_t i = 0; i < nrii.nunknown; i++)
		if (strcmp(nrii.unknown[i], inner) == 0)
			hit = true;
	pthread_mutex_unlock(&nrii.mu);
	return hit;
}

/* 0 stored, 1 a duplicate (type 6) or an update (type 4), -1 on a storage error. */
static int store(int type, const char *ins_code, const cJSON *rec, const char *json)
{
	const char *inner = cJSON_GetObjectItem(rec, "innerId")->valuestring;
	sqlite3_int64 now = (sqlite3_int64)time(NULL);
	pthread_mutex_lock(&nrii.mu);
	sqlite3_stmt *s = type == 6 ? nrii.insert6 : nrii.upsert4;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	sqlite3_bind_text(s, 1, ins_code, -1, SQLITE_TRANSIENT);
	if (type == 6) {
		sqlite3_bind_text(s, 2, cJSON_GetObjectItem(rec, "recordInnerId")->valuestring, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 3, inner, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 4, json, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 5, now);
	} else {
		sqlite3_bind_text(s, 2, inner, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 3, json, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 4, now);
	}
	int rc = sqlite3_step(s);
	int changes = sqlite3_changes(nrii.db);
	sqlite3_reset(s);
	int r;
	if (rc != SQLITE_DONE) {
		rp_log("nrii: sqlite: storing a record: %s", sqlite3_errmsg(nrii.db));
		r = -1;
	} else if (type == 6) {
		r = changes ? 0 : 1;
		if (r)
			nrii.dups++;
		else
			nrii.stored++;
	} else {
		/* The upsert changes one row either way: an update when the row was there before. */
		sqlite3_stmt *q = NULL;
		r = 0;
		if (sqlite3_prepare_v2(nrii.db, "SELECT updates FROM nrii_records WHERE ins_code = ?1 AND type = 4"
				       " AND record_key = ?2", -1, &q, NULL) == SQLITE_OK) {
			sqlite3_bind_text(q, 1, ins_code, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(q, 2, inner, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0)
				r = 1;
		}
		sqlite3_finalize(q);
		if (r)
			nrii.updates++;
		else
			nrii.stored++;
	}
	pthread_mutex_unlock(&nrii.mu);
	return r;
}

static bool header_has(const char *value, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = value; p && *p; p++)
		if (strncasecmp(p, token, n) == 0)
			return true;
	return false;
}

void nrii_post(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	struct plan p;
	take_plan(&p, req);
	bool wrap = p.on[NRII_F_WRAP];
	if (p.on[NRII_F_DROP])
		rp_fault_note(resp, "drop_reply");
	if (p.on[NRII_F_SLOW])
		rp_fault_note(resp, "slow");
	if (p.on[NRII_F_STATUS]) {
		/* A proxy or a servlet container in trouble: not SOAP at all. */
		char text[64];
		int n = snprintf(text, sizeof(text), "<html><body>injected %d</body></html>", p.arg[NRII_F_STATUS]);
		free(resp->body);
		resp->status = p.arg[NRII_F_STATUS];
		resp->content_type = "text/html";
		resp->body = n > 0 ? strdup(text) : NULL;
		resp->body_len = resp->body ? strlen(resp->body) : 0;
		rp_fault_note(resp, "status");
		return;
	}
	const char *ct = rp_header(req, "Content-Type");
	if (!ct || strncasecmp(ct, "text/xml", 8) != 0 || !header_has(ct, "charset=utf-8")) {
		rp_reply_error(resp, 415, "content-type must be text/xml; charset=utf-8", -1);
		return;
	}
	if (!rp_header(req, "SOAPAction")) {
		reply_fault(resp, "Client", "SOAPAction header missing (SOAP 1.1)", wrap);
		return;
	}
	if (req->body_len > (size_t)1 << 24 || memmem(req->body, req->body_len, "<!DOCTYPE", 9)) {
		reply_fault(resp, "Client", "a DTD or an oversized envelope", wrap);
		return;
	}
	xmlDoc *doc = xmlReadMemory((const char *)req->body, (int)req->body_len, "request.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	struct call call = { 0 };
	char why[256];
	const char *bad = doc ? nrii_check_envelope(doc, &call, why, sizeof(why)) : "the envelope is not well-formed XML";
	cJSON *rec = NULL;
	if (bad) {
		reply_fault(resp, "Client", bad, wrap);
		goto out;
	}
	if (p.on[NRII_F_SOAP]) {
		reply_fault(resp, "Server", "injected fault", wrap);
		goto out;
	}
	if (p.on[NRII_F_NORETURN]) {
		reply_body(resp, 200, wrap, "<ns2:instruInfoResponse xmlns:ns2=\"" NS_NRII "\"/>");
		goto out;
	}
	if (p.on[NRII_F_RETURN]) {
		reply_return(resp, p.arg[NRII_F_RETURN], p.return_text, wrap);
		goto out;
	}
	const char *ins = (const char *)call.ins_code, *type = (const char *)call.type;
	const char *list = (const char *)call.list;
	if (!ins_code_known(ins)) {
		reply_return(resp, 200, "单位编码错误", wrap);
		goto out;
	}
	if (strcmp(type, "6") != 0 && strcmp(type, "4") != 0) {
		reply_return(resp, 202, "字段格式错误 instruType", wrap);
		goto out;
	}
	/* One JSON object, non-ASCII as \uXXXX: the platform's stack reads it as Latin-1. */
	struct json_top top;
	size_t len = strlen(list);
	if (!nrii_ascii(call.list) || !json_scan(list, len, &top) || !top.is_object ||
	    !(rec = cJSON_ParseWithLength(list, len))) {
		reply_return(resp, 101, "数据格式错误", wrap);
		goto out;
	}
	struct verdict v = { 0 };
	if (type[0] == '6')
		nrii_check_service(rec, ins, &v);
	else
		nrii_check_instrument(rec, ins, &v);
	if (v.code) {
		reply_return(resp, v.code, v.text, wrap);
		goto out;
	}
	if (type[0] == '6' && inner_id_unknown(cJSON_GetObjectItem(rec, "innerId")->valuestring)) {
		reply_return(resp, 204, "仪器不存在", wrap);
		goto out;
	}
	if (store(type[0] - '0', ins, rec, list) < 0) {
		reply_fault(resp, "Server", "storage failed", wrap);
		goto out;
	}
	reply_return(resp, 100, NULL, wrap);
	/* Stored, then the reply lost or late: what a crash or a cut line does to the agent. */
	if (p.on[NRII_F_DROP]) {
		resp->drop = true;
		pthread_mutex_lock(&nrii.mu);
		nrii.dropped++;
		pthread_mutex_unlock(&nrii.mu);
	}
	if (p.on[NRII_F_SLOW])
		resp->delay_ms = p.arg[NRII_F_SLOW];
out:
	(void)srv;
	cJSON_Delete(rec);
	xmlFree(call.ins_code);
	xmlFree(call.type);
	xmlFree(call.list);
	xmlFreeDoc(doc);
}
