/* flushctl.c — see flushctl.h. One line each way: the command sends "flush", the daemon answers
 * with "ok …"/"err …" lines once its uploader is done, then "exit N" — or "again" when that
 * uploader stopped first (a reload), and the command asks the next one. */
#include "flushctl.h"
#include "fileio.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 5000
#define LINE_MAX_ 2048

struct flushctl {
	int listen_fd;
	int wake[2];                /* written to stop the thread */
	pthread_t thread;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	flushctl_handler handler;
	void *arg;
};

static int socket_path(const char *state_dir, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", state_dir, CONTROL_SOCKET);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* The request: one line "flush" within a few seconds. */
static bool read_request(int fd)
{
	char buf[64];
	size_t n = 0;
	while (n < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, REQUEST_TIMEOUT_MS) <= 0)
			return false;
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		n += (size_t)r;
		buf[n] = '\0';
		char *nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			return strcmp(buf, "flush") == 0;
		}
	}
	return false;
}

static void serve_one(struct flushctl *fc, int fd)
{
	int wfd = dup(fd);
	FILE *out = wfd >= 0 ? fdopen(wfd, "w") : NULL;
	if (!out) {
		if (wfd >= 0)
			close(wfd);
		return;
	}
	if (!read_request(fd)) {
		fputs("err the request must be one line \"flush\"\nexit 64\n", out);
	} else {
		log_info("flush: requested on \"%s\"", fc->path);
		int code = fc->handler(fc->arg, out);
		if (code == FLUSHCTL_AGAIN)
			fputs("again\n", out);
		else
			fprintf(out, "exit %d\n", code);
	}
	fclose(out); /* a command that went away meanwhile costs nothing: SIGPIPE is ignored */
}

static void *serve(void *arg)
{
	struct flushctl *fc = arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = fc->listen_fd, .events = POLLIN }, { .fd = fc->wake[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("flush: control socket");
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(fc->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(fc, fd);
		close(fd);
	}
	return NULL;
}

struct flushctl *flushctl_start(const char *state_dir, flushctl_handler handler, void *arg)
{
	struct flushctl *fc = calloc(1, sizeof(*fc));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!fc)
		return NULL;
	fc->listen_fd = fc->wake[0] = fc->wake[1] = -1;
	fc->handler = handler;
	fc->arg = arg;
	if (socket_path(state_dir, fc->path, sizeof(fc->path)) < 0) {
		log_errx("flush: \"%s/%s\": path too long for a socket: `flush` beside the daemon will fail",
			 state_dir, CONTROL_SOCKET);
		goto fail;
	}
	memcpy(sa.sun_path, fc->path, sizeof(sa.sun_path));
	/* Left over from a daemon that died: ours now, we hold the lock. */
	unlink(fc->path);
	fc->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fc->listen_fd < 0 || bind(fc->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(fc->path, 0660) < 0 || listen(fc->listen_fd, 8) < 0 || pipe2(fc->wake, O_CLOEXEC) < 0) {
		log_err("flush: cannot serve \"%s\": `flush` beside the daemon will fail", fc->path);
		goto fail;
	}
	if (pthread_create(&fc->thread, NULL, serve, fc) != 0) {
		log_errx("flush: cannot start the control thread");
		goto fail;
	}
	return fc;
fail:
	if (fc->listen_fd >= 0) {
		close(fc->listen_fd);
		unlink(fc->path);
	}
	if (fc->wake[0] >= 0) {
		close(fc->wake[0]);
		close(fc->wake[1]);
	}
	free(fc);
	return NULL;
}

void flushctl_stop(struct flushctl *fc)
{
	if (!fc)
		return;
	ssize_t w;
	do
		w = write(fc->wake[1], "x", 1);
	while (w < 0 && errno == EINTR);
	pthread_join(fc->thread, NULL);
	close(fc->listen_fd);
	unlink(fc->path);
	close(fc->wake[0]);
	close(fc->wake[1]);
	free(fc);
}

int flushctl_request(const char *state_dir, FILE *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[sizeof(sa.sun_path)];
	if (socket_path(state_dir, path, sizeof(path)) < 0) {
		cli_error("flush: \"%s/%s\": path too long for a socket", state_dir, CONTROL_SOCKET);
		return EX_TEMPFAIL;
	}
	memcpy(sa.sun_path, path, sizeof(sa.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return EX_OSERR;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* Not serving (yet, or between the two halves of a reload): the caller asks again.
		 * Never upload beside it: a second uploader is what this avoids. */
		close(fd);
		return FLUSHCTL_AGAIN;
	}
	FILE *in = fdopen(fd, "r+");
	if (!in) {
		close(fd);
		return EX_OSERR;
	}
	fputs("flush\n", in);
	fflush(in);
	int code = -2;
	char line[LINE_MAX_];
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "ok ", 3) == 0) {
			fprintf(out, "%s\n", line + 3);
		} else if (strncmp(line, "err ", 4) == 0) {
			cli_error("flush: %s", line + 4);
		} else if (strcmp(line, "again") == 0) {
			code = FLUSHCTL_AGAIN;
			break;
		} else if (strncmp(line, "exit ", 5) == 0) {
			char *end;
			long v = strtol(line + 5, &end, 10);
			if (end != line + 5 && *end == '\0' && v >= 0 && v <= 255)
				code = (int)v;
			break;
		}
	}
	fclose(in);
	if (code == -2) {
		cli_error("flush: the daemon stopped before it answered; it uploads again once it runs");
		return EX_TEMPFAIL;
	}
	return code;
}

bool flush_may_wait(int64_t *waited, int64_t t)
{
	if (t < 1)
		t = 1; /* each try waits a second at least: a flush never spins on the platform */
	if (*waited + t > FLUSH_WAIT_TOTAL_S)
		return false;
	*waited += t;
	return true;
}

int flushctl_lock_standalone(const char *state_dir)
{
	int fd = fileio_lock(state_dir, FLUSH_LOCK, LOCK_EX | LOCK_NB);
	if (fd != -EWOULDBLOCK)
		return fd;
	cli_error("flush: another flush is uploading from \"%s\"; waiting for it to end", state_dir);
	return fileio_lock(state_dir, FLUSH_LOCK, LOCK_EX);
}
