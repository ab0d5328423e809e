/* The layer cache, $FORKBOX_HOME/images/layers/<hex>/: one directory per
 * image layer, named by the layer's digest (fb_oci_layer.key: the
 * config's diff_id, else the sha256 of the layer blob), unpacked once
 * with FB_UNPACK_OVERLAY so that it serves as an overlayfs lower layer
 * as it is, for every image that has the layer.
 *
 * A layer is unpacked into layers/.tmp-<hex>-XXXXXX, synced, and renamed
 * into place whole (RENAME_NOREPLACE: of two imports unpacking the same
 * layer at once, the first rename wins and the other drops its copy).
 * So a name without ".tmp-" always holds a complete layer; an import
 * that dies leaves only its .tmp- directory. Cached layers are never
 * written again.
 *
 * Where the cache's filesystem refused the overlayfs form of a whiteout
 * (it is overlayfs itself, or has no xattrs: unpack.h), the layer keeps
 * marker files, which overlayfs would show as files; such a layer has
 * FB_LAYER_MARKERS at its root, written before the rename, and is only
 * ever merged by copying (rootfs.h). */
#ifndef FB_IMAGE_LAYERCACHE_H
#define FB_IMAGE_LAYERCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "image/oci.h"

/* A ".wh..wh." name: the unpacker creates none (those are aufs
 * bookkeeping in an archive), so no entry of an image can be it. */
#define FB_LAYER_MARKERS ".wh..wh..forkbox-markers"

/* $FORKBOX_HOME/images/layers (created if missing, mode 0700: the
 * layers hold setuid files and device nodes). */
int fb_layer_cache_dir(char *buf, size_t len);

/* The directory of layer l in the cache, unpacked (and its key checked,
 * fb_oci_layer_check) first if it is not there; *unpacked says whether
 * this call unpacked it. The unpacker's counts are added to st (may be
 * NULL). */
int fb_layer_cache_get(const struct fb_oci_layer *l, char *dir, size_t len,
		       bool *unpacked, struct fb_unpack_stats *st);

/* 1 if the cached layer at dir keeps whiteouts as marker files
 * (FB_LAYER_MARKERS), 0 if not, or a negative errno with a message. */
int fb_layer_cache_markers(const char *dir);

#endif
