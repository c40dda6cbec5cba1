/* records.c — builds each record kind exactly as SPEC §6 lays it out and seals it. */
#include "records.h"
#include "chain.h"
#include "source.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
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

static int64_t seal(struct buffer *b, cJSON *rec)
{
	int64_t seq = rec ? chain_seal(b, rec, NULL) : -ENOMEM;
	cJSON_Delete(rec);
	return seq;
}

static void add_time(cJSON *o, const char *key, int64_t t)
{
	char buf[RFC3339_LEN];
	time_rfc3339(t, buf);
	cJSON_AddStringToObject(o, key, buf);
}

int64_t record_event(struct buffer *b, int64_t at, const char *instrument, const char *type,
		     const char *detail)
{
	if (!event_type_valid(type))
		return -EINVAL;
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "kind", "event");
	add_time(rec, "at", at);
	if (instrument)
		cJSON_AddStringToObject(rec, "instrument", instrument);
	else
		cJSON_AddNullToObject(rec, "instrument");
	cJSON_AddStringToObject(rec, "type", type);
	if (detail)
		cJSON_AddStringToObject(rec, "detail", detail);
	else
		cJSON_AddNullToObject(rec, "detail");
	return seal(b, rec);
}

int64_t record_session(struct buffer *b, const char *instrument, const struct obs_session *s,
		       const char *user_id, bool external)
{
	if (!instrument || s->end <= s->start || s->samples < -1)
		return -EINVAL;
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "kind", "session");
	cJSON_AddStringToObject(rec, "instrument", instrument);
	add_time(rec, "start", s->start);
	add_time(rec, "end", s->end);
	cJSON_AddNumberToObject(rec, "duration_s", (double)(s->end - s->start));
	if (user_id)
		cJSON_AddStringToObject(rec, "user", user_id);
	cJSON_AddStringToObject(rec, "org", s->org ? s->org : "");
	cJSON_AddBoolToObject(rec, "external", external);
	if (s->samples >= 0)
		cJSON_AddNumberToObject(rec, "samples", (double)s->samples);
	if (s->way)
		cJSON_AddStringToObject(rec, "way", s->way);
	if (s->fee)
		cJSON_AddStringToObject(rec, "fee", s->fee);
	if (s->project)
		cJSON_AddStringToObject(rec, "project", s->project);
	if (s->closed_auto)
		cJSON_AddStringToObject(rec, "closed", "auto");
	cJSON_AddStringToObject(rec, "source", s->manual ? "manual" : "log");
	if (s->manual) {
		cJSON_AddStringToObject(rec, "operator", s->operator_name ? s->operator_name : "unknown");
		if (s->note)
			cJSON_AddStringToObject(rec, "note", s->note);
	}
	return seal(b, rec);
}

int64_t record_run(struct buffer *b, const char *instrument, int64_t from, int64_t to, int64_t run_s,
		   int64_t samples)
{
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "kind", "run");
	cJSON_AddStringToObject(rec, "instrument", instrument);
	add_time(rec, "from", from);
	add_time(rec, "to", to);
	cJSON_AddNumberToObject(rec, "run_s", (double)run_s);
	if (samples >= 0)
		cJSON_AddNumberToObject(rec, "samples", (double)samples);
	return seal(b, rec);
}

int64_t record_daily(struct buffer *b, const char *instrument, const char *date, int revision,
		     const struct daily_figures *f)
{
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "kind", "daily");
	cJSON_AddStringToObject(rec, "instrument", instrument);
	cJSON_AddStringToObject(rec, "date", date);
	cJSON_AddNumberToObject(rec, "revision", revision);
	cJSON_AddNumberToObject(rec, "effective_s", (double)f->effective_s);
	cJSON_AddNumberToObject(rec, "service_s", (double)f->service_s);
	cJSON_AddNumberToObject(rec, "external_s", (double)f->external_s);
	cJSON_AddNumberToObject(rec, "internal_s", (double)f->internal_s);
	cJSON_AddNumberToObject(rec, "sharing_rate", round4(f->sharing_rate));
	cJSON_AddNumberToObject(rec, "sessions", (double)f->sessions);
	cJSON_AddNumberToObject(rec, "external_sessions", (double)f->external_sessions);
	cJSON_AddNumberToObject(rec, "samples", (double)f->samples);
	cJSON_AddNumberToObject(rec, "external_users", (double)f->external_users);
	cJSON_AddNumberToObject(rec, "unattributed_s", (double)f->unattributed_s);
	cJSON_AddNumberToObject(rec, "overclaimed_s", (double)f->overclaimed_s);
	cJSON_AddNumberToObject(rec, "offline_s", (double)f->offline_s);
	return seal(b, rec);
}
