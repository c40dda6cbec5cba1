/* svg.h — a tiny writer for the HTML report's inline SVG charts: column and bar charts drawn in
 * the chart's own units (a viewBox, so the page scales them), every piece of text escaped. */
#ifndef LABSHARE_SVG_H
#define LABSHARE_SVG_H

#include <stddef.h>
#include <stdio.h>

/* Text and attribute escaping for HTML and SVG: & < > " ' become entities, C0 controls other
 * than tab and newline become U+FFFD. NULL writes nothing. */
void svg_escape(FILE *out, const char *s);

/* A "nice" axis for values up to v: a step of 1, 2, 2.5 or 5 × 10^k with at most about five
 * ticks, and the first multiple of it at or above v. v <= 0 (or not finite) gives 0..1. */
void svg_axis(double v, double *max, double *step);

/* One series of values, one per category. NAN: no value (the category has no record). */
struct svg_series {
	const char *cls;        /* CSS class of its bars, e.g. "eff" (a literal, not escaped) */
	const char *label;      /* legend and tooltip text (escaped) */
	const double *v;
};

/* A reference value drawn across the plot (dashed), named in the legend. */
struct svg_ref {
	const char *cls;        /* CSS class of the line (a literal) */
	const char *label;      /* legend text (escaped) */
	double v;
};

struct svg_chart {
	const char *title;              /* accessible name of the chart (escaped) */
	size_t n;                       /* categories: days, or instruments */
	const char *const *cat;         /* axis label of each category (escaped) */
	const char *const *tip;         /* full name of each category, for tooltips (escaped) */
	const struct svg_series *series;
	size_t n_series;
	const struct svg_ref *refs;
	size_t n_refs;
	const double *marks;            /* svg_bars only: a tick per category, NAN none (NULL: none) */
	const char *mark_label;         /* legend text of the ticks (escaped) */
	const char *nodata_label;       /* legend text for categories without any value (escaped) */
	const char *unit;               /* "h" or "%", after values on the axis and in tooltips */
};

/* Vertical columns, one group per category (days on the x axis). A category whose values are
 * all NAN gets a thin grey "nodata" mark on the baseline instead of bars. */
void svg_columns(FILE *out, const struct svg_chart *c);
/* Horizontal bars, one row per category (instruments), values printed at the bar ends. */
void svg_bars(FILE *out, const struct svg_chart *c);

#endif
