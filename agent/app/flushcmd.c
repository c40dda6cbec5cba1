/* flushcmd.c — see flushcmd.h. Never a second uploader: beside a daemon only its own uploader
 * sends, and two flushes on their own take turns (flush.lock). */
#include "flushcmd.h"
#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "daemon.h"
#include "flushctl.h"
#include "log.h"
#include "submit.h"
#include "uploader.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define RECONNECT_POLL_US 50000

/* SPEC §5: a damaged file moved aside at open is logged (buffer_open) and sealed, as the
 * daemon does, as the first record of the fresh chain. */
static void seal_moved(const struct config *cfg, struct buffer *b, const char *moved)
{
	if (!moved)
		return;
	char detail[PATH_MAX + 64];
	snprintf(detail, sizeof(detail), "buffer was damaged; moved aside to %s, new chain started", moved);
	struct core *core = core_new(cfg, b);
	if (!core || core_event(core, NULL, "agent_start", detail) < 0)
		log_errx("flush: cannot seal that the buffer was moved aside to \"%s\"", moved);
	core_free(core);
}

static int flush_alone(const struct config *cfg, int lock)
{
	const char *dir = cfg->agent.state_dir;
	struct buffer *b = NULL;
	char *moved = NULL;
	/* quick_check (SPEC §5) runs beside the first batches instead of before them. A damaged
	 * record cannot pass meanwhile: the platform's ack must carry this agent's hash of it, and
	 * a page that cannot be read is not sent. Once the check fails nothing more is sent, and
	 * the file is opened again the ordinary way: checked, moved aside, a fresh one started. */
	int r = buffer_open(dir, BUFFER_CHECK_LATER, &b, &moved);
	if (r == 0 && lock == -ENOENT)
		lock = daemon_hold_lock_shared(dir); /* the folder is new */
	int turn = r == 0 && lock >= 0 ? flushctl_lock_standalone(dir) : -1;
	if (r < 0 || lock < 0 || turn < 0) {
		cli_error("flush: cannot open %s in \"%s\": %s",
			  r < 0 ? "the buffer" : lock < 0 ? "the lock" : "the flush lock", dir,
			  strerror(r < 0 ? -r : lock < 0 ? -lock : -turn));
		if (b)
			buffer_check_wait(b);
		buffer_close(b);
		free(moved);
		if (lock >= 0)
			close(lock);
		return lock == -EWOULDBLOCK ? EX_TEMPFAIL : EX_CANTCREAT;
	}
	seal_moved(cfg, b, moved);
	free(moved);
	moved = NULL;
	buffer_check_start(b);
	int code = uploader_flush(cfg, b, stdout);
	if (buffer_check_wait(b) < 0) {
		buffer_close(b);
		b = NULL;
		r = buffer_open(dir, 0, &b, &moved);
		if (r < 0) {
			cli_error("flush: cannot open the buffer in \"%s\" again: %s", dir, strerror(-r));
			code = EX_CANTCREAT;
		} else {
			seal_moved(cfg, b, moved);
			code = uploader_flush(cfg, b, stdout);
		}
		free(moved);
	}
	buffer_close(b);
	close(turn);
	close(lock);
	return code;
}

int flush_command(const struct config *cfg)
{
	const char *dir = cfg->agent.state_dir;
	int64_t deadline = clock_mono_us() + (int64_t)FLUSH_RECONNECT_S * 1000000;
	/* Beside a daemon its uploader does the work: a second one could send records twice.
	 * Without one, the lock is held shared so that none starts meanwhile. A daemon that is
	 * reloading answers "again" and serves once more a moment later; one that stopped lets
	 * go of its lock, and then this flush uploads itself. */
	int lock;
	while ((lock = daemon_hold_lock_shared(dir)) == -EWOULDBLOCK) {
		int code = flushctl_request(dir, stdout);
		if (code != FLUSHCTL_AGAIN)
			return code;
		if (clock_mono_us() >= deadline) {
			cli_error("flush: a daemon runs on \"%s\" but does not take requests on \"%s/%s\" (for %d s); "
				  "it uploads on its own, or restart it to flush",
				  dir, dir, CONTROL_SOCKET, FLUSH_RECONNECT_S);
			return EX_TEMPFAIL;
		}
		clock_sleep_until(clock_mono_us() + RECONNECT_POLL_US);
	}
	return flush_alone(cfg, lock);
}
