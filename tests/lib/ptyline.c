/* ptyline.c — see ptyline.h. */
#include "ptyline.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdbool.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static void *line_main(void *arg)
{
	struct h_line *ln = arg;
	char buf[4096];
	while (!atomic_load(&ln->quit)) {
		struct pollfd pfd[2] = { { ln->m[0], POLLIN, 0 }, { ln->m[1], POLLIN, 0 } };
		if (poll(pfd, 2, 50) <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			if (!(pfd[k].revents & POLLIN))
				continue;
			ssize_t n = read(ln->m[k], buf, sizeof(buf));
			for (ssize_t off = 0; n > 0 && off < n;) {
				ssize_t w = write(ln->m[1 - k], buf + off, (size_t)(n - off));
				if (w < 0 && errno != EINTR && errno != EAGAIN)
					break;
				off += w > 0 ? w : 0;
			}
		}
	}
	return NULL;
}

int h_line_open(struct h_line *ln)
{
	memset(ln, 0, sizeof(*ln));
	ln->m[0] = ln->m[1] = ln->s[0] = ln->s[1] = -1;
	for (int k = 0; k < 2; k++) {
		struct termios t;
		memset(&t, 0, sizeof(t));
		cfmakeraw(&t);
		if (openpty(&ln->m[k], &ln->s[k], ln->name[k], &t, NULL) < 0)
			return -1;
		fcntl(ln->m[k], F_SETFD, FD_CLOEXEC);
		fcntl(ln->s[k], F_SETFD, FD_CLOEXEC);
	}
	if (pthread_create(&ln->thread, NULL, line_main, ln) != 0)
		return -1;
	ln->started = 1;
	return 0;
}

void h_line_close(struct h_line *ln)
{
	if (ln->started) {
		atomic_store(&ln->quit, true);
		pthread_join(ln->thread, NULL);
		ln->started = 0;
	}
	for (int k = 0; k < 2; k++) {
		if (ln->m[k] >= 0)
			close(ln->m[k]);
		if (ln->s[k] >= 0)
			close(ln->s[k]);
		ln->m[k] = ln->s[k] = -1;
	}
}
