/* conf_instruments.c — the configuration's buses and instruments: each instrument's id, its
 * NRII profile and its Modbus part (bus, unit, points); its logs in conf_logs.c. */
#include "conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static void parse_bus(struct ctx *c, const cJSON *o, const char *P, struct bus_cfg *b)
{
	static const char *const keys[] = { "id", "url", "timeout_ms", "gap_ms", NULL };
	char p[PATH_BUF], why[160];

	conf_check_keys(c, o, P, keys);
	b->id = conf_id_member(c, o, P, "id");
	b->timeout_ms = 500;
	const char *url = conf_str_member(c, o, P, "url", true);
	if (url) {
		bool ok;
		if (strncmp(url, "tcp://", 6) == 0) {
			b->kind = BUS_TCP;
			ok = conf_tcp_url(c, b, url + 6, why, sizeof(why));
		} else if (strncmp(url, "rtu:", 4) == 0) {
			b->kind = BUS_RTU;
			ok = conf_rtu_url(c, b, url + 4, why, sizeof(why));
		} else {
			ok = false;
			snprintf(why, sizeof(why), "must be tcp://HOST[:PORT] or rtu:/dev/DEVICE[?baud=…"
				 "&parity=…&data=…&stop=…]");
		}
		if (ok)
			b->url = conf_xdup(c, url);
		else if (!c->nomem)
			conf_err_val(c, conf_get(o, "url"), conf_join(p, P, "url"), "%s", why);
	}
	conf_int_member(c, o, P, "timeout_ms", false, 1, 60000, &b->timeout_ms);
	/* RS-485 devices need a silence between frames; a TCP gateway does its own. */
	b->gap_ms = b->kind == BUS_RTU ? 5 : 0;
	conf_int_member(c, o, P, "gap_ms", false, 0, 10000, &b->gap_ms);
}

void conf_parse_point(struct ctx *c, const cJSON *o, const char *P, enum conf_point_role role,
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

	conf_check_keys(c, o, P, keys);
	pt->present = true;
	pt->type = MB_TYPE_U16;
	pt->word_order = MB_WORD_BIG;
	pt->scale = 1.0;

	int table = -1, type = MB_TYPE_U16, order = MB_WORD_BIG, address = -1;
	bool have_table = conf_enum_member(c, o, P, "table", true, tables, false, &table);
	bool bit = have_table && (table == MB_TABLE_COIL || table == MB_TABLE_DISCRETE);
	if (have_table)
		pt->table = (enum mb_table)table;
	if (bit && role != CONF_POINT_IN_USE) {
		conf_err_val(c, conf_get(o, "table"), conf_join(p, P, "table"), "a %s must be a register "
			     "(\"holding\" or \"input\")", role == CONF_POINT_COUNTER ? "counter" : "meter value");
		bit = false;
	}

	bool have_type = true;
	if (bit && conf_get(o, "type")) {
		conf_err_key(c, conf_get(o, "type"), conf_join(p, P, "type"),
			     "not allowed for a %s (coils and discretes are bits)", tables[table]);
	} else {
		have_type = !conf_present(o, "type") ||
			    conf_enum_member(c, o, P, "type", false, types, false, &type);
	}
	pt->type = bit ? MB_TYPE_BIT : (enum mb_type)type;

	if (conf_int_member(c, o, P, "address", true, 0, 65535, &address) && have_type && !bit &&
	    address + width[pt->type] - 1 > 65535)
		conf_err_val(c, conf_get(o, "address"), conf_join(p, P, "address"),
			     "a %s at %d runs past register 65535", types[pt->type], address);
	pt->address = (uint16_t)(address < 0 ? 0 : address);

	/* Only meaningful for multi-register types, but harmless elsewhere. */
	conf_enum_member(c, o, P, "word_order", false, orders, false, &order);
	pt->word_order = (enum mb_word_order)order;
	conf_num_member(c, o, P, "scale", false, 0, true, INFINITY, "must be greater than 0",
			&pt->scale);

	const cJSON *above = conf_get(o, "above");
	if (role != CONF_POINT_IN_USE && above) {
		conf_err_key(c, above, conf_join(p, P, "above"), "only for \"in_use\" on a register");
	} else if (role == CONF_POINT_IN_USE && have_table && bit && above) {
		conf_err_key(c, above, conf_join(p, P, "above"),
			     "not allowed for a %s (a bit is in use when set)", tables[table]);
	} else if (role == CONF_POINT_IN_USE && have_table && !bit) {
		pt->has_above = conf_num_member(c, o, P, "above", true, -INFINITY, false, INFINITY,
						"must be a finite number", &pt->above) != NULL;
	}
}

/* The first bus (in the file's order) with that id, or cfg->n_buses: by the sorted index, with
 * 100 gateways and 5,000 instruments, else in order. */
static size_t find_bus(const struct ctx *c, const struct config *cfg, const char *bus)
{
	if (!c->bus_by_id) {
		size_t i = 0;
		while (i < cfg->n_buses && !(cfg->buses[i].id && strcmp(cfg->buses[i].id, bus) == 0))
			i++;
		return i;
	}
	size_t lo = 0, hi = c->n_bus_by_id;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(cfg->buses[c->bus_by_id[mid]].id, bus) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->n_bus_by_id && strcmp(cfg->buses[c->bus_by_id[lo]].id, bus) == 0)
		return c->bus_by_id[lo];
	return cfg->n_buses;
}

static void parse_modbus(struct ctx *c, const cJSON *o, const char *P, const struct config *cfg,
			 struct modbus_cfg *m)
{
	static const char *const keys[] = { "bus", "unit", "interval_s", "run_counter",
		"samples_counter", "in_use", "profile", "power", "energy", "voltage", "frequency", NULL };
	static const char *const points[] = { "run_counter", "samples_counter", "in_use" };
	struct mb_point *dest[] = { &m->run_counter, &m->samples_counter, &m->in_use };
	char p[PATH_BUF];

	m->present = true;
	conf_check_keys(c, o, P, keys);
	const char *bus = conf_str_member(c, o, P, "bus", true);
	if (bus) {
		m->bus = conf_xdup(c, bus);
		size_t i = find_bus(c, cfg, bus);
		if (i < cfg->n_buses)
			m->bus_index = i;
		else
			conf_err_val(c, conf_get(o, "bus"), conf_join(p, P, "bus"),
				     "unknown bus \"%.64s\"%s", bus,
				     cfg->n_buses ? "" : " (no \"buses\" are configured)");
	}
	conf_int_member(c, o, P, "unit", true, 1, 247, &m->unit);
	conf_int_member(c, o, P, "interval_s", false, 1, 86400, &m->interval_s);

	/* A meter's profile and points (conf_meter.c); it takes "in_use" when that is from power. */
	bool meter_in_use = conf_parse_meter(c, o, P, m);
	bool any = meter_in_use || m->power.present || m->energy.present || conf_present(o, "profile");
	for (int i = 0; i < 3; i++) {
		if (i == 2 && meter_in_use)
			break;
		const cJSON *pt = conf_obj_member(c, o, P, points[i], false);
		any = any || conf_present(o, points[i]);
		if (pt)
			conf_parse_point(c, pt, conf_join(p, P, points[i]),
					 i == 2 ? CONF_POINT_IN_USE : CONF_POINT_COUNTER, dest[i]);
	}
	if (!any)
		conf_err_val(c, o, P, "needs at least one of \"run_counter\", \"samples_counter\" or "
			     "\"in_use\"");
}


static void parse_profile(struct ctx *c, const cJSON *o, const char *P, struct instrument_cfg *in)
{
	char p[PATH_BUF];
	for (const cJSON *m = o->child; m; m = m->next)
		if (!cJSON_IsString(m) && !cJSON_IsNumber(m))
			conf_err_val(c, m, conf_join(p, P, m->string), "must be a string or a number");
	if (!(in->nrii_profile = cJSON_Duplicate(o, true)))
		c->nomem = true;
}

static void parse_instrument(struct ctx *c, const cJSON *o, const char *P, const struct config *cfg,
			     struct instrument_cfg *in)
{
	static const char *const keys[] = { "id", "name", "inner_id", "worth_wan", "rated_hours",
		"modbus", "logs", "nrii_profile", NULL };
	char p[PATH_BUF], q[PATH_BUF];

	conf_check_keys(c, o, P, keys);
	in->id = conf_id_member(c, o, P, "id");
	const char *name = conf_str_member(c, o, P, "name", false);
	in->name = conf_xdup(c, name ? name : in->id);
	in->inner_id = conf_xdup(c, conf_str_member(c, o, P, "inner_id", false));
	if (c->nrii && !conf_present(o, "inner_id"))
		conf_err_val(c, o, conf_join(p, P, "inner_id"),
			     "missing required key (\"nrii\" is configured)");
	in->has_worth = conf_num_member(c, o, P, "worth_wan", false, 0, false, INFINITY,
					"must be 0 or more", &in->worth_wan) != NULL;
	in->rated_hours = 1400;
	in->modbus.interval_s = 10;
	conf_int_member(c, o, P, "rated_hours", false, 1, 8784, &in->rated_hours);

	const cJSON *m = conf_obj_member(c, o, P, "modbus", false);
	if (m)
		parse_modbus(c, m, conf_join(p, P, "modbus"), cfg, &in->modbus);

	const cJSON *logs = conf_arr_member(c, o, P, "logs", false);
	size_t n = logs ? (size_t)cJSON_GetArraySize(logs) : 0;
	if (n && !(in->logs = calloc(n, sizeof(*in->logs))))
		c->nomem = true;
	if (logs && in->logs) {
		conf_join(p, P, "logs");
		for (const cJSON *e = logs->child; e; e = e->next, in->n_logs++) {
			conf_join_index(q, p, in->n_logs);
			if (!cJSON_IsObject(e))
				conf_err_val(c, e, q, "must be an object");
			else
				conf_parse_log(c, e, q, &in->logs[in->n_logs]);
		}
	}
	/* a "logs" of the wrong type is reported already */
	if (!conf_present(o, "modbus") && (!conf_present(o, "logs") || (logs && n == 0)))
		conf_err_val(c, o, P, "needs \"modbus\" or \"logs\"");

	const cJSON *prof = conf_obj_member(c, o, P, "nrii_profile", false);
	if (prof)
		parse_profile(c, prof, conf_join(p, P, "nrii_profile"), in);
}


void conf_parse_buses(struct ctx *c, const cJSON *arr, struct config *cfg)
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
		conf_join_index(p, "buses", cfg->n_buses);
		if (!cJSON_IsObject(e)) {
			conf_err_val(c, e, p, "must be an object");
			continue;
		}
		parse_bus(c, e, p, b);
		if (b->id)
			refs[nrefs++] = (struct id_ref){ b->id, cfg->n_buses };
	}
	conf_check_unique(c, arr, "buses", "bus", refs, nrefs);
	/* refs are sorted by id now (then by index): each instrument's "bus" is found in it */
	if (nrefs && (c->bus_by_id = calloc(nrefs, sizeof(*c->bus_by_id)))) {
		for (size_t k = 0; k < nrefs; k++)
			c->bus_by_id[k] = refs[k].index;
		c->n_bus_by_id = nrefs;
	}
	free(refs);
}

void conf_parse_instruments(struct ctx *c, const cJSON *arr, struct config *cfg)
{
	char p[PATH_BUF];
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0) {
		conf_err_val(c, arr, "instruments", "must list at least one instrument");
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
		conf_join_index(p, "instruments", cfg->n_instruments);
		if (!cJSON_IsObject(e)) {
			conf_err_val(c, e, p, "must be an object");
			continue;
		}
		parse_instrument(c, e, p, cfg, in);
		if (in->id)
			refs[nrefs++] = (struct id_ref){ in->id, cfg->n_instruments };
	}
	conf_check_unique(c, arr, "instruments", "instrument", refs, nrefs);
	/* refs are sorted by id now (then by index): config_instrument's index. */
	if (nrefs && (cfg->by_id = calloc(nrefs, sizeof(*cfg->by_id)))) {
		for (size_t k = 0; k < nrefs; k++)
			cfg->by_id[k] = refs[k].index;
		cfg->n_by_id = nrefs;
	} else if (nrefs) {
		c->nomem = true;
	}
	free(refs);
}
