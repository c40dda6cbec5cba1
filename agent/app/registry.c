/* registry.c — the source drivers compiled into this agent. */
#include "source.h"

#include <stddef.h>

#include "logtail.h"
#include "modbus.h"

const struct source_ops *const source_registry[] = {
	&modbus_source,
	&logtail_source,
	NULL,
};
