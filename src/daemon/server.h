/* forkboxd's HTTP listeners (server.c). */
#ifndef FB_DAEMON_SERVER_H
#define FB_DAEMON_SERVER_H

#include "daemon/daemon.h"

int fbd_server_start(const struct fbd_config *cfg);
void fbd_server_stop(const struct fbd_config *cfg);

#endif
