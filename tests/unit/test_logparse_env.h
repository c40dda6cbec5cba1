/* test_logparse_env.h — what the parser's tests (test_logparse.c, test_logparse_hardening.c)
 * share: an arena, log configurations of each format, one record parsed, and
 * the sessions an events log pairs. Each program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_LOGPARSE_ENV_H
#define LABSHARE_TEST_LOGPARSE_ENV_H

#define LP_FIX static __attribute__((unused))

/* 2026-11-02T08:00:00+08:00 */
#define T0 1793577600

LP_FIX struct lp_arena *arena;

LP_FIX int setup(void **state)
{
	(void)state;
	arena = lp_arena_new();
	return timeutil_set_zone("Asia/Shanghai") == 0 && arena ? 0 : -1;
}

LP_FIX int teardown(void **state)
{
	(void)state;
	lp_arena_free(arena);
	return 0;
}

LP_FIX void cfg_clear(struct log_cfg *c)
{
	if (c->re_compiled)
		regfree(&c->re);
	if (c->start_re_compiled)
		regfree(&c->start_re);
	if (c->end_re_compiled)
		regfree(&c->end_re);
}

/* A CSV log with the SPEC's example columns. */
LP_FIX void csv_cfg(struct log_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->format = LOG_FMT_CSV;
	c->path = (char *)"usage.csv";
	c->fields.name[SF_START] = (char *)"开始时间";
	c->fields.name[SF_END] = (char *)"结束时间";
	c->fields.name[SF_USER] = (char *)"用户";
	c->fields.name[SF_ORG] = (char *)"单位";
	c->fields.name[SF_SAMPLES] = (char *)"样品数";
	c->fields.name[SF_EXTERNAL] = (char *)"对外";
	c->max_session_h = 12;
}

/* JSON lines with "start" and "end"; a test names more fields. */
LP_FIX void jsonl_cfg(struct log_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->format = LOG_FMT_JSONL;
	c->fields.name[SF_START] = (char *)"start";
	c->fields.name[SF_END] = (char *)"end";
}

LP_FIX void events_cfg(struct log_cfg *c, bool keyed)
{
	memset(c, 0, sizeof(*c));
	c->format = LOG_FMT_EVENTS;
	c->path = (char *)"events.log";
	c->max_session_h = 12;
	const char *start = keyed ? "^([0-9: -]+) LOGIN user=([^ ]+) org=([^ ]*)$" : "^([0-9: -]+) RUN START$";
	const char *end = keyed ? "^([0-9: -]+) LOGOUT user=([^ ]+)( samples=([0-9]+))?$" :
				  "^([0-9: -]+) RUN END( samples=([0-9]+))?$";
	assert_int_equal(regcomp(&c->start_re, start, REG_EXTENDED), 0);
	assert_int_equal(regcomp(&c->end_re, end, REG_EXTENDED), 0);
	c->start_re_compiled = c->end_re_compiled = true;
	c->start_fields.group[SF_TIME] = 1;
	c->end_fields.group[SF_TIME] = 1;
	if (keyed) {
		c->start_fields.group[SF_USER] = 2;
		c->start_fields.group[SF_ORG] = 3;
		c->end_fields.group[SF_USER] = 2;
		c->end_fields.group[SF_SAMPLES] = 4;
	} else {
		c->end_fields.group[SF_SAMPLES] = 3;
	}
}

LP_FIX void parse(struct lp_parser *p, struct lp_csv_cols *cols, const char *line, struct lp_result *r)
{
	lp_parse(p, cols, line, strlen(line), arena, r);
}

/* The header line of csv_cfg's columns, in their order. */
#define CSV_HDR "开始时间,结束时间,用户,单位,样品数,对外"

/* A parser of c that has read the header line hdr (in GB18030 when c's encoding says so)
 * into *cols; *r is that line's result, a header. */
LP_FIX struct lp_parser *csv_parser_hdr(const struct log_cfg *c, struct lp_csv_cols *cols, const char *hdr,
					struct lp_result *r)
{
	struct lp_parser *p = lp_parser_new(c);
	lp_csv_cols_reset(cols);
	char buf[512];
	size_t n = c->encoding == LOG_ENC_GBK ? h_to_gbk(hdr, buf, sizeof(buf))
					      : (size_t)snprintf(buf, sizeof(buf), "%s", hdr);
	assert_true(n < sizeof(buf));
	lp_parse(p, cols, buf, n, arena, r);
	assert_int_equal(r->kind, LP_HEADER);
	return p;
}

/* The same with CSV_HDR, csv_cfg's columns (c is csv_cfg's, or one changed from it): every
 * column found. */
LP_FIX struct lp_parser *csv_parser(const struct log_cfg *c, struct lp_csv_cols *cols)
{
	struct lp_result r;
	struct lp_parser *p = csv_parser_hdr(c, cols, CSV_HDR, &r);
	assert_int_equal(r.why[0], '\0');
	return p;
}


struct sessions {
	struct obs_session s[16];
	char user[16][32];
	size_t n;
};

LP_FIX int collect(void *arg, const struct obs_session *s)
{
	struct sessions *c = arg;
	assert_true(c->n < 16);
	c->s[c->n] = *s;
	snprintf(c->user[c->n], sizeof(c->user[0]), "%s", s->user ? s->user : "");
	c->s[c->n].user = c->user[c->n];
	c->s[c->n].org = NULL; /* borrowed: not valid after the call */
	c->n++;
	return 0;
}

LP_FIX int feed(struct lp_parser *p, struct lp_pairs *pp, const char *line, struct sessions *out,
		char *why)
{
	struct lp_result r;
	parse(p, NULL, line, &r);
	if (r.kind == LP_MALFORMED) {
		snprintf(why, 192, "%s", r.why);
		return 1;
	}
	if (r.kind == LP_SKIP)
		return 2;
	return lp_pairs_feed(pp, &r, collect, out, why, 192);
}


#endif
