/* Fuzzes the host's agent client (src/agent/): everything it decodes from
 * what a hostile guest agent sends. The input is a selector byte, then the
 * bytes "the agent" sends: they wait in one end of a socketpair, closed
 * after them, while a client call (HELLO handshake, exec, file read,
 * stat, list, file write, reinject, or an ERROR decode) runs on the other
 * end and must return, whatever they are. Its requests go into the socket
 * and are never read; they are small, so nothing blocks.
 * FB_FUZZ_SKIP=write_file leaves the file write out (see fuzz.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "fuzz.h"
#include "util/error.h"

#define SOCK_BUF (1 << 20)

static int devnull = -1;
static bool skip_write_file;

static void run(unsigned op, int fd)
{
	static const char *const argv[] = { "true", NULL };
	static const char *const env[] = { "A=1", NULL };
	struct fb_agent_exec_req req = {
		.argv = argv, .env = env, .cwd = "/", .signal_fd = -1,
		.timeout_ms = 1000,
	};
	struct fb_agent_reinject ri = {
		.box_id = "box-1", .hostname = "h", .entropy = (const uint8_t *)"0123",
		.entropy_len = 4, .realtime_ns = 1,
	};
	struct fb_agent_hello hello;
	struct fb_agent_stat st;
	struct fb_agent_dirent *ents = NULL;
	struct fba_msg m;
	size_t count = 0;
	bool trunc = false;
	uint32_t done;
	int status, err;

	switch (op) {
	case 0:
		err = fb_agent_handshake(fd, 5000, &hello);
		if (!err)
			FZ_CHECK(hello.version == FB_AGENT_VERSION &&
				 strlen(hello.hostname) <= FB_AGENT_MAX_HOSTNAME);
		break;
	case 1:
		req.tty = true;
		/* fall through */
	case 2:
		err = fb_agent_exec(fd, &req, -1, devnull, devnull, &status);
		if (!err || err == -ETIMEDOUT)
			FZ_CHECK(status >= 0 && status <= 255);
		break;
	case 3:
		err = fb_agent_read_file(fd, "/etc/hostname", devnull, 1 << 20);
		break;
	case 4:
		err = fb_agent_stat(fd, "/etc", &st, 5000);
		break;
	case 5:
		err = fb_agent_list(fd, "/etc", &ents, &count, &trunc, 5000);
		if (!err) {
			FZ_CHECK(count <= FB_AGENT_MAX_LIST);
			for (size_t i = 0; i < count; i++)
				FZ_CHECK(ents[i].name[0] && !strchr(ents[i].name, '/') &&
					 strlen(ents[i].name) <= FB_AGENT_MAX_NAME);
		}
		free(ents);
		break;
	case 6:
		if (skip_write_file)
			return;
		err = fb_agent_write_file(fd, "/tmp/x", 0644, -1, "data", 4);
		break;
	case 7:
		err = fb_agent_reinject(fd, &ri, &done, 5000);
		break;
	default:
		/* Framing alone: any reply to any request, ERROR decoded. */
		err = fba_recv_reply(fd, &m, FB_AGENT_OK, FB_AGENT_MAX_PAYLOAD,
				     5000, "fuzz");
		if (!err)
			fba_msg_free(&m);
		break;
	}
	/* Errors are negative errnos with a message; no success is invented
	 * from garbage. */
	FZ_CHECK(err <= 0 && err > -4096);
	if (err)
		FZ_CHECK(fb_last_error()[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], buf = SOCK_BUF;
	size_t off = 1;
	unsigned op;

	if (size < 1)
		return 0;
	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		FZ_CHECK(devnull >= 0);
		skip_write_file = fz_skip("write_file");
	}
	op = data[0] % 9;
	FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	/* What does not fit is cut off: the agent hung up early. */
	while (off < size) {
		ssize_t n = send(sv[1], data + off, size - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	run(op, sv[0]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
