/* Images: read-only ext4 files that boxes' root disks are copy-on-write
 * views of, under $FORKBOX_HOME/images/:
 *   NAME.json          what the image is (blob, size, source, defaults)
 *   blobs/BLOB.ext4    the filesystem, mode 0444, never written again
 *   tmp/               staging for builds and imports (removed after)
 * A box's root disk is a reflink copy of the blob or a layer over it
 * (src/box/rootdisk.c). Removing an image a layered box was made from
 * leaves that box running (it holds the file open), but it cannot be
 * started again from disk. */
#ifndef FB_IMAGE_STORE_H
#define FB_IMAGE_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/oci.h"

#define FB_IMAGE_NAME_MAX 63
#define FB_IMAGE_BLOB_MAX 96
/* Room a box's root disk has beyond what the image holds (a sparse file:
 * it costs nothing until written). */
#define FB_IMAGE_FREE_MIB 1024

struct fb_image {
	char name[FB_IMAGE_NAME_MAX + 1];
	char blob[FB_IMAGE_BLOB_MAX];  /* file name in blobs/ */
	char path[PATH_MAX];           /* blobs/BLOB, in full */
	uint64_t size;                 /* the disk's bytes */
	uint64_t used;                 /* bytes of the tree it was built from */
	long long created;             /* Unix seconds */
	char source[256];              /* where it came from, for `image ls` */
	struct fb_image_config cfg;    /* the box's defaults */
};

/* $FORKBOX_HOME/images, and its blobs/ directory (created if missing). */
int fb_image_dir(char *buf, size_t len);
int fb_image_blob_dir(char *buf, size_t len);

/* 0 for a valid name ([a-z0-9][a-z0-9._-]*, at most 63), else -EINVAL
 * with a message. */
int fb_image_check_name(const char *name);

/* Reads an image's description; -ENOENT (message names the image and how
 * to make one) if there is none. Free with fb_image_free. */
int fb_image_get(const char *name, struct fb_image *img);
void fb_image_free(struct fb_image *img);

/* fb_image_get, building the built-in images ("base", "python") on first
 * use; progress lines go to stderr. */
int fb_image_ensure(const char *name, struct fb_image *img);

/* Builds NAME from the tree at dir with mkfs.ext4 -d (replacing an image
 * of that name). cfg (may be NULL) holds the box defaults; size_mib 0
 * picks the tree's size plus FB_IMAGE_FREE_MIB. */
int fb_image_build_dir(const char *name, const char *dir,
		       const struct fb_image_config *cfg, const char *source,
		       uint64_t size_mib, struct fb_image *out);

/* Imports a `docker save` or OCI-layout tarball as NAME. */
int fb_image_import(const char *name, const char *tar, struct fb_image *out);

/* Calls fn for each image, by name; stops at a non-zero return. */
int fb_image_list(int (*fn)(const struct fb_image *img, void *opaque),
		  void *opaque);

/* A box keeps its image's defaults in a file of its own (the image may
 * change or go later): written atomically, read back. */
int fb_image_config_save(const struct fb_image_config *cfg, const char *path);
int fb_image_config_load(const char *path, struct fb_image_config *cfg);

/* Removes NAME and its blob (running boxes hold it open). */
int fb_image_remove(const char *name);

/* Runs a tool (argv[0] looked up in PATH) and waits for it; a failure's
 * message names it and ends with its output. show: its output goes to
 * stderr as it comes (a progress display) instead. */
int fb_run_tool(char *const argv[], const char *what, bool show);

/* Builds a built-in image ("base": busybox; "python": Debian minbase by
 * debootstrap, with python3); -ENOENT for another name. */
int fb_image_build_builtin(const char *name, struct fb_image *out);

/* Removes a directory tree (staging dirs); no error if it is missing. */
int fb_rm_tree(const char *path);

#endif
