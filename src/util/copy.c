#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/copy.h"
#include "util/error.h"

#define BYTES_BUF (1u << 20)
/* Below the kernel's per-call cap (MAX_RW_COUNT, just under 2 GiB), so a
 * short return means something happened, not that we asked too much. */
#define RANGE_CALL_MAX (1u << 30)

/* copy_file_range returned 0 before the end: a kernel that "copies"
 * nothing for some file pairs rather than failing (seen with special
 * filesystems), or a source that shrank. The byte copy tells the two
 * apart. */
#define FALL_BACK 1

const char *fb_copy_how_name(enum fb_copy_how how)
{
	switch (how) {
	case FB_COPY_REFLINK:
		return "reflink";
	case FB_COPY_RANGE:
		return "copy_file_range";
	case FB_COPY_BYTES:
		return "bytes";
	}
	return "unknown";
}

/* The errors that mean "this filesystem, kernel or pair of files cannot
 * do it this way", as opposed to a copy that went wrong (EIO, ENOSPC...),
 * which a slower method would only repeat. */
static bool can_fall_back(int err)
{
	switch (err) {
	case -EOPNOTSUPP:
	case -EXDEV:
	case -EINVAL:
	case -ENOSYS:
	case -ENOTTY:
		return true;
	}
	return false;
}

/* The next data extent of fd at or after from, clipped to size: 1 and
 * [*start, *end), or 0 when the rest is hole. */
static int next_extent(int fd, off_t from, off_t size, off_t *start,
		       off_t *end)
{
	off_t data, hole;

	if (from >= size)
		return 0;
	data = lseek(fd, from, SEEK_DATA);
	if (data < 0 && errno == ENXIO)
		return 0;
	if (data < 0 && errno == EINVAL) {
		/* A filesystem without SEEK_DATA: all of it is data. */
		*start = from;
		*end = size;
		return 1;
	}
	if (data < 0)
		return fb_errorf(-errno, "lseek SEEK_DATA at %lld: %s",
				 (long long)from, strerror(errno));
	if (data >= size)
		return 0;
	hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0)
		return fb_errorf(-errno, "lseek SEEK_HOLE at %lld: %s",
				 (long long)data, strerror(errno));
	*start = data;
	*end = hole < size ? hole : size;
	return 1;
}

static int copy_range(int in, int out, off_t size)
{
	off_t start, end, off = 0;
	int more;

	while ((more = next_extent(in, off, size, &start, &end)) > 0) {
		loff_t pin = start, pout = start;

		while (pin < end) {
			size_t want = (uint64_t)(end - pin) > RANGE_CALL_MAX ?
				      RANGE_CALL_MAX : (size_t)(end - pin);
			ssize_t n = copy_file_range(in, &pin, out, &pout,
						    want, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return fb_errorf(-errno, "copy_file_range at "
						 "%lld: %s", (long long)pin,
						 strerror(errno));
			if (n == 0) {
				fb_errorf(-EIO, "copy_file_range at %lld: "
					  "no progress before %lld",
					  (long long)pin, (long long)end);
				return FALL_BACK;
			}
		}
		off = end;
	}
	return more;
}

static int pwrite_full(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "write at %lld: %s",
					 (long long)off, strerror(errno));
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

static int copy_bytes(int in, int out, off_t size)
{
	off_t start, end, off = 0;
	uint8_t *buf;
	int more, err = 0;

	buf = malloc(BYTES_BUF);
	if (!buf)
		return fb_errorf(-ENOMEM, "malloc %u bytes", BYTES_BUF);
	while (!err && (more = next_extent(in, off, size, &start, &end)) > 0) {
		for (off = start; off < end;) {
			size_t want = end - off > BYTES_BUF ?
				      BYTES_BUF : (size_t)(end - off);
			ssize_t n = pread(in, buf, want, off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				err = fb_errorf(-errno, "read at %lld: %s",
						(long long)off,
						strerror(errno));
				break;
			}
			if (n == 0) {
				err = fb_errorf(-EIO, "read at %lld: source "
						"shrank while being copied",
						(long long)off);
				break;
			}
			err = pwrite_full(out, buf, (size_t)n, off);
			if (err)
				break;
			off += n;
		}
	}
	free(buf);
	return err ? err : more;
}

static int copy_one_way(enum fb_copy_how how, int in, int out, off_t size)
{
	switch (how) {
	case FB_COPY_REFLINK:
		if (ioctl(out, FICLONE, in) < 0)
			return fb_errorf(-errno, "ioctl FICLONE: %s",
					 strerror(errno));
		return 0;
	case FB_COPY_RANGE:
		return copy_range(in, out, size);
	case FB_COPY_BYTES:
		return copy_bytes(in, out, size);
	}
	return fb_errorf(-EINVAL, "no copy method %d", (int)how);
}

int fb_copy_fd_cow_from(int src_fd, int dst_fd, enum fb_copy_how first,
			enum fb_copy_how *how)
{
	struct stat s, d;
	off_t pos;
	int h, flags, err = 0;

	if ((unsigned)first > FB_COPY_BYTES)
		return fb_errorf(-EINVAL, "no copy method %d", (int)first);
	if (fstat(src_fd, &s) < 0)
		return fb_errorf(-errno, "fstat source: %s", strerror(errno));
	if (fstat(dst_fd, &d) < 0)
		return fb_errorf(-errno, "fstat destination: %s",
				 strerror(errno));
	if (!S_ISREG(s.st_mode) || !S_ISREG(d.st_mode))
		return fb_errorf(-EINVAL, "copy: the %s is not a regular file",
				 S_ISREG(s.st_mode) ? "destination" : "source");
	/* Emptying dst first would empty src too. */
	if (s.st_dev == d.st_dev && s.st_ino == d.st_ino)
		return fb_errorf(-EINVAL, "copy: source and destination are "
				 "the same file");
	/* pwrite would append at the end instead of writing at the
	 * offset, and FICLONE and copy_file_range refuse with EBADF. */
	flags = fcntl(dst_fd, F_GETFL);
	if (flags < 0)
		return fb_errorf(-errno, "fcntl F_GETFL: %s", strerror(errno));
	if (flags & O_APPEND)
		return fb_errorf(-EINVAL, "copy: destination is open with "
				 "O_APPEND");
	/* SEEK_DATA and SEEK_HOLE move src_fd's offset, which the caller
	 * may be using; the copy itself only reads at explicit offsets. */
	pos = lseek(src_fd, 0, SEEK_CUR);
	if (pos < 0)
		return fb_errorf(-errno, "lseek source: %s", strerror(errno));

	for (h = first; h <= FB_COPY_BYTES; h++) {
		/* From empty, so that a holey copy reads as zeros only where
		 * it wrote nothing, and what a method that gave up wrote is
		 * gone. */
		if (ftruncate(dst_fd, 0) < 0) {
			err = fb_errorf(-errno, "ftruncate destination: %s",
					strerror(errno));
			break;
		}
		/* The fallbacks leave a hole at the end unwritten, so they
		 * need the size set; set before the data, since writes past
		 * EOF make XFS preallocate blocks that then end up inside
		 * the file. FICLONE sets the size itself. */
		if (h != FB_COPY_REFLINK && ftruncate(dst_fd, s.st_size) < 0) {
			err = fb_errorf(-errno, "ftruncate destination to "
					"%lld: %s", (long long)s.st_size,
					strerror(errno));
			break;
		}
		err = copy_one_way(h, src_fd, dst_fd, s.st_size);
		if (!(err == FALL_BACK || can_fall_back(err)) ||
		    h == FB_COPY_BYTES)
			break;
	}
	if (lseek(src_fd, pos, SEEK_SET) < 0 && !err)
		err = fb_errorf(-errno, "lseek source: %s", strerror(errno));
	if (!err && how)
		*how = h;
	return err;
}

int fb_copy_fd_cow(int src_fd, int dst_fd, enum fb_copy_how *how)
{
	return fb_copy_fd_cow_from(src_fd, dst_fd, FB_COPY_REFLINK, how);
}

/* Makes the rename durable. Best effort: by now dst is the new file, and
 * an error here would say the copy failed when it did not. */
static void sync_dir_of(const char *path)
{
	char dir[4096];
	char *slash;
	int fd;

	if (fb_fmt(dir, sizeof(dir), "%s", path) < 0)
		return;
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int fb_copy_file_cow_from(const char *src, const char *dst,
			  enum fb_copy_how first, enum fb_copy_how *how)
{
	enum fb_copy_how used;
	char tmp[4096];
	struct stat st;
	int in, out, err;

	/* O_NONBLOCK so that a FIFO at src fails the regular-file check
	 * below instead of hanging the open; no effect on a regular file. */
	in = open(src, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (in < 0)
		return fb_errorf(-errno, "open %s: %s", src, strerror(errno));
	if (fstat(in, &st) < 0) {
		err = fb_errorf(-errno, "fstat %s: %s", src, strerror(errno));
		goto out_in;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fb_errorf(-EINVAL, "copy %s: not a regular file", src);
		goto out_in;
	}
	err = fb_fmt(tmp, sizeof(tmp), "%s.tmp.XXXXXX", dst);
	if (err < 0)
		goto out_in;
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		err = fb_errorf(-errno, "create %s.tmp.XXXXXX: %s", dst,
				strerror(errno));
		goto out_in;
	}
	err = fb_copy_fd_cow_from(in, out, first, &used);
	if (err < 0) {
		fb_errorf(err, "copy %s to %s: %s", src, dst, fb_last_error());
		goto out_tmp;
	}
	/* After the data, not before: a write by a caller without
	 * CAP_FSETID clears the set-user-ID and set-group-ID bits. */
	if (fchmod(out, st.st_mode & 07777) < 0) {
		err = fb_errorf(-errno, "fchmod %s: %s", tmp, strerror(errno));
		goto out_tmp;
	}
	if (fsync(out) < 0) {
		err = fb_errorf(-errno, "fsync %s: %s", tmp, strerror(errno));
		goto out_tmp;
	}
	err = close(out);
	out = -1;
	if (err < 0) {
		err = fb_errorf(-errno, "close %s: %s", tmp, strerror(errno));
		goto out_tmp;
	}
	if (rename(tmp, dst) < 0) {
		err = fb_errorf(-errno, "rename %s to %s: %s", tmp, dst,
				strerror(errno));
		goto out_tmp;
	}
	sync_dir_of(dst);
	if (how)
		*how = used;
	close(in);
	return 0;

out_tmp:
	if (out >= 0)
		close(out);
	unlink(tmp);
out_in:
	close(in);
	return err;
}

int fb_copy_file_cow(const char *src, const char *dst, enum fb_copy_how *how)
{
	return fb_copy_file_cow_from(src, dst, FB_COPY_REFLINK, how);
}
