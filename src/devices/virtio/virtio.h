/* A virtio device over the virtio-mmio transport (virtio 1.x, 4.2).
 *
 * A device is an ops struct plus private state; the transport (mmio.c)
 * owns the registers, feature negotiation, queue set-up and interrupts and
 * knows nothing of what the device does. The device does its work on its
 * own thread(s): notify() runs on a vCPU thread and must only wake it. */
#ifndef FB_VIRTIO_VIRTIO_H
#define FB_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/bus.h"

#define FB_VIRTIO_MAX_QUEUES 4
#define FB_VIRTIO_MMIO_CONFIG 0x100 /* device config space offset */

#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK 19

struct fb_virtio_device;
struct fb_virtio_state;
struct fb_vm;

struct fb_virtio_ops {
	const char *name;         /* "virtio-vsock", for messages */
	uint32_t device_id;
	uint64_t features;        /* VIRTIO_F_VERSION_1 is added */
	unsigned nr_queues;       /* <= FB_VIRTIO_MAX_QUEUES */
	uint16_t queue_max_size;  /* <= FB_VQ_MAX_SIZE, a power of 2 */
	uint32_t config_len;
	/* Config space; off + len <= config_len is checked before. */
	void (*config_read)(struct fb_virtio_device *d, uint32_t off,
			    uint8_t *data, unsigned len);
	void (*config_write)(struct fb_virtio_device *d, uint32_t off,
			     const uint8_t *data, unsigned len);
	/* DRIVER_OK: the queues are set up; start serving them. */
	int (*activate)(struct fb_virtio_device *d);
	/* The driver kicked queue q (vCPU thread: wake, never block). */
	void (*notify)(struct fb_virtio_device *d, unsigned q);
	/* The driver reset the device: stop using the queues; when this
	 * returns, the device thread touches no queue. */
	void (*reset)(struct fb_virtio_device *d);
	/* The VM is going away: stop threads, free priv (may be NULL). */
	void (*destroy)(struct fb_virtio_device *d);
	/* Snapshots (optional, for devices with threads of their own):
	 * quiesce stops all work on guest memory until unquiesce; while
	 * quiesced, save_adjust fixes the saved transport state for work
	 * the device holds (a popped but unused buffer is given back). */
	void (*quiesce)(struct fb_virtio_device *d);
	void (*unquiesce)(struct fb_virtio_device *d);
	void (*save_adjust)(struct fb_virtio_device *d,
			    struct fb_virtio_state *st);
	/* Optional: the device's own state, one or more lines to f, for
	 * fb_vm_debug (any thread, while running). */
	void (*debug)(struct fb_virtio_device *d, FILE *f);
};

struct fb_virtio_device {
	const struct fb_virtio_ops *ops;
	void *priv;
	struct fb_vm *vm;
	const struct fb_guest_mem *mem;
	/* Features of this device beyond its kind's (ops->features), set
	 * before the driver can look (a read-only disk's VIRTIO_BLK_F_RO). */
	uint64_t extra_features;
	uint64_t mmio_base;
	uint32_t gsi;
	int irqfd;                 /* eventfd wired to gsi (KVM_IRQFD) */

	pthread_mutex_t lock;      /* the transport registers below */
	uint32_t status;
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	struct fb_virtqueue queues[FB_VIRTIO_MAX_QUEUES];
	bool failed;               /* fb_virtio_fail() was called */
	char failure[192];         /* and why */
};

/* Sets up a device's transport state without a VM (tests, fuzzing):
 * mem is the guest memory its queues live in, irqfd an eventfd or -1. */
void fb_virtio_device_init(struct fb_virtio_device *d,
			   const struct fb_virtio_ops *ops, void *priv,
			   const struct fb_guest_mem *mem, int irqfd);

extern const struct fb_io_ops fb_virtio_mmio_ops;

/* Creates the device at the VM's next virtio-mmio slot (MMIO window, GSI,
 * ACPI description), wires its interrupt. Call before the vCPUs start.
 * On success the device owns priv (ops->destroy frees it); on failure the
 * caller still does. */
int fb_virtio_mmio_add(struct fb_vm *vm, const struct fb_virtio_ops *ops,
		       void *priv, struct fb_virtio_device **out);
/* Calls ops->destroy, then frees the transport. */
void fb_virtio_mmio_free(struct fb_virtio_device *d);

/* The transport's registers and each queue's indices (the driver's
 * avail index read from guest memory), then ops->debug, to f. */
void fb_virtio_debug(struct fb_virtio_device *d, FILE *f);

/* Tells the driver that used buffers are waiting (any thread). */
void fb_virtio_signal_used(struct fb_virtio_device *d);
/* Tells the driver that the device's config changed (any thread): a new
 * config generation and the config bit of the interrupt status. */
void fb_virtio_config_changed(struct fb_virtio_device *d);

/* The transport's plain-data state, for snapshots. */
struct fb_virtio_queue_state {
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t size, last_avail, used_idx;
	uint8_t ready;
};

struct fb_virtio_state {
	uint32_t device_id;
	uint32_t status;
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	uint32_t nr_queues;
	struct fb_virtio_queue_state queues[FB_VIRTIO_MAX_QUEUES];
	uint32_t device_flags; /* the device's own (ops->save_adjust) */
};

/* vsock's device_flags: the guest had connections when it was saved. */
#define FB_VSOCK_STATE_HAD_CONNS 1u

void fb_virtio_save(struct fb_virtio_device *d, struct fb_virtio_state *st);
/* Checks the state against the device and guest memory (a snapshot is
 * input like any other), sets the queues up and, if the driver was
 * running, activates the device. */
int fb_virtio_restore(struct fb_virtio_device *d,
		      const struct fb_virtio_state *st);

/* The driver broke the protocol: the VM stops with a message naming the
 * device (a hostile guest may only kill its own VM). */
void fb_virtio_fail(struct fb_virtio_device *d, const char *what);

#endif
