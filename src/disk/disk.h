/* A box's disk as the virtio-blk device sees it: a size, a read-only flag,
 * and byte-addressed reads, writes and flushes (docs/disk-format.md).
 *
 * Two kinds behind one ops struct:
 *   raw    one file, the whole disk (an image file opened read-only, a
 *          reflink copy of one, or a user's --disk FILE);
 *   chain  copy-on-write layers (src/disk/layer.h): a writable top layer
 *          over frozen layers over a read-only raw base image.
 *
 * A disk is used by one thread at a time (the device's I/O thread); the
 * caller serializes. Functions return 0 or a negative errno with a message
 * (util/error.h) naming what failed. Offsets and lengths come from the
 * guest: every entry point checks off + len against the size, with
 * overflow checks, before touching a file. */
#ifndef FB_DISK_DISK_H
#define FB_DISK_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define FB_DISK_SECTOR 512u

struct fb_disk;

struct fb_disk_ops {
	const char *kind; /* "raw", "chain" */
	/* Reads len = sum of iov lengths bytes at off into iov. */
	int (*readv)(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		     int iovcnt);
	int (*writev)(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		      int iovcnt);
	/* Makes every completed write durable (fdatasync of what changed). */
	int (*flush)(struct fb_disk *d);
	void (*close)(struct fb_disk *d);
};

struct fb_disk {
	const struct fb_disk_ops *ops;
	uint64_t size;    /* bytes, a multiple of FB_DISK_SECTOR */
	bool read_only;
	char serial[21];  /* VIRTIO_BLK_T_GET_ID: up to 20 bytes, NUL-padded */
};

/* Checks a guest request [off, off + len) against the disk: -EINVAL for
 * an overflow, -ENOSPC past the end (message set). */
int fb_disk_check_range(const struct fb_disk *d, uint64_t off, uint64_t len);

int fb_disk_readv(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		  int iovcnt);
/* -EROFS on a read-only disk. */
int fb_disk_writev(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		   int iovcnt);
int fb_disk_flush(struct fb_disk *d);
void fb_disk_close(struct fb_disk *d);

/* A raw disk over fd (the disk takes it; closed by fb_disk_close). Its
 * size is the file's, rounded down to a sector; a file smaller than one
 * sector is refused. */
int fb_disk_open_raw(int fd, bool read_only, const char *serial,
		     struct fb_disk **out);

#endif
