/* Between the image store's own files (store.c, import.c, layercache.c,
 * rootfs.c); not for the rest of forkbox. */
#ifndef FB_IMAGE_STORE_INT_H
#define FB_IMAGE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "image/store.h"

/* $FORKBOX_HOME/images/NAME, created (0700) if missing. */
int fb_image_subdir(const char *name, char *buf, size_t len);

/* mkfs.ext4 -d of the tree at dir into a new file in blobs/ under a
 * temporary name, returned in tmp (the caller installs or unlinks it),
 * with the disk's and the tree's sizes. size_mib as for
 * fb_image_build_dir; what names the image in messages. */
int fb_image_make_blob(const char *dir, uint64_t size_mib, const char *what,
		       char *tmp, size_t tmp_len, uint64_t *size,
		       uint64_t *used);

/* Under the store's lock: moves tmp to img->path unless a file is there
 * already (a blob named by its digest, made by another import: then tmp
 * is dropped and the existing one taken), writes NAME.json, and removes
 * the blob NAME named before if no other description names it. With tmp
 * NULL, only takes an existing blob: -ENOENT (no message) if there is
 * none. img->size and used are filled from the blob taken. */
int fb_image_install(struct fb_image *img, const char *tmp);

#endif
