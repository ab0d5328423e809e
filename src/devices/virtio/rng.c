#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "devices/virtio/rng.h"
#include "devices/virtio/virtio.h"
#include "util/error.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_PER_REQUEST (64u << 10)

/* Fills every writable segment of each waiting request. Short and cheap,
 * so it runs on the notifying vCPU's thread, under the transport lock so
 * that a reset on another vCPU cannot pull the queue away. */
static void rng_notify(struct fb_virtio_device *d, unsigned q)
{
	struct fb_virtqueue *vq = &d->queues[0];
	struct fb_vq_chain chain;
	bool pushed = false;
	int got;

	pthread_mutex_lock(&d->lock);
	while ((got = fb_vq_pop(vq, &chain)) == 1) {
		uint32_t filled = 0;

		for (unsigned i = 0; i < chain.nr_out &&
		     filled < RNG_MAX_PER_REQUEST; i++) {
			size_t want = chain.out[i].iov_len;
			ssize_t n;

			if (want > RNG_MAX_PER_REQUEST - filled)
				want = RNG_MAX_PER_REQUEST - filled;
			/* Blocking: before the host's CRNG is ready a
			 * non-blocking call fails, and an empty answer
			 * leaves Linux's virtio-rng waiting for ever.
			 * Once ready (soon after host boot) it never
			 * blocks. */
			n = getrandom(chain.out[i].iov_base, want, 0);
			if (n <= 0)
				break;
			filled += (uint32_t)n;
		}
		fb_vq_push(vq, chain.head, filled);
		pushed = true;
	}
	pthread_mutex_unlock(&d->lock);
	if (got < 0) {
		char why[192];

		snprintf(why, sizeof(why), "%s", fb_last_error());
		fb_virtio_fail(d, why);
	}
	if (pushed && fb_vq_needs_interrupt(vq))
		fb_virtio_signal_used(d);
}

static const struct fb_virtio_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.nr_queues = 1,
	.queue_max_size = RNG_QUEUE_SIZE,
	.notify = rng_notify,
};

int fb_virtio_rng_add(struct fb_vm *vm)
{
	struct fb_virtio_device *d;

	return fb_virtio_mmio_add(vm, &rng_ops, NULL, &d);
}
