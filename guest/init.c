/* forkbox-init: the guest's PID 1.
 *
 * Mounts the basic filesystems, reads the command from the kernel command
 * line (see forkbox/guest_proto.h), runs it and powers the VM off. With
 * forkbox.agent=1 it runs the vsock agent instead (guest/agent.h), which
 * serves commands and files from the host until the VM stops. In frame
 * mode (forkbox.out=TTY) the command's output and exit status travel to the
 * host as frames on that tty; in console mode they go to /dev/console as
 * text lines, which is how the same initramfs runs under QEMU for
 * benchmarks; with no command at all it starts a shell for debugging.
 *
 * PID 1 must never exit: the kernel panics when it does. Every path ends in
 * power_off(), which does not return.
 *
 * Static: libc, Linux headers, guest_proto.h and the agent (guest/agent*). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "forkbox/guest_proto.h"
#include "util/le.h"

/* Docker-style statuses, as the host's CLI reports them. */
#define EXIT_OWN_ERROR 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127
#define EXIT_SIGNAL_BASE 128

#define CMDLINE_MAX (64 * 1024) /* x86 allows 2 KiB; room to spare */
#define TTY_NAME_MAX 32
#define MSG_MAX 512
#define HOSTNAME "forkbox"
#define DEFAULT_PATH "/bin:/sbin:/usr/bin:/usr/sbin"

struct boot_config {
	char **argv;                /* NULL: no forkbox.cmd, debug shell */
	char out_tty[TTY_NAME_MAX]; /* "": console mode */
	bool agent;                 /* forkbox.agent=1: serve over vsock */
	char root_dev[TTY_NAME_MAX];/* forkbox.root=vda, or "" */
};

static int console_fd = -1;
static int frame_fd = -1;     /* open in frame mode until a write fails */
static bool frame_mode;
static sigset_t sigchld_set;
/* The first failure before the frame tty was open, for the user's stderr. */
static char early_error[MSG_MAX + 32];

/* ---- messages --------------------------------------------------------- */

/* A line on the console; through the kernel log when there is no console,
 * so it still shows on whatever the kernel prints to. */
static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char line[MSG_MAX];
	va_list ap;
	size_t len;
	int kmsg;

	snprintf(line, sizeof(line), "%sforkbox-init: ",
		 console_fd >= 0 ? "" : "<3>");
	len = strlen(line);
	va_start(ap, fmt);
	vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n'; /* room kept by the - 1 above */
	if (console_fd >= 0) {
		fbg_write_all(console_fd, line, len);
		return;
	}
	kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kmsg >= 0) {
		fbg_write_all(kmsg, line, len);
		close(kmsg);
	}
}

/* Splits data into frames of at most FB_FRAME_MAX_PAYLOAD bytes; an empty
 * payload still sends one frame. */
static void send_frame(enum fb_frame_type type, const void *data, size_t len)
{
	static unsigned char buf[FB_FRAME_HDR_LEN + FB_FRAME_MAX_PAYLOAD];
	const unsigned char *p = data;
	int err;

	do {
		size_t chunk = len < FB_FRAME_MAX_PAYLOAD ? len : FB_FRAME_MAX_PAYLOAD;

		if (frame_fd < 0)
			return;
		buf[0] = (unsigned char)type;
		fb_put_le32(buf + 1, (uint32_t)chunk);
		if (chunk)
			memcpy(buf + FB_FRAME_HDR_LEN, p, chunk);
		err = fbg_write_all(frame_fd, buf, FB_FRAME_HDR_LEN + chunk);
		if (err) {
			/* Keep running: the command's pipes must still drain. */
			say("write to frame tty: %s", strerror(-err));
			frame_fd = -1;
			return;
		}
		if (chunk) {
			p += chunk;
			len -= chunk;
		}
	} while (len > 0);
}

/* Text for the user's stderr: a STDERR frame, or the console. */
static void tell_user(const char *text)
{
	if (frame_mode)
		send_frame(FB_FRAME_STDERR, text, strlen(text));
	else if (console_fd >= 0)
		fbg_write_all(console_fd, text, strlen(text));
}

/* forkbox's own failure: on the console and on the user's stderr. */
static void __attribute__((format(printf, 1, 2))) own_error(const char *fmt, ...)
{
	char msg[MSG_MAX];
	char line[MSG_MAX + 32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say("%s", msg);
	snprintf(line, sizeof(line), "forkbox-init: %s\n", msg);
	if (frame_mode)
		tell_user(line);
	else if (!early_error[0])
		snprintf(early_error, sizeof(early_error), "%s", line);
}

static void report_exit(int status)
{
	unsigned char le[4];
	char line[64];

	if (frame_mode) {
		fb_put_le32(le, (uint32_t)status);
		send_frame(FB_FRAME_EXIT, le, sizeof(le));
	} else if (console_fd >= 0) {
		snprintf(line, sizeof(line), "forkbox-exit: %d\n", status);
		fbg_write_all(console_fd, line, strlen(line));
	}
}

/* ---- power off -------------------------------------------------------- */

static void __attribute__((noreturn)) power_off(void)
{
	/* The host reads frames until the VM stops: let the UART empty. */
	if (frame_fd >= 0)
		tcdrain(frame_fd);
	if (console_fd >= 0)
		tcdrain(console_fd);
	sync();
	reboot(RB_POWER_OFF);
	say("reboot(RB_POWER_OFF): %s", strerror(errno));
	for (;;)
		pause();
}

static void __attribute__((noreturn)) fail_before_command(void)
{
	if (frame_mode && early_error[0])
		tell_user(early_error);
	report_exit(EXIT_OWN_ERROR);
	power_off();
}

/* ---- early setup ------------------------------------------------------ */

/* Fills closed fds 0-2 with path, so that no later open or pipe lands on
 * them and a child's dup2 onto 0-2 cannot collide with its source fd. */
static void ensure_stdio(const char *path)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open(path, O_RDWR | O_NOCTTY) < 0)
			return;
	}
}

static void open_console(void)
{
	if (console_fd < 0)
		console_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
}

struct mount_point {
	const char *fstype;
	const char *target;
	mode_t mode;
	unsigned long flags;
	const char *data;
};

static const struct mount_point basic_mounts[] = {
	{ "proc", "/proc", 0555, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", 0555, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devtmpfs", "/dev", 0755, MS_NOSUID, "mode=0755" },
	{ "tmpfs", "/tmp", 01777, MS_NOSUID | MS_NODEV, "mode=1777" },
	/* Runtime state (the agent's box id among it) is never the root
	 * disk's: a write there would journal, flush and copy clusters up
	 * into the box's layer, on a fork child's way to ready too. */
	{ "tmpfs", "/run", 0755, MS_NOSUID | MS_NODEV, "mode=0755" },
};

/* What udev would add to /dev: scripts write to /dev/stderr. */
static const char *const dev_links[][2] = {
	{ "/proc/self/fd", "/dev/fd" },
	{ "/proc/self/fd/0", "/dev/stdin" },
	{ "/proc/self/fd/1", "/dev/stdout" },
	{ "/proc/self/fd/2", "/dev/stderr" },
};

static int mount_basics(void)
{
	size_t i;

	for (i = 0; i < sizeof(basic_mounts) / sizeof(basic_mounts[0]); i++) {
		const struct mount_point *m = &basic_mounts[i];

		if (mkdir(m->target, m->mode) < 0 && errno != EEXIST) {
			own_error("mkdir %s: %s", m->target, strerror(errno));
			return -1;
		}
		/* EBUSY: the kernel mounted it already (DEVTMPFS_MOUNT). */
		if (mount(m->fstype, m->target, m->fstype, m->flags, m->data) < 0 &&
		    errno != EBUSY) {
			own_error("mount %s on %s: %s", m->fstype, m->target,
				  strerror(errno));
			return -1;
		}
	}
	for (i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++)
		if (symlink(dev_links[i][0], dev_links[i][1]) < 0 && errno != EEXIST)
			say("symlink %s: %s", dev_links[i][1], strerror(errno));
	return 0;
}

/* Docker gives a command without a tty no TERM; the console is one. */
static void set_environment(bool on_console)
{
	clearenv();
	setenv("PATH", DEFAULT_PATH, 1);
	setenv("HOME", "/root", 1);
	if (on_console)
		setenv("TERM", "linux", 1);
	if (chdir("/") < 0)
		say("chdir /: %s", strerror(errno));
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0)
		say("sethostname: %s", strerror(errno));
}

/* ---- kernel command line ---------------------------------------------- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex holds the bytes of every argument, each followed by a NUL. */
static int decode_cmd(const char *hex, size_t hex_len, char ***argv_out)
{
	size_t n = hex_len / 2, i, argc = 0;
	char *bytes, **argv, *arg;

	if (hex_len == 0) {
		own_error("forkbox.cmd is empty");
		return -1;
	}
	if (hex_len % 2) {
		own_error("forkbox.cmd has an odd number of hex digits");
		return -1;
	}
	bytes = malloc(n);
	if (!bytes) {
		own_error("decode forkbox.cmd: out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			own_error("forkbox.cmd: bad hex digit at offset %zu",
				  hi < 0 ? 2 * i : 2 * i + 1);
			free(bytes);
			return -1;
		}
		bytes[i] = (char)(hi << 4 | lo);
		argc += bytes[i] == '\0';
	}
	if (bytes[n - 1] != '\0') {
		own_error("forkbox.cmd: last argument is not NUL-terminated");
		free(bytes);
		return -1;
	}
	if (bytes[0] == '\0') {
		own_error("forkbox.cmd: the command name is empty");
		free(bytes);
		return -1;
	}
	argv = calloc(argc + 1, sizeof(*argv));
	if (!argv) {
		own_error("decode forkbox.cmd: out of memory");
		free(bytes);
		return -1;
	}
	for (i = 0, arg = bytes; i < argc; i++, arg += strlen(arg) + 1)
		argv[i] = arg;
	*argv_out = argv; /* bytes lives as long as argv: until power off */
	return 0;
}

static bool valid_tty_name(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len >= TTY_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' &&
		    name[i] != '-')
			return false;
	return true;
}

static char *read_cmdline(void)
{
	char *buf = malloc(CMDLINE_MAX + 1);
	size_t len = 0;
	int fd;

	if (!buf) {
		own_error("read /proc/cmdline: out of memory");
		return NULL;
	}
	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		own_error("open /proc/cmdline: %s", strerror(errno));
		free(buf);
		return NULL;
	}
	while (len < CMDLINE_MAX) {
		ssize_t n = read(fd, buf + len, CMDLINE_MAX - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			own_error("read /proc/cmdline: %s", strerror(errno));
			close(fd);
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* Fills cfg->out_tty before anything can fail on forkbox.cmd, so that even
 * a bad command gets its EXIT frame. */
static int parse_cmdline(struct boot_config *cfg)
{
	const size_t cmd_key = strlen(FB_CMDLINE_CMD);
	const size_t out_key = strlen(FB_CMDLINE_OUT);
	const size_t agent_key = strlen(FB_CMDLINE_AGENT);
	const size_t root_key = strlen(FB_CMDLINE_ROOT);
	const char *cmd = NULL, *out = NULL, *root = NULL, *p;
	size_t root_len = 0;
	size_t cmd_len = 0, out_len = 0;
	char *line = read_cmdline();

	if (!line)
		return -1;
	/* Later keys override earlier ones, as for kernel parameters. What
	 * follows "--" belongs to init's argv, not to the parameters. */
	for (p = line; *p;) {
		size_t len;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		if (len == 0)
			break;
		if (len == 2 && strncmp(p, "--", 2) == 0)
			break;
		if (len >= cmd_key && strncmp(p, FB_CMDLINE_CMD, cmd_key) == 0) {
			cmd = p + cmd_key;
			cmd_len = len - cmd_key;
		} else if (len >= out_key && strncmp(p, FB_CMDLINE_OUT, out_key) == 0) {
			out = p + out_key;
			out_len = len - out_key;
		} else if (len >= agent_key &&
			   strncmp(p, FB_CMDLINE_AGENT, agent_key) == 0) {
			cfg->agent = len == agent_key + 1 && p[agent_key] == '1';
		} else if (len >= root_key &&
			   strncmp(p, FB_CMDLINE_ROOT, root_key) == 0) {
			root = p + root_key;
			root_len = len - root_key;
		}
		p += len;
	}
	if (out) {
		if (!valid_tty_name(out, out_len)) {
			own_error("forkbox.out: bad tty name \"%.*s\"",
				  (int)(out_len < TTY_NAME_MAX ? out_len : TTY_NAME_MAX),
				  out);
			return -1;
		}
		memcpy(cfg->out_tty, out, out_len);
		cfg->out_tty[out_len] = '\0';
	}
	if (root) {
		/* A device name only: it is pasted into "/dev/%s". */
		if (!valid_tty_name(root, root_len)) {
			own_error("forkbox.root: bad device name");
			return -1;
		}
		memcpy(cfg->root_dev, root, root_len);
		cfg->root_dev[root_len] = '\0';
	}
	if (cfg->agent)
		return 0; /* the agent takes its commands from vsock */
	if (cmd)
		return decode_cmd(cmd, cmd_len, &cfg->argv);
	if (out) {
		own_error("forkbox.out given without forkbox.cmd");
		return -1;
	}
	return 0; /* line stays allocated: cfg points into it */
}

/* Raw, so frame bytes pass unchanged: no CR/LF mapping, no echo, no
 * XON/XOFF or RTS/CTS, and CLOCAL so no modem line can block us. */
static int open_frame_tty(const char *name)
{
	char path[sizeof("/dev/") + TTY_NAME_MAX];
	struct termios tio;
	int fd;

	snprintf(path, sizeof(path), "/dev/%s", name);
	/* O_NONBLOCK: the open must not wait for carrier before CLOCAL. */
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		say("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (tcgetattr(fd, &tio) < 0) {
		say("tcgetattr %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	cfmakeraw(&tio);
	tio.c_cflag |= CLOCAL | CREAD;
	tio.c_cflag &= ~(tcflag_t)CRTSCTS;
	tio.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
	if (tcsetattr(fd, TCSANOW, &tio) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		say("set up %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- running the command ---------------------------------------------- */

static int docker_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return EXIT_SIGNAL_BASE + WTERMSIG(wstatus);
	return EXIT_OWN_ERROR;
}

/* Reaps every dead child (orphans are ours too); returns true once pid is
 * among them, with its wait status in *wstatus. */
static bool reap_children(pid_t pid, int *wstatus)
{
	bool found = false;
	pid_t dead;
	int st;

	while ((dead = waitpid(-1, &st, WNOHANG)) > 0) {
		if (dead == pid) {
			*wstatus = st;
			found = true;
		}
	}
	return found;
}

/* Blocks until pid exits, reaping orphans on the way. */
static int wait_for(pid_t pid)
{
	pid_t dead;
	int st;

	for (;;) {
		dead = waitpid(-1, &st, 0);
		if (dead == pid)
			return docker_status(st);
		if (dead < 0 && errno != EINTR) {
			own_error("waitpid: %s", strerror(errno));
			return EXIT_OWN_ERROR;
		}
	}
}

struct child_stdio {
	int out, err;     /* fds for the child's 1 and 2; stdin is /dev/null */
	const char *tty;  /* instead: a controlling tty for 0, 1 and 2 */
};

/* In the child between fork and exec: only async-signal-safe calls. Any
 * failure, exec's included, goes back to the parent as an errno. */
static void __attribute__((noreturn)) exec_child(char *const argv[],
	const struct child_stdio *io, int errno_fd)
{
	sigset_t none;
	int in, out = io->out, err = io->err, e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (io->tty) {
		in = open(io->tty, O_RDWR);
		if (in < 0)
			goto fail;
		/* Without it the shell only loses job control. */
		ioctl(in, TIOCSCTTY, 0);
		out = err = in;
	} else {
		in = open("/dev/null", O_RDONLY);
		if (in < 0)
			goto fail;
	}
	/* Sources are >= 3 (ensure_stdio) or already in place, so no dup2
	 * clobbers another's source. */
	if (dup2(out, 1) < 0 || dup2(err, 2) < 0 || dup2(in, 0) < 0)
		goto fail;
	execvp(argv[0], argv);
fail:
	e = errno;
	fbg_write_all(errno_fd, &e, sizeof(e));
	_exit(EXIT_NOT_FOUND);
}

/* Forks and execs; *exec_errno is 0 when the exec succeeded. */
static pid_t spawn(char *const argv[], const struct child_stdio *io,
		   int *exec_errno)
{
	int pfd[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		own_error("pipe2: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		own_error("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0)
		exec_child(argv, io, pfd[1]);
	close(pfd[1]);
	/* EOF: exec succeeded and closed the CLOEXEC write end. */
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	*exec_errno = n == (ssize_t)sizeof(e) ? e : 0;
	return pid;
}

/* Sends what the pipe holds now as frames; false at EOF or error. */
static bool pump(int fd, enum fb_frame_type type, size_t *budget)
{
	static char buf[FB_FRAME_MAX_PAYLOAD];
	size_t want = budget && *budget < sizeof(buf) ? *budget : sizeof(buf);
	ssize_t n;

	do
		n = read(fd, buf, want);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	send_frame(type, buf, (size_t)n);
	if (budget)
		*budget -= (size_t)n;
	return true;
}

/* After the command exits, everything it wrote is in the pipe (at most a
 * pipe's capacity), but a background grandchild may hold the pipe open
 * and keep writing: send what is there now, then stop. */
static void drain(int fd, enum fb_frame_type type)
{
	int cap;
	size_t budget;

	if (fd < 0)
		return;
	cap = fcntl(fd, F_GETPIPE_SZ);
	budget = cap > 0 ? (size_t)cap : 64 * 1024;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return;
	while (budget > 0 && pump(fd, type, &budget))
		;
}

/* Relays the command's stdout and stderr as frames until it exits, reaping
 * every child on the way; returns its docker-style status. */
static int relay(pid_t pid, int out_fd, int err_fd, int sig_fd)
{
	struct pollfd fds[3] = {
		{ .fd = out_fd, .events = POLLIN },
		{ .fd = err_fd, .events = POLLIN },
		{ .fd = sig_fd, .events = POLLIN },
	};
	static const enum fb_frame_type types[2] = { FB_FRAME_STDOUT,
						     FB_FRAME_STDERR };
	struct signalfd_siginfo si;
	int wstatus = 0, i, status;
	bool exited = false;

	while (!exited) {
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			own_error("poll: %s", strerror(errno));
			return wait_for(pid);
		}
		for (i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			if (!pump(fds[i].fd, types[i], NULL)) {
				close(fds[i].fd);
				fds[i].fd = -1; /* poll skips it */
			}
		}
		if (fds[2].revents) {
			while (read(sig_fd, &si, sizeof(si)) > 0)
				;
			exited = reap_children(pid, &wstatus);
		}
	}
	status = docker_status(wstatus);
	for (i = 0; i < 2; i++) {
		drain(fds[i].fd, types[i]);
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	}
	return status;
}

static int exec_failure_status(const char *name, int err)
{
	char msg[MSG_MAX];

	if (err == ENOENT) {
		snprintf(msg, sizeof(msg), "forkbox: %s: command not found\n", name);
		tell_user(msg);
		return EXIT_NOT_FOUND;
	}
	snprintf(msg, sizeof(msg), "forkbox: %s: cannot execute: %s\n", name,
		 strerror(err));
	tell_user(msg);
	return EXIT_CANNOT_EXEC;
}

static int run_command(char *const argv[])
{
	struct child_stdio io = { .out = console_fd, .err = console_fd };
	int out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int sig_fd = -1, exec_errno, status;
	pid_t pid;

	if (console_fd < 0)
		io.out = io.err = 1; /* ensure_stdio made it /dev/null */
	if (frame_mode) {
		sig_fd = signalfd(-1, &sigchld_set, SFD_NONBLOCK | SFD_CLOEXEC);
		if (sig_fd < 0) {
			own_error("signalfd: %s", strerror(errno));
			return EXIT_OWN_ERROR;
		}
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
			own_error("pipe2: %s", strerror(errno));
			return EXIT_OWN_ERROR;
		}
		io.out = out[1];
		io.err = err[1];
	}
	pid = spawn(argv, &io, &exec_errno);
	if (frame_mode) {
		close(out[1]);
		close(err[1]);
	}
	if (pid < 0)
		return EXIT_OWN_ERROR;
	status = frame_mode ? relay(pid, out[0], err[0], sig_fd) : wait_for(pid);
	if (sig_fd >= 0)
		close(sig_fd);
	if (exec_errno)
		status = exec_failure_status(argv[0], exec_errno);
	return status;
}

/* The tty behind /dev/console (the last of console/active), so the shell
 * gets a controlling tty and job control; /dev/console cannot be one. */
static void console_tty(char *path, size_t size)
{
	char active[256], *name;
	ssize_t n = -1;
	int fd = open("/sys/class/tty/console/active", O_RDONLY | O_CLOEXEC);

	snprintf(path, size, "/dev/console");
	if (fd >= 0) {
		n = read(fd, active, sizeof(active) - 1);
		close(fd);
	}
	if (n <= 0)
		return;
	active[n] = '\0';
	active[strcspn(active, "\n")] = '\0';
	name = strrchr(active, ' ');
	name = name ? name + 1 : active;
	if (valid_tty_name(name, strlen(name)))
		snprintf(path, size, "/dev/%s", name);
}

static int run_shell(void)
{
	static char *const argv[] = { "/bin/sh", NULL };
	char tty[sizeof("/dev/") + 256];
	struct child_stdio io = { .tty = tty };
	int exec_errno;
	pid_t pid;

	console_tty(tty, sizeof(tty));
	say("no forkbox.cmd: starting /bin/sh on %s; exit it to power off", tty);
	pid = spawn(argv, &io, &exec_errno);
	if (pid < 0)
		return EXIT_OWN_ERROR;
	if (exec_errno) {
		wait_for(pid);
		return exec_failure_status(argv[0], exec_errno);
	}
	return wait_for(pid);
}

int main(void)
{
	/* Boot marks for the host's trace: first, so PID 1's start is when
	 * the kernel handed over, not when our setup was done. */
	uint64_t boot_ns[FB_AGENT_BOOT_MARKS] = {
		[FB_AGENT_BOOT_INIT] = fbg_boottime_ns(),
	};
	struct boot_config cfg = { 0 };
	int mounted, parsed, status;

	ensure_stdio("/dev/console");
	open_console();
	umask(022);
	/* Blocked from the start so no SIGCHLD is lost before the signalfd
	 * exists; children unblock it before exec. */
	sigemptyset(&sigchld_set);
	sigaddset(&sigchld_set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigchld_set, NULL);

	mounted = mount_basics();
	boot_ns[FB_AGENT_BOOT_MOUNTED] = fbg_boottime_ns();
	ensure_stdio("/dev/null");
	open_console();
	parsed = mounted == 0 ? parse_cmdline(&cfg) : -1;
	if (cfg.out_tty[0]) {
		frame_fd = open_frame_tty(cfg.out_tty);
		if (frame_fd < 0)
			power_off(); /* nowhere to report to but the console */
		frame_mode = true;
		send_frame(FB_FRAME_INIT, NULL, 0);
	}
	if (mounted < 0 || parsed < 0)
		fail_before_command();

	/* The agent's commands get TERM only with a tty they asked for. */
	set_environment(!frame_mode && !cfg.agent);
	if (cfg.agent)
		fb_agent_run(console_fd, cfg.root_dev, boot_ns); /* no return */
	if (!frame_mode)
		say("ready");
	status = cfg.argv ? run_command(cfg.argv) : run_shell();
	report_exit(status);
	power_off();
}
