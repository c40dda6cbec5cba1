/* fileio.h — small file helpers shared by the command line, the config loader and status. */
#ifndef LABSHARE_FILEIO_H
#define LABSHARE_FILEIO_H

#include <stddef.h>

/* The whole of fd up to its end, at most max bytes; NULL with errno set (EFBIG when
 * larger, ENOMEM). Reads any kind of file that reads (a pipe from `<(…)` too). Caller frees. */
char *fileio_read_all(int fd, size_t max, size_t *len);

#endif
