/* mbheap.c — a binary min-heap on a fixed array. */
#include "mbheap.h"

#include <errno.h>
#include <stdlib.h>

int mb_heap_init(struct mb_heap *h, size_t cap)
{
	h->n = 0;
	h->cap = cap;
	h->e = calloc(cap ? cap : 1, sizeof(*h->e));
	return h->e ? 0 : -ENOMEM;
}

void mb_heap_free(struct mb_heap *h)
{
	free(h->e);
	h->e = NULL;
	h->n = h->cap = 0;
}

bool mb_heap_push(struct mb_heap *h, int64_t key, uint32_t id)
{
	if (h->n == h->cap)
		return false;
	size_t i = h->n++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (h->e[up].key <= key)
			break;
		h->e[i] = h->e[up];
		i = up;
	}
	h->e[i] = (struct mb_hent){ key, id };
	return true;
}

struct mb_hent mb_heap_pop(struct mb_heap *h)
{
	struct mb_hent top = h->e[0], last = h->e[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->e[c + 1].key < h->e[c].key)
			c++;
		if (last.key <= h->e[c].key)
			break;
		h->e[i] = h->e[c];
		i = c;
	}
	if (h->n)
		h->e[i] = last;
	return top;
}
