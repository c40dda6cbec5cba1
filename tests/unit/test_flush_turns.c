/* test_flush_turns.c — `flush` never beside a second uploader (SPEC §2), whatever comes between:
 * a reload of the daemon while it waits, or a second `flush` on its own. The built agent, the
 * reference platform over HTTPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_flush_env.h"

static bool log_has(struct fx *f, const char *what, int times)
{
	char *log = h_path(f->dir, "agent.log"), *text = h_read_file(log, NULL);
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
		n++;
	free(text);
	free(log);
	return n >= times;
}

static bool backing_off(void *arg)
{
	return log_has(arg, "platform busy", 1);
}

static bool reloaded_and_asked_again(void *arg)
{
	return log_has(arg, "reload: configuration", 1) && log_has(arg, "flush: requested", 2);
}

/* A flush waiting on the daemon while it reloads (SIGHUP): the reload stops the uploader that
 * took the request; the command asks the new one and gets its real answer, not 75. */
static void test_flush_across_a_reload(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	start_daemon(f);
	char *out = NULL, *err = NULL;
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	free(out);
	free(err);
	/* Something pending, and the platform asking for 4 s: the flush waits that out (within
	 * FLUSH_WAIT_TOTAL_S) — and the reload comes meanwhile. */
	record_beside(f);
	plat_cmd(f, "fault status 503 retry_after=4 count=1");
	char *flush_argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"flush", NULL };
	char *flush_log = h_path(f->dir, "flush.out");
	struct h_proc *fl = h_spawn(flush_argv, NULL, false, false, flush_log);
	assert_true(h_wait_for(backing_off, f, 20000));
	assert_int_equal(h_kill(f->agent, SIGHUP), 0);
	assert_true(h_wait_for(reloaded_and_asked_again, f, 20000));
	int code = h_wait(fl, 20000);
	char *text = h_read_file(flush_log, NULL);
	if (code != 0)
		fail_msg("flush across a reload: exit %d, output \"%s\"", code, text ? text : "");
	assert_non_null(strstr(text, "platform: everything acknowledged"));
	assert_int_equal(platform_head(f), local_head(f));
	assert_int_equal(repeated_batches(f), 0);
	free(text);
	free(flush_log);
	h_proc_free(fl);
}

/* Two flushes on their own (no daemon) take turns: the second waits for the first (SPEC §2:
 * no second uploader runs), then finds everything acknowledged. */
static void test_two_standalone_flushes_take_turns(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 100);
	/* A flush holds the turn: the test holds flush.lock itself, so the overlap is certain. */
	int held = flushctl_lock_standalone(f->state);
	assert_true(held >= 0);
	char *argv[] = { (char *)h_build_path("labshare-agent"), (char *)"-c", f->cfg_path, (char *)"flush", NULL };
	char *log1 = h_path(f->dir, "flush1.out"), *log2 = h_path(f->dir, "flush2.out");
	struct h_proc *p1 = h_spawn(argv, NULL, false, false, log1);
	struct h_proc *p2 = h_spawn(argv, NULL, false, false, log2);
	/* Both wait, and say so; nothing reaches the platform meanwhile. */
	assert_true(h_wait_file(log1, 20000));
	assert_true(h_wait_file(log2, 20000));
	char *t1 = h_read_file(log1, NULL), *t2 = h_read_file(log2, NULL);
	assert_non_null(strstr(t1, "another flush is uploading"));
	assert_non_null(strstr(t2, "another flush is uploading"));
	free(t1);
	free(t2);
	assert_int_equal(h_sql_int(f->plat.db, "SELECT COUNT(*) FROM requests WHERE method = 'POST'"), 0);
	/* Let them go: one uploads, the other waits its turn. */
	close(held);
	assert_int_equal(h_wait(p1, 60000), 0);
	assert_int_equal(h_wait(p2, 60000), 0);
	assert_int_equal(platform_head(f), local_head(f));
	assert_true(platform_head(f) >= 100);
	assert_int_equal(repeated_batches(f), 0);
	h_proc_free(p1);
	h_proc_free(p2);
	free(log1);
	free(log2);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_across_a_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_standalone_flushes_take_turns, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
