/* virtio-blk (virtio 1.x, 5.2): a box's disk (src/disk/disk.h) for the
 * guest. One request queue, served by the device's own I/O thread so that
 * a slow file never stalls a vCPU. Reads, writes, flushes and the disk's
 * id; a read-only disk is offered with VIRTIO_BLK_F_RO and refuses writes
 * whatever the driver does. */
#ifndef FB_VIRTIO_BLK_H
#define FB_VIRTIO_BLK_H

struct fb_vm;
struct fb_disk;
struct fb_virtio_device;
struct fb_blk;

/* Adds the device to the VM (before the vCPUs start). The device owns the
 * disk from then on, also when this fails. */
int fb_blk_create(struct fb_vm *vm, struct fb_disk *disk, struct fb_blk **out);

/* The same over a transport device the caller set up (tests: d->vm NULL,
 * d->mem a test guest memory, d->irqfd an eventfd, d->lock initialised).
 * Sets d->ops and d->priv. */
int fb_blk_init_device(struct fb_virtio_device *d, struct fb_disk *disk,
		       struct fb_blk **out);

/* The disk, for a caller that holds the device quiesced (snapshot, fork:
 * no request is in flight and none starts until unquiesce). */
struct fb_disk *fb_blk_disk(struct fb_blk *b);

/* Puts disk in the device's hands instead of the one it had, which it
 * returns (the caller closes it). The device must be quiesced, and the
 * new disk must be the same size and show the same bytes (a raw disk
 * turned into a chain with a layer over it). */
struct fb_disk *fb_blk_swap_disk(struct fb_blk *b, struct fb_disk *disk);

/* Requests served, for tests. */
unsigned long fb_blk_requests(struct fb_blk *b);

#endif
