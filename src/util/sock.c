#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sock.h"

int fb_unix_addr(struct sockaddr_un *addr, const char *path)
{
	size_t len = strlen(path);

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (len >= sizeof(addr->sun_path))
		return fb_errorf(-ENAMETOOLONG, "socket path %s is longer than "
				 "%zu bytes", path, sizeof(addr->sun_path) - 1);
	memcpy(addr->sun_path, path, len + 1);
	return 0;
}

ssize_t fb_send_with_fds(int sock, const void *buf, size_t len,
			 const int *fds, unsigned nr)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * FB_SOCK_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nr > FB_SOCK_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (nr) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(nr * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nr * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nr * sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL);
}

void fb_take_fds(struct msghdr *msg, int *fds, unsigned max, unsigned *nr)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c;
	     c = CMSG_NXTHDR(msg, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
			if (*nr < max)
				fds[(*nr)++] = f;
			else
				close(f);
		}
	}
}
