/* test_flush_env.h — the fixture of the `flush` tests (test_flush_daemon.c, test_flush_turns.c):
 * a lab's configuration against the reference platform over HTTPS, sessions sealed through the
 * library, the built agent run as the daemon and as commands, and both sides' heads read back.
 * Each program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_FLUSH_ENV_H
#define LABSHARE_TEST_FLUSH_ENV_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "flushctl.h"
#include "harness.h"
#include "log.h"
#include "platfix.h"
#include "timeutil.h"

#define FLUSH_FIX static __attribute__((unused))

struct fx {
	char *dir, *certs, *cfg_path, *state;
	struct platfix plat;
	struct h_proc *agent;
};

FLUSH_FIX void plat_cmd(struct fx *f, const char *line)
{
	assert_int_equal(platfix_cmd(&f->plat, line), 0);
}

/* Sessions sealed through the library, before the daemon starts. */
FLUSH_FIX void seal_sessions(struct fx *f, int n)
{
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_load(f->cfg_path, &cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	struct buffer *b = NULL;
	assert_int_equal(buffer_open(cfg->agent.state_dir, 0, &b, NULL), 0);
	struct core *core = core_new(cfg, b);
	/* In the past of the real clock: the core refuses sessions more than 24 h ahead. */
	int64_t base = clock_wall() - (int64_t)(n + 2) * 3600;
	struct obs *o = calloc((size_t)n, sizeof(*o));
	char (*user)[32] = calloc((size_t)n, sizeof(*user));
	for (int i = 0; i < n; i++) {
		snprintf(user[i], sizeof(user[i]), "user-%d", i);
		o[i] = (struct obs){ .type = OBS_SESSION, .instrument = "NMR" };
		o[i].u.session = (struct obs_session){ .start = base + i * 3600, .end = base + i * 3600 + 1800,
						       .user = user[i], .org = "太原理工大学", .external = 1,
						       .samples = 1 };
	}
	/* One batch: one transaction, not one per session. */
	assert_int_equal(core_submit(core, o, (size_t)n, NULL, NULL, 0), 0);
	free(o);
	free(user);
	core_free(core);
	buffer_close(b);
	config_free(cfg);
}

FLUSH_FIX int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = platfix_folder("test_flush_daemon", &f->certs);
	assert_non_null(f->dir);
	f->state = h_path(f->dir, "state");
	assert_int_equal(platfix_start(&f->plat, f->dir, f->certs), 0);
	/* A long interval: after its first round the daemon uploads again only when asked. */
	char *plat = platfix_config(&f->plat);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s\" },"
		"  \"platform\": { %s, \"batch_max_records\": 50, \"upload_interval_s\": 3600, \"timeout_s\": 5 },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/nonexistent/x.csv\","
		"    \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->state, plat);
	free(plat);
	f->cfg_path = h_path(f->dir, "agent.json");
	h_write_file(f->cfg_path, text, (size_t)-1, 0644);
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	*state = f;
	return 0;
}

FLUSH_FIX int teardown(void **state)
{
	struct fx *f = *state;
	h_stop(f->agent, 20000);
	h_proc_free(f->agent);
	platfix_free(&f->plat);
	h_done_dir(f->dir);
	free(f->certs);
	free(f->cfg_path);
	free(f->state);
	free(f);
	return 0;
}

/* The daemon holds its lock and serves control.sock. */
FLUSH_FIX bool daemon_serving(void *arg)
{
	struct fx *f = arg;
	char *lock = h_path(f->state, "agent.lock"), *sock = h_path(f->state, "control.sock");
	struct stat st;
	bool ok = stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
	int fd = open(lock, O_RDONLY);
	ok = ok && fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0;
	if (fd >= 0)
		close(fd);
	free(lock);
	free(sock);
	return ok;
}

FLUSH_FIX void start_daemon(struct fx *f)
{
	char *log = h_path(f->dir, "agent.log");
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"run", NULL };
	f->agent = h_spawn(argv, NULL, false, false, log);
	free(log);
	assert_true(h_wait_for(daemon_serving, f, 20000));
}

FLUSH_FIX int agent(struct fx *f, const char *cmd, char **out, char **err)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)cmd, NULL };
	return h_run(argv, NULL, out, err, 180000);
}

FLUSH_FIX int64_t platform_head(struct fx *f)
{
	return h_sql_int(f->plat.db, "SELECT COALESCE(MAX(seq), 0) FROM records WHERE agent_id = 'agent-1'");
}

FLUSH_FIX int64_t local_head(struct fx *f)
{
	char *db = h_path(f->state, "buffer.db");
	int64_t v = h_sql_int(db, "SELECT COALESCE(MAX(seq), 0) FROM records");
	free(db);
	return v;
}

/* A manual session sealed by `record` (beside the daemon when one runs). */
FLUSH_FIX void record_beside(struct fx *f)
{
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"record",
			 (char *)"--instrument", (char *)"NMR", (char *)"--start", (char *)"2026-11-02 08:00",
			 (char *)"--end", (char *)"2026-11-02 09:00", (char *)"--user", (char *)"u",
			 (char *)"--org", (char *)"o", NULL };
	assert_int_equal(h_run(argv, NULL, NULL, NULL, 20000), 0);
}

FLUSH_FIX bool upload_under_way(void *arg)
{
	return platform_head(arg) > 0;
}

/* The same seqs posted twice: the mark of two uploaders (no fault here repeats a batch). */
FLUSH_FIX int64_t repeated_batches(struct fx *f)
{
	return h_sql_int(f->plat.db, "SELECT COUNT(*) FROM (SELECT idempotency_key FROM requests WHERE method = 'POST'"
				     " AND idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING COUNT(*) > 1)");
}


#endif
