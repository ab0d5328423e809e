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
 * written again. */
#ifndef FB_IMAGE_LAYERCACHE_H
#define FB_IMAGE_LAYERCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "image/oci.h"

/* $FORKBOX_HOME/images/layers (created if missing, mode 0700: the
 * layers hold setuid files and device nodes). */
int fb_layer_cache_dir(char *buf, size_t len);

/* The directory of layer l in the cache, unpacked (and its key checked,
 * fb_oci_layer_check) first if it is not there; *unpacked says whether
 * this call unpacked it. The unpacker's counts are added to st (may be
 * NULL). */
int fb_layer_cache_get(const struct fb_oci_layer *l, char *dir, size_t len,
		       bool *unpacked, struct fb_unpack_stats *st);

#endif
