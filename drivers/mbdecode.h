/* mbdecode.h — register images to values: the types and word orders of SPEC §3. Pure code,
 * shared by the Modbus driver, `poll` and the tests. */
#ifndef LABSHARE_MBDECODE_H
#define LABSHARE_MBDECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "source_conf.h"

/* Registers a value of this type occupies (bits: 1). */
int mb_type_width(enum mb_type type);
/* The counter's range for wrap detection: 2^16, 2^32, 2^64; 0 for types that can't wrap. */
double mb_type_range(enum mb_type type);
const char *mb_type_name(enum mb_type type);
const char *mb_table_name(enum mb_table table);

/* Decode width registers (regs[0] at the lowest address). Big word order: the high word is
 * at the lowest address. Returns the raw value (before scale); *ok false for a NaN/Inf f32. */
double mb_decode(const uint16_t *regs, enum mb_type type, enum mb_word_order order, bool *ok);

/* The inverse, for the simulator and tests. */
void mb_encode(double value, enum mb_type type, enum mb_word_order order, uint16_t *regs);

#endif
