/* EXEC: spawn a command with pipes (or one pty) and relay its streams
 * both ways until it exits.
 *
 * One poll loop, never blocking on any single peer: output frames queue
 * in a bounded buffer (when it is full we stop reading the command, which
 * then blocks on its own pipe), stdin bytes queue in another (when it is
 * full we stop reading the host, whose writes then block). Neither side
 * can make us allocate without bound or miss the timeout. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define STDIN_CAP (256u * 1024u) /* held for a slow reader before backpressure */
#define OUT_CAP (256u * 1024u)   /* queued output before backpressure */
#define OUT_SIZE (OUT_CAP + 4u * (FB_AGENT_HDR_LEN + FB_AGENT_CHUNK))
#define ENV_BASE_MAX 4096u       /* entries taken from our own environment */
#define DRAIN_PTY_BUDGET (1u << 20)
#define SIG_MAX 64

#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

enum start_stage { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };

struct start_report {
	int stage, err;
};

struct exec_req {
	uint32_t flags, timeout_ms, rows, cols;
	char *cwd;
	char **argv, **env, **envp; /* envp: ours overlaid with env */
	uint32_t argc, envc;
	char *strings;              /* backing store of every string */
};

struct exec_state {
	int conn;
	struct exec_req *req;
	bool tty;
	pid_t pid;
	int pidfd;
	int in_fd;              /* STDIN goes here: pipe, pty master, or -1 */
	int out_fd, err_fd;     /* pipe read ends (or the master), -1 at EOF */
	uint8_t *in_buf;        /* stdin the command has not taken yet */
	size_t in_len;
	bool in_eof;            /* STDIN_EOF came: close in_fd once drained */
	bool stop_reading;      /* no more messages from the host */
	bool host_gone;         /* closed or broken: kill, discard output */
	bool exited, timed_out;
	int wstatus;
	struct timespec deadline;
	struct fbg_out out;
	struct fbg_reader rd;
};

/* ---- the request ------------------------------------------------------ */

static void free_req(struct exec_req *r)
{
	free(r->argv);
	free(r->env);
	free(r->envp);
	free(r->strings);
}

static bool same_key(const char *a, const char *b)
{
	size_t k = strcspn(a, "=");

	return strncmp(a, b, k) == 0 && b[k] == '=';
}

/* Our environment (PATH, HOME) overlaid with the request's; for a key
 * given twice the last one wins. */
static int merge_env(struct exec_req *r)
{
	size_t nbase = 0, n = 0, i, j;

	while (environ && environ[nbase] && nbase < ENV_BASE_MAX)
		nbase++;
	r->envp = calloc(nbase + r->envc + 1, sizeof(char *));
	if (!r->envp)
		return -ENOMEM;
	for (i = 0; i < nbase; i++) {
		for (j = 0; j < r->envc && !same_key(environ[i], r->env[j]); j++)
			;
		if (j == r->envc)
			r->envp[n++] = environ[i];
	}
	for (i = 0; i < r->envc; i++) {
		for (j = i + 1; j < r->envc && !same_key(r->env[i], r->env[j]); j++)
			;
		if (j == r->envc)
			r->envp[n++] = r->env[i];
	}
	return 0;
}

/* Decodes a string list: count checked against max and against what the
 * payload can hold (4 bytes a string at least) before the allocation. */
static int dec_list(struct fb_agent_dec *d, uint32_t max, char ***list,
		    uint32_t *count, char **store, bool need_eq)
{
	uint32_t n = fb_dec_u32(d), i, len;

	if (d->bad || n > max || n > (d->len - d->off) / 4)
		return -E2BIG;
	*list = calloc((size_t)n + 1, sizeof(char *));
	if (!*list)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const char *s = fb_dec_str(d, FB_AGENT_MAX_PAYLOAD, &len);

		if (d->bad || !fb_agent_cstr(*store, s, len))
			return -EINVAL;
		if (need_eq && (len == 0 || (*store)[0] == '=' ||
				!memchr(s, '=', len)))
			return -EINVAL;
		(*list)[i] = *store;
		*store += len + 1;
	}
	*count = n;
	return 0;
}

static int parse_req(int fd, const struct fbg_msg *m, struct exec_req *r)
{
	struct fb_agent_dec d;
	const char *s;
	char *store;
	uint32_t n;
	int err;

	fb_dec_init(&d, m->data, m->len);
	r->flags = fb_dec_u32(&d);
	r->timeout_ms = fb_dec_u32(&d);
	r->rows = fb_dec_u32(&d);
	r->cols = fb_dec_u32(&d);
	/* A string of n bytes took n + 4 on the wire: n + 1 always fits. */
	r->strings = store = malloc((size_t)m->len + 1);
	if (!r->strings)
		return fbg_send_error(fd, ENOMEM, "exec: out of memory");
	s = fb_dec_str(&d, FB_AGENT_MAX_PATH, &n);
	if (d.bad || !fb_agent_cstr(store, s, n))
		return fbg_send_error(fd, EINVAL, "exec: bad cwd field");
	r->cwd = store;
	store += n + 1;
	err = dec_list(&d, FB_AGENT_MAX_ARGS, &r->argv, &r->argc, &store, false);
	if (err)
		return fbg_send_error(fd, -err, "exec: bad argv (at most %u "
				      "strings without NUL)", FB_AGENT_MAX_ARGS);
	if (r->argc == 0)
		return fbg_send_error(fd, EINVAL, "exec: empty argv");
	err = dec_list(&d, FB_AGENT_MAX_ENV, &r->env, &r->envc, &store, true);
	if (err)
		return fbg_send_error(fd, -err, "exec: bad env (at most %u "
				      "K=V strings)", FB_AGENT_MAX_ENV);
	if (!fb_dec_ok(&d))
		return fbg_send_error(fd, EINVAL, "exec: malformed request");
	if (r->flags & ~(uint32_t)FB_AGENT_EXEC_FLAGS_KNOWN)
		return fbg_send_error(fd, EINVAL, "exec: unknown flags 0x%x",
				      r->flags);
	if (merge_env(r) < 0)
		return fbg_send_error(fd, ENOMEM, "exec: out of memory");
	return 1;
}

/* ---- spawning --------------------------------------------------------- */

struct child_io {
	int in, out, err;      /* without a tty */
	const char *pty_slave; /* with one */
	int report_fd;
};

/* Between fork and exec: the request's memory is ours (a copy), and this
 * process has one thread, so plain libc calls are safe. A failure goes
 * back as a start_report. */
static void __attribute__((noreturn)) child(const struct exec_req *r,
					    const struct child_io *io)
{
	struct start_report rep = { STAGE_SETUP, 0 };
	int in = io->in, out = io->out, err = io->err, sig;
	sigset_t none;

	/* Ignored signals stay ignored across exec (we ignore SIGPIPE);
	 * the command starts with defaults and nothing blocked. */
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Its own session and process group: a timeout or SIGNAL reaches
	 * the whole group, and a pty becomes its controlling tty. */
	setsid();
	if (io->pty_slave) {
		in = open(io->pty_slave, O_RDWR | O_CLOEXEC);
		if (in < 0)
			goto fail;
		ioctl(in, TIOCSCTTY, 0); /* without it: no job control only */
		out = err = in;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	rep.stage = STAGE_CHDIR;
	if (chdir(r->cwd[0] ? r->cwd : "/") < 0)
		goto fail;
	rep.stage = STAGE_EXEC;
	environ = r->envp; /* execvp searches the command's own PATH */
	execvp(r->argv[0], r->argv);
fail:
	rep.err = errno;
	if (write(io->report_fd, &rep, sizeof(rep)) < 0)
		_exit(EXIT_CANNOT_EXEC);
	_exit(EXIT_NOT_FOUND);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int open_pty(const struct exec_req *r, char *slave, size_t size)
{
	struct winsize ws = {
		.ws_row = (unsigned short)(r->rows && r->rows <= 0xffff ? r->rows : 24),
		.ws_col = (unsigned short)(r->cols && r->cols <= 0xffff ? r->cols : 80),
	};
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, size) != 0 ||
	    ioctl(m, TIOCSWINSZ, &ws) < 0) {
		int err = -errno;

		close(m);
		return err;
	}
	return m;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Answers a command that never ran: ERROR, then the docker-style EXIT. */
static int report_not_started(struct exec_state *x, const struct start_report *rep)
{
	const char *name = x->req->argv[0];
	uint8_t buf[12];
	struct fb_agent_enc e;
	int status = EXIT_CANNOT_EXEC, err;

	if (rep->stage == STAGE_EXEC && rep->err == ENOENT) {
		status = EXIT_NOT_FOUND;
		err = fbg_send_error(x->conn, ENOENT, "%s: command not found", name);
	} else if (rep->stage == STAGE_CHDIR) {
		err = fbg_send_error(x->conn, rep->err, "chdir %s: %s",
				     x->req->cwd, strerror(rep->err));
	} else if (rep->stage == STAGE_EXEC) {
		err = fbg_send_error(x->conn, rep->err, "%s: cannot execute: %s",
				     name, strerror(rep->err));
	} else {
		err = fbg_send_error(x->conn, rep->err, "%s: setting up the "
				     "command: %s", name, strerror(rep->err));
	}
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, FB_AGENT_NOT_STARTED);
	fb_enc_u32(&e, (uint32_t)status);
	fb_enc_u32(&e, 0);
	return err ? err : fbg_send(x->conn, FB_AGENT_EXIT, buf, e.len);
}

/* Forks the command; 1 when it runs, 0 when it could not start (already
 * answered), negative errno when the connection failed. */
static int spawn(struct exec_state *x)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int rep_pipe[2] = { -1, -1 }, master = -1, ret = 0;
	char slave[128];
	struct child_io io = { .in = -1, .out = -1, .err = -1 };
	struct start_report rep = { STAGE_SETUP, 0 };
	ssize_t n;

	if (pipe2(rep_pipe, O_CLOEXEC) < 0)
		return fbg_send_error(x->conn, errno, "exec: pipe2: %s", strerror(errno));
	if (x->tty) {
		master = open_pty(x->req, slave, sizeof(slave));
		if (master < 0) {
			ret = fbg_send_error(x->conn, -master, "exec: pty: %s",
					     strerror(-master));
			goto out;
		}
		io.pty_slave = slave;
	} else {
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
		    ((x->req->flags & FB_AGENT_EXEC_STDIN) ?
		     pipe2(in, O_CLOEXEC) :
		     (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
			ret = fbg_send_error(x->conn, errno, "exec: pipes: %s",
					     strerror(errno));
			goto out;
		}
		io.in = in[0];
		io.out = out[1];
		io.err = err[1];
	}
	io.report_fd = rep_pipe[1];
	x->pid = fork();
	if (x->pid < 0) {
		ret = fbg_send_error(x->conn, errno, "exec: fork: %s", strerror(errno));
		goto out;
	}
	if (x->pid == 0)
		child(x->req, &io);
	close_fd(&rep_pipe[1]);
	/* EOF: the exec closed the CLOEXEC write end. */
	do
		n = read(rep_pipe[0], &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(rep)) {
		waitpid(x->pid, NULL, 0);
		ret = report_not_started(x, &rep);
		goto out;
	}
	x->pidfd = (int)syscall(SYS_pidfd_open, x->pid, 0);
	if (x->pidfd < 0) {
		int e = errno;

		kill(-x->pid, SIGKILL);
		waitpid(x->pid, NULL, 0);
		ret = fbg_send_error(x->conn, e, "exec: pidfd_open: %s", strerror(e));
		goto out;
	}
	if (x->tty) {
		/* Two fds on one master, so stdin and output close apart. */
		x->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		x->out_fd = master;
		master = -1;
	} else {
		x->in_fd = (x->req->flags & FB_AGENT_EXEC_STDIN) ? in[1] : -1;
		in[1] = -1;
		x->out_fd = out[0];
		x->err_fd = err[0];
		out[0] = err[0] = -1;
	}
	if (x->out_fd < 0 || (x->in_fd >= 0 && set_nonblock(x->in_fd)) ||
	    set_nonblock(x->out_fd) || (x->err_fd >= 0 && set_nonblock(x->err_fd)))
		x->host_gone = true; /* cannot happen on our own fds; be safe */
	ret = 1;
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&rep_pipe[0]);
	close_fd(&rep_pipe[1]);
	close_fd(&master);
	return ret;
}

/* ---- the relay -------------------------------------------------------- */

static void kill_group(struct exec_state *x, int sig)
{
	/* After the reap the group id may name someone else. */
	if (!x->exited)
		kill(-x->pid, sig);
}

static void host_gone(struct exec_state *x)
{
	x->host_gone = x->stop_reading = true;
	kill_group(x, SIGKILL);
}

static void queue(struct exec_state *x, uint32_t type, const void *p, uint32_t len)
{
	if (!x->host_gone && fbg_out_frame(&x->out, type, p, len) < 0)
		host_gone(x); /* control frames always fit: OUT_SIZE > OUT_CAP */
}

static void queue_error(struct exec_state *x, int err, const char *text)
{
	uint8_t buf[8 + FB_AGENT_MAX_TEXT];
	struct fb_agent_enc e;

	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, (uint32_t)err);
	fb_enc_str(&e, text, strnlen(text, FB_AGENT_MAX_TEXT));
	queue(x, FB_AGENT_ERROR, buf, e.len);
}

static void add_stdin(struct exec_state *x, const void *p, size_t n)
{
	uint8_t *nb;

	if (x->in_fd < 0 || x->in_eof || n == 0)
		return; /* the command closed its stdin, or had none: drop */
	/* Bounded: we read from the host only below STDIN_CAP, and one
	 * message is at most FB_AGENT_MAX_PAYLOAD. */
	nb = realloc(x->in_buf, x->in_len + n);
	if (!nb) {
		host_gone(x);
		return;
	}
	x->in_buf = nb;
	memcpy(x->in_buf + x->in_len, p, n);
	x->in_len += n;
}

static void handle_msg(struct exec_state *x, const struct fbg_msg *m)
{
	struct fb_agent_dec d;
	struct termios tio;
	uint32_t sig;

	switch (m->type) {
	case FB_AGENT_STDIN:
		add_stdin(x, m->data, m->len);
		return;
	case FB_AGENT_STDIN_EOF:
		if (x->tty && x->in_fd >= 0 && !x->in_eof &&
		    tcgetattr(x->in_fd, &tio) == 0) {
			/* A pty has no half-close: a canonical-mode reader
			 * sees EOF from the VEOF character (^D). */
			add_stdin(x, &tio.c_cc[VEOF], 1);
		}
		x->in_eof = true;
		return;
	case FB_AGENT_SIGNAL:
		fb_dec_init(&d, m->data, m->len);
		sig = fb_dec_u32(&d);
		if (!fb_dec_ok(&d) || sig < 1 || sig > SIG_MAX) {
			queue_error(x, EINVAL, "SIGNAL: bad signal number");
			return;
		}
		kill_group(x, (int)sig);
		return;
	default:
		/* The stream cannot be trusted past this point. */
		queue_error(x, EPROTO, "exec: unexpected message type from host");
		x->stop_reading = true;
		kill_group(x, SIGKILL);
		return;
	}
}

static void read_host(struct exec_state *x)
{
	int r;

	while (!x->stop_reading && x->in_len < STDIN_CAP) {
		r = fbg_read_step(x->conn, &x->rd, FB_AGENT_MAX_PAYLOAD);
		if (r == 0)
			return;
		if (r == 1) {
			handle_msg(x, &x->rd.msg);
			fbg_reader_reset(&x->rd);
			continue;
		}
		if (r == -EMSGSIZE) {
			queue_error(x, EMSGSIZE, "exec: message over the cap");
			x->stop_reading = true;
			kill_group(x, SIGKILL);
			return;
		}
		host_gone(x); /* EOF or a broken connection */
		return;
	}
}

static void write_stdin(struct exec_state *x)
{
	ssize_t n;

	while (x->in_len > 0) {
		n = write(x->in_fd, x->in_buf, x->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* EPIPE: the command closed its stdin; EIO: the pty
			 * is gone. Drop what is left. */
			x->in_len = 0;
			if (!x->tty)
				close_fd(&x->in_fd);
			return;
		}
		memmove(x->in_buf, x->in_buf + n, x->in_len - (size_t)n);
		x->in_len -= (size_t)n;
	}
}

/* One read of the command's output into a frame; false at EOF (or EIO,
 * which is how a pty master says the slave side is gone). */
static bool read_output(struct exec_state *x, int *fd, uint32_t type)
{
	uint8_t *dst = fbg_out_reserve(&x->out, FB_AGENT_HDR_LEN + FB_AGENT_CHUNK);
	ssize_t n;

	if (!dst)
		return true; /* cannot happen below OUT_CAP; retry later */
	do
		n = read(*fd, dst + FB_AGENT_HDR_LEN, FB_AGENT_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return true;
	if (n <= 0) {
		close_fd(fd);
		return false;
	}
	if (!x->host_gone)
		fbg_out_commit_frame(&x->out, type, (uint32_t)n);
	return true;
}

/* After the command exited, everything it wrote is in the pipe, but a
 * background grandchild may hold the pipe open and keep writing: take
 * what is there now, up to the pipe's capacity, then stop. */
static void drain(struct exec_state *x, int *fd, uint32_t type)
{
	int cap = *fd >= 0 && !x->tty ? fcntl(*fd, F_GETPIPE_SZ) : -1;
	size_t budget = cap > 0 ? (size_t)cap : DRAIN_PTY_BUDGET;
	size_t before;

	while (*fd >= 0 && budget > 0) {
		if (!x->host_gone && fbg_out_pending(&x->out) >= OUT_CAP &&
		    fbg_out_flush_all(x->conn, &x->out) < 0)
			host_gone(x);
		if (x->host_gone)
			x->out.off = x->out.len = 0;
		before = x->out.len;
		if (!read_output(x, fd, type) || x->out.len == before)
			break; /* EOF, or nothing more right now */
		budget -= x->out.len - before < budget ? x->out.len - before : budget;
	}
	close_fd(fd);
}

static int remaining_ms(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec + 999999) / 1000000;
	if (ms < 0)
		return 0;
	return ms > 1000000000 ? 1000000000 : (int)ms;
}

enum { PF_CONN, PF_OUT, PF_ERR, PF_IN, PF_PID, PF_N };

static void relay(struct exec_state *x)
{
	struct pollfd p[PF_N];
	bool want_deadline = x->req->timeout_ms > 0;

	while (!x->exited) {
		int timeout = -1;
		bool room;

		p[PF_CONN] = (struct pollfd){ .fd = x->host_gone ? -1 : x->conn };
		if (!x->stop_reading && x->in_len < STDIN_CAP)
			p[PF_CONN].events |= POLLIN;
		if (fbg_out_pending(&x->out))
			p[PF_CONN].events |= POLLOUT;
		/* Full queue: leave the pipes out entirely (a hung-up pipe
		 * reports POLLHUP even with no events asked: a busy loop). */
		room = fbg_out_pending(&x->out) < OUT_CAP;
		p[PF_OUT] = (struct pollfd){ .fd = room ? x->out_fd : -1,
					     .events = POLLIN };
		p[PF_ERR] = (struct pollfd){ .fd = room ? x->err_fd : -1,
					     .events = POLLIN };
		p[PF_IN] = (struct pollfd){ .fd = x->in_len ? x->in_fd : -1,
					   .events = POLLOUT };
		p[PF_PID] = (struct pollfd){ .fd = x->pidfd, .events = POLLIN };
		if (want_deadline && !x->timed_out)
			timeout = remaining_ms(&x->deadline);
		if (poll(p, PF_N, timeout) < 0) {
			if (errno == EINTR)
				continue;
			host_gone(x); /* cannot relay any more; still reap */
			waitpid(x->pid, &x->wstatus, 0);
			x->exited = true;
			break;
		}
		if (want_deadline && !x->timed_out && remaining_ms(&x->deadline) == 0) {
			x->timed_out = true;
			kill_group(x, SIGKILL);
		}
		if (p[PF_CONN].revents & POLLOUT && fbg_out_flush(x->conn, &x->out) < 0)
			host_gone(x);
		if (p[PF_CONN].revents & POLLIN)
			read_host(x);
		else if (p[PF_CONN].revents & (POLLHUP | POLLERR))
			host_gone(x);
		if (p[PF_IN].revents)
			write_stdin(x);
		if (x->in_eof && x->in_len == 0 && !x->tty)
			close_fd(&x->in_fd);
		if (p[PF_OUT].revents)
			read_output(x, &x->out_fd, FB_AGENT_STDOUT);
		if (p[PF_ERR].revents)
			read_output(x, &x->err_fd, FB_AGENT_STDERR);
		if (x->host_gone)
			x->out.off = x->out.len = 0; /* nobody to send it to */
		if (p[PF_PID].revents &&
		    waitpid(x->pid, &x->wstatus, WNOHANG) == x->pid)
			x->exited = true;
	}
	drain(x, &x->out_fd, FB_AGENT_STDOUT);
	drain(x, &x->err_fd, FB_AGENT_STDERR);
}

static void queue_exit(struct exec_state *x)
{
	uint8_t buf[12];
	struct fb_agent_enc e;
	uint32_t kind = FB_AGENT_EXITED, value = 0, flags = 0;

	if (WIFEXITED(x->wstatus)) {
		value = (uint32_t)WEXITSTATUS(x->wstatus);
	} else if (WIFSIGNALED(x->wstatus)) {
		kind = FB_AGENT_SIGNALED;
		value = (uint32_t)WTERMSIG(x->wstatus);
		if (WCOREDUMP(x->wstatus))
			flags |= FB_AGENT_EXIT_CORE;
	}
	if (x->timed_out)
		flags |= FB_AGENT_EXIT_TIMED_OUT;
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, kind);
	fb_enc_u32(&e, value);
	fb_enc_u32(&e, flags);
	queue(x, FB_AGENT_EXIT, buf, e.len);
}

int fbg_serve_exec(int fd, const struct fbg_msg *m)
{
	struct exec_req req = { 0 };
	struct exec_state x = {
		.conn = fd, .req = &req, .pid = -1, .pidfd = -1,
		.in_fd = -1, .out_fd = -1, .err_fd = -1,
	};
	uint8_t buf[4];
	int ret;

	ret = parse_req(fd, m, &req);
	if (ret <= 0)
		goto out; /* answered with ERROR (0) or the send failed */
	x.tty = req.flags & FB_AGENT_EXEC_TTY;
	ret = fbg_out_init(&x.out, OUT_SIZE);
	if (ret) {
		ret = fbg_send_error(fd, ENOMEM, "exec: out of memory");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &x.deadline);
	x.deadline.tv_sec += req.timeout_ms / 1000;
	x.deadline.tv_nsec += (long)(req.timeout_ms % 1000) * 1000000;
	if (x.deadline.tv_nsec >= 1000000000) {
		x.deadline.tv_sec++;
		x.deadline.tv_nsec -= 1000000000;
	}
	ret = spawn(&x);
	if (ret <= 0)
		goto out;
	fb_put_le32(buf, (uint32_t)x.pid);
	queue(&x, FB_AGENT_STARTED, buf, sizeof(buf));
	relay(&x);
	queue_exit(&x);
	ret = x.host_gone ? -EPIPE : fbg_out_flush_all(fd, &x.out);
out:
	close_fd(&x.pidfd);
	close_fd(&x.in_fd);
	close_fd(&x.out_fd);
	close_fd(&x.err_fd);
	fbg_reader_reset(&x.rd);
	fbg_out_free(&x.out);
	free(x.in_buf);
	free_req(&req);
	return ret;
}
