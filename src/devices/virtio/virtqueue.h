/* Split virtqueues (virtio 1.x, section 2.7): the device side.
 *
 * The guest is hostile. Every address and length a queue holds is read
 * once, checked through fb_gpa_ptr() (vmm/guest_mem.h), and never read
 * again; a chain is bounded by the queue size (indirect tables by their own
 * length), so loops and oversize chains end as errors, not hangs. An error
 * means the driver broke the protocol: the device marks itself broken
 * (DEVICE_NEEDS_RESET) and stops using the queue. */
#ifndef FB_VIRTIO_VIRTQUEUE_H
#define FB_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/guest_mem.h"

#define FB_VQ_MAX_SIZE 256u   /* largest queue a device offers */
#define FB_VQ_MAX_SEGS 64u    /* segments in one chain we will map */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct fb_virtqueue {
	/* Set by the driver through the transport. */
	uint16_t size;      /* a power of 2, <= FB_VQ_MAX_SIZE */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Device state. */
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* next used entry to fill */
	const struct fb_guest_mem *mem;
	/* Set by the device: it never writes this queue's device-writable
	 * buffers (free page reporting's), so they are not marked dirty. */
	bool writes_nothing;
};

/* One descriptor chain, mapped: the device-readable segments first, then
 * the device-writable ones (the spec's order; a chain that mixes them the
 * other way is refused). */
struct fb_vq_chain {
	uint16_t head;
	unsigned nr_in;  /* readable by the device: out of the guest */
	unsigned nr_out; /* writable by the device: into the guest */
	struct iovec in[FB_VQ_MAX_SEGS];
	struct iovec out[FB_VQ_MAX_SEGS];
	uint64_t in_len, out_len; /* byte totals */
};

/* Checks that the rings lie in guest RAM; called when the driver sets the
 * queue ready. Returns -EINVAL with a message if not. */
int fb_vq_activate(struct fb_virtqueue *vq, const struct fb_guest_mem *mem);
void fb_vq_reset(struct fb_virtqueue *vq);

/* Takes the next available chain: 1 and *chain filled, 0 if none is
 * available, or a negative errno (message set) if the driver broke the
 * protocol. */
int fb_vq_pop(struct fb_virtqueue *vq, struct fb_vq_chain *chain);

/* The driver's available index now, into *idx; false (and *idx
 * untouched) for a queue not set up or whose ring is not in RAM. */
bool fb_vq_avail_idx(const struct fb_virtqueue *vq, uint16_t *idx);

/* Returns chain head to the driver with len bytes written into its
 * writable segments. */
int fb_vq_push(struct fb_virtqueue *vq, uint16_t head, uint32_t len);

/* Whether the driver wants an interrupt now (no VIRTQ_AVAIL_F_NO_INTERRUPT). */
bool fb_vq_needs_interrupt(const struct fb_virtqueue *vq);

/* Copies between a chain's segments and a flat buffer, from offset off;
 * return the bytes copied. */
size_t fb_vq_copy_from_chain(const struct fb_vq_chain *c, size_t off,
			     void *dst, size_t len);
size_t fb_vq_copy_to_chain(const struct fb_vq_chain *c, size_t off,
			   const void *src, size_t len);

/* The iovecs covering [off, off + len) of segs (at most max of them);
 * returns how many, *got the bytes they cover. */
unsigned fb_iov_slice(const struct iovec *segs, unsigned nr, size_t off,
		      size_t len, struct iovec *out, unsigned max,
		      size_t *got);

#endif
