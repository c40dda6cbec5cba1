/* test_report_html.c — the auditors' HTML report built from the real pipeline (config, buffer,
 * core, metrics): its SVG charts, reference figures with sources, chain state, events, escaping,
 * font stack, no network fetches, and the same bytes for the same data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "report_html.h"
#include "svg.h"
#include "timeutil.h"

#define H 3600
#define DAY 86400
#define D0 1793548800LL /* 2026-11-02T00:00:00+08:00 */

#define EVIL_NAME "<script>alert(1)</script>"
#define EVIL_TEXT "\"><img src=x onerror=alert(1)>"

struct fx {
	char *dir;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct fake_clock clock;
};

static struct fx *fx_new(const char *nmr_name, const char *lab_code)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_report_html");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	/* Names go into JSON: escape the quotes the evil ones carry. */
	cJSON *jn = cJSON_CreateString(nmr_name), *jl = cJSON_CreateString(lab_code);
	char *qn = cJSON_PrintUnformatted(jn), *ql = cJSON_PrintUnformatted(jl);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"lab-1\", \"lab_code\": %s, \"timezone\": \"Asia/Shanghai\","
		"  \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		"  \"instruments\": ["
		"   { \"id\": \"NMR\", \"name\": %s, \"rated_hours\": 1460, \"inner_id\": \"2019-0042\","
		"     \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
		"   { \"id\": \"SEM\", \"rated_hours\": 800,"
		"     \"logs\": [ { \"path\": \"/y\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		ql, f->dir, f->dir, qn);
	cJSON_free(qn);
	cJSON_free(ql);
	cJSON_Delete(jn);
	cJSON_Delete(jl);
	struct config_errors errs = { 0 };
	if (config_parse("t.json", text, strlen(text), &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	fake_clock_install(&f->clock, D0 + 3 * DAY + 300);
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
	return f;
}

static int setup(void **state)
{
	*state = fx_new("600 MHz 核磁共振波谱仪", "SXKL-2023-017");
	return 0;
}

static int setup_evil(void **state)
{
	*state = fx_new(EVIL_NAME, EVIL_TEXT);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	core_free(f->core);
	buffer_close(f->buf);
	config_free(f->cfg);
	h_rmtree(f->dir);
	free(f->dir);
	free(f);
	clock_set(NULL);
	return 0;
}

static void session(struct fx *f, const char *inst, int64_t start, int64_t len, const char *org, bool manual,
		    bool closed_auto)
{
	struct obs o = { .type = OBS_SESSION, .instrument = inst };
	o.u.session = (struct obs_session){ .start = start, .end = start + len, .user = "u", .org = org,
					    .external = -1, .samples = 1, .manual = manual,
					    .closed_auto = closed_auto, .operator_name = "op" };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

static void event(struct fx *f, const char *inst, int64_t at, const char *type, const char *detail)
{
	struct obs o = { .type = OBS_EVENT, .instrument = inst };
	o.u.event = (struct obs_event){ .at = at, .type = type, .detail = detail };
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

/* NMR: day 1 3 h effective / 2 h external, day 2 3 h / 3 h, day 3 2 h / 1 h (8 h, 6 h, 75 %).
 * SEM: day 1 4 h external. Then the three days are sealed. */
static void populate(struct fx *f)
{
	session(f, "NMR", D0 + 8 * H, 2 * H, "X", false, false);
	session(f, "NMR", D0 + 11 * H, 1 * H, "山西大学", false, false);
	session(f, "NMR", D0 + DAY + 8 * H, 2 * H, "X", false, false);
	session(f, "NMR", D0 + DAY + 14 * H, 1 * H, "Y", false, false);
	session(f, "NMR", D0 + 2 * DAY + 9 * H, 1 * H, "Z", false, true);
	session(f, "NMR", D0 + 2 * DAY + 15 * H, 1 * H, "山西大学", true, false);
	session(f, "SEM", D0 + 9 * H, 4 * H, "W", false, false);
	assert_true(metrics_tick(core_metrics(f->core), D0 + 3 * DAY + 120) >= 4);
}

static char *render(struct fx *f, int64_t from, int64_t to, const char *inst)
{
	struct report_opts o = { .from_day = from, .to_day = to, .instrument = inst, .format = REPORT_HTML };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(report_write(f->buf, f->cfg, &o, out), 0);
	fclose(out);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The text from the start of the instrument section idx (1-based) to the next section. */
static char *section(const char *html, int idx)
{
	char open[64];
	snprintf(open, sizeof(open), "<section class=\"inst\" id=\"inst-%d\">", idx);
	const char *s = strstr(html, open);
	assert_non_null(s);
	const char *e = strstr(s, "</section>");
	assert_non_null(e);
	return strndup(s, (size_t)(e - s));
}

/* The n-th (0-based) <svg …>…</svg> of text. */
static char *nth_svg(const char *text, int n)
{
	const char *s = text;
	for (int i = 0; i <= n; i++) {
		s = strstr(i ? s + 1 : s, "<svg ");
		assert_non_null(s);
	}
	const char *e = strstr(s, "</svg>");
	assert_non_null(e);
	return strndup(s, (size_t)(e - s));
}

/* Values of attr in every <rect class="cls" …> of svg, in order; returns how many. */
static size_t rect_attrs(const char *svg, const char *cls, const char *attr, double *v, size_t max)
{
	char open[64], key[32];
	snprintf(open, sizeof(open), "<rect class=\"%s\" ", cls);
	snprintf(key, sizeof(key), " %s=\"", attr);
	size_t n = 0;
	for (const char *p = svg; (p = strstr(p, open)) != NULL; p += strlen(open)) {
		const char *end = strchr(p, '>'), *a = strstr(p, key);
		assert_true(a && a < end);
		if (n < max)
			v[n] = strtod(a + strlen(key), NULL);
		n++;
	}
	return n;
}

static void test_charts_bars_per_day_proportional(void **state)
{
	struct fx *f = *state;
	populate(f);
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	/* Two overview charts, then two per instrument. */
	assert_int_equal(count(html, "<svg "), 2 + 2 * 2);
	assert_int_equal(count(html, "viewBox=\"0 0 960 "), 6);
	assert_int_equal(count(html, "width=\"100%\""), 6);

	char *nmr = section(html, 1);
	assert_int_equal(count(nmr, "<svg "), 2);
	char *hours = nth_svg(nmr, 0);
	double eh[8], xh[8], ey[8];
	assert_int_equal(rect_attrs(hours, "eff", "height", eh, 8), 3);
	assert_int_equal(rect_attrs(hours, "ext", "height", xh, 8), 3);
	assert_int_equal(rect_attrs(hours, "eff", "y", ey, 8), 3);
	assert_int_equal(count(hours, "class=\"nodata\""), 0);
	/* Heights are value × a single scale: 3, 3, 2 effective; 2, 3, 1 external. */
	const double want_e[] = { 3, 3, 2 }, want_x[] = { 2, 3, 1 };
	double k = eh[0] / 3;
	assert_true(k > 1);
	for (int i = 0; i < 3; i++) {
		assert_true(fabs(eh[i] - want_e[i] * k) < 0.02);
		assert_true(fabs(xh[i] - want_x[i] * k) < 0.02);
		assert_true(fabs(ey[i] + eh[i] - (ey[0] + eh[0])) < 0.02); /* one baseline */
	}
	/* Each bar says what it is. */
	assert_non_null(strstr(hours, "<title>2026-11-03 · 有效机时 effective h: 3.00 h</title>"));
	assert_non_null(strstr(hours, "<title>2026-11-04 · 对外服务机时 external h: 1.00 h</title>"));
	assert_non_null(strstr(hours, ">11-02</text>"));

	/* Daily sharing rate: 66.67 %, 100 %, 50 %, with the 16 % line. */
	char *rate = nth_svg(nmr, 1);
	double rh[8];
	assert_int_equal(rect_attrs(rate, "rate", "height", rh, 8), 3);
	assert_true(fabs(rh[1] / rh[0] - 1 / 0.6667) < 0.002);
	assert_true(fabs(rh[2] / rh[1] - 0.5) < 0.002);
	assert_int_equal(count(rate, "<line class=\"ref rshare\""), 1);

	/* The overview: one bar per instrument, 75 % and 100 %. */
	char *share = nth_svg(html, 0);
	double sw[4];
	assert_int_equal(rect_attrs(share, "rate", "width", sw, 4), 2);
	assert_true(fabs(sw[0] / sw[1] - 0.75) < 0.002);
	assert_non_null(strstr(share, ">75.00 %</text>"));
	char *eff = nth_svg(html, 1);
	double ew[4];
	assert_int_equal(rect_attrs(eff, "eff", "width", ew, 4), 2);
	assert_true(fabs(ew[0] / ew[1] - 2.0) < 0.002); /* 8 h vs 4 h */
	assert_int_equal(count(eff, "<line class=\"mark\""), 2);
	assert_int_equal(count(eff, "<line class=\"ref "), 3);

	free(share);
	free(eff);
	free(rate);
	free(hours);
	free(nmr);
	free(html);
}

static void test_unsealed_days_marked(void **state)
{
	struct fx *f = *state;
	populate(f);
	/* Five days, of which two were never sealed: marked, not drawn as zero. */
	char *html = render(f, D0, D0 + 4 * DAY, "NMR");
	assert_int_equal(count(html, "<svg "), 2 + 2);
	char *nmr = section(html, 1);
	char *hours = nth_svg(nmr, 0);
	assert_int_equal(count(hours, "<rect class=\"eff\""), 3);
	assert_int_equal(count(hours, "<rect class=\"nodata\""), 2);
	assert_non_null(strstr(nmr, "已封存 3 / 5 天 days sealed"));
	free(hours);
	free(nmr);
	free(html);
}

static void test_tables_and_numbers(void **state)
{
	struct fx *f = *state;
	populate(f);
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	/* Chinese headings beside the English ones, hours with 2 decimals, rates in percent. */
	assert_non_null(strstr(html, "有效机时<span class=\"en\">effective h</span>"));
	assert_non_null(strstr(html, "对外服务机时<span class=\"en\">external h</span>"));
	assert_non_null(strstr(html, "共享率<span class=\"en\">sharing rate</span>"));
	assert_non_null(strstr(html, "<td class=\"id\">NMR</td><td>600 MHz 核磁共振波谱仪</td><td class=\"n\">8.00</td>"
				     "<td class=\"n\">8.00</td><td class=\"n\">6.00</td><td class=\"n\">2.00</td>"
				     "<td class=\"n\">75.00 %</td><td class=\"n\">0.00</td><td class=\"n\">0.00</td>"
				     "<td class=\"n\">0.00</td><td class=\"n\">12.00</td><td class=\"n\">66.67 %</td></tr>"));
	/* Sessions, external sessions, samples, distinct external users, manual, auto-closed. */
	assert_non_null(strstr(html, "<td class=\"id\">NMR</td><td>600 MHz 核磁共振波谱仪</td><td class=\"n\">6</td>"
				     "<td class=\"n\">4</td><td class=\"n\">6</td><td class=\"n\">3</td>"
				     "<td class=\"n\">1</td><td class=\"n\">1</td></tr>"));
	/* Every CSV column has its heading. */
	static const char *const heads[] = { "effective h", "service h", "external h", "internal h", "sharing rate",
					     "sessions", "external sessions", "samples", "external users",
					     "unattributed h", "overclaimed h", "offline h", "manual sessions",
					     "auto-closed sessions", "rated h", "utilisation" };
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		char *h = h_strdupf("<span class=\"en\">%s</span></th>", heads[i]);
		if (!strstr(html, h))
			fail_msg("no heading \"%s\"", heads[i]);
		free(h);
	}
	/* Totals: 12 h effective, 10 h external → 83.33 %. */
	assert_non_null(strstr(html, "<tr class=\"total\"><td colspan=\"2\">合计 all instruments</td>"
				     "<td class=\"n\">12.00</td>"));
	assert_non_null(strstr(html, "<td class=\"n\">83.33 %</td>"));
	assert_non_null(strstr(html, "2026-11-02 – 2026-11-04（3 天 days）"));
	assert_null(strstr(html, "No data for this period"));
	free(html);
}

static void test_reference_figures_with_sources(void **state)
{
	struct fx *f = *state;
	populate(f);
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	/* Each figure, its pro-rated value over 3 days of 2026, and its source. */
	static const char *const want[] = {
		"<td class=\"n\">1440.00 h</td><td class=\"n\">11.84 h</td><td>2019 年度大型科研仪器开放共享评价考核",
		"<td class=\"n\">1599.00 h</td><td class=\"n\">13.14 h</td><td>2025 年全国平均",
		"<td class=\"n\">1200.00 h</td><td class=\"n\">9.86 h</td><td>新购大型仪器论证",
		"<td class=\"n\">16.00 %</td><td class=\"n\">16.00 %</td><td>2019 年度",
		"2019 national evaluation of large-instrument open sharing, national average",
		"2025 national average",
		"new-purchase rule: existing instruments of the kind count as fully used at 1200 h a year",
		"this agent's configuration, instruments[].rated_hours",
		"“机时饱满”标准",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(html, want[i]))
			fail_msg("missing \"%s\"", want[i]);
	/* Per instrument: NMR's 8 h against each, and its rated 12 h. */
	char *nmr = section(html, 1);
	assert_non_null(strstr(nmr, "<td class=\"n\">1440.00 h</td><td class=\"n\">11.84 h</td>"
				    "<td class=\"n\">8.00 h</td><td class=\"n\">67.59 %</td><td class=\"below\">"));
	assert_non_null(strstr(nmr, "<td class=\"n\">1460.00 h</td><td class=\"n\">12.00 h</td>"
				    "<td class=\"n\">8.00 h</td><td class=\"n\">66.67 %</td>"));
	assert_non_null(strstr(nmr, "<td class=\"n\">16.00 %</td><td class=\"n\">16.00 %</td>"
				    "<td class=\"n\">75.00 %</td><td class=\"n\">—</td><td class=\"meets\">"));
	assert_non_null(strstr(nmr, "资产编号 inner id 2019-0042"));
	/* The overview chart's reference lines name their figures. */
	assert_non_null(strstr(html, "全国平均有效机时 1440 h/年 → 11.84 h"));
	assert_non_null(strstr(html, "全国平均共享率 16 % (2019 national evaluation"));
	free(nmr);
	free(html);
}

static void test_chain_state_intact_then_broken(void **state)
{
	struct fx *f = *state;
	populate(f);
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	struct chain_head h;
	buffer_head(f->buf, &h);
	char *want = h_strdupf("<dt>最后序号 last seq</dt><dd>%lld</dd>", (long long)h.seq);
	assert_non_null(strstr(html, want));
	assert_non_null(strstr(html, h.hash));
	assert_non_null(strstr(html, "<span class=\"badge ok\">完整 intact</span>"));
	assert_null(strstr(html, "first bad seq"));
	free(want);
	free(html);

	/* Alter a sealed session behind the agent's back, as a tamperer would. */
	char *db_path = h_strdupf("%s/%s", f->cfg->agent.state_dir, BUFFER_FILE);
	core_free(f->core);
	f->core = NULL;
	buffer_close(f->buf);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT MIN(seq) FROM records WHERE kind = 'session'", -1, &s, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	long long bad = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	char *sql = h_strdupf("DROP TRIGGER records_sealed;"
			      "UPDATE records SET line = replace(line, '\"samples\":1', '\"samples\":9') WHERE seq = %lld;",
			      bad);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(sql);
	free(db_path);
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, BUFFER_READONLY, &f->buf, NULL), 0);

	html = render(f, D0, D0 + 2 * DAY, NULL);
	assert_non_null(strstr(html, "<span class=\"badge bad\">已损坏 BROKEN</span>"));
	want = h_strdupf("<dt>首个异常序号 first bad seq</dt><dd><span class=\"below\">%lld</span>", bad);
	assert_non_null(strstr(html, want));
	free(want);
	free(html);
}

static void test_events_listed_paired_capped(void **state)
{
	struct fx *f = *state;
	populate(f);
	/* Offline before the period, back inside it: the pair still gives the duration. */
	event(f, "NMR", D0 - 2 * H, "device_offline", "timeout");
	event(f, "NMR", D0 + 30 * 60, "device_online", NULL);
	event(f, "NMR", D0 + 10 * H, "device_offline", "connection refused");
	event(f, "NMR", D0 + 12 * H + 30 * 60, "device_online", NULL);
	event(f, "NMR", D0 + DAY + H, "counter_reset", "run_counter: 812 -> 3");
	event(f, "NMR", D0 + DAY + 2 * H, "counter_clamped", "run_counter: delta 40 h > 2 h wall time");
	event(f, "NMR", D0 + DAY + 3 * H, "counter_wrap", "samples_counter: wrapped");
	event(f, "NMR", D0 + 2 * DAY + H, "gap", "agent down 3 h");
	event(f, "NMR", D0 + 2 * DAY + 2 * H, "log_malformed", "not for auditors");
	event(f, "NMR", D0 + 3 * DAY + H, "gap", "after the period");
	event(f, NULL, D0 + 5 * H, "config_changed", "instruments[1] added");
	for (int i = 0; i < REPORT_HTML_EVENTS_MAX + 5; i++)
		event(f, "SEM", D0 + 2 * DAY + i, "gap", "spread evenly");

	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	char *nmr = section(html, 1);
	assert_int_equal(count(nmr, "<tr><td class=\"n\">"), 7);
	assert_non_null(strstr(nmr, "2026-11-02T12:30:00+08:00</td><td>设备恢复在线<span class=\"en\"> device back "
				    "online</span></td><td></td><td>离线 offline 2 h 30 min</td>"));
	assert_non_null(strstr(nmr, "<td>离线 offline 2 h 30 min</td>"));
	assert_non_null(strstr(nmr, "离线 offline 2 h 30 min")); /* and the one from before: */
	assert_non_null(strstr(nmr, "2026-11-02T00:30:00+08:00"));
	assert_non_null(strstr(nmr, "<td>run_counter: 812 -&gt; 3</td>"));
	assert_non_null(strstr(nmr, "计数增量被截断"));
	assert_non_null(strstr(nmr, "计数器回绕"));
	assert_non_null(strstr(nmr, "agent down 3 h"));
	assert_null(strstr(nmr, "not for auditors"));
	assert_null(strstr(nmr, "after the period"));
	assert_non_null(strstr(nmr, "设备离线 <span class=\"en\">device offline</span>: <b>1</b>"));
	assert_non_null(strstr(nmr, "设备恢复在线 <span class=\"en\">device back online</span>: <b>2</b>"));
	assert_non_null(strstr(nmr, "手工补录 <span class=\"en\">manual sessions</span>: <b>1</b>"));
	assert_non_null(strstr(nmr, "自动结束 <span class=\"en\">auto-closed sessions</span>: <b>1</b>"));

	char *sem = section(html, 2);
	assert_int_equal(count(sem, "<tr><td class=\"n\">"), REPORT_HTML_EVENTS_MAX);
	assert_non_null(strstr(sem, "5 more events in this period are not listed (at most 200 per instrument)"));
	assert_non_null(strstr(sem, "数据间断 <span class=\"en\">gap</span>: <b>205</b>"));
	/* Agent-wide. */
	const char *agent = strstr(html, "Agent-wide events");
	assert_non_null(agent);
	assert_non_null(strstr(agent, "instruments[1] added"));
	free(sem);
	free(nmr);
	free(html);
}

static void test_escaping_no_markup(void **state)
{
	struct fx *f = *state;
	populate(f);
	event(f, "NMR", D0 + 10 * H, "device_offline", EVIL_TEXT);
	event(f, "NMR", D0 + 11 * H, "gap", "<script>alert('x')</script>\x01");
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	assert_null(strcasestr(html, "<script"));
	assert_null(strcasestr(html, "<img"));
	/* The name appears escaped in the table, the heading and the charts' tooltips. */
	const char *name = "&lt;script&gt;alert(1)&lt;/script&gt;";
	assert_true(count(html, name) >= 3);
	assert_non_null(strstr(html, "<td class=\"id\">NMR</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"));
	/* The lab code in the title and the meta list; the detail in the events table. */
	const char *text = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;";
	assert_non_null(strstr(html, "<title>大型仪器开放共享报告 &quot;&gt;&lt;img src=x onerror=alert(1)&gt; "));
	assert_true(count(html, text) >= 3);
	assert_non_null(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\xEF\xBF\xBD</td>"));
	free(html);

	/* The escaper itself, in text and attribute positions alike. */
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	svg_escape(out, "a&b<c>d\"e'f\tg\x7fh 中");
	svg_escape(out, NULL);
	fclose(out);
	assert_string_equal(buf, "a&amp;b&lt;c&gt;d&quot;e&#39;f\tg\xEF\xBF\xBDh 中");
	free(buf);
}

static void test_self_contained(void **state)
{
	struct fx *f = *state;
	populate(f);
	char *html = render(f, D0, D0 + 2 * DAY, NULL);
	/* No fetch of any kind: no URL, no src/href, no external style or script, no @import. */
	assert_null(strstr(html, "http://"));
	assert_null(strstr(html, "https://"));
	assert_null(strcasestr(html, "src="));
	assert_null(strcasestr(html, "href="));
	assert_null(strcasestr(html, "<link"));
	assert_null(strcasestr(html, "<script"));
	assert_null(strcasestr(html, "@import"));
	assert_null(strcasestr(html, "url("));
	assert_non_null(strstr(html, "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
				     "style-src 'unsafe-inline'\">"));
	/* CJK fonts first, then the generic family. */
	const char *stack = strstr(html, "font-family:\"Noto Sans CJK SC\"");
	assert_non_null(stack);
	const char *wqy = strstr(stack, "\"WenQuanYi Micro Hei\""), *yahei = strstr(stack, "\"Microsoft YaHei\"");
	const char *pingfang = strstr(stack, "\"PingFang SC\""), *sans = strstr(stack, "sans-serif");
	assert_true(wqy && yahei && pingfang && sans);
	assert_true(wqy < yahei && yahei < pingfang && pingfang < sans && sans < strchr(stack, '}'));
	/* Printable: print styles with page breaks between instruments. */
	assert_non_null(strstr(html, "@media print{body{background:none"));
	assert_non_null(strstr(html, "h2.insts,.inst+.inst{break-before:page}"));
	assert_non_null(strstr(html, "<meta charset=\"utf-8\">"));
	assert_non_null(strstr(html, "</html>\n"));
	free(html);
}

static void test_same_data_same_bytes(void **state)
{
	struct fx *f = *state;
	populate(f);
	event(f, "NMR", D0 + 10 * H, "device_offline", "x");
	char *a = render(f, D0, D0 + 2 * DAY, NULL);
	char *b = render(f, D0, D0 + 2 * DAY, NULL);
	assert_string_equal(a, b);
	/* Only the generated-at time depends on the clock. */
	char now[RFC3339_LEN];
	time_rfc3339(clock_wall(), now);
	char *want = h_strdupf("<dt>生成时间 generated</dt><dd>%s</dd>", now);
	assert_non_null(strstr(a, want));
	fake_clock_advance(&f->clock, 3600LL * 1000000);
	char *c = render(f, D0, D0 + 2 * DAY, NULL);
	assert_string_not_equal(a, c);
	char *p = strstr(c, "<dt>生成时间 generated</dt>");
	memcpy(p, want, strlen(want)); /* same length: put the old time back */
	assert_string_equal(a, c);
	free(want);
	free(a);
	free(b);
	free(c);
}

static void test_empty_period_and_no_buffer(void **state)
{
	struct fx *f = *state;
	/* A buffer with nothing sealed in the period. */
	char *html = render(f, D0 + 10 * DAY, D0 + 10 * DAY, NULL);
	assert_non_null(strstr(html, "No data for this period"));
	assert_int_equal(count(html, "<svg "), 6);
	assert_non_null(strstr(html, "<td class=\"n\">0.00</td>"));
	assert_non_null(strstr(html, "<td class=\"n\">0.00 %</td>"));
	assert_int_equal(count(html, "<rect class=\"nodata\""), 4);
	assert_non_null(strstr(html, "</html>\n"));
	free(html);

	/* No buffer at all. */
	struct report_opts o = { .from_day = D0, .to_day = D0 + 6 * DAY, .format = REPORT_HTML };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(report_write(NULL, f->cfg, &o, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "No data for this period"));
	assert_non_null(strstr(buf, "<span class=\"badge none\">无缓冲区 no buffer</span>"));
	assert_int_equal(count(buf, "<svg "), 6);
	assert_int_equal(count(buf, "<rect class=\"nodata\""), 2 * 2 * 7);
	assert_non_null(strstr(buf, "No offline period, counter or gap event in this period."));
	assert_non_null(strstr(buf, "</html>\n"));
	free(buf);
}

static void test_svg_axis(void **state)
{
	(void)state;
	static const struct {
		double v, max, step;
	} cases[] = {
		{ 0, 1, 0.25 }, { -3, 1, 0.25 }, { 3, 3, 1 }, { 16, 20, 5 }, { 75, 80, 20 },
		{ 100, 100, 25 }, { 11.84, 15, 5 }, { 0.3, 0.3, 0.1 }, { 1599, 2000, 500 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double max, step;
		svg_axis(cases[i].v, &max, &step);
		if (fabs(max - cases[i].max) > 1e-9 || fabs(step - cases[i].step) > 1e-9)
			fail_msg("svg_axis(%g) = %g step %g, want %g step %g", cases[i].v, max, step,
				 cases[i].max, cases[i].step);
	}
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_charts_bars_per_day_proportional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsealed_days_marked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_and_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reference_figures_with_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_state_intact_then_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_listed_paired_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping_no_markup, setup_evil, teardown),
		cmocka_unit_test_setup_teardown(test_self_contained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_data_same_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_period_and_no_buffer, setup, teardown),
		cmocka_unit_test(test_svg_axis),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
