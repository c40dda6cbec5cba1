/* agentfix.h — an agent core on a real SQLite buffer in a temporary folder, for tests that
 * feed observations through the pipeline: config, buffer, core and a fake clock. */
#ifndef LABSHARE_AGENTFIX_H
#define LABSHARE_AGENTFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

struct agent_fix {
	char *dir;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct fake_clock clock;
};

/* config_json may say "@DIR@" for the fixture's folder, which holds a token file
 * "@DIR@/token" (mode 0600). zone becomes the process's zone; now_s > 0 installs a fake
 * clock standing at that time. NULL (with the reason on stderr) when anything fails. */
struct agent_fix *agent_fix_new(const char *prefix, const char *config_json, const char *zone,
				int64_t now_s);
/* Closes everything, removes the folder, restores the system clock. NULL-safe. */
void agent_fix_free(struct agent_fix *f);

/* Submits one session (external: 1, 0 or -1 for internal_orgs); returns core_submit's result. */
int agent_fix_session(struct agent_fix *f, const char *instrument, int64_t start, int64_t end,
		      const char *user, const char *org, int external, int64_t samples);

#endif
