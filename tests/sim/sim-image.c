/* sim-image.c — typed values (u16, u32, i32, u64, f32, bit, either word order) in a simulated
 * unit's register image, and the counters that advance on their own in real time. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <inttypes.h>

int sim_table_parse(const char *s, enum sim_table *t)
{
	static const char *const names[] = { "holding", "input", "coil", "discrete" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*t = (enum sim_table)i;
			return 0;
		}
	return -1;
}

int sim_type_parse(const char *s, enum sim_type *t)
{
	static const char *const names[] = { "u16", "u32", "i32", "u64", "f32", "bit" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*t = (enum sim_type)i;
			return 0;
		}
	return -1;
}

int sim_order_parse(const char *s, enum sim_order *o)
{
	if (strcmp(s, "big") == 0)
		*o = SIM_BIG;
	else if (strcmp(s, "little") == 0)
		*o = SIM_LITTLE;
	else
		return -1;
	return 0;
}

static unsigned type_words(enum sim_type type)
{
	switch (type) {
	case SIM_U32:
	case SIM_I32:
	case SIM_F32:
		return 2;
	case SIM_U64:
		return 4;
	default:
		return 1;
	}
}

static uint64_t type_mask(enum sim_type type)
{
	switch (type) {
	case SIM_U16:
		return 0xFFFFu;
	case SIM_U32:
	case SIM_I32:
	case SIM_F32:
		return 0xFFFFFFFFu;
	case SIM_BIT:
		return 1;
	default:
		return UINT64_MAX;
	}
}

const char *sim_place_check(enum sim_table table, unsigned addr, enum sim_type type, unsigned regs)
{
	bool bits = table == SIM_COIL || table == SIM_DISCRETE;
	if (bits && type != SIM_BIT)
		return "coils and discrete inputs hold only type bit";
	if (!bits && type == SIM_BIT)
		return "registers hold u16, u32, i32, u64 or f32, not bit";
	if (addr >= regs || type_words(type) > regs - addr)
		return "address out of range";
	return NULL;
}

uint64_t sim_read_raw(const struct sim_unit *u, enum sim_table table, unsigned addr,
		      enum sim_type type, enum sim_order order)
{
	const modbus_mapping_t *m = u->map;
	if (table == SIM_COIL)
		return m->tab_bits[addr] ? 1 : 0;
	if (table == SIM_DISCRETE)
		return m->tab_input_bits[addr] ? 1 : 0;
	const uint16_t *r = table == SIM_HOLDING ? m->tab_registers : m->tab_input_registers;
	unsigned n = type_words(type);
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++) {
		/* big: the lowest address holds the most significant word */
		unsigned shift = order == SIM_BIG ? 16 * (n - 1 - i) : 16 * i;
		v |= (uint64_t)r[addr + i] << shift;
	}
	return v;
}

void sim_write_raw(struct sim_unit *u, enum sim_table table, unsigned addr, enum sim_type type,
		   enum sim_order order, uint64_t raw)
{
	modbus_mapping_t *m = u->map;
	if (table == SIM_COIL) {
		m->tab_bits[addr] = raw & 1;
		return;
	}
	if (table == SIM_DISCRETE) {
		m->tab_input_bits[addr] = raw & 1;
		return;
	}
	uint16_t *r = table == SIM_HOLDING ? m->tab_registers : m->tab_input_registers;
	unsigned n = type_words(type);
	for (unsigned i = 0; i < n; i++) {
		unsigned shift = order == SIM_BIG ? 16 * (n - 1 - i) : 16 * i;
		r[addr + i] = (uint16_t)(raw >> shift);
	}
}

/* Decimal, or hexadecimal with 0x; no sign, no leading blanks. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s < '0' || (*s > '9' && base == 10) || (base == 16 && !strchr("0123456789abcdefABCDEF", *s)))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	if (!*s || *s == ' ')
		return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*end || (errno == ERANGE && fabs(v) > 1.0))
		return -1;
	*out = v;
	return 0;
}

static uint64_t f32_bits(float f)
{
	uint32_t b;
	memcpy(&b, &f, sizeof(b));
	return b;
}

static float f32_value(uint64_t raw)
{
	uint32_t b = (uint32_t)raw;
	float f;
	memcpy(&f, &b, sizeof(f));
	return f;
}

static int64_t i32_value(uint64_t raw)
{
	int64_t v = (int64_t)(raw & 0xFFFFFFFFu);
	return v >= 0x80000000LL ? v - 0x100000000LL : v;
}

int sim_value_parse(enum sim_type type, const char *s, uint64_t *raw)
{
	int64_t i;
	double d;
	switch (type) {
	case SIM_I32:
		if (parse_i64(s, INT32_MIN, INT32_MAX, &i) < 0)
			return -1;
		*raw = (uint64_t)i & 0xFFFFFFFFu;
		return 0;
	case SIM_F32:
		if (parse_double(s, &d) < 0)
			return -1;
		*raw = f32_bits((float)d);
		return 0;
	default:
		return parse_u64(s, type_mask(type), raw);
	}
}

void sim_value_format(enum sim_type type, uint64_t raw, char *buf, size_t cap)
{
	int n;
	if (type == SIM_I32)
		n = snprintf(buf, cap, "%" PRId64, i32_value(raw));
	else if (type == SIM_F32)
		n = snprintf(buf, cap, "%.9g", (double)f32_value(raw));
	else
		n = snprintf(buf, cap, "%" PRIu64, raw & type_mask(type));
	if (n < 0 || (size_t)n >= cap)
		snprintf(buf, cap, "?");
}

static uint64_t add_int(enum sim_type type, uint64_t raw, int64_t delta)
{
	/* unsigned arithmetic wraps modulo 2^64; the mask makes it wrap at the type's range */
	return (raw + (uint64_t)delta) & type_mask(type);
}

static uint64_t add_float(uint64_t raw, double delta)
{
	return f32_bits((float)((double)f32_value(raw) + delta));
}

int sim_value_add(enum sim_type type, uint64_t raw, const char *delta, uint64_t *out)
{
	if (type == SIM_BIT)
		return -1;
	if (type == SIM_F32) {
		double d;
		if (parse_double(delta, &d) < 0)
			return -1;
		*out = add_float(raw, d);
		return 0;
	}
	int64_t d;
	if (parse_i64(delta, INT64_MIN, INT64_MAX, &d) < 0)
		return -1;
	*out = add_int(type, raw, d);
	return 0;
}

int sim_parse_rate(const char *s, double *rate)
{
	double r;
	/* the bound keeps rate * elapsed far inside what int64 and a double's integers hold */
	if (parse_double(s, &r) < 0 || !isfinite(r) || fabs(r) > 1e9)
		return -1;
	*rate = r;
	return 0;
}

static void auto_settle(struct sim_unit *u, struct sim_auto *a, int64_t now_ns)
{
	if (now_ns <= a->t0_ns)
		return;
	double total = a->rate * ((double)(now_ns - a->t0_ns) / 1e9);
	uint64_t raw = sim_read_raw(u, a->table, a->addr, a->type, a->order);
	if (a->type == SIM_F32) {
		double d = total - a->done_f;
		if (d != 0.0)
			sim_write_raw(u, a->table, a->addr, a->type, a->order, add_float(raw, d));
		a->done_f = total;
		return;
	}
	int64_t steps = (int64_t)floor(total);
	if (steps != a->done) {
		sim_write_raw(u, a->table, a->addr, a->type, a->order, add_int(a->type, raw, steps - a->done));
		a->done = steps;
	}
}

void sim_unit_advance(struct sim_unit *u, int64_t now_ns)
{
	for (size_t i = 0; i < u->nautos; i++)
		auto_settle(u, &u->autos[i], now_ns);
}

int sim_auto_set(struct sim_unit *u, enum sim_table table, unsigned addr, enum sim_type type,
		 enum sim_order order, double rate, int64_t now_ns)
{
	struct sim_auto *a = NULL;
	size_t i;
	for (i = 0; i < u->nautos; i++)
		if (u->autos[i].table == table && u->autos[i].addr == addr &&
		    u->autos[i].type == type && u->autos[i].order == order) {
			a = &u->autos[i];
			break;
		}
	if (a) {
		/* what the old rate earned up to now stays; the new rate counts from now */
		auto_settle(u, a, now_ns);
		if (rate == 0.0) {
			u->autos[i] = u->autos[--u->nautos];
			return 0;
		}
	} else {
		if (rate == 0.0)
			return 0;
		if (u->nautos == u->autos_cap) {
			size_t cap = u->autos_cap ? 2 * u->autos_cap : 4;
			struct sim_auto *p = realloc(u->autos, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			u->autos = p;
			u->autos_cap = cap;
		}
		a = &u->autos[u->nautos++];
		a->table = table;
		a->addr = addr;
		a->type = type;
		a->order = order;
	}
	a->rate = rate;
	a->t0_ns = now_ns;
	a->done = 0;
	a->done_f = 0.0;
	return 0;
}

struct sim_unit *sim_unit_new(int id, unsigned regs)
{
	struct sim_unit *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->id = id;
	u->map = modbus_mapping_new((int)regs, (int)regs, (int)regs, (int)regs);
	if (!u->map) {
		free(u);
		return NULL;
	}
	return u;
}

void sim_unit_free(struct sim_unit *u)
{
	if (!u)
		return;
	modbus_mapping_free(u->map);
	free(u->autos);
	free(u);
}
