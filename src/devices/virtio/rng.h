/* virtio-rng (virtio 1.x, 5.4): the guest's entropy, from the host's
 * getrandom(). */
#ifndef FB_VIRTIO_RNG_H
#define FB_VIRTIO_RNG_H

struct fb_vm;

int fb_virtio_rng_add(struct fb_vm *vm);

#endif
