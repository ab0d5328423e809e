#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "box/control.h"
#include "util/error.h"
#include "util/file.h"
#include "vmm/vm.h"

#define SERVE_TIMEOUT_MS 5000

static int control_addr(const char *dir, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	return fb_fmt(addr->sun_path, sizeof(addr->sun_path), "%s/%s", dir,
		      FB_BOX_CONTROL_NAME);
}

int fb_box_control_listen(const char *dir)
{
	struct sockaddr_un addr;
	int fd, err = control_addr(dir, &addr);

	if (err < 0)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket: %s", strerror(errno));
	unlink(addr.sun_path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, 16) < 0) {
		err = fb_errorf(-errno, "bind/listen %s: %s", addr.sun_path,
				strerror(errno));
		close(fd);
		return err;
	}
	return fd;
}

/* Reads one line (up to len - 1 bytes) with a deadline. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fb_errorf(-ETIMEDOUT, "no answer on the control "
					 "socket within %d ms", timeout_ms);
		n = read(fd, buf + got, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = '\0';
	return got ? 0 : fb_errorf(-EPROTO, "empty control message");
}

static void reply(int fd, int err, const char *detail)
{
	char line[FB_BOX_CONTROL_MAX_LINE];

	if (err < 0)
		(void)fb_fmt(line, sizeof(line), "error %s\n", fb_last_error());
	else
		(void)fb_fmt(line, sizeof(line), "ok %s\n", detail);
	(void)fb_write_full(fd, line, strlen(line));
}

static void serve_one(struct fb_box_vm *b, int fd)
{
	char req[FB_BOX_CONTROL_MAX_LINE], detail[256] = "";
	int err = read_line(fd, req, sizeof(req), SERVE_TIMEOUT_MS);

	if (err < 0)
		return;
	if (!strcmp(req, "pause"))
		err = fb_vm_pause(b->vm);
	else if (!strcmp(req, "resume"))
		fb_vm_resume(b->vm);
	else if (!strncmp(req, "snapshot ", 9))
		err = fb_box_vm_snapshot(b, req + 9, detail, sizeof(detail));
	else
		err = fb_errorf(-EINVAL, "unknown control request '%.40s'",
				req);
	reply(fd, err, detail);
}

int fb_box_control_loop(struct fb_box_vm *b, int listen_fd, int stop_fd)
{
	struct pollfd p[3] = {
		{ .fd = b->exited_efd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
		{ .fd = listen_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fb_errorf(-errno, "poll: %s", strerror(errno));
		}
		if (p[0].revents)
			return 1;
		if (p[1].revents)
			return 0;
		if (p[2].revents) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				serve_one(b, fd);
				close(fd);
			}
		}
	}
}

int fb_box_control_call(const char *dir, const char *request, char *out,
			size_t out_len, int timeout_ms)
{
	char line[FB_BOX_CONTROL_MAX_LINE];
	struct sockaddr_un addr;
	int fd, err = control_addr(dir, &addr);

	if (err < 0)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = fb_errorf(-errno, "connect %s: %s (is the box running?)",
				addr.sun_path, strerror(errno));
		close(fd);
		return err;
	}
	err = fb_fmt(line, sizeof(line), "%s\n", request);
	if (!err && fb_write_full(fd, line, strlen(line)) < 0)
		err = fb_errorf(-errno, "write to %s: %s", addr.sun_path,
				strerror(errno));
	if (!err)
		err = read_line(fd, line, sizeof(line), timeout_ms);
	close(fd);
	if (err < 0)
		return err;
	if (!strncmp(line, "ok", 2)) {
		snprintf(out, out_len, "%s", line[2] ? line + 3 : "");
		return 0;
	}
	if (!strncmp(line, "error ", 6))
		return fb_errorf(-EIO, "%s", line + 6);
	return fb_errorf(-EPROTO, "unexpected control reply '%.60s'", line);
}
