/* conf_url.c — the URLs of the configuration: the platform's http(s) URL and the buses'
 * tcp:// and rtu:// URLs (SPEC §3), each split and checked. */
#include "conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <strings.h>

/* ---- URLs ---- */

/* Splits "http[s]://host[:port][/path]". Returns NULL or what is wrong. */
const char *conf_http_url(const char *url, bool *https, char *host, size_t hostsz)
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

bool conf_is_loopback(const char *host)
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

bool conf_tcp_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz)
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

bool conf_rtu_url(struct ctx *c, struct bus_cfg *b, const char *s, char *why, size_t whysz)
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
