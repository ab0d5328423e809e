/* virtio-vsock, the host side: Unix stream sockets in Firecracker's
 * "hybrid" protocol. The listener at uds_path takes host clients, who
 * name a guest port with "CONNECT <port>\n" and are answered
 * "OK <hostport>\n" once the guest accepts; a guest connection to host
 * port P goes to the socket "<uds_path>_<P>". Every socket is
 * non-blocking: the I/O thread never waits on a client. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock_priv.h"
#include "util/error.h"
#include "util/sock.h"

int vsock_listen(struct fb_vsock *v)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	if (fb_unix_addr(&sa, v->uds_path))
		return fb_errorf(-ENAMETOOLONG, "vsock: %s: path too long",
				 v->uds_path);
	/* A socket left by a box that died is ours to replace; anything
	 * else at that path is not. */
	if (lstat(v->uds_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fb_errorf(-EEXIST, "vsock: %s exists and is not "
					 "a socket", v->uds_path);
		if (unlink(v->uds_path) < 0)
			return fb_errorf(-errno, "unlink(%s): %s", v->uds_path,
					 strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket(AF_UNIX): %s",
				 strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = fb_errorf(-errno, "bind(%s): %s", v->uds_path,
				    strerror(errno));
		close(fd);
		return err;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		int err = fb_errorf(-errno, "listen(%s): %s", v->uds_path,
				    strerror(errno));
		close(fd);
		unlink(v->uds_path);
		return err;
	}
	v->listenfd = fd;
	return 0;
}

void vsock_accept_all(struct fb_vsock *v)
{
	for (;;) {
		int fd = accept4(v->listenfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0) {
			/* EAGAIN: all taken. Out of fds: the listener stays
			 * readable and we retry on the next wake-up. */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				perror("forkbox: virtio-vsock: accept4");
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			return;
		}
		c = vsock_conn_new(v, fd);
		if (!c) {
			close(fd); /* too many connections: the client sees EOF */
			continue;
		}
		c->state = CONN_HOST_HANDSHAKE;
		c->deadline_ms = vsock_now_ms() + v->timeout_ms;
		/* The first edge arrives through epoll when data does. */
	}
}

/* Host ports for host-initiated connections, from 1 << 30 up (the guest's
 * own connections use the ports it names, which are small in practice). */
static uint32_t alloc_local_port(struct fb_vsock *v)
{
	for (;;) {
		uint32_t p = v->next_local_port++;
		bool used = false;

		if (v->next_local_port == 0)
			v->next_local_port = VSOCK_LOCAL_PORT_FIRST;
		for (unsigned i = 0; i < VSOCK_MAX_CONNS && !used; i++)
			used = v->conns[i] && v->conns[i]->local_port == p;
		/* Ends: at most VSOCK_MAX_CONNS ports are in use. */
		if (!used)
			return p;
	}
}

/* "CONNECT <port>" with the port in decimal, 0 to 2^32-1. */
static bool parse_connect(const char *line, unsigned len, uint32_t *port)
{
	static const char verb[] = "CONNECT ";
	uint64_t val = 0;
	unsigned i = sizeof(verb) - 1;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len <= i || memcmp(line, verb, i) != 0 || len - i > 10)
		return false;
	for (; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		val = val * 10 + (uint64_t)(line[i] - '0');
	}
	if (val > UINT32_MAX)
		return false;
	*port = (uint32_t)val;
	return true;
}

/* Takes the CONNECT line and not a byte more: what follows is already
 * stream data for the guest. Peek first, then consume up to the newline. */
static void read_connect_line(struct fb_vsock *v, struct vsock_conn *c)
{
	size_t room = VSOCK_CONNECT_LINE_MAX - c->line_len;
	char peek[VSOCK_CONNECT_LINE_MAX];
	ssize_t n = recv(c->fd, peek, room, MSG_PEEK);
	char *nl;
	size_t take;
	uint32_t port;

	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->readable = false;
		return;
	}
	if (n <= 0) {
		vsock_conn_kill(v, c, false);
		return;
	}
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	if (!nl && c->line_len + take >= VSOCK_CONNECT_LINE_MAX) {
		vsock_conn_kill(v, c, false); /* no line within the cap */
		return;
	}
	if (recv(c->fd, c->line + c->line_len, take, 0) != (ssize_t)take) {
		vsock_conn_kill(v, c, false);
		return;
	}
	c->line_len += (unsigned)take;
	/* More bytes than the line, or a full peek: data may be waiting,
	 * and no new edge will say so. */
	c->readable = (size_t)n > take || (size_t)n == room;
	if (!nl)
		return;
	if (!parse_connect(c->line, c->line_len - 1, &port)) {
		vsock_conn_kill(v, c, false);
		return;
	}
	c->local_port = alloc_local_port(v);
	c->peer_port = port;
	c->state = CONN_LOCAL_INIT;
	c->deadline_ms = vsock_now_ms() + v->timeout_ms;
	if (v->event_pending || v->reset_unacked) {
		c->held = true;
		return;
	}
	c->pending |= PEND_REQUEST;
	vsock_conn_want_rx(v, c);
}

void vsock_release_held(struct fb_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->conns[i];

		if (c && c->held) {
			/* The guest's time to answer starts now. */
			c->held = false;
			c->deadline_ms = vsock_now_ms() + v->timeout_ms;
			c->pending |= PEND_REQUEST;
			vsock_conn_want_rx(v, c);
		}
	}
}

void vsock_conn_io(struct fb_vsock *v, struct vsock_conn *c, uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->readable = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->writable = true;

	switch (c->state) {
	case CONN_HOST_HANDSHAKE:
		if (c->readable)
			read_connect_line(v, c);
		return;
	case CONN_LOCAL_INIT:
		/* Data waits for the guest's answer; a client gone does not. */
		if (ev & (EPOLLHUP | EPOLLERR))
			vsock_conn_kill(v, c, true);
		return;
	case CONN_ESTABLISHED:
		if (c->writable && c->buf_len && !vsock_conn_flush(v, c)) {
			vsock_conn_kill(v, c, true);
			return;
		}
		vsock_conn_want_rx(v, c);
		vsock_conn_check_done(v, c);
		return;
	}
}

void vsock_peer_connect(struct fb_vsock *v, uint32_t local_port,
			uint32_t peer_port, const struct vsock_hdr *h)
{
	char path[sizeof(v->uds_path) + 12];
	struct sockaddr_un sa;
	struct vsock_conn *c;
	int fd;

	snprintf(path, sizeof(path), "%s_%u", v->uds_path, local_port);
	if (fb_unix_addr(&sa, path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	/* A Unix connect never waits: it succeeds, or fails at once (EAGAIN
	 * when the listener's backlog is full), and then the guest hears
	 * RST as if nobody listened. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		goto refuse;
	}
	c = vsock_conn_new(v, fd);
	if (!c) {
		close(fd);
		goto refuse;
	}
	c->state = CONN_ESTABLISHED;
	c->local_port = local_port;
	c->peer_port = peer_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->writable = true;
	c->pending |= PEND_RESPONSE;
	vsock_conn_want_rx(v, c);
	return;
refuse:
	vsock_queue_rst(v, local_port, peer_port);
}

static void buf_free_if_empty(struct vsock_conn *c)
{
	if (c->buf_len == 0) {
		free(c->buf);
		c->buf = NULL;
		c->buf_head = 0;
	}
}

bool vsock_conn_write(struct fb_vsock *v, struct vsock_conn *c,
		      const struct fb_vq_chain *chain, uint32_t len)
{
	uint32_t done = 0, tail, first;

	if (len == 0)
		return true;
	/* Straight from guest memory when nothing is queued before it; try
	 * even without a writable edge: EAGAIN costs one call. */
	if (c->buf_len == 0) {
		struct iovec iov[FB_VQ_MAX_SEGS];
		struct msghdr msg = { .msg_iov = iov };
		size_t got;
		ssize_t n;

		msg.msg_iovlen = fb_iov_slice(chain->in, chain->nr_in,
					      VSOCK_HDR_SIZE, len, iov,
					      FB_VQ_MAX_SEGS, &got);
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (n < 0 || (size_t)n < got)
			c->writable = false;
		if (n > 0) {
			done = (uint32_t)n;
			vsock_conn_consumed(v, c, done);
		}
	}
	if (done == len)
		return true;
	/* The guest may not have more than our window in flight. */
	if (len - done > VSOCK_BUF_ALLOC - c->buf_len)
		return false;
	if (!c->buf) {
		c->buf = malloc(VSOCK_BUF_ALLOC);
		if (!c->buf)
			return false;
	}
	tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
	first = len - done;
	if (first > VSOCK_BUF_ALLOC - tail)
		first = VSOCK_BUF_ALLOC - tail;
	fb_vq_copy_from_chain(chain, VSOCK_HDR_SIZE + done, c->buf + tail,
			      first);
	fb_vq_copy_from_chain(chain, VSOCK_HDR_SIZE + done + first, c->buf,
			      len - done - first);
	c->buf_len += len - done;
	return true;
}

bool vsock_conn_flush(struct fb_vsock *v, struct vsock_conn *c)
{
	while (c->buf_len) {
		uint32_t first = VSOCK_BUF_ALLOC - c->buf_head;
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
		ssize_t n;

		if (first > c->buf_len)
			first = c->buf_len;
		iov[0].iov_base = c->buf + c->buf_head;
		iov[0].iov_len = first;
		if (first < c->buf_len) {
			iov[1].iov_base = c->buf;
			iov[1].iov_len = c->buf_len - first;
			msg.msg_iovlen = 2;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			c->writable = false;
			break;
		}
		if (n <= 0)
			return false;
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_BUF_ALLOC;
		c->buf_len -= (uint32_t)n;
		vsock_conn_consumed(v, c, (uint32_t)n);
	}
	buf_free_if_empty(c);
	if (c->buf_len == 0 && c->guest_shut_send && !c->shut_wr_done) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr_done = true;
	}
	return true;
}

void vsock_expire(struct fb_vsock *v, uint64_t now)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->conns[i];

		/* A held connection waits for the guest's reset, as long as
		 * its client does: its deadline starts when it is released. */
		if (c && c->state != CONN_ESTABLISHED && !c->held &&
		    c->deadline_ms <= now)
			vsock_conn_kill(v, c, true);
	}
}

int vsock_next_timeout(struct fb_vsock *v, uint64_t now)
{
	uint64_t first = UINT64_MAX;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->conns[i];

		if (c && c->state != CONN_ESTABLISHED && !c->held &&
		    c->deadline_ms < first)
			first = c->deadline_ms;
	}
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)(first - now);
}
