/* virtio-blk without a VM: the test is the guest driver (a split queue in a
 * test guest memory, request chains written by hand, notify called) over a
 * real 1 MiB raw disk file, which the test also reads and writes behind the
 * device's back with pread/pwrite. Every wait has a deadline: poll on the
 * irqfd. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/virtio.h"
#include "disk/disk.h"
#include "util/error.h"
#include "util/le.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define DEADLINE_MS 10000

/* The wire format, written out here independently of the device's code
 * (virtio 1.2, 5.2). */
#define T_IN 0u
#define T_OUT 1u
#define T_FLUSH 4u
#define T_GET_ID 8u
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_FLUSH (1ull << 9)
#define SECTOR 512u
#define DISK_SIZE MiB
#define DISK_SECTORS (DISK_SIZE / SECTOR)
#define SERIAL "fb-test-disk-7" /* 14 bytes: GET_ID pads with 6 NULs */

/* Transport registers (virtio 1.2, 4.2.2). */
#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_INTERRUPT_STATUS 0x060

/* Guest memory layout. */
#define QSZ 128u
#define Q_DESC 0x100000ull
#define Q_AVAIL 0x101000ull
#define Q_USED 0x102000ull
#define HEAP 0x200000ull
#define HEAP_END 0x800000ull
#define FILL 0xee /* what a buffer holds before the device writes it */

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w; /* device-writable */
};

struct tb {
	char path[64];
	int fd;          /* the test's own view of the disk file */
	struct fb_guest_mem mem;
	struct fb_virtio_device d;
	struct fb_blk *blk;
	int irqfd;
	uint16_t avail_idx, used_seen, next_desc;
	uint64_t heap;
	int fds_before;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* The disk's bytes as the test wrote them: every sector differs. */
static uint8_t pat(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void *gp(struct tb *t, uint64_t gpa, uint64_t len)
{
	void *p = fb_gpa_ptr(&t->mem, gpa, len);

	assert_non_null(p);
	return p;
}

/* A fresh guest buffer of len bytes, filled with FILL. */
static uint64_t alloc(struct tb *t, uint32_t len)
{
	uint64_t gpa = t->heap;

	t->heap = (t->heap + len + 63) & ~63ull;
	assert_true(t->heap <= HEAP_END);
	memset(gp(t, gpa, len ? len : 1), FILL, len ? len : 1);
	return gpa;
}

static uint16_t used_idx(struct tb *t)
{
	return __atomic_load_n((uint16_t *)gp(t, Q_USED + 2, 2),
			       __ATOMIC_ACQUIRE);
}

/* Sets the queue up (rings zeroed) and starts the device (DRIVER_OK). */
static void driver_start(struct tb *t)
{
	struct fb_virtqueue *vq = &t->d.queues[0];

	memset(gp(t, Q_DESC, 0x3000), 0, 0x3000);
	vq->size = QSZ;
	vq->desc_gpa = Q_DESC;
	vq->avail_gpa = Q_AVAIL;
	vq->used_gpa = Q_USED;
	assert_int_equal(fb_vq_activate(vq, &t->mem), 0);
	vq->ready = true;
	t->avail_idx = t->used_seen = t->next_desc = 0;
	t->d.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	assert_int_equal(t->d.ops->activate(&t->d), 0);
}

/* What the transport does on a status write of 0. */
static void driver_reset(struct tb *t)
{
	t->d.ops->reset(&t->d);
	fb_vq_reset(&t->d.queues[0]);
	t->d.status = 0;
	t->d.failed = false;
	t->d.failure[0] = '\0';
}

static struct tb *tb_new_sized(bool read_only, uint64_t size)
{
	struct tb *t = calloc(1, sizeof(*t));
	uint8_t *buf = malloc(size);
	struct fb_disk *disk;
	int dfd;

	assert_non_null(t);
	assert_non_null(buf);
	t->fds_before = count_fds();
	snprintf(t->path, sizeof(t->path), "/tmp/fb-blk-XXXXXX");
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pat(i);
	assert_int_equal(pwrite(t->fd, buf, size, 0), (ssize_t)size);
	free(buf);
	dfd = open(t->path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	assert_true(dfd >= 0);
	/* Both views are open: no file is left behind, even by a failed
	 * test. */
	assert_int_equal(unlink(t->path), 0);
	assert_int_equal(fb_disk_open_raw(dfd, read_only, SERIAL, &disk), 0);

	assert_int_equal(fb_guest_mem_init(&t->mem, 16 * MiB), 0);
	t->heap = HEAP;
	t->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(t->irqfd >= 0);
	fb_virtio_device_init(&t->d, NULL, NULL, &t->mem, t->irqfd);
	assert_int_equal(fb_blk_init_device(&t->d, disk, &t->blk), 0);
	assert_non_null(t->blk);
	assert_ptr_equal(t->d.priv, t->blk);
	assert_ptr_equal(fb_blk_disk(t->blk), disk);
	driver_start(t);
	return t;
}

static struct tb *tb_new(bool read_only)
{
	return tb_new_sized(read_only, DISK_SIZE);
}

static void tb_free(struct tb *t)
{
	/* Joins the I/O thread and closes the disk. */
	t->d.ops->destroy(&t->d);
	assert_null(t->d.priv);
	pthread_mutex_destroy(&t->d.lock);
	close(t->irqfd);
	fb_guest_mem_release(&t->mem);
	close(t->fd);
	/* Nothing left open: the disk's file, the thread's eventfds. */
	assert_int_equal(count_fds(), t->fds_before);
	free(t);
}

/* Writes a chain into the descriptor table and makes it available (no
 * kick); returns its head. */
static uint16_t publish(struct tb *t, const struct seg *s, unsigned n)
{
	uint16_t head, *ring;

	assert_true(n >= 1 && n <= QSZ);
	if (t->next_desc + n > QSZ)
		t->next_desc = 0; /* earlier chains are all used by now */
	head = t->next_desc;
	for (unsigned i = 0; i < n; i++) {
		struct vdesc *dd = gp(t, Q_DESC + 16ull * (head + i), 16);

		dd->addr = s[i].gpa;
		dd->len = s[i].len;
		dd->flags = (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				       (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		dd->next = (uint16_t)(head + i + 1);
	}
	t->next_desc = (uint16_t)(head + n);
	ring = gp(t, Q_AVAIL + 4, 2ull * QSZ);
	ring[t->avail_idx % QSZ] = head;
	t->avail_idx++;
	__atomic_store_n((uint16_t *)gp(t, Q_AVAIL + 2, 2), t->avail_idx,
			 __ATOMIC_RELEASE);
	return head;
}

static void kick(struct tb *t)
{
	t->d.ops->notify(&t->d, 0);
}

/* Waits until the device has used n more chains, with a deadline. */
static void wait_used(struct tb *t, unsigned n)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	uint16_t want = (uint16_t)(t->used_seen + n);

	while (used_idx(t) != want) {
		struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
		uint64_t now = now_ms(), cnt;

		if (now >= deadline)
			fail_msg("device used %u of %u chains in %d ms",
				 (uint16_t)(used_idx(t) - t->used_seen), n,
				 DEADLINE_MS);
		if (poll(&p, 1, (int)(deadline - now)) > 0 &&
		    read(t->irqfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			fail_msg("irqfd read: %s", strerror(errno));
	}
}

/* The next used element: its head, and the bytes written into *len. */
static uint16_t take_used(struct tb *t, uint32_t *len)
{
	const uint8_t *e = gp(t, Q_USED + 4 + 8ull * (t->used_seen % QSZ), 8);
	uint32_t id;

	assert_true(used_idx(t) != t->used_seen);
	memcpy(&id, e, 4);
	memcpy(len, e + 4, 4);
	t->used_seen++;
	return (uint16_t)id;
}

/* Waits for the device to give up on the driver (fb_virtio_fail). No
 * interrupt announces that: poll the irqfd in short slices until the
 * deadline. */
static void wait_failed(struct tb *t)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;

	while (!__atomic_load_n(&t->d.failed, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
		uint64_t cnt;

		if (now_ms() >= deadline)
			fail_msg("the device did not fail in %d ms",
				 DEADLINE_MS);
		if (poll(&p, 1, 5) > 0 &&
		    read(t->irqfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			fail_msg("irqfd read: %s", strerror(errno));
	}
	assert_true(__atomic_load_n(&t->d.status, __ATOMIC_SEQ_CST) &
		    VIRTIO_STATUS_NEEDS_RESET);
	assert_true(strlen(t->d.failure) > 0);
}

static uint64_t put_hdr(struct tb *t, uint32_t type, uint64_t sector)
{
	uint64_t gpa = alloc(t, 16);
	uint8_t *h = gp(t, gpa, 16);

	fb_put_le32(h, type);
	memset(h + 4, 0, 4); /* reserved (ioprio) */
	fb_put_le64(h + 8, sector);
	return gpa;
}

/* Runs one chain to completion: its head comes back; returns the used
 * length. */
static uint32_t run_chain(struct tb *t, const struct seg *s, unsigned n)
{
	uint16_t head = publish(t, s, n);
	uint32_t len;

	kick(t);
	wait_used(t, 1);
	assert_int_equal(take_used(t, &len), head);
	return len;
}

/* A request: header, data at data_gpa split into segments of the given
 * lengths (writable for all but T_OUT), a status byte in a descriptor of
 * its own. Returns the status; *used the used length. */
static uint8_t request(struct tb *t, uint32_t type, uint64_t sector,
		       uint64_t data_gpa, const uint32_t *split,
		       unsigned nsplit, uint32_t *used)
{
	struct seg s[FB_VQ_MAX_SEGS + 2];
	uint64_t st = alloc(t, 1);
	unsigned n = 0;
	uint64_t off = 0;

	assert_true(nsplit <= FB_VQ_MAX_SEGS);
	s[n++] = (struct seg){ put_hdr(t, type, sector), 16, false };
	for (unsigned i = 0; i < nsplit; i++) {
		s[n++] = (struct seg){ data_gpa + off, split[i],
				       type != T_OUT };
		off += split[i];
	}
	s[n++] = (struct seg){ st, 1, true };
	*used = run_chain(t, s, n);
	return *(uint8_t *)gp(t, st, 1);
}

static uint8_t read_sectors(struct tb *t, uint64_t sector, uint32_t len,
			    uint64_t *data_gpa, uint32_t *used)
{
	*data_gpa = alloc(t, len);
	return request(t, T_IN, sector, *data_gpa, &len, 1, used);
}

static void expect_pattern(struct tb *t, uint64_t gpa, uint64_t disk_off,
			   uint32_t len)
{
	const uint8_t *p = gp(t, gpa, len);

	for (uint32_t i = 0; i < len; i++)
		if (p[i] != pat(disk_off + i))
			fail_msg("byte %u of the data (disk offset %llu) is "
				 "0x%02x, the disk has 0x%02x", i,
				 (unsigned long long)(disk_off + i), p[i],
				 pat(disk_off + i));
}

/* The file holds the pattern everywhere but [skip, skip + skip_len). */
static void expect_file_pattern(struct tb *t, uint64_t skip,
				uint64_t skip_len)
{
	uint8_t *buf = malloc(DISK_SIZE);

	assert_non_null(buf);
	assert_int_equal(pread(t->fd, buf, DISK_SIZE, 0), (ssize_t)DISK_SIZE);
	for (uint64_t i = 0; i < DISK_SIZE; i++) {
		if (i >= skip && i - skip < skip_len)
			continue;
		if (buf[i] != pat(i))
			fail_msg("the file changed at offset %llu",
				 (unsigned long long)i);
	}
	free(buf);
}

/* A good request still works: the device did not wedge. */
static void expect_device_works(struct tb *t)
{
	uint64_t data;
	uint32_t used;

	assert_int_equal(read_sectors(t, 5, 2 * SECTOR, &data, &used), S_OK);
	assert_int_equal(used, 2 * SECTOR + 1);
	expect_pattern(t, data, 5 * SECTOR, 2 * SECTOR);
}

/* --- the tests ------------------------------------------------------- */

static void test_read_split(void **state)
{
	struct tb *t = tb_new(false);
	/* Sectors 3..10: 8 sectors over three segments that cut sectors. */
	const uint32_t split[3] = { 1000, 2000, 8 * SECTOR - 3000 };
	uint64_t data = alloc(t, 8 * SECTOR), guard = alloc(t, 64);
	uint32_t used;

	assert_int_equal(request(t, T_IN, 3, data, split, 3, &used), S_OK);
	assert_int_equal(used, 8 * SECTOR + 1);
	expect_pattern(t, data, 3 * SECTOR, 8 * SECTOR);
	/* Nothing past the buffer. */
	assert_int_equal(*(uint8_t *)gp(t, guard, 1), FILL);
	assert_int_equal(fb_blk_requests(t->blk), 1);
	assert_true(__atomic_load_n(&t->d.interrupt_status, __ATOMIC_SEQ_CST)
		    & 1);
	assert_false(t->d.failed);

	/* The first and the last sector. */
	assert_int_equal(read_sectors(t, 0, SECTOR, &data, &used), S_OK);
	expect_pattern(t, data, 0, SECTOR);
	assert_int_equal(read_sectors(t, DISK_SECTORS - 1, SECTOR, &data,
				      &used), S_OK);
	assert_int_equal(used, SECTOR + 1);
	expect_pattern(t, data, DISK_SIZE - SECTOR, SECTOR);
	tb_free(t);
}

/* Any layout (VIRTIO_F_VERSION_1): the header split over two descriptors,
 * the status byte in the same descriptor as the data. */
static void test_any_layout(void **state)
{
	struct tb *t = tb_new(false);
	uint64_t hdr = put_hdr(t, T_IN, 20);
	uint64_t buf = alloc(t, SECTOR + 1);
	struct seg s[3] = {
		{ hdr, 7, false }, { hdr + 7, 9, false },
		{ buf, SECTOR + 1, true },
	};
	uint64_t whole;
	uint8_t *p;

	assert_int_equal(run_chain(t, s, 3), SECTOR + 1);
	expect_pattern(t, buf, 20 * SECTOR, SECTOR);
	assert_int_equal(*(uint8_t *)gp(t, buf + SECTOR, 1), S_OK);

	/* A write whose header and data share one descriptor. */
	whole = alloc(t, 16 + SECTOR);
	memcpy(gp(t, whole, 16), gp(t, put_hdr(t, T_OUT, 30), 16), 16);
	p = gp(t, whole + 16, SECTOR);
	for (unsigned i = 0; i < SECTOR; i++)
		p[i] = (uint8_t)(0xa5 ^ i);
	buf = alloc(t, 1);
	s[0] = (struct seg){ whole, 16 + SECTOR, false };
	s[1] = (struct seg){ buf, 1, true };
	assert_int_equal(run_chain(t, s, 2), 1);
	assert_int_equal(*(uint8_t *)gp(t, buf, 1), S_OK);
	{
		uint8_t got[SECTOR];

		assert_int_equal(pread(t->fd, got, SECTOR, 30 * SECTOR),
				 SECTOR);
		assert_memory_equal(got, p, SECTOR);
	}
	expect_file_pattern(t, 30 * SECTOR, SECTOR);
	tb_free(t);
}

static void test_write(void **state)
{
	struct tb *t = tb_new(false);
	const uint32_t split[2] = { 700, 2 * SECTOR - 700 };
	uint64_t data = alloc(t, 2 * SECTOR), back;
	uint8_t *p = gp(t, data, 2 * SECTOR), file[2 * SECTOR];
	uint32_t used;

	for (unsigned i = 0; i < 2 * SECTOR; i++)
		p[i] = (uint8_t)(i * 31 + 5);
	assert_int_equal(request(t, T_OUT, 100, data, split, 2, &used), S_OK);
	assert_int_equal(used, 1); /* only the status byte is written */
	assert_int_equal(pread(t->fd, file, sizeof(file), 100 * SECTOR),
			 (ssize_t)sizeof(file));
	assert_memory_equal(file, p, sizeof(file));
	/* Sectors 99 and 102 are untouched, and everything else. */
	expect_file_pattern(t, 100 * SECTOR, 2 * SECTOR);

	/* And back through the device. */
	assert_int_equal(read_sectors(t, 100, 2 * SECTOR, &back, &used), S_OK);
	assert_memory_equal(gp(t, back, 2 * SECTOR), p, 2 * SECTOR);
	assert_int_equal(fb_blk_requests(t->blk), 2);
	tb_free(t);
}

static void test_flush(void **state)
{
	struct tb *t = tb_new(false);
	uint32_t used;

	assert_int_equal(request(t, T_FLUSH, 0, 0, NULL, 0, &used), S_OK);
	assert_int_equal(used, 1);
	tb_free(t);
}

static void test_get_id(void **state)
{
	struct tb *t = tb_new(false);
	uint32_t len = 20, used;
	uint64_t id = alloc(t, 20);
	char want[20] = SERIAL; /* the rest NUL */

	assert_int_equal(request(t, T_GET_ID, 0, id, &len, 1, &used), S_OK);
	assert_int_equal(used, 20 + 1);
	assert_memory_equal(gp(t, id, 20), want, 20);

	/* A larger buffer gets the 20 bytes, and nothing after them. */
	len = 64;
	id = alloc(t, 64);
	assert_int_equal(request(t, T_GET_ID, 0, id, &len, 1, &used), S_OK);
	assert_int_equal(used, 20 + 1);
	assert_memory_equal(gp(t, id, 20), want, 20);
	assert_int_equal(*(uint8_t *)gp(t, id + 20, 1), FILL);
	assert_int_equal(*(uint8_t *)gp(t, id + 63, 1), FILL);
	tb_free(t);
}

static void test_unsupported_type(void **state)
{
	struct tb *t = tb_new(false);
	uint32_t len = SECTOR, used;
	uint64_t data = alloc(t, SECTOR);

	assert_int_equal(request(t, 99, 0, data, &len, 1, &used), S_UNSUPP);
	assert_int_equal(used, 1);
	assert_int_equal(*(uint8_t *)gp(t, data, 1), FILL);
	/* Discard and write-zeroes are not offered either. */
	assert_int_equal(request(t, 11, 0, data, &len, 1, &used), S_UNSUPP);
	assert_int_equal(request(t, 13, 0, data, &len, 1, &used), S_UNSUPP);
	assert_false(t->d.failed);
	expect_device_works(t);
	tb_free(t);
}

static void test_out_of_range(void **state)
{
	struct tb *t = tb_new(false);
	const uint64_t bad[] = {
		DISK_SECTORS,             /* last sector + 1 */
		DISK_SECTORS + 1000,
		UINT64_MAX / SECTOR,      /* the byte offset overflows with len */
		UINT64_MAX / SECTOR + 1,  /* the byte offset overflows */
		UINT64_MAX - 1,
		UINT64_MAX,
	};
	uint32_t len = SECTOR, len2 = 2 * SECTOR, used;
	uint64_t data;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(read_sectors(t, bad[i], SECTOR, &data,
					      &used), S_IOERR);
		assert_int_equal(used, 1);
		assert_int_equal(*(uint8_t *)gp(t, data, 1), FILL);
		data = alloc(t, SECTOR);
		memset(gp(t, data, SECTOR), 0x11, SECTOR);
		assert_int_equal(request(t, T_OUT, bad[i], data, &len, 1,
					 &used), S_IOERR);
		assert_int_equal(used, 1);
		expect_device_works(t);
	}
	/* Straddling the end: the last sector and one past it. */
	assert_int_equal(read_sectors(t, DISK_SECTORS - 1, 2 * SECTOR, &data,
				      &used), S_IOERR);
	data = alloc(t, 2 * SECTOR);
	memset(gp(t, data, 2 * SECTOR), 0x22, 2 * SECTOR);
	assert_int_equal(request(t, T_OUT, DISK_SECTORS - 1, data, &len2, 1,
				 &used), S_IOERR);
	expect_file_pattern(t, 0, 0);
	assert_false(t->d.failed);
	expect_device_works(t);
	tb_free(t);
}

static void test_partial_sector(void **state)
{
	struct tb *t = tb_new(false);
	uint32_t len = SECTOR - 12, len2 = SECTOR + 188, used;
	uint64_t data = alloc(t, SECTOR + 188);

	assert_int_equal(request(t, T_IN, 2, data, &len, 1, &used), S_IOERR);
	assert_int_equal(used, 1);
	assert_int_equal(request(t, T_IN, 2, data, &len2, 1, &used), S_IOERR);
	memset(gp(t, data, SECTOR + 188), 0x33, SECTOR + 188);
	assert_int_equal(request(t, T_OUT, 2, data, &len, 1, &used), S_IOERR);
	assert_int_equal(request(t, T_OUT, 2, data, &len2, 1, &used),
			 S_IOERR);
	expect_file_pattern(t, 0, 0);
	assert_false(t->d.failed);
	expect_device_works(t);
	tb_free(t);
}

static uint32_t mmio_read32(struct tb *t, uint64_t off)
{
	uint32_t v;

	fb_virtio_mmio_ops.read(&t->d, off, (uint8_t *)&v, 4);
	return v;
}

static uint64_t offered_features(struct tb *t)
{
	uint32_t sel = 0;
	uint64_t f;

	fb_virtio_mmio_ops.write(&t->d, REG_DEVICE_FEATURES_SEL,
				 (uint8_t *)&sel, 4);
	f = mmio_read32(t, REG_DEVICE_FEATURES);
	sel = 1;
	fb_virtio_mmio_ops.write(&t->d, REG_DEVICE_FEATURES_SEL,
				 (uint8_t *)&sel, 4);
	f |= (uint64_t)mmio_read32(t, REG_DEVICE_FEATURES) << 32;
	/* What the transport offers is what the device says. */
	assert_true(f == (t->d.ops->features | t->d.extra_features |
			  VIRTIO_F_VERSION_1));
	return f;
}

static void test_read_only(void **state)
{
	struct tb *t = tb_new(true);
	uint32_t len = 2 * SECTOR, used;
	uint64_t data = alloc(t, 2 * SECTOR), back;

	assert_true((t->d.ops->features | t->d.extra_features) & F_RO);
	assert_true(offered_features(t) & F_RO);

	memset(gp(t, data, 2 * SECTOR), 0x44, 2 * SECTOR);
	assert_int_equal(request(t, T_OUT, 4, data, &len, 1, &used), S_IOERR);
	assert_int_equal(used, 1);
	expect_file_pattern(t, 0, 0);
	/* Reads and flushes still work. */
	assert_int_equal(read_sectors(t, 4, 2 * SECTOR, &back, &used), S_OK);
	expect_pattern(t, back, 4 * SECTOR, 2 * SECTOR);
	assert_int_equal(request(t, T_FLUSH, 0, 0, NULL, 0, &used), S_OK);
	assert_false(t->d.failed);
	tb_free(t);
}

static void test_config(void **state)
{
	struct tb *t = tb_new(false);
	uint8_t cfg[24];
	uint64_t cap, f;
	uint32_t seg_max;

	assert_int_equal(mmio_read32(t, REG_DEVICE_ID), VIRTIO_ID_BLOCK);
	f = offered_features(t);
	assert_false(f & F_RO); /* a writable disk */
	assert_true(f & F_SEG_MAX);
	assert_true(f & F_FLUSH);
	assert_true(f & VIRTIO_F_VERSION_1);

	/* Through the device op ... */
	t->d.ops->config_read(&t->d, 0, cfg, sizeof(cfg));
	cap = fb_le64(cfg);
	assert_int_equal(cap, DISK_SIZE / SECTOR);
	seg_max = fb_le32(cfg + 12);
	assert_true(seg_max >= 1);
	/* ... and through the transport, as a driver reads it. */
	memset(cfg, 0xff, 8);
	fb_virtio_mmio_ops.read(&t->d, FB_VIRTIO_MMIO_CONFIG, cfg, 8);
	assert_memory_equal(cfg, &cap, 8); /* x86: little-endian */
	assert_int_equal(mmio_read32(t, FB_VIRTIO_MMIO_CONFIG + 4), 0);
	assert_int_equal(mmio_read32(t, FB_VIRTIO_MMIO_CONFIG + 12), seg_max);
	tb_free(t);
}

/* A disk whose file is not a whole number of sectors: the tail is not
 * offered, and not readable. */
static void test_config_partial_tail(void **state)
{
	struct tb *t = tb_new_sized(false, 8 * SECTOR + 100);
	uint64_t cap, data;
	uint32_t used;

	t->d.ops->config_read(&t->d, 0, (uint8_t *)&cap, 8);
	assert_int_equal(cap, 8);
	assert_int_equal(read_sectors(t, 7, SECTOR, &data, &used), S_OK);
	expect_pattern(t, data, 7 * SECTOR, SECTOR);
	assert_int_equal(read_sectors(t, 8, SECTOR, &data, &used), S_IOERR);
	tb_free(t);
}

/* What seg_max promises holds: that many data segments, both ways. */
static void test_seg_max(void **state)
{
	struct tb *t = tb_new(false);
	uint32_t seg_max, used, split[FB_VQ_MAX_SEGS], file_len;
	uint64_t data;
	uint8_t *p, *file;

	t->d.ops->config_read(&t->d, 12, (uint8_t *)&seg_max, 4);
	assert_true(seg_max >= 1 && seg_max <= FB_VQ_MAX_SEGS);
	for (unsigned i = 0; i < seg_max; i++)
		split[i] = SECTOR;
	data = alloc(t, seg_max * SECTOR);
	assert_int_equal(request(t, T_IN, 40, data, split, seg_max, &used),
			 S_OK);
	assert_int_equal(used, seg_max * SECTOR + 1);
	expect_pattern(t, data, 40 * SECTOR, seg_max * SECTOR);

	file_len = seg_max * SECTOR;
	p = gp(t, data, file_len);
	for (unsigned i = 0; i < file_len; i++)
		p[i] = (uint8_t)~pat(i);
	assert_int_equal(request(t, T_OUT, 500, data, split, seg_max, &used),
			 S_OK);
	file = malloc(file_len);
	assert_non_null(file);
	assert_int_equal(pread(t->fd, file, file_len, 500 * SECTOR),
			 (ssize_t)file_len);
	assert_memory_equal(file, p, file_len);
	free(file);
	tb_free(t);
}

/* Several requests in one kick, each with its own used element. */
static void test_batch(void **state)
{
	struct tb *t = tb_new(false);
	enum { N = 12 };
	uint64_t data[N], st[N];
	uint16_t head[N];
	uint32_t len;

	for (unsigned i = 0; i < N; i++) {
		struct seg s[3];

		data[i] = alloc(t, (i % 3 + 1) * SECTOR);
		st[i] = alloc(t, 1);
		s[0] = (struct seg){ put_hdr(t, T_IN, 7 * i), 16, false };
		s[1] = (struct seg){ data[i], (i % 3 + 1) * SECTOR, true };
		s[2] = (struct seg){ st[i], 1, true };
		head[i] = publish(t, s, 3);
	}
	kick(t);
	wait_used(t, N);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(take_used(t, &len), head[i]);
		assert_int_equal(len, (i % 3 + 1) * SECTOR + 1);
		assert_int_equal(*(uint8_t *)gp(t, st[i], 1), S_OK);
		expect_pattern(t, data[i], 7ull * i * SECTOR,
			       (i % 3 + 1) * SECTOR);
	}
	assert_int_equal(fb_blk_requests(t->blk), N);
	tb_free(t);
}

/* Quiesced, the device serves nothing; unquiesced, it catches up. */
static void test_quiesce(void **state)
{
	struct tb *t = tb_new(false);
	struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
	uint64_t data = alloc(t, SECTOR), st = alloc(t, 1);
	struct seg s[3] = {
		{ put_hdr(t, T_IN, 9), 16, false },
		{ data, SECTOR, true }, { st, 1, true },
	};
	uint64_t cnt;
	uint32_t len;
	uint16_t head;

	t->d.ops->quiesce(&t->d);
	head = publish(t, s, 3);
	kick(t);
	/* A bounded look for what must not happen. */
	if (poll(&p, 1, 100) > 0)
		assert_true(read(t->irqfd, &cnt, sizeof(cnt)) == 8);
	assert_int_equal(used_idx(t), 0);
	assert_int_equal(*(uint8_t *)gp(t, data, 1), FILL);
	assert_int_equal(*(uint8_t *)gp(t, st, 1), FILL);
	t->d.ops->unquiesce(&t->d);
	wait_used(t, 1);
	assert_int_equal(take_used(t, &len), head);
	assert_int_equal(len, SECTOR + 1);
	assert_int_equal(*(uint8_t *)gp(t, st, 1), S_OK);
	expect_pattern(t, data, 9 * SECTOR, SECTOR);
	tb_free(t);
}

/* A chain the device cannot answer breaks the protocol: the device fails
 * (NEEDS_RESET), uses nothing more, does not touch the disk; after a reset
 * it works again. A good request queued behind the bad one is not served
 * while failed. */
static void expect_violation(struct tb *t, const struct seg *bad, unsigned n)
{
	uint64_t data = alloc(t, SECTOR), st = alloc(t, 1);
	struct seg good[3] = {
		{ put_hdr(t, T_IN, 1), 16, false },
		{ data, SECTOR, true }, { st, 1, true },
	};
	unsigned long before = fb_blk_requests(t->blk);

	publish(t, bad, n);
	publish(t, good, 3);
	kick(t);
	wait_failed(t);
	/* Failed before it let go of its lock: nothing more was served. */
	t->d.ops->quiesce(&t->d);
	assert_int_equal(used_idx(t), t->used_seen);
	assert_int_equal(*(uint8_t *)gp(t, st, 1), FILL);
	t->d.ops->unquiesce(&t->d);
	assert_int_equal(fb_blk_requests(t->blk), before);
	expect_file_pattern(t, 0, 0);

	driver_reset(t);
	driver_start(t);
	expect_device_works(t);
	assert_false(t->d.failed);
}

static void test_no_status_byte(void **state)
{
	struct tb *t = tb_new(false);
	uint64_t data = alloc(t, SECTOR);
	struct seg bad[2] = {
		{ put_hdr(t, T_OUT, 6), 16, false }, { data, SECTOR, false },
	};

	memset(gp(t, data, SECTOR), 0x55, SECTOR);
	expect_violation(t, bad, 2); /* a write with nowhere to say how */
	bad[0] = (struct seg){ put_hdr(t, T_FLUSH, 0), 16, false };
	expect_violation(t, bad, 1); /* the header alone */
	tb_free(t);
}

static void test_short_header(void **state)
{
	struct tb *t = tb_new(false);
	uint64_t hdr = put_hdr(t, T_IN, 0), data = alloc(t, SECTOR);
	uint64_t st = alloc(t, 1);
	struct seg bad[3] = {
		{ hdr, 8, false }, { data, SECTOR, true }, { st, 1, true },
	};

	expect_violation(t, bad, 3);
	assert_int_equal(*(uint8_t *)gp(t, data, 1), FILL);
	assert_int_equal(*(uint8_t *)gp(t, st, 1), FILL);
	/* 15 bytes in two pieces. */
	bad[0] = (struct seg){ hdr, 10, false };
	bad[1] = (struct seg){ hdr + 10, 5, false };
	expect_violation(t, bad, 3);
	/* No readable byte at all: the header is in writable memory. */
	bad[0] = (struct seg){ hdr, 16, true };
	bad[1] = (struct seg){ data, SECTOR, true };
	expect_violation(t, bad, 3);
	tb_free(t);
}

/* When reset returns the device touches the queue no more (the
 * transport forgets the queue only after it), and it starts clean. */
static void test_reset_restart(void **state)
{
	struct tb *t = tb_new(false);
	struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
	uint64_t data, st, cnt;
	uint32_t used;

	assert_int_equal(read_sectors(t, 1, SECTOR, &data, &used), S_OK);

	t->d.ops->reset(&t->d);
	data = alloc(t, SECTOR);
	st = alloc(t, 1);
	{
		struct seg s[3] = {
			{ put_hdr(t, T_IN, 2), 16, false },
			{ data, SECTOR, true }, { st, 1, true },
		};

		publish(t, s, 3);
	}
	kick(t);
	/* A bounded look for what must not happen. */
	if (poll(&p, 1, 100) > 0)
		assert_true(read(t->irqfd, &cnt, sizeof(cnt)) == 8);
	t->d.ops->quiesce(&t->d);
	assert_int_equal(used_idx(t), t->used_seen);
	assert_int_equal(*(uint8_t *)gp(t, st, 1), FILL);
	t->d.ops->unquiesce(&t->d);
	fb_vq_reset(&t->d.queues[0]);
	t->d.status = 0;
	driver_start(t);
	expect_device_works(t);

	for (int i = 0; i < 3; i++) {
		driver_reset(t);
		driver_start(t);
		expect_device_works(t);
	}
	assert_int_equal(fb_blk_requests(t->blk), 5);
	tb_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_split),
		cmocka_unit_test(test_any_layout),
		cmocka_unit_test(test_write),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_get_id),
		cmocka_unit_test(test_unsupported_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_partial_sector),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_partial_tail),
		cmocka_unit_test(test_seg_max),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_quiesce),
		cmocka_unit_test(test_no_status_byte),
		cmocka_unit_test(test_short_header),
		cmocka_unit_test(test_reset_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
