/* sim-control.c — the simulator's control language (stdin and --script): one command line in,
 * exactly one reply line out: "ok", a value, JSON for stats, or "error: why". */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 10

/* A growing reply; a failed allocation leaves it NULL and the caller answers "error". */
struct reply {
	char *p;
	size_t len, cap;
	bool oom;
};

static void rep_add(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rep_add(struct reply *r, const char *fmt, ...)
{
	if (r->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(r->p ? r->p + r->len : NULL, r->p ? r->cap - r->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			r->oom = true;
			return;
		}
		if (r->p && r->len + (size_t)n < r->cap) {
			r->len += (size_t)n;
			return;
		}
		size_t cap = r->cap ? r->cap : 128;
		while (cap <= r->len + (size_t)n)
			cap *= 2;
		char *q = realloc(r->p, cap);
		if (!q) {
			r->oom = true;
			return;
		}
		r->p = q;
		r->cap = cap;
	}
}

static char *rep_done(struct reply *r)
{
	if (r->oom || !r->p) {
		free(r->p);
		return strdup(r->oom ? "error: out of memory" : "ok");
	}
	return r->p;
}

static char *say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *say(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static int split(char *line, char **tok)
{
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return n;
		if (n == MAX_TOKENS)
			return -1;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "E" and "U": the endpoint and the units addressed (one, or every one with "*"). */
struct target {
	struct sim_endpoint *ep;
	struct sim_unit *one;    /* NULL with "*" */
};

static char *parse_target(struct sim *s, const char *e, const char *u, struct target *t)
{
	unsigned long ei, ui;
	if (parse_uint(e, s->neps ? s->neps - 1 : 0, &ei) < 0 || s->neps == 0)
		return say("error: no endpoint '%s' (there are %zu, from 0)", e, s->neps);
	t->ep = &s->eps[ei];
	t->one = NULL;
	if (u && strcmp(u, "*") != 0) {
		if (parse_uint(u, SIM_NO_UNITS - 1, &ui) < 0)
			return say("error: unit '%s' is not a number 0..255 or *", u);
		t->one = t->ep->units[ui];
		if (!t->one)
			return say("error: unit %lu is not served by endpoint %lu", ui, ei);
	}
	return NULL;
}

/* The addressed unit, or every unit of the endpoint in id order; how many. */
static size_t target_units(const struct target *t, struct sim_unit **out)
{
	size_t n = 0;
	if (t->one) {
		out[n++] = t->one;
		return n;
	}
	for (int i = 0; i < SIM_NO_UNITS; i++)
		if (t->ep->units[i])
			out[n++] = t->ep->units[i];
	return n;
}

struct place {
	enum sim_table table;
	unsigned addr;
	enum sim_type type;
	enum sim_order order;
};

static char *parse_place(struct sim *s, char **tok, struct place *p)
{
	unsigned long addr;
	if (sim_table_parse(tok[0], &p->table) < 0)
		return say("error: table '%s' is not holding, input, coil or discrete", tok[0]);
	if (parse_uint(tok[1], 65535, &addr) < 0)
		return say("error: address '%s' is not a number 0..65535", tok[1]);
	if (sim_type_parse(tok[2], &p->type) < 0)
		return say("error: type '%s' is not u16, u32, i32, u64, f32 or bit", tok[2]);
	if (sim_order_parse(tok[3], &p->order) < 0)
		return say("error: order '%s' is not big or little", tok[3]);
	p->addr = (unsigned)addr;
	const char *why = sim_place_check(p->table, p->addr, p->type, s->regs);
	if (why)
		return say("error: %s %s %s: %s (images hold %u of each)", tok[0], tok[1], tok[2], why, s->regs);
	return NULL;
}

static char *cmd_value(struct sim *s, char **tok, int ntok)
{
	const char *verb = tok[0];
	bool is_get = strcmp(verb, "get") == 0;
	if (ntok != (is_get ? 7 : 8))
		return say("error: usage: %s E U TABLE ADDR TYPE ORDER%s", verb,
			   is_get ? "" : strcmp(verb, "set") == 0 ? " VALUE"
				 : strcmp(verb, "add") == 0 ? " DELTA" : " RATE_PER_S");
	struct sim_unit *units[SIM_NO_UNITS];
	struct target t;
	struct place p;
	char *err = parse_target(s, tok[1], tok[2], &t);
	if (!err)
		err = parse_place(s, tok + 3, &p);
	if (err)
		return err;
	size_t nu = target_units(&t, units);
	int64_t now = sim_now_ns();

	if (is_get) {
		if (!t.one)
			return say("error: get reads one unit, not *");
		sim_unit_advance(t.one, now);
		char buf[64];
		sim_value_format(p.type, sim_read_raw(t.one, p.table, p.addr, p.type, p.order), buf, sizeof(buf));
		return say("%s", buf);
	}
	if (strcmp(verb, "set") == 0) {
		uint64_t raw;
		if (sim_value_parse(p.type, tok[7], &raw) < 0)
			return say("error: value '%s' is not a %s", tok[7], tok[5]);
		for (size_t i = 0; i < nu; i++) {
			sim_unit_advance(units[i], now);
			sim_write_raw(units[i], p.table, p.addr, p.type, p.order, raw);
		}
		return say("ok");
	}
	if (strcmp(verb, "add") == 0) {
		uint64_t raw;
		if (p.type == SIM_BIT)
			return say("error: add needs a counter type, not bit");
		if (sim_value_add(p.type, 0, tok[7], &raw) < 0)
			return say("error: delta '%s' is not a number for %s", tok[7], tok[5]);
		for (size_t i = 0; i < nu; i++) {
			sim_unit_advance(units[i], now);
			sim_value_add(p.type, sim_read_raw(units[i], p.table, p.addr, p.type, p.order), tok[7], &raw);
			sim_write_raw(units[i], p.table, p.addr, p.type, p.order, raw);
		}
		return say("ok");
	}
	/* auto */
	double rate;
	if (p.type == SIM_BIT)
		return say("error: auto needs a counter type, not bit");
	if (sim_parse_rate(tok[7], &rate) < 0)
		return say("error: rate '%s' is not a number within ±1e9 per second", tok[7]);
	for (size_t i = 0; i < nu; i++) {
		sim_unit_advance(units[i], now);
		if (sim_auto_set(units[i], p.table, p.addr, p.type, p.order, rate, now) < 0)
			return say("error: out of memory");
	}
	return say("ok");
}

static int parse_onoff(const char *s)
{
	if (strcmp(s, "on") == 0)
		return 1;
	if (strcmp(s, "off") == 0)
		return 0;
	return -1;
}

static char *cmd_fault(struct sim *s, char **tok, int ntok)
{
	const char *verb = tok[0];
	if (ntok != 4)
		return say("error: usage: %s E U %s", verb,
			   strcmp(verb, "delay") == 0 ? "MS" : strcmp(verb, "exception") == 0 ? "CODE|off" : "on|off");
	struct sim_unit *units[SIM_NO_UNITS];
	struct target t;
	char *err = parse_target(s, tok[1], tok[2], &t);
	if (err)
		return err;
	size_t nu = target_units(&t, units);
	if (strcmp(verb, "delay") == 0) {
		unsigned long ms;
		if (parse_uint(tok[3], 600000, &ms) < 0)
			return say("error: delay '%s' is not 0..600000 ms", tok[3]);
		for (size_t i = 0; i < nu; i++)
			units[i]->delay_ms = (unsigned)ms;
		return say("ok");
	}
	if (strcmp(verb, "exception") == 0) {
		unsigned long code = 0;
		if (strcmp(tok[3], "off") != 0 && (parse_uint(tok[3], 255, &code) < 0 || code == 0))
			return say("error: exception code '%s' is not 1..255 or off", tok[3]);
		for (size_t i = 0; i < nu; i++)
			units[i]->exception = (int)code;
		return say("ok");
	}
	int on = parse_onoff(tok[3]);
	if (on < 0)
		return say("error: %s takes on or off, not '%s'", verb, tok[3]);
	bool mbap = !strcmp(verb, "twice") || !strcmp(verb, "stale") || !strcmp(verb, "badproto");
	if (mbap && t.ep->kind != SIM_TCP)
		return say("error: %s: endpoint %d is a serial line, its frames have no MBAP header", verb,
			   t.ep->index);
	for (size_t i = 0; i < nu; i++) {
		if (strcmp(verb, "silence") == 0)
			units[i]->silence = on;
		else if (strcmp(verb, "wrongunit") == 0)
			units[i]->wrongunit = on;
		else if (strcmp(verb, "twice") == 0)
			units[i]->twice = on;
		else if (strcmp(verb, "stale") == 0)
			units[i]->stale = on;
		else if (strcmp(verb, "badproto") == 0)
			units[i]->badproto = on;
		else
			units[i]->shortreply = on;
	}
	return say("ok");
}

static char *cmd_endpoint(struct sim *s, char **tok, int ntok)
{
	const char *verb = tok[0];
	if (ntok != 2)
		return say("error: usage: %s E", verb);
	struct target t;
	char *err = parse_target(s, tok[1], NULL, &t);
	if (err)
		return err;
	struct sim_endpoint *ep = t.ep;
	if (strcmp(verb, "clients") == 0)
		return say("%zu", sim_ep_clients(s, ep));
	if (strcmp(verb, "accepted") == 0)
		return say("%" PRIu64, ep->accepted);
	if (strcmp(verb, "drop") == 0) {
		if (ep->kind != SIM_TCP)
			return say("error: endpoint %d is a serial line, it has no connections", ep->index);
		sim_ep_drop_clients(s, ep);
		return say("ok");
	}
	if (strcmp(verb, "close") == 0) {
		sim_ep_close(s, ep);
		return say("ok");
	}
	int r = sim_ep_open(s, ep);
	if (r == -EALREADY)
		return say("error: endpoint %d (%s) is already open", ep->index, ep->spec);
	if (r < 0)
		return say("error: endpoint %d (%s): %s", ep->index, ep->spec, strerror(-r));
	return say("ok");
}

static char *cmd_stats(struct sim *s)
{
	struct reply r = { 0 };
	rep_add(&r, "{\"requests\":%" PRIu64 ",\"unserved\":%" PRIu64, s->requests, s->unserved);
	if (s->replies_dropped)
		rep_add(&r, ",\"replies_dropped\":%" PRIu64, s->replies_dropped);
	rep_add(&r, ",\"endpoints\":{");
	bool first_ep = true;
	for (size_t e = 0; e < s->neps; e++) {
		struct sim_endpoint *ep = &s->eps[e];
		if (!ep->requests && !ep->unserved && !ep->bad_frames)
			continue;
		rep_add(&r, "%s\"%zu\":{\"requests\":%" PRIu64, first_ep ? "" : ",", e, ep->requests);
		first_ep = false;
		if (ep->unserved)
			rep_add(&r, ",\"unserved\":%" PRIu64, ep->unserved);
		if (ep->bad_frames)
			rep_add(&r, ",\"bad_frames\":%" PRIu64, ep->bad_frames);
		rep_add(&r, ",\"units\":{");
		bool first = true;
		for (int i = 0; i < SIM_NO_UNITS; i++) {
			struct sim_unit *u = ep->units[i];
			if (!u || !u->requests)
				continue;
			rep_add(&r, "%s\"%d\":%" PRIu64, first ? "" : ",", i, u->requests);
			first = false;
		}
		rep_add(&r, "}}");
	}
	rep_add(&r, "}}");
	return rep_done(&r);
}

static void reset_stats(struct sim *s)
{
	s->requests = s->unserved = s->replies_dropped = 0;
	for (size_t e = 0; e < s->neps; e++) {
		struct sim_endpoint *ep = &s->eps[e];
		ep->requests = ep->unserved = ep->bad_frames = ep->accepted = 0;
		for (int i = 0; i < SIM_NO_UNITS; i++)
			if (ep->units[i])
				ep->units[i]->requests = 0;
	}
}

static char *cmd_ports(struct sim *s)
{
	struct reply r = { 0 };
	for (size_t e = 0; e < s->neps; e++)
		rep_add(&r, "%s%d", e ? " " : "", s->eps[e].kind == SIM_TCP ? s->eps[e].port : 0);
	return rep_done(&r);
}

char *sim_command(struct sim *s, const char *line)
{
	char *copy = strdup(line);
	char *tok[MAX_TOKENS];
	char *reply;
	if (!copy)
		return NULL;
	int n = split(copy, tok);
	if (n < 0) {
		reply = say("error: too many words");
	} else if (n == 0) {
		reply = say("error: empty command");
	} else if (!strcmp(tok[0], "set") || !strcmp(tok[0], "get") || !strcmp(tok[0], "add") ||
		   !strcmp(tok[0], "auto")) {
		reply = cmd_value(s, tok, n);
	} else if (!strcmp(tok[0], "delay") || !strcmp(tok[0], "silence") || !strcmp(tok[0], "exception") ||
		   !strcmp(tok[0], "wrongunit") || !strcmp(tok[0], "short") || !strcmp(tok[0], "twice") ||
		   !strcmp(tok[0], "stale") || !strcmp(tok[0], "badproto")) {
		reply = cmd_fault(s, tok, n);
	} else if (!strcmp(tok[0], "drop") || !strcmp(tok[0], "close") || !strcmp(tok[0], "open") ||
		   !strcmp(tok[0], "clients") || !strcmp(tok[0], "accepted")) {
		reply = cmd_endpoint(s, tok, n);
	} else if (n == 1 && !strcmp(tok[0], "stats")) {
		reply = cmd_stats(s);
	} else if (n == 1 && !strcmp(tok[0], "reset-stats")) {
		reset_stats(s);
		reply = say("ok");
	} else if (n == 1 && !strcmp(tok[0], "ports")) {
		reply = cmd_ports(s);
	} else if (n == 1 && !strcmp(tok[0], "ping")) {
		reply = say("ok");
	} else if (n == 1 && !strcmp(tok[0], "quit")) {
		s->quit = true;
		reply = say("ok");
	} else {
		reply = say("error: unknown command '%s' (or wrong number of words)", tok[0]);
	}
	free(copy);
	return reply;
}
