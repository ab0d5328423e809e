/* forkboxd's listeners and its one access handler: who may talk to it
 * (the peer's uid on the Unix socket, a bearer token on TCP), the body,
 * and the route. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/server.h"
#include "forkbox/forkbox.h"
#include "util/error.h"
#include "util/sock.h"

enum transport { UNIX_SOCKET, TCP_SOCKET };

struct listener {
	enum transport transport;
	const struct fbd_config *cfg;
	struct MHD_Daemon *mhd;
};

static struct listener listeners[2];

static bool peer_allowed(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred,
			      &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* Compares all of both, so the time taken says nothing of the token. */
static bool token_matches(const char *got, const char *want)
{
	size_t lg = strlen(got), lw = strlen(want);
	unsigned char diff = lg != lw;

	for (size_t i = 0; i < lw; i++)
		diff |= (unsigned char)(want[i] ^ (i < lg ? got[i] : 0));
	return !diff;
}

static bool bearer_allowed(struct MHD_Connection *conn, const char *token)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    "Authorization");

	return h && !strncmp(h, "Bearer ", 7) && token[0] &&
	       token_matches(h + 7, token);
}

static int split_path(struct fbd_req *r, const char *url)
{
	char *save = NULL, *tok;

	r->path_copy = strdup(url);
	if (!r->path_copy)
		return -ENOMEM;
	for (tok = strtok_r(r->path_copy, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		if (r->nseg == sizeof(r->seg) / sizeof(r->seg[0]))
			return -E2BIG;
		r->seg[r->nseg++] = tok;
	}
	return 0;
}

static size_t body_limit(const struct fbd_req *r)
{
	/* PUT .../files takes a file's bytes; everything else JSON. */
	return !strcmp(r->method, "PUT") ? FBD_MAX_FILE_BODY :
					   FBD_MAX_JSON_BODY;
}

static int append_body(struct fbd_req *r, const char *data, size_t n)
{
	if (r->too_big || r->body.len + n > body_limit(r)) {
		r->too_big = true;
		return 0;
	}
	return fb_buf_append(&r->body, data, n);
}

static enum MHD_Result route(struct fbd_req *r)
{
	if (r->nseg == 1 && !strcmp(r->seg[0], "metrics")) {
		if (strcmp(r->method, "GET"))
			return fbd_reply_error(r, 405, "use GET on /metrics");
		return fbd_metrics(r);
	}
	if (r->nseg < 2 || strcmp(r->seg[0], "v1"))
		return fbd_reply_error(r, 404, "no such endpoint (the API is "
				       "under /v1; see docs/api.yaml)");
	if (!strcmp(r->seg[1], "health") && r->nseg == 2) {
		unsigned n = 0;

		fb_box_list(fbd_count_box, &n);
		return fbd_reply_json(r, 200, json_pack(
			"{s:b,s:s,s:i}", "ok", 1, "version", FBD_VERSION,
			"boxes", (int)n));
	}
	if (!strcmp(r->seg[1], "boxes"))
		return fbd_boxes(r);
	if (!strcmp(r->seg[1], "images"))
		return fbd_images(r);
	if (!strcmp(r->seg[1], "pools"))
		return fbd_pools(r);
	return fbd_reply_error(r, 404, "no such endpoint /%s/%s", r->seg[0],
			       r->seg[1]);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	const struct listener *l = cls;
	struct fbd_req *r = *con_cls;

	if (!r) {
		bool ok;

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->conn = conn;
		r->method = method;
		*con_cls = r;
		/* Who asks is checked on this first call, the headers just
		 * read: MHD queues a response now but not while a body is
		 * coming in, so a refusal later would be an empty reply. */
		ok = l->transport == UNIX_SOCKET ?
		     peer_allowed(conn) : bearer_allowed(conn, l->cfg->token);
		if (!ok)
			return fbd_reply_error(r, l->transport == UNIX_SOCKET ?
					       403 : 401, "%s",
					       l->transport == UNIX_SOCKET ?
					       "only the daemon's user and root "
					       "may use this socket" :
					       "a valid 'Authorization: Bearer "
					       "TOKEN' header is needed");
		r->allowed = true;
		return MHD_YES;
	}
	/* MHD calls no more once a response is queued; were it to, a
	 * refused request must still never reach route(). */
	if (!r->allowed)
		return MHD_NO;
	if (*upload_size) {
		if (append_body(r, upload, *upload_size) < 0)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (split_path(r, url) < 0)
		return fbd_reply_error(r, 404, "no such endpoint");
	return route(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct fbd_req *r = *con_cls;

	if (!r)
		return;
	free(r->body.data);
	free(r->path_copy);
	free(r);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	fputs("forkboxd: http: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* A stale socket file (nobody listening) is removed; a live one means
 * another daemon runs. */
static int listen_unix(const char *path)
{
	struct sockaddr_un addr;
	mode_t old_mask;
	int fd, probe, err = fb_unix_addr(&addr, path);

	if (err < 0)
		return err;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&addr,
				  sizeof(addr)) == 0) {
		close(probe);
		return fb_errorf(-EADDRINUSE, "a forkboxd already listens on "
				 "%s", path);
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket: %s", strerror(errno));
	/* Created 0600: no moment where another user could connect. The
	 * umask is the whole process's: this runs before forkboxd starts
	 * any thread (main.c binds before it loads pools or starts the
	 * reaper, and the Unix socket before MHD's threads), so nothing
	 * else creates a file under 0177 meanwhile. */
	old_mask = umask(0177);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		umask(old_mask);
		close(fd);
		return fb_errorf(err, "bind %s: %s", path, strerror(-err));
	}
	umask(old_mask);
	if (listen(fd, 128) < 0) {
		err = -errno;
		close(fd);
		return fb_errorf(err, "listen %s: %s", path, strerror(-err));
	}
	return fd;
}

static int listen_tcp(const char *hostport)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char host[128], *colon;
	int fd, one = 1, e;

	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon || !colon[1])
		return fb_errorf(-EINVAL, "--tcp wants HOST:PORT, not '%s'",
				 hostport);
	*colon = '\0';
	e = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (e)
		return fb_errorf(-EINVAL, "--tcp %s: %s", hostport,
				 gai_strerror(e));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return fb_errorf(-errno, "socket: %s", strerror(errno));
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, 128) < 0) {
		int err = -errno;

		freeaddrinfo(res);
		close(fd);
		return fb_errorf(err, "bind/listen %s: %s", hostport,
				 strerror(-err));
	}
	freeaddrinfo(res);
	return fd;
}

static int start_one(struct listener *l, int fd)
{
	l->mhd = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_POLL | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, l,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		/* A streamed exec may be silent for a long time. */
		MHD_OPTION_CONNECTION_TIMEOUT, 0u,
		MHD_OPTION_END);
	if (!l->mhd) {
		close(fd);
		return fb_errorf(-EIO, "MHD_start_daemon failed");
	}
	return 0;
}

static bool unix_bound;

int fbd_server_start(const struct fbd_config *cfg)
{
	int fd, err;

	fd = listen_unix(cfg->socket_path);
	if (fd < 0)
		return fd;
	unix_bound = true;
	listeners[0] = (struct listener){ .transport = UNIX_SOCKET, .cfg = cfg };
	err = start_one(&listeners[0], fd);
	if (!err && cfg->tcp_addr[0]) {
		fd = listen_tcp(cfg->tcp_addr);
		listeners[1] = (struct listener){ .transport = TCP_SOCKET,
						  .cfg = cfg };
		err = fd < 0 ? fd : start_one(&listeners[1], fd);
	}
	if (err < 0)
		fbd_server_stop(cfg);
	return err;
}

/* Stops what started; the socket file only if this daemon bound it (a
 * daemon refused because another listens leaves the other's alone). */
void fbd_server_stop(const struct fbd_config *cfg)
{
	for (unsigned i = 0; i < 2; i++)
		if (listeners[i].mhd) {
			MHD_stop_daemon(listeners[i].mhd);
			listeners[i].mhd = NULL;
		}
	if (unix_bound)
		unlink(cfg->socket_path);
	unix_bound = false;
}
