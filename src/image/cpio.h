/* A writer for cpio "newc" (070701) archives, the format the Linux kernel
 * unpacks as an initramfs.
 *
 * Entries carry uid 0, gid 0 and mtime 0, so the same inputs always give
 * the same bytes. Names are relative paths ("bin/sh", not "/bin/sh"), and a
 * directory must be added before anything in it: the kernel creates entries
 * in archive order and does not make missing parents.
 *
 * After a failed call the writer is poisoned: later calls return the same
 * error, so a caller may check only fb_cpio_finish(). */
#ifndef FB_IMAGE_CPIO_H
#define FB_IMAGE_CPIO_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/* Longest entry name or symlink target, in bytes, without its NUL: the
 * kernel refuses names of PATH_MAX or more. */
#define FB_CPIO_NAME_MAX 4095u

struct fb_cpio {
	int fd;            /* not owned: the caller opens and closes it */
	uint32_t next_ino; /* every entry gets its own inode number */
	uint64_t offset;   /* bytes written so far; padding is relative to it */
	int err;           /* first error (negative errno), 0 while healthy */
};

/* Starts an archive at the current position of fd. */
void fb_cpio_init(struct fb_cpio *cpio, int fd);

/* perm is the permission bits only (at most 07777); the file type comes
 * from the function. Each returns 0 or a negative errno (-EINVAL for a bad
 * name, mode or size) with a message in fb_last_error(). */
int fb_cpio_add_dir(struct fb_cpio *cpio, const char *name, mode_t perm);
int fb_cpio_add_file(struct fb_cpio *cpio, const char *name, mode_t perm,
		     const void *data, size_t len);
/* Copies the host file at host_path, which must be a regular file. */
int fb_cpio_add_file_from_path(struct fb_cpio *cpio, const char *name,
			       mode_t perm, const char *host_path);
int fb_cpio_add_symlink(struct fb_cpio *cpio, const char *name,
			const char *target);
int fb_cpio_add_chardev(struct fb_cpio *cpio, const char *name, mode_t perm,
			unsigned int major, unsigned int minor);

/* Writes the TRAILER!!! entry and pads the archive to a multiple of 512
 * bytes. Does not fsync or close the fd. */
int fb_cpio_finish(struct fb_cpio *cpio);

#endif
