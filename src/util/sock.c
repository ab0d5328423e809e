#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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
