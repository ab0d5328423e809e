/* Namespaces, the new root, and the drop to the box's uid. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/error.h"

/* Where the new root is assembled, in our own mount namespace only: the
 * mount hides nothing from the host, and the box directory is bound from
 * an fd opened first, so it may live under here too. */
#define STAGING "/tmp"

int fb_jail_unshare(void)
{
	/* Mount and network namespaces belong to threads: this runs while
	 * the process has one, and every thread it starts later inherits
	 * them. No network at all: the VMM speaks Unix sockets by path. */
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
		    CLONE_NEWUTS) < 0)
		return fb_errorf(-errno, "unshare(mount, net, ipc, uts): %s",
				 strerror(errno));
	/* Nothing we mount propagates back to the host, and pivot_root
	 * wants no shared mounts around it. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fb_errorf(-errno, "make / private: %s", strerror(errno));
	return 0;
}

int fb_jail_new_pid_ns(void)
{
	if (unshare(CLONE_NEWPID) < 0)
		return fb_errorf(-errno, "unshare(CLONE_NEWPID): %s",
				 strerror(errno));
	return 0;
}

pid_t fb_jail_host_pid(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
	long pid;

	if (n <= 0)
		return getpid();
	buf[n] = '\0';
	if (sscanf(buf, "%ld", &pid) != 1 || pid <= 0)
		return getpid();
	return (pid_t)pid;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return fb_errorf(-ENAMETOOLONG, "path too long: %s", path);
	for (char *p = buf + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return fb_errorf(-errno, "mkdir %s: %s", buf,
					 strerror(errno));
		*p = c;
		if (!c)
			return 0;
	}
}

/* The new root: a small read-only tmpfs holding the path to the box
 * directory, and the box directory bound at that same path (socket paths
 * and the guest's connections to <boxdir>/vsock.sock_<port> keep working).
 * No /dev, /proc, /sys, no other file of the host. */
int fb_jail_pivot(const char *box_dir)
{
	char inner[PATH_MAX], src[64];
	int box_fd, err = 0;

	if (box_dir[0] != '/')
		return fb_errorf(-EINVAL, "jail: box directory %s is not an "
				 "absolute path", box_dir);
	if (snprintf(inner, sizeof(inner), "%s%s", STAGING, box_dir) >=
	    (int)sizeof(inner))
		return fb_errorf(-ENAMETOOLONG, "jail: path too long");
	box_fd = open(box_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (box_fd < 0)
		return fb_errorf(-errno, "open %s: %s", box_dir,
				 strerror(errno));
	snprintf(src, sizeof(src), "/proc/self/fd/%d", box_fd);
	if (mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=64k,nr_inodes=64,mode=0755") < 0) {
		err = fb_errorf(-errno, "mount tmpfs on %s: %s", STAGING,
				strerror(errno));
		goto out;
	}
	err = mkdir_p(inner);
	if (err < 0)
		goto out;
	if (mount(src, inner, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, inner, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID |
		  MS_NODEV | MS_NOEXEC, NULL) < 0) {
		err = fb_errorf(-errno, "bind %s into the jail: %s", box_dir,
				strerror(errno));
		goto out;
	}
	/* pivot_root(".", "."): the old root ends up stacked on the new
	 * one, and is detached at once. Every thread of ours (they share
	 * the root) moves with us. */
	if (chdir(STAGING) < 0 ||
	    syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		err = fb_errorf(-errno, "pivot_root into the jail: %s",
				strerror(errno));
		goto out;
	}
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		err = fb_errorf(-errno, "remount the jail's root read-only: %s",
				strerror(errno));
out:
	close(box_fd);
	return err;
}

int fb_jail_drop_privileges(uid_t uid, gid_t gid)
{
	/* glibc applies each of these to every thread of the process. A
	 * change of all three uids away from 0 clears every capability
	 * (no SECBIT_KEEP_CAPS), and makes the process non-dumpable: no
	 * ptrace or /proc access from the box's uid. */
	/* The bounding set is per thread: this one's (the others cannot
	 * exec, which is all the bounding set governs). */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	if (setgroups(0, NULL) < 0)
		return fb_errorf(-errno, "setgroups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) < 0)
		return fb_errorf(-errno, "setresgid %u: %s", (unsigned)gid,
				 strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		return fb_errorf(-errno, "setresuid %u: %s", (unsigned)uid,
				 strerror(errno));
	if (setresuid(0, 0, 0) == 0)
		return fb_errorf(-EPERM, "jail: uid 0 still reachable after "
				 "the drop");
	/* seccomp's TSYNC gives it to the other threads. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fb_errorf(-errno, "PR_SET_NO_NEW_PRIVS: %s",
				 strerror(errno));
	return 0;
}
