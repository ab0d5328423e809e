/* virtio-balloon (virtio 1.2, 5.5): guest memory given back to the host.
 *
 * Three ways memory comes back: the host sets a target and the guest
 * inflates its balloon by that much (inflate queue: 4 KiB page numbers);
 * the guest hands over its free memory in 2-4 MiB blocks on its own
 * (free page reporting); and the guest tells how it uses its memory
 * (stats queue), on request. Pages given back are dropped from the host
 * mapping (MADV_DONTNEED) and marked dirty for snapshots and forks, since
 * they now read differently. Deflating needs nothing from the host: a
 * dropped page faults back in on the guest's next touch.
 *
 * The queues are served by an I/O thread of the device's own; a hostile
 * driver's bad page numbers and ranges are ignored (and counted), a
 * broken chain fails the device, and the work per wake-up is bounded. */
#ifndef FB_VIRTIO_BALLOON_H
#define FB_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

struct fb_vm;
struct fb_virtio_device;
struct fb_balloon;

/* The statistics a driver may send (tags of virtio 1.2, 5.5.6.3, and the
 * later ones Linux sends). Units: bytes for *_bytes keys, else counts. */
enum fb_balloon_stat {
	FB_BALLOON_S_SWAP_IN, FB_BALLOON_S_SWAP_OUT, FB_BALLOON_S_MAJFLT,
	FB_BALLOON_S_MINFLT, FB_BALLOON_S_MEMFREE, FB_BALLOON_S_MEMTOT,
	FB_BALLOON_S_AVAIL, FB_BALLOON_S_CACHES, FB_BALLOON_S_HTLB_PGALLOC,
	FB_BALLOON_S_HTLB_PGFAIL, FB_BALLOON_S_OOM_KILL,
	FB_BALLOON_S_ALLOC_STALL, FB_BALLOON_S_ASYNC_SCAN,
	FB_BALLOON_S_DIRECT_SCAN, FB_BALLOON_S_ASYNC_RECLAIM,
	FB_BALLOON_S_DIRECT_RECLAIM,
	FB_BALLOON_S_NR
};

struct fb_balloon_info {
	uint64_t target_pages;   /* the host's target (num_pages), 4 KiB */
	uint64_t actual_pages;   /* what the driver says it holds */
	bool driver_ok;          /* a driver is running the device */
	/* The guest's last statistics: stats[tag] valid if bit tag of
	 * stats_valid is set; their age in ms, -1 if none came yet. */
	uint64_t stats[FB_BALLOON_S_NR];
	uint32_t stats_valid;
	int64_t stats_age_ms;
	/* Bytes given back so far (ranges dropped, touched or not). */
	uint64_t inflated_bytes;
	uint64_t reported_bytes;
	uint64_t ignored;        /* page numbers or ranges refused */
};

/* Adds the device to the VM (before the vCPUs start). */
int fb_balloon_create(struct fb_vm *vm, struct fb_balloon **out);

/* The same over a transport device the caller set up (tests: d->vm NULL,
 * d->mem a test guest memory, d->irqfd an eventfd). Sets d->ops and
 * d->priv; d->ops->destroy frees the device. */
int fb_balloon_init_device(struct fb_virtio_device *d,
			   struct fb_balloon **out);

/* Sets the balloon's target size to mib MiB (at most the guest's RAM) and
 * tells the driver (a config-change interrupt; deferred while the VM is
 * paused). The guest inflates or deflates towards it in its own time. */
int fb_balloon_set_target(struct fb_balloon *b, uint64_t mib);

/* Asks the driver for fresh statistics (gives its stats buffer back) and
 * waits up to timeout_ms for them: 0 when they came, -ETIMEDOUT if not,
 * -EAGAIN if the driver holds no buffer we could give back (no driver
 * yet, or paused). The last statistics stay readable either way. */
int fb_balloon_refresh_stats(struct fb_balloon *b, int timeout_ms);

void fb_balloon_get(struct fb_balloon *b, struct fb_balloon_info *info);

/* A statistic's key ("free_bytes") and label ("free memory"), or NULL
 * for a tag out of range. */
const char *fb_balloon_stat_key(unsigned tag);
const char *fb_balloon_stat_label(unsigned tag);

#endif
