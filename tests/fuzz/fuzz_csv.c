/* fuzz_csv.c — libFuzzer target for CSV logs: any bytes framed into records (quotes may span
 * lines) and parsed against a header; the first byte picks UTF-8 or GBK. No crash, no leak,
 * every session well-formed, every record framed inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "encoding.h"
#include "logparse.h"
#include "plausible.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What every sealed session must be (SPEC §3): plausible, and nothing in it but UTF-8. */
static int session_bad(const struct obs_session *s)
{
	const char *str[] = { s->user, s->org, s->way, s->fee, s->project };
	for (size_t i = 0; i < sizeof(str) / sizeof(str[0]); i++)
		if (str[i] && !utf8_valid(str[i], strlen(str[i])))
			return 1;
	return s->end <= s->start || plausible_session(s->start, s->end, s->samples, clock_wall(), NULL) < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct log_cfg cfg[2];
	static struct lp_parser *p[2];
	static struct lp_arena *a;
	if (!a) {
		timeutil_set_zone("Asia/Shanghai");
		static const char *const names[] = { [SF_START] = "start", [SF_END] = "end",
			[SF_USER] = "用户", [SF_ORG] = "org", [SF_SAMPLES] = "n", [SF_EXTERNAL] = "ext" };
		for (int k = 0; k < 2; k++) {
			cfg[k].format = LOG_FMT_CSV;
			cfg[k].encoding = k ? LOG_ENC_GBK : LOG_ENC_UTF8;
			for (int f = 0; f < SF__COUNT; f++)
				cfg[k].fields.name[f] = f < (int)(sizeof(names) / sizeof(names[0])) ? (char *)names[f] : NULL;
			p[k] = lp_parser_new(&cfg[k]);
		}
		a = lp_arena_new();
	}
	if (size == 0)
		return 0;
	struct lp_parser *ps = p[data[0] & 1];
	struct lp_csv_cols cols;
	lp_csv_cols_reset(&cols);
	const char *buf = (const char *)data + 1;
	size_t n = size - 1, pos = 0;
	struct lp_frame fr;
	while (pos < n && lp_frame(true, buf + pos, n - pos, true, &fr)) {
		struct lp_result r;
		if (fr.consumed == 0 || fr.consumed > n - pos || fr.len > fr.consumed || fr.lines == 0)
			__builtin_trap();
		lp_parse(ps, &cols, buf + pos, fr.len, a, &r);
		if (r.kind == LP_SESSION && (session_bad(&r.s) || r.s.samples < -1 || r.s.external > 1))
			__builtin_trap();
		if (r.kind == LP_MALFORMED && (!r.why[0] || !lp_text(ps, buf + pos, fr.len, a)))
			__builtin_trap();
		pos += fr.consumed;
	}
	lp_arena_reset(a);
	return 0;
}
