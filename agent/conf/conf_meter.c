/* conf_meter.c — an instrument's meter (SPEC §3): "profile" takes a built-in register map
 * (profiles.c), the points written beside it ("power", "energy", "voltage", "frequency")
 * replace the profile's one by one, and "in_use" is then from power with hysteresis:
 * {"above_w", "below_w", "min_on_s", "min_off_s"}. */
#include "conf_check.h"
#include "profiles.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void parse_hysteresis(struct ctx *c, const cJSON *o, const char *P, struct mb_hysteresis *h)
{
	static const char *const keys[] = { "above_w", "below_w", "min_on_s", "min_off_s", NULL };
	char p[PATH_BUF];
	conf_check_keys(c, o, P, keys);
	h->present = true;
	bool above = conf_num_member(c, o, P, "above_w", true, 0, false, INFINITY, "must be 0 or more",
				     &h->above_w) != NULL;
	const cJSON *below = conf_num_member(c, o, P, "below_w", true, 0, false, INFINITY,
					     "must be 0 or more", &h->below_w);
	if (above && below && h->below_w > h->above_w)
		conf_err_val(c, below, conf_join(p, P, "below_w"),
			     "must not be more than above_w (%g): between the two the state holds",
			     h->above_w);
	conf_int_member(c, o, P, "min_on_s", false, 0, 86400, &h->min_on_s);
	conf_int_member(c, o, P, "min_off_s", false, 0, 86400, &h->min_off_s);
}

/* The hysteresis form: with a profile always, else when it has one of its keys. */
static bool hysteresis_form(const cJSON *o, bool profiled)
{
	const cJSON *iu = conf_get(o, "in_use");
	if (!cJSON_IsObject(iu))
		return false;
	return profiled || conf_present(iu, "above_w") || conf_present(iu, "below_w") ||
	       conf_present(iu, "min_on_s") || conf_present(iu, "min_off_s");
}

bool conf_parse_meter(struct ctx *c, const cJSON *o, const char *P, struct modbus_cfg *m)
{
	static const char *const points[] = { "power", "energy", "voltage", "frequency", NULL };
	struct mb_point *dest[] = { &m->power, &m->energy, &m->voltage, &m->frequency };
	char p[PATH_BUF];

	const char *name = conf_str_member(c, o, P, "profile", false);
	if (name) {
		const struct meter_profile *mp = profile_find(name);
		const char *broken = mp ? NULL : profile_problem(name);
		if (mp) {
			m->profile = conf_xdup(c, name);
			m->power = mp->power;
			m->energy = mp->energy;
			m->voltage = mp->voltage;
			m->frequency = mp->frequency;
		} else if (broken) {
			conf_err_val(c, conf_get(o, "profile"), conf_join(p, P, "profile"),
				     "the built-in profile \"%.64s\" is broken: %s", name, broken);
		} else {
			conf_err_val(c, conf_get(o, "profile"), conf_join(p, P, "profile"),
				     "unknown profile \"%.64s\" (known: %s)", name, profiles_names());
		}
	}
	/* Written beside the profile: each replaces the profile's point whole. */
	for (int i = 0; points[i]; i++) {
		const cJSON *pt = conf_obj_member(c, o, P, points[i], false);
		if (pt) {
			*dest[i] = (struct mb_point){ 0 };
			conf_parse_point(c, pt, conf_join(p, P, points[i]), CONF_POINT_METER, dest[i]);
		}
	}
	if (!hysteresis_form(o, name != NULL))
		return false;
	const cJSON *iu = conf_get(o, "in_use");
	parse_hysteresis(c, iu, conf_join(p, P, "in_use"), &m->hyst);
	if (!name && !conf_present(o, "power"))
		conf_err_val(c, iu, p, "in use from power needs a \"power\" point or a meter's \"profile\"");
	return true;
}
