/* A device's own thread, woken by a kick: virtio-blk and virtio-balloon
 * do their work on one, so that a vCPU's notify never waits on a file or
 * on madvise. The thread calls serve(arg) after each kick (kicks that
 * come while it serves are folded into one more call) until it is
 * stopped. */
#ifndef FB_VIRTIO_WORKER_H
#define FB_VIRTIO_WORKER_H

#include <pthread.h>
#include <stdbool.h>

struct fb_worker {
	const char *name;   /* "virtio-blk", for messages */
	int kickfd, stopfd; /* eventfds */
	pthread_t thread;
	bool started;
	void (*serve)(void *arg);
	void *arg;
};

/* Makes the eventfds; the thread starts with fb_worker_start. */
int fb_worker_init(struct fb_worker *w, const char *name);
int fb_worker_start(struct fb_worker *w, void (*serve)(void *arg),
		    void *arg);
/* Any thread, never blocks. */
void fb_worker_kick(struct fb_worker *w);
/* Stops and joins the thread (if started), closes the eventfds. */
void fb_worker_release(struct fb_worker *w);

#endif
