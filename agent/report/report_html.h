/* report_html.h — the auditors' report as one self-contained HTML page (SPEC §4 "Report"):
 * tables, inline SVG charts, reference figures with their sources, the chain's state and the
 * events that matter to an auditor. No network fetches, no scripts. */
#ifndef LABSHARE_REPORT_HTML_H
#define LABSHARE_REPORT_HTML_H

#include <stddef.h>
#include <stdio.h>

struct config;
struct report_chain;
struct report_events;
struct report_opts;
struct report_row;

/* The page's font stack: common CJK fonts before the generic family, so Chinese reads right
 * on Linux, Windows and macOS alike. The browser test renders with it too. */
#define REPORT_HTML_FONTS \
	"\"Noto Sans CJK SC\", \"Source Han Sans SC\", \"WenQuanYi Micro Hei\", \"Microsoft YaHei\", " \
	"\"PingFang SC\", sans-serif"

/* Events listed per instrument; the rest are counted ("and N more"). */
#define REPORT_HTML_EVENTS_MAX 200

/* rows as from report_rows(), ev from report_events_load() over the same rows, chain from
 * report_chain_read(): the page is a function of them alone. Returns 0 or a negative errno
 * (write errors are left to the caller's ferror check). */
int report_html_write(const struct config *cfg, const struct report_opts *o, const struct report_row *rows,
		      size_t n, const struct report_events *ev, const struct report_chain *chain, FILE *out);

#endif
