/* fileio.c — see fileio.h. */
#include "fileio.h"
#include "dynbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

char *fileio_read_all(int fd, size_t max, size_t *len)
{
	struct dbuf b;
	dbuf_init(&b, max < DBUF_NO_MAX ? max + 1 : DBUF_NO_MAX); /* max bytes and the NUL */
	char chunk[16384];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r == 0)
			return dbuf_take(&b, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			dbuf_free(&b);
			errno = err;
			return NULL;
		}
		int e = dbuf_add(&b, chunk, (size_t)r);
		if (e < 0) {
			errno = e == -E2BIG ? EFBIG : ENOMEM;
			return NULL;
		}
	}
}

int fileio_lock(const char *dir, const char *name, int op)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r;
	do
		r = flock(fd, op);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
		close(fd);
		return e;
	}
	return fd;
}
