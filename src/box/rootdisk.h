/* A box's disks, in its directory's disk/ (docs/disk-format.md):
 *   root.img   a reflink copy of the image (where the filesystem of
 *              $FORKBOX_HOME has FICLONE: btrfs, XFS, bcachefs), or
 *   root.fbl   a copy-on-write layer over the image file, found by
 *              name in the image store (elsewhere: ext4, tmpfs)
 * Both cost nothing until the guest writes. Extra disks (--disk FILE) are
 * the user's files, used in place. */
#ifndef FB_BOX_ROOTDISK_H
#define FB_BOX_ROOTDISK_H

#include <stdbool.h>

#include "box/boxvm.h"

struct fb_image;
struct fb_disk;

#define FB_BOX_DISK_DIR "disk"
#define FB_BOX_ROOT_RAW "root.img"
#define FB_BOX_ROOT_LAYER "root.fbl"

/* Makes box_dir/disk/ and the box's root disk over img; *reflinked says
 * which kind it made. */
int fb_box_root_disk_create(const char *box_dir, const struct fb_image *img,
			    bool *reflinked);

/* Opens the box's disks for its VM, the root disk (if it has one) first,
 * then spec's extra disks; *nr of them in disks[] (FB_VM_MAX_DISKS).
 * *has_root says whether disks[0] is a root disk. */
int fb_box_open_disks(const char *box_dir, const struct fb_box_spec *spec,
		      struct fb_disk **disks, unsigned *nr, bool *has_root);

#endif
