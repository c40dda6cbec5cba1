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

#include <cjson/cJSON.h>
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
			mb_read_instrument(bus, &ic->modbus, &v);
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

/* The whole file, NUL-terminated: status.json grows with the instruments, so no cap. NULL
 * with *err set on failure; *mtime gets the file's modification time. */
static char *read_all(const char *path, int64_t *mtime, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		*err = -errno;
		close(fd);
		return NULL;
	}
	*mtime = st.st_mtim.tv_sec;
	size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 == cap) {
			char *more = realloc(buf, cap * 2);
			if (!more) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = more;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = -errno;
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf) {
		*err = -ENOMEM;
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* The instrument's entry in the daemon's snapshot. The daemon writes them in its config's
 * order, so the one after the last found is tried first: one pass for any number. */
static const cJSON *find_live(const cJSON *arr, const char *id, const cJSON **next)
{
	const cJSON *start = *next;
	for (int pass = 0; pass < 2; pass++) {
		/* from the hint to the end, then from the start up to the hint */
		const cJSON *it = pass ? arr->child : start, *stop = pass ? start : NULL;
		for (; it && it != stop; it = it->next) {
			const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
			if (v && strcmp(v, id) == 0) {
				*next = it->next;
				return it;
			}
		}
	}
	return NULL;
}

static void number(const cJSON *r, const char *name, double *out, bool *has)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, name);
	*has = cJSON_IsNumber(n);
	*out = *has ? n->valuedouble : 0;
}

/* A reading as the daemon's status op wrote it (modbus.c add_reading). */
static void live_values(const cJSON *r, struct mb_values *v)
{
	memset(v, 0, sizeof(*v));
	v->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
	number(r, "run_raw", &v->run_raw, &v->has_run);
	number(r, "samples_raw", &v->samples_raw, &v->has_samples);
	number(r, "in_use_raw", &v->in_use_raw, &v->has_in_use);
	v->in_use = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "in_use"));
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "error"));
	snprintf(v->error, sizeof(v->error), "%s", e ? e : "the daemon gave no reason");
}

/* Prints one instrument from the daemon's entry li (NULL: not in it); true when it is ok. */
static bool print_live(FILE *out, const struct config *cfg, const struct instrument_cfg *ic,
		       const cJSON *li, long pid, int64_t now)
{
	const cJSON *lm = li ? cJSON_GetObjectItemCaseSensitive(li, "modbus") : NULL;
	const char *bus = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lm, "bus"));
	const cJSON *unit = cJSON_GetObjectItemCaseSensitive(lm, "unit");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(lm, "reading");
	char why[256] = "";
	if (!cJSON_IsObject(lm)) {
		snprintf(why, sizeof(why), "the daemon (pid %ld) does not poll it: it runs an older configuration "
			 "(reload it: systemctl reload labshare-agent)", pid);
	} else if ((bus && strcmp(bus, cfg->buses[ic->modbus.bus_index].id) != 0) ||
		   (cJSON_IsNumber(unit) && unit->valueint != ic->modbus.unit)) {
		snprintf(why, sizeof(why), "the daemon (pid %ld) reads it on bus %s unit %d: it runs an older "
			 "configuration (reload it: systemctl reload labshare-agent)", pid, bus ? bus : "?",
			 cJSON_IsNumber(unit) ? unit->valueint : 0);
	} else if (!cJSON_IsObject(r)) {
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lm, "state"));
		snprintf(why, sizeof(why), "not read by the daemon yet (%s)", st ? st : "starting");
	}
	struct mb_values v = { .ok = false };
	if (!why[0])
		live_values(r, &v);
	bool ok = !why[0] && v.ok;
	print_head(out, cfg, ic, ok);
	const char *at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "at"));
	int64_t t;
	if (!why[0] && at && time_parse_iso(at, &t) == 0)
		fprintf(out, "  %-16s %s, %lld s ago\n", "read at", at, (long long)(now > t ? now - t : 0));
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
	if (asprintf(&path, "%s/%s", cfg->agent.state_dir, STATUS_FILE) < 0) {
		cli_error("poll: %s", strerror(ENOMEM));
		return 1;
	}
	int64_t mtime = 0;
	int err = 0;
	char *text = read_all(path, &mtime, &err);
	if (!text) {
		long again = 0;
		if (err == -ENOENT && !daemon_running(cfg->agent.state_dir, &again)) {
			/* It stopped between the two looks (and took its status with it): the buses
			 * are free. */
			free(path);
			return modbus_poll_once(cfg, out);
		}
		cli_error("poll: the daemon (pid %ld) owns the buses, and its readings \"%s\" can't be read: %s", pid,
			  path, strerror(-err));
		free(path);
		return 1;
	}
	cJSON *live = cJSON_Parse(text);
	free(text);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(live, "instruments");
	if (!cJSON_IsArray(arr)) {
		cli_error("poll: \"%s\", the daemon's (pid %ld) readings, is not what it writes: no "
			  "\"instruments\" array", path, pid);
		cJSON_Delete(live);
		free(path);
		return 1;
	}
	int64_t now = clock_wall(), age = now > mtime ? now - mtime : 0;
	fprintf(out, "the daemon (pid %ld) owns the buses: these are its latest readings "
		"(status %lld s old), no bus was opened\n", pid, (long long)age);
	if (age > SNAPSHOT_STALE_S)
		cli_error("poll: the daemon (pid %ld) last wrote \"%s\" %lld s ago (every second when well): "
			  "is it stuck? see its log", pid, path, (long long)age);
	int failed = 0, shown = 0;
	const cJSON *next = arr->child;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (!ic->modbus.present)
			continue;
		shown++;
		if (!print_live(out, cfg, ic, find_live(arr, ic->id, &next), pid, now))
			failed++;
	}
	if (shown == 0)
		fprintf(out, "no Modbus sources configured\n");
	cJSON_Delete(live);
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
