/* An image's root tree, assembled from its cached layers (layercache.h)
 * for mkfs.ext4 -d to read.
 *
 * Where the host allows it, a read-only overlayfs mount of the layers
 * (lowerdir=top:...:bottom, no upperdir) on images/tmp/rootfs-XXXXXX/mnt:
 * nothing is copied. Else, or with FORKBOX_NO_OVERLAY=1 in the
 * environment (tests use it to run the other way), one staging tree
 * copied layer by layer (layercopy.c), with the same result: regular
 * files copied with fb_copy_fd_cow (a reflink where the filesystem can),
 * the cached whiteouts applied and never copied. Always the copy when a
 * layer keeps its whiteouts as marker files (layercache.h): a mount
 * would show them as files. Either way a layer whose root is opaque ends
 * the stack: what lies below it is not read.
 *
 * The mount lives in the caller's mount namespace until
 * fb_rootfs_release; a process killed in between leaves it mounted
 * (read-only, under images/tmp/). */
#ifndef FB_IMAGE_ROOTFS_H
#define FB_IMAGE_ROOTFS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct fb_rootfs {
	char dir[PATH_MAX]; /* the tree to read */
	char tmp[PATH_MAX]; /* images/tmp/rootfs-XXXXXX, which holds it */
	bool mounted;
	char note[160];     /* "" or, one line, why the layers were copied */
};

/* layers: the cached layers' directories, bottom first. On success the
 * tree is at rf->dir until fb_rootfs_release; on failure nothing is
 * left. */
int fb_rootfs_assemble(char *const *layers, size_t n, struct fb_rootfs *rf);

/* Unmounts or removes the tree; safe on a zeroed rf. */
int fb_rootfs_release(struct fb_rootfs *rf);

/* The copy: layers (bottom first) merged into the empty directory open
 * as rootfd, overlayfs' way (a directory in several layers takes the
 * topmost one's owner, mode, times and xattrs). Whiteouts are read in
 * either form the cache keeps (unpack.h), never copied. */
int fb_layers_copy(char *const *layers, size_t n, int rootfd);

#endif
