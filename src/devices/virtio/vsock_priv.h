/* virtio-vsock internals shared by vsock.c (device, queues, I/O thread),
 * vsock_conn.c (connection states, flow control, guest packets) and
 * vsock_host.c (the Unix-socket side). Everything here runs on the I/O
 * thread with v->lock held, unless a comment says otherwise. */
#ifndef FB_VIRTIO_VSOCK_PRIV_H
#define FB_VIRTIO_VSOCK_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "devices/virtio/vsock.h"

/* Wire format (virtio 1.2, 5.10.6; linux/virtio_vsock.h). */
#define VSOCK_HOST_CID 2u
#define VSOCK_TYPE_STREAM 1
enum vsock_op {
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_EVENT_TRANSPORT_RESET 0u

#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2

/* struct virtio_vsock_hdr, decoded to host order. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};
#define VSOCK_HDR_SIZE 44

#define VSOCK_MAX_PAYLOAD (64u * 1024)  /* one packet, either way */
#define VSOCK_BUF_ALLOC (256u * 1024)   /* our receive window, per conn */
#define VSOCK_MAX_CONNS 1024u
#define VSOCK_LOCAL_PORT_FIRST (1u << 30) /* host ports of host-initiated conns */
#define VSOCK_CONNECT_LINE_MAX 32u      /* "CONNECT 4294967295\n" fits */
/* A guest busy with others (a hundred fork children restoring on two lab
 * CPUs) took over 2 s to answer a connection request; the host client
 * has its own deadline and closes when it gives up, which ends the
 * request sooner. */
#define VSOCK_DEFAULT_TIMEOUT_MS 30000u

void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t raw[VSOCK_HDR_SIZE]);
void vsock_hdr_encode(uint8_t raw[VSOCK_HDR_SIZE], const struct vsock_hdr *h);

enum vsock_conn_state {
	CONN_HOST_HANDSHAKE, /* host client accepted; reading CONNECT line */
	CONN_LOCAL_INIT,     /* REQUEST to the guest queued or sent */
	CONN_ESTABLISHED,
};

/* Control packets a connection owes the guest (bits of conn->pending). */
#define PEND_REQUEST (1u << 0)
#define PEND_RESPONSE (1u << 1)
#define PEND_SHUTDOWN (1u << 2)
#define PEND_CREDIT_UPDATE (1u << 3)
#define PEND_CREDIT_REQUEST (1u << 4)

struct vsock_conn {
	uint32_t slot, gen;      /* the epoll token; gen changes on free */
	int fd;                  /* the Unix socket, non-blocking */
	enum vsock_conn_state state;
	uint32_t local_port;     /* host side: CID 2, this port */
	uint32_t peer_port;      /* guest side */
	uint64_t deadline_ms;    /* handshake states only */

	char line[VSOCK_CONNECT_LINE_MAX];
	unsigned line_len;

	/* Flow control (wrapping u32 counters, as on the wire). */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* the guest's window */
	uint32_t tx_cnt;          /* bytes we sent the guest */
	uint32_t fwd_cnt;         /* guest bytes written to the socket */
	uint32_t fwd_cnt_sent;    /* fwd_cnt the guest last heard from us */
	bool credit_requested;    /* a CREDIT_REQUEST is out, unanswered */

	/* Guest bytes the socket would not take yet: a ring bounded by the
	 * window we advertise, so a guest that keeps to its credit always
	 * fits. Allocated on first need. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;

	bool readable, writable;  /* edge-triggered readiness, last seen */
	bool host_eof;            /* the client sent EOF (or we must stop) */
	bool shut_send_sent;      /* SHUTDOWN(SEND) reached the guest */
	bool guest_shut_send;     /* the guest will send no more */
	bool guest_shut_rcv;      /* the guest will receive no more */
	bool shut_wr_done;        /* shutdown(SHUT_WR) done on the socket */

	unsigned pending;         /* PEND_* */
	bool held;                /* its REQUEST waits for reset_unacked */
	bool in_rxq;
	struct vsock_conn *rxq_next;
};

/* Connection-less RSTs owed to the guest (the connection is gone or never
 * existed), a bounded ring: if it is full the guest times out instead. */
struct vsock_rst {
	uint32_t local_port, peer_port;
};
#define VSOCK_RST_RING (VSOCK_MAX_CONNS + 64u)

struct fb_vsock {
	struct fb_virtio_device *d;
	uint64_t guest_cid;
	char uds_path[108];
	unsigned timeout_ms;

	int epfd, kickfd, stopfd, listenfd;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;  /* everything below; never held while calling
				* into the transport (fb_virtio_signal_used,
				* fb_virtio_fail), which takes d->lock, and
				* the transport calls reset/activate with
				* d->lock held */
	bool active;           /* DRIVER_OK and not reset */
	bool broken;           /* the driver broke a queue: stop until reset */
	char fail_msg[200];    /* fb_virtio_fail() to call, once unlocked */
	bool need_irq;

	struct vsock_conn *conns[VSOCK_MAX_CONNS];
	uint32_t gens[VSOCK_MAX_CONNS];
	unsigned nr_conns;
	uint32_t next_local_port;

	struct vsock_conn *rxq_head, *rxq_tail; /* conns owing the guest */
	struct vsock_rst rst[VSOCK_RST_RING];
	unsigned rst_head, rst_len;
	bool event_pending;
	/* A TRANSPORT_RESET went to the guest, which has not yet handed an
	 * event buffer back: until it does, its reset may still be to come
	 * and would kill a connection made now, so new host connections
	 * wait (held) for it. */
	bool reset_unacked;
	uint16_t reset_avail_idx; /* the event queue's avail index then */

	bool rx_held;          /* a popped rx chain we had nothing for yet */
	struct fb_vq_chain rx_chain;
};

/* Epoll tokens: small numbers for the device's own fds, else a conn. */
#define TOKEN_KICK 1u
#define TOKEN_STOP 2u
#define TOKEN_LISTEN 3u
#define TOKEN_CONN_BASE 16u
uint64_t vsock_conn_token(const struct vsock_conn *c);
struct vsock_conn *vsock_conn_from_token(struct fb_vsock *v, uint64_t token);

uint64_t vsock_now_ms(void);

/* vsock_host.c: sends the REQUESTs of connections held while a transport
 * reset was unacknowledged. */
void vsock_release_held(struct fb_vsock *v);

/* vsock_conn.c */
struct vsock_conn *vsock_conn_new(struct fb_vsock *v, int fd);
struct vsock_conn *vsock_conn_find(struct fb_vsock *v, uint32_t local_port,
				   uint32_t peer_port);
/* Closes the socket and frees c; with rst, the guest is told. */
void vsock_conn_kill(struct fb_vsock *v, struct vsock_conn *c, bool rst);
void vsock_conn_kill_all(struct fb_vsock *v);
void vsock_queue_rst(struct fb_vsock *v, uint32_t local_port,
		     uint32_t peer_port);
/* Puts c on the rx work list if it owes the guest a packet. */
void vsock_conn_want_rx(struct fb_vsock *v, struct vsock_conn *c);
void vsock_guest_packet(struct fb_vsock *v, const struct vsock_hdr *h,
			const struct fb_vq_chain *chain);
/* Fills the rx chain with c's next packet; returns its length (header
 * included) or 0 if c has nothing to send now. */
uint32_t vsock_conn_rx_packet(struct fb_vsock *v, struct vsock_conn *c,
			      const struct fb_vq_chain *chain);
bool vsock_conn_has_rx_work(const struct vsock_conn *c);
/* Closes c gracefully once both directions are done. */
void vsock_conn_check_done(struct fb_vsock *v, struct vsock_conn *c);
void vsock_conn_consumed(struct fb_vsock *v, struct vsock_conn *c,
			 uint32_t n);

/* vsock_host.c */
int vsock_listen(struct fb_vsock *v);
void vsock_accept_all(struct fb_vsock *v);
void vsock_conn_io(struct fb_vsock *v, struct vsock_conn *c, uint32_t ev);
/* A guest REQUEST for host port local_port: connect "<uds>_<port>". */
void vsock_peer_connect(struct fb_vsock *v, uint32_t local_port,
			uint32_t peer_port, const struct vsock_hdr *h);
/* Writes the guest's payload to the socket, buffering what it refuses;
 * false if the guest overran its credit or the socket failed. */
bool vsock_conn_write(struct fb_vsock *v, struct vsock_conn *c,
		      const struct fb_vq_chain *chain, uint32_t len);
/* Writes out buffered guest bytes; false if the socket failed. */
bool vsock_conn_flush(struct fb_vsock *v, struct vsock_conn *c);
void vsock_expire(struct fb_vsock *v, uint64_t now);
int vsock_next_timeout(struct fb_vsock *v, uint64_t now);

#endif
