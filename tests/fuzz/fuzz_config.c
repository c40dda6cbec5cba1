/* fuzz_config.c — libFuzzer target for the configuration loader: any bytes in, no crash, no
 * leak, and always either a config or at least one message saying why not. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

#define INTERNAL ": internal error: position map out of step with the parser"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };

	int rc = config_parse("fuzz.json", (const char *)data, size, &cfg, &errs);
	if ((rc == 0) != (cfg != NULL) || (rc == 0 && errs.n > 0) || (rc == -EINVAL && errs.n == 0))
		__builtin_trap();
	for (size_t i = 0; i < errs.n; i++) {
		const char *m = errs.msg[i], *tail = strstr(m, INTERNAL);
		if (strncmp(m, "fuzz.json:", 10) != 0)
			__builtin_trap();  /* every message is placed */
		/* The position map slipped: the one message with nothing but a place before it (a
		 * key or value quoted in other messages may contain the same words). */
		if (tail && strcmp(tail, INTERNAL) == 0 &&
		    strspn(m + 10, "0123456789:") == (size_t)(tail - m - 10))
			__builtin_trap();
	}
	if (cfg && cfg->n_instruments && !config_instrument(cfg, cfg->instruments[0].id))
		__builtin_trap();
	config_free(cfg);
	config_errors_clear(&errs);
	return 0;
}
