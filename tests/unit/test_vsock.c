/* virtio-vsock without a VM: the test is the guest driver (split queues
 * laid out in a test guest memory, rx buffers posted, tx packets written,
 * notify called) and plays the guest's side of the vsock protocol, while
 * real Unix-socket clients play the host side (Firecracker's hybrid
 * protocol). Every wait has a deadline: poll on the irqfd or a socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <linux/sockios.h>

#include <cmocka.h>

#include "devices/virtio/virtio.h"
#include "devices/virtio/vsock.h"
#include "util/error.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define GUEST_CID 3u
#define HOST_CID 2u
#define DEADLINE_MS 10000

/* The wire header, written out here independently of the device's code. */
struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct hdr) == 44, "virtio_vsock_hdr");

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW,
       OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };
#define SHUT_RCV_F 1u
#define SHUT_SEND_F 2u
#define GUEST_BUF_ALLOC (256u * 1024)
#define HOST_BUF_ALLOC (256u * 1024)

/* Guest memory layout. */
#define QSIZE 256u
#define EVQ_SIZE 16u
static const uint64_t q_desc[3] = { 0x10000, 0x20000, 0x30000 };
static const uint64_t q_avail[3] = { 0x11000, 0x21000, 0x31000 };
static const uint64_t q_used[3] = { 0x12000, 0x22000, 0x32000 };
/* An rx buffer is a chain of three segments, the header split across the
 * first two, as a driver may lay them out. */
#define RX_BUFS 85u
#define RX_AREA 0x100000ull
static const uint32_t rx_seg_len[3] = { 30, 2048, 2066 };
static const uint32_t rx_seg_off[3] = { 0, 0x100, 0x1000 };
#define RX_BUF_STRIDE 0x2000ull
#define TX_SLOTS 128u
#define TX_AREA 0x400000ull
#define TX_STRIDE 0x11000ull
#define TX_MAX_PAYLOAD 65536u
#define EV_AREA 0x40000ull

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));

struct guest {
	char dir[64];
	char uds[108];
	struct fb_guest_mem mem;
	struct fb_virtio_device d;
	struct fb_vsock *v;
	int irqfd;
	uint16_t avail_idx[3];
	uint16_t used_seen[3];
	/* Counted packets, for tests that look at what the device sent. */
	unsigned credit_updates_seen;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *gp(struct guest *g, uint64_t gpa, uint64_t len)
{
	void *p = fb_gpa_ptr(&g->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static struct vdesc *desc(struct guest *g, unsigned q, unsigned i)
{
	return gp(g, q_desc[q] + 16ull * i, 16);
}

static uint16_t used_idx(struct guest *g, unsigned q)
{
	return __atomic_load_n((uint16_t *)gp(g, q_used[q] + 2, 2),
			       __ATOMIC_ACQUIRE);
}

static void publish(struct guest *g, unsigned q, uint16_t head)
{
	unsigned size = q == 2 ? EVQ_SIZE : QSIZE;
	uint16_t *ring = gp(g, q_avail[q] + 4, 2ull * size);

	ring[g->avail_idx[q] % size] = head;
	g->avail_idx[q]++;
	__atomic_store_n((uint16_t *)gp(g, q_avail[q] + 2, 2),
			 g->avail_idx[q], __ATOMIC_RELEASE);
}

static void kick(struct guest *g, unsigned q)
{
	g->d.ops->notify(&g->d, q);
}

static void post_rx(struct guest *g, unsigned b)
{
	for (unsigned s = 0; s < 3; s++) {
		struct vdesc *dd = desc(g, 0, 3 * b + s);

		dd->addr = RX_AREA + b * RX_BUF_STRIDE + rx_seg_off[s];
		dd->len = rx_seg_len[s];
		dd->flags = 2 /* WRITE */ | (s < 2 ? 1 /* NEXT */ : 0);
		dd->next = (uint16_t)(3 * b + s + 1);
	}
	publish(g, 0, (uint16_t)(3 * b));
}

static void post_event(struct guest *g, unsigned i)
{
	struct vdesc *dd = desc(g, 2, i);

	dd->addr = EV_AREA + 0x100ull * i;
	dd->len = 8;
	dd->flags = 2;
	dd->next = 0;
	publish(g, 2, (uint16_t)i);
}

/* Sets the three queues up and starts the device (DRIVER_OK), with
 * nr_events event buffers posted (descriptors 0 to nr_events - 1). */
static void driver_start_events(struct guest *g, unsigned nr_events)
{
	for (unsigned q = 0; q < 3; q++) {
		struct fb_virtqueue *vq = &g->d.queues[q];

		memset(gp(g, q_desc[q], 0x3000), 0, 0x3000);
		vq->size = (uint16_t)(q == 2 ? EVQ_SIZE : QSIZE);
		vq->desc_gpa = q_desc[q];
		vq->avail_gpa = q_avail[q];
		vq->used_gpa = q_used[q];
		assert_int_equal(fb_vq_activate(vq, &g->mem), 0);
		vq->ready = true;
		g->avail_idx[q] = g->used_seen[q] = 0;
	}
	for (unsigned b = 0; b < RX_BUFS; b++)
		post_rx(g, b);
	for (unsigned i = 0; i < nr_events; i++)
		post_event(g, i);
	g->d.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	assert_int_equal(g->d.ops->activate(&g->d), 0);
	kick(g, 0);
}

/* As a Linux guest does: it keeps several event buffers posted. */
static void driver_start(struct guest *g)
{
	driver_start_events(g, 4);
}

/* What the transport does on a status write of 0. */
static void driver_reset(struct guest *g)
{
	g->d.ops->reset(&g->d);
	for (unsigned q = 0; q < 3; q++)
		fb_vq_reset(&g->d.queues[q]);
	g->d.status = 0;
	g->d.failed = false;
	g->d.failure[0] = '\0';
}

static struct guest *guest_new(unsigned timeout_ms)
{
	struct guest *g = calloc(1, sizeof(*g));
	struct fb_vsock_config cfg = { .guest_cid = GUEST_CID,
				       .handshake_timeout_ms = timeout_ms };

	assert_non_null(g);
	snprintf(g->dir, sizeof(g->dir), "/tmp/fb-vsock-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->uds, sizeof(g->uds), "%s/v.sock", g->dir);
	assert_int_equal(fb_guest_mem_init(&g->mem, 64 * MiB), 0);
	g->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(g->irqfd >= 0);
	fb_virtio_device_init(&g->d, NULL, NULL, &g->mem, g->irqfd);
	cfg.uds_path = g->uds;
	assert_int_equal(fb_vsock_init_device(&g->d, &cfg, &g->v), 0);
	driver_start(g);
	return g;
}

static void guest_free(struct guest *g)
{
	char path[160];

	fb_vsock_destroy(g->v);
	/* The listener is gone with the device. */
	assert_int_equal(access(g->uds, F_OK), -1);
	close(g->irqfd);
	fb_guest_mem_release(&g->mem);
	snprintf(path, sizeof(path), "rm -rf '%s'", g->dir);
	if (system(path) != 0)
		fprintf(stderr, "could not remove %s\n", g->dir);
	free(g);
}

/* Waits for the device's interrupt (or the timeout). */
static void wait_irq(struct guest *g, int ms)
{
	struct pollfd p = { .fd = g->irqfd, .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, ms) > 0 && read(g->irqfd, &n, sizeof(n)) < 0)
		fail_msg("irqfd read: %s", strerror(errno));
}

static unsigned tx_inflight(struct guest *g)
{
	return (uint16_t)(g->avail_idx[1] - used_idx(g, 1));
}

/* Sends one packet; h->len is sent as given (it may lie), plen bytes of
 * payload go in a second descriptor. */
static void send_raw(struct guest *g, const struct hdr *h, const void *payload,
		     uint32_t plen)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	unsigned slot = g->avail_idx[1] % TX_SLOTS;
	uint64_t base = TX_AREA + slot * TX_STRIDE;
	struct vdesc *d0, *d1;

	while (tx_inflight(g) >= TX_SLOTS) {
		assert_true(now_ms() < deadline);
		wait_irq(g, 100);
	}
	assert_true(plen <= TX_MAX_PAYLOAD);
	memcpy(gp(g, base, sizeof(*h)), h, sizeof(*h));
	d0 = desc(g, 1, 2 * slot);
	d1 = desc(g, 1, 2 * slot + 1);
	d0->addr = base;
	d0->len = sizeof(*h);
	d0->flags = plen ? 1 : 0;
	d0->next = (uint16_t)(2 * slot + 1);
	if (plen) {
		memcpy(gp(g, base + 0x1000, plen), payload, plen);
		d1->addr = base + 0x1000;
		d1->len = plen;
		d1->flags = 0;
	}
	publish(g, 1, (uint16_t)(2 * slot));
	kick(g, 1);
}

/* A guest socket's view of one connection. */
struct gconn {
	uint32_t host_port, guest_port;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt; /* the device's window */
	uint32_t fwd_cnt, fwd_sent;                    /* ours */
	uint32_t buf_alloc;                 /* ours; 0: GUEST_BUF_ALLOC */
};

static void send_op(struct guest *g, struct gconn *c, uint16_t op,
		    uint32_t flags, const void *payload, uint32_t len)
{
	struct hdr h = {
		.src_cid = GUEST_CID, .dst_cid = HOST_CID,
		.src_port = c->guest_port, .dst_port = c->host_port,
		.len = len, .type = 1, .op = op, .flags = flags,
		.buf_alloc = c->buf_alloc ? c->buf_alloc : GUEST_BUF_ALLOC,
		.fwd_cnt = c->fwd_cnt,
	};

	c->fwd_sent = c->fwd_cnt;
	if (op == OP_RW)
		c->tx_cnt += len;
	send_raw(g, &h, payload, len);
}

/* Takes the next packet the device put in the rx queue (payload into buf,
 * up to 64 KiB); false if none came before the timeout. */
static bool recv_pkt_nowait(struct guest *g, struct hdr *h, uint8_t *buf)
{
	uint32_t id, len, got = 0;
	uint8_t flat[3 * 4096];
	const uint8_t *e;
	unsigned b;

	if (used_idx(g, 0) == g->used_seen[0])
		return false;
	e = gp(g, q_used[0] + 4 + 8ull * (g->used_seen[0] % QSIZE), 8);
	memcpy(&id, e, 4);
	memcpy(&len, e + 4, 4);
	g->used_seen[0]++;
	assert_int_equal(id % 3, 0);
	b = id / 3;
	assert_true(b < RX_BUFS);
	assert_true(len >= sizeof(*h));
	assert_true(len <= rx_seg_len[0] + rx_seg_len[1] + rx_seg_len[2]);
	for (unsigned s = 0; s < 3 && got < len; s++) {
		uint32_t n = len - got < rx_seg_len[s] ? len - got :
							 rx_seg_len[s];

		memcpy(flat + got, gp(g, RX_AREA + b * RX_BUF_STRIDE +
				      rx_seg_off[s], n), n);
		got += n;
	}
	memcpy(h, flat, sizeof(*h));
	assert_int_equal(h->len, len - sizeof(*h));
	assert_int_equal(h->src_cid, HOST_CID);
	assert_int_equal(h->dst_cid, GUEST_CID);
	assert_int_equal(h->type, 1);
	assert_int_equal(h->buf_alloc, HOST_BUF_ALLOC);
	if (buf)
		memcpy(buf, flat + sizeof(*h), h->len);
	if (h->op == OP_CREDIT_UPDATE)
		g->credit_updates_seen++;
	post_rx(g, b);
	kick(g, 0);
	return true;
}

static bool recv_pkt(struct guest *g, struct hdr *h, uint8_t *buf, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;

	for (;;) {
		uint64_t t;

		if (recv_pkt_nowait(g, h, buf))
			return true;
		t = now_ms();
		if (t >= deadline)
			return false;
		wait_irq(g, (int)(deadline - t));
	}
}

/* The next packet, which must be op on the pair of c. */
static void expect_pkt(struct guest *g, struct gconn *c, uint16_t op,
		       struct hdr *out, uint8_t *buf)
{
	struct hdr h;

	assert_true(recv_pkt(g, &h, buf, DEADLINE_MS));
	if (h.op != op || h.src_port != c->host_port ||
	    h.dst_port != c->guest_port)
		fail_msg("expected op %u %u->%u, got op %u %u->%u", op,
			 c->host_port, c->guest_port, h.op, h.src_port,
			 h.dst_port);
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	if (out)
		*out = h;
}

/* Host side helpers: a Unix client, and reads with deadlines. */
static int uds_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int uds_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads exactly len bytes, or returns how many came before EOF/timeout. */
static size_t read_deadline(int fd, void *buf, size_t len, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t t = now_ms();
		ssize_t n;

		if (t >= deadline || poll(&p, 1, (int)(deadline - t)) <= 0)
			break;
		n = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Bytes each way on an open connection: host to guest, then back. */
static void exchange(struct guest *g, struct gconn *c, int fd,
		     const char *to_guest, const char *to_host)
{
	size_t n = strlen(to_guest), m = strlen(to_host);
	static uint8_t buf[65536];
	struct hdr h;

	write_all(fd, to_guest, n);
	expect_pkt(g, c, OP_RW, &h, buf);
	assert_int_equal(h.len, n);
	assert_memory_equal(buf, to_guest, n);
	send_op(g, c, OP_RW, 0, to_host, m);
	assert_int_equal(read_deadline(fd, buf, m, DEADLINE_MS), m);
	assert_memory_equal(buf, to_host, m);
}

/* The peer closed: EOF (or a reset) before the deadline. */
static void expect_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	assert_int_equal(poll(&p, 1, DEADLINE_MS), 1);
	assert_true(recv(fd, &c, 1, MSG_DONTWAIT) <= 0);
}

/* The guest accepts the REQUEST h of the client fd: its RESPONSE, then
 * the client's "OK <host port>\n". */
static void host_accept_request(struct guest *g, int fd, const struct hdr *h,
				struct gconn *c)
{
	char line[32], ok[32];
	size_t n;

	assert_true(h->src_port >= (1u << 30));
	memset(c, 0, sizeof(*c));
	c->host_port = h->src_port;
	c->guest_port = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	send_op(g, c, OP_RESPONSE, 0, NULL, 0);
	snprintf(line, sizeof(line), "OK %u\n", c->host_port);
	n = read_deadline(fd, ok, strlen(line), DEADLINE_MS);
	assert_int_equal(n, strlen(line));
	assert_memory_equal(ok, line, n);
}

/* The guest's side of a host client's handshake, once its CONNECT line
 * was written: the REQUEST for port on rx, then as above. */
static void host_connect_finish(struct guest *g, int fd, uint32_t port,
				struct gconn *c)
{
	struct hdr h;

	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_REQUEST);
	assert_int_equal(h.dst_port, port);
	host_accept_request(g, fd, &h, c);
}

/* CONNECT from a host client through to an established connection. */
static int host_connect(struct guest *g, uint32_t port, struct gconn *c)
{
	char line[32];
	int fd = uds_connect(g->uds);

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	write_all(fd, line, strlen(line));
	host_connect_finish(g, fd, port, c);
	return fd;
}

/* ---- tests ---- */

static void test_device_shape(void **state)
{
	struct guest *g = guest_new(0);
	uint8_t cid[8];
	uint64_t v;

	assert_int_equal(g->d.ops->device_id, 19);
	assert_int_equal(g->d.ops->nr_queues, 3);
	assert_int_equal(g->d.ops->features, 0);
	assert_int_equal(g->d.ops->config_len, 8);
	g->d.ops->config_read(&g->d, 0, cid, 8);
	memcpy(&v, cid, 8);
	assert_int_equal(v, GUEST_CID);
	g->d.ops->config_read(&g->d, 4, cid, 4);
	assert_int_equal(cid[0], 0);
	guest_free(g);
}

static void test_bad_config(void **state)
{
	struct fb_virtio_device d;
	struct fb_vsock *v = NULL;
	struct fb_vsock_config cfg = { .guest_cid = 2, .uds_path = "/tmp/x" };
	char longpath[200];

	fb_virtio_device_init(&d, NULL, NULL, NULL, -1);
	assert_int_equal(fb_vsock_init_device(&d, &cfg, &v), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "CID"));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	cfg.guest_cid = 3;
	cfg.uds_path = longpath;
	assert_int_equal(fb_vsock_init_device(&d, &cfg, &v), -ENAMETOOLONG);
	/* Something that is not a socket at the path is not replaced. */
	cfg.uds_path = "/dev/null";
	assert_int_equal(fb_vsock_init_device(&d, &cfg, &v), -EEXIST);
	assert_null(v);
}

static void test_host_connect_and_close(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c;
	struct hdr h;
	int fd = host_connect(g, 1234, &c);

	exchange(g, &c, fd, "hello", "world!");
	assert_int_equal(fb_vsock_nr_conns(g->v), 1);

	/* The client closes: the guest hears SHUTDOWN(SEND); the guest
	 * closes too, and the device ends it with RST. */
	close(fd);
	expect_pkt(g, &c, OP_SHUTDOWN, &h, NULL);
	assert_int_equal(h.flags, SHUT_SEND_F);
	send_op(g, &c, OP_SHUTDOWN, SHUT_RCV_F | SHUT_SEND_F, NULL, 0);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	assert_false(g->d.failed);
	guest_free(g);
}

static void test_host_connect_refused(void **state)
{
	struct guest *g = guest_new(0);
	struct hdr h;
	struct gconn c = { 0 };
	int fd = uds_connect(g->uds);

	write_all(fd, "CONNECT 99\n", 11);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_REQUEST);
	c.host_port = h.src_port;
	c.guest_port = 99;
	send_op(g, &c, OP_RST, 0, NULL, 0); /* nobody listens on 99 */
	expect_eof(fd);
	close(fd);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	guest_free(g);
}

static void test_connect_line_hostile(void **state)
{
	struct guest *g = guest_new(300);
	char big[64];
	int fd;

	/* Garbage. */
	fd = uds_connect(g->uds);
	write_all(fd, "HELLO 5\n", 8);
	expect_eof(fd);
	close(fd);
	/* A port past 2^32. */
	fd = uds_connect(g->uds);
	write_all(fd, "CONNECT 4294967296\n", 19);
	expect_eof(fd);
	close(fd);
	/* No newline within the cap. */
	fd = uds_connect(g->uds);
	memset(big, '1', sizeof(big));
	memcpy(big, "CONNECT ", 8);
	write_all(fd, big, sizeof(big));
	expect_eof(fd);
	close(fd);
	/* Silence: the deadline (300 ms here) closes it. */
	fd = uds_connect(g->uds);
	expect_eof(fd);
	close(fd);
	/* Half a line, then silence. */
	fd = uds_connect(g->uds);
	write_all(fd, "CONN", 4);
	expect_eof(fd);
	close(fd);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	assert_false(g->d.failed);
	guest_free(g);
}

static void test_guest_unanswered_request(void **state)
{
	struct guest *g = guest_new(300);
	struct hdr h;
	int fd = uds_connect(g->uds);

	/* The guest sees the REQUEST and never answers: the client is
	 * closed at the deadline and the guest hears RST. */
	write_all(fd, "CONNECT 7\n", 10);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_REQUEST);
	expect_eof(fd);
	close(fd);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.dst_port, 7);
	guest_free(g);
}

static void test_data_after_connect_line(void **state)
{
	struct guest *g = guest_new(0);
	uint8_t buf[65536];
	struct gconn c;
	struct hdr h;
	char line[32], ok[32];
	int fd = uds_connect(g->uds);

	/* Bytes that follow the line in the same write belong to the
	 * stream, not to the handshake. */
	write_all(fd, "CONNECT 80\nGET /\n", 17);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_REQUEST);
	memset(&c, 0, sizeof(c));
	c.host_port = h.src_port;
	c.guest_port = 80;
	send_op(g, &c, OP_RESPONSE, 0, NULL, 0);
	snprintf(line, sizeof(line), "OK %u\n", c.host_port);
	assert_int_equal(read_deadline(fd, ok, strlen(line), DEADLINE_MS),
			 strlen(line));
	expect_pkt(g, &c, OP_RW, &h, buf);
	assert_int_equal(h.len, 6);
	assert_memory_equal(buf, "GET /\n", 6);
	close(fd);
	guest_free(g);
}

static void test_guest_connect_and_half_close(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c = { .host_port = 5000, .guest_port = 40000 };
	uint8_t buf[65536];
	char path[160];
	struct hdr h;
	int lfd, fd;

	snprintf(path, sizeof(path), "%s_5000", g->uds);
	lfd = uds_listen(path);
	send_op(g, &c, OP_REQUEST, 0, NULL, 0);
	expect_pkt(g, &c, OP_RESPONSE, NULL, NULL);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);

	send_op(g, &c, OP_RW, 0, "ping", 4);
	assert_int_equal(read_deadline(fd, buf, 4, DEADLINE_MS), 4);
	assert_memory_equal(buf, "ping", 4);
	write_all(fd, "pong", 4);
	expect_pkt(g, &c, OP_RW, &h, buf);
	assert_memory_equal(buf, "pong", 4);

	/* The guest shuts its sending side: the host reads EOF, and can
	 * still answer. */
	send_op(g, &c, OP_SHUTDOWN, SHUT_SEND_F, NULL, 0);
	expect_eof(fd);
	write_all(fd, "late", 4);
	expect_pkt(g, &c, OP_RW, &h, buf);
	assert_memory_equal(buf, "late", 4);
	/* The host closes: SHUTDOWN(SEND) to the guest, then both sides
	 * are done and the device resets the pair. */
	close(fd);
	expect_pkt(g, &c, OP_SHUTDOWN, &h, NULL);
	assert_int_equal(h.flags, SHUT_SEND_F);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	close(lfd);
	unlink(path);
	guest_free(g);
}

static void test_guest_connect_nobody(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c = { .host_port = 5001, .guest_port = 40001 };

	send_op(g, &c, OP_REQUEST, 0, NULL, 0);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	guest_free(g);
}

/* Stream bytes, a function of the offset, different each way. */
static uint8_t pattern(uint64_t i, unsigned way)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull + way;

	return (uint8_t)((x >> 29) ^ i ^ (way << 5));
}

static void fill(uint8_t *p, uint64_t off, size_t n, unsigned way)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(off + i, way);
}

static void check(const uint8_t *p, uint64_t off, size_t n, unsigned way)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern(off + i, way))
			fail_msg("way %u: byte %llu is %u, not %u", way,
				 (unsigned long long)(off + i), p[i],
				 pattern(off + i, way));
}

/* Moves h2g_total bytes host to guest and g2h_total guest to host at
 * once over the connection c/fd, the guest consuming at once and updating
 * its credit every 64 KiB, and keeping to the device's window. */
static void transfer(struct guest *g, struct gconn *c, int fd,
		     uint64_t h2g_total, uint64_t g2h_total)
{
	static uint8_t buf[65536], out[65536];
	uint64_t h2g_sent = 0, h2g_got = 0, g2h_sent = 0, g2h_got = 0;
	uint64_t deadline = now_ms() + 120000;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (h2g_got < h2g_total || g2h_got < g2h_total) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = g->irqfd, .events = POLLIN },
		};
		struct hdr h;
		ssize_t n;

		assert_true(now_ms() < deadline);
		if (h2g_sent < h2g_total) {
			size_t len = h2g_total - h2g_sent < sizeof(out) ?
				h2g_total - h2g_sent : sizeof(out);

			fill(out, h2g_sent, len, 0);
			n = send(fd, out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				h2g_sent += (uint64_t)n;
			else
				assert_int_equal(errno, EAGAIN);
		}
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			check(buf, g2h_got, (size_t)n, 1);
			g2h_got += (uint64_t)n;
		}
		assert_true(n < 0 && errno == EAGAIN);
		while (recv_pkt_nowait(g, &h, buf)) {
			assert_int_equal(h.src_port, c->host_port);
			c->peer_buf_alloc = h.buf_alloc;
			c->peer_fwd_cnt = h.fwd_cnt;
			if (h.op == OP_RW) {
				check(buf, h2g_got, h.len, 0);
				h2g_got += h.len;
				/* Never past the window we advertised last
				 * (the device may know an older one). */
				assert_true(h2g_got - c->fwd_sent <=
					    GUEST_BUF_ALLOC);
				c->fwd_cnt += h.len; /* consumed at once */
				if (c->fwd_cnt - c->fwd_sent >= 64 * 1024)
					send_op(g, c, OP_CREDIT_UPDATE, 0,
						NULL, 0);
			} else if (h.op == OP_CREDIT_REQUEST) {
				send_op(g, c, OP_CREDIT_UPDATE, 0, NULL, 0);
			} else if (h.op != OP_CREDIT_UPDATE) {
				fail_msg("unexpected op %u", h.op);
			}
		}
		while (g2h_sent < g2h_total && tx_inflight(g) < TX_SLOTS) {
			uint32_t credit = c->peer_buf_alloc -
				(c->tx_cnt - c->peer_fwd_cnt);
			uint32_t len = 16384;

			if (credit == 0)
				break;
			if (len > credit)
				len = credit;
			if (len > g2h_total - g2h_sent)
				len = (uint32_t)(g2h_total - g2h_sent);
			fill(out, g2h_sent, len, 1);
			send_op(g, c, OP_RW, 0, out, len);
			g2h_sent += len;
		}
		if (h2g_sent < h2g_total)
			p[0].events |= POLLOUT;
		if (poll(p, 2, 1000) > 0 && (p[1].revents & POLLIN))
			wait_irq(g, 0);
	}
	assert_int_equal(h2g_got, h2g_total);
	assert_int_equal(g2h_got, g2h_total);
}

/* 50 MB each way at once over one connection: both windows are 256 KiB,
 * so credit must flow both ways, byte-exact. */
static void test_large_transfer(void **state)
{
	const uint64_t total = 50ull * 1000 * 1000;
	struct guest *g = guest_new(0);
	struct gconn c;
	int fd = host_connect(g, 6000, &c);

	transfer(g, &c, fd, total, total);
	/* The device forwarded every guest byte and said so. */
	assert_int_equal(c.peer_fwd_cnt, (uint32_t)total);
	close(fd);
	guest_free(g);
}

/* Guest to host alone: nothing else carries the device's fwd_cnt, so
 * only its CREDIT_UPDATEs keep the guest going. */
static void test_one_way_credit_updates(void **state)
{
	const uint64_t total = 8ull * 1000 * 1000;
	struct guest *g = guest_new(0);
	struct gconn c;
	int fd = host_connect(g, 6003, &c);

	transfer(g, &c, fd, 0, total);
	assert_true(g->credit_updates_seen >= total / HOST_BUF_ALLOC);
	close(fd);
	guest_free(g);
}

/* The device keeps to the guest's window, asks for credit when it is
 * shut, and answers the guest's credit requests. */
static void test_credit(void **state)
{
	struct guest *g = guest_new(0);
	static uint8_t buf[65536], data[5000];
	struct gconn c;
	struct hdr h = { 0 };
	int fd = host_connect(g, 6001, &c);
	uint32_t got = 0;

	/* A guest with a 1000-byte window asks for our credit. */
	c.buf_alloc = 1000;
	send_op(g, &c, OP_CREDIT_REQUEST, 0, NULL, 0);
	expect_pkt(g, &c, OP_CREDIT_UPDATE, &h, NULL);
	assert_int_equal(h.fwd_cnt, 0);
	fill(data, 0, sizeof(data), 0);
	write_all(fd, data, sizeof(data));
	while (got < 1000) {
		expect_pkt(g, &c, OP_RW, &h, buf);
		check(buf, got, h.len, 0);
		got += h.len;
	}
	assert_int_equal(got, 1000);
	expect_pkt(g, &c, OP_CREDIT_REQUEST, NULL, NULL);
	/* The guest read it all: 1000 more. */
	c.fwd_cnt = 1000;
	send_op(g, &c, OP_CREDIT_UPDATE, 0, NULL, 0);
	while (got < 2000) {
		expect_pkt(g, &c, OP_RW, &h, buf);
		check(buf, got, h.len, 0);
		got += h.len;
	}
	assert_int_equal(got, 2000);
	/* And not a byte more until the window opens again. */
	expect_pkt(g, &c, OP_CREDIT_REQUEST, NULL, NULL);
	close(fd);
	guest_free(g);
}

static void test_guest_overruns_credit(void **state)
{
	struct guest *g = guest_new(0);
	static uint8_t chunk[65536];
	struct gconn c;
	int fd = host_connect(g, 6002, &c);
	struct hdr h;

	bool rst = false;

	/* The client reads nothing; the guest ignores its credit and sends
	 * past the device's window (and the socket's buffer): the device
	 * resets the connection rather than buffer without bound. */
	for (unsigned i = 0; i < 64 && !rst; i++) {
		uint64_t deadline = now_ms() + DEADLINE_MS;

		send_op(g, &c, OP_RW, 0, chunk, sizeof(chunk));
		while (tx_inflight(g)) {
			assert_true(now_ms() < deadline);
			wait_irq(g, 50);
		}
		while (!rst && recv_pkt_nowait(g, &h, NULL))
			rst = h.op == OP_RST;
	}
	if (!rst)
		rst = recv_pkt(g, &h, NULL, DEADLINE_MS) && h.op == OP_RST;
	assert_true(rst);
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.dst_port, c.guest_port);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	assert_false(g->d.failed);
	close(fd);
	guest_free(g);
}

/* 256 connections open at once, each with its own host port, each
 * carrying its own bytes. */
static void test_many_connections(void **state)
{
	enum { N = 256 };
	struct guest *g = guest_new(0);
	static struct gconn c[N];
	int fd[N];
	uint8_t buf[65536];

	for (unsigned i = 0; i < N; i++)
		fd[i] = host_connect(g, 2000 + i, &c[i]);
	assert_int_equal(fb_vsock_nr_conns(g->v), N);
	for (unsigned i = 0; i < N; i++)
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(c[i].host_port, c[j].host_port);
	/* Every client speaks; the guest answers each on its own pair. */
	for (unsigned i = 0; i < N; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "client %u", i);
		write_all(fd[i], msg, strlen(msg));
	}
	for (unsigned k = 0; k < N; k++) {
		struct hdr h;
		unsigned i;
		char want[32], reply[32];

		assert_true(recv_pkt(g, &h, buf, DEADLINE_MS));
		assert_int_equal(h.op, OP_RW);
		i = h.dst_port - 2000;
		assert_true(i < N);
		assert_int_equal(h.src_port, c[i].host_port);
		snprintf(want, sizeof(want), "client %u", i);
		assert_int_equal(h.len, strlen(want));
		assert_memory_equal(buf, want, h.len);
		snprintf(reply, sizeof(reply), "guest to %u", i);
		send_op(g, &c[i], OP_RW, 0, reply, (uint32_t)strlen(reply));
	}
	for (unsigned i = 0; i < N; i++) {
		char want[32], got[32];

		snprintf(want, sizeof(want), "guest to %u", i);
		assert_int_equal(read_deadline(fd[i], got, strlen(want),
					       DEADLINE_MS), strlen(want));
		assert_memory_equal(got, want, strlen(want));
		close(fd[i]);
	}
	guest_free(g);
}

static void test_device_reset(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c1, c2 = { .host_port = 5002, .guest_port = 40002 };
	char path[160];
	int fd1, fd2, lfd;

	snprintf(path, sizeof(path), "%s_5002", g->uds);
	lfd = uds_listen(path);
	fd1 = host_connect(g, 3000, &c1);
	send_op(g, &c2, OP_REQUEST, 0, NULL, 0);
	expect_pkt(g, &c2, OP_RESPONSE, NULL, NULL);
	fd2 = accept(lfd, NULL, NULL);
	assert_true(fd2 >= 0);
	assert_int_equal(fb_vsock_nr_conns(g->v), 2);

	driver_reset(g);
	expect_eof(fd1);
	expect_eof(fd2);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	close(fd1);
	close(fd2);

	/* The driver comes back: everything works again. */
	driver_start(g);
	fd1 = host_connect(g, 3001, &c1);
	write_all(fd1, "again", 5);
	{
		uint8_t buf[65536];
		struct hdr h;

		expect_pkt(g, &c1, OP_RW, &h, buf);
		assert_memory_equal(buf, "again", 5);
	}
	close(fd1);
	close(lfd);
	unlink(path);
	guest_free(g);
}

static void test_transport_reset_event(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c;
	int fd = host_connect(g, 3002, &c);
	uint64_t deadline = now_ms() + DEADLINE_MS;
	uint32_t id, len;
	const uint8_t *e;

	assert_int_equal(fb_vsock_transport_reset(g->v), 0);
	while (used_idx(g, 2) == 0) {
		assert_true(now_ms() < deadline);
		wait_irq(g, 100);
	}
	e = gp(g, q_used[2] + 4, 8);
	memcpy(&id, e, 4);
	memcpy(&len, e + 4, 4);
	assert_int_equal(id, 0);
	assert_int_equal(len, 4);
	memcpy(&id, gp(g, EV_AREA, 4), 4);
	assert_int_equal(id, 0); /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
	expect_eof(fd);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	close(fd);
	guest_free(g);
}

/* Every event buffer starts as 0xaa bytes, so the event's 0 (which a
 * zeroed buffer would already hold) is provably the device's. */
static void event_bufs_poison(struct guest *g)
{
	memset(gp(g, EV_AREA, 0x100ull * EVQ_SIZE), 0xaa, 0x100ull * EVQ_SIZE);
}

/* Waits until the device has returned n event buffers in all; the n-th
 * must be head, with 4 bytes written that say TRANSPORT_RESET (le32 0),
 * and the rest of its 8 bytes untouched. */
static void expect_reset_event(struct guest *g, uint16_t n, unsigned head)
{
	static const uint8_t want[8] = { 0, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa };
	uint64_t deadline = now_ms() + DEADLINE_MS;
	const uint8_t *e;
	uint32_t id, len;

	while (used_idx(g, 2) < n) {
		assert_true(now_ms() < deadline);
		wait_irq(g, 100);
	}
	assert_int_equal(used_idx(g, 2), n);
	e = gp(g, q_used[2] + 4 + 8ull * ((n - 1) % EVQ_SIZE), 8);
	memcpy(&id, e, 4);
	memcpy(&len, e + 4, 4);
	assert_int_equal(id, head);
	assert_int_equal(len, 4);
	assert_memory_equal(gp(g, EV_AREA + 0x100ull * head, 8), want, 8);
}

/* A host client that sent "CONNECT port\n", returned once the device has
 * read the line: the socket's send queue (SIOCOUTQ, bytes the peer has
 * not consumed) is empty. Only then does silence on rx mean the device
 * held the REQUEST, not that it has yet to see the line. */
static int host_connect_start(struct guest *g, uint32_t port)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	int fd = uds_connect(g->uds);
	char line[32];
	int outq;

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	write_all(fd, line, strlen(line));
	for (;;) {
		assert_int_equal(ioctl(fd, SIOCOUTQ, &outq), 0);
		if (outq == 0)
			return fd;
		assert_true(now_ms() < deadline);
		poll(NULL, 0, 5);
	}
}

/* Nothing on rx for ms; the caller made sure the device saw what could
 * have produced a packet, so silence is the device's answer. */
static void expect_no_rx(struct guest *g, int ms)
{
	struct hdr h;

	if (recv_pkt(g, &h, NULL, ms))
		fail_msg("op %u %u->%u on rx with the reset unacknowledged",
			 h.op, h.src_port, h.dst_port);
}

/* A held client has heard nothing: no "OK", no EOF. */
static void expect_client_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 0), 0);
}

/* After a transport reset (snapshot restore) the guest's one event buffer
 * carries TRANSPORT_RESET. Until the guest posts a buffer again it may
 * not have handled the event, and the reset it is about to do would kill
 * a connection made now: a host client's REQUEST waits for that buffer. */
/* A restored device does not hand out the host ports a fresh one does:
 * the guest may still hold its parent's sockets of those ports. */
static void test_restored_ports_start_elsewhere(void **state)
{
	struct guest *g = guest_new(0), *fresh = guest_new(0);
	struct gconn c, f;
	int fd, ffd;

	ffd = host_connect(fresh, 1024, &f);
	assert_int_equal(f.host_port, 1u << 30);
	fb_vsock_restored(g->v);
	fd = host_connect(g, 1024, &c);
	assert_true(c.host_port >= 1u << 30);
	assert_int_not_equal(c.host_port, f.host_port);
	exchange(g, &c, fd, "ping", "pong");
	close(fd);
	close(ffd);
	guest_free(g);
	guest_free(fresh);
}

static void test_transport_reset_holds_host_connect(void **state)
{
	/* A 150 ms handshake deadline: the hold outlasts it (a loaded guest
	 * can take seconds to handle the event), and the client waits on. */
	struct guest *g = guest_new(150);
	struct gconn c;
	int fd;

	driver_reset(g);
	event_bufs_poison(g);
	driver_start_events(g, 1);
	assert_int_equal(fb_vsock_transport_reset(g->v), 0);
	expect_reset_event(g, 1, 0);

	fd = host_connect_start(g, 1024);
	expect_no_rx(g, 400);
	expect_client_waiting(fd);
	assert_int_equal(fb_vsock_nr_conns(g->v), 1);

	/* The guest handled the event and gives its buffer back. */
	post_event(g, 0);
	kick(g, 2);
	host_connect_finish(g, fd, 1024, &c);

	/* An ordinary connection now, both ways; the event went once. */
	exchange(g, &c, fd, "after", "reply");
	assert_int_equal(used_idx(g, 2), 1);
	assert_false(g->d.failed);
	close(fd);
	guest_free(g);
}

/* A guest (Linux among them) keeps several event buffers posted: the
 * event takes one and the rest stay available. They were there before
 * the event, so they say nothing of the guest having handled it; nor does
 * a notify with nothing new. Only a buffer posted after the event
 * releases the held clients, every one of them. */
static void test_transport_reset_leftover_event_bufs(void **state)
{
	static const uint32_t port[2] = { 1024, 1025 };
	struct guest *g = guest_new(0);
	uint8_t buf[65536];
	struct gconn c[2], c3;
	int fd[2], fd3;

	event_bufs_poison(g);
	assert_int_equal(fb_vsock_transport_reset(g->v), 0);
	expect_reset_event(g, 1, 0);

	fd[0] = host_connect_start(g, port[0]);
	fd[1] = host_connect_start(g, port[1]);
	expect_no_rx(g, 200);
	kick(g, 2);
	expect_no_rx(g, 200);
	expect_client_waiting(fd[0]);
	expect_client_waiting(fd[1]);
	/* The three spare buffers are untouched, not a second event. */
	assert_int_equal(used_idx(g, 2), 1);

	post_event(g, 0);
	kick(g, 2);
	/* Both REQUESTs, in whichever order the device sends them. */
	for (unsigned k = 0; k < 2; k++) {
		struct hdr h;
		unsigned i;

		assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
		assert_int_equal(h.op, OP_REQUEST);
		i = h.dst_port == port[1];
		assert_int_equal(h.dst_port, port[i]);
		host_accept_request(g, fd[i], &h, &c[i]);
	}
	assert_int_not_equal(c[0].host_port, c[1].host_port);
	assert_int_not_equal(c[0].guest_port, c[1].guest_port);
	for (unsigned i = 0; i < 2; i++) {
		char msg[16];
		struct hdr h;

		snprintf(msg, sizeof(msg), "to %u", port[i]);
		write_all(fd[i], msg, strlen(msg));
		expect_pkt(g, &c[i], OP_RW, &h, buf);
		assert_int_equal(h.len, strlen(msg));
		assert_memory_equal(buf, msg, h.len);
	}
	/* A client from now on is not held at all. */
	fd3 = host_connect(g, 1026, &c3);
	assert_int_equal(used_idx(g, 2), 1);
	assert_false(g->d.failed);
	close(fd3);
	close(fd[0]);
	close(fd[1]);
	guest_free(g);
}

/* Packets that break the vsock protocol (not the virtqueue one): dropped
 * or answered with RST; the device goes on. Each case is followed by a
 * REQUEST nobody listens to, whose RST must be the next packet: so a
 * dropped packet provably produced nothing. */
static void probe(struct guest *g)
{
	struct gconn p = { .host_port = 5999, .guest_port = 49999 };

	send_op(g, &p, OP_REQUEST, 0, NULL, 0);
	expect_pkt(g, &p, OP_RST, NULL, NULL);
}

static void test_hostile_packets(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c;
	int fd = host_connect(g, 4000, &c);
	struct hdr h = {
		.src_cid = GUEST_CID + 1, .dst_cid = HOST_CID,
		.src_port = c.guest_port, .dst_port = c.host_port,
		.type = 1, .op = OP_RW, .len = 3,
	};
	struct gconn other = { .host_port = 77, .guest_port = 88 };

	/* A spoofed source: silently dropped, and the connection lives. */
	send_raw(g, &h, "abc", 3);
	probe(g);
	assert_int_equal(fb_vsock_nr_conns(g->v), 1);

	/* Wrong destination CID, or a type that is not STREAM: RST. */
	h = (struct hdr){ .src_cid = GUEST_CID, .dst_cid = 7,
			  .src_port = 50, .dst_port = 60, .type = 1,
			  .op = OP_REQUEST };
	send_raw(g, &h, NULL, 0);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.dst_port, 50);
	h = (struct hdr){ .src_cid = GUEST_CID, .dst_cid = HOST_CID,
			  .src_port = 51, .dst_port = 61, .type = 2,
			  .op = OP_REQUEST };
	send_raw(g, &h, NULL, 0);
	assert_true(recv_pkt(g, &h, NULL, DEADLINE_MS));
	assert_int_equal(h.op, OP_RST);
	assert_int_equal(h.dst_port, 51);

	/* Data for a connection that does not exist: RST. An RST for one:
	 * nothing. An unknown op on one: RST. */
	send_op(g, &other, OP_RW, 0, "x", 1);
	expect_pkt(g, &other, OP_RST, NULL, NULL);
	send_op(g, &other, OP_RST, 0, NULL, 0);
	probe(g);

	/* An unknown op on a live connection: RST, and the client sees
	 * EOF. */
	send_op(g, &c, 99, 0, NULL, 0);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	expect_eof(fd);
	close(fd);

	/* A header claiming 0xffffffff bytes on a live connection: the
	 * connection is reset, the client sees EOF, the device lives. */
	fd = host_connect(g, 4002, &c);
	h = (struct hdr){ .src_cid = GUEST_CID, .dst_cid = HOST_CID,
			  .src_port = c.guest_port, .dst_port = c.host_port,
			  .type = 1, .op = OP_RW, .len = 0xffffffffu };
	send_raw(g, &h, "abc", 3);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	expect_eof(fd);
	close(fd);
	/* len within 64 KiB but past the chain's payload. */
	fd = host_connect(g, 4001, &c);
	h.src_port = c.guest_port;
	h.dst_port = c.host_port;
	h.len = 100;
	send_raw(g, &h, "abc", 3);
	expect_pkt(g, &c, OP_RST, NULL, NULL);
	expect_eof(fd);
	close(fd);
	/* A chain too short for a header: dropped. */
	{
		unsigned slot = g->avail_idx[1] % TX_SLOTS;
		struct vdesc *d0 = desc(g, 1, 2 * slot);

		d0->addr = TX_AREA + slot * TX_STRIDE;
		d0->len = 10;
		d0->flags = 0;
		publish(g, 1, (uint16_t)(2 * slot));
		kick(g, 1);
	}
	probe(g);
	/* A RESPONSE nobody asked for, from a new pair: RST. */
	other.guest_port = 89;
	send_op(g, &other, OP_RESPONSE, 0, NULL, 0);
	expect_pkt(g, &other, OP_RST, NULL, NULL);
	assert_false(g->d.failed);
	assert_int_equal(fb_vsock_nr_conns(g->v), 0);
	guest_free(g);
}

/* Chains that break the virtqueue protocol: the device fails (with
 * d->vm NULL the transport records it), stops using the queues, does not
 * crash, and works again after a driver reset. */
static void hostile_chain(struct guest *g, uint64_t addr, uint32_t len,
			  uint16_t flags, uint16_t next, const char *want)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	unsigned slot = g->avail_idx[1] % TX_SLOTS;
	struct vdesc *d0 = desc(g, 1, 2 * slot);
	struct gconn c;
	int fd;

	d0->addr = addr;
	d0->len = len;
	d0->flags = flags;
	d0->next = next;
	publish(g, 1, (uint16_t)(2 * slot));
	kick(g, 1);
	while (!__atomic_load_n(&g->d.failed, __ATOMIC_SEQ_CST)) {
		assert_true(now_ms() < deadline);
		wait_irq(g, 50); /* no interrupt comes: a short poll */
	}
	assert_true(g->d.status & VIRTIO_STATUS_NEEDS_RESET);
	if (!strstr(g->d.failure, want))
		fail_msg("failure \"%s\" does not say \"%s\"", g->d.failure,
			 want);
	driver_reset(g);
	driver_start(g);
	fd = host_connect(g, 4100, &c);
	close(fd);
}

static void test_hostile_chains(void **state)
{
	struct guest *g = guest_new(0);
	unsigned slot = g->avail_idx[1] % TX_SLOTS;

	/* A descriptor that chains to itself: the segment cap ends it, or
	 * (empty descriptors, which map nothing) the loop bound. */
	hostile_chain(g, TX_AREA, 44, 1, (uint16_t)(2 * slot), "segments");
	slot = g->avail_idx[1] % TX_SLOTS;
	hostile_chain(g, TX_AREA, 0, 1, (uint16_t)(2 * slot), "loop");
	/* An address past the end of RAM. */
	hostile_chain(g, 64 * MiB - 16, 44, 0, 0, "not in RAM");
	/* An address that wraps around 2^64. */
	hostile_chain(g, UINT64_MAX - 8, 44, 0, 0, "not in RAM");
	/* A next index out of the table. */
	hostile_chain(g, TX_AREA, 44, 1, 300, "out of");
	guest_free(g);
}

/* A device destroyed with connections open and a driver still "up":
 * nothing leaks (ASan) and the clients see EOF. */
static void test_destroy_with_open_conns(void **state)
{
	struct guest *g = guest_new(0);
	struct gconn c;
	int fd = host_connect(g, 4200, &c);
	int half = uds_connect(g->uds);

	write_all(half, "CONN", 4);
	write_all(fd, "pending", 7);
	fb_vsock_destroy(g->v);
	g->v = NULL;
	expect_eof(fd);
	expect_eof(half);
	close(fd);
	close(half);
	assert_int_equal(access(g->uds, F_OK), -1);
	guest_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_shape),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_host_connect_and_close),
		cmocka_unit_test(test_host_connect_refused),
		cmocka_unit_test(test_connect_line_hostile),
		cmocka_unit_test(test_guest_unanswered_request),
		cmocka_unit_test(test_data_after_connect_line),
		cmocka_unit_test(test_guest_connect_and_half_close),
		cmocka_unit_test(test_guest_connect_nobody),
		cmocka_unit_test(test_large_transfer),
		cmocka_unit_test(test_one_way_credit_updates),
		cmocka_unit_test(test_credit),
		cmocka_unit_test(test_guest_overruns_credit),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_device_reset),
		cmocka_unit_test(test_transport_reset_event),
		cmocka_unit_test(test_restored_ports_start_elsewhere),
		cmocka_unit_test(test_transport_reset_holds_host_connect),
		cmocka_unit_test(test_transport_reset_leftover_event_bufs),
		cmocka_unit_test(test_hostile_packets),
		cmocka_unit_test(test_hostile_chains),
		cmocka_unit_test(test_destroy_with_open_conns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
