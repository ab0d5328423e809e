/* PID 1's agent loop (guest only): load the virtio and vsock modules,
 * switch into the root disk if there is one, listen on vsock port
 * FB_AGENT_PORT, tell the host we are ready (and when each step was
 * done: BOOT_TIMES), then serve connections forever, each by
 * fb_agent_serve() in a child process of its own (but the re-stamp
 * port's, served here), and reap every child (orphans included) from a
 * signalfd. Nothing here waits on a timer: poll wakes on a connection,
 * a SIGCHLD or a spare server's word.
 *
 * The child for the next connection is forked ahead of it (the spare):
 * it waits in accept itself, so a connection is answered without a fork
 * in its way. That matters most in a fork child, whose guest pays
 * copy-on-write faults for every page a fork touches (in the lab the
 * HELLO came ~30 ms later when PID 1 forked on accept). The spare says
 * when its request is under way, and PID 1 forks the next. */
#include <errno.h>
#include <fcntl.h>
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

/* A spare that dies this many times in a row without taking a
 * connection is not forked again: PID 1 accepts and forks itself. */
#define SPARE_MAX_FAILURES 3

static int log_fd = -1;
static int restamp_fd = -1; /* a server child has no use for it */
/* A spare writes its pid here when its request is under way. */
static int spare_pipe[2] = { -1, -1 };
static pid_t spare_pid; /* the server waiting in accept, or 0 */
static unsigned spare_failures;

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

/* What a server child inherits from PID 1 and has no use for. */
static void server_child_setup(int sig_fd)
{
	sigset_t none;

	close(sig_fd);
	if (restamp_fd >= 0)
		close(restamp_fd);
	if (spare_pipe[0] >= 0)
		close(spare_pipe[0]);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void serve_child(int conn, int listen_fd, int sig_fd)
{
	server_child_setup(sig_fd);
	if (spare_pipe[1] >= 0)
		close(spare_pipe[1]);
	close(listen_fd);
	_exit(fb_agent_serve(conn) < 0 ? 1 : 0);
}

static void spare_under_way(void *opaque)
{
	pid_t self = getpid();

	(void)opaque;
	/* A pipe write of 4 bytes is atomic; PID 1 never lets it fill. */
	if (write(spare_pipe[1], &self, sizeof(self)) != sizeof(self))
		fbg_log("tell PID 1 a spare was taken: %s", strerror(errno));
	close(spare_pipe[1]);
}

static void __attribute__((noreturn)) spare_main(int listen_fd, int sig_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	struct fbg_serve_hook hook = { .under_way = spare_under_way };

	server_child_setup(sig_fd);
	for (;;) {
		int conn;

		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			fbg_log("spare: poll: %s", strerror(errno));
			_exit(1);
		}
		conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				continue;
			fbg_log("spare: accept: %s", strerror(errno));
			_exit(1);
		}
		close(listen_fd);
		_exit(fb_agent_serve_hooked(conn, &hook) < 0 ? 1 : 0);
	}
}

/* A failed fork leaves spare_pid 0: PID 1 then accepts itself. */
static void fork_spare(int listen_fd, int sig_fd)
{
	pid_t pid;

	if (spare_pid || spare_pipe[1] < 0 ||
	    spare_failures >= SPARE_MAX_FAILURES)
		return;
	pid = fork();
	if (pid == 0)
		spare_main(listen_fd, sig_fd);
	if (pid < 0)
		fbg_log("fork a spare server: %s", strerror(errno));
	else
		spare_pid = pid;
}

static void read_spare_news(void)
{
	pid_t pid;

	while (read(spare_pipe[0], &pid, sizeof(pid)) == sizeof(pid)) {
		if (pid == spare_pid) {
			spare_pid = 0;
			spare_failures = 0;
		}
	}
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

/* After read_spare_news: a spare that took a connection said so before
 * it could exit, so one reaped while still the spare never took one. */
static void reap_all(int sig_fd)
{
	struct signalfd_siginfo si;
	pid_t pid;

	while (read(sig_fd, &si, sizeof(si)) > 0)
		;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		if (pid == spare_pid) {
			spare_pid = 0;
			if (++spare_failures == SPARE_MAX_FAILURES)
				fbg_log("spare servers keep dying; forking "
					"one per connection instead");
		}
	}
}

void fb_agent_run(int console_fd, const char *root_dev,
		  uint64_t boot_ns[FB_AGENT_BOOT_MARKS])
{
	struct pollfd p[4];
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
	/* Without it PID 1 forks on accept, as it does when a spare
	 * cannot be forked. */
	if (pipe2(spare_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		fbg_log("pipe for spare servers: %s", strerror(errno));
	fork_spare(listen_fd, sig_fd);
	say_ready(boot_ns);
	fbg_log("ready on vsock port %u", FB_AGENT_PORT);

	p[1] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	/* poll skips a negative fd. */
	p[2] = (struct pollfd){ .fd = restamp_fd, .events = POLLIN };
	p[3] = (struct pollfd){ .fd = spare_pipe[0], .events = POLLIN };
	for (;;) {
		/* With a spare waiting, the connection is its to take. */
		p[0] = (struct pollfd){ .fd = spare_pid ? -1 : listen_fd,
					.events = POLLIN };
		if (poll(p, 4, -1) < 0) {
			if (errno != EINTR)
				fbg_log("poll: %s", strerror(errno));
			continue;
		}
		if (p[3].revents)
			read_spare_news();
		if (p[1].revents)
			reap_all(sig_fd);
		if (p[2].revents)
			restamp_all();
		if (p[0].revents)
			accept_all(listen_fd, sig_fd);
		fork_spare(listen_fd, sig_fd);
	}
}
