/* report_html.c — the auditors' HTML report: one page that opens offline and prints to PDF,
 * built from the same rows as the CSV and JSON, plus the chain's state and the sealed events an
 * auditor asks about. Every string from a config or a log goes through svg_escape. A function of
 * what it is given (rows, events, the chain's state): it reads nothing itself. */
#include "report_html.h"
#include "report_html_priv.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "report.h"
#include "report_events.h"
#include "svg.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void esc(FILE *out, const char *s)
{
	svg_escape(out, s);
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

void html_th2(FILE *out, const char *zh, const char *en, bool num)
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

static void chain_box(FILE *out, const struct report_chain *c)
{
	const struct chain_verify *v = &c->v;
	int r = c->verdict;
	fputs("<section class=\"box chain\">\n<h2>数据链状态<span class=\"en\">Record chain</span></h2>\n", out);
	if (!c->buffer) {
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

static void header(FILE *out, const struct config *cfg, const struct period *p,
		   const struct report_chain *chain)
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
	chain_box(out, chain);
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
	html_th2(out, "仪器编号", "instrument", false);
	html_th2(out, "仪器名称", "name", false);
	for (size_t c = 0; c < n_cols; c++)
		html_th2(out, cols[c].zh, cols[c].en, true);
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
	html_th2(out, "序号", "seq", true);
	html_th2(out, "时间", "time", false);
	html_th2(out, "事件", "event", false);
	html_th2(out, "详情", "detail", false);
	html_th2(out, "说明", "note", false);
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
	report_compare(out, r, ic, p);
	int ret = report_daily_charts(out, r, p, from);
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

int report_html_write(const struct config *cfg, const struct report_opts *o, const struct report_row *rows,
		      size_t n, const struct report_events *ev, const struct report_chain *chain, FILE *out)
{
	struct period p = { .end = time_next_day(o->to_day) };
	time_date(o->from_day, p.from);
	time_date(o->to_day, p.to);
	for (int64_t d = o->from_day; d < p.end; d = time_next_day(d)) {
		p.days++;
		p.year_fraction += 1.0 / report_days_in_year(d);
	}

	if (ev->n != n + 1)
		return -EINVAL;
	const struct ev_list *lists = ev->lists;
	int r = 0;
	head(out, cfg, p.from, p.to);
	header(out, cfg, &p, chain);
	int64_t sealed = 0;
	for (size_t i = 0; i < n; i++)
		sealed += rows[i].days_sealed;
	if (sealed == 0)
		fputs("<div class=\"notice\"><b>本期间没有数据。</b>没有已封存的日记录，以下数值均为零。"
		      "<span class=\"en\"> <b>No data for this period:</b> there is no sealed daily record, every "
		      "figure below is zero.</span></div>\n", out);
	summary(out, rows, n);
	if ((r = report_overview(out, rows, n, &p)) < 0)
		goto out;
	fputs("<h2 class=\"insts\">3 各仪器<span class=\"en\">Each instrument</span></h2>\n", out);
	for (size_t i = 0; i < n; i++)
		if ((r = instrument(out, cfg, &rows[i], i, &lists[i], &p, o->from_day)) < 0)
			goto out;
	fputs("<h2>4 全局事件<span class=\"en\">Agent-wide events</span></h2>\n", out);
	events_table(out, &lists[n], true);
	footer(out);
out:
	return r;
}
