#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "box/control.h"
#include "devices/virtio/balloon.h"
#include "util/error.h"
#include "util/sock.h"
#include "util/file.h"
#include "vmm/vm.h"

#define SERVE_TIMEOUT_MS 5000
/* How long "stats" waits for the guest's fresh statistics before it
 * answers with the last ones (their age says so). */
#define STATS_WAIT_MS 1000

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

/* Reads one line (up to len - 1 bytes) with a deadline, keeping up to
 * max fds that come with it in fds (*nr_fds; the rest are closed). */
static int read_line(int fd, char *buf, size_t len, int *fds, unsigned max,
		     unsigned *nr_fds, int timeout_ms)
{
	size_t got = 0;

	*nr_fds = 0;
	while (got < len - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * (2 + FB_LAYERS_MAX))];
		} cm;
		struct iovec iov = { buf + got, len - 1 - got };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
		};
		char *nl;
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fb_errorf(-ETIMEDOUT, "no answer on the control "
					 "socket within %d ms", timeout_ms);
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		fb_take_fds(&msg, fds, max, nr_fds);
		if (n <= 0)
			break;
		nl = memchr(buf + got, '\n', (size_t)n);
		got += (size_t)n;
		if (nl) {
			got = (size_t)(nl - buf);
			break;
		}
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

_Static_assert(2 + FB_LAYERS_MAX <= FB_SOCK_MAX_FDS,
	       "a fork template's fds fit one message");

/* The reply line and the template's fds in one message: fds travel
 * with the first byte. */
static void serve_fork(struct fb_box_vm *b, int fd)
{
	struct fb_fork_template t;
	int fds[2 + FB_LAYERS_MAX];
	char line[256];
	unsigned n;
	int err = fb_box_vm_fork(b, &t);

	if (err < 0) {
		reply(fd, err, "");
		return;
	}
	fds[0] = t.state_fd;
	fds[1] = t.layout_fd;
	memcpy(fds + 2, t.layer_fds, t.nr_layers * sizeof(int));
	n = 2 + t.nr_layers;
	snprintf(line, sizeof(line), "ok paused_ms=%.2f layers=%u runs=%llu%s%s\n",
		 t.paused_ms, t.nr_layers, (unsigned long long)t.runs,
		 t.disk_frozen[0] ? " disk=" : "", t.disk_frozen);
	if (fb_send_with_fds(fd, line, strlen(line), fds, n) < 0)
		fprintf(stderr, "forkbox vmm: fork: sendmsg: %s\n",
			strerror(errno));
	fb_fork_template_close(&t);
}

static int no_balloon(void)
{
	return fb_errorf(-ENODEV, "this box has no balloon device (it was "
			 "restored from a snapshot made before boxes had "
			 "one)");
}

/* "balloon MIB": the balloon's new target size; the guest gets there in
 * its own time (stats shows how far it is). */
static int serve_balloon(struct fb_box_vm *b, const char *arg)
{
	char *end;
	unsigned long long mib;

	if (!b->vm->balloon)
		return no_balloon();
	errno = 0;
	mib = strtoull(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end || errno)
		return fb_errorf(-EINVAL, "balloon: '%.40s' is not a size in "
				 "MiB", arg);
	return fb_balloon_set_target(b->vm->balloon, mib);
}

/* Appends " key=value" to line; a line too long only loses its tail
 * (it is far shorter than the reply's limit). */
static void add_field(char *line, size_t len, const char *key, uint64_t v)
{
	size_t used = strlen(line);

	snprintf(line + used, len - used, "%s%s=%" PRIu64, used ? " " : "",
		 key, v);
}

/* "stats": one line of key=value: the balloon's target and actual size in
 * MiB, what it gave back, the guest's statistics (fresh if the guest
 * answers within STATS_WAIT_MS). The host's cost of the box is the
 * client's to add: this process's /proc is not in its jail. */
static void serve_stats(struct fb_box_vm *b, int fd)
{
	struct fb_balloon_info info;
	char line[2048] = "";

	if (!b->vm->balloon) {
		reply(fd, 0, "balloon=0");
		return;
	}
	/* Stale statistics are still statistics: their age tells. */
	(void)fb_balloon_refresh_stats(b->vm->balloon, STATS_WAIT_MS);
	fb_balloon_get(b->vm->balloon, &info);
	add_field(line, sizeof(line), "balloon", 1);
	add_field(line, sizeof(line), "driver", info.driver_ok);
	add_field(line, sizeof(line), "target_mib", info.target_pages >> 8);
	add_field(line, sizeof(line), "actual_mib", info.actual_pages >> 8);
	add_field(line, sizeof(line), "inflated_bytes", info.inflated_bytes);
	add_field(line, sizeof(line), "reported_bytes", info.reported_bytes);
	add_field(line, sizeof(line), "given_back_bytes",
		  info.inflated_bytes + info.reported_bytes);
	add_field(line, sizeof(line), "ignored", info.ignored);
	if (info.stats_age_ms >= 0)
		add_field(line, sizeof(line), "stats_age_ms",
			  (uint64_t)info.stats_age_ms);
	for (unsigned t = 0; t < FB_BALLOON_S_NR; t++)
		if (info.stats_valid & (1u << t))
			add_field(line, sizeof(line), fb_balloon_stat_key(t),
				  info.stats[t]);
	reply(fd, 0, line);
}

/* "paused" in the box directory while the user has it paused, so that
 * ps, exec and the daemon tell a paused box from a hung one. */
static void mark_paused(struct fb_box_vm *b, bool paused)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", b->dir, FB_BOX_PAUSED_NAME);
	if (!paused) {
		unlink(path);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static void serve_one(struct fb_box_vm *b, int fd)
{
	char req[FB_BOX_CONTROL_MAX_LINE], detail[256] = "";
	unsigned nr_fds;
	int err = read_line(fd, req, sizeof(req), NULL, 0, &nr_fds,
			    SERVE_TIMEOUT_MS);

	if (err < 0)
		return;
	if (!strcmp(req, "pause")) {
		err = b->user_paused ? 0 : fb_vm_pause(b->vm);
		if (!err) {
			b->user_paused = true;
			mark_paused(b, true);
		}
	} else if (!strcmp(req, "resume")) {
		if (b->user_paused)
			fb_vm_resume(b->vm);
		b->user_paused = false;
		mark_paused(b, false);
	}
	else if (!strncmp(req, "snapshot ", 9))
		err = fb_box_vm_snapshot(b, req + 9, detail, sizeof(detail));
	else if (!strcmp(req, "fork")) {
		serve_fork(b, fd);
		return;
	}
	else if (!strncmp(req, "balloon ", 8))
		err = serve_balloon(b, req + 8);
	else if (!strcmp(req, "stats")) {
		serve_stats(b, fd);
		return;
	}
	/* Into vmm.log (this process's stderr), where bug reports look. */
	else if (!strcmp(req, "debug"))
		fb_vm_debug(b->vm, stderr);
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

int fb_box_control_call_fds(const char *dir, const char *request, char *out,
			    size_t out_len, int *fds, unsigned max,
			    unsigned *nr_fds, int timeout_ms)
{
	char line[FB_BOX_CONTROL_MAX_LINE];
	struct sockaddr_un addr;
	int fd, err = control_addr(dir, &addr);

	*nr_fds = 0;
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
		err = read_line(fd, line, sizeof(line), fds, max, nr_fds,
				timeout_ms);
	close(fd);
	if (!err && !strncmp(line, "ok", 2)) {
		snprintf(out, out_len, "%s", line[2] ? line + 3 : "");
		return 0;
	}
	if (!err)
		err = !strncmp(line, "error ", 6) ?
		      fb_errorf(-EIO, "%s", line + 6) :
		      fb_errorf(-EPROTO, "unexpected control reply '%.60s'",
				line);
	for (unsigned i = 0; i < *nr_fds; i++)
		close(fds[i]);
	*nr_fds = 0;
	return err;
}

int fb_box_control_call(const char *dir, const char *request, char *out,
			size_t out_len, int timeout_ms)
{
	int fds[2 + FB_LAYERS_MAX];
	unsigned nr;
	int err = fb_box_control_call_fds(dir, request, out, out_len, fds,
					  2 + FB_LAYERS_MAX, &nr, timeout_ms);

	for (unsigned i = 0; i < nr; i++)
		close(fds[i]);
	return err;
}
