/* sink.h — the whole contract of a sink: where sealed records go (the chained feed, SPEC §6;
 * NRII SOAP, §8; another province's variant). A sink is a struct of callbacks; the uploader
 * owns the NULL-terminated registry of them (uploader.c) and runs each configured sink in its
 * own thread, so one never holds another back. Each sink keeps its own delivery cursor, under
 * its name, over the same sealed records (buffer_sink_get/put), and reads nothing but those
 * records and its own tables. */
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
	SINK_RETRY,         /* a temporary failure: the cursor's next_attempt says when */
	SINK_REFUSED,       /* the platform refused a record: stopped until config/operator acts */
	SINK_ALARM,         /* an integrity alarm: stopped */
};

/* name, configured and step are required; a NULL create, abort or destroy means there is
 * nothing to do. */
struct sink_ops {
	const char *name;       /* the cursor's name in the buffer: "platform", "nrii" */
	/* Whether the configuration asks for this sink. */
	bool (*configured)(const struct config *cfg);
	/* Build the sink's state (*state; NULL is fine) from its part of cfg. 0 or -errno. */
	int (*create)(const struct config *cfg, struct buffer *b, void **state);
	/* Deliver at most one batch if it is due at `now` (or at once with force). Never waits
	 * out a back-off itself: it sets next_attempt and returns SINK_RETRY, and the uploader
	 * waits (through the clock seam). */
	enum sink_result (*step)(void *state, int64_t now, bool force);
	/* From another thread: make a step under way give up soon (the daemon is stopping). */
	void (*abort)(void *state);
	void (*destroy)(void *state);
};

/* Every sink compiled in (uploader.c); NULL-terminated. */
extern const struct sink_ops *const sink_registry[];

#endif
