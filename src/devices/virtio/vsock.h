/* virtio-vsock (device id 19) in user space, with Firecracker's "hybrid"
 * host side so existing tools work unchanged:
 *
 *  - host-initiated: connect to uds_path, send "CONNECT <port>\n", read
 *    "OK <hostport>\n", then the socket is a byte stream to the guest's
 *    port;
 *  - guest-initiated: a guest connect to host CID 2, port P connects to
 *    the Unix socket "<uds_path>_<P>", which the host side listens on.
 *
 * Stream sockets only. One I/O thread per device (epoll) does all the
 * work; see docs/vsock.md. */
#ifndef FB_VIRTIO_VSOCK_H
#define FB_VIRTIO_VSOCK_H

#include <stdint.h>

struct fb_vm;
struct fb_virtio_device;
struct fb_vsock;

struct fb_vsock_config {
	uint64_t guest_cid;   /* >= 3 */
	const char *uds_path; /* the listener; "<uds_path>_<P>" for port P */
	/* Deadline for a host client's "CONNECT <port>\n" line and for the
	 * guest's answer to the connection request; 0 means 30 s. */
	unsigned handshake_timeout_ms;
};

/* Adds the device to the VM (fb_virtio_mmio_add, before the vCPUs start)
 * and creates the listener, replacing a stale socket at uds_path. */
int fb_vsock_create(struct fb_vm *vm, const struct fb_vsock_config *cfg,
		    struct fb_vsock **out);

/* The same over a transport device the caller set up (tests: d->vm NULL,
 * d->mem a test guest memory, d->irqfd an eventfd, d->lock initialised).
 * Sets d->ops and d->priv. */
int fb_vsock_init_device(struct fb_virtio_device *d,
			 const struct fb_vsock_config *cfg,
			 struct fb_vsock **out);

/* Stops the I/O thread, closes every socket, unlinks the listener. Call
 * when no vCPU can reach the device any more (the VM is stopped): the
 * transport device itself stays with its owner. NULL is a no-op. */
void fb_vsock_destroy(struct fb_vsock *v);

/* Drops every connection on the host side and tells the guest with
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (after a restore
 * or a fork: the guest's sockets are stale, its listeners survive). The
 * event waits for an event buffer if the driver posted none yet. */
int fb_vsock_transport_reset(struct fb_vsock *v);

/* A device restored from a snapshot or a fork: the host ports it gives
 * new connections start at a random place, not where a fresh device
 * starts, so that none meets a socket of the same ports that the guest
 * still holds from its parent's connections (Linux keeps a closed one
 * for a while). */
void fb_vsock_restored(struct fb_vsock *v);

/* Live connections (any state), for tests and stats. */
unsigned fb_vsock_nr_conns(struct fb_vsock *v);

#endif
