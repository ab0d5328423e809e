/* virtio-vsock connections: the table, the state machine driven by the
 * guest's packets, the packets we owe the guest, and credit-based flow
 * control both ways (virtio 1.2, 5.10.6.3):
 *
 *  - guest to host: we advertise VSOCK_BUF_ALLOC and count in fwd_cnt the
 *    bytes the Unix socket took; the guest may have at most buf_alloc
 *    bytes in flight past our fwd_cnt, which bounds our per-connection
 *    buffer. A CREDIT_UPDATE goes out when the guest asks or when half a
 *    window was consumed since it last heard our fwd_cnt.
 *  - host to guest: the guest's buf_alloc and fwd_cnt come with each of
 *    its packets; we never send past buf_alloc - (tx_cnt - fwd_cnt). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/vsock_priv.h"

uint64_t vsock_conn_token(const struct vsock_conn *c)
{
	return ((uint64_t)c->gen << 32) | (c->slot + TOKEN_CONN_BASE);
}

struct vsock_conn *vsock_conn_from_token(struct fb_vsock *v, uint64_t token)
{
	uint32_t low = (uint32_t)token;
	struct vsock_conn *c;

	if (low < TOKEN_CONN_BASE || low - TOKEN_CONN_BASE >= VSOCK_MAX_CONNS)
		return NULL;
	c = v->conns[low - TOKEN_CONN_BASE];
	/* A stale event for a connection freed since epoll_wait returned. */
	if (!c || c->gen != (uint32_t)(token >> 32))
		return NULL;
	return c;
}

struct vsock_conn *vsock_conn_new(struct fb_vsock *v, int fd)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	};
	struct vsock_conn *c;
	unsigned slot;

	if (v->nr_conns >= VSOCK_MAX_CONNS)
		return NULL;
	for (slot = 0; v->conns[slot]; slot++)
		;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slot = slot;
	c->gen = v->gens[slot];
	c->fd = fd;
	ev.data.u64 = vsock_conn_token(c);
	/* Edge-triggered: readable/writable below remember the last edge
	 * until a read or write says EAGAIN, so a connection waiting for
	 * credit or rx buffers costs no wake-ups. */
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c);
		return NULL;
	}
	v->conns[slot] = c;
	v->nr_conns++;
	return c;
}

struct vsock_conn *vsock_conn_find(struct fb_vsock *v, uint32_t local_port,
				   uint32_t peer_port)
{
	/* Linear: at most VSOCK_MAX_CONNS, and a scan of a pointer array
	 * costs little next to a packet's system calls. */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->conns[i];

		if (c && c->state != CONN_HOST_HANDSHAKE &&
		    c->local_port == local_port && c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

void vsock_queue_rst(struct fb_vsock *v, uint32_t local_port,
		     uint32_t peer_port)
{
	unsigned tail;

	if (v->rst_len == VSOCK_RST_RING)
		return;
	tail = (v->rst_head + v->rst_len) % VSOCK_RST_RING;
	v->rst[tail].local_port = local_port;
	v->rst[tail].peer_port = peer_port;
	v->rst_len++;
}

static void rxq_remove(struct fb_vsock *v, struct vsock_conn *c)
{
	struct vsock_conn **pp = &v->rxq_head, *prev = NULL;

	if (!c->in_rxq)
		return;
	while (*pp != c) {
		prev = *pp;
		pp = &(*pp)->rxq_next;
	}
	*pp = c->rxq_next;
	if (v->rxq_tail == c)
		v->rxq_tail = prev;
	c->in_rxq = false;
}

void vsock_conn_kill(struct fb_vsock *v, struct vsock_conn *c, bool rst)
{
	/* The guest knows of a connection once it saw its REQUEST or sent
	 * one: only then does an RST mean anything to it. */
	bool guest_knows = c->state == CONN_ESTABLISHED ||
		(c->state == CONN_LOCAL_INIT && !c->held &&
		 !(c->pending & PEND_REQUEST));

	if (rst && guest_knows)
		vsock_queue_rst(v, c->local_port, c->peer_port);
	rxq_remove(v, c);
	close(c->fd); /* also leaves the epoll set */
	v->conns[c->slot] = NULL;
	v->gens[c->slot]++;
	v->nr_conns--;
	free(c->buf);
	free(c);
}

void vsock_conn_kill_all(struct fb_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conns[i])
			vsock_conn_kill(v, v->conns[i], false);
}

static uint32_t peer_free(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	/* A guest that shrank its buffer below what is in flight. */
	return in_flight >= c->peer_buf_alloc ? 0 :
		c->peer_buf_alloc - in_flight;
}

static bool may_send_data(const struct vsock_conn *c)
{
	return c->state == CONN_ESTABLISHED && c->readable && !c->host_eof &&
		!c->guest_shut_rcv &&
		(peer_free(c) > 0 || !c->credit_requested);
}

bool vsock_conn_has_rx_work(const struct vsock_conn *c)
{
	return c->pending || may_send_data(c);
}

void vsock_conn_want_rx(struct fb_vsock *v, struct vsock_conn *c)
{
	if (c->in_rxq || !vsock_conn_has_rx_work(c))
		return;
	c->rxq_next = NULL;
	if (v->rxq_tail)
		v->rxq_tail->rxq_next = c;
	else
		v->rxq_head = c;
	v->rxq_tail = c;
	c->in_rxq = true;
}

void vsock_conn_consumed(struct fb_vsock *v, struct vsock_conn *c,
			 uint32_t n)
{
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_BUF_ALLOC / 2) {
		c->pending |= PEND_CREDIT_UPDATE;
		vsock_conn_want_rx(v, c);
	}
}

void vsock_conn_check_done(struct fb_vsock *v, struct vsock_conn *c)
{
	bool out_done = c->guest_shut_send && c->buf_len == 0;
	bool in_done = c->guest_shut_rcv || (c->host_eof && c->shut_send_sent);

	if (c->state == CONN_ESTABLISHED && out_done && in_done)
		vsock_conn_kill(v, c, true);
}

/* Reads socket data straight into the rx chain, after the header. Returns
 * the payload length, 0 if there was none (EOF noted in c), -1 if c died. */
static int read_data(struct fb_vsock *v, struct vsock_conn *c,
		     const struct fb_vq_chain *chain)
{
	struct iovec iov[FB_VQ_MAX_SEGS];
	size_t max = chain->out_len - VSOCK_HDR_SIZE, got;
	unsigned nr;
	ssize_t n;

	if (max > VSOCK_MAX_PAYLOAD)
		max = VSOCK_MAX_PAYLOAD;
	if (max > peer_free(c))
		max = peer_free(c);
	if (max == 0)
		return 0;
	nr = fb_iov_slice(chain->out, chain->nr_out, VSOCK_HDR_SIZE, max,
			  iov, FB_VQ_MAX_SEGS, &got);
	n = readv(c->fd, iov, (int)nr);
	if (n > 0)
		return (int)n;
	if (n == 0) {
		c->host_eof = true;
		c->pending |= PEND_SHUTDOWN;
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR) {
		c->readable = false;
		return 0;
	}
	vsock_conn_kill(v, c, true);
	return -1;
}

uint32_t vsock_conn_rx_packet(struct fb_vsock *v, struct vsock_conn *c,
			      const struct fb_vq_chain *chain)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->guest_cid,
		.src_port = c->local_port,
		.dst_port = c->peer_port,
		.type = VSOCK_TYPE_STREAM,
		.buf_alloc = VSOCK_BUF_ALLOC,
	};
	uint8_t raw[VSOCK_HDR_SIZE];

	if (c->pending & PEND_REQUEST) {
		c->pending &= ~PEND_REQUEST;
		h.op = VSOCK_OP_REQUEST;
	} else if (c->pending & PEND_RESPONSE) {
		c->pending &= ~PEND_RESPONSE;
		h.op = VSOCK_OP_RESPONSE;
	} else if (may_send_data(c)) {
		if (peer_free(c) == 0) {
			/* Ask once; the guest's answer (or any packet of
			 * its) reopens the window. */
			c->credit_requested = true;
			h.op = VSOCK_OP_CREDIT_REQUEST;
		} else {
			int n = read_data(v, c, chain);

			if (n < 0)
				return 0;
			if (n > 0) {
				h.op = VSOCK_OP_RW;
				h.len = (uint32_t)n;
				c->tx_cnt += (uint32_t)n;
			}
		}
	}
	if (!h.op && (c->pending & PEND_SHUTDOWN)) {
		c->pending &= ~PEND_SHUTDOWN;
		c->shut_send_sent = true;
		h.op = VSOCK_OP_SHUTDOWN;
		h.flags = VSOCK_SHUTDOWN_SEND;
	}
	if (!h.op && (c->pending & PEND_CREDIT_UPDATE))
		h.op = VSOCK_OP_CREDIT_UPDATE;
	if (!h.op)
		return 0;
	/* Every header carries our fwd_cnt: it is a credit update too. */
	c->pending &= ~PEND_CREDIT_UPDATE;
	h.fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
	vsock_hdr_encode(raw, &h);
	fb_vq_copy_to_chain(chain, 0, raw, sizeof(raw));
	if (h.op == VSOCK_OP_SHUTDOWN)
		vsock_conn_check_done(v, c);
	return VSOCK_HDR_SIZE + h.len;
}

/* The guest's packet names a pair we do not, or no longer, agree on. */
static void reset_pair(struct fb_vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c;

	if (h->op == VSOCK_OP_RST)
		return; /* never answer an RST with one */
	c = vsock_conn_find(v, h->dst_port, h->src_port);
	if (c)
		vsock_conn_kill(v, c, true);
	else
		vsock_queue_rst(v, h->dst_port, h->src_port);
}

static void on_response(struct fb_vsock *v, struct vsock_conn *c)
{
	char ok[24];
	int len;

	if (c->state != CONN_LOCAL_INIT || (c->pending & PEND_REQUEST)) {
		vsock_conn_kill(v, c, true);
		return;
	}
	/* The client has sent nothing it could wait on, so its socket takes
	 * these few bytes at once; anything else is a dead client. */
	len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	if (send(c->fd, ok, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len) {
		vsock_conn_kill(v, c, true);
		return;
	}
	c->state = CONN_ESTABLISHED;
	c->deadline_ms = 0;
	vsock_conn_want_rx(v, c);
}

static void on_shutdown(struct fb_vsock *v, struct vsock_conn *c,
			uint32_t flags)
{
	if (c->state != CONN_ESTABLISHED) {
		vsock_conn_kill(v, c, true);
		return;
	}
	if (flags & VSOCK_SHUTDOWN_SEND)
		c->guest_shut_send = true;
	if (flags & VSOCK_SHUTDOWN_RCV)
		c->guest_shut_rcv = true;
	/* Half-close: the client sees EOF once it has every byte. */
	if (c->guest_shut_send && c->buf_len == 0 && !c->shut_wr_done) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr_done = true;
	}
	vsock_conn_want_rx(v, c);
	vsock_conn_check_done(v, c);
}

void vsock_guest_packet(struct fb_vsock *v, const struct vsock_hdr *h,
			const struct fb_vq_chain *chain)
{
	struct vsock_conn *c;

	/* A spoofed source gets no answer: it would go to someone else. */
	if (h->src_cid != v->guest_cid)
		return;
	if (h->dst_cid != VSOCK_HOST_CID || h->type != VSOCK_TYPE_STREAM ||
	    h->len > VSOCK_MAX_PAYLOAD ||
	    h->len > chain->in_len - VSOCK_HDR_SIZE) {
		reset_pair(v, h);
		return;
	}
	c = vsock_conn_find(v, h->dst_port, h->src_port);
	if (h->op == VSOCK_OP_REQUEST) {
		if (c)
			vsock_conn_kill(v, c, true); /* a pair reused */
		else
			vsock_peer_connect(v, h->dst_port, h->src_port, h);
		return;
	}
	if (!c) {
		reset_pair(v, h);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (peer_free(c) > 0)
		c->credit_requested = false;

	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		on_response(v, c);
		return;
	case VSOCK_OP_RST:
		vsock_conn_kill(v, c, false);
		return;
	case VSOCK_OP_SHUTDOWN:
		on_shutdown(v, c, h->flags);
		return;
	case VSOCK_OP_RW:
		if (c->state != CONN_ESTABLISHED || c->guest_shut_send ||
		    !vsock_conn_write(v, c, chain, h->len)) {
			vsock_conn_kill(v, c, true);
			return;
		}
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= PEND_CREDIT_UPDATE;
		break;
	default:
		vsock_conn_kill(v, c, true);
		return;
	}
	vsock_conn_want_rx(v, c);
}
