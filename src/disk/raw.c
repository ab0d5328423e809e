/* A raw disk: one file is the whole disk, byte for byte. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/layer.h"
#include "util/error.h"

struct raw_disk {
	struct fb_disk d;
	int fd;
};

static struct raw_disk *to_raw(struct fb_disk *d)
{
	return (struct raw_disk *)d;
}

static uint64_t iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

static int raw_readv(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		     int iovcnt)
{
	struct fb_iov_cursor c;

	fb_iov_cursor_init(&c, iov, iovcnt);
	/* The file may have shrunk under us, or end mid-sector: what is not
	 * there reads as zeroes, as it would from a sparse tail. */
	return fb_disk_pio(to_raw(d)->fd, false, off, &c, iov_len(iov, iovcnt),
			   FB_PIO_ZERO_EOF, "raw disk");
}

static int raw_writev(struct fb_disk *d, uint64_t off,
		      const struct iovec *iov, int iovcnt)
{
	struct fb_iov_cursor c;

	fb_iov_cursor_init(&c, iov, iovcnt);
	return fb_disk_pio(to_raw(d)->fd, true, off, &c, iov_len(iov, iovcnt),
			   0, "raw disk");
}

static int raw_flush(struct fb_disk *d)
{
	if (fdatasync(to_raw(d)->fd) < 0)
		return fb_errorf(-errno, "fdatasync raw disk: %s",
				 strerror(errno));
	return 0;
}

static void raw_close(struct fb_disk *d)
{
	close(to_raw(d)->fd);
	free(d);
}

static const struct fb_disk_ops raw_ops = {
	.kind = "raw",
	.readv = raw_readv,
	.writev = raw_writev,
	.flush = raw_flush,
	.close = raw_close,
};

int fb_disk_open_raw(int fd, bool read_only, const char *serial,
		     struct fb_disk **out)
{
	struct raw_disk *r;
	struct stat st;
	int err;

	*out = NULL;
	if (fstat(fd, &st) < 0) {
		err = fb_errorf(-errno, "fstat raw disk: %s", strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fb_errorf(-EINVAL, "raw disk is not a regular file");
		goto out_close;
	}
	if ((uint64_t)st.st_size < FB_DISK_SECTOR) {
		err = fb_errorf(-EINVAL, "raw disk is %lld bytes, less than "
				"one %u-byte sector", (long long)st.st_size,
				FB_DISK_SECTOR);
		goto out_close;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		err = fb_errorf(-ENOMEM, "raw disk: out of memory");
		goto out_close;
	}
	r->d.ops = &raw_ops;
	r->d.size = (uint64_t)st.st_size & ~(uint64_t)(FB_DISK_SECTOR - 1);
	r->d.read_only = read_only;
	fb_disk_set_serial(&r->d, serial);
	r->fd = fd;
	*out = &r->d;
	return 0;
out_close:
	close(fd);
	return err;
}
