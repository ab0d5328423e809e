/* virtio-balloon: the queues on an I/O thread of the device's own.
 *
 * The thread serves the queues with b->lock held, so a reset or a quiesce
 * that took the lock knows no chain is half done. Quiescing sets a flag
 * under the lock rather than holding the lock until unquiesce: the
 * control socket's thread pauses the VM and may then ask for the balloon's
 * state or set its target, and must not find the lock taken by itself.
 *
 * Queue order (virtio 1.2, 5.5.2): inflate 0, deflate 1, then the optional
 * queues the driver negotiated, stats before free page reporting (we never
 * offer free page hinting, which would sit between them). Linux up to 6.10
 * (and QEMU) number the optional queues without gaps: its transports skip
 * a queue a driver leaves unnamed (drivers/virtio/virtio_mmio.c,
 * vm_find_vqs), so the reporting queue is 3 with stats and 2 without.
 * Linux from 6.11 reads the spec as fixed numbers (reporting 4) but falls
 * back to 3 when the device has no queue 4, as here: with stats (which
 * Linux always takes) both agree on 3; without, the reporting queue is
 * whichever of 2 and 3 the driver set up. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/balloon.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/worker.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/le.h"

/* Wire format (virtio 1.2, 5.5; linux/virtio_balloon.h). */
#define BALLOON_F_STATS_VQ (1ull << 1)
#define BALLOON_F_DEFLATE_ON_OOM (1ull << 2)
#define BALLOON_F_REPORTING (1ull << 5)

#define Q_INFLATE 0
#define Q_DEFLATE 1
#define Q_STATS 2
#define Q_NONE (-1)
#define BALLOON_NR_QUEUES 4

#define BALLOON_PAGE 4096ull     /* page numbers are in 4 KiB units */
#define BALLOON_PAGE_SHIFT 12
#define BALLOON_QUEUE_SIZE 256   /* Linux's reporting wants >= 32 */
#define BALLOON_CONFIG_LEN 8     /* num_pages, actual */
#define CFG_NUM_PAGES 0
#define CFG_ACTUAL 4
#define STAT_ENTRY_SIZE 10       /* le16 tag, le64 value, packed */

/* Bounds on one wake-up of the thread, so that a driver flooding a queue
 * never holds the lock (and a pause) for long: chains per queue, and page
 * numbers per inflate chain (Linux sends at most 256). What is left of a
 * queue waits for the next wake-up, which the thread gives itself. */
#define CHAINS_PER_PASS 16
#define MAX_PFNS_PER_CHAIN 1024u
#define PFN_BATCH 256u
#define MAX_STAT_ENTRIES 64u

struct fb_balloon {
	struct fb_virtio_device *d;
	pthread_mutex_t lock;      /* everything below but the config */
	pthread_cond_t stats_cond; /* a stats buffer came */
	bool active;               /* DRIVER_OK and not reset */
	bool broken;               /* the driver broke the protocol */
	bool quiesced;             /* the VM is paused: no queue work */
	bool config_pending;       /* a target set while quiesced */
	int q_stats, q_report;     /* queue indices, or Q_NONE */
	struct fb_vq_chain *chain; /* the thread's, under the lock */
	/* The stats buffer the driver gave us: pushing it back is how the
	 * host asks for fresh statistics. */
	bool stats_held;
	uint16_t stats_head;
	uint64_t stats[FB_BALLOON_S_NR];
	uint32_t stats_valid;
	uint64_t stats_seq;        /* buffers received */
	uint64_t stats_at_ms;      /* when the last one came (monotonic) */
	uint64_t inflated_bytes, reported_bytes, ignored;
	bool ignore_logged, madvise_logged;
	/* Config space, read by vCPU threads under the transport's lock,
	 * set by the host from any thread: atomics. */
	uint32_t num_pages;
	uint32_t actual;
	struct fb_worker worker;
};

static const struct {
	const char *key, *label;
} stat_names[FB_BALLOON_S_NR] = {
	[FB_BALLOON_S_SWAP_IN] = { "swap_in_bytes", "swapped in" },
	[FB_BALLOON_S_SWAP_OUT] = { "swap_out_bytes", "swapped out" },
	[FB_BALLOON_S_MAJFLT] = { "major_faults", "major faults" },
	[FB_BALLOON_S_MINFLT] = { "minor_faults", "minor faults" },
	[FB_BALLOON_S_MEMFREE] = { "free_bytes", "free memory" },
	[FB_BALLOON_S_MEMTOT] = { "total_bytes", "total memory" },
	[FB_BALLOON_S_AVAIL] = { "available_bytes", "available memory" },
	[FB_BALLOON_S_CACHES] = { "disk_caches_bytes", "disk caches" },
	[FB_BALLOON_S_HTLB_PGALLOC] = { "hugetlb_allocs",
					"hugetlb allocations" },
	[FB_BALLOON_S_HTLB_PGFAIL] = { "hugetlb_failures",
				       "hugetlb failures" },
	[FB_BALLOON_S_OOM_KILL] = { "oom_kills", "OOM kills" },
	[FB_BALLOON_S_ALLOC_STALL] = { "alloc_stalls", "allocation stalls" },
	[FB_BALLOON_S_ASYNC_SCAN] = { "async_scans", "pages scanned (kswapd)" },
	[FB_BALLOON_S_DIRECT_SCAN] = { "direct_scans",
				       "pages scanned (direct)" },
	[FB_BALLOON_S_ASYNC_RECLAIM] = { "async_reclaims",
					 "pages reclaimed (kswapd)" },
	[FB_BALLOON_S_DIRECT_RECLAIM] = { "direct_reclaims",
					  "pages reclaimed (direct)" },
};

const char *fb_balloon_stat_key(unsigned tag)
{
	return tag < FB_BALLOON_S_NR ? stat_names[tag].key : NULL;
}

const char *fb_balloon_stat_label(unsigned tag)
{
	return tag < FB_BALLOON_S_NR ? stat_names[tag].label : NULL;
}

/* A page number or range the driver had no business sending: skipped,
 * counted, and the first one logged (a driver bug is worth a line; a
 * flood of them is not). */
static void ignore(struct fb_balloon *b, const char *what, uint64_t gpa,
		   uint64_t len, uint64_t count)
{
	b->ignored += count;
	if (b->ignore_logged)
		return;
	b->ignore_logged = true;
	fprintf(stderr, "forkbox: virtio-balloon: ignoring %s at 0x%llx+0x%llx"
		" (later ones are not logged)\n", what,
		(unsigned long long)gpa, (unsigned long long)len);
}

/* Drops [host, host + len), guest address gpa, from the host mapping: the
 * host gets the memory back, the guest's next touch faults in a zero page
 * (a restored or forked box's mapping is MAP_PRIVATE over its snapshot or
 * layers: the page reads as it was saved). The page is not marked dirty
 * for a diff snapshot or a fork's next layer, which would copy it: its
 * content is the guest's to ignore (virtio 1.2, 5.5.6: an inflated or
 * reported page may be discarded, and we offer no PAGE_POISON; QEMU
 * discards alike), and a restored or forked box that sees the page's
 * older bytes sees a free page all the same. Marked, every 2-4 MiB block
 * the guest reported went into the next fork's layer during the pause
 * (a parent's second fork paused 150-320 ms in the lab, 20-40 without). */
static bool give_back(struct fb_balloon *b, uint8_t *host, uint64_t gpa,
		      uint64_t len)
{
	if (madvise(host, len, MADV_DONTNEED) < 0) {
		if (!b->madvise_logged)
			fprintf(stderr, "forkbox: virtio-balloon: madvise("
				"MADV_DONTNEED) of 0x%llx+0x%llx: %s (later "
				"failures are not logged)\n",
				(unsigned long long)gpa,
				(unsigned long long)len, strerror(errno));
		b->madvise_logged = true;
		return false;
	}
	return true;
}

/* Inflated pages, coalesced into runs contiguous both in guest and host
 * addresses, so that a balloon of neighbouring pages costs few calls. */
struct run {
	uint8_t *host;
	uint64_t gpa, len;
};

static void run_flush(struct fb_balloon *b, struct run *r)
{
	if (r->len && give_back(b, r->host, r->gpa, r->len))
		b->inflated_bytes += r->len;
	r->len = 0;
}

static void run_add(struct fb_balloon *b, struct run *r, uint8_t *host,
		    uint64_t gpa)
{
	if (r->len && r->host + r->len == host && r->gpa + r->len == gpa) {
		r->len += BALLOON_PAGE;
		return;
	}
	run_flush(b, r);
	*r = (struct run){ host, gpa, BALLOON_PAGE };
}

/* An inflate buffer: little-endian 32-bit page numbers in the readable
 * part (writable segments are not the driver's to use here). Each is
 * checked against guest RAM; a bad one is ignored, not fatal: the guest
 * only loses the use of a page it said it did not want. */
static void inflate_chain(struct fb_balloon *b, const struct fb_vq_chain *c)
{
	uint32_t pfns[PFN_BATCH];
	uint64_t n = c->in_len / 4;
	struct run r = { 0 };

	if (n > MAX_PFNS_PER_CHAIN) {
		ignore(b, "inflate page numbers past the first 1024", 0, 0,
		       n - MAX_PFNS_PER_CHAIN);
		n = MAX_PFNS_PER_CHAIN;
	}
	for (uint64_t done = 0; done < n;) {
		unsigned k = n - done < PFN_BATCH ? (unsigned)(n - done) :
						    PFN_BATCH;

		fb_vq_copy_from_chain(c, done * 4, pfns, k * 4ull);
		for (unsigned i = 0; i < k; i++) {
			/* < 2^44: no overflow. */
			uint64_t gpa = (uint64_t)le32toh(pfns[i])
				       << BALLOON_PAGE_SHIFT;
			uint8_t *host = fb_gpa_ptr(b->d->mem, gpa,
						   BALLOON_PAGE);

			if (!host)
				ignore(b, "an inflated page outside guest RAM",
				       gpa, BALLOON_PAGE, 1);
			else
				run_add(b, &r, host, gpa);
		}
		done += k;
	}
	run_flush(b, &r);
}

/* Deflated pages need nothing: we never took them, only dropped their
 * contents, and the guest's next touch faults them back in. */
static void deflate_chain(struct fb_balloon *b, const struct fb_vq_chain *c)
{
}

/* The guest address of a chain segment's host pointer: the transport
 * mapped it through fb_gpa_ptr(); this finds the region again and checks
 * the answer through fb_gpa_ptr() once more. */
static bool segment_gpa(const struct fb_guest_mem *mem, const uint8_t *host,
			uint64_t len, uint64_t *gpa)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct fb_mem_region *r = &mem->regions[i];
		uintptr_t base = (uintptr_t)r->host, p = (uintptr_t)host;

		if (p < base || p - base >= r->size)
			continue;
		*gpa = r->gpa + (p - base);
		return fb_gpa_ptr(mem, *gpa, len) == host;
	}
	return false;
}

/* One reported free block: whole 4 KiB pages (Linux sends 2 or 4 MiB
 * blocks), else ignored. */
static void report_range(struct fb_balloon *b, uint8_t *host, uint64_t len)
{
	uint64_t gpa = 0;

	if (!segment_gpa(b->d->mem, host, len, &gpa))
		ignore(b, "a reported range outside guest RAM", gpa, len, 1);
	else if ((gpa | len) & (BALLOON_PAGE - 1))
		ignore(b, "a reported range not in whole pages", gpa, len, 1);
	else if (give_back(b, host, gpa, len))
		b->reported_bytes += len;
}

/* A free page report: Linux hands its blocks over as device-writable
 * buffers (virtqueue_add_inbuf), but nothing is written; readable ones
 * mean the same. The transport checked each lies in guest RAM. */
static void report_chain(struct fb_balloon *b, const struct fb_vq_chain *c)
{
	for (unsigned i = 0; i < c->nr_in; i++)
		report_range(b, c->in[i].iov_base, c->in[i].iov_len);
	for (unsigned i = 0; i < c->nr_out; i++)
		report_range(b, c->out[i].iov_base, c->out[i].iov_len);
}

/* A stats buffer: packed (le16 tag, le64 value) entries; unknown tags
 * (a newer driver's) are skipped, a ragged tail ignored. Each buffer is
 * the whole picture: what it lacks is no longer known. */
static void parse_stats(struct fb_balloon *b, const struct fb_vq_chain *c)
{
	uint8_t buf[MAX_STAT_ENTRIES * STAT_ENTRY_SIZE];
	size_t got = fb_vq_copy_from_chain(c, 0, buf, sizeof(buf));

	b->stats_valid = 0;

	for (size_t off = 0; off + STAT_ENTRY_SIZE <= got;
	     off += STAT_ENTRY_SIZE) {
		uint16_t tag = fb_le16(buf + off);

		if (tag >= FB_BALLOON_S_NR)
			continue;
		b->stats[tag] = fb_le64(buf + off + 2);
		b->stats_valid |= 1u << tag;
	}
	b->stats_seq++;
	b->stats_at_ms = (uint64_t)fb_now_ms();
	pthread_cond_broadcast(&b->stats_cond);
}

/* Pops up to CHAINS_PER_PASS chains of queue q, hands each to fn and gives
 * it back. *pushed: some were given back; *more: the queue may hold more.
 * A negative errno if the driver broke the protocol. */
static int serve_queue(struct fb_balloon *b, int q, const char *name,
		       void (*fn)(struct fb_balloon *,
				  const struct fb_vq_chain *),
		       bool *pushed, bool *more)
{
	struct fb_virtqueue *vq = &b->d->queues[q];

	for (unsigned n = 0; n < CHAINS_PER_PASS; n++) {
		int got = fb_vq_pop(vq, b->chain);

		if (got < 0)
			return fb_errorf(got, "%s queue: %s", name,
					 fb_last_error());
		if (got == 0)
			return 0;
		fn(b, b->chain);
		got = fb_vq_push(vq, b->chain->head, 0);
		if (got < 0)
			return fb_errorf(got, "%s queue: %s", name,
					 fb_last_error());
		*pushed = true;
	}
	*more = true;
	return 0;
}

/* The driver keeps one stats buffer with us; a second one (Linux never
 * sends one) makes us give the first back, so a driver cannot pile them
 * up. */
static int serve_stats(struct fb_balloon *b, bool *pushed, bool *more)
{
	struct fb_virtqueue *vq = &b->d->queues[b->q_stats];

	for (unsigned n = 0; n < CHAINS_PER_PASS; n++) {
		int got = fb_vq_pop(vq, b->chain);

		if (got < 0)
			return fb_errorf(got, "stats queue: %s",
					 fb_last_error());
		if (got == 0)
			return 0;
		if (b->stats_held) {
			got = fb_vq_push(vq, b->stats_head, 0);
			if (got < 0)
				return fb_errorf(got, "stats queue: %s",
						 fb_last_error());
			*pushed = true;
		}
		parse_stats(b, b->chain);
		b->stats_held = true;
		b->stats_head = b->chain->head;
	}
	*more = true;
	return 0;
}

static int serve_all_locked(struct fb_balloon *b, bool *pushed, bool *more)
{
	int err = serve_queue(b, Q_INFLATE, "inflate", inflate_chain,
			      &pushed[Q_INFLATE], more);

	if (!err)
		err = serve_queue(b, Q_DEFLATE, "deflate", deflate_chain,
				  &pushed[Q_DEFLATE], more);
	if (!err && b->q_stats != Q_NONE)
		err = serve_stats(b, &pushed[b->q_stats], more);
	if (!err && b->q_report != Q_NONE)
		err = serve_queue(b, b->q_report, "reporting", report_chain,
				  &pushed[b->q_report], more);
	return err;
}

/* One wake-up's work: every queue, a bounded number of chains each; one
 * interrupt for all of them (the transport's status says which). */
static void serve_all(void *arg)
{
	struct fb_balloon *b = arg;
	bool pushed[BALLOON_NR_QUEUES] = { false }, more = false, irq = false;
	char why[192] = "";
	int err;

	pthread_mutex_lock(&b->lock);
	if (!b->active || b->broken || b->quiesced) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	err = serve_all_locked(b, pushed, &more);
	if (err < 0) {
		b->broken = true;
		snprintf(why, sizeof(why), "%s", fb_last_error());
	}
	for (unsigned q = 0; q < BALLOON_NR_QUEUES; q++)
		if (pushed[q] && fb_vq_needs_interrupt(&b->d->queues[q]))
			irq = true;
	pthread_mutex_unlock(&b->lock);
	if (why[0])
		fb_virtio_fail(b->d, why);
	if (irq)
		fb_virtio_signal_used(b->d);
	if (more && !why[0])
		fb_worker_kick(&b->worker);
}

/* --- the transport's side ------------------------------------------- */

static void balloon_config_read(struct fb_virtio_device *d, uint32_t off,
				uint8_t *data, unsigned len)
{
	struct fb_balloon *b = d->priv;
	uint8_t cfg[BALLOON_CONFIG_LEN];

	fb_put_le32(cfg + CFG_NUM_PAGES,
		    __atomic_load_n(&b->num_pages, __ATOMIC_SEQ_CST));
	fb_put_le32(cfg + CFG_ACTUAL,
		    __atomic_load_n(&b->actual, __ATOMIC_SEQ_CST));
	memcpy(data, cfg + off, len);
}

/* The driver writes actual (any width: a byte at a time would do); num
 * pages is the host's. Under the transport's lock, the only writer. */
static void balloon_config_write(struct fb_virtio_device *d, uint32_t off,
				 const uint8_t *data, unsigned len)
{
	struct fb_balloon *b = d->priv;
	uint8_t bytes[4];

	fb_put_le32(bytes, __atomic_load_n(&b->actual, __ATOMIC_SEQ_CST));
	for (unsigned i = 0; i < len; i++)
		if (off + i >= CFG_ACTUAL && off + i < CFG_ACTUAL + 4)
			bytes[off + i - CFG_ACTUAL] = data[i];
	__atomic_store_n(&b->actual, fb_le32(bytes), __ATOMIC_SEQ_CST);
}

/* Which queue is what, from the features the driver took (see the top of
 * this file). */
static void set_queue_indices(struct fb_balloon *b)
{
	uint64_t f = b->d->driver_features;
	bool stats = f & BALLOON_F_STATS_VQ;

	b->q_stats = stats ? Q_STATS : Q_NONE;
	b->q_report = Q_NONE;
	if (!(f & BALLOON_F_REPORTING))
		return;
	if (stats || !b->d->queues[Q_STATS].ready)
		b->q_report = Q_STATS + 1;
	else
		b->q_report = Q_STATS;
	/* Its blocks are device-writable but only discarded (give_back). */
	b->d->queues[b->q_report].writes_nothing = true;
}

/* DRIVER_OK, or a restore of a running driver. The config-change
 * interrupt is for the restore: a restored or forked box's device starts
 * with a target of 0 (the config is not saved), and a guest that had
 * inflated its balloon learns that it may deflate. A fresh driver reads
 * the config anyway; the interrupt costs it one look. */
static int balloon_activate(struct fb_virtio_device *d)
{
	struct fb_balloon *b = d->priv;

	pthread_mutex_lock(&b->lock);
	b->active = true;
	b->broken = false;
	set_queue_indices(b);
	pthread_mutex_unlock(&b->lock);
	fb_worker_kick(&b->worker);
	fb_virtio_config_changed(d);
	return 0;
}

static void balloon_notify(struct fb_virtio_device *d, unsigned q)
{
	struct fb_balloon *b = d->priv;

	if (b)
		fb_worker_kick(&b->worker);
}

/* Chains are served whole under the lock: once it is held none is half
 * done. The stats buffer goes with the queues. */
static void balloon_reset(struct fb_virtio_device *d)
{
	struct fb_balloon *b = d->priv;

	pthread_mutex_lock(&b->lock);
	b->active = false;
	b->broken = false;
	b->stats_held = false;
	b->q_stats = b->q_report = Q_NONE;
	__atomic_store_n(&b->actual, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&b->stats_cond);
	pthread_mutex_unlock(&b->lock);
}

static void balloon_quiesce(struct fb_virtio_device *d)
{
	struct fb_balloon *b = d->priv;

	pthread_mutex_lock(&b->lock);
	b->quiesced = true;
	pthread_mutex_unlock(&b->lock);
}

/* Work that came in while paused, and a target set meanwhile. */
static void balloon_unquiesce(struct fb_virtio_device *d)
{
	struct fb_balloon *b = d->priv;
	bool changed;

	pthread_mutex_lock(&b->lock);
	b->quiesced = false;
	changed = b->config_pending && b->active;
	b->config_pending = false;
	pthread_mutex_unlock(&b->lock);
	fb_worker_kick(&b->worker);
	if (changed)
		fb_virtio_config_changed(d);
}

/* The stats buffer we hold goes back to the driver in the saved state
 * (as if never taken), so that a restored device gets it again. */
static void balloon_save_adjust(struct fb_virtio_device *d,
				struct fb_virtio_state *st)
{
	struct fb_balloon *b = d->priv;

	pthread_mutex_lock(&b->lock);
	if (b->stats_held && b->q_stats != Q_NONE)
		st->queues[b->q_stats].last_avail--;
	pthread_mutex_unlock(&b->lock);
}

static void balloon_free(struct fb_balloon *b)
{
	fb_worker_release(&b->worker);
	pthread_cond_destroy(&b->stats_cond);
	pthread_mutex_destroy(&b->lock);
	free(b->chain);
	free(b);
}

static void balloon_destroy(struct fb_virtio_device *d)
{
	if (d->priv)
		balloon_free(d->priv);
	d->priv = NULL;
}

static const struct fb_virtio_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.features = BALLOON_F_STATS_VQ | BALLOON_F_DEFLATE_ON_OOM |
		    BALLOON_F_REPORTING,
	.nr_queues = BALLOON_NR_QUEUES,
	.queue_max_size = BALLOON_QUEUE_SIZE,
	.config_len = BALLOON_CONFIG_LEN,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.activate = balloon_activate,
	.notify = balloon_notify,
	.reset = balloon_reset,
	.destroy = balloon_destroy,
	.quiesce = balloon_quiesce,
	.unquiesce = balloon_unquiesce,
	.save_adjust = balloon_save_adjust,
};

static int balloon_new(struct fb_balloon **out)
{
	struct fb_balloon *b = calloc(1, sizeof(*b));
	pthread_condattr_t attr;
	int err;

	if (!b)
		return fb_errorf(-ENOMEM, "virtio-balloon: out of memory");
	b->q_stats = b->q_report = Q_NONE;
	pthread_mutex_init(&b->lock, NULL);
	/* Deadlines are on the monotonic clock (deadline_after). */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&b->stats_cond, &attr);
	pthread_condattr_destroy(&attr);
	err = fb_worker_init(&b->worker, "virtio-balloon");
	if (err) {
		b->worker.kickfd = b->worker.stopfd = -1;
		balloon_free(b);
		return err;
	}
	b->chain = malloc(sizeof(*b->chain));
	if (!b->chain) {
		balloon_free(b);
		return fb_errorf(-ENOMEM, "virtio-balloon: out of memory");
	}
	*out = b;
	return 0;
}

/* The thread touches b->d only while active, which needs b->d set. */
static int balloon_start(struct fb_balloon *b, struct fb_virtio_device *d)
{
	b->d = d;
	return fb_worker_start(&b->worker, serve_all, b);
}

int fb_balloon_init_device(struct fb_virtio_device *d,
			   struct fb_balloon **out)
{
	struct fb_balloon *b;
	int err = balloon_new(&b);

	if (err)
		return err;
	d->ops = &balloon_ops;
	d->priv = b;
	err = balloon_start(b, d);
	if (err) {
		d->priv = NULL;
		balloon_free(b);
		return err;
	}
	*out = b;
	return 0;
}

int fb_balloon_create(struct fb_vm *vm, struct fb_balloon **out)
{
	struct fb_virtio_device *d;
	struct fb_balloon *b;
	int err = balloon_new(&b);

	if (err)
		return err;
	err = fb_virtio_mmio_add(vm, &balloon_ops, b, &d);
	if (err) {
		balloon_free(b);
		return err;
	}
	/* From here the transport owns b: its destroy op frees it. */
	err = balloon_start(b, d);
	if (err)
		return err;
	*out = b;
	return 0;
}

/* --- the host's side ------------------------------------------------- */

int fb_balloon_set_target(struct fb_balloon *b, uint64_t mib)
{
	uint64_t ram_mib = b->d->mem->ram_size >> 20;
	bool tell;

	if (mib > ram_mib)
		return fb_errorf(-EINVAL, "balloon target %llu MiB: the guest "
				 "has %llu MiB of RAM", (unsigned long long)mib,
				 (unsigned long long)ram_mib);
	/* <= RAM: fits the 32-bit field for any RAM below 16 TiB. */
	__atomic_store_n(&b->num_pages,
			 (uint32_t)(mib << (20 - BALLOON_PAGE_SHIFT)),
			 __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&b->lock);
	/* No driver yet: it reads the target when it starts. Paused: an
	 * interrupt now would land in the middle of a saved state. */
	tell = b->active && !b->quiesced;
	if (b->active && b->quiesced)
		b->config_pending = true;
	pthread_mutex_unlock(&b->lock);
	if (tell)
		fb_virtio_config_changed(b->d);
	return 0;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Gives the held stats buffer back: the driver's cue to send a fresh one.
 * Under the lock. */
static int request_stats(struct fb_balloon *b, bool *irq)
{
	struct fb_virtqueue *vq;
	int err;

	if (!b->active || b->broken || b->quiesced || !b->stats_held ||
	    b->q_stats == Q_NONE)
		return fb_errorf(-EAGAIN, "virtio-balloon: the driver has no "
				 "stats request pending (no driver yet, or "
				 "the box is paused)");
	vq = &b->d->queues[b->q_stats];
	err = fb_vq_push(vq, b->stats_head, 0);
	if (err < 0)
		return err;
	b->stats_held = false;
	*irq = fb_vq_needs_interrupt(vq);
	return 0;
}

int fb_balloon_refresh_stats(struct fb_balloon *b, int timeout_ms)
{
	struct timespec deadline;
	bool irq = false;
	uint64_t seq;
	int err;

	pthread_mutex_lock(&b->lock);
	seq = b->stats_seq;
	err = request_stats(b, &irq);
	pthread_mutex_unlock(&b->lock);
	if (err < 0)
		return err;
	if (irq)
		fb_virtio_signal_used(b->d);
	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&b->lock);
	while (b->stats_seq == seq && b->active &&
	       pthread_cond_timedwait(&b->stats_cond, &b->lock,
				      &deadline) != ETIMEDOUT)
		;
	err = b->stats_seq != seq ? 0 :
	      fb_errorf(-ETIMEDOUT, "virtio-balloon: no fresh stats from the "
			"guest within %d ms", timeout_ms);
	pthread_mutex_unlock(&b->lock);
	return err;
}

void fb_balloon_get(struct fb_balloon *b, struct fb_balloon_info *info)
{
	memset(info, 0, sizeof(*info));
	info->target_pages = __atomic_load_n(&b->num_pages, __ATOMIC_SEQ_CST);
	info->actual_pages = __atomic_load_n(&b->actual, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&b->lock);
	info->driver_ok = b->active && !b->broken;
	memcpy(info->stats, b->stats, sizeof(info->stats));
	info->stats_valid = b->stats_valid;
	info->stats_age_ms = b->stats_seq ?
			     (int64_t)((uint64_t)fb_now_ms() - b->stats_at_ms) : -1;
	info->inflated_bytes = b->inflated_bytes;
	info->reported_bytes = b->reported_bytes;
	info->ignored = b->ignored;
	pthread_mutex_unlock(&b->lock);
}
