/* fb_agent_exec: one EXEC request, then a poll loop that relays both ways
 * until the EXIT. Writes to the agent go through a bounded queue and never
 * block the loop (the agent may be blocked sending us output at the same
 * moment: blocking here would deadlock the two); when the queue is full we
 * stop reading stdin. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "util/error.h"

#define OUT_CAP (256u * 1024u)
#define OUT_SIZE (OUT_CAP + 2u * (FB_AGENT_HDR_LEN + FB_AGENT_CHUNK))
#define SIG_MAX 64

struct exec_loop {
	int conn, stdin_fd, stdout_fd, stderr_fd, signal_fd;
	struct fba_out out;
	struct fba_reader rd;
	int agent_err;  /* from an ERROR message, 0 if none */
	bool exited;
	int status;     /* docker-style */
	bool timed_out;
};

static size_t count_list(const char *const *l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

static int send_request(int fd, const struct fb_agent_exec_req *req,
			bool with_stdin)
{
	size_t argc = count_list(req->argv), envc = count_list(req->env), i;
	const char *cwd = req->cwd ? req->cwd : "";
	struct fb_agent_enc e;
	uint8_t *buf;
	int err;

	if (argc == 0)
		return fb_errorf(-EINVAL, "exec: empty argv");
	if (argc > FB_AGENT_MAX_ARGS || envc > FB_AGENT_MAX_ENV)
		return fb_errorf(-E2BIG, "exec: %zu arguments and %zu env entries "
				 "(at most %u and %u)", argc, envc,
				 FB_AGENT_MAX_ARGS, FB_AGENT_MAX_ENV);
	if (strlen(cwd) > FB_AGENT_MAX_PATH)
		return fb_errorf(-ENAMETOOLONG, "exec: cwd too long");
	buf = malloc(FB_AGENT_MAX_PAYLOAD);
	if (!buf)
		return fb_errorf(-ENOMEM, "exec: out of memory");
	fb_enc_init(&e, buf, FB_AGENT_MAX_PAYLOAD);
	fb_enc_u32(&e, (req->tty ? FB_AGENT_EXEC_TTY : 0) |
		       (with_stdin ? FB_AGENT_EXEC_STDIN : 0));
	fb_enc_u32(&e, req->timeout_ms);
	fb_enc_u32(&e, req->tty_rows);
	fb_enc_u32(&e, req->tty_cols);
	fb_enc_str(&e, cwd, strlen(cwd));
	fb_enc_u32(&e, (uint32_t)argc);
	for (i = 0; i < argc; i++)
		fb_enc_str(&e, req->argv[i], strlen(req->argv[i]));
	fb_enc_u32(&e, (uint32_t)envc);
	for (i = 0; i < envc; i++)
		fb_enc_str(&e, req->env[i], strlen(req->env[i]));
	if (e.overflow)
		err = fb_errorf(-E2BIG, "exec: argv and env exceed the %u-byte "
				"request cap", FB_AGENT_MAX_PAYLOAD);
	else
		err = fba_send(fd, FB_AGENT_EXEC, buf, e.len, -1, "exec");
	free(buf);
	return err;
}

static int handle_exit(struct exec_loop *x, const struct fba_msg *m)
{
	struct fb_agent_dec d;
	uint32_t kind, value, flags;

	fb_dec_init(&d, m->data, m->len);
	kind = fb_dec_u32(&d);
	value = fb_dec_u32(&d);
	flags = fb_dec_u32(&d);
	if (!fb_dec_ok(&d))
		return fb_errorf(-EPROTO, "exec: malformed EXIT from the agent");
	switch (kind) {
	case FB_AGENT_EXITED:
		if (value > 255)
			return fb_errorf(-EPROTO, "exec: exit code %u", value);
		x->status = (int)value;
		break;
	case FB_AGENT_SIGNALED:
		if (value < 1 || value > SIG_MAX)
			return fb_errorf(-EPROTO, "exec: signal %u", value);
		x->status = 128 + (int)value;
		break;
	case FB_AGENT_NOT_STARTED:
		x->status = value == 127 ? 127 : 126;
		break;
	default:
		return fb_errorf(-EPROTO, "exec: EXIT of unknown kind %u", kind);
	}
	x->timed_out = flags & FB_AGENT_EXIT_TIMED_OUT;
	x->exited = true;
	return 0;
}

/* Output to the caller's fd; a caller that closed its end (EPIPE) stops
 * getting output, the command goes on. */
static void deliver(int *fd, const struct fba_msg *m)
{
	if (*fd >= 0 && m->len && fba_write_fd(*fd, m->data, m->len) < 0)
		*fd = -1;
}

static int handle_msg(struct exec_loop *x, const struct fba_msg *m)
{
	char line[FB_AGENT_MAX_TEXT + 16];

	switch (m->type) {
	case FB_AGENT_STARTED:
		return m->len == 4 ? 0 :
		       fb_errorf(-EPROTO, "exec: malformed STARTED");
	case FB_AGENT_STDOUT:
		deliver(&x->stdout_fd, m);
		return 0;
	case FB_AGENT_STDERR:
		deliver(&x->stderr_fd, m);
		return 0;
	case FB_AGENT_ERROR:
		x->agent_err = fba_agent_error(m, "exec");
		/* The user sees why, as docker shows it, on stderr. */
		snprintf(line, sizeof(line), "forkbox: %s\n",
			 fb_last_error() + strlen("exec: "));
		if (x->stderr_fd >= 0)
			fba_write_fd(x->stderr_fd, line, strlen(line));
		return 0;
	case FB_AGENT_EXIT:
		return handle_exit(x, m);
	default:
		return fb_errorf(-EPROTO, "exec: unexpected message type 0x%x "
				 "from the agent", m->type);
	}
}

static int read_agent(struct exec_loop *x)
{
	int r, err;

	while (!x->exited) {
		r = fba_read_step(x->conn, &x->rd, FB_AGENT_MAX_PAYLOAD);
		if (r == 0)
			return 0;
		if (r < 0) {
			if ((r == -ENODATA || r == -EPIPE) && x->agent_err)
				return x->agent_err; /* it said why, then left */
			if (r == -ENODATA || r == -EPIPE)
				return fb_errorf(-ECONNRESET, "exec: the agent "
						 "closed the connection before "
						 "the command's exit status");
			if (r == -EMSGSIZE)
				return fb_errorf(-EPROTO, "exec: agent message "
						 "of %u bytes, over the cap",
						 x->rd.msg.len);
			return fb_errorf(r, "exec: recv: %s", strerror(-r));
		}
		err = handle_msg(x, &x->rd.msg);
		fba_reader_reset(&x->rd);
		if (err)
			return err;
	}
	return 0;
}

static void read_stdin(struct exec_loop *x)
{
	uint8_t *dst = fba_out_reserve(&x->out, FB_AGENT_HDR_LEN + FB_AGENT_CHUNK);
	ssize_t n;

	if (!dst)
		return;
	do
		n = read(x->stdin_fd, dst + FB_AGENT_HDR_LEN, FB_AGENT_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0) {
		fba_out_commit_frame(&x->out, FB_AGENT_STDIN, (uint32_t)n);
		return;
	}
	/* EOF, or a read error, which ends stdin all the same. */
	fba_out_frame(&x->out, FB_AGENT_STDIN_EOF, NULL, 0);
	x->stdin_fd = -1;
}

static void read_signals(struct exec_loop *x)
{
	int sigs[16];
	uint8_t le[4];
	ssize_t n, i;

	do
		n = read(x->signal_fd, sigs, sizeof(sigs));
	while (n < 0 && errno == EINTR);
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		x->signal_fd = -1; /* the writer closed: no more signals */
		return;
	}
	for (i = 0; i + (ssize_t)sizeof(int) <= n; i += (ssize_t)sizeof(int)) {
		int sig = sigs[i / (ssize_t)sizeof(int)];

		if (sig < 1 || sig > SIG_MAX)
			continue;
		fb_put_le32(le, (uint32_t)sig);
		/* Always room: the queue keeps a chunk's worth spare. */
		fba_out_frame(&x->out, FB_AGENT_SIGNAL, le, sizeof(le));
	}
}

int fb_agent_exec(int fd, const struct fb_agent_exec_req *req, int stdin_fd,
		  int stdout_fd, int stderr_fd, int *exit_status)
{
	struct exec_loop x = {
		.conn = fd, .stdin_fd = stdin_fd, .stdout_fd = stdout_fd,
		.stderr_fd = stderr_fd, .signal_fd = req->signal_fd,
	};
	struct pollfd p[3];
	int err;

	*exit_status = -1;
	err = send_request(fd, req, stdin_fd >= 0);
	if (err)
		return err;
	if (fba_out_init(&x.out, OUT_SIZE) < 0)
		return fb_errorf(-ENOMEM, "exec: out of memory");
	while (!x.exited && !err) {
		p[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (fba_out_pending(&x.out))
			p[0].events |= POLLOUT;
		p[1] = (struct pollfd){ .fd = -1, .events = POLLIN };
		if (x.stdin_fd >= 0 && fba_out_pending(&x.out) < OUT_CAP)
			p[1].fd = x.stdin_fd;
		p[2] = (struct pollfd){ .fd = x.signal_fd, .events = POLLIN };
		if (poll(p, 3, -1) < 0) {
			if (errno != EINTR)
				err = fb_errorf(-errno, "exec: poll: %s", strerror(errno));
			continue;
		}
		if (p[0].revents & POLLOUT && fba_out_flush(fd, &x.out) < 0) {
			/* The agent stopped reading: drop what we had and
			 * hear what it has to say. */
			x.out.off = x.out.len = 0;
			x.stdin_fd = x.signal_fd = -1;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			err = read_agent(&x);
		if (!err && p[1].revents)
			read_stdin(&x);
		if (!err && p[2].revents)
			read_signals(&x);
	}
	fba_reader_reset(&x.rd);
	fba_out_free(&x.out);
	if (err)
		return err;
	*exit_status = x.status;
	if (x.timed_out)
		return fb_errorf(-ETIMEDOUT, "exec: %s: killed after the %u ms "
				 "timeout", req->argv[0], req->timeout_ms);
	return 0;
}

int fb_agent_signal(int signal_wfd, int signo)
{
	int saved = errno, ret = 0;
	ssize_t n;

	/* Async-signal-safe: no fb_errorf, errno restored. */
	do
		n = write(signal_wfd, &signo, sizeof(signo));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(signo))
		ret = n < 0 ? -errno : -EIO;
	errno = saved;
	return ret;
}
