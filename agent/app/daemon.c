/* daemon.c — the long-running agent: starts the source drivers, keeps the buffer within its
 * cap, writes status and metrics snapshots, talks to systemd, and stops cleanly. */
#include "daemon.h"
#include "buffer.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "fileio.h"
#include "log.h"
#include "metrics.h"
#include "source.h"
#include "status.h"
#include "timeutil.h"
#include "uploader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define N_DRIVERS_MAX 8
/* The main thread goes round once a second for the cheap checks (one stat(2) of buffer.db, the
 * buffer's cap); what costs (the metrics step: a query per instrument and a commit; the status
 * snapshots: two files written whole) runs when it can have something to do. */
#define TICK_MS 1000
/* Slots close every SLOT_S and seal once a reading past their end came in: the metrics step
 * runs every second for METRICS_HOT_S after a slot boundary (and after a day closed with its
 * grace), every METRICS_EVERY_S otherwise (late log sessions, dirty days). */
#define METRICS_EVERY_S 5
#define METRICS_HOT_S 30
/* status.json and metrics.prom: after a metrics step that sealed something, else this often,
 * and at more than 1,000 instruments one second more per SNAPSHOT_INSTS_PER_S of them (10 s at
 * 5,000: a snapshot costs ~3 µs an instrument, and every instrument's part changes at each poll).
 * Where every source is a Modbus instrument polled every 4 s or more, every half of the shortest
 * interval, at most SNAPSHOT_SLOW_S: the readings it shows do not come faster. */
#define SNAPSHOT_EVERY_S 2
#define SNAPSHOT_INSTS_PER_S 500
#define SNAPSHOT_SLOW_S 5

static int64_t snapshot_every_ms(const struct config *cfg)
{
	int64_t every = (int64_t)cfg->n_instruments * 1000 / SNAPSHOT_INSTS_PER_S;
	int64_t shortest = INT64_MAX;
	for (size_t i = 0; i < cfg->n_instruments; i++) {
		const struct instrument_cfg *ic = &cfg->instruments[i];
		if (ic->n_logs > 0 || !ic->modbus.present)
			shortest = 0; /* log lines come at any time */
		else if (ic->modbus.interval_s * 1000LL < shortest)
			shortest = ic->modbus.interval_s * 1000LL;
	}
	if (shortest != INT64_MAX && shortest / 2 > every)
		every = shortest / 2 < SNAPSHOT_SLOW_S * 1000 ? shortest / 2 : SNAPSHOT_SLOW_S * 1000;
	return every > SNAPSHOT_EVERY_S * 1000 ? every : SNAPSHOT_EVERY_S * 1000;
}
/* A snapshot whose content did not change is not written again, only its time moved this often. */
#define VIEW_TOUCH_S 4
#define PRUNE_EVERY_S 3600
/* Repeated sessions (status.json's sessions_repeated) change when a duplicate arrives, rarely:
 * counted again once a minute, not every second (`status` counts them itself, from the file). */
#define REPEATS_EVERY_S 60

/* A failure that repeats every tick (a full disk) is logged when it starts, once a minute
 * while it lasts, and when it ends: the journal should say what is wrong, not fill up. */
struct repeat {
	int err;
	int64_t logged;
};

static bool repeat_should_log(struct repeat *rp, int err)
{
	int64_t now = clock_mono_ms();
	if (err == rp->err && now - rp->logged < 60000)
		return false;
	rp->err = err;
	rp->logged = now;
	return true;
}

static void repeat_ok(struct repeat *rp, const char *what)
{
	if (rp->err)
		log_notice("%s: working again", what);
	rp->err = 0;
}

struct daemon {
	const char *config_path;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct uploader *up;
	void *drv[N_DRIVERS_MAX];
	struct source_conf *drv_conf;    /* the drivers' part of cfg, while they run */
	struct status *st;               /* refreshed every tick; laid out again at a reload */
	int lock_fd;
	int64_t last_prune;
	int64_t repeats_at;              /* monotonic ms of the last count; 0: not yet */
	bool was_healthy;
	struct repeat tick_err, snap_err, file_err;
	int64_t metrics_at, snapshot_at; /* monotonic ms of the last run; 0: run at the next tick */
	int tick_r;                      /* the last metrics step's result */
	struct view_copy {               /* what was last written of status.json, metrics.prom: */
		unsigned char md[SHA256_DIGEST_LENGTH]; /* its digest, not a copy (~0.5 MB */
		size_t len;                             /* at 1,000 instruments); len 0: none */
		int64_t at;              /* monotonic ms of the write or touch */
	} views[2];
};

static char *state_file(const struct config *cfg, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", cfg->agent.state_dir, name) < 0)
		return NULL;
	return p;
}

bool daemon_running(const char *state_dir, long *pid)
{
	char path[PATH_MAX];
	if (pid)
		*pid = 0;
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, LOCK_FILE) >= (int)sizeof(path))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	if (held && pid) {
		char buf[32] = "";
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			*pid = strtol(buf, NULL, 10);
		}
	}
	close(fd);
	return held;
}

int daemon_hold_lock_shared(const char *state_dir)
{
	/* Shared: the daemon's exclusive lock can't be taken meanwhile, yet daemon_running (a
	 * shared probe) still reports no daemon. Read-only when the file exists (an operator who
	 * can't write the daemon's lock file); created only when no daemon ever ran here. */
	return fileio_lock(state_dir, LOCK_FILE, LOCK_SH | LOCK_NB);
}

/* One daemon per state folder: two would seal interleaved chains. */
static int take_lock(struct daemon *d)
{
	char *path = state_file(d->cfg, LOCK_FILE);
	if (!path)
		return -ENOMEM;
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->lock_fd < 0) {
		int e = -errno;
		log_err("cannot open \"%s\"", path);
		free(path);
		return e;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = -errno;
		if (errno == EWOULDBLOCK)
			log_errx("another labshare-agent is running on \"%s\"", d->cfg->agent.state_dir);
		else
			log_err("cannot lock \"%s\"", path);
		free(path);
		return e;
	}
	free(path);
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
		log_warn("cannot write the pid to the lock file");
	return 0;
}

static int start_drivers(struct daemon *d)
{
	source_conf_free(d->drv_conf);
	if (!(d->drv_conf = config_source_conf(d->cfg)))
		return -ENOMEM;
	for (size_t i = 0; source_registry[i] && i < N_DRIVERS_MAX; i++) {
		const struct source_ops *ops = source_registry[i];
		d->drv[i] = NULL;
		int r = ops->create(d->drv_conf, d->core, &d->drv[i]);
		if (r < 0) {
			log_errx("%s: cannot start: %s", ops->name, strerror(-r));
			return r;
		}
		if (d->drv[i] && ops->start && (r = ops->start(d->drv[i])) < 0) {
			log_errx("%s: cannot start: %s", ops->name, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void stop_drivers(struct daemon *d)
{
	for (size_t i = 0; source_registry[i] && i < N_DRIVERS_MAX; i++) {
		const struct source_ops *ops = source_registry[i];
		if (!d->drv[i])
			continue;
		if (ops->stop)
			ops->stop(d->drv[i]);
		if (ops->destroy)
			ops->destroy(d->drv[i]);
		d->drv[i] = NULL;
	}
	source_conf_free(d->drv_conf);
	d->drv_conf = NULL;
}

/* Written whole if it can be, and only when it changed (no fsync: a rename keeps it whole for
 * readers, and it is rebuilt after a restart); takes text. What was written is known by its
 * SHA-256. A failure that lasts is logged once a minute. */
static int write_view(struct daemon *d, struct view_copy *last, const char *name, char *text, size_t len)
{
	char *path = state_file(d->cfg, name);
	int64_t now = clock_mono_ms();
	unsigned char md[SHA256_DIGEST_LENGTH];
	bool hashed = text && EVP_Digest(text, len, md, NULL, EVP_sha256(), NULL) == 1;
	if (path && hashed && last->len == len && len > 0 && memcmp(last->md, md, sizeof(md)) == 0) {
		free(text);
		/* Unchanged: its time moves on all the same now and then (`poll` takes a snapshot
		 * older than 10 s for a stuck daemon), a utimensat instead of a new file. */
		if (now - last->at >= VIEW_TOUCH_S * 1000) {
			if (utimensat(AT_FDCWD, path, NULL, 0) == 0)
				last->at = now;
			else
				last->len = 0; /* gone? written again next time */
		}
		free(path);
		return 0;
	}
	int r = !text ? -ENOMEM : !path ? -ENOMEM : write_file_atomic(path, text, len, 0644);
	if (r < 0 && repeat_should_log(&d->snap_err, r))
		log_warnx("cannot write \"%s\": %s, retrying every second", path ? path : name, strerror(-r));
	free(path);
	free(text);
	/* a failed write is tried again whatever the text */
	last->len = r == 0 && hashed ? len : 0;
	if (last->len)
		memcpy(last->md, md, sizeof(md));
	last->at = now;
	return r;
}

static void views_forget(struct daemon *d)
{
	for (size_t i = 0; i < sizeof(d->views) / sizeof(d->views[0]); i++) {
		d->views[i] = (struct view_copy){ 0 };
	}
}

/* The status struct refreshed in place: the buffer's and the sinks' figures (a few queries),
 * the drivers' parts copied from their memory through their status ops, the metrics context
 * the core keeps for the whole run (nothing prepared per tick). Then status.json (the whole
 * status, SPEC §7: `status` and `poll` read the instruments' live parts back) and metrics.prom. */
static void write_snapshots(struct daemon *d)
{
	if (!d->st && !(d->st = status_new(d->cfg))) {
		if (repeat_should_log(&d->snap_err, -ENOMEM))
			log_warnx("status: %s, retrying every second", strerror(ENOMEM));
		return;
	}
	struct status *st = d->st;
	struct metrics *mx = core_metrics(d->core);
	status_fill_buffer(st, d->cfg, d->buf, true, (long)getpid());
	status_begin_round(st);
	for (size_t i = 0; source_registry[i] && i < N_DRIVERS_MAX; i++)
		if (d->drv[i] && source_registry[i]->status)
			source_registry[i]->status(d->drv[i], st->insts, st->n_insts);
	status_fill_idle(st, d->buf, mx);
	int64_t now = clock_mono_ms();
	if (!d->repeats_at || now - d->repeats_at >= REPEATS_EVERY_S * 1000) {
		status_fill_repeats(st, d->buf, mx);
		d->repeats_at = now;
	}

	size_t len = 0;
	char *text = status_json(st, &len);
	int r = write_view(d, &d->views[0], STATUS_FILE, text, len);

	char line[256];
	snprintf(line, sizeof(line), "STATUS=seq %lld, %lld pending, %.1f MB%s", (long long)st->buffer.last_seq,
		 (long long)st->buffer.pending, (double)st->buffer.bytes / 1048576.0,
		 core_paused(d->core) ? ", buffer full: sources paused" : "");
	sd_notify(0, line);
	if (r == 0) {
		char *prom = status_prometheus(st, &len);
		r = write_view(d, &d->views[1], METRICS_FILE, prom, len);
	}
	if (r == 0)
		repeat_ok(&d->snap_err, "status files");
}

static void prune(struct daemon *d)
{
	const char *sinks[3] = { NULL, NULL, NULL };
	size_t n = 0;
	if (d->cfg->platform.present)
		sinks[n++] = "platform";
	if (d->cfg->nrii.present)
		sinks[n++] = "nrii";
	int64_t before = clock_wall() - (int64_t)d->cfg->buffer.keep_acked_days * 86400;
	int64_t pruned = buffer_prune(d->buf, sinks, before);
	if (metrics_prune(core_metrics(d->core), before) < 0)
		log_warnx("buffer: cannot prune metrics older than %d days, retrying in an hour",
			  d->cfg->buffer.keep_acked_days);
	if (pruned > 0)
		log_info("buffer: pruned %" PRId64 " acknowledged records older than %d days", pruned,
			 d->cfg->buffer.keep_acked_days);
	d->last_prune = clock_wall();
	/* The cap wins over the retention: at max_mb, acknowledged records go first (the
	 * platform holds them), so that sources can resume. Unacknowledged ones never go. */
	if (core_paused(d->core)) {
		pruned = buffer_prune(d->buf, sinks, INT64_MAX);
		if (pruned > 0) {
			log_warnx("buffer: full: pruned %" PRId64 " acknowledged records before their %d days "
				  "to make room; report and verify now start later", pruned,
				  d->cfg->buffer.keep_acked_days);
			core_check_space(d->core);
		}
	}
}

/* Every part that should move is moving: the metrics step just ran, and no thread of a
 * driver or a sink is stuck. */
static bool healthy(struct daemon *d, bool tick_ok, char *why, size_t whylen)
{
	if (!tick_ok) {
		snprintf(why, whylen, "metrics: records can't be sealed");
		return false;
	}
	for (size_t i = 0; source_registry[i] && i < N_DRIVERS_MAX; i++)
		if (d->drv[i] && source_registry[i]->healthy &&
		    !source_registry[i]->healthy(d->drv[i], why, whylen))
			return false;
	return uploader_healthy(d->up, why, whylen);
}

/* buffer.db deleted or replaced under us (SPEC §5): checked at every tick, one stat(2). The
 * event type is agent_start, the one the agent already seals when its buffer was re-made. */
static void check_buffer_file(struct daemon *d)
{
	char what[PATH_MAX * 2 + 256];
	int r = buffer_check_file(d->buf, what, sizeof(what));
	if (r == 1 && core_event(d->core, NULL, "agent_start", what) < 0)
		log_errx("buffer: cannot seal the event that the buffer was written back");
	if (r < 0 && repeat_should_log(&d->file_err, r))
		log_errx("buffer: %s; retrying every second", what);
	else if (r >= 0)
		repeat_ok(&d->file_err, "buffer file");
}

/* Whether the metrics step can have something to seal now (wall time): just after a slot
 * boundary or after a day closed (with the grace seal_days gives late data), or a while
 * since the last step. */
static bool metrics_due(struct daemon *d, int64_t mono_ms)
{
	if (!d->metrics_at || mono_ms - d->metrics_at >= METRICS_EVERY_S * 1000)
		return true;
	int64_t now = clock_wall();
	if (now % SLOT_S < METRICS_HOT_S)
		return true;
	int64_t grace = d->cfg->platform.present ? d->cfg->platform.upload_interval_s : 60;
	int64_t past = now - time_day_start(now) - grace;
	return past >= 0 && past < METRICS_HOT_S;
}

static void tick(struct daemon *d)
{
	check_buffer_file(d);
	int64_t mono = clock_mono_ms();
	bool snapshot = !d->snapshot_at || mono - d->snapshot_at >= snapshot_every_ms(d->cfg);
	if (metrics_due(d, mono)) {
		int r = core_tick(d->core);
		d->metrics_at = r < 0 ? 0 : mono; /* a failure is tried again at the next tick */
		d->tick_r = r;
		if (r < 0 && repeat_should_log(&d->tick_err, r))
			log_errx("metrics: cannot seal records: %s, retrying every second", strerror(-r));
		else if (r >= 0)
			repeat_ok(&d->tick_err, "metrics");
		if (r != 0)
			snapshot = true; /* sealed something (or failed): status says so now */
	}
	core_check_space(d->core);
	if (clock_wall() - d->last_prune >= PRUNE_EVERY_S || core_paused(d->core))
		prune(d);
	char why[256] = "";
	bool ok = healthy(d, d->tick_r >= 0, why, sizeof(why));
	if (ok)
		sd_notify(0, "WATCHDOG=1");
	if (ok != d->was_healthy) {
		ok ? log_notice("healthy again") : log_errx("not healthy: %s; watchdog withheld", why);
		snapshot = true;
	}
	d->was_healthy = ok;
	if (snapshot) {
		write_snapshots(d);
		d->snapshot_at = mono;
	}
}

/* SIGHUP: the new config must be valid before anything is torn down. */
static void reload(struct daemon *d)
{
	/* systemd ≥ 253 wants the time the reload began beside RELOADING=1. */
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)clock_mono_us());
	struct config_errors errs = { 0 };
	struct config *next = NULL;
	int r = config_load(d->config_path, &next, &errs);
	if (r < 0) {
		log_errx("reload: \"%s\" is invalid, keeping the running configuration", d->config_path);
		for (size_t i = 0; i < errs.n; i++)
			log_errx("reload: %s", errs.msg[i]);
		if (errs.n == 0)
			log_errx("reload: %s", strerror(-r));
		config_errors_clear(&errs);
		sd_notify(0, "READY=1");
		return;
	}
	if (strcmp(next->agent.state_dir, d->cfg->agent.state_dir) != 0 ||
	    strcmp(next->agent.id, d->cfg->agent.id) != 0) {
		log_errx("reload: agent.id and agent.state_dir can't change while running: restart instead");
		config_free(next);
		sd_notify(0, "READY=1");
		return;
	}
	stop_drivers(d);
	uploader_stop(d->up);
	d->up = NULL;
	struct config *old = d->cfg;
	d->cfg = next;
	status_free(d->st);             /* laid out again from the new instruments */
	d->st = NULL;
	d->repeats_at = 0;
	d->metrics_at = d->snapshot_at = 0;
	timeutil_set_zone(next->agent.timezone);
	core_set_config(d->core, next);
	config_free(old);
	core_event(d->core, NULL, "config_changed", d->config_path);
	log_notice("reload: configuration \"%s\" applied", d->config_path);
	if (start_drivers(d) < 0)
		log_errx("reload: some sources failed to start; see above");
	d->up = uploader_start(d->cfg, d->buf);
	sd_notify(0, "READY=1");
}

static int run_loop(struct daemon *d)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		struct timespec ts = { TICK_MS / 1000, (TICK_MS % 1000) * 1000000L };
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_notice("received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			return 0;
		}
		if (sig == SIGHUP)
			reload(d);
		tick(d);
	}
}

int daemon_run(const char *config_path)
{
	struct daemon d = { .config_path = config_path, .lock_fd = -1, .was_healthy = true };
	struct config_errors errs = { 0 };
	char *moved = NULL;
	int code = EX_SOFTWARE;

	/* glibc gives each thread that allocates its own arena: megabytes of mostly idle heap
	 * (the flusher, the sinks, RTU lines). Two arenas are plenty for this workload. */
	mallopt(M_ARENA_MAX, 2);

	/* Signals go to the main loop only: block them before any thread exists. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int r = config_load(config_path, &d.cfg, &errs);
	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_errx("%s", errs.msg[i]);
		if (errs.n == 0)
			log_errx("%s: %s", config_path, strerror(-r));
		config_errors_clear(&errs);
		return r == -EINVAL ? EX_CONFIG : EX_NOINPUT;
	}
	if (timeutil_set_zone(d.cfg->agent.timezone) < 0) {
		log_errx("agent.timezone \"%s\" is unknown", d.cfg->agent.timezone);
		code = EX_CONFIG;
		goto out;
	}
	if (d.cfg->nrii.present && d.cfg->nrii.insecure_http && strncmp(d.cfg->nrii.url, "http:", 5) == 0)
		log_warnx("nrii: reporting to \"%s\" over plain HTTP (insecure_http): records and the "
			  "institution code travel unencrypted", d.cfg->nrii.url);
	/* The lock comes before the buffer is opened: opening may repair (move aside) a file
	 * that another running daemon is using. */
	r = buffer_make_state_dir(d.cfg->agent.state_dir);
	if (r < 0)
		log_errx("cannot create \"%s\": %s", d.cfg->agent.state_dir, strerror(-r));
	if (r < 0 || take_lock(&d) < 0 || buffer_open(d.cfg->agent.state_dir, 0, &d.buf, &moved) < 0) {
		code = EX_CANTCREAT;
		goto out;
	}
	d.core = core_new(d.cfg, d.buf);
	if (!d.core)
		goto out;
	if (moved) {
		char detail[PATH_MAX + 64];
		snprintf(detail, sizeof(detail), "buffer was damaged; moved aside to %s, new chain started",
			 moved);
		core_event(d.core, NULL, "agent_start", detail);
	}
	char detail[128];
	snprintf(detail, sizeof(detail), "labshare-agent %s", LABSHARE_VERSION);
	if (core_event(d.core, NULL, "agent_start", detail) < 0) {
		log_errx("cannot seal the start event: the buffer is not writable");
		code = EX_CANTCREAT;
		goto out;
	}
	if (start_drivers(&d) < 0) {
		code = EX_SOFTWARE;
		goto stop;
	}
	uploader_clear_alarms(d.cfg, d.buf);
	d.up = uploader_start(d.cfg, d.buf);
	core_check_space(d.core);
	prune(&d);
	write_snapshots(&d);
	log_notice("labshare-agent %s started: agent \"%s\", %zu instruments, state in \"%s\"",
		   LABSHARE_VERSION, d.cfg->agent.id, d.cfg->n_instruments, d.cfg->agent.state_dir);
	sd_notify(0, "READY=1");

	code = run_loop(&d);
stop:
	views_forget(&d); /* the last snapshot is written whatever it holds */
	sd_notify(0, "STOPPING=1");
	stop_drivers(&d);
	uploader_stop(d.up);
	d.up = NULL;
	if (core_stop(d.core) < 0)
		log_errx("metrics: cannot seal the open slots at stop");
	core_event(d.core, NULL, "agent_stop", code == 0 ? "clean stop" : "stopped after an error");
	write_snapshots(&d);
	{
		char *path = state_file(d.cfg, STATUS_FILE);
		if (path)
			unlink(path);
		free(path);
	}
out:
	views_forget(&d);
	status_free(d.st);
	core_free(d.core);
	buffer_close(d.buf);
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	config_free(d.cfg);
	free(moved);
	return code;
}
