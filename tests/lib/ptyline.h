/* ptyline.h — a serial line for RTU tests and benchmarks: two pseudo-terminal pairs whose
 * masters a thread joins back to back, so that what the program on one slave writes, the
 * program on the other reads (the simulator on name[0], the agent on name[1]). Both slaves stay
 * open here, so a side closing its device does not hang up the line. */
#ifndef LABSHARE_PTYLINE_H
#define LABSHARE_PTYLINE_H

#include <pthread.h>
#include <stdatomic.h>

struct h_line {
	int m[2], s[2];
	char name[2][64];
	pthread_t thread;
	atomic_bool quit;
	int started;
};

/* 0, or -1 with errno (no pty on this machine: the caller skips RTU). */
int h_line_open(struct h_line *ln);
/* Stops the thread and closes all four ends; safe after a failed open. */
void h_line_close(struct h_line *ln);

#endif
