/* fuzz_events.c — libFuzzer target for login/logout logs: any lines through the start and end
 * patterns into the pairing, whose open logins go through the cursor's JSON now and then, as
 * across a restart. No crash, no leak, every session closed after it opened. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "logparse.h"
#include "plausible.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *arg, const struct obs_session *s)
{
	(void)arg;
	if (s->end <= s->start || s->end - s->start > 12 * 3600 || s->start < PLAUSIBLE_EPOCH ||
	    (s->user && !utf8_valid(s->user, strlen(s->user))) || (s->org && !utf8_valid(s->org, strlen(s->org))))
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct log_cfg cfg;
	static struct lp_parser *p;
	static struct lp_arena *a;
	if (!p) {
		timeutil_set_zone("Asia/Shanghai");
		cfg.format = LOG_FMT_EVENTS;
		regcomp(&cfg.start_re, "^([0-9: -]+) (IN|ON) ?([^ ]*) ?([^ ]*)$", REG_EXTENDED);
		regcomp(&cfg.end_re, "^([0-9: -]+) OUT ?([^ ]*) ?([0-9]*)$", REG_EXTENDED);
		cfg.start_re_compiled = cfg.end_re_compiled = true;
		cfg.start_fields.group[SF_TIME] = cfg.end_fields.group[SF_TIME] = 1;
		cfg.start_fields.group[SF_USER] = 3;
		cfg.start_fields.group[SF_ORG] = 4;
		cfg.end_fields.group[SF_USER] = 2;
		cfg.end_fields.group[SF_SAMPLES] = 3;
		p = lp_parser_new(&cfg);
		a = lp_arena_new();
	}
	struct lp_pairs *pp = lp_pairs_new(12);
	const char *buf = (const char *)data;
	size_t pos = 0, lines = 0;
	struct lp_frame fr;
	char why[192];
	while (pos < size && lp_frame(false, buf + pos, size - pos, true, &fr)) {
		struct lp_result r;
		lp_parse(p, NULL, buf + pos, fr.len, a, &r);
		if ((r.kind == LP_START || r.kind == LP_END) &&
		    lp_pairs_feed(pp, &r, check, NULL, why, sizeof(why)) == 1 && !why[0])
			__builtin_trap();
		if (++lines % 8 == 0) { /* a restart: the open logins go through the cursor */
			cJSON *j = lp_pairs_to_json(pp);
			if (lp_pairs_from_json(pp, j) < 0)
				__builtin_trap();
			cJSON_Delete(j);
		}
		pos += fr.consumed;
	}
	lp_pairs_expire(pp, INT64_MAX / 2, check, NULL);
	if (lp_pairs_count(pp) != 0)
		__builtin_trap();
	lp_pairs_free(pp);
	lp_arena_reset(a);
	return 0;
}
