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
#include <stddef.h>

#include "box/boxvm.h"

struct fb_image;
struct fb_disk;

#define FB_BOX_DISK_DIR "disk"
#define FB_BOX_ROOT_RAW "root.img"
#define FB_BOX_ROOT_LAYER "root.fbl"
/* The name of the root disk's writable top, once a freeze moved it on
 * from root.fbl (or root.img). */
#define FB_BOX_ROOT_TOP "root.top"

/* Makes box_dir/disk/ (path, an fd on it in *dirfd), owned by the box's
 * uid so that its jailed VMM can add layers. */
int fb_box_disk_dir_create(const char *box_dir, char *path, size_t len,
			   int *dirfd);

/* Makes box_dir/disk/ and the box's root disk over img; *reflinked says
 * which kind it made. */
int fb_box_root_disk_create(const char *box_dir, const struct fb_image *img,
			    bool *reflinked);

/* Opens the box's disks for its VM, the root disk (if it has one) first,
 * then spec's extra disks; *nr of them in disks[] (FB_VM_MAX_DISKS).
 * With a root disk, *root_dirfd is its directory (the caller's to
 * close), else -1. */
int fb_box_open_disks(const char *box_dir, const struct fb_box_spec *spec,
		      struct fb_disk **disks, unsigned *nr, int *root_dirfd);

/* A fresh name for a top layer ("root-<16 hex>.fbl"), and root.top
 * naming it in the directory open as dirfd (written atomically). */
int fb_box_new_top_name(char *buf, size_t len);
int fb_box_write_top(int dirfd, const char *name);

/* Host side (diskshare.c), after the VMM froze the root disk's top
 * `frozen` (a file in box_dir/disk/):
 *   seal_frozen      replaces it by a copy no VMM ever had open for
 *                    writing (before a fork's children or a snapshot
 *                    share it);
 *   child_create     gives child_dir a disk/ with hard links to the frozen
 *                    chain and a new top of its own;
 *   snapshot_copy    links (or copies) the chain into a snapshot
 *                    directory, with root.top naming the frozen top;
 *   restore_prepare  gives box_dir the snapshot's chain and a new top
 *                    over it (nothing for a snapshot without disk). */
int fb_disk_seal_frozen(const char *box_dir, const char *frozen);
int fb_disk_child_create(const char *parent_dir, const char *frozen,
			 const char *child_dir);
int fb_disk_snapshot_copy(const char *box_dir, const char *frozen,
			  const char *snap_dir);
int fb_disk_restore_prepare(const char *snap_dir, const char *box_dir);

/* VMM side, the VM paused (diskfreeze.c): freezes the root disk's top and
 * puts a new empty layer over it; frozen gets the frozen file's name (""
 * for a box without a root disk). A box with --disk disks is refused. */
int fb_box_vm_freeze_root(struct fb_box_vm *b, char *frozen, size_t len);

#endif
