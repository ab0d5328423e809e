/* Reaching the agent: the hybrid-vsock handshake on the box's Unix
 * socket, the HELLO every connection starts with, and the one-shot ready
 * connection the agent opens when it has booted. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "util/error.h"
#include "util/clock.h"
#include "util/sock.h"

#define HANDSHAKE_LINE_MAX 64 /* "OK 4294967295\n" with room to spare */

int fba_read_hello(int fd, int64_t deadline, struct fb_agent_hello *out)
{
	struct fb_agent_hello h = { 0 };
	struct fb_agent_dec d;
	struct fba_msg m;
	const char *name;
	uint32_t n;
	int err;

	err = fba_recv_reply(fd, &m, FB_AGENT_HELLO, 64 + FB_AGENT_MAX_HOSTNAME,
			     deadline, "agent HELLO");
	if (err)
		return err;
	fb_dec_init(&d, m.data, m.len);
	h.version = fb_dec_u32(&d);
	h.pid = fb_dec_u32(&d);
	h.boottime_ns = fb_dec_u64(&d);
	name = fb_dec_str(&d, FB_AGENT_MAX_HOSTNAME, &n);
	if (!fb_dec_ok(&d) || !fb_agent_cstr(h.hostname, name, n))
		err = fb_errorf(-EPROTO, "agent HELLO: malformed");
	else if (h.version != FB_AGENT_VERSION)
		err = fb_errorf(-EPROTONOSUPPORT, "agent speaks protocol version "
				"%u, this forkbox speaks %u: rebuild the initramfs",
				h.version, FB_AGENT_VERSION);
	fba_msg_free(&m);
	if (!err && out)
		*out = h;
	return err;
}

int fb_agent_handshake(int fd, int timeout_ms, struct fb_agent_hello *hello)
{
	return fba_read_hello(fd, fba_deadline(timeout_ms), hello);
}

/* The VMM closes a CONNECT that the guest neither took nor refused
 * within its handshake limit (seconds); an RST comes at once. */
#define REFUSED_AT_ONCE_MS 2000

/* Reads "OK <hostport>\n" a byte at a time: what follows the newline is
 * the agent's HELLO, which must stay in the socket. */
static int read_ok_line(int fd, int64_t deadline, const char *path, uint32_t port)
{
	char line[HANDSHAKE_LINE_MAX + 1];
	double started = fb_now_ms();
	size_t len = 0;
	int err;

	while (len < HANDSHAKE_LINE_MAX) {
		ssize_t n = recv(fd, line + len, 1, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EWOULDBLOCK) {
			err = fba_wait(fd, POLLIN, deadline);
			if (err == -ETIMEDOUT)
				return fb_errorf(err, "%s: no answer to CONNECT %u "
						 "in time", path, port);
			if (err)
				return fb_errorf(err, "%s: poll: %s", path,
						 strerror(-err));
			continue;
		}
		if (n < 0)
			return fb_errorf(-errno, "%s: recv: %s", path, strerror(errno));
		if (n == 0 && fb_now_ms() - started > REFUSED_AT_ONCE_MS)
			return fb_errorf(-ETIMEDOUT, "%s: the guest did not answer "
					 "CONNECT %u (the VMM gave up after %.0f "
					 "ms)", path, port, fb_now_ms() - started);
		if (n == 0)
			return fb_errorf(-ECONNREFUSED, "%s: nothing listens on "
					 "guest vsock port %u (is the agent up?)",
					 path, port);
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	if (len == HANDSHAKE_LINE_MAX || strncmp(line, "OK ", 3) != 0 ||
	    strspn(line + 3, "0123456789") != len - 3 || len == 3)
		return fb_errorf(-EPROTO, "%s: CONNECT %u answered \"%.*s\"",
				 path, port, 32, line);
	return 0;
}

int fb_agent_connect(const char *uds_path, uint32_t port, int timeout_ms)
{
	struct sockaddr_un addr;
	int64_t deadline = fba_deadline(timeout_ms);
	struct timeval tv = { 0 };
	char cmd[32];
	int fd, err = fb_unix_addr(&addr, uds_path);

	if (err < 0)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket(AF_UNIX): %s", strerror(errno));
	/* A Unix connect waits only when the listener's backlog is full,
	 * and then honours SO_SNDTIMEO: that bounds it by the deadline. */
	if (timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000 + (timeout_ms == 0);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = fb_errorf(errno == EAGAIN ? -ETIMEDOUT : -errno,
				"connect %s: %s", uds_path, strerror(errno));
		goto fail;
	}
	tv = (struct timeval){ 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(cmd, sizeof(cmd), "CONNECT %u\n", port);
	err = fba_send_raw(fd, cmd, strlen(cmd), deadline, uds_path);
	if (!err)
		err = read_ok_line(fd, deadline, uds_path, port);
	if (!err)
		return fd;
fail:
	close(fd);
	return err;
}

int fb_agent_dial(const char *uds_path, uint32_t port, int timeout_ms,
		  struct fb_agent_hello *hello)
{
	int64_t deadline = fba_deadline(timeout_ms);
	int fd = fb_agent_connect(uds_path, port, timeout_ms);
	int err;

	if (fd < 0)
		return fd;
	err = fba_read_hello(fd, deadline, hello);
	if (!err)
		return fd;
	close(fd);
	return err;
}

/* BOOT_TIMES: u32 count, count x u64. Marks past the ones this host knows
 * are a newer agent's: read, not kept. */
static int read_boot_times(int fd, int64_t deadline, struct fb_agent_boot *out)
{
	struct fb_agent_boot boot = { 0 };
	struct fb_agent_dec d;
	struct fba_msg m;
	uint32_t n;
	int err;

	err = fba_recv_reply(fd, &m, FB_AGENT_BOOT_TIMES,
			     4 + 8 * FB_AGENT_MAX_BOOT_MARKS, deadline,
			     "agent BOOT_TIMES");
	if (err == -ECONNRESET) {
		/* An older agent: it closed after its HELLO. */
		*out = boot;
		return 0;
	}
	if (err)
		return err;
	fb_dec_init(&d, m.data, m.len);
	n = fb_dec_u32(&d);
	if (n > FB_AGENT_MAX_BOOT_MARKS)
		d.bad = true;
	for (uint32_t i = 0; i < n && !d.bad; i++) {
		uint64_t ns = fb_dec_u64(&d);

		if (i < FB_AGENT_BOOT_MARKS)
			boot.ns[i] = ns;
	}
	fba_msg_free(&m);
	if (!fb_dec_ok(&d))
		return fb_errorf(-EPROTO, "agent BOOT_TIMES: malformed");
	*out = boot;
	return 0;
}

/* Accepts the agent's ready connection within the deadline. */
static int accept_ready_conn(int listen_fd, int64_t deadline, int timeout_ms)
{
	int fd, err;

	for (;;) {
		err = fba_wait(listen_fd, POLLIN, deadline);
		if (err == -ETIMEDOUT)
			return fb_errorf(err, "the guest agent did not say hello "
					 "within %d ms (see the console log)",
					 timeout_ms);
		if (err)
			return fb_errorf(err, "poll: %s", strerror(-err));
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			return fb_errorf(-errno, "accept: %s", strerror(errno));
	}
}

int fb_agent_accept_ready(int listen_fd, int timeout_ms,
			  struct fb_agent_hello *hello,
			  struct fb_agent_boot *boot)
{
	int64_t deadline = fba_deadline(timeout_ms);
	int fd, err;

	fd = accept_ready_conn(listen_fd, deadline, timeout_ms);
	if (fd < 0)
		return fd;
	err = fba_read_hello(fd, deadline, hello);
	if (!err && boot)
		err = read_boot_times(fd, deadline, boot);
	close(fd);
	return err;
}

int fb_agent_accept_hello(int listen_fd, int timeout_ms,
			  struct fb_agent_hello *out)
{
	return fb_agent_accept_ready(listen_fd, timeout_ms, out, NULL);
}
