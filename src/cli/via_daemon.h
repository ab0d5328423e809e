/* create, fork and rm through forkboxd: each prints what the command
 * prints when it works directly and returns the exit status. */
#ifndef FB_CLI_VIA_DAEMON_H
#define FB_CLI_VIA_DAEMON_H

#include <stdbool.h>

#include "box/box.h"

/* What `forkbox create` asks the daemon for. */
struct fb_cli_daemon_create {
	const char *pool;       /* a box from this pool; the rest but the
				 * lifetimes is then the pool's */
	const char *name;       /* or NULL */
	const struct fb_box_spec *spec; /* image (NULL: none), cpus, mem,
					 * ksm */
	long timeout_s;         /* -1: not given */
	long idle_timeout_s;    /* -1: not given */
};

int fb_cli_daemon_create(const struct fb_cli_daemon_create *req);
/* parent_id: the box's full id, found (and found running) here. */
int fb_cli_daemon_fork(const char *parent_id, unsigned n, bool json);
/* Stops (if it runs) and removes the box. */
int fb_cli_daemon_rm(const char *id);

#endif
