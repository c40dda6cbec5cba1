/* report_events.h — the sealed events an auditor asks about (SPEC §6 types), gathered per
 * instrument over a period for the HTML report: device offline/online paired over the whole
 * chain, counter and gap events, and the agent-wide ones. */
#ifndef LABSHARE_REPORT_EVENTS_H
#define LABSHARE_REPORT_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buffer;
struct report_opts;
struct report_row;

/* agent_only: listed only when agent-wide. */
struct ev_type {
	const char *type, *zh, *en;
	bool agent_only;
};

#define N_EV 8
extern const struct ev_type ev_types[N_EV];
enum { EV_OFFLINE = 0, EV_ONLINE = 1 };

struct ev_item {
	int64_t seq, at;
	int64_t offline_s;          /* device_online: how long it was offline, -1 unknown */
	size_t type;
	char *detail;               /* cut to a few hundred bytes; the sealed record has all of it */
};

struct ev_list {
	struct ev_item *v;
	size_t n, cap;
	int64_t more;               /* in the period but beyond REPORT_HTML_EVENTS_MAX */
	int64_t count[N_EV];        /* all in the period, listed or not */
	int64_t offline_since;      /* -1: online (pairs device_offline with device_online) */
};

/* lists[i] for rows[i], lists[n] for the agent-wide events. */
struct report_events {
	struct ev_list *lists;
	size_t n;
};

/* b may be NULL (no buffer: no events). 0 or -errno; free with report_events_free either way. */
int report_events_load(struct buffer *b, const struct report_opts *o, const struct report_row *rows,
		       size_t n, struct report_events *ev);
void report_events_free(struct report_events *ev);

#endif
