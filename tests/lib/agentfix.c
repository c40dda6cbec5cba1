/* agentfix.c — see agentfix.h. */
#include "agentfix.h"
#include "buffer.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every "@DIR@" replaced by dir; caller frees. */
static char *with_dir(const char *text, const char *dir)
{
	size_t n = 0, dlen = strlen(dir);
	for (const char *p = text; (p = strstr(p, "@DIR@")); p += 5)
		n++;
	char *out = malloc(strlen(text) + n * dlen + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = text;;) {
		const char *hit = strstr(p, "@DIR@");
		size_t len = hit ? (size_t)(hit - p) : strlen(p);
		memcpy(o, p, len);
		o += len;
		if (!hit)
			break;
		memcpy(o, dir, dlen);
		o += dlen;
		p = hit + 5;
	}
	*o = '\0';
	return out;
}

struct agent_fix *agent_fix_new(const char *prefix, const char *config_json, const char *zone,
				int64_t now_s)
{
	struct agent_fix *f = calloc(1, sizeof(*f));
	if (!f || !(f->dir = h_mkdtemp(prefix)))
		goto fail;
	char *token = h_path(f->dir, "token");
	h_write_file(token, "test-token\n", (size_t)-1, 0600);
	free(token);
	char *text = with_dir(config_json, f->dir);
	struct config_errors errs = { 0 };
	int r = text ? config_parse("test.json", text, strlen(text), &f->cfg, &errs) : -1;
	free(text);
	if (r != 0) {
		fprintf(stderr, "agentfix: config: %s\n", errs.n ? errs.msg[0] : "cannot parse");
		config_errors_clear(&errs);
		goto fail;
	}
	if (timeutil_set_zone(zone) < 0) {
		fprintf(stderr, "agentfix: unknown zone \"%s\"\n", zone);
		goto fail;
	}
	if (now_s > 0)
		fake_clock_install(&f->clock, now_s);
	if (buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL) < 0 || !(f->core = core_new(f->cfg, f->buf))) {
		fprintf(stderr, "agentfix: cannot open the buffer in \"%s\"\n", f->cfg->agent.state_dir);
		goto fail;
	}
	return f;
fail:
	agent_fix_free(f);
	return NULL;
}

void agent_fix_free(struct agent_fix *f)
{
	if (!f)
		return;
	core_free(f->core);
	buffer_close(f->buf);
	config_free(f->cfg);
	if (f->dir) {
		h_rmtree(f->dir);
		free(f->dir);
	}
	clock_set(NULL);
	free(f);
}

int agent_fix_session(struct agent_fix *f, const char *instrument, int64_t start, int64_t end,
		      const char *user, const char *org, int external, int64_t samples)
{
	struct obs o = { .type = OBS_SESSION, .instrument = instrument };
	o.u.session = (struct obs_session){ .start = start, .end = end, .user = user, .org = org,
					    .external = external, .samples = samples };
	return core_submit(f->core, &o, 1, NULL, NULL, 0);
}
