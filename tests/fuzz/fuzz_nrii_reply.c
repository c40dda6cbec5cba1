/* fuzz_nrii_reply.c — libFuzzer target for the NRII reply reader: any bytes from the network,
 * an envelope or not; no crash, no leak, a code only when it read one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nrii_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nrii_reply r;
	nrii_parse_reply((const char *)data, size, &r);
	if (memchr(r.text, '\0', sizeof(r.text)) == NULL)
		abort(); /* the text must always be terminated inside its buffer */
	return 0;
}
