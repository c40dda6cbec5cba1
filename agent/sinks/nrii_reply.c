/* nrii_reply.c — what the NRII platform answered (SPEC §8): the SOAP envelope found wherever the
 * reply hides it, read with libxml2 (no network, no DTD), its `return` code or its fault. */
#include "nrii_reply.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char SOAP11_NS[] = "http://schemas.xmlsoap.org/soap/envelope/";
static const char SOAP12_NS[] = "http://www.w3.org/2003/05/soap-envelope";

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
	xmlInitParser();
}

void nrii_reply_init(void)
{
	pthread_once(&xml_once, xml_init);
}

static bool name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-' || c == '.' || c >= 0x80;
}

static bool tag_end(unsigned char c)
{
	return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The span of the first "<[prefix:]Envelope …>" through the last matching end tag, with an XML
 * declaration right before it (its encoding matters). Replies come wrapped in MIME parts
 * (MTOM), after a proxy's banner, or inside an HTML error page. */
static bool find_envelope(const char *s, size_t len, size_t *from, size_t *to)
{
	static const char tag[] = "Envelope";
	const size_t tl = sizeof(tag) - 1;
	int tries = 0;
	/* A few candidates only: each one scans for its end tag, and the reply is not trusted. */
	for (size_t i = 1; i + tl <= len && tries < 8; i++) {
		if (memcmp(s + i, tag, tl) != 0 || (i + tl < len && !tag_end((unsigned char)s[i + tl])))
			continue;
		size_t q = i; /* start of the qualified name */
		if (s[q - 1] == ':') {
			q--;
			while (q > 0 && name_char((unsigned char)s[q - 1]))
				q--;
			if (q == i - 1)
				continue;
		}
		if (q == 0 || s[q - 1] != '<')
			continue;
		size_t qlen = i + tl - q;
		tries++;
		/* The last end tag: a body may carry more than one envelope-like string before it. */
		for (size_t j = len; j-- > i + tl;) {
			if (s[j] != '<' || j + 2 + qlen > len || s[j + 1] != '/' || memcmp(s + j + 2, s + q, qlen) != 0)
				continue;
			size_t k = j + 2 + qlen;
			while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\n'))
				k++;
			if (k >= len || s[k] != '>')
				continue;
			*from = q - 1;
			*to = k + 1;
			/* An XML declaration just before it (whitespace between) goes with it. */
			size_t p = q - 1;
			while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t' || s[p - 1] == '\r' || s[p - 1] == '\n'))
				p--;
			if (p >= 2 && s[p - 1] == '>' && s[p - 2] == '?') {
				for (size_t d = p - 2; d-- > 0;) {
					if (s[d] == '<') {
						if (p - d >= 7 && memcmp(s + d, "<?xml", 5) == 0 && tag_end((unsigned char)s[d + 5]))
							*from = d;
						break;
					}
				}
			}
			return true;
		}
	}
	return false;
}

static bool is_elem(const xmlNode *n, const char *local)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, local) == 0;
}

static bool in_ns(const xmlNode *n, const char *href)
{
	return n->ns && n->ns->href && strcmp((const char *)n->ns->href, href) == 0;
}

static xmlNode *child(const xmlNode *parent, const char *local, const char *href)
{
	for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
		if (is_elem(c, local) && (!href || in_ns(c, href)))
			return c;
	return NULL;
}

/* Depth-first, bounded: the first element with this local name in any namespace. */
static xmlNode *descendant(xmlNode *n, const char *local, int depth)
{
	if (depth > 32)
		return NULL;
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_elem(c, local))
			return c;
		xmlNode *d = descendant(c, local, depth + 1);
		if (d)
			return d;
	}
	return NULL;
}

/* The element's text (entities, character references and CDATA resolved), trimmed, cut at a
 * character boundary, on one line. */
static void node_text(xmlNode *n, char *out, size_t outlen)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	const char *s = t ? (const char *)t : "";
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	size_t keep = len < outlen - 1 ? len : outlen - 1;
	while (keep > 0 && keep < len && ((unsigned char)s[keep] & 0xc0) == 0x80)
		keep--; /* never end inside a UTF-8 sequence */
	memcpy(out, s, keep);
	out[keep] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' '; /* one log line per message */
	xmlFree(t);
}

void nrii_parse_reply(const char *body, size_t len, struct nrii_reply *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = NRII_REPLY_NONE;
	size_t from, to;
	if (!body || !find_envelope(body, len, &from, &to)) {
		snprintf(out->text, sizeof(out->text), "no SOAP envelope in the reply");
		return;
	}
	if (to - from > INT_MAX) {
		snprintf(out->text, sizeof(out->text), "the reply's envelope is too large");
		return;
	}
	/* SOAP forbids a DTD, and refusing one keeps entity expansion out of reach. */
	if (memmem(body + from, to - from, "<!DOCTYPE", 9) || memmem(body + from, to - from, "<!ENTITY", 8)) {
		snprintf(out->text, sizeof(out->text), "the reply's envelope carries a DTD");
		return;
	}
	nrii_reply_init();
	xmlDoc *doc = xmlReadMemory(body + from, (int)(to - from), "reply.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	const char *env_ns = root && in_ns(root, SOAP11_NS) ? SOAP11_NS : root && in_ns(root, SOAP12_NS) ? SOAP12_NS : NULL;
	if (!doc || !is_elem(root, "Envelope") || !env_ns) {
		snprintf(out->text, sizeof(out->text), "%s", doc ? "the reply is not a SOAP envelope" :
			 "the reply's envelope is not well-formed XML");
		goto done;
	}
	xmlNode *sbody = child(root, "Body", env_ns);
	xmlNode *fault = child(sbody, "Fault", env_ns);
	if (fault) {
		out->kind = NRII_REPLY_FAULT;
		xmlNode *why = child(fault, "faultstring", NULL);
		if (!why) /* SOAP 1.2: Reason/Text */
			why = child(child(fault, "Reason", env_ns), "Text", env_ns);
		node_text(why ? why : fault, out->text, sizeof(out->text));
		goto done;
	}
	xmlNode *ret = descendant(sbody, "return", 0);
	if (!ret) {
		snprintf(out->text, sizeof(out->text), "the reply has no \"return\"");
		goto done;
	}
	node_text(ret, out->text, sizeof(out->text));
	const char *p = out->text;
	int code = 0, digits = 0;
	while (*p >= '0' && *p <= '9' && digits < 9) {
		code = code * 10 + (*p++ - '0');
		digits++;
	}
	if (digits == 0 || (*p >= '0' && *p <= '9'))
		goto done; /* NONE, with the text for the log */
	out->kind = NRII_REPLY_RETURN;
	out->code = code;
done:
	xmlFreeDoc(doc);
}
