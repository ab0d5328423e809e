/* Disks without a VM (src/disk/): raw files, and chains of copy-on-write
 * layers over a raw base, checked byte for byte against a model of what
 * the disk should hold; the layer files' own bytes where the format
 * promises something about them; and every way a header or a chain can
 * be wrong, refused with a message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "disk/disk.h"
#include "disk/layer.h"
#include "util/error.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define CS (64 * KiB)

/* Header offsets, as docs/disk-format.md gives them. */
#define H_VERSION 8
#define H_CRC 16
#define H_FLAGS 20
#define H_CLUSTER_SIZE 24
#define H_PARENT_KIND 28
#define H_VIRTUAL_SIZE 32
#define H_UUID 40
#define H_BITMAP_LENGTH 64
#define H_PARENT_SIZE 80
#define H_PARENT_UUID 88
#define H_PARENT_NAME 104

struct env {
	char path[64];
	char path2[80];
	int dir;	/* the first layer directory */
	int dir2;	/* a second one, searched after */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	snprintf(e->path, sizeof(e->path), "/tmp/fb-test-disk-XXXXXX");
	assert_non_null(mkdtemp(e->path));
	snprintf(e->path2, sizeof(e->path2), "%s/d2", e->path);
	assert_int_equal(mkdir(e->path2, 0700), 0);
	e->dir = open(e->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	e->dir2 = open(e->path2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(e->dir >= 0 && e->dir2 >= 0);
	*state = e;
	return 0;
}

static void empty_dir(int dirfd)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "d2"))
			assert_int_equal(unlinkat(dirfd, de->d_name, 0), 0);
	closedir(d);
}

static int teardown(void **state)
{
	struct env *e = *state;

	empty_dir(e->dir2);
	empty_dir(e->dir);
	close(e->dir2);
	close(e->dir);
	assert_int_equal(rmdir(e->path2), 0);
	assert_int_equal(rmdir(e->path), 0);
	free(e);
	return 0;
}

/* --- helpers --------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_random(uint8_t *buf, uint64_t len, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint64_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(rnd(&s) >> 24);
}

static uint8_t *xmalloc(uint64_t len)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	return p;
}

static void write_file(int dirfd, const char *name, const void *data,
		       uint64_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
	close(fd);
}

/* A raw base of len bytes of seeded noise; returns its contents. */
static uint8_t *make_base(int dirfd, const char *name, uint64_t len,
			  uint64_t seed)
{
	uint8_t *buf = xmalloc(len);

	fill_random(buf, len, seed);
	write_file(dirfd, name, buf, len);
	return buf;
}

static uint8_t *slurp(int dirfd, const char *name, uint64_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = xmalloc((uint64_t)st.st_size + 1);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0),
			 (ssize_t)st.st_size);
	close(fd);
	*len = (uint64_t)st.st_size;
	return buf;
}

static uint32_t file_crc(int dirfd, const char *name)
{
	uint64_t len;
	uint8_t *buf = slurp(dirfd, name, &len);
	uint32_t crc = (uint32_t)crc32(0, buf, (uInt)len);

	free(buf);
	return crc;
}

static void disk_read(struct fb_disk *d, uint64_t off, void *buf,
		      uint64_t len)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	assert_int_equal(fb_disk_readv(d, off, &v, 1), 0);
}

static void disk_write(struct fb_disk *d, uint64_t off, const void *buf,
		       uint64_t len)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	assert_int_equal(fb_disk_writev(d, off, &v, 1), 0);
}

/* The whole disk equals the model. */
static void expect_disk(struct fb_disk *d, const uint8_t *model)
{
	uint8_t *buf = xmalloc(d->size);

	memset(buf, 0xa5, d->size);
	disk_read(d, 0, buf, d->size);
	assert_memory_equal(buf, model, d->size);
	free(buf);
}

static void expect_error(int got, int want, const char *text)
{
	if (got != want || !strstr(fb_last_error(), text))
		fail_msg("got %d \"%s\", want %d and \"%s\"", got,
			 fb_last_error(), want, text);
}

static struct fb_disk *open_chain(const struct env *e, const char *top,
				  bool ro)
{
	int dirs[2] = { e->dir, e->dir2 };
	struct fb_disk *d = NULL;
	int err = fb_disk_open_chain(dirs, 2, top, ro, "serial", &d);

	if (err)
		fail_msg("open chain %s: %d %s", top, err, fb_last_error());
	return d;
}

static int try_open(const struct env *e, const char *top, bool ro)
{
	int dirs[2] = { e->dir, e->dir2 };
	struct fb_disk *d = (struct fb_disk *)&d;
	int err = fb_disk_open_chain(dirs, 2, top, ro, NULL, &d);

	if (!err)
		fb_disk_close(d);
	else
		assert_null(d);
	return err;
}

static void raw_parent(struct fb_layer_parent *p, const char *name,
		       uint64_t size)
{
	memset(p, 0, sizeof(*p));
	p->kind = FB_LAYER_PARENT_RAW;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->size = size;
}

static void layer_parent(struct fb_layer_parent *p, const char *name,
			 const uint8_t uuid[16], uint64_t size)
{
	memset(p, 0, sizeof(*p));
	p->kind = FB_LAYER_PARENT_LAYER;
	snprintf(p->name, sizeof(p->name), "%s", name);
	memcpy(p->uuid, uuid, 16);
	p->size = size;
}

static void info_of(int dirfd, const char *name, struct fb_layer_info *info)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fb_layer_read_info(fd, info), 0);
	close(fd);
}

/* Rewrites len header bytes at off, with a CRC to match unless bad_crc. */
static void patch(int dirfd, const char *name, unsigned off,
		  const void *bytes, size_t len, bool bad_crc)
{
	uint8_t h[FB_LAYER_HEADER_SIZE];
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	uint32_t crc;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	memcpy(h + off, bytes, len);
	memset(h + H_CRC, 0, 4);
	crc = (uint32_t)crc32(0, h, sizeof(h)) + bad_crc;
	memcpy(h + H_CRC, &crc, 4);
	assert_int_equal(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
}

static void patch32(int dirfd, const char *name, unsigned off, uint32_t v)
{
	patch(dirfd, name, off, &v, 4, false);
}

static void patch64(int dirfd, const char *name, unsigned off, uint64_t v)
{
	patch(dirfd, name, off, &v, 8, false);
}

static void mark_frozen(int dirfd, const char *name)
{
	patch32(dirfd, name, H_FLAGS, FB_LAYER_F_FROZEN);
}

/* --- raw ------------------------------------------------------------- */

static struct fb_disk *open_raw(const struct env *e, const char *name,
				bool ro)
{
	struct fb_disk *d = NULL;
	int fd = openat(e->dir, name, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fb_disk_open_raw(fd, ro, "raw-serial-that-is-long",
					  &d), 0);
	return d;
}

static void test_raw(void **state)
{
	struct env *e = *state;
	uint64_t size = MiB + 100;
	uint8_t *model = make_base(e->dir, "raw", size, 1);
	uint8_t a[3000], b[777], got[4000];
	struct iovec v[3] = {
		{ a, sizeof(a) }, { NULL, 0 }, { b, sizeof(b) },
	};
	struct fb_disk *d;
	uint64_t len;
	uint8_t *file;
	int fd;

	d = open_raw(e, "raw", false);
	assert_string_equal(d->ops->kind, "raw");
	/* Rounded down to a sector; GET_ID's 20 bytes. */
	assert_int_equal(d->size, MiB);
	assert_string_equal(d->serial, "raw-serial-that-is-l");
	expect_disk(d, model);

	/* Scattered buffers, an unaligned offset: lands byte for byte. */
	fill_random(a, sizeof(a), 2);
	fill_random(b, sizeof(b), 3);
	assert_int_equal(fb_disk_writev(d, 12345, v, 3), 0);
	memcpy(model + 12345, a, sizeof(a));
	memcpy(model + 12345 + sizeof(a), b, sizeof(b));
	expect_disk(d, model);
	assert_int_equal(fb_disk_flush(d), 0);
	file = slurp(e->dir, "raw", &len);
	assert_int_equal(len, size);
	assert_memory_equal(file, model, size);
	free(file);

	/* Requests off the end, or that wrap around. */
	expect_error(fb_disk_check_range(d, MiB, 0), 0, "");
	expect_error(fb_disk_check_range(d, MiB, 1), -ENOSPC,
		     "off 1048576 len 1 is past the end of the disk (size "
		     "1048576)");
	expect_error(fb_disk_check_range(d, MiB - 512, 513), -ENOSPC,
		     "past the end");
	expect_error(fb_disk_check_range(d, UINT64_MAX - 1, 4), -EINVAL,
		     "overflows");
	expect_error(fb_disk_check_range(d, 4, UINT64_MAX - 1), -EINVAL,
		     "overflows");
	v[0].iov_len = 16;
	expect_error(fb_disk_readv(d, UINT64_MAX - 8, v, 1), -EINVAL,
		     "overflows");
	expect_error(fb_disk_writev(d, MiB - 8, v, 1), -ENOSPC, "past the end");
	expect_error(fb_disk_readv(d, 0, v, -1), -EINVAL, "-1 buffers");

	/* A file cut short under the disk reads as zeroes past its end. */
	fd = openat(e->dir, "raw", O_RDWR | O_CLOEXEC);
	assert_int_equal(ftruncate(fd, 1000), 0);
	close(fd);
	memset(got, 0xa5, sizeof(got));
	disk_read(d, 512, got, sizeof(got));
	assert_memory_equal(got, model + 512, 488);
	for (size_t i = 488; i < sizeof(got); i++)
		assert_int_equal(got[i], 0);
	fb_disk_close(d);

	/* Read-only: reads work, writes are refused before the file. */
	d = open_raw(e, "raw", true);
	assert_true(d->read_only);
	assert_int_equal(d->size, 512);
	disk_read(d, 0, got, 512);
	assert_memory_equal(got, model, 512);
	v[0].iov_len = 512;
	expect_error(fb_disk_writev(d, 0, v, 1), -EROFS, "read-only");
	assert_int_equal(fb_disk_flush(d), 0);
	assert_int_equal(fb_disk_chain_allocated(d), 0);
	expect_error(fb_disk_chain_freeze(d, e->dir, "x", NULL), -EINVAL,
		     "a raw disk has no layers");
	fb_disk_close(d);

	/* Less than a sector; the fd is taken even then. */
	write_file(e->dir, "tiny", "abc", 3);
	fd = openat(e->dir, "tiny", O_RDONLY | O_CLOEXEC);
	expect_error(fb_disk_open_raw(fd, true, NULL, &d), -EINVAL,
		     "less than one 512-byte sector");
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	free(model);
}

/* --- chains ---------------------------------------------------------- */

static void test_chain_over_base(void **state)
{
	struct env *e = *state;
	uint64_t size = 8 * MiB, len;
	uint8_t *base = make_base(e->dir, "base.img", size, 10);
	uint8_t *model = xmalloc(size), *file, w[4096];
	struct fb_layer_parent p;
	struct fb_layer_info info;
	uint32_t base_crc = file_crc(e->dir, "base.img");
	uint8_t uuid[16];
	struct fb_disk *d;

	raw_parent(&p, "base.img", size);
	/* The layer in the second directory, its base in the first. */
	assert_int_equal(fb_layer_create(e->dir2, "top", size, 0, &p, uuid),
			 0);
	info_of(e->dir2, "top", &info);
	assert_int_equal(info.version, 1);
	assert_int_equal(info.cluster_size, CS);
	assert_int_equal(info.virtual_size, size);
	assert_memory_equal(info.uuid, uuid, 16);
	assert_int_equal(info.parent.kind, FB_LAYER_PARENT_RAW);
	assert_string_equal(info.parent.name, "base.img");
	assert_int_equal(info.parent.size, size);
	assert_int_equal(info.flags, 0);
	assert_int_equal(info.bitmap_offset, FB_LAYER_HEADER_SIZE);
	assert_int_equal(info.bitmap_length, size / CS / 8);
	assert_int_equal(info.data_offset % CS, 0);
	assert_true(info.data_offset >= info.bitmap_offset +
		    info.bitmap_length);

	d = open_chain(e, "top", false);
	assert_string_equal(d->ops->kind, "chain");
	assert_int_equal(d->size, size);
	assert_string_equal(d->serial, "serial");
	assert_int_equal(fb_disk_chain_allocated(d), 0);
	expect_disk(d, base);

	fill_random(w, sizeof(w), 11);
	disk_write(d, MiB, w, sizeof(w));
	memcpy(model, base, size);
	memcpy(model + MiB, w, sizeof(w));
	expect_disk(d, model);
	assert_int_equal(fb_disk_chain_allocated(d), CS);
	assert_int_equal(fb_disk_flush(d), 0);

	/* The base is untouched; the top has the whole cluster where the
	 * format says, the rest of it copied up from the base. */
	assert_int_equal(file_crc(e->dir, "base.img"), base_crc);
	file = slurp(e->dir2, "top", &len);
	assert_int_equal(len, info.data_offset + size);
	assert_memory_equal(file + info.data_offset + MiB, model + MiB, CS);
	assert_int_equal(file[info.bitmap_offset + MiB / CS / 8],
			 1u << (MiB / CS % 8));
	free(file);
	fb_disk_close(d);

	/* Read-only over the same chain sees the write. */
	d = open_chain(e, "top", true);
	expect_disk(d, model);
	expect_error(fb_disk_writev(d, 0, NULL, 0), -EROFS, "read-only");
	fb_disk_close(d);
	free(base);
	free(model);
}

struct model_disk {
	struct fb_disk *d;
	uint8_t *model;
	uint64_t seed;
};

/* A write of len bytes at off, through three buffers of odd sizes, into
 * the disk and the model. */
static void write_both(struct model_disk *m, uint64_t off, uint64_t len)
{
	uint8_t *buf = xmalloc(len + 1);
	uint64_t a = len / 3, b = len / 5;
	struct iovec v[3] = {
		{ buf, a }, { buf + a, b }, { buf + a + b, len - a - b },
	};

	fill_random(buf, len, ++m->seed);
	assert_int_equal(fb_disk_writev(m->d, off, v, 3), 0);
	memcpy(m->model + off, buf, len);
	free(buf);
}

/* Reads [off, off + len) through scattered buffers and compares. */
static void check_both(struct model_disk *m, uint64_t off, uint64_t len)
{
	uint8_t *buf = xmalloc(len + 1);
	uint64_t a = len / 2;
	struct iovec v[2] = { { buf, a }, { buf + a, len - a } };

	memset(buf, 0x5a, len);
	assert_int_equal(fb_disk_readv(m->d, off, v, 2), 0);
	assert_memory_equal(buf, m->model + off, len);
	free(buf);
}

static void test_partial_writes(void **state)
{
	struct env *e = *state;
	uint64_t size = 4 * MiB;
	struct model_disk m = { .seed = 100 };
	uint8_t *base = make_base(e->dir, "base", size, 20);
	uint32_t base_crc = file_crc(e->dir, "base");
	struct fb_layer_parent p;

	raw_parent(&p, "base", size);
	assert_int_equal(fb_layer_create(e->dir, "top", size, CS, &p, NULL),
			 0);
	m.d = open_chain(e, "top", false);
	m.model = xmalloc(size);
	memcpy(m.model, base, size);

	/* 100 bytes of cluster 0, all of 1, 100 bytes of 2. */
	write_both(&m, CS - 100, CS + 200);
	check_both(&m, 0, 4 * CS);
	assert_int_equal(fb_disk_chain_allocated(m.d), 3 * CS);
	/* Inside one cluster, unaligned both ends. */
	write_both(&m, 5 * CS + 333, 777);
	check_both(&m, 4 * CS, 3 * CS);
	/* Across two clusters, both partial. */
	write_both(&m, 9 * CS - 1, 2);
	check_both(&m, 8 * CS, 2 * CS);
	/* Over clusters already there, and past them into new ones. */
	write_both(&m, CS / 2, 3 * CS);
	check_both(&m, 0, 5 * CS);
	/* The last byte of the disk, and the first. */
	write_both(&m, size - 1, 1);
	write_both(&m, 0, 1);
	expect_disk(m.d, m.model);
	assert_int_equal(file_crc(e->dir, "base"), base_crc);
	fb_disk_close(m.d);

	/* Closed without a flush: the bitmap reached the file anyway. */
	m.d = open_chain(e, "top", true);
	expect_disk(m.d, m.model);
	fb_disk_close(m.d);
	free(base);
	free(m.model);
}

/* Random writes of every shape, on a disk whose size is not a multiple
 * of the cluster size, over a base that ends mid-sector; the disk is
 * closed and reopened on the way. */
static void test_random_writes(void **state)
{
	struct env *e = *state;
	uint64_t size = 3 * MiB + 1536, s = 7, lo, hi;
	uint64_t base_len = size - 300;
	struct model_disk m = { .seed = 200 };
	uint8_t *base = make_base(e->dir, "base", base_len, 30);
	uint32_t base_crc = file_crc(e->dir, "base");
	struct fb_layer_parent p;

	raw_parent(&p, "base", size);
	assert_int_equal(fb_layer_create(e->dir, "top", size, 4096, &p, NULL),
			 0);
	m.model = calloc(1, size);
	assert_non_null(m.model);
	memcpy(m.model, base, base_len);
	m.d = open_chain(e, "top", false);
	expect_disk(m.d, m.model);
	for (int i = 0; i < 400; i++) {
		uint64_t len = 1 + rnd(&s) % (i % 4 ? 3000 : 40000);
		uint64_t off = rnd(&s) % (size - len + 1);

		if (i % 7 == 0)
			off &= ~4095ull;
		write_both(&m, off, len);
		lo = off > 5000 ? off - 5000 : 0;
		hi = off + len + 5000 < size ? off + len + 5000 : size;
		check_both(&m, lo, hi - lo);
		if (i % 100 == 99) {
			if (i % 200 == 199)
				assert_int_equal(fb_disk_flush(m.d), 0);
			fb_disk_close(m.d);
			m.d = open_chain(e, "top", false);
			expect_disk(m.d, m.model);
		}
	}
	expect_disk(m.d, m.model);
	fb_disk_close(m.d);
	assert_int_equal(file_crc(e->dir, "base"), base_crc);
	free(base);
	free(m.model);
}

static uint64_t allocated_bytes(int dirfd, const char *name)
{
	struct stat st;

	assert_int_equal(fstatat(dirfd, name, &st, 0), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void test_sparse(void **state)
{
	struct env *e = *state;
	uint64_t size = 1024 * MiB, before, after, grew;
	uint8_t *buf = xmalloc(MiB), zero[4096] = { 0 }, got[4096];
	struct fb_disk *d;

	/* No parent: what was never written is zeroes. */
	assert_int_equal(fb_layer_create(e->dir, "top", size, 0, NULL, NULL),
			 0);
	before = allocated_bytes(e->dir, "top");
	assert_true(before < MiB);
	d = open_chain(e, "top", false);
	disk_read(d, size - sizeof(got), got, sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	for (int i = 0; i < 10; i++) {
		fill_random(buf, MiB, 40 + i);
		disk_write(d, 300 * MiB + i * MiB, buf, MiB);
	}
	assert_int_equal(fb_disk_flush(d), 0);
	assert_int_equal(fb_disk_chain_allocated(d), 10 * MiB);
	after = allocated_bytes(e->dir, "top");
	grew = after - before;
	print_message("10 MiB written: the layer grew by %llu KiB\n",
		      (unsigned long long)(grew >> 10));
	assert_true(grew >= 10 * MiB && grew <= 10 * MiB + 256 * KiB);
	disk_read(d, 309 * MiB, got, sizeof(got));
	assert_memory_equal(got, buf, sizeof(got));
	disk_read(d, 310 * MiB, got, sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	fb_disk_close(d);
	free(buf);
}

static void test_freeze(void **state)
{
	struct env *e = *state;
	uint64_t size = 4 * MiB;
	struct model_disk m = { .seed = 300 };
	uint8_t *base = make_base(e->dir, "base", size, 50);
	uint8_t *frozen_model = xmalloc(size), uuid2[16];
	struct fb_layer_info i1, i2;
	struct fb_layer_parent p;
	struct fb_disk *ro;
	uint32_t crc1;

	raw_parent(&p, "base", size);
	assert_int_equal(fb_layer_create(e->dir, "l1", size, 0, &p, NULL), 0);
	m.d = open_chain(e, "l1", false);
	m.model = xmalloc(size);
	memcpy(m.model, base, size);
	write_both(&m, 100, 200 * KiB);
	write_both(&m, 2 * MiB + 5, 1000);
	memcpy(frozen_model, m.model, size);

	/* A clash is refused before anything changes. */
	write_file(e->dir, "taken", "x", 1);
	expect_error(fb_disk_chain_freeze(m.d, e->dir, "taken", NULL), -EEXIST,
		     "layer taken already exists");
	expect_error(fb_disk_chain_freeze(m.d, e->dir, "../l2", NULL), -EINVAL,
		     "not a plain file name");
	info_of(e->dir, "l1", &i1);
	assert_int_equal(i1.flags, 0);

	assert_int_equal(fb_disk_chain_freeze(m.d, e->dir, "l2", uuid2), 0);
	assert_int_equal(fb_disk_chain_allocated(m.d), 0);
	info_of(e->dir, "l1", &i1);
	info_of(e->dir, "l2", &i2);
	assert_int_equal(i1.flags, FB_LAYER_F_FROZEN);
	assert_int_equal(i2.flags, 0);
	assert_memory_equal(i2.uuid, uuid2, 16);
	assert_int_equal(i2.parent.kind, FB_LAYER_PARENT_LAYER);
	assert_string_equal(i2.parent.name, "l1");
	assert_memory_equal(i2.parent.uuid, i1.uuid, 16);
	assert_int_equal(i2.parent.size, size);
	crc1 = file_crc(e->dir, "l1");

	/* Writes after the freeze: over what l1 has, over the base, and
	 * partly over each. */
	expect_disk(m.d, m.model);
	write_both(&m, 150, 1000);
	write_both(&m, 3 * MiB, 2 * CS);
	write_both(&m, 200 * KiB - 10, 30);
	expect_disk(m.d, m.model);
	assert_int_equal(fb_disk_chain_allocated(m.d), 4 * CS);
	assert_int_equal(fb_disk_flush(m.d), 0);
	assert_int_equal(file_crc(e->dir, "l1"), crc1);

	/* l1 alone still reads as it was frozen, and is not writable. */
	ro = open_chain(e, "l1", true);
	expect_disk(ro, frozen_model);
	fb_disk_close(ro);
	expect_error(try_open(e, "l1", false), -EROFS,
		     "layer l1 is frozen");
	fb_disk_close(m.d);

	/* Reopened: l2 over l1 over the base. */
	m.d = open_chain(e, "l2", false);
	expect_disk(m.d, m.model);
	/* A second freeze stacks another layer. */
	assert_int_equal(fb_disk_chain_freeze(m.d, e->dir2, "l3", NULL), 0);
	write_both(&m, 0, 10);
	expect_disk(m.d, m.model);
	fb_disk_close(m.d);
	m.d = open_chain(e, "l3", false);
	expect_disk(m.d, m.model);
	fb_disk_close(m.d);
	free(base);
	free(frozen_model);
	free(m.model);
}

static void test_two_children(void **state)
{
	struct env *e = *state;
	uint64_t size = 2 * MiB;
	uint8_t *base = make_base(e->dir, "base", size, 60);
	struct model_disk a = { .seed = 400 }, b = { .seed = 500 };
	struct fb_layer_parent p;
	struct fb_layer_info info;
	uint8_t *at_fork = xmalloc(size);
	struct fb_disk *ro;

	raw_parent(&p, "base", size);
	assert_int_equal(fb_layer_create(e->dir, "parent", size, 0, &p, NULL),
			 0);
	a.d = open_chain(e, "parent", false);
	a.model = xmalloc(size);
	memcpy(a.model, base, size);
	write_both(&a, 1000, 300 * KiB);
	memcpy(at_fork, a.model, size);

	/* The fork: the parent's disk moves on to child-a; child-b, in the
	 * other directory, goes over the same frozen layer. */
	assert_int_equal(fb_disk_chain_freeze(a.d, e->dir, "child-a", NULL), 0);
	info_of(e->dir, "parent", &info);
	layer_parent(&p, "parent", info.uuid, size);
	assert_int_equal(fb_layer_create(e->dir2, "child-b", size, 0, &p,
					 NULL), 0);
	b.d = open_chain(e, "child-b", false);
	b.model = xmalloc(size);
	memcpy(b.model, at_fork, size);
	expect_disk(b.d, b.model);

	/* The same places, different bytes. */
	write_both(&a, 2000, 5000);
	write_both(&b, 2000, 5000);
	write_both(&a, MiB, CS);
	write_both(&b, MiB + 7, 3);
	assert_memory_not_equal(a.model + 2000, b.model + 2000, 5000);
	expect_disk(a.d, a.model);
	expect_disk(b.d, b.model);
	fb_disk_close(a.d);
	fb_disk_close(b.d);

	a.d = open_chain(e, "child-a", true);
	b.d = open_chain(e, "child-b", true);
	expect_disk(a.d, a.model);
	expect_disk(b.d, b.model);
	ro = open_chain(e, "parent", true);
	expect_disk(ro, at_fork);
	fb_disk_close(ro);
	fb_disk_close(a.d);
	fb_disk_close(b.d);
	free(base);
	free(at_fork);
	free(a.model);
	free(b.model);
}

/* --- what is refused ------------------------------------------------- */

static void copy_file(int dirfd, const char *from, const char *to)
{
	uint64_t len;
	uint8_t *buf = slurp(dirfd, from, &len);

	write_file(dirfd, to, buf, len);
	free(buf);
}

/* A fresh copy of the good layer "good" as "bad", patched by the
 * caller, must be refused with err and text, by fb_layer_read_info and
 * by an open of the chain (whose message names the file). */
static void expect_bad(struct env *e, int err, const char *text)
{
	struct fb_layer_info info;
	int fd = openat(e->dir, "bad", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	expect_error(fb_layer_read_info(fd, &info), err, text);
	close(fd);
	expect_error(try_open(e, "bad", true), err, text);
	assert_memory_equal(fb_last_error(), "bad", 3);
	assert_int_equal(unlinkat(e->dir, "bad", 0), 0);
	copy_file(e->dir, "good", "bad");
}

static void test_bad_headers(void **state)
{
	struct env *e = *state;
	uint64_t size = 8 * MiB;
	struct fb_layer_parent p;
	struct fb_layer_info info;
	uint8_t b = 'X';
	int fd;

	assert_int_equal(fb_layer_create(e->dir, "good", size, 0, NULL, NULL),
			 0);
	copy_file(e->dir, "good", "bad");
	assert_int_equal(try_open(e, "bad", false), 0);

	patch(e->dir, "bad", 0, "FBLAYEX", 8, false);
	expect_bad(e, -EINVAL, "is not a forkbox disk layer (bad magic)");
	/* A newer version is named as such, whatever its CRC says. */
	patch(e->dir, "bad", H_VERSION, "\2\0\0\0", 4, true);
	expect_bad(e, -EPROTONOSUPPORT,
		   ": layer version 2 is newer than this forkbox "
		   "understands (1)");
	patch(e->dir, "bad", H_UUID, "x", 1, true);
	expect_bad(e, -EBADMSG, "layer header is corrupt (CRC");
	patch32(e->dir, "bad", H_CLUSTER_SIZE, 65536 + 4096);
	expect_bad(e, -EINVAL, "cluster size 69632 is not a power of two");
	patch32(e->dir, "bad", H_CLUSTER_SIZE, 1024);
	expect_bad(e, -EINVAL, "cluster size 1024 is not a power of two");
	patch64(e->dir, "bad", H_BITMAP_LENGTH, size / CS / 8 + 1);
	expect_bad(e, -EINVAL, "bitmap length 17, 128 clusters need 16");
	patch32(e->dir, "bad", H_FLAGS, 6);
	expect_bad(e, -EINVAL, "unknown layer flags 0x6");
	patch(e->dir, "bad", 300, "\1", 1, false);
	expect_bad(e, -EINVAL, "reserved header bytes are not zero");
	patch32(e->dir, "bad", H_PARENT_KIND, 3);
	expect_bad(e, -EINVAL, "unknown parent kind 3");
	/* A parent name with a '/', or bytes after its NUL. */
	patch32(e->dir, "bad", H_PARENT_KIND, FB_LAYER_PARENT_RAW);
	patch64(e->dir, "bad", H_PARENT_SIZE, size);
	patch(e->dir, "bad", H_PARENT_NAME, "../base", 8, false);
	expect_bad(e, -EINVAL, "\"../base\" is not a plain file name");
	patch32(e->dir, "bad", H_PARENT_KIND, FB_LAYER_PARENT_RAW);
	patch64(e->dir, "bad", H_PARENT_SIZE, size);
	patch(e->dir, "bad", H_PARENT_NAME, "base\0x", 6, false);
	expect_bad(e, -EINVAL, "parent name field has bytes after its end");
	/* A parent whose size is not the disk's. */
	patch32(e->dir, "bad", H_PARENT_KIND, FB_LAYER_PARENT_RAW);
	patch(e->dir, "bad", H_PARENT_NAME, "base", 5, false);
	patch64(e->dir, "bad", H_PARENT_SIZE, size / 2);
	expect_bad(e, -EINVAL, "parent size 4194304 differs from the virtual "
		   "size 8388608");
	/* Cut short: the header alone, and all but the last cluster. */
	fd = openat(e->dir, "bad", O_RDWR | O_CLOEXEC);
	assert_int_equal(ftruncate(fd, 100), 0);
	close(fd);
	expect_bad(e, -EINVAL, "is truncated: 100 bytes");
	fd = openat(e->dir, "bad", O_RDWR | O_CLOEXEC);
	assert_int_equal(ftruncate(fd, CS + size - CS), 0);
	close(fd);
	expect_bad(e, -EINVAL, "its layout needs");
	/* A bit set past the last cluster: the header is fine, the chain
	 * (which reads the bitmap) is not. */
	patch64(e->dir, "bad", H_VIRTUAL_SIZE, size - 2 * CS);
	fd = openat(e->dir, "bad", O_RDWR | O_CLOEXEC);
	assert_int_equal(pwrite(fd, "\x80", 1, FB_LAYER_HEADER_SIZE + 15), 1);
	assert_int_equal(fb_layer_read_info(fd, &info), 0);
	assert_int_equal(info.clusters, 126);
	close(fd);
	expect_error(try_open(e, "bad", true), -EINVAL,
		     "bad: bitmap has bits past the last cluster");

	/* Creation checks the same things. */
	expect_error(fb_layer_create(e->dir, "x", size, 3 * 4096, NULL, NULL),
		     -EINVAL, "not a power of two");
	expect_error(fb_layer_create(e->dir, "x", size + 1, 0, NULL, NULL),
		     -EINVAL, "virtual size 8388609 is not a multiple of 512");
	expect_error(fb_layer_create(e->dir, "a/b", size, 0, NULL, NULL),
		     -EINVAL, "\"a/b\" is not a plain file name");
	expect_error(fb_layer_create(e->dir, "..", size, 0, NULL, NULL),
		     -EINVAL, "not a plain file name");
	raw_parent(&p, "x/y", size);
	expect_error(fb_layer_create(e->dir, "x", size, 0, &p, NULL),
		     -EINVAL, "\"x/y\" is not a plain file name");
	raw_parent(&p, "base", size - 512);
	expect_error(fb_layer_create(e->dir, "x", size, 0, &p, NULL),
		     -EINVAL, "differs from the virtual size");
	/* An existing name is left as it was. */
	write_file(e->dir, "x", &b, 1);
	expect_error(fb_layer_create(e->dir, "x", size, 0, NULL, NULL),
		     -EEXIST, "layer x already exists: not overwritten");
	assert_int_equal(file_crc(e->dir, "x"), (uint32_t)crc32(0, &b, 1));
}

static void test_bad_chains(void **state)
{
	struct env *e = *state;
	uint64_t size = 4 * MiB;
	struct fb_layer_parent p;
	struct fb_layer_info ia, ib;
	uint8_t wrong[16] = { 1, 2, 3 };
	char name[16], prev[16];

	/* Names: not plain, missing, a symbolic link. */
	expect_error(try_open(e, "d2/x", true), -EINVAL,
		     "\"d2/x\" is not a plain file name");
	expect_error(try_open(e, "..", true), -EINVAL, "not a plain file");
	expect_error(try_open(e, "nothing", true), -ENOENT,
		     "nothing is in none of the 2 disk layer directories");
	assert_int_equal(fb_layer_create(e->dir, "a", size, 0, NULL, NULL), 0);
	assert_int_equal(symlinkat("a", e->dir, "link"), 0);
	expect_error(try_open(e, "link", true), -ELOOP,
		     "link is a symbolic link");

	/* A parent that is not frozen. */
	info_of(e->dir, "a", &ia);
	layer_parent(&p, "a", ia.uuid, size);
	assert_int_equal(fb_layer_create(e->dir, "b", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "b", false), -EINVAL,
		     "b: parent a is not frozen");
	mark_frozen(e->dir, "a");
	assert_int_equal(try_open(e, "b", false), 0);

	/* A parent that is another layer of the same name. */
	layer_parent(&p, "a", wrong, size);
	assert_int_equal(fb_layer_create(e->dir, "c", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "c", true), -ESTALE,
		     "c: parent a has another uuid");

	/* A parent of another size. */
	assert_int_equal(fb_layer_create(e->dir, "big", 2 * size, 0, NULL,
					 NULL), 0);
	mark_frozen(e->dir, "big");
	info_of(e->dir, "big", &ib);
	layer_parent(&p, "big", ib.uuid, size);
	assert_int_equal(fb_layer_create(e->dir, "d", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "d", true), -ESTALE,
		     "d: parent big is 8388608 bytes, expected 4194304");

	/* A parent with other clusters. */
	assert_int_equal(fb_layer_create(e->dir, "small", size, 4096, NULL,
					 NULL), 0);
	mark_frozen(e->dir, "small");
	info_of(e->dir, "small", &ib);
	layer_parent(&p, "small", ib.uuid, size);
	assert_int_equal(fb_layer_create(e->dir, "e", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "e", true), -EINVAL,
		     "parent small has 4096-byte clusters");

	/* A raw base of another size. */
	free(make_base(e->dir, "base", size / 2, 1));
	raw_parent(&p, "base", size);
	assert_int_equal(fb_layer_create(e->dir, "f", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "f", true), -ESTALE,
		     "f: raw base base is 2097152 bytes, expected 4194304");
	raw_parent(&p, "nobase", size);
	assert_int_equal(fb_layer_create(e->dir, "g", size, 0, &p, NULL), 0);
	expect_error(try_open(e, "g", true), -ENOENT, "nobase is in none");

	/* A loop: a's parent made b (b's parent is a). */
	info_of(e->dir, "b", &ib);
	mark_frozen(e->dir, "b");
	patch32(e->dir, "a", H_PARENT_KIND, FB_LAYER_PARENT_LAYER);
	patch64(e->dir, "a", H_PARENT_SIZE, size);
	patch(e->dir, "a", H_PARENT_UUID, ib.uuid, 16, false);
	patch(e->dir, "a", H_PARENT_NAME, "b", 2, false);
	expect_error(try_open(e, "b", true), -ELOOP,
		     "the layer chain loops back to b");
	/* And onto itself. */
	patch(e->dir, "a", H_PARENT_UUID, ia.uuid, 16, false);
	patch(e->dir, "a", H_PARENT_NAME, "a", 2, false);
	expect_error(try_open(e, "a", true), -ELOOP,
		     "a: the layer chain loops back to a");

	/* Deeper than the cap: 64 layers open, 65 do not. */
	assert_int_equal(fb_layer_create(e->dir2, "z0", size, 0, NULL, NULL),
			 0);
	for (unsigned i = 1; i <= FB_LAYER_MAX_DEPTH; i++) {
		snprintf(prev, sizeof(prev), "z%u", i - 1);
		snprintf(name, sizeof(name), "z%u", i);
		mark_frozen(e->dir2, prev);
		info_of(e->dir2, prev, &ia);
		layer_parent(&p, prev, ia.uuid, size);
		assert_int_equal(fb_layer_create(e->dir2, name, size, 0, &p,
						 NULL), 0);
	}
	assert_int_equal(try_open(e, "z63", true), 0);
	expect_error(try_open(e, "z64", false), -ELOOP,
		     "z64: the layer chain is deeper than 64 layers");
}

/* A freeze that cannot complete leaves the disk as it was. */
static void test_freeze_failure(void **state)
{
	struct env *e = *state;
	uint64_t size = MiB;
	struct model_disk m = { .seed = 600 };
	struct fb_layer_info info;

	assert_int_equal(fb_layer_create(e->dir, "top", size, 0, NULL, NULL),
			 0);
	m.model = calloc(1, size);
	assert_non_null(m.model);
	m.d = open_chain(e, "top", false);
	write_both(&m, 10, 100);
	/* Not a directory: the create fails after the freeze. */
	expect_error(fb_disk_chain_freeze(m.d, -1, "next", NULL), -EBADF,
		     "next.tmp");
	info_of(e->dir, "top", &info);
	assert_int_equal(info.flags, 0);
	assert_false(m.d->read_only);
	write_both(&m, CS + 20, 100);
	fb_disk_close(m.d);
	m.d = open_chain(e, "top", false);
	expect_disk(m.d, m.model);
	fb_disk_close(m.d);
	free(m.model);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_over_base, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_partial_writes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_random_writes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeze, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_children, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_headers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_chains, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_freeze_failure, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
