/* The guest agent: what PID 1 runs when the kernel command line has
 * forkbox.agent=1 (see forkbox/agent_proto.h for the wire protocol).
 *
 * Two halves. The per-connection server (agent_serve*.c) has no guest-only
 * assumptions: it compiles into the static guest program and into a host
 * test binary, which drives it over a socketpair. What would change the
 * machine it runs on (hostname, RNG, clock) goes through the hooks in
 * agent_sys.h. The rest (agent_main.c, agent_modules.c, agent_sys.c) is
 * guest-only: module loading, the vsock listener, reaping. */
#ifndef FORKBOX_GUEST_AGENT_H
#define FORKBOX_GUEST_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forkbox/agent_proto.h"

/* Serves one connection: sends HELLO, reads one request, answers it and
 * returns 0, or a negative errno when the connection itself failed (a
 * request that failed was answered with ERROR and still returns 0). It
 * ignores SIGPIPE in the calling process and spawns children: run it in a
 * process of its own, one per connection. Does not close fd. */
int fb_agent_serve(int fd);

/* fb_agent_serve, calling hook->under_way(opaque) exactly once: after the
 * request was read (for REINJECT: after it was answered), or when the
 * connection ends without one. PID 1 keeps a server forked ahead of the
 * next connection (agent_main.c); this is when it forks the one after,
 * so that fork does not compete with a fork child's re-stamp. */
struct fbg_serve_hook {
	void (*under_way)(void *opaque);
	void *opaque;
	bool called;
};

int fb_agent_serve_hooked(int fd, struct fbg_serve_hook *hook);

/* The re-stamp port's server, in PID 1: HELLO, one request, which must
 * be REINJECT (anything else is answered with ERROR). Spawns nothing and
 * leaves the process's signals alone; fd should have send and receive
 * timeouts, since the caller waits meanwhile. */
int fb_agent_serve_restamp(int fd);

/* ---- wire helpers of the serving side (agent_serve_wire.c) ------------ */

struct fbg_msg {
	uint32_t type, len;
	uint8_t *data; /* malloc'd, len bytes (NULL when len is 0) */
};

/* An incremental reader, so an event loop can read frames without
 * blocking; the payload is allocated only after its length passed the
 * cap. */
struct fbg_reader {
	uint8_t hdr[FB_AGENT_HDR_LEN];
	uint32_t hdr_got, got;
	struct fbg_msg msg;
};

/* 1: r->msg is complete (take it, then fbg_reader_reset); 0: no more data
 * now; -ENODATA: the peer closed between messages; -EPIPE: it closed
 * inside one; -EMSGSIZE: the header announced more than cap (the payload
 * is left unread); other negative errno: the read failed. */
int fbg_read_step(int fd, struct fbg_reader *r, uint32_t cap);
void fbg_reader_reset(struct fbg_reader *r); /* frees a message not taken */

/* Blocking (poll) receive of one whole message; same returns as above,
 * 0 for a message. */
int fbg_recv(int fd, struct fbg_msg *m, uint32_t cap);
void fbg_msg_free(struct fbg_msg *m);

/* Blocking (poll) send of one message. */
int fbg_send(int fd, uint32_t type, const void *payload, uint32_t len);
int fbg_send_error(int fd, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int fbg_send_ok(int fd, uint32_t flags, const char *text);
int fbg_send_hello(int fd);
/* On the ready connection: HELLO and then BOOT_TIMES with boot_ns[0..n),
 * in one send so the host never waits between them. */
int fbg_send_ready_hello(int fd, const uint64_t *boot_ns, uint32_t n);
/* The guest's CLOCK_BOOTTIME in ns: what HELLO and BOOT_TIMES carry. */
uint64_t fbg_boottime_ns(void);

/* A bounded queue of outgoing frames for event loops. */
struct fbg_out {
	uint8_t *buf;
	size_t off, len, size;
};

int fbg_out_init(struct fbg_out *o, size_t size);
void fbg_out_free(struct fbg_out *o);
static inline size_t fbg_out_pending(const struct fbg_out *o)
{
	return o->len - o->off;
}
/* Room for n more bytes at the tail (compacting), or NULL. */
uint8_t *fbg_out_reserve(struct fbg_out *o, size_t n);
/* Queues a frame whose payload the caller wrote at reserve() + HDR_LEN. */
void fbg_out_commit_frame(struct fbg_out *o, uint32_t type, uint32_t len);
int fbg_out_frame(struct fbg_out *o, uint32_t type, const void *p, uint32_t len);
/* Sends what the socket takes now: 0 (maybe still pending) or -errno. */
int fbg_out_flush(int fd, struct fbg_out *o);
/* Sends everything, waiting in poll. */
int fbg_out_flush_all(int fd, struct fbg_out *o);

/* Waits in poll until fd has one of events; 0 or -errno. */
int fbg_wait(int fd, short events); /* -ETIMEDOUT past SO_RCV/SNDTIMEO */
/* write(2) until all of buf is written (EINTR retried); 0 or -errno. */
int fbg_write_all(int fd, const void *buf, size_t len);

/* Reads a path field: at most FB_AGENT_MAX_PATH bytes, no NUL, not empty,
 * absolute. 0, or -EINVAL with a reply already sent. */
int fbg_dec_path(int fd, struct fb_agent_dec *d, char *out, size_t size);

/* ---- request handlers (each answers on fd) ---------------------------- */

int fbg_serve_exec(int fd, const struct fbg_msg *req);
int fbg_serve_file_write(int fd, const struct fbg_msg *req);
int fbg_serve_file_read(int fd, const struct fbg_msg *req);
int fbg_serve_stat(int fd, const struct fbg_msg *req);
int fbg_serve_list(int fd, const struct fbg_msg *req);
int fbg_serve_reinject(int fd, const struct fbg_msg *req);

/* ---- guest only (not in the host test build) -------------------------- */

/* PID 1's agent loop; never returns. console_fd may be -1. root_dev: the
 * root disk to switch into ("vda"), or "" to stay in the initramfs.
 * boot_ns: PID 1's boot marks so far (fb_agent_boot_mark; init and
 * mounted filled in, the rest 0): the agent adds its own and sends them
 * to the host after its ready HELLO. */
void fb_agent_run(int console_fd, const char *root_dev,
		  uint64_t boot_ns[FB_AGENT_BOOT_MARKS])
	__attribute__((noreturn));

/* A line on the console (agent_main.c). */
void fbg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Makes the ext4 disk /dev/<dev> the root, with /dev, /proc, /sys and
 * /tmp moved onto it (agent_root.c). 0, or -1 with a line logged. */
int fbg_switch_root(const char *dev);

/* Loads every .ko file in dir, dependencies first (agent_modules.c). */
void fbg_load_modules(const char *dir);

#endif
