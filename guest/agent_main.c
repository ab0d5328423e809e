/* PID 1's agent loop (guest only): load the virtio and vsock modules,
 * switch into the root disk if there is one, listen on vsock port
 * FB_AGENT_PORT, tell the host we are ready (and when each step was
 * done: BOOT_TIMES), then
 * accept connections forever, each served by fb_agent_serve() in a child
 * process of its own (but the re-stamp port's, served here), and reap
 * every child (orphans included) from a signalfd. Nothing here waits on
 * a timer: poll wakes on a connection or a SIGCHLD. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

#define MODULES_DIR "/lib/modules"
#define LISTEN_BACKLOG 128
/* The host sends its REINJECT right after connecting: a peer that stalls
 * holds up PID 1's loop no longer than this. Not shorter: a guest starved
 * of CPU (a hundred boxes on two emulated CPUs) may wake past a short
 * limit before it has read what the host sent in time; the host waits
 * as long for the guest. */
#define RESTAMP_IO_TIMEOUT_S 30

static int log_fd = -1;
static int restamp_fd = -1; /* a server child has no use for it */

void fbg_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t len;

	snprintf(line, sizeof(line), "forkbox-agent: ");
	len = strlen(line);
	va_start(ap, fmt);
	vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n'; /* room kept by the - 1 above */
	if (log_fd >= 0 && write(log_fd, line, len) < 0)
		log_fd = -1;
}

static void __attribute__((noreturn)) give_up(void)
{
	/* Without vsock nobody can reach us: stop the VM so the host sees
	 * it at once (with this line on the console) rather than waiting
	 * out its deadline. */
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static int vsock_listen(unsigned port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		fbg_log("socket(AF_VSOCK): %s (is vmw_vsock_virtio_transport "
			"loaded and a virtio-vsock device present?)", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		fbg_log("listen on vsock port %u: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The host listens before it boots us, so one try is enough; on failure
 * the host times out and shows this line from the console. The boot marks
 * follow the HELLO for the host's boot trace (forkbox run --trace); a host
 * from before them closes after the HELLO and never reads them. */
static void say_ready(const uint64_t boot_ns[FB_AGENT_BOOT_MARKS])
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_cid = FB_AGENT_HOST_CID,
		.svm_port = FB_AGENT_READY_PORT,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fbg_log("connect to host port %u: %s", FB_AGENT_READY_PORT,
			strerror(errno));
	} else if ((err = fbg_send_ready_hello(fd, boot_ns,
					       FB_AGENT_BOOT_MARKS)) < 0) {
		fbg_log("send HELLO to the host: %s", strerror(-err));
	}
	if (fd >= 0)
		close(fd);
}

static void serve_child(int conn, int listen_fd, int sig_fd)
{
	sigset_t none;

	close(listen_fd);
	close(sig_fd);
	if (restamp_fd >= 0)
		close(restamp_fd);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	_exit(fb_agent_serve(conn) < 0 ? 1 : 0);
}

static void accept_all(int listen_fd, int sig_fd)
{
	for (;;) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (conn < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fbg_log("accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		pid = fork();
		if (pid == 0)
			serve_child(conn, listen_fd, sig_fd);
		if (pid < 0)
			fbg_log("fork: %s", strerror(errno));
		close(conn);
	}
}

/* Re-stamps, served here: no fork (whose copy-on-write faults a just-
 * forked guest would pay first thing), bounded by socket timeouts. */
static void restamp_all(void)
{
	const struct timeval tv = { .tv_sec = RESTAMP_IO_TIMEOUT_S };

	for (;;) {
		int conn = accept4(restamp_fd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				fbg_log("accept on port %u: %s",
					FB_AGENT_RESTAMP_PORT, strerror(errno));
			return;
		}
		setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (fb_agent_serve_restamp(conn) < 0)
			fbg_log("re-stamp connection failed");
		close(conn);
	}
}

static void reap_all(int sig_fd)
{
	struct signalfd_siginfo si;

	while (read(sig_fd, &si, sizeof(si)) > 0)
		;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

void fb_agent_run(int console_fd, const char *root_dev,
		  uint64_t boot_ns[FB_AGENT_BOOT_MARKS])
{
	struct pollfd p[3];
	sigset_t chld;
	int listen_fd, sig_fd;

	log_fd = console_fd;
	fbg_load_modules(MODULES_DIR);
	boot_ns[FB_AGENT_BOOT_MODULES] = fbg_boottime_ns();
	if (root_dev[0]) {
		if (fbg_switch_root(root_dev) < 0)
			give_up();
		boot_ns[FB_AGENT_BOOT_ROOT] = fbg_boottime_ns();
	}
	listen_fd = vsock_listen(FB_AGENT_PORT);
	if (listen_fd < 0)
		give_up();
	/* Without it the host re-stamps through FB_AGENT_PORT: slower,
	 * not broken. */
	restamp_fd = vsock_listen(FB_AGENT_RESTAMP_PORT);
	/* PID 1 blocked SIGCHLD at start, so no exit is lost before this. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0) {
		fbg_log("signalfd: %s", strerror(errno));
		give_up();
	}
	say_ready(boot_ns);
	fbg_log("ready on vsock port %u", FB_AGENT_PORT);

	p[0] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	/* poll skips a negative fd. */
	p[2] = (struct pollfd){ .fd = restamp_fd, .events = POLLIN };
	for (;;) {
		if (poll(p, 3, -1) < 0) {
			if (errno != EINTR)
				fbg_log("poll: %s", strerror(errno));
			continue;
		}
		if (p[1].revents)
			reap_all(sig_fd);
		if (p[2].revents)
			restamp_all();
		if (p[0].revents)
			accept_all(listen_fd, sig_fd);
	}
}
