#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/error.h"
#include "util/file.h"

int fb_read_full(int fd, void *buf, size_t len, const char *what)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "read %s: %s", what,
					 strerror(errno));
		if (n == 0)
			return fb_errorf(-EIO, "read %s: file shrank while "
					 "being read", what);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fb_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fb_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = fb_errorf(-errno, "stat %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fb_errorf(-EINVAL, "%s is not a regular file", path);
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		err = fb_errorf(-EFBIG, "%s is %lld bytes, more than the %zu "
				"allowed", path, (long long)st.st_size, max);
		goto out_close;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		err = fb_errorf(-ENOMEM, "malloc %lld bytes for %s",
				(long long)st.st_size, path);
		goto out_close;
	}
	err = fb_read_full(fd, buf, (size_t)st.st_size, path);
	if (err < 0) {
		free(buf);
		goto out_close;
	}
	*data = buf;
	*len = (size_t)st.st_size;
out_close:
	close(fd);
	return err;
}

int fb_write_file_atomic(const char *path, const void *data, size_t len,
			 unsigned mode)
{
	char tmp[4096], dir[4096];
	char *slash;
	int fd, err, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return fb_errorf(-ENAMETOOLONG, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
	err = fb_write_full(fd, data, len);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return fb_errorf(err, "write %s: %s", path, strerror(-err));
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return 0;
}

int fb_read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int fb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		       const char *what)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "write %s: %s", what,
					 strerror(errno));
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int fb_pread_full(int fd, void *buf, size_t len, uint64_t off,
		      const char *what)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "read %s: %s", what,
					 strerror(errno));
		if (n == 0)
			return fb_errorf(-EIO, "read %s: unexpected end of file "
					 "at offset %llu", what,
					 (unsigned long long)off);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

void fb_close_fds_except(const int *keep, unsigned n)
{
	int sorted[64];
	unsigned m = 0;
	int from = 3;

	for (unsigned i = 0; i < n && m < 64; i++)
		if (keep[i] >= 3)
			sorted[m++] = keep[i];
	qsort(sorted, m, sizeof(sorted[0]), cmp_int);
	/* close_range(2) closes the gaps between the kept fds. */
	for (unsigned i = 0; i < m; i++) {
		if (sorted[i] > from)
			syscall(SYS_close_range, (unsigned)from,
				(unsigned)sorted[i] - 1, 0u);
		from = sorted[i] + 1;
	}
	syscall(SYS_close_range, (unsigned)from, ~0u, 0u);
}
