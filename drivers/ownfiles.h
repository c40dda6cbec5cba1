/* ownfiles.h — the agent's own files, which no log source may read whatever name or link leads
 * to them: its secrets (token, user-id key, TLS client key) and everything in its state folder
 * (buffer.db and its -wal/-shm, agent.lock, status.json, metrics.prom). Known by device and
 * inode, so a symbolic or hard link, or a path through a bind mount, is recognised too. */
#ifndef LABSHARE_OWNFILES_H
#define LABSHARE_OWNFILES_H

#include <stdbool.h>
#include <sys/stat.h>

#include "source_conf.h"

struct own_files;

/* Paths are borrowed from sc, which must outlive the list. NULL when out of memory. */
struct own_files *own_files_new(const struct source_conf *sc);
void own_files_free(struct own_files *o);

/* Look at the files again (a poll round does, once): SQLite makes its -wal and -shm files,
 * status.json is replaced by a rename. 0 or -ENOMEM. */
int own_files_refresh(struct own_files *o);

/* Whether st (fstat of an opened file) is one of them. A file on the state folder's device
 * that the list doesn't know may have been made since it was made: looked at again first. */
bool own_files_has(struct own_files *o, const struct stat *st);

#endif
