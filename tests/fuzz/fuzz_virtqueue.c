/* Fuzzes the device side of split virtqueues (fb_vq_pop's descriptor
 * walker, fb_vq_push, the chain copies) and the virtio-mmio transport's
 * registers, with a hostile driver: the input is the guest's memory and
 * its register writes.
 *
 * Input, first byte even: a queue set up directly.
 *   u8 mode, u8 size (log2, or raw), u8 flags, u16 desc, u16 avail,
 *   u16 used (ring offsets), u16 copy offset, then the guest memory:
 *   region 0 (64 KiB at 0) then region 1 (16 KiB at 4 GiB). Every chain
 *   fb_vq_pop returns is checked (segments inside one region, totals,
 *   head in range), copied out and in, and pushed back.
 * First byte 1 mod 4: the MMIO transport with a two-queue test device;
 * 3 mod 4: the same with the real virtio-rng device (rng.c). Then
 *   records: u8 kind, and per kind a register write (u16 offset, u32
 *   value), a read (u16 offset, u8 length), an odd-sized write, or a
 *   write of bytes into guest memory (so the rings change between
 *   notifies). A notify makes the device drain that queue. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtio.h"
#include "fuzz.h"
#include "util/error.h"

/* The real virtio-rng device, for its static ops and notify handler.
 * FB_FUZZ_SKIP=rng in the environment leaves it out (its inputs do
 * nothing), so the rest keeps being fuzzed while a crash in it is open;
 * FB_FUZZ_SKIP=requeue drops a driver's writes to the layout of a queue
 * it already set ready. */
#include "devices/virtio/rng.c"

#define R0_SIZE 0x10000ull
#define R1_GPA 0x100000000ull
#define R1_SIZE 0x4000ull
#define COPY_MAX 0x10000u

static struct fb_guest_mem mem;
static bool skip_requeue;
static uint8_t scratch[COPY_MAX];

static void load_memory(struct fz_in *in)
{
	size_t n;
	const uint8_t *p = fz_bytes(in, R0_SIZE, &n);

	memcpy(mem.regions[0].host, p, n);
	p = fz_bytes(in, R1_SIZE, &n);
	memcpy(mem.regions[1].host, p, n);
}

static void check_segs(const struct iovec *iov, unsigned n, uint64_t total)
{
	uint64_t sum = 0;

	FZ_CHECK(n <= FB_VQ_MAX_SEGS);
	for (unsigned i = 0; i < n; i++) {
		FZ_CHECK(iov[i].iov_len > 0);
		FZ_CHECK(fz_mem_holds(&mem, iov[i].iov_base, iov[i].iov_len));
		sum += iov[i].iov_len;
	}
	FZ_CHECK(sum == total);
}

/* What a device does with a chain: read what the driver wrote, write an
 * answer, give it back. Returns false when the queue broke. */
static bool serve_chain(struct fb_virtqueue *vq, const struct fb_vq_chain *c,
			size_t off)
{
	size_t want, got;

	FZ_CHECK(c->head < vq->size);
	check_segs(c->in, c->nr_in, c->in_len);
	check_segs(c->out, c->nr_out, c->out_len);

	want = c->in_len > off ? c->in_len - off : 0;
	if (want > COPY_MAX)
		want = COPY_MAX;
	got = fb_vq_copy_from_chain(c, off, scratch, COPY_MAX);
	FZ_CHECK(got == want);
	want = c->out_len > off ? c->out_len - off : 0;
	if (want > COPY_MAX)
		want = COPY_MAX;
	got = fb_vq_copy_to_chain(c, off, scratch, COPY_MAX);
	FZ_CHECK(got == want);
	return fb_vq_push(vq, c->head, (uint32_t)got) == 0;
}

static void drain(struct fb_virtqueue *vq, size_t off)
{
	struct fb_vq_chain c;

	/* A queue offers at most size chains before its index must move. */
	for (unsigned i = 0; i <= FB_VQ_MAX_SIZE; i++) {
		int r = fb_vq_pop(vq, &c);

		if (r < 0)
			FZ_CHECK(fb_last_error()[0] != '\0');
		if (r <= 0 || !serve_chain(vq, &c, off))
			break;
	}
	(void)fb_vq_needs_interrupt(vq);
}

static void fuzz_queue(struct fz_in *in)
{
	struct fb_virtqueue vq;
	uint8_t size = fz_u8(in), flags = fz_u8(in);
	uint64_t desc = fz_u16(in), avail = fz_u16(in), used = fz_u16(in);
	size_t off = fz_u16(in);

	memset(&vq, 0, sizeof(vq));
	vq.size = (flags & 0x80) ? size : (uint16_t)(1u << (size % 9));
	if (!(flags & 0x40)) {
		desc &= ~15ull;
		avail &= ~1ull;
		used &= ~3ull;
	}
	/* Rings in either region (or across the gap, which must fail). */
	vq.desc_gpa = desc + ((flags & 1) ? R1_GPA : 0);
	vq.avail_gpa = avail + ((flags & 2) ? R1_GPA : 0);
	vq.used_gpa = used + ((flags & 4) ? R1_GPA : 0);
	if (flags & 8)
		vq.desc_gpa += R0_SIZE - 0x100;
	load_memory(in);
	if (fb_vq_activate(&vq, &mem) < 0)
		return;
	vq.ready = true;
	drain(&vq, (flags & 0x10) ? off : 0);
	/* A driver that offers more later (the index moves on). */
	drain(&vq, 0);
}

/* ---- the MMIO transport ------------------------------------------------ */

struct test_dev {
	uint8_t config[8];
	bool fail_activate;
	unsigned activations, resets;
};

static void t_config_read(struct fb_virtio_device *d, uint32_t off,
			  uint8_t *data, unsigned len)
{
	struct test_dev *t = d->priv;

	FZ_CHECK(off < sizeof(t->config) && len <= sizeof(t->config) - off);
	memcpy(data, t->config + off, len);
}

static void t_config_write(struct fb_virtio_device *d, uint32_t off,
			   const uint8_t *data, unsigned len)
{
	struct test_dev *t = d->priv;

	FZ_CHECK(off < sizeof(t->config) && len <= sizeof(t->config) - off);
	memcpy(t->config + off, data, len);
}

static int t_activate(struct fb_virtio_device *d)
{
	struct test_dev *t = d->priv;

	t->activations++;
	return t->fail_activate ? -EIO : 0;
}

static void t_notify(struct fb_virtio_device *d, unsigned q)
{
	FZ_CHECK(q < d->ops->nr_queues);
	/* The transport notifies whatever the queue's state, as a driver
	 * may kick a queue it never set up; a device checks. */
	if (!d->queues[q].ready)
		return;
	drain(&d->queues[q], 0);
	fb_virtio_signal_used(d);
}

static void t_reset(struct fb_virtio_device *d)
{
	struct test_dev *t = d->priv;

	t->resets++;
}

static const struct fb_virtio_ops test_ops = {
	.name = "virtio-fuzz", .device_id = 42, .features = 1ull << 3,
	.nr_queues = 2, .queue_max_size = 64, .config_len = 8,
	.config_read = t_config_read, .config_write = t_config_write,
	.activate = t_activate, .notify = t_notify, .reset = t_reset,
};

/* FB_FUZZ_SKIP=requeue: a write that would move or resize a queue the
 * driver set ready, to be dropped (see fuzz.h). */
static bool requeue(const struct fb_virtio_device *d, uint64_t off)
{
	return skip_requeue && d->queue_sel < d->ops->nr_queues &&
	       d->queues[d->queue_sel].ready &&
	       (off == 0x38 || (off >= 0x80 && off < 0xa8));
}

static void fuzz_mmio(struct fz_in *in, const struct fb_virtio_ops *ops)
{
	struct fb_virtio_device d;
	struct test_dev t = { .fail_activate = false };
	uint8_t buf[16];
	uint32_t zero = 0;

	t.fail_activate = fz_u8(in) == 0xff;
	fb_virtio_device_init(&d, ops, ops == &test_ops ? &t : NULL, &mem, -1);
	for (unsigned steps = 0; in->left && steps < 4096; steps++) {
		uint8_t kind = fz_u8(in);
		uint64_t off = fz_u16(in) % 0x200;
		uint32_t v;
		size_t n;
		const uint8_t *p;

		switch (kind % 4) {
		case 0:
			v = fz_u32(in);
			if (requeue(&d, off & ~3ull))
				break;
			fb_virtio_mmio_ops.write(&d, off & ~3ull, (uint8_t *)&v, 4);
			break;
		case 1:
			n = fz_u8(in) % 9;
			memset(buf, 0xaa, sizeof(buf));
			fb_virtio_mmio_ops.read(&d, off, buf, (unsigned)n);
			break;
		case 2:
			p = fz_bytes(in, fz_u8(in) % 9, &n);
			memcpy(buf, p, n);
			if (requeue(&d, off))
				break;
			fb_virtio_mmio_ops.write(&d, off, buf, (unsigned)n);
			break;
		case 3:
			/* Guest memory at (offset * 64), as a driver fills
			 * its rings and buffers. */
			off = (off * 64) % R0_SIZE;
			p = fz_bytes(in, fz_u8(in), &n);
			if (n > R0_SIZE - off)
				n = R0_SIZE - off;
			memcpy(mem.regions[0].host + off, p, n);
			break;
		}
		FZ_CHECK(d.queue_sel >= ops->nr_queues ||
			 d.queues[d.queue_sel].size <= ops->queue_max_size);
	}
	/* Status 0: the reset must leave every queue off. */
	fb_virtio_mmio_ops.write(&d, 0x70, (uint8_t *)&zero, 4);
	for (unsigned q = 0; q < FB_VIRTIO_MAX_QUEUES; q++)
		FZ_CHECK(!d.queues[q].ready);
	pthread_mutex_destroy(&d.lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t gpa[2] = { 0, R1_GPA };
	static const uint64_t sz[2] = { R0_SIZE, R1_SIZE };
	struct fz_in in;
	uint8_t mode;
	static int skip_rng = -1;

	if (skip_rng < 0)
		skip_rng = fz_skip("rng");
	skip_requeue = fz_skip("requeue");
	if (!mem.nr_regions)
		fz_mem_init(&mem, 2, gpa, sz);
	else {
		memset(mem.regions[0].host, 0, R0_SIZE);
		memset(mem.regions[1].host, 0, R1_SIZE);
	}
	fz_init(&in, data, size);
	mode = fz_u8(&in);
	if (!(mode & 1))
		fuzz_queue(&in);
	else if ((mode & 3) == 1)
		fuzz_mmio(&in, &test_ops);
	else if (!skip_rng)
		fuzz_mmio(&in, &rng_ops);
	return 0;
}
