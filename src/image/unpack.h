/* Unpacking one container image layer (a tar, plain or compressed) into a
 * directory tree, on top of the layers unpacked there before it.
 *
 * Every name is resolved beneath the root with openat2(RESOLVE_BENEATH), so
 * no member, whatever its name or the symlinks already in the tree, can
 * write outside the root: a member whose name is absolute or has a ".."
 * component, whose parent path leaves the root through a symlink, or a
 * hardlink to something outside, fails the whole layer. Symlinks are
 * created with any target but never followed for the last component.
 *
 * Whiteouts follow the OCI layer spec: ".wh.NAME" removes NAME from the
 * lower layers, ".wh..wh..opq" empties its directory of what the lower
 * layers put there; neither touches what this same layer adds, wherever
 * the marker sits in the archive. Marker files are never created.
 *
 * With FB_UNPACK_OVERLAY the layer goes into an empty directory of its own
 * and whiteouts are stored the way overlayfs reads them in a lower layer
 * instead of applied: ".wh.NAME" becomes a character device 0/0 named
 * NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque="y" on its
 * directory. A whiteout of a directory this same layer has makes that
 * directory opaque; a whiteout beneath an opaque directory of this layer
 * is left out (the opaque one hides more, and overlayfs would list it
 * as an entry that cannot be opened). Both are stored once the whole
 * layer is unpacked, so where the markers sit in the archive makes no
 * difference. A member that is itself a character device 0/0 is left
 * out (counted in skipped_devices): overlayfs would take it for a
 * whiteout. Where the filesystem refuses that form (overlayfs refuses
 * its own xattrs and 0/0 devices on its files, some filesystems have no
 * xattrs, CAP_MKNOD may be missing), a whiteout is kept the aufs way
 * instead, as an empty file named as its member was: ".wh.NAME" beside
 * NAME, ".wh..wh..opq" in the opaque directory (counted in wh_markers).
 * overlayfs would show those as files: such a layer is merged by copying
 * only (layercache.h).
 *
 * Device nodes and setuid files are made for real, on the host: keep the
 * root inside a directory only root can traverse (a mkdtemp, 0700).
 *
 * On failure the tree holds part of the layer; the caller throws it away. */
#ifndef FB_IMAGE_UNPACK_H
#define FB_IMAGE_UNPACK_H

#include <stdint.h>

/* Counts are added to, so one struct can sum several layers. */
struct fb_unpack_stats {
	uint64_t entries;         /* archive members, whiteouts included */
	uint64_t bytes;           /* regular file contents written */
	uint64_t whiteouts;       /* .wh. markers applied or stored, opaque
				     ones too */
	uint64_t skipped_devices; /* device nodes mknod refused (EPERM) */
	uint64_t skipped_xattrs;  /* extended attributes not applied */
	uint64_t wh_markers;      /* FB_UNPACK_OVERLAY: whiteouts stored as
				     marker files, see above */
};

/* Unpacks the layer read from layer_fd (from its current position, to the
 * end; the fd is not closed) into the directory open as rootfd. label
 * names the layer in messages ("layer.tar: member ../x climbs out of the
 * root"). Owners, modes (setuid bits too) and mtimes come from the
 * archive; we run as root. Of the extended attributes only user.* and
 * security.capability are applied. st may be NULL. Returns 0 or a negative
 * errno with a message in fb_last_error(). */
int fb_unpack_layer(int rootfd, int layer_fd, const char *label,
		    struct fb_unpack_stats *st);

#define FB_UNPACK_OVERLAY 1u /* whiteouts stored for overlayfs, see above */

/* fb_unpack_layer with flags (0 or FB_UNPACK_OVERLAY). */
int fb_unpack_layer_flags(int rootfd, int layer_fd, const char *label,
			  unsigned flags, struct fb_unpack_stats *st);

/* The same for the layer in the file at path, which names it in messages. */
int fb_unpack_layer_path(int rootfd, const char *path,
			 struct fb_unpack_stats *st);

#endif
