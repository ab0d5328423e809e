/* The device side of split virtqueues and the virtio-mmio transport,
 * against a driver played by the test in a real guest memory: good
 * chains, and a hostile driver's loops, bad addresses and lies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "util/error.h"

#define QSZ 16
#define DESC 0x100000ull
#define AVAIL 0x101000ull
#define USED 0x102000ull
#define BUF 0x200000ull

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

static struct fb_guest_mem mem;
static struct fb_virtqueue vq;

static struct desc *table(void) { return fb_gpa_ptr(&mem, DESC, 16 * QSZ); }
static uint16_t *avail(void) { return fb_gpa_ptr(&mem, AVAIL, 6 + 2 * QSZ); }
static uint16_t *used(void) { return fb_gpa_ptr(&mem, USED, 6 + 8 * QSZ); }

static int setup(void **state)
{
	assert_int_equal(fb_guest_mem_init(&mem, 64ull << 20), 0);
	memset(&vq, 0, sizeof(vq));
	vq.size = QSZ;
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	assert_int_equal(fb_vq_activate(&vq, &mem), 0);
	vq.ready = true;
	return 0;
}

static int teardown(void **state)
{
	fb_guest_mem_release(&mem);
	return 0;
}

static void offer(uint16_t head)
{
	uint16_t *a = avail();

	a[2 + a[1] % QSZ] = head;
	a[1]++;
}

static void test_chain_in_then_out(void **state)
{
	struct desc *t = table();
	struct fb_vq_chain c;
	uint8_t *buf = fb_gpa_ptr(&mem, BUF, 4096);

	memcpy(buf, "hello", 5);
	t[0] = (struct desc){ BUF, 5, VIRTQ_DESC_F_NEXT, 3 };
	t[3] = (struct desc){ BUF + 1024, 100, VIRTQ_DESC_F_WRITE, 0 };
	offer(0);
	assert_int_equal(fb_vq_pop(&vq, &c), 1);
	assert_int_equal(c.head, 0);
	assert_int_equal(c.nr_in, 1);
	assert_int_equal(c.nr_out, 1);
	assert_int_equal(c.in_len, 5);
	assert_int_equal(c.out_len, 100);
	char got[6] = { 0 };
	assert_int_equal(fb_vq_copy_from_chain(&c, 0, got, 5), 5);
	assert_string_equal(got, "hello");
	assert_int_equal(fb_vq_copy_to_chain(&c, 0, "world", 5), 5);
	assert_memory_equal(buf + 1024, "world", 5);
	assert_int_equal(fb_vq_push(&vq, c.head, 5), 0);
	assert_int_equal(used()[1], 1);
	assert_int_equal(((uint32_t *)(void *)(used() + 2))[0], 0);
	assert_int_equal(((uint32_t *)(void *)(used() + 2))[1], 5);
	/* Nothing more on offer. */
	assert_int_equal(fb_vq_pop(&vq, &c), 0);
}

static void test_indirect(void **state)
{
	struct desc *t = table();
	struct desc *ind = fb_gpa_ptr(&mem, BUF + 8192, 3 * 16);
	struct fb_vq_chain c;

	ind[0] = (struct desc){ BUF, 10, VIRTQ_DESC_F_NEXT, 1 };
	ind[1] = (struct desc){ BUF + 16, 20, VIRTQ_DESC_F_NEXT, 2 };
	ind[2] = (struct desc){ BUF + 64, 30, VIRTQ_DESC_F_WRITE, 0 };
	t[5] = (struct desc){ BUF + 8192, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0 };
	offer(5);
	assert_int_equal(fb_vq_pop(&vq, &c), 1);
	assert_int_equal(c.nr_in, 2);
	assert_int_equal(c.in_len, 30);
	assert_int_equal(c.out_len, 30);
}

static void expect_refused(int want)
{
	struct fb_vq_chain c;

	assert_int_equal(fb_vq_pop(&vq, &c), want);
	assert_true(strlen(fb_last_error()) > 0);
}

static void test_loop_is_refused(void **state)
{
	struct desc *t = table();

	t[0] = (struct desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 1 };
	t[1] = (struct desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 0 };
	offer(0);
	expect_refused(-ELOOP);
}

static void test_indirect_loop_is_refused(void **state)
{
	struct desc *t = table();
	struct desc *ind = fb_gpa_ptr(&mem, BUF + 8192, 2 * 16);

	ind[0] = (struct desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 1 };
	ind[1] = (struct desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 0 };
	t[0] = (struct desc){ BUF + 8192, 32, VIRTQ_DESC_F_INDIRECT, 0 };
	offer(0);
	expect_refused(-ELOOP);
}

static void test_nested_indirect_is_refused(void **state)
{
	struct desc *t = table();
	struct desc *ind = fb_gpa_ptr(&mem, BUF + 8192, 16);

	ind[0] = (struct desc){ BUF + 8192, 16, VIRTQ_DESC_F_INDIRECT, 0 };
	t[0] = (struct desc){ BUF + 8192, 16, VIRTQ_DESC_F_INDIRECT, 0 };
	offer(0);
	expect_refused(-EINVAL);
}

static void test_bad_addresses_are_refused(void **state)
{
	struct desc *t = table();

	/* Past the end of RAM, and a length that wraps the address. */
	t[0] = (struct desc){ 64ull << 20, 16, 0, 0 };
	offer(0);
	expect_refused(-EFAULT);
	teardown(state);
	setup(state);
	table()[0] = (struct desc){ UINT64_MAX - 4, 0xffffffff, 0, 0 };
	offer(0);
	expect_refused(-EFAULT);
}

static void test_head_out_of_range(void **state)
{
	offer(QSZ + 3);
	expect_refused(-EINVAL);
}

static void test_next_out_of_range(void **state)
{
	table()[0] = (struct desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 999 };
	offer(0);
	expect_refused(-EINVAL);
}

static void test_readable_after_writable(void **state)
{
	struct desc *t = table();

	t[0] = (struct desc){ BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1 };
	t[1] = (struct desc){ BUF, 8, 0, 0 };
	offer(0);
	expect_refused(-EINVAL);
}

static void test_avail_index_jump(void **state)
{
	avail()[1] = QSZ + 1;
	expect_refused(-EINVAL);
}

static void test_bad_rings_refused_at_activation(void **state)
{
	struct fb_virtqueue q = { .size = QSZ, .desc_gpa = (64ull << 20) - 8,
				  .avail_gpa = AVAIL, .used_gpa = USED };

	assert_int_equal(fb_vq_activate(&q, &mem), -EINVAL);
	q = (struct fb_virtqueue){ .size = 12, .desc_gpa = DESC,
				   .avail_gpa = AVAIL, .used_gpa = USED };
	assert_int_equal(fb_vq_activate(&q, &mem), -EINVAL);
	q = (struct fb_virtqueue){ .size = QSZ, .desc_gpa = DESC + 8,
				   .avail_gpa = AVAIL, .used_gpa = USED };
	assert_int_equal(fb_vq_activate(&q, &mem), -EINVAL);
}

/* ---- the MMIO transport ------------------------------------------------ */

static unsigned notified, activated, resets;

static void t_notify(struct fb_virtio_device *d, unsigned q) { notified++; }
static int t_activate(struct fb_virtio_device *d) { activated++; return 0; }
static void t_reset(struct fb_virtio_device *d) { resets++; }

static const struct fb_virtio_ops test_ops = {
	.name = "virtio-test", .device_id = 42, .features = 1ull << 3,
	.nr_queues = 2, .queue_max_size = QSZ, .notify = t_notify,
	.activate = t_activate, .reset = t_reset,
};

static uint32_t rd(struct fb_virtio_device *d, uint64_t off)
{
	uint32_t v;

	fb_virtio_mmio_ops.read(d, off, (uint8_t *)&v, 4);
	return v;
}

static void wr(struct fb_virtio_device *d, uint64_t off, uint32_t v)
{
	fb_virtio_mmio_ops.write(d, off, (const uint8_t *)&v, 4);
}

static void bring_up(struct fb_virtio_device *d, uint32_t features_hi)
{
	wr(d, 0x70, 0);
	wr(d, 0x70, 1 | 2);
	wr(d, 0x24, 0);
	wr(d, 0x20, 1u << 3);
	wr(d, 0x24, 1);
	wr(d, 0x20, features_hi);
	wr(d, 0x70, 1 | 2 | 8);
}

static void test_mmio_negotiation_and_queues(void **state)
{
	struct fb_virtio_device d;
	int efd = eventfd(0, EFD_NONBLOCK);
	uint64_t count;

	notified = activated = resets = 0;
	fb_virtio_device_init(&d, &test_ops, NULL, &mem, efd);
	assert_int_equal(rd(&d, 0x000), 0x74726976);
	assert_int_equal(rd(&d, 0x004), 2);
	assert_int_equal(rd(&d, 0x008), 42);
	wr(&d, 0x14, 1);
	assert_int_equal(rd(&d, 0x10), 1); /* VERSION_1 is bit 32 */
	bring_up(&d, 1);
	assert_int_equal(rd(&d, 0x70) & 8, 8);
	wr(&d, 0x30, 0);
	assert_int_equal(rd(&d, 0x34), QSZ);
	wr(&d, 0x38, QSZ);
	wr(&d, 0x80, (uint32_t)DESC);
	wr(&d, 0x90, (uint32_t)AVAIL);
	wr(&d, 0xa0, (uint32_t)USED);
	wr(&d, 0x44, 1);
	assert_int_equal(rd(&d, 0x44), 1);
	wr(&d, 0x70, 1 | 2 | 8 | 4);
	assert_int_equal(activated, 1);
	wr(&d, 0x50, 0);
	wr(&d, 0x50, 7); /* no such queue: ignored */
	assert_int_equal(notified, 1);
	fb_virtio_signal_used(&d);
	assert_int_equal(rd(&d, 0x60), 1);
	assert_int_equal(read(efd, &count, sizeof(count)), sizeof(count));
	wr(&d, 0x64, 1);
	assert_int_equal(rd(&d, 0x60), 0);
	/* Once running, the queue layout cannot change. */
	wr(&d, 0x80, 0x1234);
	assert_int_equal(d.queues[0].desc_gpa, DESC);
	resets = 0;
	wr(&d, 0x70, 0);
	assert_int_equal(resets, 1);
	assert_int_equal(rd(&d, 0x44), 0);
	assert_false(d.failed);
	close(efd);
}

static void test_mmio_refuses_legacy_driver(void **state)
{
	struct fb_virtio_device d;

	fb_virtio_device_init(&d, &test_ops, NULL, &mem, -1);
	bring_up(&d, 0); /* no VERSION_1 */
	assert_int_equal(rd(&d, 0x70) & 8, 0);
}

static void test_mmio_bad_queue_fails_device(void **state)
{
	struct fb_virtio_device d;

	fb_virtio_device_init(&d, &test_ops, NULL, &mem, -1);
	bring_up(&d, 1);
	wr(&d, 0x30, 0);
	wr(&d, 0x38, QSZ);
	wr(&d, 0x80, 0xfffffff0u); /* not RAM */
	wr(&d, 0x90, (uint32_t)AVAIL);
	wr(&d, 0xa0, (uint32_t)USED);
	wr(&d, 0x44, 1);
	assert_true(d.failed);
	assert_int_equal(rd(&d, 0x44), 0);
	assert_int_equal(rd(&d, 0x70) & VIRTIO_STATUS_NEEDS_RESET,
			 VIRTIO_STATUS_NEEDS_RESET);
}

/* Found by fuzzing: the driver may not move a ready queue's rings. */
static void test_mmio_ready_queue_cannot_move(void **state)
{
	struct fb_virtio_device d;

	fb_virtio_device_init(&d, &test_ops, NULL, &mem, -1);
	bring_up(&d, 1);
	wr(&d, 0x30, 0);
	wr(&d, 0x38, QSZ);
	wr(&d, 0x80, (uint32_t)DESC);
	wr(&d, 0x90, (uint32_t)AVAIL);
	wr(&d, 0xa0, (uint32_t)USED);
	wr(&d, 0x44, 1);
	wr(&d, 0x80, 0xfffffff0u);
	wr(&d, 0x38, 4);
	assert_int_equal(d.queues[0].desc_gpa, DESC);
	assert_int_equal(d.queues[0].size, QSZ);
}

/* Found by fuzzing: a queue never set up has nothing to pop. */
static void test_pop_of_unset_queue(void **state)
{
	struct fb_virtqueue q;
	struct fb_vq_chain c;

	fb_vq_reset(&q);
	q.ready = true; /* even if it claims to be */
	assert_int_equal(fb_vq_pop(&q, &c), 0);
	assert_false(fb_vq_needs_interrupt(&q));
	assert_true(fb_vq_push(&q, 0, 0) < 0);
}

static void test_mmio_odd_accesses_ignored(void **state)
{
	struct fb_virtio_device d;
	uint8_t b = 0x55;
	uint16_t w;

	fb_virtio_device_init(&d, &test_ops, NULL, &mem, -1);
	fb_virtio_mmio_ops.write(&d, 0x70, &b, 1);
	assert_int_equal(rd(&d, 0x70), 0);
	fb_virtio_mmio_ops.read(&d, 0x02, (uint8_t *)&w, 2);
	assert_int_equal(w, 0);
	/* Config space past config_len (0 here) reads as zero. */
	assert_int_equal(rd(&d, 0x100), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_chain_in_then_out),
		T(test_indirect),
		T(test_loop_is_refused),
		T(test_indirect_loop_is_refused),
		T(test_nested_indirect_is_refused),
		T(test_bad_addresses_are_refused),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_readable_after_writable),
		T(test_avail_index_jump),
		T(test_bad_rings_refused_at_activation),
		T(test_mmio_negotiation_and_queues),
		T(test_mmio_refuses_legacy_driver),
		T(test_mmio_bad_queue_fails_device),
		T(test_mmio_odd_accesses_ignored),
		T(test_mmio_ready_queue_cannot_move),
		T(test_pop_of_unset_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
