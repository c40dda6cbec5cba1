/* le64.h — fixed-width fields of a stored blob: 64-bit little-endian, whatever the host, so
 * a state saved on one machine reads back on another. p advances past what was put or got;
 * the caller sized the buffer. */
#ifndef LABSHARE_LE64_H
#define LABSHARE_LE64_H

#include <stdint.h>
#include <string.h>

static inline void le64_put(unsigned char **p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		(*p)[i] = (unsigned char)(v >> (8 * i));
	*p += 8;
}

static inline uint64_t le64_get(const unsigned char **p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)(*p)[i] << (8 * i);
	*p += 8;
	return v;
}

static inline void le64_put_i64(unsigned char **p, int64_t v) { le64_put(p, (uint64_t)v); }
static inline int64_t le64_get_i64(const unsigned char **p) { return (int64_t)le64_get(p); }

/* A double by its bits: NaN, infinities and -0 come back as they went. */
static inline void le64_put_dbl(unsigned char **p, double d)
{
	uint64_t v;
	memcpy(&v, &d, sizeof(v));
	le64_put(p, v);
}

static inline double le64_get_dbl(const unsigned char **p)
{
	uint64_t v = le64_get(p);
	double d;
	memcpy(&d, &v, sizeof(d));
	return d;
}

#endif
