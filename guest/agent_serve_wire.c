/* Framing for the serving side: an incremental reader that allocates a
 * payload only after its length passed the cap, blocking send/receive
 * built on poll, and a bounded outgoing queue for event loops.
 *
 * The connection is a socket; every call passes MSG_DONTWAIT so the fd's
 * own flags never matter, and MSG_NOSIGNAL so a vanished host is an
 * EPIPE, not a signal. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* How long a wait on fd may take: its SO_RCVTIMEO (POLLIN) or
 * SO_SNDTIMEO (POLLOUT), which PID 1 sets on a re-stamp connection so
 * that a peer that stalls cannot hold it; -1 (no limit) when unset, and
 * for pipes. Our reads and writes never block, so the socket options
 * bound nothing by themselves. */
static int wait_limit_ms(int fd, short events)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, events & POLLIN ? SO_RCVTIMEO :
		       SO_SNDTIMEO, &tv, &len) < 0 ||
	    (tv.tv_sec == 0 && tv.tv_usec == 0))
		return -1;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

int fbg_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int limit = wait_limit_ms(fd, events);

	for (;;) {
		int n = poll(&p, 1, limit);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		return 0; /* POLLHUP/POLLERR: the next call reports it */
	}
}

void fbg_msg_free(struct fbg_msg *m)
{
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

void fbg_reader_reset(struct fbg_reader *r)
{
	fbg_msg_free(&r->msg);
	memset(r, 0, sizeof(*r));
}

/* recv into p; >0 bytes, 0 at EOF, -EAGAIN, or -errno. */
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

int fbg_read_step(int fd, struct fbg_reader *r, uint32_t cap)
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

int fbg_recv(int fd, struct fbg_msg *m, uint32_t cap)
{
	struct fbg_reader r;
	int ret;

	memset(&r, 0, sizeof(r));
	while ((ret = fbg_read_step(fd, &r, cap)) == 0) {
		ret = fbg_wait(fd, POLLIN);
		if (ret < 0)
			break;
	}
	if (ret == 1) {
		*m = r.msg; /* ownership moves to the caller */
		return 0;
	}
	*m = (struct fbg_msg){ .type = r.msg.type, .len = r.msg.len };
	fbg_reader_reset(&r);
	return ret;
}

int fbg_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EWOULDBLOCK) {
			int err = fbg_wait(fd, POLLOUT);

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

int fbg_send(int fd, uint32_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[FB_AGENT_HDR_LEN];
	int err;

	fb_agent_hdr_put(hdr, type, len);
	err = send_all(fd, hdr, sizeof(hdr));
	if (!err && len)
		err = send_all(fd, payload, len);
	return err;
}

int fbg_send_error(int fd, int err, const char *fmt, ...)
{
	uint8_t buf[8 + FB_AGENT_MAX_TEXT];
	char text[FB_AGENT_MAX_TEXT + 1];
	struct fb_agent_enc e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, (uint32_t)(err < 0 ? -err : err));
	fb_enc_str(&e, text, strlen(text));
	return fbg_send(fd, FB_AGENT_ERROR, buf, e.len);
}

int fbg_send_ok(int fd, uint32_t flags, const char *text)
{
	uint8_t buf[8 + FB_AGENT_MAX_TEXT];
	struct fb_agent_enc e;
	size_t n = strnlen(text, FB_AGENT_MAX_TEXT);

	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, flags);
	fb_enc_str(&e, text, n);
	return fbg_send(fd, FB_AGENT_OK, buf, e.len);
}

uint64_t fbg_boottime_ns(void)
{
	struct timespec ts = { 0 };

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* HELLO's payload: u32 version, u32 pid, u64 boottime_ns, str hostname. */
static void enc_hello(struct fb_agent_enc *e)
{
	char host[FB_AGENT_MAX_HOSTNAME + 1] = "";

	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[FB_AGENT_MAX_HOSTNAME] = '\0';
	fb_enc_u32(e, FB_AGENT_VERSION);
	fb_enc_u32(e, (uint32_t)getpid());
	fb_enc_u64(e, fbg_boottime_ns());
	fb_enc_str(e, host, strlen(host));
}

int fbg_send_hello(int fd)
{
	uint8_t buf[32 + FB_AGENT_MAX_HOSTNAME];
	struct fb_agent_enc e;

	fb_enc_init(&e, buf, sizeof(buf));
	enc_hello(&e);
	return fbg_send(fd, FB_AGENT_HELLO, buf, e.len);
}

/* Appends one whole frame to e: its header is filled in once the payload
 * is written and its length known. */
static void enc_frame_begin(struct fb_agent_enc *e, uint32_t *start)
{
	static const uint8_t hdr[FB_AGENT_HDR_LEN];

	*start = e->len;
	fb_enc_raw(e, hdr, sizeof(hdr));
}

static void enc_frame_end(struct fb_agent_enc *e, uint32_t start,
			  uint32_t type)
{
	if (!e->overflow)
		fb_agent_hdr_put(e->buf + start, type,
				 e->len - start - FB_AGENT_HDR_LEN);
}

int fbg_send_ready_hello(int fd, const uint64_t *boot_ns, uint32_t n)
{
	uint8_t buf[2 * FB_AGENT_HDR_LEN + 32 + FB_AGENT_MAX_HOSTNAME + 4 +
		    8 * FB_AGENT_MAX_BOOT_MARKS];
	struct fb_agent_enc e;
	uint32_t start;

	if (n > FB_AGENT_MAX_BOOT_MARKS)
		n = FB_AGENT_MAX_BOOT_MARKS;
	fb_enc_init(&e, buf, sizeof(buf));
	enc_frame_begin(&e, &start);
	enc_hello(&e);
	enc_frame_end(&e, start, FB_AGENT_HELLO);
	enc_frame_begin(&e, &start);
	fb_enc_u32(&e, n);
	for (uint32_t i = 0; i < n; i++)
		fb_enc_u64(&e, boot_ns[i]);
	enc_frame_end(&e, start, FB_AGENT_BOOT_TIMES);
	if (e.overflow)
		return -EMSGSIZE;
	return send_all(fd, buf, e.len);
}

int fbg_dec_path(int fd, struct fb_agent_dec *d, char *out, size_t size)
{
	uint32_t n;
	const char *s = fb_dec_str(d, FB_AGENT_MAX_PATH, &n);

	if (d->bad || n + 1 > size || !fb_agent_cstr(out, s, n)) {
		fbg_send_error(fd, EINVAL, "bad path field (at most %u bytes, "
			       "no NUL)", FB_AGENT_MAX_PATH);
		return -EINVAL;
	}
	if (out[0] != '/') {
		fbg_send_error(fd, EINVAL, "path \"%s\" is not absolute", out);
		return -EINVAL;
	}
	return 0;
}

/* ---- outgoing queue --------------------------------------------------- */

int fbg_out_init(struct fbg_out *o, size_t size)
{
	o->buf = malloc(size);
	o->off = o->len = 0;
	o->size = o->buf ? size : 0;
	return o->buf ? 0 : -ENOMEM;
}

void fbg_out_free(struct fbg_out *o)
{
	free(o->buf);
	o->buf = NULL;
	o->size = o->off = o->len = 0;
}

uint8_t *fbg_out_reserve(struct fbg_out *o, size_t n)
{
	if (o->size - o->len < n && o->off > 0) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	return o->size - o->len >= n ? o->buf + o->len : NULL;
}

void fbg_out_commit_frame(struct fbg_out *o, uint32_t type, uint32_t len)
{
	fb_agent_hdr_put(o->buf + o->len, type, len);
	o->len += FB_AGENT_HDR_LEN + len;
}

int fbg_out_frame(struct fbg_out *o, uint32_t type, const void *p, uint32_t len)
{
	uint8_t *dst = fbg_out_reserve(o, FB_AGENT_HDR_LEN + (size_t)len);

	if (!dst)
		return -ENOBUFS;
	if (len)
		memcpy(dst + FB_AGENT_HDR_LEN, p, len);
	fbg_out_commit_frame(o, type, len);
	return 0;
}

int fbg_out_flush(int fd, struct fbg_out *o)
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

int fbg_out_flush_all(int fd, struct fbg_out *o)
{
	int err;

	while ((err = fbg_out_flush(fd, o)) == 0 && fbg_out_pending(o))
		if ((err = fbg_wait(fd, POLLOUT)) < 0)
			break;
	return err;
}
