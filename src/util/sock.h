/* Unix socket addresses by path, checked against sun_path's size. */
#ifndef FB_UTIL_SOCK_H
#define FB_UTIL_SOCK_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* The most fds one fb_send_with_fds message carries. */
#define FB_SOCK_MAX_FDS 64

/* Fills addr for path (NUL-terminated inside sun_path); -ENAMETOOLONG,
 * with a message naming the path, when it does not fit. */
int fb_unix_addr(struct sockaddr_un *addr, const char *path);

/* One sendmsg(MSG_NOSIGNAL) of len bytes with nr (<= FB_SOCK_MAX_FDS)
 * fds attached (SCM_RIGHTS): what sendmsg returns, errno set. */
ssize_t fb_send_with_fds(int sock, const void *buf, size_t len,
			 const int *fds, unsigned nr);

/* The fds a received message carried (SCM_RIGHTS), in order: appended
 * to fds while *nr < max, the rest closed (a peer cannot make us hold
 * more than we asked for). */
void fb_take_fds(struct msghdr *msg, int *fds, unsigned max, unsigned *nr);

#endif
