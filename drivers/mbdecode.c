/* mbdecode.c — how lab meters lay numbers out in 16-bit registers. */
#include "mbdecode.h"

#include <math.h>
#include <string.h>

int mb_type_width(enum mb_type type)
{
	switch (type) {
	case MB_TYPE_U16: return 1;
	case MB_TYPE_U32: case MB_TYPE_I32: case MB_TYPE_F32: return 2;
	case MB_TYPE_U64: return 4;
	case MB_TYPE_BIT: return 1;
	}
	return 1;
}

double mb_type_range(enum mb_type type)
{
	switch (type) {
	case MB_TYPE_U16: return 65536.0;
	case MB_TYPE_U32: return 4294967296.0;
	case MB_TYPE_U64: return 18446744073709551616.0;
	default: return 0;
	}
}

const char *mb_type_name(enum mb_type type)
{
	static const char *const names[] = { "u16", "u32", "i32", "u64", "f32", "bit" };
	return (unsigned)type < 6 ? names[type] : "?";
}

const char *mb_table_name(enum mb_table table)
{
	static const char *const names[] = { "holding", "input", "coil", "discrete" };
	return (unsigned)table < 4 ? names[table] : "?";
}

/* Registers in value order, most significant word first. */
static void ordered(const uint16_t *regs, int n, enum mb_word_order order, uint16_t *out)
{
	for (int i = 0; i < n; i++)
		out[i] = order == MB_WORD_BIG ? regs[i] : regs[n - 1 - i];
}

double mb_decode(const uint16_t *regs, enum mb_type type, enum mb_word_order order, bool *ok)
{
	uint16_t w[4];
	*ok = true;
	switch (type) {
	case MB_TYPE_BIT:
		return regs[0] ? 1 : 0;
	case MB_TYPE_U16:
		return regs[0];
	case MB_TYPE_U32:
		ordered(regs, 2, order, w);
		return (double)(((uint32_t)w[0] << 16) | w[1]);
	case MB_TYPE_I32:
		ordered(regs, 2, order, w);
		return (double)(int32_t)(((uint32_t)w[0] << 16) | w[1]);
	case MB_TYPE_U64:
		ordered(regs, 4, order, w);
		return (double)(((uint64_t)w[0] << 48) | ((uint64_t)w[1] << 32) | ((uint64_t)w[2] << 16) | w[3]);
	case MB_TYPE_F32: {
		ordered(regs, 2, order, w);
		uint32_t bits = ((uint32_t)w[0] << 16) | w[1];
		float f;
		memcpy(&f, &bits, sizeof(f));
		if (!isfinite(f))
			*ok = false;
		return (double)f;
	}
	}
	*ok = false;
	return 0;
}

void mb_encode(double value, enum mb_type type, enum mb_word_order order, uint16_t *regs)
{
	uint16_t w[4] = { 0 };
	int n = mb_type_width(type);
	switch (type) {
	case MB_TYPE_BIT:
		regs[0] = value != 0;
		return;
	case MB_TYPE_U16:
		regs[0] = (uint16_t)value;
		return;
	case MB_TYPE_U32: case MB_TYPE_I32: {
		uint32_t v = type == MB_TYPE_I32 ? (uint32_t)(int32_t)value : (uint32_t)value;
		w[0] = (uint16_t)(v >> 16);
		w[1] = (uint16_t)v;
		break;
	}
	case MB_TYPE_U64: {
		uint64_t v = (uint64_t)value;
		for (int i = 0; i < 4; i++)
			w[i] = (uint16_t)(v >> (48 - 16 * i));
		break;
	}
	case MB_TYPE_F32: {
		float f = (float)value;
		uint32_t bits;
		memcpy(&bits, &f, sizeof(bits));
		w[0] = (uint16_t)(bits >> 16);
		w[1] = (uint16_t)bits;
		break;
	}
	}
	for (int i = 0; i < n; i++)
		regs[order == MB_WORD_BIG ? i : n - 1 - i] = w[i];
}
