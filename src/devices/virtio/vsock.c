/* virtio-vsock: the device (ops, config space), its I/O thread and the
 * three queues. The thread owns all the work; vCPU threads only write the
 * kick eventfd (notify) or flip `active` under v->lock (activate, reset).
 * Connections live in vsock_conn.c, the Unix-socket side in
 * vsock_host.c. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/vsock_priv.h"
#include "util/error.h"
#include "util/le.h"

uint64_t vsock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void kick(int fd)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is saturated: the thread wakes anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("forkbox: virtio-vsock: eventfd write");
}

static void drain(int fd)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		perror("forkbox: virtio-vsock: eventfd read");
}

/* Records a protocol violation: the queues stop until the driver resets
 * the device; the transport hears of it once v->lock is dropped. */
static void broke(struct fb_vsock *v, const char *queue)
{
	v->broken = true;
	if (!v->fail_msg[0])
		snprintf(v->fail_msg, sizeof(v->fail_msg), "%s queue: %s",
			 queue, fb_last_error());
}

static void pushed(struct fb_vsock *v, struct fb_virtqueue *vq)
{
	if (fb_vq_needs_interrupt(vq))
		v->need_irq = true;
}

/* Guest to host: every tx chain is one packet; take them all. */
static void tx_drain(struct fb_vsock *v)
{
	struct fb_virtqueue *vq = &v->d->queues[VSOCK_QUEUE_TX];
	struct fb_vq_chain chain;

	while (vq->ready && v->active && !v->broken) {
		uint8_t raw[VSOCK_HDR_SIZE];
		struct vsock_hdr h;
		int r = fb_vq_pop(vq, &chain);

		if (r < 0) {
			broke(v, "tx");
			return;
		}
		if (r == 0)
			return;
		/* A chain too short for a header carries nothing we can
		 * answer: drop it. */
		if (fb_vq_copy_from_chain(&chain, 0, raw, sizeof(raw)) ==
		    sizeof(raw)) {
			vsock_hdr_decode(&h, raw);
			vsock_guest_packet(v, &h, &chain);
		}
		if (fb_vq_push(vq, chain.head, 0) < 0) {
			broke(v, "tx");
			return;
		}
		pushed(v, vq);
	}
}

/* The rx chain to fill next, popped once and kept until used: a
 * connection may turn out to have nothing to send after all. */
static struct fb_vq_chain *rx_chain(struct fb_vsock *v)
{
	struct fb_virtqueue *vq = &v->d->queues[VSOCK_QUEUE_RX];
	int r;

	if (v->rx_held)
		return &v->rx_chain;
	r = fb_vq_pop(vq, &v->rx_chain);
	if (r < 0) {
		broke(v, "rx");
		return NULL;
	}
	if (r == 0)
		return NULL;
	if (v->rx_chain.out_len < VSOCK_HDR_SIZE || v->rx_chain.nr_in) {
		fb_errorf(-EINVAL, "rx buffer of %llu bytes (%u readable "
			  "segments)", (unsigned long long)v->rx_chain.out_len,
			  v->rx_chain.nr_in);
		broke(v, "rx");
		return NULL;
	}
	v->rx_held = true;
	return &v->rx_chain;
}

static bool rx_put(struct fb_vsock *v, uint32_t len)
{
	struct fb_virtqueue *vq = &v->d->queues[VSOCK_QUEUE_RX];

	v->rx_held = false;
	if (fb_vq_push(vq, v->rx_chain.head, len) < 0) {
		broke(v, "rx");
		return false;
	}
	pushed(v, vq);
	return true;
}

/* Host to guest: orphan RSTs first (they free the guest's sockets), then
 * the connections owing a packet, one packet each in turn, while the
 * driver has buffers. */
static void rx_fill(struct fb_vsock *v)
{
	struct fb_virtqueue *vq = &v->d->queues[VSOCK_QUEUE_RX];

	while (vq->ready && v->active && !v->broken &&
	       (v->rst_len || v->rxq_head)) {
		struct fb_vq_chain *chain = rx_chain(v);
		struct vsock_conn *c;
		uint64_t token;
		uint32_t len;

		if (!chain)
			return;
		if (v->rst_len) {
			const struct vsock_rst *r = &v->rst[v->rst_head];
			struct vsock_hdr h = {
				.src_cid = VSOCK_HOST_CID,
				.dst_cid = v->guest_cid,
				.src_port = r->local_port,
				.dst_port = r->peer_port,
				.type = VSOCK_TYPE_STREAM,
				.op = VSOCK_OP_RST,
				.buf_alloc = VSOCK_BUF_ALLOC,
			};
			uint8_t raw[VSOCK_HDR_SIZE];

			v->rst_head = (v->rst_head + 1) % VSOCK_RST_RING;
			v->rst_len--;
			vsock_hdr_encode(raw, &h);
			fb_vq_copy_to_chain(chain, 0, raw, sizeof(raw));
			if (!rx_put(v, VSOCK_HDR_SIZE))
				return;
			continue;
		}
		c = v->rxq_head;
		v->rxq_head = c->rxq_next;
		if (!v->rxq_head)
			v->rxq_tail = NULL;
		c->in_rxq = false;
		c->rxq_next = NULL;
		/* A connection that had nothing to send after all (the
		 * socket was empty, the credit gone) is queued again by
		 * the event that changes that; one that sent takes its
		 * turn at the tail, so no connection starves another. */
		token = vsock_conn_token(c);
		len = vsock_conn_rx_packet(v, c, chain);
		if (!len)
			continue;
		if (!rx_put(v, len))
			return;
		/* The packet may have been c's last (SHUTDOWN, then done). */
		c = vsock_conn_from_token(v, token);
		if (c)
			vsock_conn_want_rx(v, c);
	}
}

static void event_fill(struct fb_vsock *v)
{
	struct fb_virtqueue *vq = &v->d->queues[VSOCK_QUEUE_EVENT];
	struct fb_vq_chain chain;
	uint32_t id = htole32(VSOCK_EVENT_TRANSPORT_RESET);
	uint16_t avail = 0;
	bool have_avail;
	int r;

	if (!v->event_pending || !vq->ready || !v->active || v->broken)
		return;
	/* The guest's ack is the available index moving on from what it
	 * is now, before the buffer it already posted is taken: it may
	 * hold more of them, and it cannot answer an event not yet sent. */
	have_avail = fb_vq_avail_idx(vq, &avail);
	r = fb_vq_pop(vq, &chain);
	if (r < 0) {
		broke(v, "event");
		return;
	}
	if (r == 0)
		return;
	v->event_pending = false;
	if (fb_vq_copy_to_chain(&chain, 0, &id, sizeof(id)) != sizeof(id)) {
		fb_errorf(-EINVAL, "event buffer of %llu bytes",
			  (unsigned long long)chain.out_len);
		broke(v, "event");
		return;
	}
	if (fb_vq_push(vq, chain.head, sizeof(id)) < 0) {
		broke(v, "event");
		return;
	}
	v->reset_unacked = have_avail;
	v->reset_avail_idx = avail;
	pushed(v, vq);
}

/* Linux handles the event (resetting every connected socket) before it
 * refills the event queue: a buffer back in the queue means the reset is
 * done and held connections can go. */
static void event_check_ack(struct fb_vsock *v)
{
	uint16_t idx;

	if (!v->reset_unacked ||
	    (fb_vq_avail_idx(&v->d->queues[VSOCK_QUEUE_EVENT], &idx) &&
	     idx == v->reset_avail_idx))
		return;
	v->reset_unacked = false;
	vsock_release_held(v);
}

static void *io_thread(void *arg)
{
	struct fb_vsock *v = arg;
	struct epoll_event evs[64];

	for (;;) {
		char fail[sizeof(v->fail_msg)];
		struct fb_virtio_device *d;
		bool irq;
		int n, timeout;

		pthread_mutex_lock(&v->lock);
		timeout = vsock_next_timeout(v, vsock_now_ms());
		pthread_mutex_unlock(&v->lock);

		n = epoll_wait(v->epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			perror("forkbox: virtio-vsock: epoll_wait");
			return NULL;
		}
		pthread_mutex_lock(&v->lock);
		for (int i = 0; i < n; i++) {
			uint64_t t = evs[i].data.u64;
			struct vsock_conn *c;

			if (t == TOKEN_STOP) {
				pthread_mutex_unlock(&v->lock);
				return NULL;
			} else if (t == TOKEN_KICK) {
				drain(v->kickfd);
			} else if (t == TOKEN_LISTEN) {
				vsock_accept_all(v);
			} else if ((c = vsock_conn_from_token(v, t))) {
				vsock_conn_io(v, c, evs[i].events);
			}
		}
		vsock_expire(v, vsock_now_ms());
		event_check_ack(v);
		/* tx first: it turns guest packets into answers rx sends. */
		tx_drain(v);
		rx_fill(v);
		event_fill(v);

		d = v->d;
		irq = v->need_irq;
		v->need_irq = false;
		memcpy(fail, v->fail_msg, sizeof(fail));
		v->fail_msg[0] = '\0';
		pthread_mutex_unlock(&v->lock);

		if (fail[0])
			fb_virtio_fail(d, fail);
		if (irq)
			fb_virtio_signal_used(d);
	}
}

static void vsock_config_read(struct fb_virtio_device *d, uint32_t off,
			      uint8_t *data, unsigned len)
{
	struct fb_vsock *v = d->priv;
	uint8_t cid[8];

	if (!v)
		return;
	/* The transport checked off + len <= config_len (8). */
	fb_put_le64(cid, v->guest_cid);
	memcpy(data, cid + off, len);
}

static void vsock_config_write(struct fb_virtio_device *d, uint32_t off,
			       const uint8_t *data, unsigned len)
{
	/* guest_cid is read-only for the driver. */
}

static int vsock_activate(struct fb_virtio_device *d)
{
	struct fb_vsock *v = d->priv;

	if (!v)
		return -ENODEV;
	pthread_mutex_lock(&v->lock);
	v->active = true;
	v->broken = false;
	pthread_mutex_unlock(&v->lock);
	kick(v->kickfd);
	return 0;
}

static void vsock_notify(struct fb_virtio_device *d, unsigned q)
{
	struct fb_vsock *v = d->priv;

	if (v)
		kick(v->kickfd);
}

/* Driver reset (status 0): every connection dies with the queues; the
 * guest forgot them too. Pending host clients are closed as well, so a
 * client never waits on a guest that rebooted. */
static void vsock_reset(struct fb_virtio_device *d)
{
	struct fb_vsock *v = d->priv;

	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->active = false;
	v->broken = false;
	v->rx_held = false;
	v->rst_head = v->rst_len = 0;
	v->event_pending = false;
	v->reset_unacked = false;
	vsock_conn_kill_all(v);
	pthread_mutex_unlock(&v->lock);
}

/* The VM is going away (fb_virtio_mmio_free). */
static void vsock_destroy_op(struct fb_virtio_device *d)
{
	fb_vsock_destroy(d->priv);
}

/* While a snapshot is taken the I/O thread must not touch guest memory:
 * it does all its work under v->lock, so holding that is enough. */
static void vsock_quiesce(struct fb_virtio_device *d)
{
	struct fb_vsock *v = d->priv;

	pthread_mutex_lock(&v->lock);
}

static void vsock_unquiesce(struct fb_virtio_device *d)
{
	struct fb_vsock *v = d->priv;

	pthread_mutex_unlock(&v->lock);
}

/* A held rx chain was the last one popped: a restored device pops it
 * again instead of the guest losing the buffer. Called quiesced. */
static void vsock_save_adjust(struct fb_virtio_device *d,
			      struct fb_virtio_state *st)
{
	struct fb_vsock *v = d->priv;

	if (v->rx_held)
		st->queues[VSOCK_QUEUE_RX].last_avail--;
	if (v->nr_conns)
		st->device_flags |= FB_VSOCK_STATE_HAD_CONNS;
}

static void vsock_debug(struct fb_virtio_device *d, FILE *f)
{
	struct fb_vsock *v = d->priv;

	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	fprintf(f, "forkbox debug:   vsock: active %u, broken %u, %u "
		"connections, %u RSTs owed, event_pending %u, reset_unacked %u "
		"(at avail %u), rx_held %u, a connection owes the guest: %s\n",
		v->active, v->broken, v->nr_conns, v->rst_len, v->event_pending,
		v->reset_unacked, v->reset_avail_idx, v->rx_held,
		v->rxq_head ? "yes" : "no");
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = v->conns[i];

		if (c)
			fprintf(f, "forkbox debug:     conn %u -> guest port %u: "
				"state %d, pending %#x, held %u, in_rxq %u, "
				"tx_cnt %u, peer_fwd_cnt %u, peer_buf_alloc %u\n",
				c->local_port, c->peer_port, (int)c->state,
				c->pending, c->held, c->in_rxq, c->tx_cnt,
				c->peer_fwd_cnt, c->peer_buf_alloc);
	}
	pthread_mutex_unlock(&v->lock);
}

static const struct fb_virtio_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.features = 0, /* stream only; VERSION_1 is added by the transport */
	.nr_queues = 3,
	.queue_max_size = 256,
	.config_len = 8,
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.notify = vsock_notify,
	.reset = vsock_reset,
	.destroy = vsock_destroy_op,
	.quiesce = vsock_quiesce,
	.unquiesce = vsock_unquiesce,
	.save_adjust = vsock_save_adjust,
	.debug = vsock_debug,
};

static int epoll_add(struct fb_vsock *v, int fd, uint64_t token)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = token };

	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return fb_errorf(-errno, "epoll_ctl(ADD): %s", strerror(errno));
	return 0;
}

static void vsock_free(struct fb_vsock *v)
{
	vsock_conn_kill_all(v);
	if (v->listenfd >= 0) {
		close(v->listenfd);
		unlink(v->uds_path);
	}
	if (v->kickfd >= 0)
		close(v->kickfd);
	if (v->stopfd >= 0)
		close(v->stopfd);
	if (v->epfd >= 0)
		close(v->epfd);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static int vsock_new(const struct fb_vsock_config *cfg, struct fb_vsock **out)
{
	struct fb_vsock *v;
	int err;

	if (cfg->guest_cid < 3 || cfg->guest_cid > UINT32_MAX)
		return fb_errorf(-EINVAL, "vsock: guest CID %llu (3 to 2^32-1)",
				 (unsigned long long)cfg->guest_cid);
	/* "<path>_4294967295" must fit sun_path too. */
	if (!cfg->uds_path || !cfg->uds_path[0] ||
	    strlen(cfg->uds_path) + 12 > sizeof(v->uds_path))
		return fb_errorf(-ENAMETOOLONG, "vsock: socket path %s: empty "
				 "or over %zu bytes", cfg->uds_path ?
				 cfg->uds_path : "(null)",
				 sizeof(v->uds_path) - 12);
	v = calloc(1, sizeof(*v));
	if (!v)
		return fb_errorf(-ENOMEM, "vsock: out of memory");
	v->epfd = v->kickfd = v->stopfd = v->listenfd = -1;
	pthread_mutex_init(&v->lock, NULL);
	v->guest_cid = cfg->guest_cid;
	snprintf(v->uds_path, sizeof(v->uds_path), "%s", cfg->uds_path);
	v->timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms :
		VSOCK_DEFAULT_TIMEOUT_MS;
	v->next_local_port = VSOCK_LOCAL_PORT_FIRST;

	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epfd < 0) {
		err = fb_errorf(-errno, "epoll_create1: %s", strerror(errno));
		goto fail;
	}
	v->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	v->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->kickfd < 0 || v->stopfd < 0) {
		err = fb_errorf(-errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	err = epoll_add(v, v->kickfd, TOKEN_KICK);
	if (!err)
		err = epoll_add(v, v->stopfd, TOKEN_STOP);
	if (!err)
		err = vsock_listen(v);
	if (!err)
		err = epoll_add(v, v->listenfd, TOKEN_LISTEN);
	if (err)
		goto fail;
	*out = v;
	return 0;
fail:
	vsock_free(v);
	return err;
}

/* The thread touches v->d only while the device is active, which needs
 * v->d set: fb_vsock_create starts it before the transport exists. */
static int vsock_start(struct fb_vsock *v, struct fb_virtio_device *d)
{
	int err;

	v->d = d;
	err = pthread_create(&v->thread, NULL, io_thread, v);
	if (err)
		return fb_errorf(-err, "pthread_create(vsock): %s",
				 strerror(err));
	v->thread_started = true;
	return 0;
}

int fb_vsock_init_device(struct fb_virtio_device *d,
			 const struct fb_vsock_config *cfg,
			 struct fb_vsock **out)
{
	struct fb_vsock *v;
	int err = vsock_new(cfg, &v);

	if (err)
		return err;
	d->ops = &vsock_ops;
	d->priv = v;
	err = vsock_start(v, d);
	if (err) {
		vsock_free(v);
		return err;
	}
	*out = v;
	return 0;
}

int fb_vsock_create(struct fb_vm *vm, const struct fb_vsock_config *cfg,
		    struct fb_vsock **out)
{
	struct fb_virtio_device *d;
	struct fb_vsock *v;
	int err = vsock_new(cfg, &v);

	if (err)
		return err;
	err = vsock_start(v, NULL);
	if (err) {
		vsock_free(v);
		return err;
	}
	err = fb_virtio_mmio_add(vm, &vsock_ops, v, &d);
	if (err) {
		fb_vsock_destroy(v);
		return err;
	}
	pthread_mutex_lock(&v->lock);
	v->d = d;
	pthread_mutex_unlock(&v->lock);
	*out = v;
	return 0;
}

void fb_vsock_destroy(struct fb_vsock *v)
{
	if (!v)
		return;
	if (v->thread_started) {
		kick(v->stopfd);
		pthread_join(v->thread, NULL);
	}
	/* Whichever of this and the VM's teardown (ops->destroy) comes
	 * first does the work; the other finds priv NULL. */
	if (v->d)
		v->d->priv = NULL;
	vsock_free(v);
}

int fb_vsock_transport_reset(struct fb_vsock *v)
{
	pthread_mutex_lock(&v->lock);
	vsock_conn_kill_all(v);
	v->rst_head = v->rst_len = 0;
	v->event_pending = true;
	pthread_mutex_unlock(&v->lock);
	kick(v->kickfd);
	return 0;
}

void fb_vsock_restored(struct fb_vsock *v)
{
	uint32_t r = 0;

	/* getrandom of 4 bytes does not fail short; a zero is still fine. */
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = 0;
	pthread_mutex_lock(&v->lock);
	v->next_local_port = VSOCK_LOCAL_PORT_FIRST +
			     r % (UINT32_MAX - VSOCK_LOCAL_PORT_FIRST);
	pthread_mutex_unlock(&v->lock);
}

unsigned fb_vsock_nr_conns(struct fb_vsock *v)
{
	unsigned n;

	pthread_mutex_lock(&v->lock);
	n = v->nr_conns;
	pthread_mutex_unlock(&v->lock);
	return n;
}
