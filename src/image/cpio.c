#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/cpio.h"
#include "util/error.h"

#define NEWC_MAGIC "070701"
#define NEWC_HDR_LEN 110u /* magic + 13 fields of 8 hex digits */
#define TRAILER_NAME "TRAILER!!!"
#define COPY_CHUNK (64u * 1024u)

/* Linux dev_t: 12-bit major, 20-bit minor. */
#define DEV_MAJOR_LIMIT (1u << 12)
#define DEV_MINOR_LIMIT (1u << 20)

void fb_cpio_init(struct fb_cpio *cpio, int fd)
{
	cpio->fd = fd;
	cpio->next_ino = 1;
	cpio->offset = 0;
	cpio->err = 0;
}

static int poison(struct fb_cpio *cpio, int err)
{
	cpio->err = err;
	return err;
}

static int write_all(struct fb_cpio *cpio, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(cpio->fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return poison(cpio, fb_errorf(-errno, "write cpio archive: %s",
						      strerror(errno)));
		}
		p += n;
		len -= (size_t)n;
		cpio->offset += (uint64_t)n;
	}
	return 0;
}

static int pad_to(struct fb_cpio *cpio, unsigned int align)
{
	static const char zeros[512];
	size_t rest = (size_t)(cpio->offset % align);

	if (rest == 0)
		return 0;
	return write_all(cpio, zeros, align - rest);
}

static int check_path(struct fb_cpio *cpio, const char *what, const char *path)
{
	size_t len = strnlen(path, FB_CPIO_NAME_MAX + 1);

	if (len == 0)
		return poison(cpio, fb_errorf(-EINVAL, "cpio: empty %s", what));
	if (len > FB_CPIO_NAME_MAX)
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s longer than %u bytes: %.40s...",
			what, FB_CPIO_NAME_MAX, path));
	return 0;
}

/* Names stay inside the archive's root whoever unpacks it, the kernel or a
 * host cpio run by hand. */
static int check_name(struct fb_cpio *cpio, const char *name)
{
	const char *comp;
	int err = check_path(cpio, "entry name", name);

	if (err)
		return err;
	if (name[0] == '/')
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: entry name must be relative: %s", name));
	for (comp = name; comp; comp = strchr(comp, '/')) {
		if (*comp == '/')
			comp++;
		if (strncmp(comp, "..", 2) == 0 && (comp[2] == '/' || comp[2] == '\0'))
			return poison(cpio, fb_errorf(-EINVAL,
				"cpio: entry name has a '..' component: %s", name));
	}
	return 0;
}

static int check_perm(struct fb_cpio *cpio, const char *name, mode_t perm)
{
	if (perm & ~(mode_t)07777)
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s: mode %o has bits beyond 07777", name,
			(unsigned int)perm));
	return 0;
}

static int check_size(struct fb_cpio *cpio, const char *name, uint64_t size)
{
	if (size > UINT32_MAX)
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s: %llu bytes, newc holds less than 4 GiB",
			name, (unsigned long long)size));
	return 0;
}

struct entry {
	const char *name;
	uint32_t mode; /* type and permission bits */
	uint32_t nlink;
	uint32_t size;
	uint32_t rdev_major;
	uint32_t rdev_minor;
};

/* Writes the header and the name, padded so the data starts 4-aligned. */
static int write_header(struct fb_cpio *cpio, const struct entry *e, uint32_t ino)
{
	char buf[NEWC_HDR_LEN + FB_CPIO_NAME_MAX + 1 + 3];
	size_t name_size = strlen(e->name) + 1;
	size_t len;
	int n;

	n = snprintf(buf, sizeof(buf),
		     "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08zX%08X",
		     NEWC_MAGIC, ino, e->mode, 0u /* uid */, 0u /* gid */,
		     e->nlink, 0u /* mtime */, e->size, 0u, 0u /* dev */,
		     e->rdev_major, e->rdev_minor, name_size, 0u /* check */);
	if (n != (int)NEWC_HDR_LEN)
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s: header is %d bytes, not %u", e->name, n,
			NEWC_HDR_LEN));
	memcpy(buf + NEWC_HDR_LEN, e->name, name_size);
	len = NEWC_HDR_LEN + name_size;
	/* offset is 4-aligned at every header, so aligning len is enough. */
	while (len % 4)
		buf[len++] = '\0';
	return write_all(cpio, buf, len);
}

static int add_entry(struct fb_cpio *cpio, const struct entry *e,
		     const void *data)
{
	int err = write_header(cpio, e, cpio->next_ino++);

	if (err)
		return err;
	if (e->size == 0)
		return 0;
	err = write_all(cpio, data, e->size);
	if (err)
		return err;
	return pad_to(cpio, 4);
}

static int check_entry(struct fb_cpio *cpio, const char *name, mode_t perm)
{
	int err;

	if (cpio->err)
		return cpio->err;
	err = check_name(cpio, name);
	if (err)
		return err;
	return check_perm(cpio, name, perm);
}

int fb_cpio_add_dir(struct fb_cpio *cpio, const char *name, mode_t perm)
{
	struct entry e = { .name = name, .mode = S_IFDIR | perm, .nlink = 2 };
	int err = check_entry(cpio, name, perm);

	return err ? err : add_entry(cpio, &e, NULL);
}

int fb_cpio_add_file(struct fb_cpio *cpio, const char *name, mode_t perm,
		     const void *data, size_t len)
{
	struct entry e = { .name = name, .mode = S_IFREG | perm, .nlink = 1 };
	int err = check_entry(cpio, name, perm);

	if (!err)
		err = check_size(cpio, name, len);
	if (err)
		return err;
	e.size = (uint32_t)len;
	return add_entry(cpio, &e, data);
}

int fb_cpio_add_symlink(struct fb_cpio *cpio, const char *name,
			const char *target)
{
	struct entry e = { .name = name, .mode = S_IFLNK | 0777, .nlink = 1 };
	int err = check_entry(cpio, name, 0777);

	if (!err)
		err = check_path(cpio, "symlink target", target);
	if (err)
		return err;
	/* A symlink's data is its target, without a NUL. */
	e.size = (uint32_t)strlen(target);
	return add_entry(cpio, &e, target);
}

int fb_cpio_add_chardev(struct fb_cpio *cpio, const char *name, mode_t perm,
			unsigned int major, unsigned int minor)
{
	struct entry e = { .name = name, .mode = S_IFCHR | perm, .nlink = 1,
			   .rdev_major = major, .rdev_minor = minor };
	int err = check_entry(cpio, name, perm);

	if (err)
		return err;
	if (major >= DEV_MAJOR_LIMIT || minor >= DEV_MINOR_LIMIT)
		return poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s: device %u:%u out of range", name, major, minor));
	return add_entry(cpio, &e, NULL);
}

static int copy_file_data(struct fb_cpio *cpio, int in, const char *host_path,
			  uint32_t size)
{
	char *buf = malloc(COPY_CHUNK);
	uint32_t left = size;
	int err = 0;

	if (!buf)
		return poison(cpio, fb_errorf(-ENOMEM, "cpio: out of memory"));
	while (left > 0 && !err) {
		size_t want = left < COPY_CHUNK ? left : COPY_CHUNK;
		ssize_t n = read(in, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = poison(cpio, fb_errorf(-errno, "read %s: %s",
						     host_path, strerror(errno)));
		else if (n == 0)
			/* The header already promised size bytes. */
			err = poison(cpio, fb_errorf(-EIO,
				"read %s: file shrank while being archived",
				host_path));
		else {
			err = write_all(cpio, buf, (size_t)n);
			left -= (uint32_t)n;
		}
	}
	free(buf);
	return err ? err : pad_to(cpio, 4);
}

int fb_cpio_add_file_from_path(struct fb_cpio *cpio, const char *name,
			       mode_t perm, const char *host_path)
{
	struct entry e = { .name = name, .mode = S_IFREG | perm, .nlink = 1 };
	struct stat st;
	int err = check_entry(cpio, name, perm);
	int in;

	if (err)
		return err;
	in = open(host_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return poison(cpio, fb_errorf(-errno, "open %s: %s", host_path,
					      strerror(errno)));
	if (fstat(in, &st) < 0)
		err = poison(cpio, fb_errorf(-errno, "fstat %s: %s", host_path,
					     strerror(errno)));
	else if (!S_ISREG(st.st_mode))
		err = poison(cpio, fb_errorf(-EINVAL,
			"cpio: %s is not a regular file", host_path));
	else
		err = check_size(cpio, host_path, (uint64_t)st.st_size);
	if (!err) {
		e.size = (uint32_t)st.st_size;
		err = write_header(cpio, &e, cpio->next_ino++);
	}
	if (!err && e.size > 0)
		err = copy_file_data(cpio, in, host_path, e.size);
	close(in);
	return err;
}

int fb_cpio_finish(struct fb_cpio *cpio)
{
	struct entry e = { .name = TRAILER_NAME, .nlink = 1 };
	int err;

	if (cpio->err)
		return cpio->err;
	err = write_header(cpio, &e, 0);
	if (err)
		return err;
	return pad_to(cpio, 512);
}
