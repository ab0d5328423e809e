/* Unix socket addresses by path, checked against sun_path's size. */
#ifndef FB_UTIL_SOCK_H
#define FB_UTIL_SOCK_H

#include <sys/un.h>

/* Fills addr for path (NUL-terminated inside sun_path); -ENAMETOOLONG,
 * with a message naming the path, when it does not fit. */
int fb_unix_addr(struct sockaddr_un *addr, const char *path);

#endif
