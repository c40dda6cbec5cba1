/* mbheap.h — a min-heap of (due time, index): the Modbus driver's instruments by when each is
 * due, and its TCP buses by when each can take its next request. Sized once: it never grows. */
#ifndef LABSHARE_MBHEAP_H
#define LABSHARE_MBHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mb_hent {
	int64_t key;
	uint32_t id;
};

struct mb_heap {
	struct mb_hent *e;
	size_t n, cap;
};

int mb_heap_init(struct mb_heap *h, size_t cap);
void mb_heap_free(struct mb_heap *h);
/* Past cap: false (a caller bug; sized to all it can hold). */
bool mb_heap_push(struct mb_heap *h, int64_t key, uint32_t id);
/* The smallest key; INT64_MAX when empty. */
static inline int64_t mb_heap_min(const struct mb_heap *h)
{
	return h->n ? h->e[0].key : INT64_MAX;
}
/* The smallest key but one (INT64_MAX with fewer than two): one of the root's children. */
static inline int64_t mb_heap_second(const struct mb_heap *h)
{
	int64_t a = h->n > 1 ? h->e[1].key : INT64_MAX, b = h->n > 2 ? h->e[2].key : INT64_MAX;
	return a < b ? a : b;
}
/* Removes and returns the smallest; the heap must not be empty. */
struct mb_hent mb_heap_pop(struct mb_heap *h);

#endif
