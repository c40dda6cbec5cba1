/* fileio.c — see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

char *fileio_read_all(int fd, size_t max, size_t *len)
{
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap);
	while (buf && n <= max) {
		if (n == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r == 0) {
			*len = n;
			return buf;
		}
		if (r < 0 && errno != EINTR) {
			int err = errno;
			free(buf);
			errno = err;
			return NULL;
		}
		n += r > 0 ? (size_t)r : 0;
	}
	errno = buf && n > max ? EFBIG : ENOMEM;
	free(buf);
	return NULL;
}
