/* test_metrics_state.c — each instrument's state is held in memory and written with what it
 * produced: a buffer written by the older JSON form carries on, an undone batch leaves nothing
 * behind in memory, a restart reads the state back, and `record` beside a running core counts
 * repeats that the core does not overwrite. Real SQLite files, a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentfix.h"
#include "buffer.h"
#include "stmt.h"
#include "chain.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define H 3600
/* 2026-11-02T00:00:00+08:00 */
#define D0 1793548800LL
#define DAY 86400
#define T (D0 + 10 * H) /* a slot boundary */

static const char config_fmt[] =
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"UTC\", \"state_dir\": \"@DIR@/state\" },"
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"@DIR@/token\", \"upload_interval_s\": 60 },"
	"  \"buses\": [ { \"id\": \"b\", \"url\": \"tcp://127.0.0.1:1502\" } ],"
	"  \"instruments\": ["
	"    { \"id\": \"RUN\", \"modbus\": { \"bus\": \"b\", \"unit\": 1, \"interval_s\": 600,"
	"        \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"u32\", \"scale\": 0.000277777777777778 },"
	"        \"samples_counter\": { \"table\": \"input\", \"address\": 2, \"type\": \"u16\" } } }"
	"  ] }";

static int setup(void **state)
{
	struct agent_fix *f = agent_fix_new("test_metrics_state", config_fmt, "Asia/Shanghai", D0 + 30 * DAY);
	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	agent_fix_free(*state);
	return 0;
}

static struct obs reading_obs(int64_t at, double run, int samples)
{
	struct obs o = { .type = OBS_READING, .instrument = "RUN" };
	o.u.reading.at_us = at * 1000000;
	o.u.reading.ok = true;
	o.u.reading.run = (struct obs_value){ true, run, 1.0 / 3600, 4294967296.0 };
	o.u.reading.samples = (struct obs_value){ true, samples, 1, 65536 };
	return o;
}

static void reading(struct agent_fix *f, int64_t at, double run, int samples)
{
	struct obs o = reading_obs(at, run, samples);
	assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
}

/* One statement on the writer, in a transaction of its own. */
static void exec_sql(struct agent_fix *f, const char *sql)
{
	struct store_stmt *s = NULL;
	assert_int_equal(buffer_begin(f->buf), 0);
	assert_int_equal(stmt_prepare(f->buf, sql, &s), 0);
	int rc = stmt_step(s);
	if (rc != STMT_DONE)
		fail_msg("%s: %d", sql, rc);
	stmt_free(s);
	assert_int_equal(buffer_commit(f->buf), 0);
}

static char *state_type(struct agent_fix *f, const char *key)
{
	struct store_stmt *s = NULL; /* committed rows, on a reader */
	assert_int_equal(stmt_read(f->buf, "SELECT typeof(state), state FROM mx_state WHERE instrument = ?1",
				   &s), 0);
	stmt_bind_text(s, 1, key);
	char *t = NULL;
	if (stmt_step(s) == STMT_ROW)
		t = h_strdupf("%s:%s", stmt_text(s, 0), strcmp(stmt_text(s, 0), "blob") == 0 ? "" : stmt_text(s, 1));
	stmt_done(s);
	return t;
}

/* The run records sealed, as "from-to:run_s/samples" lines. */
static char *runs(struct agent_fix *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	char *out = h_strdupf("%s", "");
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) < 0)
			continue;
		cJSON *o = cJSON_Parse(r.line);
		if (strcmp(r.kind, "run") == 0) {
			char *n = h_strdupf("%s%s-%s:%g/%g\n", out, cJSON_GetObjectItem(o, "from")->valuestring,
					    cJSON_GetObjectItem(o, "to")->valuestring,
					    cJSON_GetObjectItem(o, "run_s")->valuedouble,
					    cJSON_GetObjectItem(o, "samples")->valuedouble);
			free(out);
			out = n;
		}
		cJSON_Delete(o);
		buffer_record_clear(&r);
	}
	return out;
}

static void reopen(struct agent_fix *f)
{
	core_free(f->core);
	buffer_close(f->buf);
	f->core = NULL;
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	assert_non_null(f->core = core_new(f->cfg, f->buf));
}

/* A buffer written before the state was kept in memory: mx_state holds JSON text, as
 * metrics.c printed it (cJSON_PrintUnformatted of these keys). The counter carries on from it
 * (no new baseline), the carried fraction and the repeats are kept, and the row becomes the
 * compact form at the first save. */
static void test_old_json_state_carries_on(void **state)
{
	struct agent_fix *f = *state;
	/* The file as an older agent left it, written while nothing has used the state yet. */
	char *sql = h_strdupf(
		"INSERT INTO mx_state(instrument, state) VALUES('RUN', '{\"run\":{\"have\":true,\"last\":1000,"
		"\"last_us\":%lld,\"pending\":false,\"pend\":0,\"pend_us\":0},\"smp\":{\"have\":true,\"last\":5,"
		"\"last_us\":%lld,\"pending\":false,\"pend\":0,\"pend_us\":0},\"iu_known\":false,\"iu\":false,"
		"\"iu_us\":0,\"poll_us\":%lld,\"poll_ok\":true,\"cov\":%lld,\"run_carry\":0.75,\"smp_carry\":0,"
		"\"repeats\":3}')", (long long)T * 1000000, (long long)T * 1000000, (long long)T * 1000000,
		(long long)T);
	exec_sql(f, sql);
	free(sql);
	reopen(f); /* a daemon started on it */
	assert_int_equal(core_sessions_repeated(f->core, "RUN"), 3);
	assert_true(metrics_run_hours_total(core_metrics(f->core), "RUN") > 1000.0 / 3600 - 1e-9);

	/* 900 s more run time and 2 samples over the slot [T, T + 900). */
	reading(f, T + 900, 1900, 7);
	char *t = state_type(f, "RUN");
	assert_string_equal(t, "blob:");
	free(t);
	t = state_type(f, "RUN/repeats");
	assert_string_equal(t, "text:3");
	free(t);
	assert_int_equal(core_sessions_repeated(f->core, "RUN"), 3);

	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1000), 1);
	char *r = runs(f);
	/* 900 + the 0.75 carried: 900 sealed, 0.75 carried on. */
	assert_string_equal(r, "2026-11-02T10:00:00+08:00-2026-11-02T10:15:00+08:00:900/2\n");
	free(r);

	/* And after a restart, from the compact form: 900.5 more, + 0.75 = 901 and 0.25 over. */
	reopen(f);
	assert_int_equal(core_sessions_repeated(f->core, "RUN"), 3);
	reading(f, T + 1800, 2800.5, 8);
	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1900), 1);
	r = runs(f);
	assert_string_equal(r, "2026-11-02T10:00:00+08:00-2026-11-02T10:15:00+08:00:900/2\n"
			       "2026-11-02T10:15:00+08:00-2026-11-02T10:30:00+08:00:901/1\n");
	free(r);
	assert_true(metrics_run_hours_total(core_metrics(f->core), "RUN") > 2800.5 / 3600 - 1e-9);
}

/* A batch that fails is rolled back whole, and what it did to the state in memory with it:
 * the same reading submitted again counts as if the failed batch never happened. */
static void test_undone_batch_leaves_no_state(void **state)
{
	struct agent_fix *f = *state;
	reading(f, T, 0, 0);
	struct obs v[2] = { reading_obs(T + 900, 900, 4), { .type = OBS_EVENT, .instrument = "RUN" } };
	v[1].u.event = (struct obs_event){ .at = T, .type = "no_such_event" };
	assert_int_equal(core_submit(f->core, v, 2, NULL, NULL, 0), -EINVAL);
	/* Had memory kept T + 900 as the last poll, this one would be dropped as from the past. */
	reading(f, T + 900, 900, 4);
	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1000), 1);
	char *r = runs(f);
	assert_string_equal(r, "2026-11-02T10:00:00+08:00-2026-11-02T10:15:00+08:00:900/4\n");
	free(r);
}

/* `labshare-agent record` beside a running daemon: its repeats are counted in their own row,
 * which the daemon's next save of the state does not overwrite. */
static void test_repeats_beside_a_running_core(void **state)
{
	struct agent_fix *f = *state;
	reading(f, T, 0, 0);
	struct core *other = core_new(f->cfg, f->buf);
	assert_non_null(other);
	struct obs s = { .type = OBS_SESSION, .instrument = "RUN" };
	s.u.session = (struct obs_session){ .start = T - H, .end = T, .user = "a", .org = "X", .external = -1,
					    .samples = -1 };
	assert_int_equal(core_submit(other, &s, 1, NULL, NULL, 0), 0);
	assert_int_equal(core_submit(other, &s, 1, NULL, NULL, 0), 0);
	assert_int_equal(core_sessions_repeated(other, "RUN"), 1);
	core_free(other);
	reading(f, T + 600, 600, 1);
	assert_int_equal(core_sessions_repeated(f->core, "RUN"), 1);
}

static struct obs failed_obs(int64_t at)
{
	struct obs o = { .type = OBS_READING, .instrument = "RUN" };
	o.u.reading.at_us = at * 1000000;
	o.u.reading.ok = false;
	return o;
}

/* The open slot's figures as they stand: run seconds counted (sealed or not) and the day's
 * offline seconds. */
static void open_figures(struct agent_fix *f, double *run, int64_t *offline)
{
	*run = metrics_run_counted(core_metrics(f->core), "RUN");
	struct daily_figures d;
	assert_int_equal(buffer_begin(f->buf), 0); /* metrics reads on the writer, in a transaction */
	assert_int_equal(metrics_day(core_metrics(f->core), "RUN", time_day_start(T), &d), 0);
	buffer_rollback(f->buf);
	*offline = d.offline_s;
}

/* The open slot's amounts are held in memory between readings and saved with the state in
 * each batch's transaction: a process killed between batches (no clean stop, nothing sealed
 * at exit) leaves the counter's last value and the open slot's run, samples and offline time
 * exactly as committed, and the slot seals whole afterwards. */
static void test_killed_between_batches_keeps_open_slot(void **state)
{
	struct agent_fix *f = *state;
	reading(f, T, 0, 0);
	/* The writer in a child process: this one lets go of the file first. */
	core_free(f->core);
	buffer_close(f->buf);
	f->core = NULL;
	f->buf = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct buffer *b = NULL;
		if (buffer_open(f->cfg->agent.state_dir, 0, &b, NULL) < 0)
			_exit(2);
		struct core *c = core_new(f->cfg, b);
		if (!c)
			_exit(3);
		/* Three batches in the slot [T, T + 900): 300 s run and 3 samples, a failed poll
		 * (offline: half of each interval next to it), then 300 s more and 2 samples. */
		struct obs b1[1] = { reading_obs(T + 300, 300, 3) };
		struct obs b2[1] = { failed_obs(T + 450) };
		struct obs b3[1] = { reading_obs(T + 600, 600, 5) };
		if (core_submit(c, b1, 1, NULL, NULL, 0) < 0 || core_submit(c, b2, 1, NULL, NULL, 0) < 0 ||
		    core_submit(c, b3, 1, NULL, NULL, 0) < 0)
			_exit(4);
		kill(getpid(), SIGKILL); /* between batches, no clean stop */
		_exit(5);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	assert_non_null(f->core = core_new(f->cfg, f->buf));
	double run;
	int64_t offline;
	open_figures(f, &run, &offline);
	assert_true(run == 600.0);
	assert_int_equal(offline, 150); /* 75 s on each side of the failed poll */
	double hours = metrics_run_hours_total(core_metrics(f->core), "RUN"); /* the config's scale */
	assert_true(hours > 600.0 / 3600 - 1e-9 && hours < 600.0 / 3600 + 1e-9);
	char *r = runs(f);
	assert_string_equal(r, ""); /* nothing sealed at the kill */
	free(r);

	/* The counter carries on from 600: 300 s more to the slot's end, 1 sample. */
	reading(f, T + 900, 900, 6);
	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1000), 1);
	r = runs(f);
	assert_string_equal(r, "2026-11-02T10:00:00+08:00-2026-11-02T10:15:00+08:00:900/6\n");
	free(r);
	open_figures(f, &run, &offline);
	assert_true(run == 900.0);
	assert_int_equal(offline, 150);
}

/* Reopened without a clean stop while amounts of two slots were written in one batch (the
 * older slot's go to its row, the newer's are held): the sums of both come back. */
static void test_reopen_unclean_keeps_both_slots(void **state)
{
	struct agent_fix *f = *state;
	reading(f, T, 0, 0);
	reading(f, T + 600, 600, 2);
	/* One batch across the boundary: 600 s and 2 samples over [T + 600, T + 1200), half of each
	 * in each slot. */
	struct obs v[2] = { reading_obs(T + 1200, 1200, 4), reading_obs(T + 1500, 1500, 5) };
	assert_int_equal(core_submit(f->core, v, 2, NULL, NULL, 0), 0);
	double before;
	int64_t offline;
	open_figures(f, &before, &offline);
	assert_true(before == 1500.0);
	reopen(f); /* no core_stop: nothing of the open slot was sealed */
	double after;
	open_figures(f, &after, &offline);
	assert_true(after == before);
	reading(f, T + 1800, 1800, 6);
	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1900), 2);
	char *r = runs(f);
	assert_string_equal(r, "2026-11-02T10:00:00+08:00-2026-11-02T10:15:00+08:00:900/3\n"
			       "2026-11-02T10:15:00+08:00-2026-11-02T10:30:00+08:00:900/3\n");
	free(r);
}

/* The dates of the daily records sealed, one a line. */
static char *dailies(struct agent_fix *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	char *out = h_strdupf("%s", "");
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) < 0)
			continue;
		if (strcmp(r.kind, "daily") == 0) {
			cJSON *o = cJSON_Parse(r.line);
			char *n = h_strdupf("%s%s\n", out, cJSON_GetObjectItem(o, "date")->valuestring);
			free(out);
			out = n;
			cJSON_Delete(o);
		}
		buffer_record_clear(&r);
	}
	return out;
}

/* The core keeps what a tick needs of the days in memory (the first observation while no
 * daily record is out, days to revise); another process writing the file (`record` beside the
 * daemon, its own connection) makes it read them again: a session recorded for two days
 * before the first reading gets its daily records. */
static void test_days_read_again_after_another_writer(void **state)
{
	struct agent_fix *f = *state;
	reading(f, T, 0, 0);
	assert_int_equal(metrics_tick(core_metrics(f->core), T + 1000), 0); /* first observation: T */
	struct buffer *ob = NULL;
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &ob, NULL), 0);
	struct core *other = core_new(f->cfg, ob);
	assert_non_null(other);
	struct obs s = { .type = OBS_SESSION, .instrument = "RUN" };
	s.u.session = (struct obs_session){ .start = D0 - 2 * DAY + H, .end = D0 - 2 * DAY + 3 * H, .user = "a",
					    .org = "X", .external = -1, .samples = -1 };
	assert_int_equal(core_submit(other, &s, 1, NULL, NULL, 0), 0);
	core_free(other);
	buffer_close(ob);
	/* Both days before the reading's are long closed: sealed at the next tick. */
	assert_true(metrics_tick(core_metrics(f->core), T + 1100) >= 2);
	char *d = dailies(f);
	assert_string_equal(d, "2026-10-31\n2026-11-01\n");
	free(d);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_old_json_state_carries_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undone_batch_leaves_no_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeats_beside_a_running_core, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_between_batches_keeps_open_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_unclean_keeps_both_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_days_read_again_after_another_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
