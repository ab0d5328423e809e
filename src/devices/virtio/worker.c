#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/worker.h"
#include "util/error.h"

static void bump(const struct fb_worker *w, int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated and the thread wakes anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fprintf(stderr, "forkbox: %s: eventfd write: %s\n", w->name,
			strerror(errno));
}

static void *run(void *arg)
{
	struct fb_worker *w = arg;
	struct pollfd p[2] = {
		{ .fd = w->kickfd, .events = POLLIN },
		{ .fd = w->stopfd, .events = POLLIN },
	};
	uint64_t n;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "forkbox: %s: poll: %s\n", w->name,
				strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		if (p[0].revents) {
			if (read(w->kickfd, &n, sizeof(n)) < 0 &&
			    errno != EAGAIN)
				fprintf(stderr, "forkbox: %s: eventfd read: "
					"%s\n", w->name, strerror(errno));
			w->serve(w->arg);
		}
	}
}

int fb_worker_init(struct fb_worker *w, const char *name)
{
	w->name = name;
	w->started = false;
	w->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->stopfd = w->kickfd < 0 ? -1 :
		    eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->stopfd < 0) {
		int err = fb_errorf(-errno, "%s: eventfd: %s", name,
				    strerror(errno));

		fb_worker_release(w);
		return err;
	}
	return 0;
}

int fb_worker_start(struct fb_worker *w, void (*serve)(void *arg),
		    void *arg)
{
	int err;

	w->serve = serve;
	w->arg = arg;
	err = pthread_create(&w->thread, NULL, run, w);
	if (err)
		return fb_errorf(-err, "pthread_create(%s): %s", w->name,
				 strerror(err));
	w->started = true;
	return 0;
}

void fb_worker_kick(struct fb_worker *w)
{
	bump(w, w->kickfd);
}

void fb_worker_release(struct fb_worker *w)
{
	if (w->started) {
		bump(w, w->stopfd);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	if (w->kickfd >= 0)
		close(w->kickfd);
	if (w->stopfd >= 0)
		close(w->stopfd);
	w->kickfd = w->stopfd = -1;
}
