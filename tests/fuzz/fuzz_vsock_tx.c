/* Fuzzes the virtio-vsock device (src/devices/virtio/vsock*.c) with a
 * hostile guest driver: the input is a script of what the guest puts on
 * its queues (tx packets, rx and event buffers, raw descriptors) and what
 * host-side Unix-socket peers do, run one step at a time.
 *
 * No I/O thread: vsock.c is #included for its static parts, and each step
 * runs what the thread's loop does once (epoll_wait with no wait, then tx,
 * rx and event queues), so a run is deterministic and fast. Real Unix
 * sockets, all under a temporary directory: the device's listener, and a
 * listener at "<uds>_1025" that accepts guest connections to port 1025.
 * Connection deadlines are far off, so time never matters.
 *
 * Each input starts from a fresh device state (reset, rings cleared, the
 * host port counter rewound) and ends with every socket closed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.c"
#include "fuzz.h"

#define GUEST_CID 3u
#define PEER_PORT 1025u
#define MEM_SIZE 0x200000ull
#define QSZ 64u
#define EVQ 8u
#define TX_SLOTS (QSZ / 4)     /* four descriptors a packet at most */
#define TX_AREA 0x20000ull
#define TX_STRIDE 0x12000ull   /* header + 64 KiB payload + slack */
#define RX_SLOTS (QSZ / 2)     /* two descriptors a buffer */
#define RX_AREA 0x180000ull
#define RX_STRIDE 0x2000ull
#define EV_AREA 0xf000ull
#define MAX_FDS 32

static const uint64_t q_desc[3] = { 0x1000, 0x4000, 0x7000 };
static const uint64_t q_avail[3] = { 0x2000, 0x5000, 0x8000 };
static const uint64_t q_used[3] = { 0x3000, 0x6000, 0x9000 };

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));

static struct {
	bool ready;
	char dir[64], uds[108], peer_path[128];
	struct fb_guest_mem mem;
	struct fb_virtio_device d;
	struct fb_vsock *v;
	int peer_listen;
	uint16_t avail_idx[3];
	int clients[MAX_FDS], nr_clients; /* host clients of the listener */
	int peers[MAX_FDS], nr_peers;     /* accepted guest connections */
} g;

static uint8_t *gp(uint64_t gpa, uint64_t len)
{
	uint8_t *p = fb_gpa_ptr(&g.mem, gpa, len);

	FZ_CHECK(p);
	return p;
}

static struct vdesc *desc(unsigned q, unsigned i)
{
	return (struct vdesc *)gp(q_desc[q] + 16ull * i, 16);
}

static unsigned qsize(unsigned q)
{
	return q == VSOCK_QUEUE_EVENT ? EVQ : QSZ;
}

static void publish(unsigned q, uint16_t head)
{
	uint16_t *ring = (uint16_t *)gp(q_avail[q] + 4, 2ull * qsize(q));

	ring[g.avail_idx[q] % qsize(q)] = head;
	g.avail_idx[q]++;
	__atomic_store_n((uint16_t *)gp(q_avail[q] + 2, 2), g.avail_idx[q],
			 __ATOMIC_RELEASE);
}

static void cleanup(void)
{
	if (g.v) {
		vsock_free(g.v);
		g.v = NULL;
	}
	if (g.peer_listen >= 0) {
		close(g.peer_listen);
		unlink(g.peer_path);
	}
	if (g.dir[0])
		rmdir(g.dir);
}

static void setup_once(void)
{
	struct fb_vsock_config cfg = { .guest_cid = GUEST_CID,
				       .handshake_timeout_ms = 3600 * 1000 };
	static const uint64_t gpa[1] = { 0 }, size[1] = { MEM_SIZE };
	const char *tmp = getenv("TMPDIR");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!tmp || strlen(tmp) > 40)
		tmp = "/tmp";
	snprintf(g.dir, sizeof(g.dir), "%s/fb-fuzz-vsock-XXXXXX", tmp);
	FZ_CHECK(mkdtemp(g.dir));
	snprintf(g.uds, sizeof(g.uds), "%s/v.sock", g.dir);
	snprintf(g.peer_path, sizeof(g.peer_path), "%s_%u", g.uds, PEER_PORT);
	fz_mem_init(&g.mem, 1, gpa, size);
	fb_virtio_device_init(&g.d, NULL, NULL, &g.mem, -1);
	cfg.uds_path = g.uds;
	/* fb_vsock_init_device without its thread. */
	FZ_CHECK(vsock_new(&cfg, &g.v) == 0);
	g.d.ops = &vsock_ops;
	g.d.priv = g.v;
	g.v->d = &g.d;
	g.peer_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(g.peer_listen >= 0);
	memcpy(sa.sun_path, g.peer_path, strlen(g.peer_path));
	FZ_CHECK(bind(g.peer_listen, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(g.peer_listen, 256) == 0);
	atexit(cleanup);
	g.ready = true;
}

/* One turn of the I/O thread's loop, without waiting. */
static void step(void)
{
	struct fb_vsock *v = g.v;
	struct epoll_event evs[64];
	char fail[sizeof(v->fail_msg)];
	int n;

	for (int round = 0; round < 4; round++) {
		n = epoll_wait(v->epfd, evs, 64, 0);
		FZ_CHECK(n >= 0);
		pthread_mutex_lock(&v->lock);
		for (int i = 0; i < n; i++) {
			uint64_t t = evs[i].data.u64;
			struct vsock_conn *c;

			FZ_CHECK(t != TOKEN_STOP);
			if (t == TOKEN_KICK)
				drain(v->kickfd);
			else if (t == TOKEN_LISTEN)
				vsock_accept_all(v);
			else if ((c = vsock_conn_from_token(v, t)))
				vsock_conn_io(v, c, evs[i].events);
		}
		vsock_expire(v, vsock_now_ms());
		tx_drain(v);
		rx_fill(v);
		event_fill(v);
		FZ_CHECK(v->nr_conns <= VSOCK_MAX_CONNS);
		FZ_CHECK(v->rst_len <= VSOCK_RST_RING);
		v->need_irq = false;
		memcpy(fail, v->fail_msg, sizeof(fail));
		v->fail_msg[0] = '\0';
		pthread_mutex_unlock(&v->lock);
		if (fail[0])
			fb_virtio_fail(&g.d, fail);
		if (n == 0)
			break;
	}
	/* Guest connections to port 1025 arrive here. */
	while (g.nr_peers < MAX_FDS) {
		int fd = accept4(g.peer_listen, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			break;
		g.peers[g.nr_peers++] = fd;
	}
}

static void driver_start(void)
{
	for (unsigned q = 0; q < 3; q++) {
		struct fb_virtqueue *vq = &g.d.queues[q];

		memset(gp(q_desc[q], 0x3000), 0, 0x3000);
		fb_vq_reset(vq);
		vq->size = (uint16_t)qsize(q);
		vq->desc_gpa = q_desc[q];
		vq->avail_gpa = q_avail[q];
		vq->used_gpa = q_used[q];
		FZ_CHECK(fb_vq_activate(vq, &g.mem) == 0);
		vq->ready = true;
		g.avail_idx[q] = 0;
	}
	g.d.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	g.d.failed = false;
	FZ_CHECK(g.d.ops->activate(&g.d) == 0);
}

static void driver_reset(void)
{
	g.d.ops->reset(&g.d);
	for (unsigned q = 0; q < 3; q++)
		fb_vq_reset(&g.d.queues[q]);
	g.d.status = 0;
}

/* ---- script steps -------------------------------------------------------- */

/* A tx packet. Either 44 raw header bytes, or a well-formed header from
 * a few fields (so the fuzzer reaches the connection states quickly);
 * then the payload, laid over 1-4 descriptors. */
static void op_tx(struct fz_in *in)
{
	uint8_t f = fz_u8(in);
	unsigned slot = g.avail_idx[VSOCK_QUEUE_TX] % TX_SLOTS;
	uint64_t base = TX_AREA + slot * TX_STRIDE;
	uint8_t raw[VSOCK_HDR_SIZE];
	uint32_t plen, segs, total, off = 0;
	const uint8_t *p;
	size_t n;

	if (f & 1) {
		struct vsock_hdr h = {
			.src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID,
			.type = VSOCK_TYPE_STREAM,
		};
		uint8_t port = fz_u8(in);

		h.op = fz_u8(in) % 8;
		h.src_port = 1000u + (fz_u8(in) % 4);
		/* The peer listener, a host-initiated connection's port, or
		 * a small number. */
		h.dst_port = (port & 0x80) ? VSOCK_LOCAL_PORT_FIRST + (port & 3) :
			     (port & 0x40) ? PEER_PORT : port;
		h.flags = fz_u8(in) % 4;
		h.buf_alloc = (f & 2) ? fz_u32(in) : VSOCK_BUF_ALLOC;
		h.fwd_cnt = (f & 2) ? fz_u32(in) : 0;
		plen = fz_u16(in) % (VSOCK_MAX_PAYLOAD + 1);
		h.len = (f & 4) ? fz_u32(in) : plen;
		vsock_hdr_encode(raw, &h);
	} else {
		p = fz_bytes(in, sizeof(raw), &n);
		memset(raw, 0, sizeof(raw));
		memcpy(raw, p, n);
		plen = fz_u16(in) % (VSOCK_MAX_PAYLOAD + 1);
	}
	memcpy(gp(base, sizeof(raw)), raw, sizeof(raw));
	p = fz_bytes(in, plen, &n);
	memcpy(gp(base + sizeof(raw), plen ? plen : 1), p, n);
	memset(gp(base + sizeof(raw) + n, plen - n + 1), 0x5a, plen - n + 1);
	/* Segments: equal parts of header + payload, the last takes the
	 * rest; with f & 8 the header is split too. */
	total = sizeof(raw) + plen;
	segs = 1 + ((f >> 4) & 3);
	for (unsigned s = 0; s < segs; s++) {
		struct vdesc *dd = desc(VSOCK_QUEUE_TX, 4 * slot + s);
		uint32_t len = s + 1 == segs ? total - off : total / segs;

		if (s == 0 && !(f & 8) && len < sizeof(raw) && segs > 1)
			len = sizeof(raw);
		if (len > total - off)
			len = total - off;
		dd->addr = base + off;
		dd->len = len;
		dd->flags = s + 1 < segs ? VIRTQ_DESC_F_NEXT : 0;
		dd->next = (uint16_t)(4 * slot + s + 1);
		off += len;
	}
	publish(VSOCK_QUEUE_TX, (uint16_t)(4 * slot));
}

/* rx buffers: count, and per buffer the two segments' lengths. */
static void op_rx(struct fz_in *in)
{
	unsigned count = 1 + fz_u8(in) % 8;

	for (unsigned i = 0; i < count; i++) {
		unsigned slot = g.avail_idx[VSOCK_QUEUE_RX] % RX_SLOTS;
		uint64_t base = RX_AREA + slot * RX_STRIDE;
		uint16_t l0 = fz_u16(in) % 0x1000, l1 = fz_u16(in) % 0x1000;
		struct vdesc *d0 = desc(VSOCK_QUEUE_RX, 2 * slot);
		struct vdesc *d1 = desc(VSOCK_QUEUE_RX, 2 * slot + 1);

		if (!l0 && !l1)
			l0 = 0x1000;
		d0->addr = base;
		d0->len = l0;
		d0->flags = VIRTQ_DESC_F_WRITE | (l1 ? VIRTQ_DESC_F_NEXT : 0);
		d0->next = (uint16_t)(2 * slot + 1);
		d1->addr = base + 0x1000;
		d1->len = l1;
		d1->flags = VIRTQ_DESC_F_WRITE;
		publish(VSOCK_QUEUE_RX, (uint16_t)(2 * slot));
	}
}

static void op_event(struct fz_in *in)
{
	unsigned i = g.avail_idx[VSOCK_QUEUE_EVENT] % EVQ;
	struct vdesc *dd = desc(VSOCK_QUEUE_EVENT, i);

	dd->addr = EV_AREA + 0x10ull * i;
	dd->len = fz_u8(in) % 16;
	dd->flags = fz_u8(in) & 1 ? VIRTQ_DESC_F_WRITE : 0;
	publish(VSOCK_QUEUE_EVENT, (uint16_t)i);
}

/* A raw descriptor written into a queue's table, and maybe a raw head
 * offered: loops, wild addresses, indirect tables. */
static void op_raw_desc(struct fz_in *in)
{
	unsigned q = fz_u8(in) % 3, i = fz_u8(in) % qsize(q);
	struct vdesc *dd = desc(q, i);
	uint8_t f;

	dd->addr = fz_u32(in) % (MEM_SIZE + 0x1000);
	dd->len = fz_u16(in);
	dd->flags = fz_u8(in) & 7;
	dd->next = fz_u8(in);
	f = fz_u8(in);
	if (f & 1)
		publish(q, (uint16_t)(i ^ (f >> 1)));
}

/* A host client of the device's listener: connect and send a line or
 * raw bytes. */
static void op_client_connect(struct fz_in *in)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t f = fz_u8(in);
	char line[64];
	const uint8_t *p;
	size_t n;
	int fd;

	if (g.nr_clients == MAX_FDS)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0);
	memcpy(sa.sun_path, g.uds, strlen(g.uds));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	g.clients[g.nr_clients++] = fd;
	if (f & 1) {
		n = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n",
				     1000u + fz_u8(in) % 4);
		p = (const uint8_t *)line;
	} else {
		p = fz_bytes(in, fz_u8(in) % 48, &n);
	}
	if (n && send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Full or refused: the device sees what it sees. */
	}
}

/* A host-side socket (client or accepted peer) sends, shuts down, closes
 * or drains. */
static void op_sock_io(struct fz_in *in, int *fds, int *nr)
{
	uint8_t f = fz_u8(in);
	static uint8_t buf[0x10000];
	const uint8_t *p;
	size_t n;
	int i, fd;

	if (!*nr)
		return;
	i = (f >> 2) % *nr;
	fd = fds[i];
	switch (f & 3) {
	case 0:
		p = fz_bytes(in, fz_u16(in) % 4096, &n);
		if (n && send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* EAGAIN or a reset: fine */
		}
		break;
	case 1:
		shutdown(fd, (f & 0x80) ? SHUT_RDWR : SHUT_WR);
		break;
	case 2:
		close(fd);
		fds[i] = fds[--*nr];
		break;
	case 3:
		while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in;
	unsigned steps = 0;

	if (!g.ready)
		setup_once();
	memset(gp(0, MEM_SIZE), 0, MEM_SIZE);
	g.v->next_local_port = VSOCK_LOCAL_PORT_FIRST;
	driver_start();
	fz_init(&in, data, size);
	while (in.left && steps++ < 256) {
		switch (fz_u8(&in) % 10) {
		case 0: case 1: op_tx(&in); break;
		case 2: op_rx(&in); break;
		case 3: op_event(&in); break;
		case 4: op_raw_desc(&in); break;
		case 5: op_client_connect(&in); break;
		case 6: op_sock_io(&in, g.clients, &g.nr_clients); break;
		case 7: op_sock_io(&in, g.peers, &g.nr_peers); break;
		case 8: fb_vsock_transport_reset(g.v); break;
		case 9:
			driver_reset();
			driver_start();
			break;
		}
		step();
	}
	/* Tear down: every host socket closed, the device forgets them all
	 * (a driver reset), and nothing stays behind for the next input. */
	for (int i = 0; i < g.nr_clients; i++)
		close(g.clients[i]);
	for (int i = 0; i < g.nr_peers; i++)
		close(g.peers[i]);
	g.nr_clients = g.nr_peers = 0;
	step();
	pthread_mutex_lock(&g.v->lock);
	vsock_accept_all(g.v);
	pthread_mutex_unlock(&g.v->lock);
	driver_reset();
	FZ_CHECK(fb_vsock_nr_conns(g.v) == 0);
	for (int fd; (fd = accept4(g.peer_listen, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
		close(fd);
	/* Drain stale epoll events of sockets now closed. */
	{
		struct epoll_event evs[64];

		for (int i = 0; i < 4 && epoll_wait(g.v->epfd, evs, 64, 0) > 0; i++)
			drain(g.v->kickfd);
	}
	return 0;
}
