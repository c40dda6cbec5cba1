/* scan.c — `profiles` lists the built-in meter profiles; `scan` finds the meters on a bus:
 * which units answer, and for each the profiles whose voltage and frequency registers read
 * plausible values. Read-only (function codes 1-4 only), one request per silent unit. */
#include "scan.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mbdecode.h"
#include "modbus.h"
#include "profiles.h"

#include <errno.h>
#include <getopt.h>
#include <modbus/modbus.h> /* the exception codes */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* Plausible mains readings: 100-480 V phase or line voltage (with margins), 50 or 60 Hz. */
#define VOLT_MIN 80.0
#define VOLT_MAX 480.0
#define HZ_MIN 45.0
#define HZ_MAX 65.0

static void print_point(FILE *out, const char *what, const struct mb_point *p, const char *unit)
{
	if (!p->present)
		return;
	fprintf(out, "  %-10s %s %5u %s/%s", what, mb_table_name(p->table), (unsigned)p->address,
		mb_type_name(p->type), p->word_order == MB_WORD_BIG ? "big" : "little");
	if (p->scale != 1.0)
		fprintf(out, " ×%g", p->scale);
	fprintf(out, " → %s\n", unit);
}

int profiles_list(FILE *out)
{
	size_t n, np;
	const struct meter_profile *v = profiles_all(&n);
	const char *const *problems = profiles_problems(&np);
	for (size_t i = 0; i < np; i++)
		cli_error("%s", problems[i]);
	for (size_t i = 0; i < n; i++) {
		const struct meter_profile *p = &v[i];
		fprintf(out, "%s%s: %s, %d phase%s", i ? "\n" : "", p->name, p->model, p->phases,
			p->phases == 1 ? "" : "s");
		if (p->baud)
			fprintf(out, "; as delivered %d baud", p->baud);
		if (p->parity)
			fprintf(out, ", parity %c", p->parity);
		fprintf(out, "\n");
		print_point(out, "power", &p->power, "W");
		print_point(out, "energy", &p->energy, "kWh");
		print_point(out, "voltage", &p->voltage, "V");
		print_point(out, "frequency", &p->frequency, "Hz");
		fprintf(out, "  source:    %s\n", p->source);
	}
	return 0;
}

/* ---- scan ------------------------------------------------------------------------------ */

static int parse_units(const char *s, int *lo, int *hi)
{
	char *end;
	errno = 0;
	long a = strtol(s, &end, 10), b = a;
	if (end == s || errno)
		return -1;
	if (*end == '-') {
		const char *t = end + 1;
		b = strtol(t, &end, 10);
		if (end == t || errno)
			return -1;
	}
	if (*end || a < 1 || b > 247 || a > b)
		return -1;
	*lo = (int)a;
	*hi = (int)b;
	return 0;
}

/* A reply of any kind but a gateway's "no answer" says the unit is there. */
static bool answered(int r)
{
	if (r == 0)
		return true;
	int e = -r;
	bool exception = e >= EMBXILFUN && e <= EMBXGTAR;
	return exception && e != EMBXGPATH && e != EMBXGTAR;
}

/* Reads p (scaled) into *v; true when it reads within [lo, hi]. *r gets the read's result. */
static bool plausible(struct mb_bus *bus, int unit, const struct mb_point *p, double lo, double hi,
		      double *v, int *r)
{
	char err[192];
	double raw = 0;
	*r = mb_read_point(bus, unit, p, &raw, err, sizeof(err));
	*v = raw * p->scale;
	return *r == 0 && *v >= lo && *v <= hi;
}

/* One unit: whether it answers, and the profiles that fit, printed. */
static bool scan_unit(struct mb_bus *bus, int unit, const struct meter_profile *v, size_t n, FILE *out)
{
	bool heard = false, first = true;
	char fits[2048] = "";
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		const struct meter_profile *p = &v[i];
		if (!p->voltage.present || !p->frequency.present)
			continue; /* nothing to tell it by */
		double volts, hz;
		int r;
		bool ok = plausible(bus, unit, &p->voltage, VOLT_MIN, VOLT_MAX, &volts, &r);
		if (first && !answered(r))
			return false; /* silent: one request, no retry */
		first = false;
		heard = heard || answered(r);
		if (!ok || !plausible(bus, unit, &p->frequency, HZ_MIN, HZ_MAX, &hz, &r))
			continue;
		int w = snprintf(fits + at, sizeof(fits) - at, "%s%s (%.1f V, %.2f Hz)", at ? ", " : "",
				 p->name, volts, hz);
		if (w > 0 && (size_t)w < sizeof(fits) - at)
			at += (size_t)w;
	}
	if (first) {
		/* No profile has voltage and frequency: ask for one register all the same. */
		struct mb_point probe = { .present = true, .table = MB_TABLE_HOLDING, .type = MB_TYPE_U16,
					  .scale = 1 };
		double raw;
		char err[192];
		heard = answered(mb_read_point(bus, unit, &probe, &raw, err, sizeof(err)));
	}
	if (heard)
		fprintf(out, "unit %d: answers; %s%s\n", unit, at ? "fits " : "no profile fits", fits);
	return heard;
}

int scan_run(const struct config *cfg, int argc, char **argv, FILE *out)
{
	static const struct option opts[] = { { "units", required_argument, NULL, 'u' }, { NULL, 0, NULL, 0 } };
	int lo = 1, hi = 247, c;
	optind = 0; /* a full restart of GNU getopt: the command line's own parse stopped at the command */
	while ((c = getopt_long(argc, argv, "u:", opts, NULL)) != -1) {
		if (c != 'u' || parse_units(optarg, &lo, &hi) < 0) {
			cli_error("scan: %s", c == 'u' ? "--units must be A-B within 1-247" : "unknown option");
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc) {
		cli_error("scan: %s", optind == argc ? "which bus? scan BUS [--units A-B]" : "one bus at a time");
		return EX_USAGE;
	}
	const char *id = argv[optind];
	const struct bus_cfg *bc = NULL;
	for (size_t i = 0; i < cfg->n_buses && !bc; i++)
		if (strcmp(cfg->buses[i].id, id) == 0)
			bc = &cfg->buses[i];
	if (!bc) {
		cli_error("scan: unknown bus \"%s\" (the configuration's \"buses\")", id);
		return EX_USAGE;
	}
	/* A daemon owns its buses: a second master breaks an RS-485 line (SPEC §2). The lock is
	 * held shared while scanning, so that none starts meanwhile. */
	int lock = daemon_hold_lock_shared(cfg->agent.state_dir);
	if (lock == -EWOULDBLOCK) {
		long pid = 0;
		daemon_running(cfg->agent.state_dir, &pid);
		cli_error("scan: the daemon (pid %ld) owns bus \"%s\"; stop it first (systemctl stop labshare-agent)",
			  pid, id);
		return EX_CANTCREAT;
	}
	if (lock < 0 && lock != -ENOENT && lock != -ENOTDIR) {
		cli_error("scan: cannot tell whether a daemon owns the bus: \"%s/%s\": %s; run scan as the "
			  "agent's user", cfg->agent.state_dir, LOCK_FILE, strerror(-lock));
		return EX_CANTCREAT;
	}
	size_t n;
	const struct meter_profile *v = profiles_all(&n);
	struct mb_bus *bus = mb_bus_new(bc);
	if (!bus) {
		if (lock >= 0)
			close(lock);
		return EX_OSERR;
	}
	fprintf(out, "scanning bus %s (%s) units %d-%d: %d ms time-out, %d ms gap, %zu profiles\n", bc->id,
		bc->url, lo, hi, bc->timeout_ms, bc->gap_ms, n);
	fflush(out);
	int found = 0;
	for (int unit = lo; unit <= hi; unit++) {
		found += scan_unit(bus, unit, v, n, out);
		fflush(out);
	}
	fprintf(out, "%d of %d units answer\n", found, hi - lo + 1);
	mb_bus_free(bus);
	if (lock >= 0)
		close(lock);
	return found ? 0 : 1;
}
