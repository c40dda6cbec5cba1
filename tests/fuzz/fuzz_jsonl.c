/* fuzz_jsonl.c — libFuzzer target for JSON Lines logs: any bytes framed into lines and parsed
 * (nested keys, numbers as epoch times, strings); no crash, no leak, every session well-formed. */
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
	static struct log_cfg cfg;
	static struct lp_parser *p;
	static struct lp_arena *a;
	if (!p) {
		timeutil_set_zone("Asia/Shanghai");
		cfg.format = LOG_FMT_JSONL;
		cfg.fields.name[SF_START] = (char *)"s";
		cfg.fields.name[SF_DURATION] = (char *)"min";
		cfg.fields.name[SF_USER] = (char *)"who.name";
		cfg.fields.name[SF_SAMPLES] = (char *)"n";
		cfg.fields.name[SF_EXTERNAL] = (char *)"x";
		cfg.fields.name[SF_FEE] = (char *)"fee";
		p = lp_parser_new(&cfg);
		a = lp_arena_new();
	}
	const char *buf = (const char *)data;
	size_t pos = 0;
	struct lp_frame fr;
	while (pos < size && lp_frame(false, buf + pos, size - pos, true, &fr)) {
		struct lp_result r;
		if (fr.consumed == 0 || fr.consumed > size - pos || fr.len > fr.consumed)
			__builtin_trap();
		lp_parse(p, NULL, buf + pos, fr.len, a, &r);
		if (r.kind == LP_SESSION &&
		    (session_bad(&r.s) || r.s.end - r.s.start > LP_MAX_SESSION_S || r.s.samples < -1))
			__builtin_trap();
		if (r.kind == LP_MALFORMED && !lp_text(p, buf + pos, fr.len, a))
			__builtin_trap();
		pos += fr.consumed;
	}
	lp_arena_reset(a);
	return 0;
}
