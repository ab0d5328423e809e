/* forkboxd's spawner: the small process every box's VMM is forked from.
 *
 * fb_box_create and fb_box_fork fork their caller to make each VMM. A
 * VMM forked from the daemon inherits its heap, its threads' stacks and
 * malloc arenas, and keeps its own copy of each such page the daemon
 * writes afterwards: 2.7-3.9 MiB of host memory per fork child in the
 * lab, against 0.5-1.0 MiB for one made by the forkbox CLI. So the
 * daemon forks this process at start, before its first thread, and box
 * creation and forking go through it. It only reads requests and forks
 * a worker for each; the worker calls the library (spawn_work.c), sends
 * the reply and exits, so a VMM is a fork of a fork of a small process.
 *
 * A request is one SOCK_SEQPACKET message on the shared socket, JSON,
 * with the sending thread's own reply socket attached (SCM_RIGHTS); the
 * reply is one message on that. The spawner keeps each reply socket
 * until it has reaped the worker: a worker that died without replying is
 * told so by the spawner, and EOF on a reply socket means the spawner
 * itself is gone. No caller waits for ever on a dead process. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "forkbox/forkbox.h"
#include "util/error.h"
#include "util/file.h"
#include "util/sock.h"

#define MAX_REQUEST (64u << 10)  /* a spec's paths, a few KiB at most */
#define MAX_REPLY (16u << 20)    /* 1024 fork children are ~40 KiB */
#define MAX_INFLIGHT 256         /* workers at once; each holds an fd */

/* ---- the spawner process ------------------------------------------------ */

/* Static, not malloc'd: the spawner allocates nothing, so that what a
 * worker (and its VMMs) inherits stays this small. */
static char request[MAX_REQUEST];
static struct inflight {
	pid_t pid;
	int fd;  /* its reply socket */
} inflight[MAX_INFLIGHT];
static unsigned nr_inflight;

/* A reply the spawner makes itself, with no JSON library: the texts here
 * hold no quote or backslash, so they are valid JSON as they are. */
static void reply_error(int fd, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_error(int fd, int err, const char *fmt, ...)
{
	char why[256], text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "{\"err\":%d,\"error\":\"forkboxd's "
		 "spawner: %s\"}", err, why);
	/* Never blocks: the socket is new and holds nothing yet. */
	(void)send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static bool send_reply(int fd, const char *text)
{
	static const char no_text[] = "{\"err\":-12,\"error\":\"forkboxd's "
		"spawner: its reply could not be made (out of memory)\"}";
	ssize_t n;

	if (!text)
		text = no_text;
	do
		n = send(fd, text, strlen(text), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EMSGSIZE) {
		reply_error(fd, -EMSGSIZE, "a reply of %zu bytes is too big",
			    strlen(text));
		return true;
	}
	if (n < 0)
		fprintf(stderr, "forkboxd: spawner worker %d: send: %s (the "
			"reply is lost)\n", (int)getpid(), strerror(errno));
	return n >= 0;
}

/* A request's worker: the library call, the reply, the end. */
static void __attribute__((noreturn)) worker_main(int fd, size_t len)
{
	sigset_t chld;
	json_t *reply;
	char *text;
	bool sent;

	/* Only its reply socket: the spawner's socket and other requests'
	 * reply sockets must not live on here, let alone in the VMMs. */
	fb_close_fds_except(&fd, 1);
	/* The name the VMMs had when the daemon forked them itself. */
	prctl(PR_SET_NAME, "forkboxd");
	/* The signal state the library's callers have (the CLI): SIGPIPE
	 * not ignored, SIGCHLD not blocked. SIGTERM, SIGINT and SIGHUP stay
	 * blocked, as they were when the daemon made boxes in-process: a
	 * daemon being stopped lets a boot or fork under way finish (the
	 * VMM blocks them itself for its signalfd). */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);

	reply = fbd_spawn_serve(request, len);
	text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	sent = send_reply(fd, text);
	_exit(sent ? 0 : 1);
}

/* Closes the reply socket of each worker that ended, after saying why to
 * a caller whose worker died without replying. */
static void reap(int sig_fd)
{
	struct signalfd_siginfo si;
	pid_t pid;
	int st;

	while (read(sig_fd, &si, sizeof(si)) == sizeof(si))
		;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (unsigned i = 0; i < nr_inflight; i++) {
			struct inflight *w = &inflight[i];

			if (w->pid != pid)
				continue;
			if (WIFSIGNALED(st))
				reply_error(w->fd, -EIO, "its worker %d was "
					    "killed by signal %d before it "
					    "replied", (int)pid, WTERMSIG(st));
			else if (WEXITSTATUS(st))
				reply_error(w->fd, -EIO, "its worker %d exited "
					    "with status %d before it replied",
					    (int)pid, WEXITSTATUS(st));
			close(w->fd);
			*w = inflight[--nr_inflight];
			break;
		}
	}
}

/* The first fd a message came with; any others closed. */
static int take_fd(struct msghdr *m)
{
	unsigned nr = 0;
	int fd = -1;

	fb_take_fds(m, &fd, 1, &nr);
	return nr ? fd : -1;
}

static void take_request(int sock)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = request, .iov_len = sizeof(request) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	pid_t pid;
	int fd;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		fprintf(stderr, "forkboxd: spawner: recvmsg: %s\n",
			strerror(errno));
		_exit(1);
	}
	/* The daemon closed its end (it stopped, or died): done. Workers
	 * under way finish on their own. */
	if (n == 0)
		_exit(0);
	fd = take_fd(&m);
	if (fd < 0) {
		fprintf(stderr, "forkboxd: spawner: a request without its "
			"reply socket (dropped)\n");
		return;
	}
	if (m.msg_flags & MSG_TRUNC) {
		reply_error(fd, -E2BIG, "a request over %u bytes", MAX_REQUEST);
		close(fd);
		return;
	}
	if (nr_inflight == MAX_INFLIGHT) {
		reply_error(fd, -EAGAIN, "%u requests under way already",
			    MAX_INFLIGHT);
		close(fd);
		return;
	}
	pid = fork();
	if (pid == 0)
		worker_main(fd, (size_t)n);
	if (pid < 0) {
		reply_error(fd, -errno, "fork: %s", strerror(errno));
		close(fd);
		return;
	}
	inflight[nr_inflight++] = (struct inflight){ .pid = pid, .fd = fd };
}

static void __attribute__((noreturn)) spawner_main(int sock, pid_t daemon_pid)
{
	char hello[256] = "ok";
	sigset_t chld;
	int sig_fd = -1, null_fd;

	/* The daemon's main thread forked it, and lives as long as the
	 * daemon: a daemon killed outright takes its spawner along. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		snprintf(hello, sizeof(hello), "prctl(PR_SET_PDEATHSIG): %s",
			 strerror(errno));
	if (getppid() != daemon_pid)
		_exit(0);
	prctl(PR_SET_NAME, "forkboxd-spawn");
	/* Its own session: a ^C or hangup for the daemon's terminal is the
	 * daemon's to handle, not a kill of boxes half made. */
	setsid();
	fb_close_fds_except(&sock, 1);
	/* Not the daemon's stdout: whoever reads it until EOF must not
	 * wait on this process too. stderr stays the daemon's log. */
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
		if (null_fd > STDERR_FILENO)
			close(null_fd);
	}
	/* Workers are reaped as they end (a signalfd); never SIG_IGN,
	 * which the workers would inherit and the library's waitpid of its
	 * own children would then fail. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0 && !strcmp(hello, "ok"))
		snprintf(hello, sizeof(hello), "signalfd: %s",
			 strerror(errno));
	if (send(sock, hello, strlen(hello), MSG_NOSIGNAL) < 0 ||
	    strcmp(hello, "ok"))
		_exit(1);
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
				       { .fd = sig_fd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "forkboxd: spawner: poll: %s\n",
				strerror(errno));
			_exit(1);
		}
		if (p[1].revents)
			reap(sig_fd);
		if (p[0].revents)
			take_request(sock);
	}
}

/* ---- the daemon's side -------------------------------------------------- */

/* Sends are one message each, atomic on their own; the lock keeps
 * spawner_fd from closing under a sender (fbd_spawner_stop). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int spawner_fd = -1;
static pid_t spawner_pid = -1;
static char spawner_end[64];  /* how it ended, once reaped */

int fbd_spawner_start(void)
{
	pid_t daemon_pid = getpid(), pid;
	char hello[256];
	ssize_t n;
	int sv[2], err;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fb_errorf(-errno, "socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		err = fb_errorf(-errno, "fork of the spawner: %s",
				strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0)
		spawner_main(sv[1], daemon_pid);
	close(sv[1]);
	/* Its first message: "ok", or why it could not start. */
	do
		n = recv(sv[0], hello, sizeof(hello) - 1, 0);
	while (n < 0 && errno == EINTR);
	hello[n > 0 ? n : 0] = '\0';
	if (n < 0)
		err = fb_errorf(-errno, "recv from the spawner: %s",
				strerror(errno));
	else if (strcmp(hello, "ok"))
		err = fb_errorf(-EIO, "forkboxd's spawner: %s", n ? hello :
				"it died as it started");
	else
		err = 0;
	if (err < 0) {
		close(sv[0]);
		waitpid(pid, NULL, 0);
		return err;
	}
	spawner_fd = sv[0];
	spawner_pid = pid;
	return 0;
}

void fbd_spawner_stop(void)
{
	pid_t pid;

	pthread_mutex_lock(&lock);
	if (spawner_fd >= 0)
		close(spawner_fd);
	spawner_fd = -1;
	pid = spawner_pid;
	spawner_pid = -1;
	pthread_mutex_unlock(&lock);
	/* EOF ends it at once (workers under way go on on their own). */
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* The error for a spawner that is gone, reaped if it can be already. */
static int spawner_died(void)
{
	char how[sizeof(spawner_end)];
	int st;

	pthread_mutex_lock(&lock);
	if (spawner_pid > 0 &&
	    waitpid(spawner_pid, &st, WNOHANG) == spawner_pid) {
		spawner_pid = -1;
		if (WIFSIGNALED(st))
			snprintf(spawner_end, sizeof(spawner_end),
				 " (killed by signal %d)", WTERMSIG(st));
		else
			snprintf(spawner_end, sizeof(spawner_end),
				 " (exit status %d)", WEXITSTATUS(st));
	}
	snprintf(how, sizeof(how), "%s", spawner_end);
	pthread_mutex_unlock(&lock);
	return fb_errorf(-EPIPE, "forkboxd's spawner process died%s: no box "
			 "can be created or forked until forkboxd is restarted",
			 how);
}

static int send_request(const char *text, int reply_fd)
{
	size_t len = strlen(text);
	ssize_t n;
	int e;

	if (len > MAX_REQUEST)
		return fb_errorf(-E2BIG, "forkboxd's spawner: a request of %zu "
				 "bytes (at most %u)", len, MAX_REQUEST);
	pthread_mutex_lock(&lock);
	if (spawner_fd < 0) {
		pthread_mutex_unlock(&lock);
		return fb_errorf(-EPIPE, "forkboxd's spawner is not running");
	}
	do
		n = fb_send_with_fds(spawner_fd, text, len, &reply_fd, 1);
	while (n < 0 && errno == EINTR);
	e = errno;
	pthread_mutex_unlock(&lock);
	if (n >= 0)
		return 0;
	if (e == EPIPE || e == ECONNRESET || e == ECONNREFUSED)
		return spawner_died();
	return fb_errorf(-e, "sendmsg to forkboxd's spawner: %s", strerror(e));
}

static int read_reply(int fd, json_t **reply)
{
	json_error_t jerr;
	ssize_t n;
	char peek, *buf;

	/* The reply's size first (MSG_TRUNC: its whole length); it blocks
	 * for as long as the box takes, the library's own deadlines apart. */
	do
		n = recv(fd, &peek, 1, MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fb_errorf(-errno, "recv from forkboxd's spawner: %s",
				 strerror(errno));
	/* The spawner holds this socket until its worker is reaped, and
	 * replies for a worker that died: EOF is the spawner gone. */
	if (n == 0)
		return spawner_died();
	if ((size_t)n > MAX_REPLY)
		return fb_errorf(-EPROTO, "forkboxd's spawner: a reply of %zd "
				 "bytes", n);
	buf = malloc((size_t)n);
	if (!buf)
		return fb_errorf(-ENOMEM, "malloc for a reply of %zd bytes", n);
	do
		n = recv(fd, buf, (size_t)n, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = fb_errorf(-errno, "recv from forkboxd's spawner: %s",
				    strerror(errno));

		free(buf);
		return err;
	}
	*reply = json_loadb(buf, (size_t)n, 0, &jerr);
	free(buf);
	if (!json_is_object(*reply)) {
		json_decref(*reply);
		*reply = NULL;
		return fb_errorf(-EPROTO, "forkboxd's spawner: a reply that is "
				 "not a JSON object: %s", jerr.text);
	}
	return 0;
}

/* One request, its reply in *reply (the caller's to json_decref). */
static int call(json_t *req, json_t **reply)
{
	char *text = json_dumps(req, JSON_COMPACT);
	int sv[2], err;

	*reply = NULL;
	if (!text)
		return fb_errorf(-ENOMEM, "json_dumps of a spawner request "
				 "failed");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = fb_errorf(-errno, "socketpair: %s", strerror(errno));
		free(text);
		return err;
	}
	err = send_request(text, sv[1]);
	free(text);
	/* Ours closed either way: the spawner holds the only other copy, so
	 * its death reads as EOF. */
	close(sv[1]);
	if (!err)
		err = read_reply(sv[0], reply);
	close(sv[0]);
	return err;
}

/* The reply's err and error: the library's return and message. */
static int reply_status(json_t *reply)
{
	json_t *e = json_object_get(reply, "err");
	const char *msg = json_string_value(json_object_get(reply, "error"));
	json_int_t err = json_integer_value(e);

	if (!json_is_integer(e) || err > 0 || err < -4095 || (err && !msg))
		return fb_errorf(-EPROTO, "forkboxd's spawner: a reply without "
				 "a valid 'err'");
	if (err < 0)
		return fb_errorf((int)err, "%s", msg);
	return 0;
}

static bool valid_id(const char *s)
{
	return s && strlen(s) == FB_BOX_ID_LEN;
}

int fbd_box_create(const struct fb_box_spec *spec, const char *name,
		   char id[FB_BOX_ID_LEN + 1])
{
	json_t *spec_j, *req, *reply;
	const char *got;
	int err = fbd_spec_json(spec, &spec_j);

	if (err < 0)
		return err;
	req = json_pack("{s:s,s:O,s:s*}", "op", "create", "spec", spec_j,
			"name", name);
	json_decref(spec_j);
	if (!req)
		return fb_errorf(-EINVAL, "json_pack of a create request "
				 "failed (a name that is not UTF-8?)");
	err = call(req, &reply);
	json_decref(req);
	if (!err)
		err = reply_status(reply);
	if (!err) {
		got = json_string_value(json_object_get(reply, "id"));
		if (valid_id(got))
			memcpy(id, got, FB_BOX_ID_LEN + 1);
		else
			err = fb_errorf(-EPROTO, "forkboxd's spawner: a create "
					"reply without a box id");
	}
	json_decref(reply);
	return err;
}

static double number(json_t *reply, const char *key)
{
	return json_number_value(json_object_get(reply, key));
}

/* res from a fork reply: the children first, so that a failed fork still
 * names those it made. */
static int fork_result(json_t *reply, unsigned n,
		       struct fb_box_fork_result *res)
{
	json_t *ids = json_object_get(reply, "ids"), *v;
	size_t i;

	res->pause_ms = number(reply, "pause_ms");
	res->template_ms = number(reply, "template_ms");
	res->disk_ms = number(reply, "disk_ms");
	res->total_ms = number(reply, "total_ms");
	res->layers = (unsigned)json_integer_value(json_object_get(reply,
								   "layers"));
	res->runs = (unsigned long long)json_integer_value(
		json_object_get(reply, "runs"));
	if (!ids)
		return reply_status(reply);
	if (!json_is_array(ids) || json_array_size(ids) > n)
		return fb_errorf(-EPROTO, "forkboxd's spawner: a fork reply "
				 "with %zu ids for %u children",
				 json_array_size(ids), n);
	/* n of them, as the library allocates. */
	res->ids = calloc(n ? n : 1, sizeof(*res->ids));
	if (!res->ids)
		return fb_errorf(-ENOMEM, "calloc for %u children", n);
	json_array_foreach(ids, i, v) {
		const char *id = json_string_value(v);

		if (!valid_id(id))
			return fb_errorf(-EPROTO, "forkboxd's spawner: a fork "
					 "reply with a bad id");
		memcpy(res->ids[res->nr++].id, id, FB_BOX_ID_LEN + 1);
	}
	return reply_status(reply);
}

int fbd_box_fork(const struct fb_box_info *parent, unsigned n,
		 const struct fb_box_spec *spec,
		 struct fb_box_fork_result *res)
{
	json_t *spec_j, *req, *reply;
	int err;

	memset(res, 0, sizeof(*res));
	err = fbd_spec_json(spec, &spec_j);
	if (err < 0)
		return err;
	req = json_pack("{s:s,s:O,s:s,s:I}", "op", "fork", "spec", spec_j,
			"parent", parent->id, "n", (json_int_t)n);
	json_decref(spec_j);
	if (!req)
		return fb_errorf(-EINVAL, "json_pack of a fork request failed");
	err = call(req, &reply);
	json_decref(req);
	if (!err)
		err = fork_result(reply, n, res);
	json_decref(reply);
	return err;
}
