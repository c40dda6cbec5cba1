/* records.c — builds each record kind exactly as SPEC §6 lays it out and seals it. */
#include "records.h"
#include "periods.h"
#include "chain.h"
#include "jsonw.h"
#include "source.h"
#include "timeutil.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_types[] = {
	"agent_start", "agent_stop", "config_changed", "device_offline", "device_online",
	"counter_reset", "counter_wrap", "counter_clamped", "gap", "log_rotated",
	"log_malformed", "buffer_full", NULL
};

bool event_type_valid(const char *type)
{
	for (size_t i = 0; type && event_types[i]; i++)
		if (strcmp(type, event_types[i]) == 0)
			return true;
	return false;
}

double round4(double x)
{
	return round(x * 10000.0) / 10000.0;
}

static int64_t seal(struct buffer *b, struct jsonw *w)
{
	size_t len;
	char *text = jw_end(w, &len);
	if (!text)
		return w->invalid ? -EILSEQ : -ENOMEM;
	int64_t seq = chain_seal_text(b, NULL, text, len, NULL);
	free(text);
	return seq;
}

static void add_time(struct jsonw *w, const char *key, int64_t t)
{
	char buf[RFC3339_LEN];
	time_rfc3339(t, buf);
	jw_str(w, key, buf);
}

int64_t record_event(struct buffer *b, int64_t at, const char *instrument, const char *type,
		     const char *detail)
{
	if (!event_type_valid(type))
		return -EINVAL;
	/* A detail is the agent's own words, often quoting what it met (a file name in a
	 * log's bytes): better the event with those bytes written as \xNN than no event. */
	char *fixed = NULL;
	if (detail && !utf8_str_valid(detail)) {
		if (!(fixed = utf8_repair(detail)))
			return -ENOMEM;
		detail = fixed;
	}
	struct jsonw rec;
	jw_begin(&rec);
	jw_str(&rec, "kind", "event");
	add_time(&rec, "at", at);
	if (instrument)
		jw_str(&rec, "instrument", instrument);
	else
		jw_null(&rec, "instrument");
	jw_str(&rec, "type", type);
	if (detail)
		jw_str(&rec, "detail", detail);
	else
		jw_null(&rec, "detail");
	free(fixed);
	return seal(b, &rec);
}

int64_t record_session(struct buffer *b, const char *instrument, const struct obs_session *s,
		       const char *user_id, bool external)
{
	/* end - start must fit an int64_t (the core's plausibility rules bound it far lower). */
	if (!instrument || s->end <= s->start || (s->start < 0 && s->end > INT64_MAX + s->start) ||
	    s->samples < -1)
		return -EINVAL;
	struct jsonw rec;
	jw_begin(&rec);
	jw_str(&rec, "kind", "session");
	jw_str(&rec, "instrument", instrument);
	add_time(&rec, "start", s->start);
	add_time(&rec, "end", s->end);
	jw_int(&rec, "duration_s", (s->end - s->start));
	if (user_id)
		jw_str(&rec, "user", user_id);
	jw_str(&rec, "org", s->org ? s->org : "");
	jw_bool(&rec, "external", external);
	if (s->samples >= 0)
		jw_int(&rec, "samples", s->samples);
	if (s->way)
		jw_str(&rec, "way", s->way);
	if (s->fee)
		jw_str(&rec, "fee", s->fee);
	if (s->project)
		jw_str(&rec, "project", s->project);
	if (s->closed_auto)
		jw_str(&rec, "closed", "auto");
	jw_str(&rec, "source", s->manual ? "manual" : "log");
	if (s->manual) {
		jw_str(&rec, "operator", s->operator_name ? s->operator_name : "unknown");
		if (s->note)
			jw_str(&rec, "note", s->note);
	}
	return seal(b, &rec);
}

int64_t record_run(struct buffer *b, const char *instrument, int64_t from, int64_t to, int64_t run_s,
		   int64_t samples, double energy_kwh)
{
	struct jsonw rec;
	jw_begin(&rec);
	jw_str(&rec, "kind", "run");
	jw_str(&rec, "instrument", instrument);
	add_time(&rec, "from", from);
	add_time(&rec, "to", to);
	jw_int(&rec, "run_s", run_s);
	if (samples >= 0)
		jw_int(&rec, "samples", samples);
	if (energy_kwh >= 0)
		jw_num(&rec, "energy_kwh", round(energy_kwh * 1000.0) / 1000.0);
	return seal(b, &rec);
}

int64_t record_daily(struct buffer *b, const char *instrument, const char *date, int revision,
		     const struct daily_figures *f)
{
	struct jsonw rec;
	jw_begin(&rec);
	jw_str(&rec, "kind", "daily");
	jw_str(&rec, "instrument", instrument);
	jw_str(&rec, "date", date);
	jw_int(&rec, "revision", revision);
	jw_int(&rec, "effective_s", f->effective_s);
	jw_int(&rec, "service_s", f->service_s);
	jw_int(&rec, "external_s", f->external_s);
	jw_int(&rec, "internal_s", f->internal_s);
	jw_num(&rec, "sharing_rate", round4(f->sharing_rate));
	jw_int(&rec, "sessions", f->sessions);
	jw_int(&rec, "external_sessions", f->external_sessions);
	jw_int(&rec, "samples", f->samples);
	jw_int(&rec, "external_users", f->external_users);
	jw_int(&rec, "unattributed_s", f->unattributed_s);
	jw_int(&rec, "overclaimed_s", f->overclaimed_s);
	jw_int(&rec, "offline_s", f->offline_s);
	return seal(b, &rec);
}
