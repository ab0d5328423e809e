/* The VMM's half of freezing a box's root disk for a snapshot or a fork
 * (the VM paused, its devices quiesced): the disk's top becomes frozen
 * and a new empty layer takes the box's writes from here on, so that the
 * frozen chain is the disk exactly as the saved memory knows it. A raw
 * root (a reflink copy of the image) becomes the raw base of a chain the
 * first time. disk/root.top names the new top for whoever opens the disk
 * next. The host side (diskshare.c) then shares or copies the frozen
 * chain. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "box/rootdisk.h"
#include "devices/virtio/blk.h"
#include "disk/layer.h"
#include "util/error.h"
#include "vmm/vm.h"

/* The raw root.img as the base of a chain: root.img is never written
 * again, the new layer takes the writes. */
static int raw_to_chain(struct fb_blk *blk, int dirfd, const char *top)
{
	struct fb_disk *raw = fb_blk_disk(blk), *chain;
	struct fb_layer_parent parent = { .kind = FB_LAYER_PARENT_RAW,
					  .size = raw->size };
	int err = fb_disk_flush(raw);

	snprintf(parent.name, sizeof(parent.name), FB_BOX_ROOT_RAW);
	if (!err)
		err = fb_layer_create(dirfd, top, raw->size, 0, &parent, NULL);
	if (!err)
		err = fb_disk_open_chain(&dirfd, 1, top, false, raw->serial,
					 &chain);
	if (err)
		return err;
	fb_disk_close(fb_blk_swap_disk(blk, chain));
	return 0;
}

int fb_box_vm_freeze_root(struct fb_box_vm *b, char *frozen, size_t len)
{
	struct fb_vm *vm = b->vm;
	char top[FB_LAYER_NAME_MAX + 1];
	struct fb_disk *disk;
	int err;

	frozen[0] = '\0';
	if (!b->root_disk) {
		if (vm->nr_blk)
			return fb_errorf(-ENOTSUP, "a box with --disk disks "
					 "cannot be snapshotted or forked "
					 "(their files are the user's, in "
					 "place)");
		return 0;
	}
	if (vm->nr_blk != 1)
		return fb_errorf(-ENOTSUP, "a box with --disk disks cannot be "
				 "snapshotted or forked (their files are the "
				 "user's, in place)");
	err = fb_box_new_top_name(top, sizeof(top));
	if (err)
		return err;
	disk = fb_blk_disk(vm->blk[0]);
	if (!fb_disk_chain_top_name(disk)) {
		err = raw_to_chain(vm->blk[0], b->disk_dirfd, top);
		if (!err)
			snprintf(frozen, len, "%s", FB_BOX_ROOT_RAW);
	} else {
		snprintf(frozen, len, "%s", fb_disk_chain_top_name(disk));
		err = fb_disk_chain_freeze(disk, b->disk_dirfd, top, NULL);
	}
	if (!err)
		err = fb_box_write_top(b->disk_dirfd, top);
	return err;
}
