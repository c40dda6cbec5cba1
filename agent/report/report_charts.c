/* report_charts.c — the HTML report's figures against the references of SPEC §4: the
 * reference values with their sources, the overview bars, each instrument's comparison table
 * and its daily columns (inline SVG, svg.c). */
#include "report_html_priv.h"
#include "config.h"
#include "report.h"
#include "svg.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int report_overview(FILE *out, const struct report_row *rows, size_t n, const struct period *p)
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
	html_th2(out, "参考值", "figure", false);
	html_th2(out, "年值", "per year", true);
	html_th2(out, "本期折算", "over this period", true);
	html_th2(out, "来源", "source", false);
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

void report_compare(FILE *out, const struct report_row *r, const struct instrument_cfg *ic,
		    const struct period *p)
{
	fputs("<table class=\"cmp\">\n<thead><tr>", out);
	html_th2(out, "参考值", "reference", false);
	html_th2(out, "来源", "source", false);
	html_th2(out, "年值", "per year", true);
	html_th2(out, "本期折算", "this period", true);
	html_th2(out, "本仪器", "this instrument", true);
	html_th2(out, "比值", "ratio", true);
	html_th2(out, "对照", "vs", false);
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

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int report_daily_charts(FILE *out, const struct report_row *r, const struct period *p, int64_t from)
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

