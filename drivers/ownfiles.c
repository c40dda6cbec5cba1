/* ownfiles.c — the agent's secrets and state files by device and inode, so that no log path,
 * glob match or link makes the log driver read them. */
#include "ownfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct devino {
	uint64_t dev, ino;
};

struct own_files {
	const char *secrets[SOURCE_NEVER_READ_MAX];
	size_t n_secrets;
	const char *state_dir;
	struct devino *deny;
	size_t n_deny, cap_deny;
	uint64_t state_dev;
};

struct own_files *own_files_new(const struct source_conf *sc)
{
	struct own_files *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->n_secrets = sc->n_never_read;
	for (size_t i = 0; i < sc->n_never_read; i++)
		o->secrets[i] = sc->never_read[i];
	o->state_dir = sc->state_dir;
	if (own_files_refresh(o) < 0) {
		own_files_free(o);
		return NULL;
	}
	return o;
}

void own_files_free(struct own_files *o)
{
	if (!o)
		return;
	free(o->deny);
	free(o);
}

static int deny_add(struct own_files *o, const struct stat *st)
{
	struct devino d = { (uint64_t)st->st_dev, (uint64_t)st->st_ino };
	if (o->n_deny == o->cap_deny) {
		size_t c = o->cap_deny ? 2 * o->cap_deny : 16;
		struct devino *v = realloc(o->deny, c * sizeof(*v));
		if (!v)
			return -ENOMEM;
		o->deny = v;
		o->cap_deny = c;
	}
	o->deny[o->n_deny++] = d;
	return 0;
}

/* Every non-folder entry of the folder dfd (and, when deep, of its subfolders) to the list. */
static int deny_dir(struct own_files *o, int dfd, bool deep)
{
	int r = 0;
	int own = dup(dfd); /* closedir closes what it was given */
	DIR *d = own >= 0 ? fdopendir(own) : NULL;
	if (!d) {
		if (own >= 0)
			close(own);
		return 0;
	}
	struct dirent *e;
	struct stat st;
	while (r == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    fstatat(dfd, e->d_name, &st, 0) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			r = deny_add(o, &st);
		} else if (deep) {
			int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub >= 0) {
				r = deny_dir(o, sub, false);
				close(sub);
			}
		}
	}
	closedir(d);
	return r;
}

/* The secrets' inodes and those of every file in the state folder (and one level below), as
 * they are now: SQLite makes -wal and -shm files, status.json is replaced by a rename. */
int own_files_refresh(struct own_files *o)
{
	struct stat st;
	int r = 0;
	o->n_deny = 0;
	for (size_t i = 0; i < o->n_secrets && r == 0; i++)
		if (stat(o->secrets[i], &st) == 0)
			r = deny_add(o, &st);
	int dfd = o->state_dir ? open(o->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0)
		return r;
	if (fstat(dfd, &st) == 0)
		o->state_dev = (uint64_t)st.st_dev;
	if (r == 0)
		r = deny_dir(o, dfd, true);
	close(dfd);
	return r;
}

static bool deny_has(const struct own_files *o, const struct stat *st)
{
	for (size_t i = 0; i < o->n_deny; i++)
		if (o->deny[i].dev == (uint64_t)st->st_dev && o->deny[i].ino == (uint64_t)st->st_ino)
			return true;
	return false;
}

/* A file on the state folder's device that the list doesn't know may have been made since
 * the list was (status.json replaced between two rounds): look again before saying no. */
bool own_files_has(struct own_files *o, const struct stat *st)
{
	if (deny_has(o, st))
		return true;
	if ((uint64_t)st->st_dev != o->state_dev)
		return false;
	if (own_files_refresh(o) < 0)
		return true; /* can't tell: not read this round */
	return deny_has(o, st);
}
