/* sink.h — where sealed records go: the chained feed (SPEC §6), NRII SOAP (§8), another
 * province's variant. Each sink keeps its own delivery cursor over the same records and runs
 * in its own thread, so one never holds another back. */
#ifndef LABSHARE_SINK_H
#define LABSHARE_SINK_H

#include <stdbool.h>
#include <stdint.h>

struct buffer;
struct config;

/* What one delivery step came to. */
enum sink_result {
	SINK_IDLE,          /* nothing pending */
	SINK_PROGRESS,      /* records acknowledged; more may be pending */
	SINK_RETRY,         /* a temporary failure: next_attempt says when */
	SINK_REFUSED,       /* the platform refused a record: stopped until config/operator acts */
	SINK_ALARM,         /* an integrity alarm: stopped */
};

struct sink_ops {
	const char *name;       /* the cursor's name in the buffer: "platform", "nrii" */
	/* Whether this sink is configured. */
	bool (*configured)(const struct config *cfg);
	int (*create)(const struct config *cfg, struct buffer *b, void **state);
	/* Deliver at most one batch if it is due at `now` (or at once with force). */
	enum sink_result (*step)(void *state, int64_t now, bool force);
	/* Ask a step under way to give up soon (the daemon is stopping). */
	void (*abort)(void *state);
	void (*destroy)(void *state);
};

extern const struct sink_ops feed_sink;
/* Every sink compiled in; NULL-terminated. */
extern const struct sink_ops *const sink_registry[];

#endif
