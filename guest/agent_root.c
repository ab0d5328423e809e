/* Switching PID 1 into the box's root disk (guest only).
 *
 * The initramfs holds PID 1, its modules and busybox; a box made from an
 * image runs everything else from its own ext4 disk. After the modules are
 * loaded (virtio_blk is one), PID 1 mounts the disk, moves the kernel's
 * filesystems and the /tmp tmpfs over, and makes the disk "/", as
 * switch_root does. The initramfs stays in memory under it: it is small,
 * and nothing that runs later can reach it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define NEW_ROOT "/newroot"

static const char *const moved[] = { "/dev", "/proc", "/sys", "/tmp", "/run" };

static int move_onto_new_root(const char *from)
{
	char to[64];

	snprintf(to, sizeof(to), NEW_ROOT "%s", from);
	/* The image may lack the directory; /tmp must stay world-writable. */
	if (mkdir(to, strcmp(from, "/tmp") ? 0755 : 01777) < 0 &&
	    errno != EEXIST) {
		fbg_log("mkdir %s: %s", to, strerror(errno));
		return -1;
	}
	if (mount(from, to, NULL, MS_MOVE, NULL) < 0) {
		fbg_log("move %s to %s: %s", from, to, strerror(errno));
		return -1;
	}
	return 0;
}

int fbg_switch_root(const char *dev)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/%s", dev);
	if (mkdir(NEW_ROOT, 0755) < 0 && errno != EEXIST) {
		fbg_log("mkdir " NEW_ROOT ": %s", strerror(errno));
		return -1;
	}
	/* noinit_itable: mkfs -d leaves inode tables for the kernel to zero
	 * in the background, which would copy megabytes into the box's own
	 * layer for nothing (they are zero in the sparse image already). */
	if (mount(path, NEW_ROOT, "ext4", MS_NOATIME, "noinit_itable") < 0) {
		fbg_log("mount %s (ext4) on " NEW_ROOT ": %s", path,
			strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++)
		if (move_onto_new_root(moved[i]) < 0)
			return -1;
	if (chdir(NEW_ROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0) {
		fbg_log("switch root to %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
