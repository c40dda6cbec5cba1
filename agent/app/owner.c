/* owner.c — see owner.h. */
#include "owner.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

int owner_become_state_user(const char *state_dir)
{
	if (geteuid() != 0 || !state_dir)
		return 0;
	struct stat st;
	if (stat(state_dir, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (st.st_uid == 0)
		return 0;
	/* The owner's own groups (the service's user reads its config through its group), or
	 * the folder's group alone for a uid without a passwd entry. */
	struct passwd *pw = getpwuid(st.st_uid);
	gid_t gid = pw ? pw->pw_gid : st.st_gid;
	int r = pw ? initgroups(pw->pw_name, gid) : setgroups(1, &gid);
	if (r < 0 || setgid(gid) < 0 || setuid(st.st_uid) < 0)
		return -errno;
	/* setuid from root drops every id; make sure nothing can be regained. */
	if (setuid(0) == 0)
		return -EPERM;
	return 0;
}
