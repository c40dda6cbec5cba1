/* mbpoll.c — `labshare-agent poll`: every Modbus source read once and its values printed;
 * beside a running daemon, which owns the buses, the daemon's latest readings instead. */
#include "modbus.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mbdecode.h"
#include "status.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* status.json older than this while the daemon runs (it writes it every second): stuck. */
#define SNAPSHOT_STALE_S 10

static void print_point(FILE *out, const char *what, const struct mb_point *p, double raw,
			const char *unit, double scale)
{
	if (p->table == MB_TABLE_COIL || p->table == MB_TABLE_DISCRETE)
		fprintf(out, "  %-16s %-8s %5d bit         %g\n", what, mb_table_name(p->table), p->address, raw);
	else
		fprintf(out, "  %-16s %-8s %5d %s/%-6s raw %.17g = %.6g %s\n", what, mb_table_name(p->table),
			p->address, mb_type_name(p->type), p->word_order == MB_WORD_BIG ? "big" : "little",
			raw, raw * scale, unit);
}

static void print_head(FILE *out, const struct config *cfg, const struct instrument_cfg *ic, bool ok)
{
	fprintf(out, "%s (%s) on bus %s unit %d: %s\n", ic->id, ic->name ? ic->name : ic->id,
		cfg->buses[ic->modbus.bus_index].id, ic->modbus.unit, ok ? "ok" : "FAILED");
}

static void print_values(FILE *out, const struct instrument_cfg *ic, const struct mb_values *v)
{
	const struct modbus_cfg *m = &ic->modbus;
	if (v->has_run)
		print_point(out, "run_counter", &m->run_counter, v->run_raw, "h", m->run_counter.scale);
	if (v->has_samples)
		print_point(out, "samples_counter", &m->samples_counter, v->samples_raw, "samples",
			    m->samples_counter.scale);
	if (v->has_in_use) {
		print_point(out, "in_use", &m->in_use, v->in_use_raw, m->in_use.has_above ? "(threshold)" : "",
			    m->in_use.scale);
		fprintf(out, "  %-16s %s\n", "", v->in_use ? "in use" : "idle");
	}
	if (v->has_power)
		print_point(out, "power", &m->power, v->power_raw, "W", m->power.scale);
	if (v->has_energy)
		print_point(out, "energy", &m->energy, v->energy_raw, "kWh", m->energy.scale);
	if (v->has_voltage)
		print_point(out, "voltage", &m->voltage, v->voltage_raw, "V", m->voltage.scale);
	if (v->has_frequency)
		print_point(out, "frequency", &m->frequency, v->frequency_raw, "Hz", m->frequency.scale);
	if (v->has_power && m->hyst.present) {
		double w = v->power_raw * m->power.scale;
		fprintf(out, "  %-16s %s (in use above %g W for %d s, idle below %g W for %d s)\n", "",
			w > m->hyst.above_w ? "above the in-use threshold" :
			w < m->hyst.below_w ? "below the idle threshold" : "between the thresholds",
			m->hyst.above_w, m->hyst.min_on_s, m->hyst.below_w, m->hyst.min_off_s);
	}
}

int modbus_poll_once(const struct config *cfg, FILE *out)
{
	int failed = 0, polled = 0;
	for (size_t b = 0; b < cfg->n_buses; b++) {
		struct mb_bus *bus = mb_bus_new(&cfg->buses[b]);
		if (!bus)
			return 1;
		for (size_t i = 0; i < cfg->n_instruments; i++) {
			const struct instrument_cfg *ic = &cfg->instruments[i];
			if (!ic->modbus.present || ic->modbus.bus_index != b)
				continue;
			polled++;
			struct mb_values v;
			mb_read_points(bus, &ic->modbus, true, &v);
			print_head(out, cfg, ic, v.ok);
			if (!v.ok) {
				fprintf(out, "  error: %s\n", v.error);
				failed++;
				continue;
			}
			print_values(out, ic, &v);
		}
		mb_bus_free(bus);
	}
	if (polled == 0)
		fprintf(out, "no Modbus sources configured\n");
	return failed ? 1 : 0;
}

/* ---- beside the daemon -------------------------------------------------------------- */

/* The daemon's reading of one instrument as a struct mb_values, as print_values prints it. */
static void live_values(const struct modbus_reading *r, struct mb_values *v)
{
	memset(v, 0, sizeof(*v));
	v->ok = r->ok;
	v->has_run = r->has_run;
	v->run_raw = r->run_raw;
	v->has_samples = r->has_samples;
	v->samples_raw = r->samples_raw;
	v->has_in_use = r->has_in_use;
	v->in_use_raw = r->in_use_raw;
	v->in_use = r->in_use;
	v->has_power = r->has_power;
	v->power_raw = r->power_raw;
	v->has_energy = r->has_energy;
	v->energy_raw = r->energy_raw;
	snprintf(v->error, sizeof(v->error), "%s", r->error ? r->error : "the daemon gave no reason");
}

/* Prints one instrument from the daemon's status of it; true when it is ok. */
static bool print_live(FILE *out, const struct config *cfg, const struct instrument_cfg *ic,
		       const struct modbus_status *m, long pid, int64_t now)
{
	const char *bus = cfg->buses[ic->modbus.bus_index].id;
	char why[256] = "";
	if (!m->live) {
		snprintf(why, sizeof(why), "the daemon (pid %ld) does not poll it: it runs an older configuration "
			 "(reload it: systemctl reload labshare-agent)", pid);
	} else if ((m->bus && strcmp(m->bus, bus) != 0) || m->unit != ic->modbus.unit) {
		snprintf(why, sizeof(why), "the daemon (pid %ld) reads it on bus %s unit %d: it runs an older "
			 "configuration (reload it: systemctl reload labshare-agent)", pid, m->bus ? m->bus : "?",
			 m->unit);
	} else if (m->reading.at <= 0) {
		snprintf(why, sizeof(why), "not read by the daemon yet (%s)", m->state[0] ? m->state : "starting");
	}
	struct mb_values v = { .ok = false };
	if (!why[0])
		live_values(&m->reading, &v);
	bool ok = !why[0] && v.ok;
	print_head(out, cfg, ic, ok);
	if (!why[0]) {
		char at[RFC3339_LEN];
		time_rfc3339(m->reading.at, at);
		fprintf(out, "  %-16s %s, %lld s ago\n", "read at", at,
			(long long)(now > m->reading.at ? now - m->reading.at : 0));
	}
	if (why[0])
		fprintf(out, "  error: %s\n", why);
	else if (!v.ok)
		fprintf(out, "  error: %s\n", v.error);
	else
		print_values(out, ic, &v);
	return ok;
}

int modbus_poll_daemon(const struct config *cfg, long pid, FILE *out)
{
	char *path = NULL;
	struct status *st = status_new(cfg);
	if (!st || asprintf(&path, "%s/%s", cfg->agent.state_dir, STATUS_FILE) < 0) {
		cli_error("poll: %s", strerror(ENOMEM));
		status_free(st);
		return 1;
	}
	struct stat sb;
	int err = stat(path, &sb) < 0 ? -errno : status_read_live(st, cfg->agent.state_dir);
	if (err == -ENOENT) {
		long again = 0;
		if (!daemon_running(cfg->agent.state_dir, &again)) {
			/* It stopped between the two looks (and took its status with it): the buses
			 * are free. */
			free(path);
			status_free(st);
			return modbus_poll_once(cfg, out);
		}
	}
	if (err == -EINVAL)
		cli_error("poll: \"%s\", the daemon's (pid %ld) readings, is not what it writes: no "
			  "\"instruments\" array", path, pid);
	else if (err < 0)
		cli_error("poll: the daemon (pid %ld) owns the buses, and its readings \"%s\" can't be read: %s", pid,
			  path, strerror(-err));
	if (err < 0) {
		free(path);
		status_free(st);
		return 1;
	}
	int64_t now = clock_wall(), age = now > sb.st_mtim.tv_sec ? now - sb.st_mtim.tv_sec : 0;
	fprintf(out, "the daemon (pid %ld) owns the buses: these are its latest readings "
		"(status %lld s old), no bus was opened\n", pid, (long long)age);
	if (age > SNAPSHOT_STALE_S)
		cli_error("poll: the daemon (pid %ld) last wrote \"%s\" %lld s ago (every second when well): "
			  "is it stuck? see its log", pid, path, (long long)age);
	int failed = 0, shown = 0;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (!ic->modbus.present)
			continue;
		shown++;
		if (!print_live(out, cfg, ic, &st->insts[i].modbus, pid, now))
			failed++;
	}
	if (shown == 0)
		fprintf(out, "no Modbus sources configured\n");
	status_free(st);
	free(path);
	return failed ? 1 : 0;
}

int modbus_poll(const struct config *cfg, FILE *out)
{
	long pid = 0;
	if (daemon_running(cfg->agent.state_dir, &pid))
		return modbus_poll_daemon(cfg, pid, out);
	/* A lock that can't be looked at is no proof that no daemon holds it: the state folder
	 * is the service user's (0750), and an operator's poll would become a second master. */
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s", cfg->agent.state_dir, LOCK_FILE), e = 0;
	if (n < 0 || (size_t)n >= sizeof(path)) {
		e = ENAMETOOLONG;
	} else {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			e = errno;
		else
			close(fd);
	}
	if (e && e != ENOENT && e != ENOTDIR) {
		cli_error("poll: cannot tell whether a daemon owns the buses: \"%s\": %s; run poll as the "
			  "agent's user (sudo -u labshare labshare-agent poll)", path, strerror(e));
		return 1;
	}
	return modbus_poll_once(cfg, out);
}
