/* svg.c — the report's charts as inline SVG. Coordinates are viewBox units printed with fixed
 * decimals, so the same data gives the same bytes; the page decides the width. No text from a
 * config or a log is written without svg_escape. */
#include "svg.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define VB_W 960.0      /* viewBox width of every chart */
#define LABEL_MAX 24    /* bytes of a category label on the axis; the tooltip has the full name */

/* Writes s escaped, at most max bytes of it (cut at a UTF-8 boundary, "…" added). */
static void escape_n(FILE *out, const char *s, size_t max)
{
	if (!s)
		return;
	size_t len = strlen(s);
	if (len <= max) {
		svg_escape(out, s);
		return;
	}
	char cut[LABEL_MAX + 1];
	if (max > LABEL_MAX)
		max = LABEL_MAX;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	memcpy(cut, s, max);
	cut[max] = '\0';
	svg_escape(out, cut);
	fputs("\xE2\x80\xA6", out);
}

void svg_escape(FILE *out, const char *s)
{
	if (!s)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default:
			/* Controls are not allowed in HTML text; show that something was there. */
			if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7F)
				fputs("\xEF\xBF\xBD", out);
			else
				fputc(*p, out);
		}
	}
}

void svg_axis(double v, double *max, double *step)
{
	if (!(v > 0) || !isfinite(v)) {
		*step = 0.25;
		*max = 1;
		return;
	}
	double raw = v / 4, mag = pow(10, floor(log10(raw))), f = raw / mag;
	double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
	*step = nice * mag;
	/* The tolerance keeps 3.0000000001 from growing the axis by a whole step. */
	*max = ceil(v / *step - 1e-9) * *step;
}

/* Decimals that show every tick of a step exactly (0.25 → 2, 2.5 → 1, 50 → 0). */
static int step_decimals(double step)
{
	int d = 0;
	while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6)
		d++;
	return d;
}

/* Rough width of text at 11 px: CJK glyphs are square, Latin about 0.56 em. Only the legend's
 * layout uses it, so an estimate is enough. */
static double text_width(const char *s)
{
	double w = 0;
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
		if (*p < 0x80)
			w += 6.2;
		else if (*p >= 0xE0)
			w += 11.5;  /* lead byte of a 3- or 4-byte sequence: CJK and the like */
		else if (*p >= 0xC0)
			w += 7;
	}
	return w;
}

enum swatch { SW_BOX, SW_LINE, SW_TICK };

struct legend_item {
	enum swatch kind;
	const char *cls;
	const char *label;
};

/* Lays the legend out in rows across the top; returns its height. out NULL only measures. */
static double legend(FILE *out, const struct legend_item *it, size_t n, double x0, double right)
{
	const double row_h = 17;
	double x = x0, y = 12;   /* baseline of the current row */
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		double w = 20 + text_width(it[i].label) + 18;
		if (x > x0 && x + w > right) {
			x = x0;
			y += row_h;
		}
		if (out) {
			switch (it[i].kind) {
			case SW_BOX:
				fprintf(out, "<rect class=\"key %s\" x=\"%.2f\" y=\"%.2f\" width=\"13\" height=\"10\"/>",
					it[i].cls, x, y - 9);
				break;
			case SW_LINE:
				fprintf(out, "<line class=\"key %s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>",
					it[i].cls, x, y - 4, x + 15, y - 4);
				break;
			case SW_TICK:
				fprintf(out, "<line class=\"key %s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>",
					it[i].cls, x + 7, y - 11, x + 7, y + 2);
				break;
			}
			fprintf(out, "<text class=\"lg\" x=\"%.2f\" y=\"%.2f\">", x + 20, y);
			svg_escape(out, it[i].label);
			fputs("</text>\n", out);
		}
		x += w;
	}
	return y + 8;
}

static void open_svg(FILE *out, const char *kind, double h, const char *title)
{
	fprintf(out, "<svg class=\"chart %s\" viewBox=\"0 0 %.0f %.2f\""
		" width=\"100%%\" role=\"img\" aria-label=\"", kind, VB_W, h);
	svg_escape(out, title);
	fputs("\"><title>", out);
	svg_escape(out, title);
	fputs("</title>\n", out);
}

/* "<title>tip · label: 3.25 h</title>" inside a shape. */
static void tooltip(FILE *out, const char *tip, const char *label, double v, const char *unit)
{
	fputs("<title>", out);
	svg_escape(out, tip);
	if (tip && label)
		fputs(" \xC2\xB7 ", out);
	svg_escape(out, label);
	if (!isnan(v)) {
		fprintf(out, ": %.2f ", v);
		svg_escape(out, unit);
	}
	fputs("</title>", out);
}

static double chart_max(const struct svg_chart *c)
{
	double m = 0;
	for (size_t s = 0; s < c->n_series; s++)
		for (size_t i = 0; i < c->n; i++)
			if (!isnan(c->series[s].v[i]) && c->series[s].v[i] > m)
				m = c->series[s].v[i];
	for (size_t r = 0; r < c->n_refs; r++)
		if (c->refs[r].v > m)
			m = c->refs[r].v;
	for (size_t i = 0; c->marks && i < c->n; i++)
		if (!isnan(c->marks[i]) && c->marks[i] > m)
			m = c->marks[i];
	return m;
}

static bool no_value(const struct svg_chart *c, size_t i)
{
	for (size_t s = 0; s < c->n_series; s++)
		if (!isnan(c->series[s].v[i]))
			return false;
	return true;
}

/* Series boxes, reference lines, ticks and "no record": at most this many entries. */
#define LEGEND_MAX 16

static size_t legend_items(const struct svg_chart *c, struct legend_item *it, bool nodata)
{
	size_t n = 0;
	for (size_t s = 0; s < c->n_series && n < LEGEND_MAX; s++)
		it[n++] = (struct legend_item){ SW_BOX, c->series[s].cls, c->series[s].label };
	if (c->marks && c->mark_label && n < LEGEND_MAX)
		it[n++] = (struct legend_item){ SW_TICK, "mark", c->mark_label };
	for (size_t r = 0; r < c->n_refs && n < LEGEND_MAX; r++)
		it[n++] = (struct legend_item){ SW_LINE, c->refs[r].cls, c->refs[r].label };
	if (nodata && c->nodata_label && n < LEGEND_MAX)
		it[n++] = (struct legend_item){ SW_BOX, "nodata", c->nodata_label };
	return n;
}

static double clamp0(double v)
{
	return isnan(v) || v < 0 ? 0 : v;
}

void svg_columns(FILE *out, const struct svg_chart *c)
{
	const double ml = 58, mr = 14, ph = 200, mb = 36;
	bool nodata = false;
	for (size_t i = 0; i < c->n; i++)
		nodata = nodata || no_value(c, i);
	struct legend_item items[LEGEND_MAX];
	size_t n_items = legend_items(c, items, nodata);
	const double mt = legend(NULL, items, n_items, ml, VB_W - mr) + 10;
	const double pw = VB_W - ml - mr, base = mt + ph;
	double max, step;
	svg_axis(chart_max(c), &max, &step);
	int dec = step_decimals(step);

	open_svg(out, "columns", mt + ph + mb, c->title);
	legend(out, items, n_items, ml, VB_W - mr);
	for (int k = 0; k * step <= max + step * 1e-6; k++) {
		double y = base - k * step / max * ph;
		if (k > 0)
			fprintf(out, "<line class=\"grid\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>",
				ml, y, VB_W - mr, y);
		fprintf(out, "<text class=\"yl\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.*f ", ml - 6, y + 4,
			dec, k * step);
		svg_escape(out, c->unit);
		fputs("</text>\n", out);
	}

	const double slot = c->n ? pw / (double)c->n : pw;
	/* A wide slot (few days) would make slabs of bars: cap the group's width. */
	const double gw = fmin(slot * 0.78, 34.0 * (double)(c->n_series ? c->n_series : 1));
	const double bw = c->n_series ? gw / (double)c->n_series : gw;
	for (size_t i = 0; i < c->n; i++) {
		double x0 = ml + (double)i * slot + (slot - gw) / 2;
		if (no_value(c, i)) {
			fprintf(out, "<rect class=\"nodata\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"4\">",
				x0, base - 4, gw);
			tooltip(out, c->tip ? c->tip[i] : NULL, c->nodata_label, NAN, NULL);
			fputs("</rect>\n", out);
			continue;
		}
		for (size_t s = 0; s < c->n_series; s++) {
			double v = c->series[s].v[i];
			if (isnan(v))
				continue;
			double h = clamp0(v) / max * ph;
			fprintf(out, "<rect class=\"%s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\">",
				c->series[s].cls, x0 + (double)s * bw, base - h, bw, h);
			tooltip(out, c->tip ? c->tip[i] : NULL, c->series[s].label, v, c->unit);
			fputs("</rect>\n", out);
		}
	}
	for (size_t r = 0; r < c->n_refs; r++) {
		double y = base - clamp0(c->refs[r].v) / max * ph;
		fprintf(out, "<line class=\"ref %s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\">",
			c->refs[r].cls, ml, y, VB_W - mr, y);
		tooltip(out, NULL, c->refs[r].label, c->refs[r].v, c->unit);
		fputs("</line>\n", out);
	}
	fprintf(out, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", ml, base,
		VB_W - mr, base);
	fprintf(out, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", ml, mt - 4,
		ml, base);
	/* About sixteen date labels at most, so they never overlap. */
	size_t every = c->n > 16 ? (c->n + 15) / 16 : 1;
	for (size_t i = 0; c->cat && i < c->n; i += every) {
		fprintf(out, "<text class=\"xl\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">",
			ml + ((double)i + 0.5) * slot, base + 17);
		escape_n(out, c->cat[i], LABEL_MAX);
		fputs("</text>\n", out);
	}
	fputs("</svg>\n", out);
}

void svg_bars(FILE *out, const struct svg_chart *c)
{
	const double ml = 176, mr = 96, mb = 30;
	const double bh = 13, row = bh * (double)(c->n_series ? c->n_series : 1) + 14;
	struct legend_item items[LEGEND_MAX];
	size_t n_items = legend_items(c, items, false);
	const double mt = legend(NULL, items, n_items, 10, VB_W - 10) + 12;
	const double pw = VB_W - ml - mr, ph = row * (double)(c->n ? c->n : 1), base = mt + ph;
	double max, step;
	svg_axis(chart_max(c), &max, &step);
	int dec = step_decimals(step);

	open_svg(out, "bars", mt + ph + mb, c->title);
	legend(out, items, n_items, 10, VB_W - 10);
	for (int k = 0; k * step <= max + step * 1e-6; k++) {
		double x = ml + k * step / max * pw;
		fprintf(out, "<line class=\"%s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>",
			k ? "grid" : "axis", x, mt - 4, x, base);
		fprintf(out, "<text class=\"yl\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.*f ", x, base + 16,
			dec, k * step);
		svg_escape(out, c->unit);
		fputs("</text>\n", out);
	}
	for (size_t i = 0; i < c->n; i++) {
		double y0 = mt + (double)i * row;
		fprintf(out, "<text class=\"cl\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">", ml - 8, y0 + row / 2 + 4);
		escape_n(out, c->cat ? c->cat[i] : "", LABEL_MAX);
		if (c->tip) {
			fputs("<title>", out);
			svg_escape(out, c->tip[i]);
			fputs("</title>", out);
		}
		fputs("</text>\n", out);
		/* Value labels start past the tick, where they can't be crossed by it. */
		double mark_x = c->marks && !isnan(c->marks[i]) ? clamp0(c->marks[i]) / max * pw : 0;
		for (size_t s = 0; s < c->n_series; s++) {
			double v = c->series[s].v[i];
			if (isnan(v))
				continue;
			double w = clamp0(v) / max * pw, y = y0 + 7 + (double)s * bh;
			double lx = ml + (w > mark_x - 1 || w < mark_x - 60 ? w : mark_x) + 5;
			fprintf(out, "<rect class=\"%s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\">",
				c->series[s].cls, ml, y, w, bh);
			tooltip(out, c->tip ? c->tip[i] : NULL, c->series[s].label, v, c->unit);
			fprintf(out, "</rect><text class=\"vl\" x=\"%.2f\" y=\"%.2f\">%.2f ", lx, y + bh / 2 + 4, v);
			svg_escape(out, c->unit);
			fputs("</text>\n", out);
		}
		if (c->marks && !isnan(c->marks[i])) {
			double x = ml + clamp0(c->marks[i]) / max * pw;
			fprintf(out, "<line class=\"mark\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\">", x, y0 + 2,
				x, y0 + row - 2);
			tooltip(out, c->tip ? c->tip[i] : NULL, c->mark_label, c->marks[i], c->unit);
			fputs("</line>\n", out);
		}
	}
	for (size_t r = 0; r < c->n_refs; r++) {
		double x = ml + clamp0(c->refs[r].v) / max * pw;
		fprintf(out, "<line class=\"ref %s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\">",
			c->refs[r].cls, x, mt - 4, x, base);
		tooltip(out, NULL, c->refs[r].label, c->refs[r].v, c->unit);
		fputs("</line>\n", out);
	}
	fputs("</svg>\n", out);
}
