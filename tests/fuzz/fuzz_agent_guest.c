/* Fuzzes the guest agent's serving side (guest/agent_serve*.c): its
 * decoding of what the host sends. The input is the byte stream from the
 * host; it waits in one end of a socketpair, closed after it, and this
 * target serves the other end as fb_agent_serve does: HELLO, one framed
 * request, then the request's own decoding and stream handling.
 *
 * It must never run a command or touch files on the fuzzing machine, so
 * it does not call fb_agent_serve's handlers that act; it runs the decode
 * layer under them (agent_serve_exec.c and agent_serve_files.c are
 * #included for their static functions):
 *  - EXEC: parse_req (argv, env, cwd, flags), the not-started report, and
 *    the relay's handling of the host's STDIN / STDIN_EOF / SIGNAL
 *    messages (read_host, handle_msg) for a command that already exited,
 *    stdin going to /dev/null; spawn() is never called;
 *  - FILE_WRITE: the request's fields and the DATA..END stream
 *    (receive_data) into /dev/null, never a file;
 *  - FILE_READ, STAT, LIST: the path decoding only;
 *  - REINJECT: the real handler, whose machine-changing calls go to the
 *    no-op stand-ins below (agent_sys.h).
 * fork, execvp, kill and posix_openpt are wrapped at link time (Makefile)
 * to abort, so a path to them that this reasoning missed is a crash, not
 * a command run. */
#include "../../guest/agent_serve_exec.c"
#include "../../guest/agent_serve_files.c"

#include <sys/socket.h>

#include "../../guest/agent_sys.h"
#include "fuzz.h"

#define SOCK_BUF (1 << 20)

/* ---- guards and stand-ins ---------------------------------------------- */

pid_t __wrap_fork(void);
int __wrap_execvp(const char *file, char *const argv[]);
int __wrap_kill(pid_t pid, int sig);
int __wrap_posix_openpt(int flags);

pid_t __wrap_fork(void)
{
	fprintf(stderr, "fuzz_agent_guest: fork() reached\n");
	abort();
}

int __wrap_execvp(const char *file, char *const argv[])
{
	fprintf(stderr, "fuzz_agent_guest: execvp(%s) reached\n", file);
	abort();
}

int __wrap_kill(pid_t pid, int sig)
{
	fprintf(stderr, "fuzz_agent_guest: kill(%d, %d) reached\n", (int)pid, sig);
	abort();
}

int __wrap_posix_openpt(int flags)
{
	fprintf(stderr, "fuzz_agent_guest: posix_openpt() reached\n");
	abort();
}

/* The hooks' results vary with what they get, so both ways are covered. */
int fbg_sys_sethostname(const char *name, size_t len)
{
	FZ_CHECK(len <= FB_AGENT_MAX_HOSTNAME);
	return len && name[0] == 'E' ? -EPERM : 0;
}

int fbg_sys_add_entropy(const uint8_t *buf, size_t len)
{
	FZ_CHECK(len > 0 && len <= FB_AGENT_MAX_ENTROPY);
	return buf[0] == 0xee ? -EIO : 0;
}

int fbg_sys_reseed_crng(void)
{
	return -ENOTTY;
}

int fbg_sys_set_realtime(uint64_t ns)
{
	return ns == 1 ? -EINVAL : 0;
}

int fbg_sys_store_box_id(const char *id, size_t len)
{
	FZ_CHECK(len > 0 && len <= FB_AGENT_MAX_BOX_ID);
	return 0;
}

/* ---- the request types -------------------------------------------------- */

static int devnull = -1;

static void fuzz_exec(int fd, const struct fbg_msg *m)
{
	struct exec_req req = { 0 };
	struct exec_state x = {
		.conn = fd, .req = &req, .pid = -1, .pidfd = -1,
		.in_fd = -1, .out_fd = -1, .err_fd = -1,
	};
	struct start_report rep;

	if (parse_req(fd, m, &req) <= 0)
		goto out;
	FZ_CHECK(req.argc >= 1 && req.argv[0] && !req.argv[req.argc]);
	FZ_CHECK(!req.env[req.envc]);
	for (uint32_t i = 0; i < req.envc; i++)
		FZ_CHECK(req.env[i][0] != '=' && strchr(req.env[i], '='));
	FZ_CHECK(!(req.flags & ~(uint32_t)FB_AGENT_EXEC_FLAGS_KNOWN));
	x.tty = req.flags & FB_AGENT_EXEC_TTY;
	/* What a failed start sends (the stage from the request's size). */
	rep.stage = STAGE_SETUP + (int)(m->len % 3);
	rep.err = m->len % 2 ? ENOENT : EACCES;
	FZ_CHECK(report_not_started(&x, &rep) == 0);

	/* The relay after the start, for a command that has exited (so
	 * nothing is ever signalled): the host's stream of STDIN, STDIN_EOF
	 * and SIGNAL messages until it closes. */
	FZ_CHECK(fbg_out_init(&x.out, OUT_SIZE) == 0);
	x.exited = true;
	if (req.flags & FB_AGENT_EXEC_STDIN)
		x.in_fd = dup(devnull);
	for (int rounds = 0; !x.stop_reading && rounds < 1 << 16; rounds++) {
		read_host(&x);
		FZ_CHECK(x.in_len <= STDIN_CAP + FB_AGENT_MAX_PAYLOAD);
		if (x.in_len && x.in_fd >= 0)
			write_stdin(&x);
		else if (x.in_len)
			x.in_len = 0;
		if (x.in_eof && x.in_len == 0 && !x.tty)
			close_fd(&x.in_fd);
	}
	FZ_CHECK(x.stop_reading);
	FZ_CHECK(fbg_out_pending(&x.out) <= OUT_SIZE);
	queue_exit(&x);
out:
	close_fd(&x.in_fd);
	fbg_reader_reset(&x.rd);
	fbg_out_free(&x.out);
	free(x.in_buf);
	free_req(&req);
}

static void fuzz_file_write(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1];
	struct fb_agent_dec d;
	uint64_t size, total = 0;
	uint32_t mode;

	/* fbg_serve_file_write's decoding, up to where it would open a
	 * temporary file. */
	fb_dec_init(&d, m->data, m->len);
	mode = fb_dec_u32(&d);
	size = fb_dec_u64(&d);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return;
	FZ_CHECK(path[0] == '/' && strlen(path) <= FB_AGENT_MAX_PATH);
	if (!fb_dec_ok(&d) || mode > 07777) {
		fbg_send_error(fd, EINVAL, "file write: malformed request");
		return;
	}
	if (receive_data(fd, devnull, size, &total) == 0)
		FZ_CHECK(size == UINT64_MAX || total == size);
}

static void fuzz_path_request(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1];
	struct fb_agent_dec d;

	fb_dec_init(&d, m->data, m->len);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return;
	FZ_CHECK(path[0] == '/' && strlen(path) <= FB_AGENT_MAX_PATH);
	(void)fb_dec_ok(&d);
}

/* fb_agent_serve, with the acting handlers replaced as above. */
static void serve(int fd)
{
	struct fbg_msg req;
	int ret;

	FZ_CHECK(fbg_send_hello(fd) == 0);
	ret = fbg_recv(fd, &req, FB_AGENT_MAX_PAYLOAD);
	if (ret == -EMSGSIZE) {
		FZ_CHECK(req.len > FB_AGENT_MAX_PAYLOAD && !req.data);
		fbg_send_error(fd, EMSGSIZE, "message type 0x%x of %u bytes: "
			       "over the %u-byte cap", req.type, req.len,
			       FB_AGENT_MAX_PAYLOAD);
		return;
	}
	if (ret)
		return;
	FZ_CHECK(req.len <= FB_AGENT_MAX_PAYLOAD && (!req.len || req.data));
	switch (req.type) {
	case FB_AGENT_EXEC:
		fuzz_exec(fd, &req);
		break;
	case FB_AGENT_FILE_WRITE:
		fuzz_file_write(fd, &req);
		break;
	case FB_AGENT_FILE_READ:
	case FB_AGENT_STAT:
	case FB_AGENT_LIST:
		fuzz_path_request(fd, &req);
		break;
	case FB_AGENT_REINJECT:
		fbg_serve_reinject(fd, &req);
		break;
	default:
		fbg_send_error(fd, EPROTO, "message type 0x%x is not a "
			       "request", req.type);
		break;
	}
	fbg_msg_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], buf = SOCK_BUF;
	size_t off = 0;

	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		FZ_CHECK(devnull >= 0);
		signal(SIGPIPE, SIG_IGN);
	}
	FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	while (off < size) {
		ssize_t n = send(sv[0], data + off, size - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);
	serve(sv[1]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
