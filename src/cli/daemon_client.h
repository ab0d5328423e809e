/* A client of forkboxd (docs/api.yaml) on its Unix socket. The CLI makes,
 * forks and removes boxes through the daemon when it runs, so that the
 * daemon's lifetimes and metrics see them, and needs it for pools and
 * timeouts. libcurl speaks HTTP and is linked into the CLI only: neither
 * libforkbox nor forkboxd needs it. */
#ifndef FB_CLI_DAEMON_CLIENT_H
#define FB_CLI_DAEMON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* jansson's json_t, without its header in every command that only asks
 * whether the daemon runs. */
struct json_t;

/* forkboxd's socket in $FORKBOX_HOME unless FORKBOX_SOCKET names another
 * (FBD_SOCKET_NAME in src/daemon/daemon.h: the two must agree). */
#define FB_DAEMON_SOCKET_NAME "forkboxd.sock"

/* $FORKBOX_SOCKET, else $FORKBOX_HOME/forkboxd.sock. */
int fb_daemon_socket(char *buf, size_t len);

/* True when the socket is there and GET /v1/health answers 200 within
 * 2 s. False, with the reason in fb_last_error(), when it does not or
 * FORKBOX_NO_DAEMON=1. */
bool fb_daemon_running(void);

/* After fb_daemon_running() said false: prints "forkbox CMD: [WHAT: ]
 * needs forkboxd, ..." with the reason and what to do (what may be NULL).
 * Returns the exit status (FB_EXIT_OWN_ERROR). */
int fb_daemon_required(const char *cmd, const char *what);

/* Percent-encodes s as one URL path segment. */
int fb_daemon_escape(const char *s, char *buf, size_t len);

/* One request. body (or NULL) is sent as JSON; *status is the HTTP
 * status (0 when none came) and *response the parsed JSON body, or NULL
 * when it was empty; the caller json_decref()s it, also on failure (a
 * failed fork names the children that did start). Returns 0 on a 2xx;
 * else a negative errno with the daemon's {"error": ...} message, or what
 * kept the request from it, in fb_last_error(). */
int fb_daemon_call(const char *method, const char *path,
		   struct json_t *body, long *status,
		   struct json_t **response);

#endif
