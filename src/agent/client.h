/* The host's client of the guest agent (forkbox/agent_proto.h; the
 * protocol is described in docs/agent-protocol.md).
 *
 * One request per connection: dial (or accept) a connection, which
 * yields the agent's HELLO, make one call on it, close it. Concurrency
 * comes from many connections. Every call returns 0 (or an fd) or a
 * negative errno with a one-line message in fb_last_error(); an ERROR
 * from the agent comes back as its errno (-ENOENT, -EISDIR...) with its
 * text. Every length from the agent is checked against the protocol's
 * caps before anything is allocated for it. Calls never raise SIGPIPE. */
#ifndef FB_AGENT_CLIENT_H
#define FB_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forkbox/agent_proto.h"

struct fb_agent_hello {
	uint32_t version;     /* FB_AGENT_VERSION */
	uint32_t pid;         /* of the agent process serving the connection */
	uint64_t boottime_ns; /* the guest's CLOCK_BOOTTIME when it said hello */
	char hostname[FB_AGENT_MAX_HOSTNAME + 1];
};

/* Connects to the box's vsock Unix socket (Firecracker's hybrid vsock:
 * "CONNECT <port>\n", "OK <hostport>\n"), then reads the agent's HELLO,
 * all within timeout_ms (< 0: no deadline). Returns the connected fd;
 * hello may be NULL. */
int fb_agent_dial(const char *uds_path, uint32_t port, int timeout_ms,
		  struct fb_agent_hello *hello);

/* Only the handshake: the fd once the VMM said OK, the agent's HELLO
 * still unread in it. A caller may send its request at once and read
 * the HELLO after (the agent reads requests only after its HELLO, so
 * nothing is lost), saving a round trip to the guest. */
int fb_agent_connect(const char *uds_path, uint32_t port, int timeout_ms);

/* Reads the HELLO on an fd that is already connected to the agent (what
 * fb_agent_dial does after the handshake); checks the version. */
int fb_agent_handshake(int fd, int timeout_ms, struct fb_agent_hello *hello);

/* The ready connection: accepts one connection on listen_fd (the Unix
 * listener at <boxdir>/vsock.sock_<FB_AGENT_READY_PORT>), reads its HELLO
 * and closes it, within timeout_ms. -ETIMEDOUT if the agent never came. */
int fb_agent_accept_hello(int listen_fd, int timeout_ms,
			  struct fb_agent_hello *out);

/* The guest's boot marks from BOOT_TIMES: CLOCK_BOOTTIME ns, indexed by
 * fb_agent_boot_mark, 0 where the guest did not pass or did not say. */
struct fb_agent_boot {
	uint64_t ns[FB_AGENT_BOOT_MARKS];
};

/* fb_agent_accept_hello, then the BOOT_TIMES that follows the HELLO on
 * the ready connection (all zero when an agent from before BOOT_TIMES
 * closed after its HELLO), within the same timeout_ms. */
int fb_agent_accept_ready(int listen_fd, int timeout_ms,
			  struct fb_agent_hello *hello,
			  struct fb_agent_boot *boot);

/* ---- exec ------------------------------------------------------------- */

struct fb_agent_exec_req {
	const char *const *argv; /* NULL-terminated, at least argv[0] */
	const char *const *env;  /* "K=V", NULL-terminated, or NULL; laid over
				    the agent's (PATH, HOME) */
	const char *cwd;         /* NULL: "/" */
	bool tty;                /* one pty: stdin and output on it, all
				    output comes back on stdout_fd */
	uint16_t tty_rows, tty_cols; /* 0: 24 x 80 */
	uint32_t timeout_ms;     /* 0: none; the agent kills the process group */
	int signal_fd;           /* -1, or the read end of a pipe that
				    fb_agent_signal() writes to */
};

/* Runs a command and relays its streams until it exits: stdin_fd (or -1
 * for /dev/null; a pipe, tty or file, read to EOF) to the command,
 * its stdout and stderr to stdout_fd and stderr_fd (-1 discards), and
 * signals from req->signal_fd to its process group. *exit_status is
 * docker-style: the exit code, 128 + N for signal N, 127 when the command
 * was not found, 126 when it could not be executed (the agent's reason is
 * then written to stderr_fd as "forkbox: ...\n" and is also in
 * fb_last_error()). Returns 0 once the command ended, -ETIMEDOUT (with
 * *exit_status set, 137) when the agent killed it for req->timeout_ms, or
 * a negative errno when the request or the connection failed. */
int fb_agent_exec(int fd, const struct fb_agent_exec_req *req, int stdin_fd,
		  int stdout_fd, int stderr_fd, int *exit_status);

/* Asks a running fb_agent_exec to deliver signo to the command's process
 * group: writes it to the pipe whose read end is req->signal_fd. One
 * write(2) of 4 bytes, so it is safe from another thread and from a
 * signal handler (a CLI's SIGINT handler can forward ^C). */
int fb_agent_signal(int signal_wfd, int signo);

/* ---- files ------------------------------------------------------------ */

/* Writes guest_path (absolute) atomically: the agent writes a temporary
 * file beside it, fsyncs and renames it, so readers see the old file or
 * the whole new one. The data comes from src_fd (read to EOF; its size
 * is announced when it is a regular file) or, when src_fd < 0, from
 * buf/len. mode is the exact permission bits (<= 07777). */
int fb_agent_write_file(int fd, const char *guest_path, uint32_t mode,
			int src_fd, const void *buf, size_t len);

/* Copies the regular file guest_path into dst_fd. -EISDIR, -ENOENT...
 * come from the agent; -EFBIG once the guest sent more than max_bytes
 * (0: no cap), so that a guest cannot fill a host's memory file. On an
 * error after some data, dst_fd holds a prefix. */
int fb_agent_read_file(int fd, const char *guest_path, int dst_fd,
		       uint64_t max_bytes);

struct fb_agent_stat {
	uint32_t type;     /* enum fb_agent_file_type */
	uint32_t mode;     /* permission bits */
	uint64_t size;
	uint64_t mtime_ns; /* since the epoch, guest clock */
};

/* stat(2) in the guest (follows symlinks). timeout_ms < 0: none. */
int fb_agent_stat(int fd, const char *guest_path, struct fb_agent_stat *st,
		  int timeout_ms);

struct fb_agent_dirent {
	char name[FB_AGENT_MAX_NAME + 1];
	uint32_t type; /* of the entry itself: a symlink is FB_AGENT_FT_LNK */
	uint32_t mode;
	uint64_t size;
};

/* The entries of a guest directory (not "." or ".."), in directory order,
 * at most FB_AGENT_MAX_LIST of them (*truncated says when there were
 * more). *entries is malloc'd; free() it. */
int fb_agent_list(int fd, const char *guest_path,
		  struct fb_agent_dirent **entries, size_t *count,
		  bool *truncated, int timeout_ms);

/* ---- identity after a fork -------------------------------------------- */

struct fb_agent_reinject {
	const char *box_id;      /* [A-Za-z0-9._-], or NULL/"" to keep */
	const char *hostname;    /* or NULL/"" to keep */
	const uint8_t *entropy;  /* fresh bytes from the host's CSPRNG */
	size_t entropy_len;      /* <= FB_AGENT_MAX_ENTROPY; 0: no reseed */
	uint64_t realtime_ns;    /* CLOCK_REALTIME to set; 0: keep */
};

/* Gives a forked guest its new identity: entropy added and the CRNG
 * reseeded, clock set, hostname set, box id stored in
 * FB_AGENT_BOX_ID_PATH. *done (may be NULL) gets enum
 * fb_agent_reinject_done bits of what was done. */
int fb_agent_reinject(int fd, const struct fb_agent_reinject *ri,
		      uint32_t *done, int timeout_ms);

/* When a dial's steps ended, in ms from its start: the guest's kernel
 * took the connection, its agent said HELLO (it accepted and forked a
 * server), the re-stamp was acknowledged. For the box's log: which of
 * them a slow fork waits on. */
struct fb_agent_dial_times {
	double connected_ms, hello_ms, done_ms;
};

/* The same on a new connection to the agent behind uds_path, the
 * request sent before the agent's HELLO is read (fb_agent_connect):
 * one trip to the guest and back instead of two. times may be NULL. */
int fb_agent_dial_reinject(const char *uds_path,
			   const struct fb_agent_reinject *ri,
			   uint32_t *done, struct fb_agent_dial_times *times,
			   int timeout_ms);

#endif
