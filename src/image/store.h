/* Images: read-only ext4 files that boxes' root disks are copy-on-write
 * views of, under $FORKBOX_HOME/images/:
 *   NAME.json          what the image is (blob, size, source, defaults,
 *                      and for an import the image's digest)
 *   blobs/BLOB.ext4    the filesystem, mode 0444, never written again:
 *                      NAME-RANDOM.ext4 for a build from a directory,
 *                      sha256-<hex>.ext4 for an import, <hex> being the
 *                      image's digest (its config's sha256), so an image
 *                      imported again, under any name, takes the same
 *                      file and runs no mkfs; several descriptions may
 *                      then name one blob
 *   layers/<hex>/      imported layers, unpacked once (layercache.h)
 *   tmp/               staging for builds and imports (removed after)
 *   .lock              flock'd while descriptions and blobs change
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
#define FB_IMAGE_DIGEST_MAX 72 /* "sha256:" and 64 hex digits */
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
	char digest[FB_IMAGE_DIGEST_MAX]; /* "sha256:..." for an import, or "" */
	struct fb_image_config cfg;    /* the box's defaults */
	/* Not stored: what fb_image_import did, one line for the CLI to
	 * show ("" from fb_image_get): layers unpacked or cached, the ext4
	 * file reused, or why the layers were copied instead of mounted. */
	char note[320];
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

/* Imports a `docker save` or OCI-layout tarball as NAME (replacing an
 * image of that name): layers from the cache or unpacked into it, the
 * root tree assembled (rootfs.h: an overlayfs mount, else a copy;
 * FORKBOX_NO_OVERLAY=1 forces the copy), then mkfs.ext4 -d, unless the
 * store holds the image's blob already. out->note says which. */
int fb_image_import(const char *name, const char *tar, struct fb_image *out);

/* Calls fn for each image, by name; stops at a non-zero return. */
int fb_image_list(int (*fn)(const struct fb_image *img, void *opaque),
		  void *opaque);

/* A box keeps its image's defaults in a file of its own (the image may
 * change or go later): written atomically, read back. */
int fb_image_config_save(const struct fb_image_config *cfg, const char *path);
int fb_image_config_load(const char *path, struct fb_image_config *cfg);

/* Removes NAME, and its blob unless another image names it too (running
 * boxes hold it open). */
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
