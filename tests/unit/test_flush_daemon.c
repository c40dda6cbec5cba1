/* test_flush_daemon.c — `flush` beside a running daemon (SPEC §2): the daemon's own uploader does
 * the work (no second uploader, so the platform never sees the same batch from two), with the
 * same exit codes as a flush on its own. The built agent, the reference platform over HTTPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_flush_env.h"

static void test_flush_asks_the_daemon(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 2000);
	plat_cmd(f, "fault slow 50 count=0");
	start_daemon(f);
	/* The daemon is in the middle of its backlog when flush comes. */
	assert_true(h_wait_for(upload_under_way, f, 20000));
	char *out = NULL, *err = NULL;
	int code = agent(f, "flush", &out, &err);
	if (code != 0)
		fail_msg("flush: exit %d, stdout \"%s\", stderr \"%s\"", code, out ? out : "", err ? err : "");
	assert_non_null(strstr(out, "platform: everything acknowledged"));
	/* Acknowledged to the end when it returned: the platform holds everything sealed. */
	assert_int_equal(platform_head(f), local_head(f));
	assert_true(platform_head(f) > 2000);
	assert_int_equal(repeated_batches(f), 0);
	free(out);
	free(err);
	char *log = h_path(f->dir, "agent.log"), *text = h_read_file(log, NULL);
	assert_non_null(strstr(text, "flush: requested"));
	free(text);
	free(log);
}

static void test_flush_codes_through_the_daemon(void **state)
{
	struct fx *f = *state;
	seal_sessions(f, 10);
	start_daemon(f);
	char *out = NULL, *err = NULL;
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	free(out);
	free(err);

	/* A manual record beside the daemon, the platform unreachable: 75, nothing lost. The
	 * platform drops every connection rather than stopping: it keeps its port, which a
	 * platform restarted later could find taken on a busy machine. */
	plat_cmd(f, "fault drop_before count=0");
	record_beside(f);
	int64_t rec = local_head(f);
	int64_t t0 = clock_mono_ms();
	int code = agent(f, "flush", &out, &err);
	if (code != EX_TEMPFAIL)
		fail_msg("flush, platform down: exit %d, stderr \"%s\"", code, err ? err : "");
	assert_non_null(strstr(err, "cannot reach"));
	/* Within the bound README states: the back-offs a flush waits out are capped in all. */
	assert_true(clock_mono_ms() - t0 < (FLUSH_WAIT_TOTAL_S + 3) * 1000);
	free(out);
	free(err);

	/* Back, but refusing that record: 76, and the reason. */
	plat_cmd(f, "clear");
	char *cmd = h_strdupf("fault reject %lld error=bad-record", (long long)rec);
	plat_cmd(f, cmd);
	free(cmd);
	code = agent(f, "flush", &out, &err);
	if (code != EX_PROTOCOL)
		fail_msg("flush, record refused: exit %d, stderr \"%s\"", code, err ? err : "");
	assert_non_null(strstr(err, "bad-record"));
	free(out);
	free(err);

	/* Fixed on the platform's side: done. */
	plat_cmd(f, "clear");
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	assert_int_equal(platform_head(f), local_head(f));
	free(out);
	free(err);

	/* No daemon: flush uploads on its own, as it always did (the stop sealed an event). */
	assert_int_equal(h_kill(f->agent, SIGTERM), 0);
	assert_int_equal(h_wait(f->agent, 20000), 0);
	h_proc_free(f->agent);
	f->agent = NULL;
	assert_true(local_head(f) > platform_head(f));
	assert_int_equal(agent(f, "flush", &out, &err), 0);
	assert_int_equal(platform_head(f), local_head(f));
	free(out);
	free(err);
}

int main(void)
{
	log_set_level(LOG_PRI_ERR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_asks_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_codes_through_the_daemon, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
