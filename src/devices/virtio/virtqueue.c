#include <errno.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "util/error.h"

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
} __attribute__((packed));

#define AVAIL_IDX_OFF 2
#define AVAIL_RING_OFF 4
#define USED_IDX_OFF 2
#define USED_RING_OFF 4

static uint8_t *ring_ptr(const struct fb_virtqueue *vq, uint64_t gpa,
			 uint64_t len)
{
	return fb_gpa_ptr(vq->mem, gpa, len);
}

int fb_vq_activate(struct fb_virtqueue *vq, const struct fb_guest_mem *mem)
{
	uint64_t n = vq->size;

	vq->mem = mem;
	if (n == 0 || n > FB_VQ_MAX_SIZE || (n & (n - 1)))
		return fb_errorf(-EINVAL, "queue size %llu is not a power of 2 "
				 "up to %u", (unsigned long long)n,
				 FB_VQ_MAX_SIZE);
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return fb_errorf(-EINVAL, "queue rings are misaligned");
	if (!ring_ptr(vq, vq->desc_gpa, 16 * n) ||
	    !ring_ptr(vq, vq->avail_gpa, 6 + 2 * n) ||
	    !ring_ptr(vq, vq->used_gpa, 6 + 8 * n))
		return fb_errorf(-EINVAL, "queue rings lie outside guest RAM");
	vq->last_avail = 0;
	vq->used_idx = 0;
	return 0;
}

void fb_vq_reset(struct fb_virtqueue *vq)
{
	memset(vq, 0, sizeof(*vq));
}

static uint16_t load16_acquire(const uint8_t *p)
{
	uint16_t v = __atomic_load_n((const uint16_t *)(const void *)p,
				     __ATOMIC_ACQUIRE);
	return v;
}

static int add_segment(struct fb_vq_chain *c, const struct vring_desc *d,
		       void *host)
{
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		if (c->nr_out == FB_VQ_MAX_SEGS)
			return fb_errorf(-E2BIG, "descriptor chain has more "
					 "than %u writable segments",
					 FB_VQ_MAX_SEGS);
		c->out[c->nr_out++] = (struct iovec){ host, d->len };
		c->out_len += d->len;
		return 0;
	}
	if (c->nr_out)
		return fb_errorf(-EINVAL, "descriptor chain has a readable "
				 "segment after a writable one");
	if (c->nr_in == FB_VQ_MAX_SEGS)
		return fb_errorf(-E2BIG, "descriptor chain has more than %u "
				 "readable segments", FB_VQ_MAX_SEGS);
	c->in[c->nr_in++] = (struct iovec){ host, d->len };
	c->in_len += d->len;
	return 0;
}

/* Walks the chain from head. Every descriptor is copied out of guest
 * memory once, so a guest changing it under us changes nothing. */
static int walk_chain(struct fb_virtqueue *vq, uint16_t head,
		      struct fb_vq_chain *c)
{
	const uint8_t *table = ring_ptr(vq, vq->desc_gpa, 16ull * vq->size);
	uint32_t table_size = vq->size, idx = head, seen = 0;
	bool indirect = false;

	if (!table)
		return fb_errorf(-EFAULT, "descriptor table is not in RAM");

	for (;;) {
		struct vring_desc d;
		void *host = NULL;
		int err;

		if (idx >= table_size)
			return fb_errorf(-EINVAL, "descriptor index %u out of "
					 "a table of %u", idx, table_size);
		if (++seen > table_size)
			return fb_errorf(-ELOOP, "descriptor chain loops (more "
					 "than %u descriptors)", table_size);
		memcpy(&d, table + 16ull * idx, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return fb_errorf(-EINVAL, "nested or chained "
						 "indirect descriptor");
			if (d.len == 0 || d.len % 16 || d.len / 16 > 65536)
				return fb_errorf(-EINVAL, "indirect table of "
						 "%u bytes", d.len);
			table = ring_ptr(vq, d.addr, d.len);
			if (!table)
				return fb_errorf(-EFAULT, "indirect table at "
						 "0x%llx+%u is not in RAM",
						 (unsigned long long)d.addr,
						 d.len);
			table_size = d.len / 16;
			idx = 0;
			seen = 0;
			indirect = true;
			continue;
		}
		if (d.len) {
			host = ring_ptr(vq, d.addr, d.len);
			/* The device may write it: a diff snapshot must
			 * carry it, and KVM's dirty log cannot see us. */
			if (host && (d.flags & VIRTQ_DESC_F_WRITE) &&
			    !vq->writes_nothing)
				fb_guest_mem_mark_dirty(vq->mem, d.addr, d.len);
			if (!host)
				return fb_errorf(-EFAULT, "buffer at 0x%llx+%u "
						 "is not in RAM",
						 (unsigned long long)d.addr,
						 d.len);
			err = add_segment(c, &d, host);
			if (err < 0)
				return err;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

bool fb_vq_avail_idx(const struct fb_virtqueue *vq, uint16_t *idx)
{
	const uint8_t *avail;

	if (!vq->ready || !vq->mem)
		return false;
	avail = ring_ptr(vq, vq->avail_gpa, 6 + 2ull * vq->size);
	if (!avail)
		return false;
	*idx = load16_acquire(avail + AVAIL_IDX_OFF);
	return true;
}

int fb_vq_pop(struct fb_virtqueue *vq, struct fb_vq_chain *chain)
{
	uint8_t *avail;
	uint16_t avail_idx, head;
	int err;

	/* A queue the driver never set up has no memory to look at. */
	if (!vq->ready || !vq->mem)
		return 0;
	avail = ring_ptr(vq, vq->avail_gpa, 6 + 2ull * vq->size);
	if (!avail)
		return fb_errorf(-EFAULT, "available ring is not in RAM");
	avail_idx = load16_acquire(avail + AVAIL_IDX_OFF);
	if (avail_idx == vq->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return fb_errorf(-EINVAL, "available index jumped by %u in a "
				 "queue of %u", (uint16_t)(avail_idx -
				 vq->last_avail), vq->size);
	memcpy(&head, avail + AVAIL_RING_OFF +
	       2u * (vq->last_avail % vq->size), sizeof(head));
	/* Not the iovec arrays: only their first nr_in/nr_out are used. */
	chain->head = head;
	chain->nr_in = chain->nr_out = 0;
	chain->in_len = chain->out_len = 0;
	err = walk_chain(vq, head, chain);
	if (err < 0)
		return err;
	vq->last_avail++;
	return 1;
}

int fb_vq_push(struct fb_virtqueue *vq, uint16_t head, uint32_t len)
{
	uint8_t *used = vq->mem ? ring_ptr(vq, vq->used_gpa,
					   6 + 8ull * vq->size) : NULL;
	struct vring_used_elem e = { head, len };

	if (!used)
		return fb_errorf(-EFAULT, "used ring is not in RAM");
	memcpy(used + USED_RING_OFF + 8u * (vq->used_idx % vq->size), &e,
	       sizeof(e));
	fb_guest_mem_mark_dirty(vq->mem, vq->used_gpa, 6 + 8ull * vq->size);
	vq->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n((uint16_t *)(void *)(used + USED_IDX_OFF),
			 vq->used_idx, __ATOMIC_RELEASE);
	return 0;
}

bool fb_vq_needs_interrupt(const struct fb_virtqueue *vq)
{
	const uint8_t *avail = vq->mem ? ring_ptr(vq, vq->avail_gpa, 2) : NULL;
	uint16_t flags;

	/* Our used-index store must be visible before we read the flag. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!avail)
		return false;
	memcpy(&flags, avail, sizeof(flags));
	return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

static size_t copy_iov(const struct iovec *iov, unsigned n, size_t off,
		       void *buf, size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off;
		if (chunk > len - done)
			chunk = len - done;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off,
			       (const uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done,
			       (const uint8_t *)iov[i].iov_base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t fb_vq_copy_from_chain(const struct fb_vq_chain *c, size_t off,
			     void *dst, size_t len)
{
	return copy_iov(c->in, c->nr_in, off, dst, len, false);
}

size_t fb_vq_copy_to_chain(const struct fb_vq_chain *c, size_t off,
			   const void *src, size_t len)
{
	return copy_iov(c->out, c->nr_out, off, (void *)src, len, true);
}

unsigned fb_iov_slice(const struct iovec *segs, unsigned nr, size_t off,
		      size_t len, struct iovec *out, unsigned max,
		      size_t *got)
{
	unsigned n = 0;
	size_t total = 0;

	for (unsigned i = 0; i < nr && n < max && total < len; i++) {
		size_t seg = segs[i].iov_len, take;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		take = seg - off;
		if (take > len - total)
			take = len - total;
		out[n].iov_base = (uint8_t *)segs[i].iov_base + off;
		out[n].iov_len = take;
		n++;
		total += take;
		off = 0;
	}
	*got = total;
	return n;
}
