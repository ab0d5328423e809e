/* Builds the guest's initramfs: our static PID 1 as /init, a static busybox
 * with one /bin symlink per applet, kernel modules, and the directories and
 * device node the kernel and PID 1 need before anything is mounted. */
#ifndef FB_IMAGE_INITRAMFS_H
#define FB_IMAGE_INITRAMFS_H

#include <stddef.h>

struct fb_initramfs_spec {
	const char *init_path;    /* host path of the static init -> /init */
	const char *busybox_path; /* host path of a static busybox */
	/* Host paths of FILE.ko modules -> /lib/modules/FILE.ko, in order. */
	const char *const *module_paths;
	size_t n_modules;
};

/* Writes the archive to out_path (through a temporary name, fsynced, then
 * renamed). Runs `BUSYBOX --list` to learn the applets. init and busybox
 * must be statically linked: the initramfs has no libc. Returns 0 or a
 * negative errno with a message in fb_last_error(). */
int fb_initramfs_build(const struct fb_initramfs_spec *spec,
		       const char *out_path);

#endif
