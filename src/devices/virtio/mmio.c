/* The virtio-mmio transport, version 2 (virtio 1.x, 4.2.2): registers,
 * feature negotiation, queue set-up, interrupts. Registers are 32-bit and
 * naturally aligned; anything else reads as 0 and writes are ignored. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "devices/virtio/virtio.h"
#include "util/error.h"
#include "vmm/vm.h"

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc

#define MMIO_MAGIC 0x74726976 /* "virt" */
#define MMIO_VERSION 2
#define VENDOR_ID 0x4b424f46  /* "FOBK" */
#define INTERRUPT_USED_RING 1
#define INTERRUPT_CONFIG 2

void fb_virtio_device_init(struct fb_virtio_device *d,
			   const struct fb_virtio_ops *ops, void *priv,
			   const struct fb_guest_mem *mem, int irqfd)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->mem = mem;
	d->irqfd = irqfd;
	pthread_mutex_init(&d->lock, NULL);
}

/* Lock-free, like fb_virtio_signal_used: device threads call both, and the
 * transport holds d->lock while a reset waits for those threads. */
void fb_virtio_fail(struct fb_virtio_device *d, const char *what)
{
	__atomic_fetch_or(&d->status, VIRTIO_STATUS_NEEDS_RESET,
			  __ATOMIC_SEQ_CST);
	if (!__atomic_exchange_n(&d->failed, true, __ATOMIC_SEQ_CST))
		snprintf(d->failure, sizeof(d->failure), "%s", what);
	if (d->vm)
		fb_vm_request_stop(d->vm, FB_VM_EXIT_CRASH, "%s: the guest "
				   "broke the virtio protocol: %s",
				   d->ops->name, what);
}

void fb_virtio_signal_used(struct fb_virtio_device *d)
{
	uint64_t one = 1;

	__atomic_fetch_or(&d->interrupt_status, INTERRUPT_USED_RING,
			  __ATOMIC_SEQ_CST);
	if (d->irqfd >= 0 && write(d->irqfd, &one, sizeof(one)) < 0) {
		/* An eventfd only fails to count past 2^64 - 2. */
	}
}

void fb_virtio_debug(struct fb_virtio_device *d, FILE *f)
{
	pthread_mutex_lock(&d->lock);
	fprintf(f, "forkbox debug: %s (gsi %u): status %#x, interrupt_status "
		"%#x%s%s\n", d->ops->name, d->gsi, d->status,
		__atomic_load_n(&d->interrupt_status, __ATOMIC_SEQ_CST),
		d->failed ? ", failed: " : "", d->failed ? d->failure : "");
	for (unsigned i = 0; i < d->ops->nr_queues; i++) {
		const struct fb_virtqueue *q = &d->queues[i];
		uint16_t avail = 0;
		bool have = q->ready && fb_vq_avail_idx(q, &avail);

		fprintf(f, "forkbox debug:   queue %u: ready %u, size %u, "
			"last_avail %u, used_idx %u, driver's avail idx %s%u\n",
			i, q->ready, q->size, q->last_avail, q->used_idx,
			have ? "" : "(unreadable) ", avail);
	}
	pthread_mutex_unlock(&d->lock);
	if (d->ops->debug)
		d->ops->debug(d, f);
}

/* Lock-free too, for the same reason. The generation moves first: a
 * driver that reads it around a config read sees the change. */
void fb_virtio_config_changed(struct fb_virtio_device *d)
{
	uint64_t one = 1;

	__atomic_fetch_add(&d->config_generation, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_or(&d->interrupt_status, INTERRUPT_CONFIG,
			  __ATOMIC_SEQ_CST);
	if (d->irqfd >= 0 && write(d->irqfd, &one, sizeof(one)) < 0) {
		/* An eventfd only fails to count past 2^64 - 2. */
	}
}

static uint64_t all_features(const struct fb_virtio_device *d)
{
	return d->ops->features | d->extra_features | VIRTIO_F_VERSION_1;
}

static struct fb_virtqueue *selected(struct fb_virtio_device *d)
{
	return d->queue_sel < d->ops->nr_queues ? &d->queues[d->queue_sel] :
						   NULL;
}

static uint32_t read_reg(struct fb_virtio_device *d, uint64_t off)
{
	struct fb_virtqueue *vq = selected(d);

	switch (off) {
	case REG_MAGIC: return MMIO_MAGIC;
	case REG_VERSION: return MMIO_VERSION;
	case REG_DEVICE_ID: return d->ops->device_id;
	case REG_VENDOR_ID: return VENDOR_ID;
	case REG_DEVICE_FEATURES:
		return d->device_features_sel > 1 ? 0 :
		       (uint32_t)(all_features(d) >>
				  (32 * d->device_features_sel));
	case REG_QUEUE_NUM_MAX: return vq ? d->ops->queue_max_size : 0;
	case REG_QUEUE_READY: return vq ? vq->ready : 0;
	case REG_INTERRUPT_STATUS:
		return __atomic_load_n(&d->interrupt_status, __ATOMIC_SEQ_CST);
	case REG_STATUS: return __atomic_load_n(&d->status, __ATOMIC_SEQ_CST);
	case REG_CONFIG_GENERATION:
		return __atomic_load_n(&d->config_generation, __ATOMIC_SEQ_CST);
	default: return 0;
	}
}

static void reset_device(struct fb_virtio_device *d)
{
	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned i = 0; i < FB_VIRTIO_MAX_QUEUES; i++)
		fb_vq_reset(&d->queues[i]);
	d->status = 0;
	d->driver_features = 0;
	d->interrupt_status = 0;
	d->device_features_sel = d->driver_features_sel = d->queue_sel = 0;
}

static void set_status(struct fb_virtio_device *d, uint32_t v)
{
	uint32_t old = __atomic_load_n(&d->status, __ATOMIC_SEQ_CST);

	if (v == 0) {
		reset_device(d);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) &&
	    !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Modern devices only; and nothing we did not offer. */
		if (!(d->driver_features & VIRTIO_F_VERSION_1) ||
		    (d->driver_features & ~all_features(d)))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	__atomic_store_n(&d->status, v | (old & VIRTIO_STATUS_NEEDS_RESET),
			 __ATOMIC_SEQ_CST);
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    d->ops->activate && d->ops->activate(d) < 0)
		d->status |= VIRTIO_STATUS_NEEDS_RESET;
}

static void set_queue_ready(struct fb_virtio_device *d,
			    struct fb_virtqueue *vq, uint32_t v)
{
	if (!v) {
		vq->ready = false;
		return;
	}
	if (fb_vq_activate(vq, d->mem) < 0) {
		char why[192];

		snprintf(why, sizeof(why), "queue %u: %s", d->queue_sel,
			 fb_last_error());
		/* fb_virtio_fail takes the lock itself. */
		pthread_mutex_unlock(&d->lock);
		fb_virtio_fail(d, why);
		pthread_mutex_lock(&d->lock);
		return;
	}
	vq->ready = true;
}

static void set_half(uint64_t *reg, bool high, uint32_t v)
{
	if (high)
		*reg = (*reg & 0xffffffffull) | (uint64_t)v << 32;
	else
		*reg = (*reg & ~0xffffffffull) | v;
}

static void write_queue_reg(struct fb_virtio_device *d, uint64_t off,
			    uint32_t v)
{
	struct fb_virtqueue *vq = selected(d);

	/* Queue layout is fixed once the driver is running, and a ready
	 * queue's rings (checked when it became ready) cannot move: only
	 * QUEUE_READY = 0 may touch it then. */
	if (!vq || (d->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	if (vq->ready && off != REG_QUEUE_READY)
		return;
	switch (off) {
	case REG_QUEUE_NUM:
		vq->size = (uint16_t)(v <= d->ops->queue_max_size ? v : 0);
		break;
	case REG_QUEUE_READY:
		set_queue_ready(d, vq, v);
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		set_half(&vq->desc_gpa, off == REG_QUEUE_DESC_HIGH, v);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		set_half(&vq->avail_gpa, off == REG_QUEUE_DRIVER_HIGH, v);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		set_half(&vq->used_gpa, off == REG_QUEUE_DEVICE_HIGH, v);
		break;
	}
}

static void write_reg(struct fb_virtio_device *d, uint64_t off, uint32_t v)
{
	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		d->device_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		if (d->driver_features_sel <= 1 &&
		    !(d->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&d->driver_features,
				 d->driver_features_sel == 1, v);
		break;
	case REG_DRIVER_FEATURES_SEL:
		d->driver_features_sel = v;
		break;
	case REG_QUEUE_SEL:
		d->queue_sel = v;
		break;
	case REG_INTERRUPT_ACK:
		__atomic_fetch_and(&d->interrupt_status, ~v, __ATOMIC_SEQ_CST);
		break;
	case REG_STATUS:
		set_status(d, v);
		break;
	default:
		write_queue_reg(d, off, v);
		break;
	}
}

static void mmio_read(void *dev, uint64_t off, uint8_t *data, unsigned len)
{
	struct fb_virtio_device *d = dev;
	uint32_t v;

	memset(data, 0, len);
	if (off >= FB_VIRTIO_MMIO_CONFIG) {
		uint64_t coff = off - FB_VIRTIO_MMIO_CONFIG;

		if (d->ops->config_read && coff < d->ops->config_len &&
		    len <= d->ops->config_len - coff) {
			pthread_mutex_lock(&d->lock);
			d->ops->config_read(d, (uint32_t)coff, data, len);
			pthread_mutex_unlock(&d->lock);
		}
		return;
	}
	if (len != 4 || (off & 3))
		return;
	pthread_mutex_lock(&d->lock);
	v = read_reg(d, off);
	pthread_mutex_unlock(&d->lock);
	memcpy(data, &v, 4);
}

static void mmio_write(void *dev, uint64_t off, const uint8_t *data,
		       unsigned len)
{
	struct fb_virtio_device *d = dev;
	uint32_t v;

	if (off >= FB_VIRTIO_MMIO_CONFIG) {
		uint64_t coff = off - FB_VIRTIO_MMIO_CONFIG;

		if (d->ops->config_write && coff < d->ops->config_len &&
		    len <= d->ops->config_len - coff) {
			pthread_mutex_lock(&d->lock);
			d->ops->config_write(d, (uint32_t)coff, data, len);
			pthread_mutex_unlock(&d->lock);
		}
		return;
	}
	if (len != 4 || (off & 3))
		return;
	memcpy(&v, data, 4);
	if (off == REG_QUEUE_NOTIFY) {
		/* No lock: the device wakes its own thread. */
		if (v < d->ops->nr_queues && d->ops->notify &&
		    (d->status & VIRTIO_STATUS_DRIVER_OK))
			d->ops->notify(d, v);
		return;
	}
	pthread_mutex_lock(&d->lock);
	write_reg(d, off, v);
	pthread_mutex_unlock(&d->lock);
}

const struct fb_io_ops fb_virtio_mmio_ops = {
	.read = mmio_read,
	.write = mmio_write,
};

int fb_virtio_mmio_add(struct fb_vm *vm, const struct fb_virtio_ops *ops,
		       void *priv, struct fb_virtio_device **out)
{
	struct fb_virtio_device *d;
	struct kvm_irqfd irqfd;
	unsigned slot = vm->nr_virtio;
	int err;

	if (slot >= FB_VM_MAX_VIRTIO)
		return fb_errorf(-ENOSPC, "no room for another virtio device "
				 "(%u at most)", FB_VM_MAX_VIRTIO);
	if (ops->nr_queues > FB_VIRTIO_MAX_QUEUES ||
	    ops->queue_max_size > FB_VQ_MAX_SIZE)
		return fb_errorf(-EINVAL, "%s: too many or too large queues",
				 ops->name);
	d = calloc(1, sizeof(*d));
	if (!d)
		return fb_errorf(-ENOMEM, "calloc for %s", ops->name);
	fb_virtio_device_init(d, ops, priv, &vm->mem, -1);
	d->vm = vm;
	d->mmio_base = FB_VIRTIO_MMIO_BASE + slot * FB_VIRTIO_MMIO_SIZE;
	d->gsi = FB_VIRTIO_IRQ_BASE + slot;
	d->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->irqfd < 0) {
		err = fb_errorf(-errno, "eventfd for %s: %s", ops->name,
				strerror(errno));
		goto fail;
	}
	memset(&irqfd, 0, sizeof(irqfd));
	irqfd.fd = (uint32_t)d->irqfd;
	irqfd.gsi = d->gsi;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		err = fb_errorf(-errno, "KVM_IRQFD for %s: %s", ops->name,
				strerror(errno));
		goto fail;
	}
	err = fb_bus_register(&vm->mmio, d->mmio_base, FB_VIRTIO_MMIO_SIZE,
			      &fb_virtio_mmio_ops, d);
	if (err < 0)
		goto fail;
	vm->virtio[vm->nr_virtio++] = d;
	*out = d;
	return 0;
fail:
	d->priv = NULL; /* the caller's again: its destroy must not run */
	fb_virtio_mmio_free(d);
	return err;
}

void fb_virtio_mmio_free(struct fb_virtio_device *d)
{
	if (!d)
		return;
	if (d->ops->destroy)
		d->ops->destroy(d);
	if (d->irqfd >= 0)
		close(d->irqfd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fb_virtio_save(struct fb_virtio_device *d, struct fb_virtio_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&d->lock);
	st->device_id = d->ops->device_id;
	st->status = __atomic_load_n(&d->status, __ATOMIC_SEQ_CST);
	st->driver_features = d->driver_features;
	st->device_features_sel = d->device_features_sel;
	st->driver_features_sel = d->driver_features_sel;
	st->queue_sel = d->queue_sel;
	st->interrupt_status = __atomic_load_n(&d->interrupt_status,
					       __ATOMIC_SEQ_CST);
	st->config_generation = d->config_generation;
	st->nr_queues = d->ops->nr_queues;
	for (unsigned i = 0; i < d->ops->nr_queues; i++) {
		const struct fb_virtqueue *q = &d->queues[i];

		st->queues[i] = (struct fb_virtio_queue_state){
			q->desc_gpa, q->avail_gpa, q->used_gpa, q->size,
			q->last_avail, q->used_idx, q->ready,
		};
	}
	pthread_mutex_unlock(&d->lock);
	if (d->ops->save_adjust)
		d->ops->save_adjust(d, st);
}

int fb_virtio_restore(struct fb_virtio_device *d,
		      const struct fb_virtio_state *st)
{
	int err = 0;

	if (st->device_id != d->ops->device_id ||
	    st->nr_queues != d->ops->nr_queues)
		return fb_errorf(-EINVAL, "%s: the snapshot holds a device of "
				 "id %u with %u queues", d->ops->name,
				 st->device_id, st->nr_queues);
	pthread_mutex_lock(&d->lock);
	d->driver_features = st->driver_features;
	d->device_features_sel = st->device_features_sel;
	d->driver_features_sel = st->driver_features_sel;
	d->queue_sel = st->queue_sel;
	d->config_generation = st->config_generation;
	for (unsigned i = 0; i < d->ops->nr_queues && !err; i++) {
		const struct fb_virtio_queue_state *qs = &st->queues[i];
		struct fb_virtqueue *q = &d->queues[i];

		fb_vq_reset(q);
		q->desc_gpa = qs->desc_gpa;
		q->avail_gpa = qs->avail_gpa;
		q->used_gpa = qs->used_gpa;
		q->size = qs->size;
		if (!qs->ready)
			continue;
		if (qs->size > d->ops->queue_max_size) {
			err = fb_errorf(-EINVAL, "%s: queue %u of size %u",
					d->ops->name, i, qs->size);
			break;
		}
		err = fb_vq_activate(q, d->mem);
		q->last_avail = qs->last_avail;
		q->used_idx = qs->used_idx;
		q->ready = !err;
	}
	__atomic_store_n(&d->interrupt_status, st->interrupt_status,
			 __ATOMIC_SEQ_CST);
	__atomic_store_n(&d->status, st->status, __ATOMIC_SEQ_CST);
	if (!err && (st->status & VIRTIO_STATUS_DRIVER_OK) && d->ops->activate)
		err = d->ops->activate(d);
	pthread_mutex_unlock(&d->lock);
	return err;
}
