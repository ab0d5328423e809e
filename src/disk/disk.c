/* The checks every disk request passes before it reaches a file, and the
 * positional scatter-gather I/O that both kinds of disk share. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/layer.h"
#include "util/error.h"

/* One preadv/pwritev moves at most this much: well under SSIZE_MAX and
 * IOV_MAX whatever the guest's descriptor chain looks like. */
#define PIO_MAX_IOV 64
#define PIO_MAX_BYTES (1u << 30)

int fb_disk_check_range(const struct fb_disk *d, uint64_t off, uint64_t len)
{
	if (off > UINT64_MAX - len)
		return fb_errorf(-EINVAL, "disk request off %llu len %llu "
				 "overflows", (unsigned long long)off,
				 (unsigned long long)len);
	if (off + len > d->size)
		return fb_errorf(-ENOSPC, "disk request off %llu len %llu is "
				 "past the end of the disk (size %llu)",
				 (unsigned long long)off,
				 (unsigned long long)len,
				 (unsigned long long)d->size);
	return 0;
}

static int iov_total(const struct iovec *iov, int iovcnt, uint64_t *len)
{
	uint64_t sum = 0;

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return fb_errorf(-EINVAL, "disk request with %d buffers",
				 iovcnt);
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > UINT64_MAX - sum)
			return fb_errorf(-EINVAL, "disk request buffers "
					 "overflow a 64-bit length");
		sum += iov[i].iov_len;
	}
	*len = sum;
	return 0;
}

static int check_request(struct fb_disk *d, uint64_t off,
			 const struct iovec *iov, int iovcnt)
{
	uint64_t len;
	int err = iov_total(iov, iovcnt, &len);

	return err ? err : fb_disk_check_range(d, off, len);
}

int fb_disk_readv(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		  int iovcnt)
{
	int err = check_request(d, off, iov, iovcnt);

	return err ? err : d->ops->readv(d, off, iov, iovcnt);
}

int fb_disk_writev(struct fb_disk *d, uint64_t off, const struct iovec *iov,
		   int iovcnt)
{
	int err;

	if (d->read_only)
		return fb_errorf(-EROFS, "write to a read-only %s disk",
				 d->ops->kind);
	err = check_request(d, off, iov, iovcnt);
	return err ? err : d->ops->writev(d, off, iov, iovcnt);
}

int fb_disk_flush(struct fb_disk *d)
{
	return d->ops->flush(d);
}

void fb_disk_close(struct fb_disk *d)
{
	if (d)
		d->ops->close(d);
}

void fb_disk_set_serial(struct fb_disk *d, const char *serial)
{
	/* strncpy's padding is the point: GET_ID hands out all 20 bytes. */
	memset(d->serial, 0, sizeof(d->serial));
	if (serial)
		strncpy(d->serial, serial, sizeof(d->serial) - 1);
}

/* --- iovec cursors and positional I/O -------------------------------- */

void fb_iov_cursor_init(struct fb_iov_cursor *c, const struct iovec *iov,
			int iovcnt)
{
	c->iov = iov;
	c->cnt = iovcnt;
	c->idx = 0;
	c->off = 0;
}

void fb_iov_cursor_advance(struct fb_iov_cursor *c, uint64_t len)
{
	while (len && c->idx < c->cnt) {
		size_t left = c->iov[c->idx].iov_len - c->off;

		if (len < left) {
			c->off += (size_t)len;
			return;
		}
		len -= left;
		c->idx++;
		c->off = 0;
	}
}

/* Up to max iovecs covering at most len bytes from the cursor, without
 * moving it; returns how many, *got the bytes they cover. */
static int cursor_slice(const struct fb_iov_cursor *c, uint64_t len,
			struct iovec *out, int max, size_t *got)
{
	size_t off = c->off;
	int n = 0;

	*got = 0;
	for (int i = c->idx; i < c->cnt && n < max && len; i++, off = 0) {
		size_t take = c->iov[i].iov_len - off;

		if (!take)
			continue;
		if (take > len)
			take = (size_t)len;
		out[n].iov_base = (uint8_t *)c->iov[i].iov_base + off;
		out[n].iov_len = take;
		n++;
		*got += take;
		len -= take;
	}
	return n;
}

void fb_iov_cursor_zero(struct fb_iov_cursor *c, uint64_t len)
{
	struct iovec v[PIO_MAX_IOV];
	size_t got;
	int n;

	while (len) {
		n = cursor_slice(c, len, v, PIO_MAX_IOV, &got);
		if (!n)
			return;
		for (int i = 0; i < n; i++)
			memset(v[i].iov_base, 0, v[i].iov_len);
		fb_iov_cursor_advance(c, got);
		len -= got;
	}
}

void fb_iov_cursor_copy_out(struct fb_iov_cursor *c, void *buf,
			    uint64_t len)
{
	struct iovec v[PIO_MAX_IOV];
	uint8_t *p = buf;
	size_t got;
	int n;

	while (len) {
		n = cursor_slice(c, len, v, PIO_MAX_IOV, &got);
		if (!n)
			return;
		for (int i = 0; i < n; i++) {
			memcpy(p, v[i].iov_base, v[i].iov_len);
			p += v[i].iov_len;
		}
		fb_iov_cursor_advance(c, got);
		len -= got;
	}
}

int fb_disk_pio(int fd, bool write, uint64_t foff, struct fb_iov_cursor *c,
		uint64_t len, unsigned flags, const char *what)
{
	const char *call = write ? "pwritev" : "preadv";
	struct iovec v[PIO_MAX_IOV];
	size_t got;
	ssize_t r;
	int n;

	while (len) {
		n = cursor_slice(c, len < PIO_MAX_BYTES ? len : PIO_MAX_BYTES,
				 v, PIO_MAX_IOV, &got);
		if (!n)
			return fb_errorf(-EINVAL, "%s %s: buffers end %llu bytes"
					 " short", call, what,
					 (unsigned long long)len);
		if (write)
			r = pwritev(fd, v, n, (off_t)foff);
		else
			r = preadv(fd, v, n, (off_t)foff);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fb_errorf(-errno, "%s %s at %llu: %s", call, what,
					 (unsigned long long)foff,
					 strerror(errno));
		if (r == 0 && !write && (flags & FB_PIO_ZERO_EOF)) {
			fb_iov_cursor_zero(c, len);
			return 0;
		}
		if (r == 0)
			return fb_errorf(-EIO, "%s %s at %llu: %s", call, what,
					 (unsigned long long)foff, write ?
					 "no progress" : "unexpected end of "
					 "file");
		fb_iov_cursor_advance(c, (uint64_t)r);
		foff += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

int fb_disk_pio_buf(int fd, bool write, uint64_t foff, void *buf,
		    uint64_t len, unsigned flags, const char *what)
{
	struct iovec v = { .iov_base = buf, .iov_len = (size_t)len };
	struct fb_iov_cursor c;

	fb_iov_cursor_init(&c, &v, 1);
	return fb_disk_pio(fd, write, foff, &c, len, flags, what);
}
