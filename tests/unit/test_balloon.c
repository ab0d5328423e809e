/* virtio-balloon without a VM: the test is the guest driver (four split
 * queues in a 16 MiB test guest memory, chains written by hand, notify
 * called). Guest RAM holds a pattern; what the device gives back must
 * read as zero afterwards and stay out of the VMM's dirty bitmap (a fork
 * must not copy free pages), and nothing else may change. Every wait has a deadline: poll on the irqfd. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "box/control.h"
#include "box/stats.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/virtio.h"
#include "util/error.h"
#include "util/le.h"
#include "vmm/guest_mem.h"
#include "vmm/vm.h"

#define MiB (1ull << 20)
#define RAM (16 * MiB)
#define PAGE 4096ull
#define DEADLINE_MS 10000

/* The wire format, written out here independently of the device's code
 * (virtio 1.2, 5.5). */
#define F_STATS_VQ (1ull << 1)
#define F_DEFLATE_ON_OOM (1ull << 2)
#define F_REPORTING (1ull << 5)
#define S_SWAP_IN 0
#define S_MEMFREE 4
#define S_MEMTOT 5
#define S_AVAIL 6
#define Q_INFLATE 0
#define Q_DEFLATE 1
#define INT_CONFIG 2

/* Guest memory layout: rings per queue, a heap for buffers, and the
 * pages the driver gives away (all of RAM holds the pattern). */
#define NQ 4
#define QSZ 128u
#define RINGS 0x100000ull
#define Q_DESC(q) (RINGS + 0x10000ull * (q))
#define Q_AVAIL(q) (Q_DESC(q) + 0x1000)
#define Q_USED(q) (Q_DESC(q) + 0x2000)
#define HEAP 0x200000ull
#define HEAP_END 0x400000ull
#define DATA 0x400000ull /* from here to the end: pages to give away */

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

struct vq_drv {
	uint16_t avail_idx, used_seen, next_desc;
};

struct tb {
	struct fb_guest_mem mem;
	struct fb_virtio_device d;
	struct fb_balloon *b;
	int irqfd;
	struct vq_drv q[NQ];
	uint64_t heap;
	uint64_t dirty[RAM / PAGE / 64];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *gp(struct tb *t, uint64_t gpa, uint64_t len)
{
	void *p = fb_gpa_ptr(&t->mem, gpa, len);

	assert_non_null(p);
	return p;
}

/* Every byte of guest RAM, before the device gets to it: never zero. */
static uint8_t pat(uint64_t gpa)
{
	return (uint8_t)((gpa >> 12) * 13 + gpa * 7) | 1;
}

static void fill_pattern(struct tb *t, uint64_t from, uint64_t to)
{
	uint8_t *p = gp(t, from, to - from);

	for (uint64_t a = from; a < to; a++)
		p[a - from] = pat(a);
}

static bool page_is_zero(struct tb *t, uint64_t gpa)
{
	const uint8_t *p = gp(t, gpa, PAGE);

	for (unsigned i = 0; i < PAGE; i++)
		if (p[i])
			return false;
	return true;
}

static bool page_has_pattern(struct tb *t, uint64_t gpa)
{
	const uint8_t *p = gp(t, gpa, PAGE);

	for (unsigned i = 0; i < PAGE; i++)
		if (p[i] != pat(gpa + i))
			return false;
	return true;
}

/* The data pages hold the pattern except [skip, skip + len). */
static void expect_pattern_except(struct tb *t, uint64_t skip, uint64_t len)
{
	for (uint64_t a = DATA; a < RAM; a += PAGE) {
		if (a >= skip && a - skip < len)
			continue;
		if (!page_has_pattern(t, a))
			fail_msg("page 0x%llx changed", (unsigned long long)a);
	}
}

/* The VMM's dirty bits since the last call, one per page. */
static void take_dirty(struct tb *t)
{
	memset(t->dirty, 0, sizeof(t->dirty));
	fb_guest_mem_take_dirty(&t->mem, t->dirty);
}

static bool dirty(struct tb *t, uint64_t gpa)
{
	uint64_t p = gpa / PAGE;

	return t->dirty[p / 64] & (1ull << (p % 64));
}

static uint64_t alloc(struct tb *t, uint32_t len)
{
	uint64_t gpa = t->heap;

	t->heap = (t->heap + len + 63) & ~63ull;
	assert_true(t->heap <= HEAP_END);
	return gpa;
}

static uint16_t used_idx(struct tb *t, unsigned q)
{
	return __atomic_load_n((uint16_t *)gp(t, Q_USED(q) + 2, 2),
			       __ATOMIC_ACQUIRE);
}

static void setup_queue(struct tb *t, unsigned q)
{
	struct fb_virtqueue *vq = &t->d.queues[q];

	memset(gp(t, Q_DESC(q), 0x3000), 0, 0x3000);
	vq->size = QSZ;
	vq->desc_gpa = Q_DESC(q);
	vq->avail_gpa = Q_AVAIL(q);
	vq->used_gpa = Q_USED(q);
	assert_int_equal(fb_vq_activate(vq, &t->mem), 0);
	vq->ready = true;
	t->q[q] = (struct vq_drv){ 0 };
}

/* What the transport does on FEATURES_OK, QUEUE_READY and DRIVER_OK: the
 * features taken, then queues 0..nq-1 set up. */
static void driver_start(struct tb *t, uint64_t features, unsigned nq)
{
	t->d.driver_features = VIRTIO_F_VERSION_1 | features;
	for (unsigned q = 0; q < nq; q++)
		setup_queue(t, q);
	t->d.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	assert_int_equal(t->d.ops->activate(&t->d), 0);
}

/* What the transport does on a status write of 0. */
static void driver_reset(struct tb *t)
{
	t->d.ops->reset(&t->d);
	for (unsigned q = 0; q < NQ; q++)
		fb_vq_reset(&t->d.queues[q]);
	t->d.status = 0;
	t->d.failed = false;
	t->d.failure[0] = '\0';
	__atomic_store_n(&t->d.interrupt_status, 0, __ATOMIC_SEQ_CST);
}

static struct tb *tb_new(uint64_t features)
{
	struct tb *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_int_equal(fb_guest_mem_init(&t->mem, RAM), 0);
	assert_int_equal(fb_guest_mem_track_start(&t->mem), 0);
	fill_pattern(t, DATA, RAM);
	t->heap = HEAP;
	t->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(t->irqfd >= 0);
	fb_virtio_device_init(&t->d, NULL, NULL, &t->mem, t->irqfd);
	assert_int_equal(fb_balloon_init_device(&t->d, &t->b), 0);
	assert_ptr_equal(t->d.priv, t->b);
	assert_int_equal(t->d.ops->device_id, VIRTIO_ID_BALLOON);
	assert_int_equal(t->d.ops->nr_queues, NQ);
	driver_start(t, features, NQ);
	take_dirty(t);
	return t;
}

static void tb_free(struct tb *t)
{
	t->d.ops->destroy(&t->d);
	assert_null(t->d.priv);
	pthread_mutex_destroy(&t->d.lock);
	close(t->irqfd);
	fb_guest_mem_release(&t->mem);
	free(t);
}

static uint16_t publish(struct tb *t, unsigned q, const struct seg *s,
			unsigned n)
{
	struct vq_drv *v = &t->q[q];
	uint16_t head, *ring;

	assert_true(n >= 1 && n <= QSZ);
	if (v->next_desc + n > QSZ)
		v->next_desc = 0; /* earlier chains are all used by now */
	head = v->next_desc;
	for (unsigned i = 0; i < n; i++) {
		struct vdesc *dd = gp(t, Q_DESC(q) + 16ull * (head + i), 16);

		dd->addr = s[i].gpa;
		dd->len = s[i].len;
		dd->flags = (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				       (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		dd->next = (uint16_t)(head + i + 1);
	}
	v->next_desc = (uint16_t)(head + n);
	ring = gp(t, Q_AVAIL(q) + 4, 2ull * QSZ);
	ring[v->avail_idx % QSZ] = head;
	v->avail_idx++;
	__atomic_store_n((uint16_t *)gp(t, Q_AVAIL(q) + 2, 2), v->avail_idx,
			 __ATOMIC_RELEASE);
	return head;
}

static void kick(struct tb *t, unsigned q)
{
	t->d.ops->notify(&t->d, q);
}

static void wait_used(struct tb *t, unsigned q, unsigned n)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	uint16_t want = (uint16_t)(t->q[q].used_seen + n);

	while (used_idx(t, q) != want) {
		struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
		uint64_t now = now_ms(), cnt;

		if (now >= deadline)
			fail_msg("queue %u: device used %u of %u chains in %d "
				 "ms", q, (uint16_t)(used_idx(t, q) -
				 t->q[q].used_seen), n, DEADLINE_MS);
		/* Short slices: a config interrupt may eat the wake-up. */
		if (poll(&p, 1, 5) > 0 &&
		    read(t->irqfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			fail_msg("irqfd read: %s", strerror(errno));
	}
}

static uint16_t take_used(struct tb *t, unsigned q)
{
	const uint8_t *e = gp(t, Q_USED(q) + 4 + 8ull * (t->q[q].used_seen %
							   QSZ), 8);
	uint32_t id;

	assert_true(used_idx(t, q) != t->q[q].used_seen);
	memcpy(&id, e, 4);
	t->q[q].used_seen++;
	return (uint16_t)id;
}

static void run_chain(struct tb *t, unsigned q, const struct seg *s,
		      unsigned n)
{
	uint16_t head = publish(t, q, s, n);

	kick(t, q);
	wait_used(t, q, 1);
	assert_int_equal(take_used(t, q), head);
}

/* Waits for the device to give up on the driver (fb_virtio_fail), with
 * why containing `why`: the transport sets the flag before it writes the
 * message, so the message is waited for too. */
static void wait_failed_with(struct tb *t, const char *why)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;

	while (!__atomic_load_n(&t->d.failed, __ATOMIC_SEQ_CST) ||
	       !strstr((const char *)t->d.failure, why)) {
		if (now_ms() >= deadline)
			fail_msg("the device did not fail (\"%s\") in %d ms",
				 why, DEADLINE_MS);
		usleep(1000);
	}
	assert_true(__atomic_load_n(&t->d.status, __ATOMIC_SEQ_CST) &
		    VIRTIO_STATUS_NEEDS_RESET);
}

static void wait_failed(struct tb *t)
{
	wait_failed_with(t, "queue");
}

/* A buffer of page numbers (little-endian, as on x86). */
static uint64_t pfn_buffer(struct tb *t, const uint32_t *pfns, unsigned n)
{
	uint64_t gpa = alloc(t, n * 4);

	memcpy(gp(t, gpa, n * 4ull), pfns, n * 4ull);
	return gpa;
}

static struct fb_balloon_info info(struct tb *t)
{
	struct fb_balloon_info i;

	fb_balloon_get(t->b, &i);
	return i;
}

#define ALL (F_STATS_VQ | F_DEFLATE_ON_OOM | F_REPORTING)

/* --- the tests ------------------------------------------------------- */

static void test_features_and_config(void **state)
{
	struct tb *t = tb_new(ALL);
	uint8_t cfg[8];

	assert_int_equal(t->d.ops->features & ALL, ALL);
	/* No free page hinting, no page poisoning, no MUST_TELL_HOST. */
	assert_int_equal(t->d.ops->features & ~ALL, 0);
	assert_true(t->d.ops->config_len >= 8);
	t->d.ops->config_read(&t->d, 0, cfg, 8);
	assert_memory_equal(cfg, "\0\0\0\0\0\0\0\0", 8);
	assert_true(info(t).driver_ok);
	tb_free(t);
}

/* Inflated pages read as zero afterwards and are not in the dirty
 * bitmap; their neighbours keep the pattern. */
static void test_inflate(void **state)
{
	struct tb *t = tb_new(ALL);
	/* A run of three, two apart, one alone. */
	const uint32_t pfns[] = { 0x500, 0x501, 0x502, 0x600, 0x602, 0x9ff };
	struct seg s = { pfn_buffer(t, pfns, 6), 24, false };

	run_chain(t, Q_INFLATE, &s, 1);
	take_dirty(t);
	for (unsigned i = 0; i < 6; i++) {
		assert_true(page_is_zero(t, pfns[i] * PAGE));
		assert_false(dirty(t, pfns[i] * PAGE));
	}
	assert_true(page_has_pattern(t, 0x503 * PAGE));
	assert_true(page_has_pattern(t, 0x601 * PAGE));
	assert_true(page_has_pattern(t, 0x4ff * PAGE));
	assert_false(dirty(t, 0x601 * PAGE));
	assert_int_equal(info(t).inflated_bytes, 6 * PAGE);
	assert_int_equal(info(t).ignored, 0);
	assert_false(t->d.failed);
	/* The driver is told: the used-ring bit. */
	assert_true(__atomic_load_n(&t->d.interrupt_status,
				    __ATOMIC_SEQ_CST) & 1);
	tb_free(t);
}

/* Page numbers outside RAM (past its end, in the 32-bit range's top) are
 * ignored, memory untouched, and the device goes on. */
static void test_inflate_bad_pfns(void **state)
{
	struct tb *t = tb_new(ALL);
	const uint32_t pfns[] = { RAM / PAGE, 0xffffffffu, 0x00100000u,
				  0x700, RAM / PAGE + 1 };
	struct seg s = { pfn_buffer(t, pfns, 5), 5 * 4, false };

	run_chain(t, Q_INFLATE, &s, 1);
	assert_int_equal(info(t).ignored, 4);
	assert_int_equal(info(t).inflated_bytes, PAGE);
	assert_true(page_is_zero(t, 0x700 * PAGE));
	expect_pattern_except(t, 0x700 * PAGE, PAGE);
	assert_false(t->d.failed);

	/* A ragged tail (not a whole page number) is not one; writable
	 * segments are not the driver's to use on this queue. */
	{
		const uint32_t more[] = { 0x701, 0x702 };
		uint64_t buf = pfn_buffer(t, more, 2);
		struct seg two[2] = { { buf, 6, false }, { buf + 4, 4, true } };

		run_chain(t, Q_INFLATE, two, 2);
		assert_true(page_is_zero(t, 0x701 * PAGE));
		assert_true(page_has_pattern(t, 0x702 * PAGE));
	}
	tb_free(t);
}

/* A huge buffer of page numbers: the first 1024 count, the rest are
 * ignored (bounded work per chain). */
static void test_inflate_bounded(void **state)
{
	struct tb *t = tb_new(ALL);
	enum { N = 1500 };
	uint32_t *pfns = malloc(N * sizeof(*pfns));
	struct seg s;

	assert_non_null(pfns);
	for (unsigned i = 0; i < N; i++)
		pfns[i] = (uint32_t)(DATA / PAGE + i);
	s = (struct seg){ pfn_buffer(t, pfns, N), N * 4, false };
	run_chain(t, Q_INFLATE, &s, 1);
	assert_int_equal(info(t).inflated_bytes, 1024 * PAGE);
	assert_int_equal(info(t).ignored, N - 1024);
	assert_true(page_is_zero(t, DATA + 1023 * PAGE));
	assert_true(page_has_pattern(t, DATA + 1024 * PAGE));
	free(pfns);
	tb_free(t);
}

/* More chains than one wake-up serves, with a single kick: the device
 * comes back for the rest by itself. */
static void test_many_chains_one_kick(void **state)
{
	struct tb *t = tb_new(ALL);
	enum { N = 40 };

	for (unsigned i = 0; i < N; i++) {
		uint32_t pfn = (uint32_t)(0x800 + i);
		struct seg s = { pfn_buffer(t, &pfn, 1), 4, false };

		publish(t, Q_INFLATE, &s, 1);
	}
	kick(t, Q_INFLATE);
	wait_used(t, Q_INFLATE, N);
	for (unsigned i = 0; i < N; i++)
		assert_true(page_is_zero(t, (0x800 + i) * PAGE));
	assert_int_equal(info(t).inflated_bytes, N * PAGE);
	tb_free(t);
}

/* Deflating needs nothing: the pages stay as they are. */
static void test_deflate(void **state)
{
	struct tb *t = tb_new(ALL);
	const uint32_t pfns[] = { 0x520, 0x521 };
	struct seg s = { pfn_buffer(t, pfns, 2), 8, false };

	run_chain(t, Q_INFLATE, &s, 1);
	/* The guest uses the page again: it faults back in. */
	memset(gp(t, 0x520 * PAGE, PAGE), 0x5a, PAGE);
	s.gpa = pfn_buffer(t, pfns, 2);
	run_chain(t, Q_DEFLATE, &s, 1);
	assert_int_equal(*(uint8_t *)gp(t, 0x520 * PAGE + 100, 1), 0x5a);
	assert_true(page_is_zero(t, 0x521 * PAGE));
	assert_int_equal(info(t).inflated_bytes, 2 * PAGE);
	assert_false(t->d.failed);
	tb_free(t);
}

/* Free page reporting: Linux's 2 and 4 MiB blocks, as device-writable
 * buffers in one chain (queue 3: stats is queue 2). */
static void test_reporting(void **state)
{
	struct tb *t = tb_new(ALL);
	struct seg s[2] = {
		{ 0x800000, 2 * MiB, true }, { 0xc00000, 4 * MiB, true },
	};

	run_chain(t, 3, s, 2);
	take_dirty(t);
	for (uint64_t a = 0x800000; a < 0xa00000; a += PAGE)
		assert_true(page_is_zero(t, a) && !dirty(t, a));
	for (uint64_t a = 0xc00000; a < RAM; a += PAGE)
		assert_true(page_is_zero(t, a) && !dirty(t, a));
	expect_pattern_except(t, 0x800000, 8 * MiB);
	assert_true(page_has_pattern(t, 0xa00000));
	assert_true(page_has_pattern(t, 0xbff000));
	assert_int_equal(info(t).reported_bytes, 6 * MiB);
	assert_false(t->d.failed);
	tb_free(t);
}

/* Ranges not in whole pages are ignored (memory untouched); the device
 * goes on. A range past the end of RAM breaks the protocol. */
static void test_reporting_bad_ranges(void **state)
{
	struct tb *t = tb_new(ALL);
	struct seg s[3] = {
		{ 0x700000, 2 * PAGE, false },      /* readable: fine */
		{ 0x500000 + 100, PAGE, true },     /* misaligned start */
		{ 0x600000, 2 * PAGE + 1, true },   /* ragged length */
	};
	struct seg over = { RAM - 2 * MiB, 4 * MiB, true };
	struct seg wrap = { 0xfffffffffffff000ull, 0x2000, true };

	run_chain(t, 3, s, 3);
	assert_int_equal(info(t).ignored, 2);
	assert_int_equal(info(t).reported_bytes, 2 * PAGE);
	expect_pattern_except(t, 0x700000, 2 * PAGE);
	assert_false(t->d.failed);

	publish(t, 3, &over, 1);
	kick(t, 3);
	wait_failed(t);
	expect_pattern_except(t, 0x700000, 2 * PAGE);
	assert_int_equal(info(t).reported_bytes, 2 * PAGE);

	/* After a reset it works again; an address that wraps fails it. */
	driver_reset(t);
	driver_start(t, ALL, NQ);
	publish(t, 3, &wrap, 1);
	kick(t, 3);
	wait_failed(t);
	expect_pattern_except(t, 0x700000, 2 * PAGE);
	tb_free(t);
}

/* Without the stats queue the reporting queue is 2 (Linux up to 6.10
 * numbers the queues it uses without gaps); a driver that numbers them
 * the spec's way and fell back to 3 sets up 3 and not 2. */
static void test_reporting_queue_index(void **state)
{
	struct tb *t = tb_new(F_REPORTING);
	struct seg s = { 0x800000, 2 * MiB, true };

	run_chain(t, 2, &s, 1);
	assert_true(page_is_zero(t, 0x800000));
	assert_int_equal(info(t).reported_bytes, 2 * MiB);

	driver_reset(t);
	t->d.driver_features = VIRTIO_F_VERSION_1 | F_REPORTING;
	setup_queue(t, 0);
	setup_queue(t, 1);
	setup_queue(t, 3);
	assert_int_equal(t->d.ops->activate(&t->d), 0);
	fill_pattern(t, 0xa00000, 0xc00000);
	s.gpa = 0xa00000;
	run_chain(t, 3, &s, 1);
	assert_true(page_is_zero(t, 0xa00000));
	assert_int_equal(info(t).reported_bytes, 4 * MiB);
	tb_free(t);
}

/* A stats buffer: packed (le16 tag, le64 value) entries. */
static uint64_t stats_buffer(struct tb *t, const uint16_t *tags,
			     const uint64_t *vals, unsigned n, unsigned extra)
{
	uint64_t gpa = alloc(t, n * 10 + extra);
	uint8_t *p = gp(t, gpa, n * 10ull + extra + 1);

	for (unsigned i = 0; i < n; i++) {
		memcpy(p + 10 * i, &tags[i], 2);
		memcpy(p + 10 * i + 2, &vals[i], 8);
	}
	memset(p + 10 * n, 0x77, extra);
	return gpa;
}

static void wait_stats(struct tb *t, uint64_t tag, uint64_t want)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;

	for (;;) {
		struct fb_balloon_info i = info(t);

		if ((i.stats_valid & (1u << tag)) && i.stats[tag] == want)
			return;
		if (now_ms() >= deadline)
			fail_msg("stat %u is not %llu after %d ms",
				 (unsigned)tag, (unsigned long long)want,
				 DEADLINE_MS);
		usleep(1000);
	}
}

struct responder {
	struct tb *t;
	uint64_t buf;
	uint32_t len;
};

/* The guest's side of a stats request: the buffer comes back used, the
 * driver refills it and gives it to the device again. */
static void *respond(void *arg)
{
	struct responder *r = arg;
	struct seg s = { r->buf, r->len, false };

	wait_used(r->t, 2, 1);
	take_used(r->t, 2);
	publish(r->t, 2, &s, 1);
	kick(r->t, 2);
	return NULL;
}

static void test_stats(void **state)
{
	struct tb *t = tb_new(ALL);
	const uint16_t tags[] = { S_MEMTOT, S_MEMFREE, 99, S_SWAP_IN };
	const uint64_t vals[] = { 512 * MiB, 300 * MiB, 42, 0 };
	struct seg s = { stats_buffer(t, tags, vals, 4, 7), 4 * 10 + 7, false };
	struct fb_balloon_info i;
	struct responder r;
	pthread_t th;

	/* No buffer yet: nothing to ask with. */
	assert_int_equal(fb_balloon_refresh_stats(t->b, 10), -EAGAIN);
	assert_int_equal(info(t).stats_age_ms, -1);

	/* The driver primes the queue; the device keeps the buffer. */
	publish(t, 2, &s, 1);
	kick(t, 2);
	wait_stats(t, S_MEMTOT, 512 * MiB);
	i = info(t);
	assert_int_equal(i.stats[S_MEMFREE], 300 * MiB);
	assert_int_equal(i.stats[S_SWAP_IN], 0);
	assert_int_equal(i.stats_valid, (1u << S_MEMTOT) | (1u << S_MEMFREE) |
			 (1u << S_SWAP_IN));
	assert_true(i.stats_age_ms >= 0);
	assert_int_equal(used_idx(t, 2), 0);
	assert_string_equal(fb_balloon_stat_key(S_MEMTOT), "total_bytes");
	assert_null(fb_balloon_stat_key(FB_BALLOON_S_NR));

	/* A request the driver does not answer: the buffer is back with
	 * the driver, the old values stay. */
	assert_int_equal(fb_balloon_refresh_stats(t->b, 50), -ETIMEDOUT);
	assert_int_equal(used_idx(t, 2), 1);
	take_used(t, 2);
	assert_int_equal(info(t).stats[S_MEMTOT], 512 * MiB);
	assert_int_equal(fb_balloon_refresh_stats(t->b, 10), -EAGAIN);

	/* The driver gives a buffer again (other values, to see it came);
	 * then a request it answers with fresh values returns 0. */
	{
		const uint16_t tags2[] = { S_MEMTOT, S_AVAIL };
		const uint64_t again[] = { 256 * MiB, 1 * MiB };
		const uint64_t fresh[] = { 256 * MiB, 123 * MiB };
		struct seg s2 = { stats_buffer(t, tags2, again, 2, 0), 20,
				  false };

		publish(t, 2, &s2, 1);
		kick(t, 2);
		wait_stats(t, S_AVAIL, 1 * MiB);
		r = (struct responder){ t, stats_buffer(t, tags2, fresh, 2, 0),
					20 };
		assert_int_equal(pthread_create(&th, NULL, respond, &r), 0);
		assert_int_equal(fb_balloon_refresh_stats(t->b, DEADLINE_MS),
				 0);
		pthread_join(th, NULL);
		i = info(t);
		assert_int_equal(i.stats[S_AVAIL], 123 * MiB);
		/* Each buffer is the whole picture. */
		assert_int_equal(i.stats_valid, (1u << S_MEMTOT) |
				 (1u << S_AVAIL));
	}
	assert_false(t->d.failed);
	tb_free(t);
}

/* The held stats buffer is handed back in a saved state, so a restored
 * device gets it again. */
static void test_save_adjust(void **state)
{
	struct tb *t = tb_new(ALL);
	const uint16_t tag = S_MEMTOT;
	const uint64_t val = 64 * MiB;
	struct seg s = { stats_buffer(t, &tag, &val, 1, 0), 10, false };
	struct fb_virtio_state st;

	publish(t, 2, &s, 1);
	kick(t, 2);
	wait_stats(t, S_MEMTOT, 64 * MiB);
	t->d.ops->quiesce(&t->d);
	fb_virtio_save(&t->d, &st);
	t->d.ops->unquiesce(&t->d);
	assert_int_equal(st.device_id, VIRTIO_ID_BALLOON);
	assert_int_equal(t->d.queues[2].last_avail, 1);
	assert_int_equal(st.queues[2].last_avail, 0);
	assert_int_equal(st.queues[0].last_avail, t->d.queues[0].last_avail);
	tb_free(t);
}

static uint32_t cfg32(struct tb *t, uint32_t off)
{
	uint8_t b[4];

	t->d.ops->config_read(&t->d, off, b, 4);
	return fb_le32(b);
}

static uint32_t irq_status(struct tb *t)
{
	return __atomic_load_n(&t->d.interrupt_status, __ATOMIC_SEQ_CST);
}

static bool irqfd_fired(struct tb *t)
{
	uint64_t cnt;

	return read(t->irqfd, &cnt, sizeof(cnt)) == sizeof(cnt);
}

/* The target is num_pages in 4 KiB pages; setting it raises the config
 * interrupt with a new generation; the driver's actual comes back. */
static void test_set_target(void **state)
{
	struct tb *t = tb_new(ALL);
	uint32_t gen;
	uint8_t actual[4] = { 0x00, 0x08, 0, 0 }; /* 2048 pages */

	/* Activation raised one already (a restored guest may deflate). */
	assert_true(irq_status(t) & INT_CONFIG);
	__atomic_store_n(&t->d.interrupt_status, 0, __ATOMIC_SEQ_CST);
	(void)irqfd_fired(t);
	gen = __atomic_load_n(&t->d.config_generation, __ATOMIC_SEQ_CST);

	assert_int_equal(fb_balloon_set_target(t->b, 8), 0);
	assert_true(irq_status(t) & INT_CONFIG);
	assert_true(irqfd_fired(t));
	assert_int_not_equal(__atomic_load_n(&t->d.config_generation,
					     __ATOMIC_SEQ_CST), gen);
	assert_int_equal(cfg32(t, 0), 8 * 256);
	assert_int_equal(info(t).target_pages, 8 * 256);

	t->d.ops->config_write(&t->d, 4, actual, 4);
	assert_int_equal(cfg32(t, 4), 2048);
	assert_int_equal(info(t).actual_pages, 2048);
	/* num_pages is the host's: a driver's write to it is ignored. */
	t->d.ops->config_write(&t->d, 0, actual, 4);
	assert_int_equal(cfg32(t, 0), 8 * 256);
	/* A byte-wide write into actual. */
	t->d.ops->config_write(&t->d, 5, (const uint8_t *)"\x10", 1);
	assert_int_equal(info(t).actual_pages, 0x1000);

	/* More than the guest's RAM: refused, target unchanged. */
	assert_int_equal(fb_balloon_set_target(t->b, 17), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "17 MiB"));
	assert_int_equal(cfg32(t, 0), 8 * 256);

	/* Paused: the interrupt waits for the resume. */
	__atomic_store_n(&t->d.interrupt_status, 0, __ATOMIC_SEQ_CST);
	t->d.ops->quiesce(&t->d);
	assert_int_equal(fb_balloon_set_target(t->b, 0), 0);
	assert_int_equal(cfg32(t, 0), 0);
	assert_false(irq_status(t) & INT_CONFIG);
	assert_int_equal(fb_balloon_refresh_stats(t->b, 10), -EAGAIN);
	t->d.ops->unquiesce(&t->d);
	assert_true(irq_status(t) & INT_CONFIG);
	tb_free(t);
}

/* Paused, the device serves nothing; resumed, it catches up. */
static void test_quiesce(void **state)
{
	struct tb *t = tb_new(ALL);
	uint32_t pfn = 0x530;
	struct seg s = { pfn_buffer(t, &pfn, 1), 4, false };
	struct pollfd p = { .fd = t->irqfd, .events = POLLIN };
	uint64_t cnt;

	t->d.ops->quiesce(&t->d);
	publish(t, Q_INFLATE, &s, 1);
	kick(t, Q_INFLATE);
	/* A bounded look for what must not happen. */
	if (poll(&p, 1, 100) > 0)
		assert_true(read(t->irqfd, &cnt, sizeof(cnt)) == 8);
	assert_int_equal(used_idx(t, Q_INFLATE), 0);
	assert_true(page_has_pattern(t, 0x530 * PAGE));
	t->d.ops->unquiesce(&t->d);
	wait_used(t, Q_INFLATE, 1);
	assert_true(page_is_zero(t, 0x530 * PAGE));
	tb_free(t);
}

/* A reset drops the driver's state (actual, the stats buffer); until
 * DRIVER_OK again nothing is served; then it works again. */
static void test_reset(void **state)
{
	struct tb *t = tb_new(ALL);
	uint8_t actual[4] = { 0x00, 0x01, 0, 0 };
	const uint16_t tag = S_MEMTOT;
	const uint64_t val = 64 * MiB;
	struct seg st = { stats_buffer(t, &tag, &val, 1, 0), 10, false };
	uint32_t pfn = 0x540;
	struct seg s;

	publish(t, 2, &st, 1);
	kick(t, 2);
	wait_stats(t, S_MEMTOT, 64 * MiB);
	t->d.ops->config_write(&t->d, 4, actual, 4);
	assert_int_equal(fb_balloon_set_target(t->b, 1), 0);
	driver_reset(t);
	assert_int_equal(info(t).actual_pages, 0);
	assert_int_equal(info(t).target_pages, 256); /* the host's */
	assert_false(info(t).driver_ok);
	assert_int_equal(fb_balloon_refresh_stats(t->b, 10), -EAGAIN);
	/* A kick on a reset device does nothing. */
	kick(t, Q_INFLATE);

	driver_start(t, ALL, NQ);
	s = (struct seg){ pfn_buffer(t, &pfn, 1), 4, false };
	run_chain(t, Q_INFLATE, &s, 1);
	assert_true(page_is_zero(t, 0x540 * PAGE));
	assert_true(info(t).driver_ok);
	tb_free(t);
}

/* A descriptor loop on the inflate queue: the device fails, touches no
 * memory, and serves nothing more until a reset. */
static void test_hostile_chain(void **state)
{
	struct tb *t = tb_new(ALL);
	uint32_t pfn = 0x550;
	struct seg s[2] = {
		{ pfn_buffer(t, &pfn, 1), 4, false },
		{ pfn_buffer(t, &pfn, 1), 4, false },
	};
	uint16_t head = publish(t, Q_INFLATE, s, 2);
	struct vdesc *d2 = gp(t, Q_DESC(Q_INFLATE) + 16ull * (head + 1), 16);

	d2->flags = VIRTQ_DESC_F_NEXT;
	d2->next = head; /* back to the first */
	kick(t, Q_INFLATE);
	wait_failed_with(t, "inflate queue");
	assert_true(page_has_pattern(t, 0x550 * PAGE));
	assert_int_equal(used_idx(t, Q_INFLATE), 0);
	tb_free(t);
}

/* The client's side of "stats": the VMM's line, parsed. */
static void test_stats_reply_parse(void **state)
{
	struct fb_box_stats st;

	assert_int_equal(fb_box_stats_parse(
		"balloon=1 driver=1 target_mib=128 actual_mib=64 "
		"inflated_bytes=67108864 reported_bytes=4194304 "
		"given_back_bytes=71303168 ignored=0 stats_age_ms=12 "
		"total_bytes=536870912 free_bytes=1000 major_faults=3 "
		"some_future_key=5", &st), 0);
	assert_true(st.balloon && st.driver);
	assert_int_equal(st.target_mib, 128);
	assert_int_equal(st.actual_mib, 64);
	assert_int_equal(st.given_back_bytes, 71303168);
	assert_int_equal(st.stats_age_ms, 12);
	assert_int_equal(st.guest[FB_BALLOON_S_MEMTOT], 536870912);
	assert_int_equal(st.guest[FB_BALLOON_S_MAJFLT], 3);
	assert_int_equal(st.guest_valid, (1u << FB_BALLOON_S_MEMTOT) |
			 (1u << FB_BALLOON_S_MEMFREE) |
			 (1u << FB_BALLOON_S_MAJFLT));
	assert_int_equal(st.host_pss_bytes, -1);

	assert_int_equal(fb_box_stats_parse("balloon=0", &st), 0);
	assert_false(st.balloon);
	assert_int_equal(st.stats_age_ms, -1);
	assert_int_equal(fb_box_stats_parse("target_mib=x", &st), -EPROTO);
	assert_int_equal(fb_box_stats_parse("target_mib", &st), -EPROTO);
	assert_int_equal(fb_box_stats_parse("free_bytes=-1", &st), -EPROTO);
}

struct control {
	struct fb_box_vm bv;
	int listen_fd, stop_fd;
};

static void *control_loop(void *arg)
{
	struct control *c = arg;

	fb_box_control_loop(&c->bv, c->listen_fd, c->stop_fd);
	return NULL;
}

/* "balloon MIB" and "stats" through a real control socket, served by the
 * VMM's loop over this device (a VM with nothing but its balloon), and the
 * client's side: the reply parsed, the host's cost (this process) added. */
static void test_control_requests(void **state)
{
	struct tb *t = tb_new(ALL);
	static struct fb_vm vm; /* only vm.balloon is looked at */
	struct control c = { 0 };
	struct fb_box_info bi = { 0 };
	struct fb_box_stats st;
	const uint16_t tags[] = { S_MEMTOT, S_MEMFREE };
	const uint64_t first[] = { 512 * MiB, 100 * MiB };
	const uint64_t fresh[] = { 512 * MiB, 200 * MiB };
	struct seg s = { stats_buffer(t, tags, first, 2, 0), 20, false };
	struct responder r = { t, stats_buffer(t, tags, fresh, 2, 0), 20 };
	pthread_t loop, th;
	char dir[] = "/tmp/fb-balloon-XXXXXX";
	uint64_t one = 1;

	assert_non_null(mkdtemp(dir));
	vm.balloon = t->b;
	c.bv.vm = &vm;
	c.bv.exited_efd = eventfd(0, EFD_CLOEXEC);
	c.stop_fd = eventfd(0, EFD_CLOEXEC);
	c.listen_fd = fb_box_control_listen(dir);
	assert_true(c.listen_fd >= 0);
	assert_int_equal(pthread_create(&loop, NULL, control_loop, &c), 0);
	snprintf(bi.dir, sizeof(bi.dir), "%s", dir);
	bi.pid = getpid();

	publish(t, 2, &s, 1);
	kick(t, 2);
	wait_stats(t, S_MEMFREE, 100 * MiB);
	assert_int_equal(pthread_create(&th, NULL, respond, &r), 0);
	assert_int_equal(fb_box_balloon(&bi, 4), 0);
	assert_int_equal(fb_box_stats(&bi, &st), 0);
	pthread_join(th, NULL);
	assert_true(st.balloon && st.driver);
	assert_int_equal(st.target_mib, 4);
	assert_int_equal(st.guest[FB_BALLOON_S_MEMFREE], 200 * MiB);
	assert_int_equal(st.guest[FB_BALLOON_S_MEMTOT], 512 * MiB);
	assert_true(st.stats_age_ms >= 0);
	assert_true(st.host_pss_bytes > 0 && st.host_rss_bytes > 0);

	assert_int_equal(fb_box_balloon(&bi, 999), -EIO);
	assert_non_null(strstr(fb_last_error(), "RAM"));
	assert_int_equal(cfg32(t, 0), 4 * 256);
	vm.balloon = NULL;
	assert_int_equal(fb_box_balloon(&bi, 1), -EIO);
	assert_non_null(strstr(fb_last_error(), "no balloon"));
	assert_int_equal(fb_box_stats(&bi, &st), 0);
	assert_false(st.balloon);

	assert_int_equal(write(c.stop_fd, &one, sizeof(one)), 8);
	pthread_join(loop, NULL);
	close(c.listen_fd);
	close(c.stop_fd);
	close(c.bv.exited_efd);
	{
		char sock[sizeof(dir) + 32];

		snprintf(sock, sizeof(sock), "%s/%s", dir,
			 FB_BOX_CONTROL_NAME);
		unlink(sock);
	}
	rmdir(dir);
	tb_free(t);
}

/* This process's own /proc numbers: plausible. */
static void test_proc_memory(void **state)
{
	int64_t rss, pss;

	assert_int_equal(fb_proc_memory((int)getpid(), &rss, &pss), 0);
	assert_true(rss > 0 && pss > 0 && pss <= rss);
	assert_true(fb_proc_memory(-5, &rss, &pss) < 0);
	assert_int_equal(rss, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_features_and_config),
		cmocka_unit_test(test_inflate),
		cmocka_unit_test(test_inflate_bad_pfns),
		cmocka_unit_test(test_inflate_bounded),
		cmocka_unit_test(test_many_chains_one_kick),
		cmocka_unit_test(test_deflate),
		cmocka_unit_test(test_reporting),
		cmocka_unit_test(test_reporting_bad_ranges),
		cmocka_unit_test(test_reporting_queue_index),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_save_adjust),
		cmocka_unit_test(test_set_target),
		cmocka_unit_test(test_quiesce),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_hostile_chain),
		cmocka_unit_test(test_stats_reply_parse),
		cmocka_unit_test(test_control_requests),
		cmocka_unit_test(test_proc_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
