/* http.c — HTTP/1.1 over one TLS (or, on the --listen-http listener, plain) connection: request
 * parsing with caps, Content-Length and chunked bodies, Expect: 100-continue, keep-alive, the route
 * table, and the request log. The connection itself (transport, buffered reading, writing a reply,
 * the lingering close) is http_conn.c. */
#include "http_conn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>

/* The whole of the platform's surface: add a line here, write one handler. */
const struct rp_route rp_routes[] = {
	{ "POST", "/v1/feeds", feeds_post },
	{ "GET", "/v1/feeds/head", feeds_checkpoint_head },
	{ "GET", "/v1/feeds/hash", feeds_checkpoint_hash },
	{ "GET", "/v1/feeds/*/records", feeds_get_records },
	{ "GET", "/v1/feeds/*/head", feeds_get_head },
	{ "POST", "/cxf/instru", nrii_post },
	{ NULL, NULL, NULL },
};

#define CHUNK_LINE_MAX 1024
#define PATH_SEGMENTS_MAX 64

/* ---- reply helpers ---- */

void rp_reply_json(struct rp_response *resp, int status, char *json)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = json ? json : strdup("{}");
	resp->body_len = resp->body ? strlen(resp->body) : 0;
}

void rp_reply_error(struct rp_response *resp, int status, const char *text, long long seq)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", text);
	if (seq >= 0)
		cJSON_AddNumberToObject(o, "seq", (double)seq);
	rp_reply_json(resp, status, cJSON_PrintUnformatted(o));
	cJSON_Delete(o);
	snprintf(resp->error, sizeof(resp->error), "%s", text); /* cut is fine: it is only logged */
}

void rp_fault_note(struct rp_response *resp, const char *name)
{
	size_t used = strlen(resp->fault);
	int r = snprintf(resp->fault + used, sizeof(resp->fault) - used, "%s%s", used ? "," : "", name);
	(void)r; /* cut is fine: it is only logged */
}

const char *rp_header(const struct rp_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

bool rp_query_param(const struct rp_request *req, const char *name, char *dst, size_t dstlen)
{
	size_t nl = strlen(name);
	const char *p = req->query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl >= dstlen)
				return false;
			memcpy(dst, p + nl + 1, vl);
			dst[vl] = '\0';
			return true;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

/* ---- routing ---- */

struct seg {
	const char *s;
	size_t len;
};

static size_t split_segments(const char *path, struct seg *out, size_t max)
{
	size_t n = 0;
	const char *p = path;
	while (*p == '/') {
		p++;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (n == max)
			return max + 1;
		out[n].s = p;
		out[n].len = len;
		n++;
		p += len;
	}
	return n;
}

/* Matches the pattern against the path's last segments; captures '*' into req->params. */
static bool route_match(const char *pattern, const char *path, struct rp_request *req)
{
	struct seg ps[PATH_SEGMENTS_MAX], qs[PATH_SEGMENTS_MAX];
	size_t np = split_segments(pattern, ps, PATH_SEGMENTS_MAX);
	size_t nq = split_segments(path, qs, PATH_SEGMENTS_MAX);
	if (np > PATH_SEGMENTS_MAX || nq > PATH_SEGMENTS_MAX || nq < np)
		return false;
	size_t nparams = 0;
	for (size_t i = 0; i < np; i++) {
		const struct seg *a = &ps[i], *b = &qs[nq - np + i];
		if (a->len == 1 && a->s[0] == '*') {
			if (b->len == 0 || b->len >= RP_PARAM_LEN || nparams == RP_PARAMS_MAX)
				return false;
			memcpy(req->params[nparams], b->s, b->len);
			req->params[nparams][b->len] = '\0';
			nparams++;
		} else if (a->len != b->len || memcmp(a->s, b->s, a->len) != 0) {
			return false;
		}
	}
	req->nparams = nparams;
	return true;
}

static void dispatch(struct rp_server *srv, struct rp_request *req, struct rp_response *resp)
{
	bool path_known = false;
	for (const struct rp_route *r = rp_routes; r->method; r++) {
		if (!route_match(r->pattern, req->path, req))
			continue;
		path_known = true;
		if (strcmp(r->method, req->method) == 0) {
			r->handler(srv, req, resp);
			return;
		}
	}
	if (path_known)
		rp_reply_error(resp, 405, "method not allowed", -1);
	else
		rp_reply_error(resp, 404, "not found", -1);
}

/* ---- parsing ---- */

static bool is_token_char(int ch)
{
	return ch > 32 && ch < 127 && !strchr("()<>@,;:\\\"/[]?={}", ch);
}

/* Read the request line and headers into hbuf (cap RP_HEADER_MAX); fills req.
 * Returns 0, -1 on EOF/error before a request (just close), or an HTTP status to reply with. */
static int read_head(struct conn *c, char *hbuf, struct rp_request *req)
{
	size_t n = 0;
	int ch;
	/* Stray CR LF between requests is allowed (RFC 9112 §2.2). */
	do {
		ch = conn_getc(c);
		if (ch < 0)
			return -1;
	} while (ch == '\r' || ch == '\n');
	hbuf[n++] = (char)ch;
	for (;;) {
		ch = conn_getc(c);
		if (ch < 0)
			return -1;
		if (n + 1 >= RP_HEADER_MAX)
			return 431;
		hbuf[n++] = (char)ch;
		if (ch == '\n' && ((n >= 2 && hbuf[n - 2] == '\n') || (n >= 3 && hbuf[n - 2] == '\r' && hbuf[n - 3] == '\n')))
			break;
	}
	hbuf[n] = '\0';

	/* Split into NUL-terminated lines in place. */
	char *line = hbuf;
	char *eol = strchr(line, '\n');
	*eol = '\0';
	if (eol > line && eol[-1] == '\r')
		eol[-1] = '\0';

	/* Request line: METHOD SP target SP HTTP/1.x */
	char *sp1 = strchr(line, ' ');
	if (!sp1)
		return 400;
	char *sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || strchr(sp2 + 1, ' '))
		return 400;
	size_t ml = (size_t)(sp1 - line);
	if (ml == 0 || ml >= sizeof(req->method))
		return 400;
	for (size_t i = 0; i < ml; i++)
		if (!is_token_char((unsigned char)line[i]))
			return 400;
	memcpy(req->method, line, ml);
	req->method[ml] = '\0';
	*sp2 = '\0';
	char *target = sp1 + 1;
	const char *version = sp2 + 1;
	if (strcmp(version, "HTTP/1.1") == 0)
		req->minor = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		req->minor = 0;
	else if (strncmp(version, "HTTP/", 5) == 0)
		return 505;
	else
		return 400;
	if (target[0] != '/')
		return 400;
	char *q = strchr(target, '?');
	if (q) {
		*q = '\0';
		req->query = q + 1;
	} else {
		req->query = "";
	}
	req->path = target;

	/* Header fields. */
	line = eol + 1;
	while (*line && *line != '\r' && *line != '\n') {
		eol = strchr(line, '\n');
		*eol = '\0';
		if (eol > line && eol[-1] == '\r')
			eol[-1] = '\0';
		if (*line == ' ' || *line == '\t')
			return 400; /* obsolete line folding */
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			return 400;
		for (char *p = line; p < colon; p++)
			if (!is_token_char((unsigned char)*p))
				return 400;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			*--ve = '\0';
		if (req->nheaders == RP_HEADERS_MAX)
			return 431;
		req->headers[req->nheaders].name = line;
		req->headers[req->nheaders].value = v;
		req->nheaders++;
		line = eol + 1;
	}
	return 0;
}

static bool token_in_list(const char *list, const char *token)
{
	size_t tl = strlen(token);
	const char *p = list;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - p) == tl && strncasecmp(p, token, tl) == 0)
			return true;
		p = e;
	}
	return false;
}

/* Strict decimal, no sign, no overflow. */
static int parse_length(const char *s, size_t *out)
{
	if (!*s)
		return -1;
	size_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return 0;
}

struct body_plan {
	bool chunked;
	size_t length;     /* Content-Length */
	bool expect;       /* Expect: 100-continue */
};

static int body_framing(const struct rp_request *req, struct body_plan *bp)
{
	const char *te = NULL, *cl = NULL;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct rp_header *h = &req->headers[i];
		if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
			if (te)
				return 501; /* several codings stacked: not something an agent sends */
			te = h->value;
		} else if (strcasecmp(h->name, "Content-Length") == 0) {
			size_t v;
			if (parse_length(h->value, &v) < 0 || (cl && v != bp->length))
				return 400;
			cl = h->value;
			bp->length = v;
		}
	}
	if (te && cl)
		return 400; /* ambiguous framing: refused rather than guessed (request smuggling) */
	if (te) {
		if (strcasecmp(te, "chunked") != 0)
			return 501;
		bp->chunked = true;
	}
	const char *ex = rp_header(req, "Expect");
	if (ex) {
		if (strcasecmp(ex, "100-continue") != 0)
			return 417;
		bp->expect = req->minor >= 1;
	}
	return 0;
}

/* A body grown by chunks, with a cap; past the cap the rest is read and discarded so the
 * connection stays usable, up to RP_BODY_MAX, beyond which it is closed. */
static int read_chunked(struct conn *c, size_t cap, unsigned char **body, size_t *len, bool *over)
{
	size_t n = 0, alloc = 0;
	unsigned char *buf = NULL;
	char line[CHUNK_LINE_MAX];
	*over = false;
	for (;;) {
		int r = conn_line(c, line, sizeof(line));
		if (r < 0)
			goto fail;
		char *end = NULL;
		errno = 0;
		unsigned long long size = strtoull(line, &end, 16);
		if (errno || end == line || !isxdigit((unsigned char)line[0]) || (*end && *end != ';' && *end != ' '))
			goto bad;
		if (size == 0)
			break;
		if (size > RP_BODY_MAX || n + size > RP_BODY_MAX)
			goto toobig;
		if (n + size > cap)
			*over = true;
		if (*over) {
			if (conn_read(c, NULL, size) < 0)
				goto fail;
		} else {
			if (n + size + 1 > alloc) {
				size_t na = alloc ? alloc : 65536;
				while (na < n + size + 1)
					na *= 2;
				unsigned char *nb = realloc(buf, na);
				if (!nb)
					goto fail;
				buf = nb;
				alloc = na;
			}
			if (conn_read(c, buf + n, size) < 0)
				goto fail;
		}
		n += size;
		if (conn_line(c, line, sizeof(line)) != 0)
			goto bad;
	}
	/* Trailer fields: read and ignored. */
	size_t trailer = 0;
	for (;;) {
		int r = conn_line(c, line, sizeof(line));
		if (r < 0)
			goto bad;
		if (r == 0)
			break;
		trailer += (size_t)r;
		if (trailer > RP_HEADER_MAX)
			goto bad;
	}
	if (!buf)
		buf = malloc(1);
	if (!buf)
		goto fail;
	buf[*over ? 0 : n] = '\0';
	*body = buf;
	*len = n;
	return 0;
bad:
	free(buf);
	return 400;
toobig:
	free(buf);
	return 413;
fail:
	free(buf);
	return -1;
}

/* ---- one connection ---- */

static void log_request(struct rp_server *srv, const struct rp_request *req, const struct rp_response *resp,
			size_t body_bytes, bool replied)
{
	const char *key = rp_header(req, "Idempotency-Key");
	struct rp_reqlog l = {
		.conn_id = req->conn_id,
		.method = req->method,
		.path = req->path ? req->path : "",
		.status = resp->status,
		.replied = replied,
		.body_bytes = body_bytes,
		.gzip = resp->gzip,
		.idempotency_key = key,
		.user_agent = rp_header(req, "User-Agent"),
		.content_type = rp_header(req, "Content-Type"),
		.content_encoding = rp_header(req, "Content-Encoding"),
		.agent_id = resp->agent_id[0] ? resp->agent_id : NULL,
		.first_seq = resp->first_seq,
		.last_seq = resp->last_seq,
		.fault = resp->fault[0] ? resp->fault : NULL,
		.error = resp->error[0] ? resp->error : NULL,
	};
	store_log_request(srv->store, &l);
	stats_request(srv, resp->status, replied, body_bytes);
	if (resp->first_seq > 0)
		rp_log("#%lu %s %s %d%s %zu bytes%s key=%s seq %lld-%lld%s%s", req->conn_id, req->method, l.path,
		       resp->status, replied ? "" : " (not sent)", body_bytes, resp->gzip ? " gzip" : "",
		       key ? key : "-", resp->first_seq, resp->last_seq, l.fault ? " fault=" : "",
		       l.fault ? l.fault : "");
	else
		rp_log("#%lu %s %s %d%s %zu bytes%s%s", req->conn_id, req->method, l.path, resp->status,
		       replied ? "" : " (not sent)", body_bytes, l.fault ? " fault=" : "", l.fault ? l.fault : "");
}

enum next { NEXT_CLOSE, NEXT_KEEP, NEXT_ABORT };

/* Serve one request; what to do with the connection afterwards. */
static enum next serve_one(struct rp_server *srv, struct conn *c, char *hbuf)
{
	struct rp_request req = { .conn_id = c->id };
	struct rp_response resp = { .status = 500, .retry_after = -1 };
	bool keep = false;
	struct body_plan bp = { 0 };

	int st = read_head(c, hbuf, &req);
	if (st < 0)
		return NEXT_CLOSE;
	if (st > 0) {
		/* The request can't be framed: reply and close. */
		rp_reply_error(&resp, st, st == 431 ? "request header too large" : "bad request", -1);
		resp.close = true;
		if (!req.method[0])
			snprintf(req.method, sizeof(req.method), "-");
		log_request(srv, &req, &resp, 0, true);
		send_response(c, &resp);
		free(resp.body);
		return NEXT_CLOSE;
	}
	st = body_framing(&req, &bp);
	if (st == 0 && !bp.chunked && bp.length > RP_BODY_MAX)
		st = 413;
	if (st > 0) {
		rp_reply_error(&resp, st, st == 413 ? "body too large" : "bad request framing", -1);
		resp.close = true;
		log_request(srv, &req, &resp, bp.length, true);
		send_response(c, &resp);
		free(resp.body);
		return NEXT_CLOSE;
	}

	size_t cap = faults_max_body(srv);
	bool over = false;
	if (!bp.chunked && bp.length > cap) {
		if (bp.expect) {
			/* The client waits for our word before sending: refuse now, it sends nothing. */
			rp_reply_error(&resp, 413, "body too large", -1);
			resp.close = true;
			rp_fault_note(&resp, "max_body");
			log_request(srv, &req, &resp, bp.length, true);
			send_response(c, &resp);
			free(resp.body);
			return NEXT_CLOSE;
		}
		over = true;
	}
	if (bp.expect && (bp.chunked || bp.length > 0)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (conn_write(c, cont, sizeof(cont) - 1) < 0)
			return NEXT_CLOSE;
	}

	size_t received = 0;
	if (bp.chunked) {
		st = read_chunked(c, cap, &req.body, &req.body_len, &over);
		if (st < 0)
			return NEXT_CLOSE;
		if (st > 0) {
			rp_reply_error(&resp, st, st == 413 ? "body too large" : "bad chunked body", -1);
			resp.close = true;
			log_request(srv, &req, &resp, req.body_len, true);
			send_response(c, &resp);
			free(resp.body);
			return NEXT_CLOSE;
		}
		received = req.body_len;
	} else if (over) {
		if (conn_read(c, NULL, bp.length) < 0)
			return NEXT_CLOSE;
		received = bp.length;
	} else {
		req.body = malloc(bp.length + 1);
		if (!req.body)
			return NEXT_CLOSE;
		if (conn_read(c, req.body, bp.length) < 0) {
			free(req.body);
			return NEXT_CLOSE;
		}
		req.body[bp.length] = '\0';
		req.body_len = received = bp.length;
	}

	if (over) {
		rp_reply_error(&resp, 413, "body too large", -1);
		rp_fault_note(&resp, "max_body");
	} else {
		dispatch(srv, &req, &resp);
	}

	const char *connhdr = rp_header(&req, "Connection");
	keep = req.minor >= 1 ? !(connhdr && token_in_list(connhdr, "close"))
			      : (connhdr && token_in_list(connhdr, "keep-alive"));
	if (resp.close)
		keep = false;
	else if (!keep)
		resp.close = true;

	/* Logged and counted before the reply leaves: whoever reads the reply may look at once. */
	log_request(srv, &req, &resp, received, !resp.drop);
	if (resp.delay_ms > 0)
		rp_wait_ms(srv, resp.delay_ms);
	bool abort_conn = false;
	if (resp.drop) {
		keep = false;
		abort_conn = true;
	} else if (send_response(c, &resp) < 0) {
		rp_log("#%lu reply not delivered: the client went away", c->id);
		keep = false;
	}
	free(resp.body);
	free(req.body);
	if (abort_conn)
		return NEXT_ABORT;
	return keep ? NEXT_KEEP : NEXT_CLOSE;
}

void http_serve(struct rp_server *srv, SSL *ssl, int fd, unsigned long conn_id)
{
	if (ssl && SSL_accept(ssl) != 1) {
		unsigned long e = ERR_peek_error();
		char buf[256] = "connection closed";
		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		rp_log("#%lu tls handshake failed: %s", conn_id, buf);
		ERR_clear_error();
		stats_connection(srv, false);
		return;
	}
	stats_connection(srv, true);
	struct conn *c = calloc(1, sizeof(*c));
	char *hbuf = malloc(RP_HEADER_MAX);
	if (c && hbuf) {
		c->ssl = ssl;
		c->fd = fd;
		c->id = conn_id;
		enum next nx;
		while ((nx = serve_one(srv, c, hbuf)) == NEXT_KEEP)
			;
		/* Not for dropped replies: there the peer must see a plain close, as from a crash. */
		if (nx == NEXT_CLOSE && !c->eof) {
			if (ssl)
				SSL_shutdown(ssl);
			linger_close(fd);
		}
	}
	ERR_clear_error();
	free(hbuf);
	free(c);
}
