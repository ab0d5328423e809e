#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forkbox/forkbox.h"
#include "util/error.h"

static int join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s%s", a, b);

	if (n < 0 || (size_t)n >= len)
		return fb_errorf(-ENAMETOOLONG, "path too long: %s%s", a, b);
	return 0;
}

int fb_home_dir(char *buf, size_t len)
{
	const char *home = getenv("FORKBOX_HOME");

	if (home && *home)
		return join(buf, len, home, "");
	home = getenv("HOME");
	if (!home || !*home)
		return fb_errorf(-ENOENT, "neither FORKBOX_HOME nor HOME is "
				 "set");
	return join(buf, len, home, "/.local/share/forkbox");
}

int fb_default_kernel(char *buf, size_t len)
{
	char home[PATH_MAX];
	const char *env = getenv("FORKBOX_KERNEL");
	int err;

	if (env && *env)
		return join(buf, len, env, "");
	err = fb_home_dir(home, sizeof(home));
	if (err < 0)
		return err;
	/* The vmlinux that `forkbox kernel extract` made from the bzImage
	 * boots without decompressing itself in the guest (PVH). */
	err = join(buf, len, home, "/kernels/default/vmlinux");
	if (!err && access(buf, R_OK) == 0)
		return 0;
	err = join(buf, len, home, "/kernels/default/vmlinuz");
	if (!err && access(buf, R_OK) != 0)
		return fb_errorf(-ENOENT, "no guest kernel at %s: run `make "
				 "setup` (or set FORKBOX_KERNEL)", buf);
	return err;
}

int fb_default_initrd(char *buf, size_t len)
{
	char exe[PATH_MAX], home[PATH_MAX];
	const char *env = getenv("FORKBOX_INITRD");
	ssize_t n;
	int err;

	if (env && *env)
		return join(buf, len, env, "");
	/* Beside the binary: a build tree carries its own initramfs. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			err = join(buf, len, exe, "/initramfs.cpio");
			if (!err && access(buf, R_OK) == 0)
				return 0;
		}
	}
	err = fb_home_dir(home, sizeof(home));
	if (err < 0)
		return err;
	err = join(buf, len, home, "/initramfs.cpio");
	if (!err && access(buf, R_OK) != 0)
		return fb_errorf(-ENOENT, "no initramfs beside forkbox nor at "
				 "%s: run `make` (or set FORKBOX_INITRD)", buf);
	return err;
}
