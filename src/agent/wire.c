#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/wire.h"
#include "util/clock.h"
#include "util/error.h"

static int64_t now_ms(void)
{
	return (int64_t)fb_now_ms();
}

int64_t fba_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int fba_ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (deadline < 0)
		return -1;
	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

int fba_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int left = fba_ms_left(deadline), n;

		if (left == 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0; /* POLLHUP/POLLERR: the next call says */
	}
}

void fba_msg_free(struct fba_msg *m)
{
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

void fba_reader_reset(struct fba_reader *r)
{
	fba_msg_free(&r->msg);
	memset(r, 0, sizeof(*r));
}

static ssize_t recv_some(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t got = recv(fd, p, n, MSG_DONTWAIT);

		if (got >= 0)
			return got;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int fba_read_step(int fd, struct fba_reader *r, uint32_t cap)
{
	ssize_t n;

	while (r->hdr_got < FB_AGENT_HDR_LEN) {
		n = recv_some(fd, r->hdr + r->hdr_got, FB_AGENT_HDR_LEN - r->hdr_got);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return r->hdr_got ? -EPIPE : -ENODATA;
		r->hdr_got += (uint32_t)n;
		if (r->hdr_got < FB_AGENT_HDR_LEN)
			continue;
		r->msg.type = fb_le32(r->hdr);
		r->msg.len = fb_le32(r->hdr + 4);
		if (r->msg.len > cap)
			return -EMSGSIZE;
		if (r->msg.len) {
			r->msg.data = malloc(r->msg.len);
			if (!r->msg.data)
				return -ENOMEM;
		}
	}
	while (r->got < r->msg.len) {
		n = recv_some(fd, r->msg.data + r->got, r->msg.len - r->got);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		r->got += (uint32_t)n;
	}
	return 1;
}

/* The message for a failed read step. */
static int read_failed(int err, const struct fba_reader *r, uint32_t cap,
		       const char *what)
{
	switch (err) {
	case -ENODATA:
	case -EPIPE:
		return fb_errorf(-ECONNRESET, "%s: the agent closed the connection",
				 what);
	case -EMSGSIZE:
		return fb_errorf(-EPROTO, "%s: agent sent a message of %u bytes "
				 "(type 0x%x), over the %u-byte cap", what,
				 r->msg.len, r->msg.type, cap);
	case -ETIMEDOUT:
		return fb_errorf(err, "%s: timed out waiting for the agent", what);
	default:
		return fb_errorf(err, "%s: recv: %s", what, strerror(-err));
	}
}

int fba_recv(int fd, struct fba_msg *m, uint32_t cap, int64_t deadline,
	     const char *what)
{
	struct fba_reader r;
	int ret;

	/* *m is always valid to free, whatever happens below. */
	memset(m, 0, sizeof(*m));
	memset(&r, 0, sizeof(r));
	while ((ret = fba_read_step(fd, &r, cap)) == 0)
		if ((ret = fba_wait(fd, POLLIN, deadline)) < 0)
			break;
	if (ret == 1) {
		*m = r.msg;
		return 0;
	}
	ret = read_failed(ret, &r, cap, what);
	fba_reader_reset(&r);
	return ret;
}

int fba_send_raw(int fd, const void *buf, size_t len, int64_t deadline,
		 const char *what)
{
	const uint8_t *p = buf;
	int err;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EWOULDBLOCK) {
			err = fba_wait(fd, POLLOUT, deadline);
			if (err == -ETIMEDOUT)
				return fb_errorf(err, "%s: timed out sending to "
						 "the agent", what);
			if (err)
				return fb_errorf(err, "%s: poll: %s", what,
						 strerror(-err));
			continue;
		}
		if (n < 0)
			return fb_errorf(-errno, "%s: send: %s", what,
					 strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fba_send(int fd, uint32_t type, const void *p, uint32_t len,
	     int64_t deadline, const char *what)
{
	uint8_t hdr[FB_AGENT_HDR_LEN];
	int err;

	fb_agent_hdr_put(hdr, type, len);
	err = fba_send_raw(fd, hdr, sizeof(hdr), deadline, what);
	if (!err && len)
		err = fba_send_raw(fd, p, len, deadline, what);
	return err;
}

int fba_agent_error(const struct fba_msg *m, const char *what)
{
	struct fb_agent_dec d;
	uint32_t err, n;
	const char *text;

	fb_dec_init(&d, m->data, m->len);
	err = fb_dec_u32(&d);
	text = fb_dec_str(&d, FB_AGENT_MAX_TEXT, &n);
	if (!fb_dec_ok(&d))
		return fb_errorf(-EPROTO, "%s: malformed ERROR from the agent", what);
	/* A hostile errno must not pass for success or for garbage. */
	if (err == 0 || err > 4095)
		err = EPROTO;
	return fb_errorf(-(int)err, "%s: %.*s", what, (int)n, text);
}

int fba_recv_reply(int fd, struct fba_msg *m, uint32_t want, uint32_t cap,
		   int64_t deadline, const char *what)
{
	/* Whatever the expected reply's size, an ERROR must fit. */
	const uint32_t error_cap = 8 + FB_AGENT_MAX_TEXT;
	int err = fba_recv(fd, m, cap > error_cap ? cap : error_cap, deadline, what);

	if (err)
		return err;
	if (m->type == want)
		return 0;
	err = m->type == FB_AGENT_ERROR ?
	      fba_agent_error(m, what) :
	      fb_errorf(-EPROTO, "%s: unexpected message type 0x%x from the agent",
			what, m->type);
	fba_msg_free(m);
	return err;
}

int fba_write_fd(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int err = fba_wait(fd, POLLOUT, -1);

			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fba_out_init(struct fba_out *o, size_t size)
{
	o->buf = malloc(size);
	o->off = o->len = 0;
	o->size = o->buf ? size : 0;
	return o->buf ? 0 : -ENOMEM;
}

void fba_out_free(struct fba_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

uint8_t *fba_out_reserve(struct fba_out *o, size_t n)
{
	if (o->size - o->len < n && o->off > 0) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	return o->size - o->len >= n ? o->buf + o->len : NULL;
}

void fba_out_commit_frame(struct fba_out *o, uint32_t type, uint32_t len)
{
	fb_agent_hdr_put(o->buf + o->len, type, len);
	o->len += FB_AGENT_HDR_LEN + len;
}

int fba_out_frame(struct fba_out *o, uint32_t type, const void *p, uint32_t len)
{
	uint8_t *dst = fba_out_reserve(o, FB_AGENT_HDR_LEN + (size_t)len);

	if (!dst)
		return -ENOBUFS;
	if (len)
		memcpy(dst + FB_AGENT_HDR_LEN, p, len);
	fba_out_commit_frame(o, type, len);
	return 0;
}

int fba_out_flush(int fd, struct fba_out *o)
{
	while (o->off < o->len) {
		ssize_t n = send(fd, o->buf + o->off, o->len - o->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EWOULDBLOCK)
			return 0;
		if (n < 0)
			return -errno;
		o->off += (size_t)n;
	}
	o->off = o->len = 0;
	return 0;
}
