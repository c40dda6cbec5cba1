/* report_html.c — the auditors' HTML report: one page that opens offline and prints to PDF,
 * built from the same rows as the CSV and JSON, plus the chain's state and the sealed events an
 * auditor asks about. Every string from a config or a log goes through svg_escape. */
#include "report_html.h"
#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "report.h"
#include "svg.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The reference figures of SPEC §4, each with where it comes from. Yearly hours are pro-rated
 * to the period the way rated hours are (each day weighs 1/365, 1/366 in a leap year). */
struct ref_figure {
	const char *cls;            /* chart line class */
	const char *zh, *en;
	double value;               /* hours a year, or a rate */
	bool rate;
	const char *source_zh, *source_en;
};

enum { REF_2019, REF_2025, REF_1200, REF_SHARE, N_REFS };

static const struct ref_figure ref_figures[N_REFS] = {
	[REF_2019] = { "r2019", "全国平均有效机时", "national average effective hours", 1440, false,
		       "2019 年度大型科研仪器开放共享评价考核，全国平均",
		       "2019 national evaluation of large-instrument open sharing, national average" },
	[REF_2025] = { "r2025", "全国平均有效机时", "national average effective hours", 1599, false,
		       "2025 年全国平均", "2025 national average" },
	[REF_1200] = { "r1200", "“机时饱满”标准", "\"fully used\" rule for new purchases", 1200, false,
		       "新购大型仪器论证：同类在用仪器年有效机时达 1200 h 方为“机时饱满”",
		       "new-purchase rule: existing instruments of the kind count as fully used at 1200 h a year" },
	[REF_SHARE] = { "rshare", "全国平均共享率", "national average sharing rate", 0.16, true,
			"2019 年度大型科研仪器开放共享评价考核，全国平均",
			"2019 national evaluation of large-instrument open sharing, national average" },
};

/* Events an auditor asks about (SPEC §6 types). agent_only: listed only when agent-wide. */
struct ev_type {
	const char *type, *zh, *en;
	bool agent_only;
};

static const struct ev_type ev_types[] = {
	{ "device_offline", "设备离线", "device offline", false },
	{ "device_online", "设备恢复在线", "device back online", false },
	{ "counter_reset", "计数器复位", "counter reset", false },
	{ "counter_clamped", "计数增量被截断", "counter delta clamped", false },
	{ "counter_wrap", "计数器回绕", "counter wrapped", false },
	{ "gap", "数据间断", "gap", false },
	{ "config_changed", "配置变更", "configuration changed", true },
	{ "buffer_full", "缓冲区已满", "buffer full", true },
};
#define N_EV (sizeof(ev_types) / sizeof(ev_types[0]))
enum { EV_OFFLINE = 0, EV_ONLINE = 1 };

#define DETAIL_MAX 400  /* bytes of an event's detail shown; the sealed record has all of it */

struct ev_item {
	int64_t seq, at;
	int64_t offline_s;          /* device_online: how long it was offline, -1 unknown */
	size_t type;
	char *detail;
};

struct ev_list {
	struct ev_item *v;
	size_t n, cap;
	int64_t more;               /* in the period but beyond REPORT_HTML_EVENTS_MAX */
	int64_t count[N_EV];        /* all in the period, listed or not */
	int64_t offline_since;      /* -1: online (pairs device_offline with device_online) */
};

static const char *const sql_events = "SELECT seq, line FROM records WHERE kind = 'event' ORDER BY seq";

static void esc(FILE *out, const char *s)
{
	svg_escape(out, s);
}

static double hours(int64_t s)
{
	return (double)s / 3600.0;
}

static int days_in_year(int64_t day)
{
	time_t t = (time_t)day;
	struct tm tm;
	localtime_r(&t, &tm);
	int y = tm.tm_year + 1900;
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 366 : 365;
}

/* ---- events ---------------------------------------------------------------------------- */

static char *cut_detail(const char *s)
{
	if (!s)
		return NULL;
	size_t len = strlen(s);
	if (len <= DETAIL_MAX)
		return strdup(s);
	size_t max = DETAIL_MAX;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	char *d = malloc(max + 4);
	if (d) {
		memcpy(d, s, max);
		memcpy(d + max, "\xE2\x80\xA6", 4);
	}
	return d;
}

static int ev_add(struct ev_list *l, int64_t seq, int64_t at, size_t type, int64_t offline_s,
		  const char *detail)
{
	l->count[type]++;
	if (l->n >= REPORT_HTML_EVENTS_MAX) {
		l->more++;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ev_item *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct ev_item *e = &l->v[l->n];
	*e = (struct ev_item){ .seq = seq, .at = at, .offline_s = offline_s, .type = type };
	if (detail && !(e->detail = cut_detail(detail)))
		return -ENOMEM;
	l->n++;
	return 0;
}

/* One sealed event: pair offline/online over the whole chain, keep it when in the period. */
static int ev_take(struct ev_list *lists, const struct report_row *rows, size_t n, int64_t from,
		   int64_t end, int64_t seq, const cJSON *e)
{
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(e, "type");
	const cJSON *ji = cJSON_GetObjectItemCaseSensitive(e, "instrument");
	const cJSON *ja = cJSON_GetObjectItemCaseSensitive(e, "at");
	const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "detail");
	int64_t at;
	if (!cJSON_IsString(jt) || !cJSON_IsString(ja) || time_parse_iso(ja->valuestring, &at) != 0)
		return 0;
	size_t type = 0;
	while (type < N_EV && strcmp(ev_types[type].type, jt->valuestring) != 0)
		type++;
	if (type == N_EV)
		return 0;
	struct ev_list *l;
	if (cJSON_IsString(ji)) {
		size_t i = 0;
		while (i < n && strcmp(rows[i].instrument, ji->valuestring) != 0)
			i++;
		if (i == n || ev_types[type].agent_only)
			return 0;
		l = &lists[i];
	} else {
		l = &lists[n];
	}
	int64_t offline_s = -1;
	if (type == EV_OFFLINE && l->offline_since < 0)
		l->offline_since = at;
	if (type == EV_ONLINE && l->offline_since >= 0) {
		offline_s = at - l->offline_since;
		l->offline_since = -1;
	}
	if (at < from || at >= end)
		return 0;
	return ev_add(l, seq, at, type, offline_s, cJSON_IsString(jd) ? jd->valuestring : NULL);
}

/* lists: n + 1 (the last one for agent-wide events). */
static int events_load(struct buffer *b, const struct report_opts *o, const struct report_row *rows,
		       size_t n, struct ev_list *lists)
{
	for (size_t i = 0; i <= n; i++)
		lists[i].offline_since = -1;
	if (!b)
		return 0;
	int64_t end = time_next_day(o->to_day);
	int r = 0;
	buffer_lock(b);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(buffer_db(b), sql_events, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		r = buffer_sqlite_error(b, rc, "report: events");
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(s, 1);
		cJSON *e = line ? cJSON_Parse(line) : NULL;
		if (e)
			r = ev_take(lists, rows, n, o->from_day, end, sqlite3_column_int64(s, 0), e);
		cJSON_Delete(e);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = buffer_sqlite_error(b, rc, "report: events");
out:
	sqlite3_finalize(s);
	buffer_unlock(b);
	return r;
}

static void events_free(struct ev_list *lists, size_t n)
{
	for (size_t i = 0; lists && i < n; i++) {
		for (size_t k = 0; k < lists[i].n; k++)
			free(lists[i].v[k].detail);
		free(lists[i].v);
	}
	free(lists);
}

/* ---- page pieces ----------------------------------------------------------------------- */

/* Split in pieces: ISO C guarantees string literals of 4095 bytes only. */
static const char *const css[] = {
	":root{--ink:#1b1f24;--muted:#5d6672;--rule:#cfd5dc;--head:#eef1f5;--eff:#1f4e79;--ext:#c55a11;"
	"--rate:#2e7d5b;--bad:#a61b29;--ok:#1e6b3a}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;background:#e9ecf0;color:var(--ink);font-size:14px;line-height:1.5;"
	"font-family:" REPORT_HTML_FONTS "}\n"
	"main{max-width:1240px;margin:0 auto;background:#fff;padding:28px 40px 40px}\n"
	"header.doc{border-bottom:3px solid var(--eff);padding-bottom:14px;margin-bottom:6px}\n"
	"h1{font-size:25px;margin:0;letter-spacing:.02em}\n"
	"h1 .en{display:block;font-size:16px;font-weight:400;color:var(--muted);letter-spacing:0}\n"
	"h2{font-size:19px;margin:30px 0 10px;padding-bottom:5px;border-bottom:1px solid var(--rule)}\n"
	"h2 .en,h3 .en{font-size:.8em;font-weight:400;color:var(--muted);margin-left:.4em}\n"
	"h3{font-size:15px;margin:20px 0 6px}\n"
	".en{color:var(--muted)}\n"
	".top{display:grid;grid-template-columns:1.4fr 1fr;gap:18px;margin-top:14px}\n"
	"dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}\n"
	"dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}\n"
	".box{border:1px solid var(--rule);padding:10px 14px}\n"
	".box h2{margin:0 0 8px;border:0;padding:0;font-size:16px}\n",
	"table{border-collapse:collapse;width:100%;font-size:12.5px;font-variant-numeric:tabular-nums}\n"
	"th,td{border:1px solid var(--rule);padding:4px 6px;vertical-align:top}\n"
	"thead th{background:var(--head);text-align:left;font-weight:600;vertical-align:bottom}\n"
	"th .en{display:block;font-size:10.5px;font-weight:400}\n"
	"td.n,th.n{text-align:right;white-space:nowrap}\n"
	"tr.total td{font-weight:600;border-top:2px solid #8a939e}\n"
	"td.id{white-space:nowrap}\n"
	".scroll{overflow-x:auto}\n"
	".notice{border:1px solid #d8a83c;border-left:5px solid #d8a83c;background:#fff8e6;padding:8px 12px;"
	"margin:14px 0}\n"
	".badge{display:inline-block;padding:0 8px;border:1px solid;border-radius:3px;font-weight:600}\n"
	".badge.ok{color:var(--ok);background:#e7f3eb}.badge.bad{color:var(--bad);background:#fbe9eb}"
	".badge.none{color:var(--muted)}\n"
	".hash{font-family:\"DejaVu Sans Mono\",\"Noto Sans Mono\",monospace;font-size:12px;"
	"word-break:break-all}\n"
	".kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:10px 0}\n"
	".kpi{border:1px solid var(--rule);border-top:3px solid var(--eff);padding:6px 10px}\n"
	".kpi .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}\n"
	".kpi .l{font-size:12px;color:var(--muted)}\n"
	".meets{color:var(--ok);font-weight:600}.below{color:var(--bad);font-weight:600}\n"
	".inst h2 .id{font-size:.75em;font-weight:400;color:var(--muted);margin-left:.5em}\n"
	"p.sub{margin:0;color:var(--muted);font-size:13px}\n"
	"p.counts{font-size:13px;margin:4px 0 8px}\n"
	"footer{margin-top:34px;border-top:1px solid var(--rule);padding-top:10px;font-size:12px;"
	"color:var(--muted)}\n"
	"footer ol{padding-left:1.3em;margin:4px 0}\n",
	"svg.chart{display:block;width:100%;height:auto;margin:4px 0 12px}\n"
	"svg text{font-size:11px;fill:#39414b}svg text.lg{font-size:11.5px;fill:#1b1f24}"
	"svg text.vl{font-size:11px;fill:#1b1f24}\n"
	"svg .axis{stroke:#7b848f;stroke-width:1}svg .grid{stroke:#e2e6ea;stroke-width:1}\n"
	"svg .eff{fill:var(--eff)}svg .ext{fill:var(--ext)}svg .rate{fill:var(--rate)}"
	"svg .nodata{fill:#b8bec6}\n"
	"svg .mark{stroke:#1b1f24;stroke-width:2.5}\n"
	"svg .ref{fill:none;stroke-width:1.6;stroke-dasharray:7 4}\n"
	"svg .r2019{stroke:var(--bad)}svg .r2025{stroke:#6a3d9a}svg .r1200{stroke:#7a6a00;"
	"stroke-dasharray:2 3}svg .rshare{stroke:var(--bad)}\n"
	"svg line.key{stroke-width:2.2}\n"
	"@page{size:A4 landscape;margin:12mm}\n"
	"@media print{body{background:none;font-size:11px}main{max-width:none;padding:0}"
	"h2.insts,.inst+.inst{break-before:page}table,svg.chart,.box,.kpis,.notice,footer{break-inside:avoid}"
	"svg.chart.columns{max-height:52mm}.kpi{padding:2px 8px}.kpi .v{font-size:15px}h3{margin:10px 0 4px}"
	"h2,h3{break-after:avoid}thead{display:table-header-group}.scroll{overflow:visible}"
	"thead th,.badge,.notice{background:none!important}table{font-size:10.5px}}\n",
};

static void head(FILE *out, const struct config *cfg, const char *from, const char *to)
{
	fputs("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
	      /* Defence in depth: even a bug in escaping could not run a script or fetch anything. */
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<meta name=\"generator\" content=\"labshare-agent " LABSHARE_VERSION "\">\n<title>", out);
	fputs("大型仪器开放共享报告 ", out);
	esc(out, cfg->agent.lab_code);
	fprintf(out, " %s – %s</title>\n<style>\n", from, to);
	for (size_t i = 0; i < sizeof(css) / sizeof(css[0]); i++)
		fputs(css[i], out);
	fputs("</style>\n</head>\n<body>\n<main>\n", out);
}

static void th2(FILE *out, const char *zh, const char *en, bool num)
{
	fprintf(out, "<th%s>%s<span class=\"en\">%s</span></th>", num ? " class=\"n\"" : "", zh, en);
}

static void td_h(FILE *out, int64_t s)
{
	fprintf(out, "<td class=\"n\">%.2f</td>", hours(s));
}

static void td_int(FILE *out, int64_t v)
{
	fprintf(out, "<td class=\"n\">%" PRId64 "</td>", v);
}

static void td_pct(FILE *out, double r)
{
	fprintf(out, "<td class=\"n\">%.2f %%</td>", r * 100);
}

static void td_text(FILE *out, const char *s)
{
	fputs("<td>", out);
	esc(out, s);
	fputs("</td>", out);
}

struct period {
	char from[DATE_LEN], to[DATE_LEN];
	int64_t end;                /* midnight after the last day */
	size_t days;
	double year_fraction;       /* Σ 1/365 (1/366) over the days: yearly figures × this */
};

static void chain_box(FILE *out, struct buffer *b, int r, const struct chain_verify *v)
{
	fputs("<section class=\"box chain\">\n<h2>数据链状态<span class=\"en\">Record chain</span></h2>\n", out);
	if (!b) {
		fputs("<p><span class=\"badge none\">无缓冲区 no buffer</span></p>\n"
		      "<p>本机尚未封存任何记录。<span class=\"en\">Nothing has been sealed on this machine yet.</span></p>\n"
		      "</section>\n", out);
		return;
	}
	if (r < 0) {
		fputs("<p><span class=\"badge bad\">无法读取 could not be read</span> ", out);
		esc(out, strerror(-r));
		fputs("</p>\n</section>\n", out);
		return;
	}
	if (r == 0)
		fputs("<p><span class=\"badge ok\">完整 intact</span> 所有保留记录的 SHA-256 链校验通过。"
		      "<span class=\"en\">Every kept record re-hashes to the chain.</span></p>\n", out);
	else
		fputs("<p><span class=\"badge bad\">已损坏 BROKEN</span> 链在下列序号处断开，请保留 buffer.db 并上报。"
		      "<span class=\"en\">The chain breaks at the seq below: keep buffer.db and report it.</span></p>\n",
		      out);
	fprintf(out, "<dl class=\"meta\">\n<dt>最后序号 last seq</dt><dd>%" PRId64 "</dd>\n", v->last_seq);
	fputs("<dt>链头哈希 head hash</dt><dd class=\"hash\">", out);
	esc(out, v->head_hash[0] ? v->head_hash
				 : "0000000000000000000000000000000000000000000000000000000000000000");
	fprintf(out, "</dd>\n<dt>已校验 checked</dt><dd>%" PRId64 " 条记录 records (seq %" PRId64 "–%" PRId64
		")</dd>\n", v->records, v->first_seq, v->last_seq);
	if (r == 1) {
		fprintf(out, "<dt>首个异常序号 first bad seq</dt><dd><span class=\"below\">%" PRId64 "</span> ",
			v->bad_seq);
		esc(out, v->why);
		fputs("</dd>\n", out);
	}
	fputs("</dl>\n</section>\n", out);
}

static void header(FILE *out, const struct config *cfg, const struct period *p, struct buffer *b,
		   int chain_r, const struct chain_verify *cv)
{
	char now[RFC3339_LEN];
	time_rfc3339(clock_wall(), now);
	fputs("<header class=\"doc\">\n<h1>大型科研仪器开放共享报告"
	      "<span class=\"en\">Large research instruments: machine hours and open sharing</span></h1>\n"
	      "</header>\n<div class=\"top\">\n<section class=\"box\">\n"
	      "<h2>报告信息<span class=\"en\">Report</span></h2>\n<dl class=\"meta\">\n"
	      "<dt>实验室代码 lab code</dt><dd>", out);
	esc(out, cfg->agent.lab_code);
	fputs("</dd>\n<dt>采集端 agent</dt><dd>", out);
	esc(out, cfg->agent.id);
	fprintf(out, "</dd>\n<dt>统计期间 period</dt><dd>%s – %s（%zu 天 days）</dd>\n", p->from, p->to, p->days);
	fputs("<dt>时区 time zone</dt><dd>", out);
	esc(out, cfg->agent.timezone);
	fprintf(out, "</dd>\n<dt>数据来源 data</dt><dd>已封存的日记录（每日取最新修订）"
		"<span class=\"en\"> sealed daily records, latest revision of each day</span></dd>\n"
		"<dt>生成时间 generated</dt><dd>%s</dd>\n</dl>\n</section>\n", now);
	chain_box(out, b, chain_r, cv);
	fputs("</div>\n", out);
}

/* Per-instrument sums for the totals row; rates are ratios of the sums, like one instrument's
 * period. External users are distinct per instrument, so their sum would count one user twice. */
static void totals(const struct report_row *rows, size_t n, struct report_row *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		const struct report_row *r = &rows[i];
		t->effective_s += r->effective_s;
		t->service_s += r->service_s;
		t->external_s += r->external_s;
		t->internal_s += r->internal_s;
		t->sessions += r->sessions;
		t->external_sessions += r->external_sessions;
		t->samples += r->samples;
		t->unattributed_s += r->unattributed_s;
		t->overclaimed_s += r->overclaimed_s;
		t->offline_s += r->offline_s;
		t->manual_sessions += r->manual_sessions;
		t->auto_closed_sessions += r->auto_closed_sessions;
		t->rated_h += r->rated_h;
	}
	t->sharing_rate = t->effective_s > 0 ? (double)t->external_s / (double)t->effective_s : 0;
	t->utilisation = t->rated_h > 0 ? hours(t->effective_s) / t->rated_h : 0;
	t->external_users = -1;
}

static void summary_hours_row(FILE *out, const struct report_row *r)
{
	td_h(out, r->effective_s);
	td_h(out, r->service_s);
	td_h(out, r->external_s);
	td_h(out, r->internal_s);
	td_pct(out, r->sharing_rate);
	td_h(out, r->unattributed_s);
	td_h(out, r->overclaimed_s);
	td_h(out, r->offline_s);
	fprintf(out, "<td class=\"n\">%.2f</td>", r->rated_h);
	td_pct(out, r->utilisation);
	fputs("</tr>\n", out);
}

static void summary_counts_row(FILE *out, const struct report_row *r)
{
	td_int(out, r->sessions);
	td_int(out, r->external_sessions);
	td_int(out, r->samples);
	if (r->external_users >= 0)
		td_int(out, r->external_users);
	else
		fputs("<td class=\"n\">—</td>", out);
	td_int(out, r->manual_sessions);
	td_int(out, r->auto_closed_sessions);
	fputs("</tr>\n", out);
}

struct col {
	const char *zh, *en;
};

static void summary_table(FILE *out, const char *cls, const struct col *cols, size_t n_cols,
			  const struct report_row *rows, size_t n, const struct report_row *t,
			  void (*row)(FILE *, const struct report_row *))
{
	fprintf(out, "<div class=\"scroll\"><table class=\"summary %s\">\n<thead><tr>", cls);
	th2(out, "仪器编号", "instrument", false);
	th2(out, "仪器名称", "name", false);
	for (size_t c = 0; c < n_cols; c++)
		th2(out, cols[c].zh, cols[c].en, true);
	fputs("</tr></thead>\n<tbody>\n", out);
	for (size_t i = 0; i < n; i++) {
		fputs("<tr><td class=\"id\">", out);
		esc(out, rows[i].instrument);
		fputs("</td>", out);
		td_text(out, rows[i].name);
		row(out, &rows[i]);
	}
	if (n > 1) {
		fputs("<tr class=\"total\"><td colspan=\"2\">合计 all instruments</td>", out);
		row(out, t);
	}
	fputs("</tbody>\n</table></div>\n", out);
}

/* The CSV's columns, in two tables so that each fits a page: hours, then counts. */
static void summary(FILE *out, const struct report_row *rows, size_t n)
{
	static const struct col hours_cols[] = {
		{ "有效机时", "effective h" }, { "服务机时", "service h" }, { "对外服务机时", "external h" },
		{ "对内服务机时", "internal h" }, { "共享率", "sharing rate" }, { "无登记运行", "unattributed h" },
		{ "超记机时", "overclaimed h" }, { "离线时长", "offline h" }, { "定额机时", "rated h" },
		{ "利用率", "utilisation" },
	};
	static const struct col count_cols[] = {
		{ "服务次数", "sessions" }, { "对外服务次数", "external sessions" }, { "样品数", "samples" },
		{ "外部用户", "external users" }, { "手工补录", "manual sessions" },
		{ "自动结束", "auto-closed sessions" },
	};
	struct report_row t;
	totals(rows, n, &t);
	fputs("<h2>1 汇总<span class=\"en\">Summary by instrument</span></h2>\n"
	      "<h3>机时<span class=\"en\">Hours</span></h3>\n", out);
	summary_table(out, "hours", hours_cols, sizeof(hours_cols) / sizeof(hours_cols[0]), rows, n, &t,
		      summary_hours_row);
	fputs("<h3>服务次数与用户<span class=\"en\">Sessions, samples and users</span></h3>\n", out);
	summary_table(out, "counts", count_cols, sizeof(count_cols) / sizeof(count_cols[0]), rows, n, &t,
		      summary_counts_row);
	if (n > 1)
		fputs("<p class=\"sub\">合计行的共享率与利用率按合计计算；外部用户按仪器分别去重，不作合计。"
		      "<span class=\"en\"> In the totals, rates are ratios of the sums; external users are distinct per "
		      "instrument and are not added up.</span></p>\n", out);
}

static void ref_label(char *buf, size_t len, const struct ref_figure *f, const struct period *p)
{
	int k;
	if (f->rate)
		k = snprintf(buf, len, "%s %.0f %% (%s)", f->zh, f->value * 100, f->source_en);
	else
		k = snprintf(buf, len, "%s %.0f h/年 → %.2f h", f->zh, f->value, f->value * p->year_fraction);
	if (k < 0 || (size_t)k >= len)
		buf[len - 1] = '\0';  /* a legend cut short still names the figure */
}

static int overview(FILE *out, const struct report_row *rows, size_t n, const struct period *p)
{
	int r = -ENOMEM;
	double *rate = calloc(n ? n : 1, sizeof(*rate));
	double *eff = calloc(n ? n : 1, sizeof(*eff));
	double *ext = calloc(n ? n : 1, sizeof(*ext));
	double *rated = calloc(n ? n : 1, sizeof(*rated));
	const char **cat = calloc(n ? n : 1, sizeof(*cat));
	const char **tip = calloc(n ? n : 1, sizeof(*tip));
	if (!rate || !eff || !ext || !rated || !cat || !tip)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rate[i] = rows[i].sharing_rate * 100;
		eff[i] = hours(rows[i].effective_s);
		ext[i] = hours(rows[i].external_s);
		rated[i] = rows[i].rated_h;
		cat[i] = rows[i].instrument;
		tip[i] = rows[i].name;
	}
	char l2019[160], l2025[160], l1200[160], lshare[200];
	ref_label(l2019, sizeof(l2019), &ref_figures[REF_2019], p);
	ref_label(l2025, sizeof(l2025), &ref_figures[REF_2025], p);
	ref_label(l1200, sizeof(l1200), &ref_figures[REF_1200], p);
	ref_label(lshare, sizeof(lshare), &ref_figures[REF_SHARE], p);

	fputs("<h2>2 对照参考值<span class=\"en\">Against the reference figures</span></h2>\n"
	      "<h3>各仪器共享率<span class=\"en\">Sharing rate of each instrument over the period</span></h3>\n",
	      out);
	const struct svg_series s_rate[] = { { "rate", "共享率 sharing rate", rate } };
	const struct svg_ref r_rate[] = { { ref_figures[REF_SHARE].cls, lshare, ref_figures[REF_SHARE].value * 100 } };
	svg_bars(out, &(struct svg_chart){ .title = "各仪器共享率 Sharing rate by instrument", .n = n,
					   .cat = cat, .tip = tip, .series = s_rate, .n_series = 1,
					   .refs = r_rate, .n_refs = 1, .unit = "%" });

	fputs("<h3>各仪器有效机时<span class=\"en\">Effective hours of each instrument, yearly figures pro-rated "
	      "to the period</span></h3>\n", out);
	const struct svg_series s_h[] = { { "eff", "有效机时 effective h", eff },
					  { "ext", "对外服务机时 external h", ext } };
	const struct svg_ref r_h[] = {
		{ ref_figures[REF_1200].cls, l1200, ref_figures[REF_1200].value * p->year_fraction },
		{ ref_figures[REF_2019].cls, l2019, ref_figures[REF_2019].value * p->year_fraction },
		{ ref_figures[REF_2025].cls, l2025, ref_figures[REF_2025].value * p->year_fraction },
	};
	svg_bars(out, &(struct svg_chart){ .title = "各仪器有效机时 Effective hours by instrument", .n = n,
					   .cat = cat, .tip = tip, .series = s_h, .n_series = 2, .refs = r_h,
					   .n_refs = 3, .marks = rated, .mark_label = "定额机时 rated h (config)",
					   .unit = "h" });

	fputs("<h3>参考值及来源<span class=\"en\">Reference figures and their sources</span></h3>\n"
	      "<table class=\"refs\">\n<thead><tr>", out);
	th2(out, "参考值", "figure", false);
	th2(out, "年值", "per year", true);
	th2(out, "本期折算", "over this period", true);
	th2(out, "来源", "source", false);
	fputs("</tr></thead>\n<tbody>\n", out);
	for (size_t k = 0; k < N_REFS; k++) {
		const struct ref_figure *f = &ref_figures[k];
		fprintf(out, "<tr><td>%s<span class=\"en\"> %s</span></td>", f->zh, f->en);
		if (f->rate)
			fprintf(out, "<td class=\"n\">%.2f %%</td><td class=\"n\">%.2f %%</td>", f->value * 100,
				f->value * 100);
		else
			fprintf(out, "<td class=\"n\">%.2f h</td><td class=\"n\">%.2f h</td>", f->value,
				f->value * p->year_fraction);
		fprintf(out, "<td>%s<span class=\"en\"> — %s</span></td></tr>\n", f->source_zh, f->source_en);
	}
	fputs("<tr><td>定额机时<span class=\"en\"> rated hours</span></td><td class=\"n\">每台仪器 per instrument</td>"
	      "<td class=\"n\">见各仪器 see each instrument</td>"
	      "<td>本采集端配置 instruments[].rated_hours（通用仪器 1400 h，专用仪器 800 h）"
	      "<span class=\"en\"> — this agent's configuration, instruments[].rated_hours "
	      "(1400 h general, 800 h specialised)</span></td></tr>\n</tbody>\n</table>\n", out);
	fprintf(out, "<p class=\"sub\">年值按本期 %zu 天折算（每天计 1/365，闰年 1/366）。"
		"<span class=\"en\">Yearly figures are pro-rated to the %zu days of the period "
		"(each day 1/365, 1/366 in a leap year).</span></p>\n", p->days, p->days);
	r = 0;
out:
	free(rate);
	free(eff);
	free(ext);
	free(rated);
	free(cat);
	free(tip);
	return r;
}

static const struct instrument_cfg *find_cfg(const struct config *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_instruments; i++)
		if (strcmp(cfg->instruments[i].id, id) == 0)
			return &cfg->instruments[i];
	return NULL;
}

static void kpi(FILE *out, bool rate, double v, const char *zh, const char *en)
{
	fputs("<div class=\"kpi\"><div class=\"v\">", out);
	if (!rate)
		fprintf(out, "%.2f h", v);
	else
		fprintf(out, "%.2f %%", v * 100);
	fprintf(out, "</div><div class=\"l\">%s %s</div></div>\n", zh, en);
}

/* One row of the comparison table: the instrument's figure against a yearly reference. */
static void compare_row(FILE *out, const char *zh, const char *en, const char *source, double per_year,
			double period_ref, double mine, bool rate)
{
	fprintf(out, "<tr><td>%s<span class=\"en\"> %s</span></td><td>%s</td>", zh, en, source);
	if (rate) {
		fprintf(out, "<td class=\"n\">%.2f %%</td><td class=\"n\">%.2f %%</td><td class=\"n\">%.2f %%</td>"
			"<td class=\"n\">—</td>", per_year * 100, period_ref * 100, mine * 100);
	} else {
		fprintf(out, "<td class=\"n\">%.2f h</td><td class=\"n\">%.2f h</td><td class=\"n\">%.2f h</td>",
			per_year, period_ref, mine);
		fprintf(out, "<td class=\"n\">%.2f %%</td>", period_ref > 0 ? mine / period_ref * 100 : 0);
	}
	bool meets = mine >= period_ref;
	fprintf(out, "<td class=\"%s\">%s</td></tr>\n", meets ? "meets" : "below",
		meets ? "达到 meets" : "低于 below");
}

static void compare(FILE *out, const struct report_row *r, const struct instrument_cfg *ic,
		    const struct period *p)
{
	fputs("<table class=\"cmp\">\n<thead><tr>", out);
	th2(out, "参考值", "reference", false);
	th2(out, "来源", "source", false);
	th2(out, "年值", "per year", true);
	th2(out, "本期折算", "this period", true);
	th2(out, "本仪器", "this instrument", true);
	th2(out, "比值", "ratio", true);
	th2(out, "对照", "vs", false);
	fputs("</tr></thead>\n<tbody>\n", out);
	double eff = hours(r->effective_s);
	for (size_t k = 0; k < N_REFS; k++) {
		const struct ref_figure *f = &ref_figures[k];
		if (f->rate)
			compare_row(out, f->zh, f->en, f->source_zh, f->value, f->value, r->sharing_rate, true);
		else
			compare_row(out, f->zh, f->en, f->source_zh, f->value, f->value * p->year_fraction, eff,
				    false);
	}
	compare_row(out, "定额机时", "rated hours", "本采集端配置 rated_hours", ic ? ic->rated_hours : 0,
		    r->rated_h, eff, false);
	fputs("</tbody>\n</table>\n", out);
}

static void fmt_duration(FILE *out, int64_t s)
{
	if (s >= 86400)
		fprintf(out, "%" PRId64 " d %" PRId64 " h %" PRId64 " min", s / 86400, s % 86400 / 3600,
			s % 3600 / 60);
	else if (s >= 3600)
		fprintf(out, "%" PRId64 " h %" PRId64 " min", s / 3600, s % 3600 / 60);
	else
		fprintf(out, "%" PRId64 " min %" PRId64 " s", s / 60, s % 60);
}

static void events_table(FILE *out, const struct ev_list *l, bool agent)
{
	int64_t total = 0;
	for (size_t t = 0; t < N_EV; t++)
		total += l->count[t];
	if (total == 0) {
		if (agent)
			fputs("<p class=\"sub\">本期间无配置变更或缓冲区满等全局事件。<span class=\"en\">No configuration "
			      "change, buffer-full or other agent-wide event in this period.</span></p>\n", out);
		else
			fputs("<p class=\"sub\">本期间无离线、计数器异常或数据间断事件。<span class=\"en\">No offline "
			      "period, counter or gap event in this period.</span></p>\n", out);
		return;
	}
	fputs("<table class=\"events\">\n<thead><tr>", out);
	th2(out, "序号", "seq", true);
	th2(out, "时间", "time", false);
	th2(out, "事件", "event", false);
	th2(out, "详情", "detail", false);
	th2(out, "说明", "note", false);
	fputs("</tr></thead>\n<tbody>\n", out);
	for (size_t k = 0; k < l->n; k++) {
		const struct ev_item *e = &l->v[k];
		char at[RFC3339_LEN];
		time_rfc3339(e->at, at);
		fprintf(out, "<tr><td class=\"n\">%" PRId64 "</td><td>%s</td><td>%s<span class=\"en\"> %s</span></td>",
			e->seq, at, ev_types[e->type].zh, ev_types[e->type].en);
		td_text(out, e->detail ? e->detail : "");
		fputs("<td>", out);
		if (e->type == EV_ONLINE && e->offline_s >= 0) {
			fputs("离线 offline ", out);
			fmt_duration(out, e->offline_s);
		}
		fputs("</td></tr>\n", out);
	}
	fputs("</tbody>\n</table>\n", out);
	if (l->more > 0)
		fprintf(out, "<p class=\"sub\">另有 %" PRId64 " 条事件未列出（每台仪器最多列 %d 条），均已封存在缓冲区中。"
			"<span class=\"en\">%" PRId64 " more events in this period are not listed (at most %d per "
			"instrument); all are sealed in the buffer.</span></p>\n",
			l->more, REPORT_HTML_EVENTS_MAX, l->more, REPORT_HTML_EVENTS_MAX);
}

static void event_counts(FILE *out, const struct report_row *r, const struct ev_list *l)
{
	fputs("<p class=\"counts\">", out);
	for (size_t t = 0; t < N_EV; t++) {
		if (ev_types[t].agent_only)
			continue;
		fprintf(out, "%s <span class=\"en\">%s</span>: <b>%" PRId64 "</b> · ", ev_types[t].zh,
			ev_types[t].en, l->count[t]);
	}
	fprintf(out, "手工补录 <span class=\"en\">manual sessions</span>: <b>%" PRId64 "</b> · "
		"自动结束 <span class=\"en\">auto-closed sessions</span>: <b>%" PRId64 "</b> · "
		"离线时长 <span class=\"en\">offline</span>: <b>%.2f h</b></p>\n",
		r->manual_sessions, r->auto_closed_sessions, hours(r->offline_s));
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int daily_charts(FILE *out, const struct report_row *r, const struct period *p, int64_t from)
{
	size_t nd = p->days;
	int ret = -ENOMEM;
	double *eff = calloc(nd, sizeof(*eff)), *ext = calloc(nd, sizeof(*ext)), *rate = calloc(nd, sizeof(*rate));
	char(*dates)[DATE_LEN] = calloc(nd, sizeof(*dates));
	const char **cat = calloc(nd, sizeof(*cat)), **tip = calloc(nd, sizeof(*tip));
	if (!eff || !ext || !rate || !dates || !cat || !tip)
		goto out;
	/* The sealed days come in date order: walk them beside the calendar. */
	const cJSON *d = r->days ? r->days->child : NULL;
	size_t i = 0;
	for (int64_t day = from; i < nd; day = time_next_day(day), i++) {
		time_date(day, dates[i]);
		tip[i] = dates[i];
		cat[i] = dates[i] + 5;  /* "11-02": the year is in the period */
		eff[i] = ext[i] = rate[i] = NAN;
		while (d) {
			const cJSON *jd = cJSON_GetObjectItemCaseSensitive(d, "date");
			int c = cJSON_IsString(jd) ? strcmp(jd->valuestring, dates[i]) : -1;
			if (c > 0)
				break;
			if (c == 0) {
				eff[i] = jnum(d, "effective_s") / 3600.0;
				ext[i] = jnum(d, "external_s") / 3600.0;
				rate[i] = jnum(d, "sharing_rate") * 100;
			}
			d = d->next;
		}
	}
	char lshare[200];
	ref_label(lshare, sizeof(lshare), &ref_figures[REF_SHARE], p);
	fputs("<h3>每日有效机时与对外服务机时<span class=\"en\">Daily effective vs external hours</span></h3>\n", out);
	const struct svg_series s_h[] = { { "eff", "有效机时 effective h", eff },
					  { "ext", "对外服务机时 external h", ext } };
	svg_columns(out, &(struct svg_chart){ .title = "每日有效机时与对外服务机时 Daily effective vs external hours",
					      .n = nd, .cat = cat, .tip = tip, .series = s_h, .n_series = 2,
					      .nodata_label = "无已封存日记录 no sealed record", .unit = "h" });
	fputs("<h3>每日共享率<span class=\"en\">Daily sharing rate</span></h3>\n", out);
	const struct svg_series s_r[] = { { "rate", "共享率 sharing rate", rate } };
	const struct svg_ref r_r[] = { { ref_figures[REF_SHARE].cls, lshare, ref_figures[REF_SHARE].value * 100 } };
	svg_columns(out, &(struct svg_chart){ .title = "每日共享率 Daily sharing rate", .n = nd, .cat = cat,
					      .tip = tip, .series = s_r, .n_series = 1, .refs = r_r, .n_refs = 1,
					      .nodata_label = "无已封存日记录 no sealed record", .unit = "%" });
	ret = 0;
out:
	free(eff);
	free(ext);
	free(rate);
	free(dates);
	free(cat);
	free(tip);
	return ret;
}

static int instrument(FILE *out, const struct config *cfg, const struct report_row *r, size_t idx,
		      const struct ev_list *l, const struct period *p, int64_t from)
{
	const struct instrument_cfg *ic = find_cfg(cfg, r->instrument);
	fprintf(out, "<section class=\"inst\" id=\"inst-%zu\">\n<h2>3.%zu ", idx + 1, idx + 1);
	esc(out, r->name);
	fputs("<span class=\"id\">", out);
	esc(out, r->instrument);
	fputs("</span></h2>\n<p class=\"sub\">", out);
	if (ic && ic->inner_id) {
		fputs("资产编号 inner id ", out);
		esc(out, ic->inner_id);
		fputs(" · ", out);
	}
	if (ic && ic->has_worth)
		fprintf(out, "原值 worth %.2f 万元 · ", ic->worth_wan);
	fprintf(out, "定额机时 rated %d h/年 year · 已封存 %" PRId64 " / %zu 天 days sealed</p>\n",
		ic ? ic->rated_hours : 0, r->days_sealed, p->days);
	if (r->days_sealed == 0)
		fputs("<div class=\"notice\">本期间此仪器没有已封存的日记录，数值为零。<span class=\"en\"> No sealed daily "
		      "record for this instrument in the period: the figures are zero.</span></div>\n", out);
	fputs("<div class=\"kpis\">\n", out);
	kpi(out, false, hours(r->effective_s), "有效机时", "effective");
	kpi(out, false, hours(r->external_s), "对外服务机时", "external");
	kpi(out, true, r->sharing_rate, "共享率", "sharing rate");
	kpi(out, true, r->utilisation, "定额利用率", "of rated hours");
	fputs("</div>\n", out);
	compare(out, r, ic, p);
	int ret = daily_charts(out, r, p, from);
	if (ret < 0)
		return ret;
	fputs("<h3>审计相关事件<span class=\"en\">Events for the auditor</span></h3>\n", out);
	event_counts(out, r, l);
	events_table(out, l, false);
	fputs("</section>\n", out);
	return 0;
}

static void footer(FILE *out)
{
	fputs("<footer>\n<p>口径 <span class=\"en\">Definitions</span></p>\n<ol>\n"
	      "<li>有效机时：仪器运行时间，取自运行计时器；无计时器时取在用信号，再无则取使用记录的并集。"
	      "<span class=\"en\">Effective hours: run time from the run counter, else the in-use signal, else the "
	      "union of sessions.</span></li>\n"
	      "<li>对外服务机时：外单位用户使用记录的并集；共享率 = 对外服务机时 ÷ 有效机时（期间按合计计算）。"
	      "<span class=\"en\">External hours: union of external sessions; sharing rate = external ÷ effective "
	      "(over a period, ratio of the sums).</span></li>\n"
	      "<li>定额机时按期间天数折算；利用率 = 有效机时 ÷ 定额机时。"
	      "<span class=\"en\">Rated hours are pro-rated to the period's days; utilisation = effective ÷ "
	      "rated.</span></li>\n"
	      "<li>所有数字取自已封存、以 SHA-256 链接的记录；用 <code>labshare-agent verify</code> 复核。"
	      "<span class=\"en\">Every figure comes from sealed records chained by SHA-256; re-check them with "
	      "<code>labshare-agent verify</code>.</span></li>\n</ol>\n"
	      "<p>labshare-agent " LABSHARE_VERSION "</p>\n</footer>\n</main>\n</body>\n</html>\n", out);
}

int report_html_write(struct buffer *b, const struct config *cfg, const struct report_opts *o,
		      const struct report_row *rows, size_t n, FILE *out)
{
	struct period p = { .end = time_next_day(o->to_day) };
	time_date(o->from_day, p.from);
	time_date(o->to_day, p.to);
	for (int64_t d = o->from_day; d < p.end; d = time_next_day(d)) {
		p.days++;
		p.year_fraction += 1.0 / days_in_year(d);
	}

	struct ev_list *lists = calloc(n + 1, sizeof(*lists));
	if (!lists)
		return -ENOMEM;
	int r = events_load(b, o, rows, n, lists);
	if (r < 0)
		goto out;
	struct chain_verify cv;
	memset(&cv, 0, sizeof(cv));
	int chain_r = b ? chain_verify(b, &cv) : 0;

	head(out, cfg, p.from, p.to);
	header(out, cfg, &p, b, chain_r, &cv);
	int64_t sealed = 0;
	for (size_t i = 0; i < n; i++)
		sealed += rows[i].days_sealed;
	if (sealed == 0)
		fputs("<div class=\"notice\"><b>本期间没有数据。</b>没有已封存的日记录，以下数值均为零。"
		      "<span class=\"en\"> <b>No data for this period:</b> there is no sealed daily record, every "
		      "figure below is zero.</span></div>\n", out);
	summary(out, rows, n);
	if ((r = overview(out, rows, n, &p)) < 0)
		goto out;
	fputs("<h2 class=\"insts\">3 各仪器<span class=\"en\">Each instrument</span></h2>\n", out);
	for (size_t i = 0; i < n; i++)
		if ((r = instrument(out, cfg, &rows[i], i, &lists[i], &p, o->from_day)) < 0)
			goto out;
	fputs("<h2>4 全局事件<span class=\"en\">Agent-wide events</span></h2>\n", out);
	events_table(out, &lists[n], true);
	footer(out);
out:
	events_free(lists, n + 1);
	return r;
}
