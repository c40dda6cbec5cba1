/* flushcmd.h — the `flush` command (SPEC §2). */
#ifndef LABSHARE_FLUSHCMD_H
#define LABSHARE_FLUSHCMD_H

struct config;

/* Beside a running daemon: asks its uploader (control.sock), again after a reload, and prints
 * its answer. On its own: uploads itself, one flush per state folder at a time. The exit code
 * (0, 75, 76; 73 when the buffer or a lock can't be opened). */
int flush_command(const struct config *cfg);

#endif
