/* virtio-blk: the request queue on an I/O thread of its own.
 *
 * The thread serves requests with b->lock held, one whole request at a
 * time, so holding that lock (quiesce) means no request is in flight. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/worker.h"
#include "disk/disk.h"
#include "util/error.h"
#include "util/le.h"

/* Wire format (virtio 1.2, 5.2.6; linux/virtio_blk.h). */
#define BLK_F_SEG_MAX (1ull << 2)
#define BLK_F_RO (1ull << 5)
#define BLK_F_FLUSH (1ull << 9)

#define BLK_T_IN 0u
#define BLK_T_OUT 1u
#define BLK_T_FLUSH 4u
#define BLK_T_GET_ID 8u

#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2

#define BLK_HDR_SIZE 16u
#define BLK_ID_BYTES 20u
#define BLK_QUEUE_SIZE 256
/* Header and status take a segment each (at most) of what a chain maps. */
#define BLK_SEG_MAX (FB_VQ_MAX_SEGS - 2)
#define BLK_CONFIG_LEN 24u /* capacity, size_max, seg_max, geometry, blk_size */

struct fb_blk {
	struct fb_virtio_device *d;
	struct fb_disk *disk;
	pthread_mutex_t lock; /* everything below, and every request */
	bool active;          /* DRIVER_OK and not reset */
	bool broken;          /* the driver broke the protocol */
	unsigned long requests;
	bool io_error_logged;
	struct fb_worker worker;
};

/* A host-side failure is the guest's I/O error, not the VMM's end; the
 * first one goes to the log so that a full host disk is not a mystery. */
static uint8_t io_status(struct fb_blk *b, int err, const char *what)
{
	if (!err)
		return BLK_S_OK;
	if (!b->io_error_logged) {
		fprintf(stderr, "forkbox: virtio-blk: %s failed: %s (the guest "
			"sees an I/O error; later failures are not logged)\n",
			what, fb_last_error());
		b->io_error_logged = true;
	}
	return BLK_S_IOERR;
}

/* Data of a read or write: whole sectors, as the spec requires. */
static uint8_t rw(struct fb_blk *b, uint32_t type, uint64_t sector,
		  const struct fb_vq_chain *c, uint32_t *written)
{
	struct iovec iov[FB_VQ_MAX_SEGS];
	uint64_t off, len;
	unsigned n;
	size_t got;

	if (sector > UINT64_MAX / FB_DISK_SECTOR)
		return BLK_S_IOERR;
	off = sector * FB_DISK_SECTOR;
	if (type == BLK_T_IN) {
		len = c->out_len - 1;
		n = fb_iov_slice(c->out, c->nr_out, 0, len, iov,
				 FB_VQ_MAX_SEGS, &got);
	} else {
		len = c->in_len - BLK_HDR_SIZE;
		n = fb_iov_slice(c->in, c->nr_in, BLK_HDR_SIZE, len, iov,
				 FB_VQ_MAX_SEGS, &got);
	}
	if (got != len || len % FB_DISK_SECTOR || len >= UINT32_MAX)
		return BLK_S_IOERR;
	if (!len)
		return BLK_S_OK;
	/* The guest's mistakes are its I/O errors, never logged: the one
	 * log line is kept for the host's own failures. */
	if (fb_disk_check_range(b->disk, off, len) < 0 ||
	    (type == BLK_T_OUT && b->disk->read_only))
		return BLK_S_IOERR;
	if (type == BLK_T_OUT)
		return io_status(b, fb_disk_writev(b->disk, off, iov, (int)n),
				 "write");
	if (fb_disk_readv(b->disk, off, iov, (int)n) < 0)
		return io_status(b, -EIO, "read");
	*written = (uint32_t)len;
	return BLK_S_OK;
}

/* One request: 1 (pushed), or a negative errno when the chain's shape
 * breaks the protocol (no room for the status byte, no header). */
static int serve_one(struct fb_blk *b, const struct fb_vq_chain *c)
{
	uint8_t hdr[BLK_HDR_SIZE], status;
	uint32_t type, written = 0;
	uint64_t sector;

	if (c->in_len < BLK_HDR_SIZE || fb_vq_copy_from_chain(c, 0, hdr,
			sizeof(hdr)) != sizeof(hdr))
		return fb_errorf(-EINVAL, "request without a 16-byte header");
	if (c->out_len < 1)
		return fb_errorf(-EINVAL, "request without a status byte");
	type = fb_le32(hdr);
	sector = fb_le64(hdr + 8);
	switch (type) {
	case BLK_T_IN:
	case BLK_T_OUT:
		status = rw(b, type, sector, c, &written);
		break;
	case BLK_T_FLUSH:
		status = io_status(b, b->disk->read_only ? 0 :
				   fb_disk_flush(b->disk), "flush");
		break;
	case BLK_T_GET_ID: {
		uint64_t room = c->out_len - 1;

		written = room < BLK_ID_BYTES ? (uint32_t)room : BLK_ID_BYTES;
		fb_vq_copy_to_chain(c, 0, b->disk->serial, written);
		status = BLK_S_OK;
		break;
	}
	default:
		status = BLK_S_UNSUPP;
	}
	fb_vq_copy_to_chain(c, c->out_len - 1, &status, 1);
	return fb_vq_push(&b->d->queues[0], c->head, written + 1);
}

static void serve_queue(void *arg)
{
	struct fb_blk *b = arg;
	struct fb_virtqueue *vq = &b->d->queues[0];
	struct fb_vq_chain *chain = malloc(sizeof(*chain));
	char why[192] = "";
	bool pushed = false;
	int got = 0;

	if (!chain) {
		fprintf(stderr, "forkbox: virtio-blk: out of memory\n");
		return;
	}
	pthread_mutex_lock(&b->lock);
	while (b->active && !b->broken &&
	       (got = fb_vq_pop(vq, chain)) == 1) {
		got = serve_one(b, chain);
		if (got < 0)
			break;
		b->requests++;
		pushed = true;
	}
	if (got < 0 && b->active) {
		b->broken = true;
		snprintf(why, sizeof(why), "%s", fb_last_error());
	}
	if (pushed && !fb_vq_needs_interrupt(vq))
		pushed = false;
	pthread_mutex_unlock(&b->lock);
	free(chain);
	if (why[0])
		fb_virtio_fail(b->d, why);
	if (pushed)
		fb_virtio_signal_used(b->d);
}

static void blk_config_read(struct fb_virtio_device *d, uint32_t off,
			    uint8_t *data, unsigned len)
{
	struct fb_blk *b = d->priv;
	uint8_t cfg[BLK_CONFIG_LEN] = { 0 };
	uint64_t sectors = b->disk->size / FB_DISK_SECTOR;
	uint32_t seg_max = BLK_SEG_MAX;

	fb_put_le64(cfg, sectors);
	fb_put_le32(cfg + 12, seg_max);
	memcpy(data, cfg + off, len);
}

static void blk_config_write(struct fb_virtio_device *d, uint32_t off,
			     const uint8_t *data, unsigned len)
{
	/* Nothing in our config is writable (no WCE, no writeback toggle). */
}

static int blk_activate(struct fb_virtio_device *d)
{
	struct fb_blk *b = d->priv;

	pthread_mutex_lock(&b->lock);
	b->active = true;
	b->broken = false;
	pthread_mutex_unlock(&b->lock);
	fb_worker_kick(&b->worker);
	return 0;
}

static void blk_notify(struct fb_virtio_device *d, unsigned q)
{
	struct fb_blk *b = d->priv;

	if (b)
		fb_worker_kick(&b->worker);
}

/* Requests are served whole under the lock: once it is held no request is
 * half done, and a reset leaves nothing to cancel. */
static void blk_reset(struct fb_virtio_device *d)
{
	struct fb_blk *b = d->priv;

	pthread_mutex_lock(&b->lock);
	b->active = false;
	b->broken = false;
	pthread_mutex_unlock(&b->lock);
}

static void blk_free(struct fb_blk *b)
{
	fb_worker_release(&b->worker);
	fb_disk_close(b->disk);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void blk_destroy(struct fb_virtio_device *d)
{
	if (d->priv)
		blk_free(d->priv);
	d->priv = NULL;
}

static void blk_quiesce(struct fb_virtio_device *d)
{
	struct fb_blk *b = d->priv;

	pthread_mutex_lock(&b->lock);
}

static void blk_unquiesce(struct fb_virtio_device *d)
{
	struct fb_blk *b = d->priv;

	pthread_mutex_unlock(&b->lock);
}

static const struct fb_virtio_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.features = BLK_F_SEG_MAX | BLK_F_FLUSH,
	.nr_queues = 1,
	.queue_max_size = BLK_QUEUE_SIZE,
	.config_len = BLK_CONFIG_LEN,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.notify = blk_notify,
	.reset = blk_reset,
	.destroy = blk_destroy,
	.quiesce = blk_quiesce,
	.unquiesce = blk_unquiesce,
};

static int blk_new(struct fb_disk *disk, struct fb_blk **out)
{
	struct fb_blk *b = calloc(1, sizeof(*b));
	int err;

	if (!b) {
		fb_disk_close(disk);
		return fb_errorf(-ENOMEM, "virtio-blk: out of memory");
	}
	b->disk = disk;
	pthread_mutex_init(&b->lock, NULL);
	err = fb_worker_init(&b->worker, "virtio-blk");
	if (err) {
		fb_disk_close(disk);
		pthread_mutex_destroy(&b->lock);
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

/* The thread touches b->d only while active, which needs b->d set. */
static int blk_start(struct fb_blk *b, struct fb_virtio_device *d)
{
	b->d = d;
	return fb_worker_start(&b->worker, serve_queue, b);
}

int fb_blk_init_device(struct fb_virtio_device *d, struct fb_disk *disk,
		       struct fb_blk **out)
{
	struct fb_blk *b;
	int err = blk_new(disk, &b);

	if (err)
		return err;
	d->ops = &blk_ops;
	d->priv = b;
	if (disk->read_only)
		d->extra_features |= BLK_F_RO;
	err = blk_start(b, d);
	if (err) {
		d->priv = NULL;
		blk_free(b);
		return err;
	}
	*out = b;
	return 0;
}

int fb_blk_create(struct fb_vm *vm, struct fb_disk *disk, struct fb_blk **out)
{
	struct fb_virtio_device *d;
	struct fb_blk *b;
	int err = blk_new(disk, &b);

	if (err)
		return err;
	err = fb_virtio_mmio_add(vm, &blk_ops, b, &d);
	if (err) {
		blk_free(b);
		return err;
	}
	if (disk->read_only)
		d->extra_features |= BLK_F_RO;
	/* From here the transport owns b: its destroy op frees it. */
	err = blk_start(b, d);
	if (err)
		return err;
	*out = b;
	return 0;
}

struct fb_disk *fb_blk_disk(struct fb_blk *b)
{
	return b->disk;
}

struct fb_disk *fb_blk_swap_disk(struct fb_blk *b, struct fb_disk *disk)
{
	struct fb_disk *old = b->disk;

	b->disk = disk; /* quiesced: the I/O thread waits on b->lock */
	return old;
}

unsigned long fb_blk_requests(struct fb_blk *b)
{
	unsigned long n;

	pthread_mutex_lock(&b->lock);
	n = b->requests;
	pthread_mutex_unlock(&b->lock);
	return n;
}
