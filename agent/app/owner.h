/* owner.h — a command run as root acts on the state folder as the user who owns it (the
 * service's user), so that the files SQLite creates beside the buffer (-wal, -shm), a report
 * or a repaired buffer never end up owned by root where the daemon cannot open them. */
#ifndef LABSHARE_OWNER_H
#define LABSHARE_OWNER_H

/* When the effective user is root and state_dir exists owned by another user, switch the whole
 * process to that user (its groups, its gid, its uid; no way back). 0 when nothing was to be
 * done or the switch is complete, -errno when it failed (then nothing may be written). A
 * missing state_dir is left to the command (it is created as whoever runs it). */
int owner_become_state_user(const char *state_dir);

#endif
