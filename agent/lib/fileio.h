/* fileio.h — small file helpers shared by the command line, the config loader and status. */
#ifndef LABSHARE_FILEIO_H
#define LABSHARE_FILEIO_H

#include <stddef.h>

/* The whole of fd up to its end, at most max bytes (NUL-terminated after them); NULL with errno
 * set (EFBIG when larger, ENOMEM). Reads any kind of file that reads (a pipe from `<(…)` too).
 * Caller frees. */
char *fileio_read_all(int fd, size_t max, size_t *len);

/* dir/name opened and flock(2)ed with op (LOCK_SH or LOCK_EX, | LOCK_NB not to wait): opened
 * read-only when it exists (flock needs no more, so an operator can lock a file root made),
 * created 0644 when it does not. The fd (close it to let go), or -errno: -EWOULDBLOCK when
 * held, -ENAMETOOLONG. */
int fileio_lock(const char *dir, const char *name, int op);

#endif
