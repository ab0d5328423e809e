/* One connection, one request: HELLO, read the request, dispatch. The
 * host opens a new vsock connection for every exec or file operation, so
 * concurrency comes from many connections, each in a process of its own,
 * and a request that crashes takes nothing else down. The one exception
 * is the re-stamp port, which PID 1 serves itself (agent_main.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* A child's dup2 onto 0-2 must never find its source there: with 0-2 open,
 * every pipe and pty we create lands at 3 or above. */
static void ensure_stdio(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", O_RDWR) < 0)
			return;
	}
}

/* Says once that this connection's request is under way (see agent.h). */
static void under_way(struct fbg_serve_hook *hook)
{
	if (hook && hook->under_way && !hook->called) {
		hook->called = true;
		hook->under_way(hook->opaque);
	}
}

/* HELLO, then one request; reinject_only refuses all but REINJECT. */
static int serve_one(int fd, bool reinject_only, struct fbg_serve_hook *hook)
{
	struct fbg_msg req;
	int ret;

	ret = fbg_send_hello(fd);
	if (ret)
		return ret;
	ret = fbg_recv(fd, &req, FB_AGENT_MAX_PAYLOAD);
	if (ret == -ENODATA)
		return 0; /* the host only wanted the HELLO */
	if (ret == -EMSGSIZE) {
		/* The payload stays unread: answer and close. */
		fbg_send_error(fd, EMSGSIZE, "message type 0x%x of %u bytes: "
			       "over the %u-byte cap", req.type, req.len,
			       FB_AGENT_MAX_PAYLOAD);
		return 0;
	}
	if (ret)
		return ret;
	if (reinject_only && req.type != FB_AGENT_REINJECT) {
		ret = fbg_send_error(fd, EPROTO, "port %u serves only REINJECT, "
				     "not message type 0x%x",
				     FB_AGENT_RESTAMP_PORT, req.type);
		fbg_msg_free(&req);
		return ret;
	}

	/* A re-stamp is a fork child's way to ready: its reply goes first. */
	if (req.type != FB_AGENT_REINJECT)
		under_way(hook);
	switch (req.type) {
	case FB_AGENT_EXEC:
		ret = fbg_serve_exec(fd, &req);
		break;
	case FB_AGENT_FILE_WRITE:
		ret = fbg_serve_file_write(fd, &req);
		break;
	case FB_AGENT_FILE_READ:
		ret = fbg_serve_file_read(fd, &req);
		break;
	case FB_AGENT_STAT:
		ret = fbg_serve_stat(fd, &req);
		break;
	case FB_AGENT_LIST:
		ret = fbg_serve_list(fd, &req);
		break;
	case FB_AGENT_REINJECT:
		ret = fbg_serve_reinject(fd, &req);
		break;
	default:
		ret = fbg_send_error(fd, EPROTO, "message type 0x%x is not a "
				     "request", req.type);
		break;
	}
	fbg_msg_free(&req);
	return ret;
}

int fb_agent_serve_hooked(int fd, struct fbg_serve_hook *hook)
{
	int ret;

	/* A command that closes its stdin must not kill us on our next
	 * write to its pipe; the socket uses MSG_NOSIGNAL already. */
	signal(SIGPIPE, SIG_IGN);
	ensure_stdio();
	/* The command we spawn must not inherit the connection. */
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	ret = serve_one(fd, false, hook);
	under_way(hook);
	return ret;
}

int fb_agent_serve(int fd)
{
	return fb_agent_serve_hooked(fd, NULL);
}

int fb_agent_serve_restamp(int fd)
{
	return serve_one(fd, true, NULL);
}
