/* Framing for the host's agent client (internal to src/agent/): an
 * incremental reader that allocates a payload only after its length
 * passed the cap, deadline-bounded send and receive, and a bounded queue
 * of outgoing frames for the exec loop. The guest has its own copy of the
 * same few lines (guest/agent_serve_wire.c): the two programs share the
 * protocol header, not a library. */
#ifndef FB_AGENT_WIRE_H
#define FB_AGENT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "forkbox/agent_proto.h"

struct fba_msg {
	uint32_t type, len;
	uint8_t *data; /* malloc'd; NULL when len is 0 */
};

struct fba_reader {
	uint8_t hdr[FB_AGENT_HDR_LEN];
	uint32_t hdr_got, got;
	struct fba_msg msg;
};

/* A deadline in CLOCK_MONOTONIC ms from a timeout (< 0: none, -1). */
int64_t fba_deadline(int timeout_ms);
/* The timeout left until a deadline: -1 for none, else >= 0. */
int fba_ms_left(int64_t deadline);
/* The agent's HELLO on fd (dial.c), its version checked. */
struct fb_agent_hello;
int fba_read_hello(int fd, int64_t deadline, struct fb_agent_hello *out);
/* Waits for events on fd: 0, -ETIMEDOUT or -errno (no message set). */
int fba_wait(int fd, short events, int64_t deadline);

/* 1: r->msg complete; 0: no data now; -ENODATA: closed between messages;
 * -EPIPE: closed inside one; -EMSGSIZE: over cap; else -errno. No message
 * is set. */
int fba_read_step(int fd, struct fba_reader *r, uint32_t cap);
void fba_reader_reset(struct fba_reader *r);
void fba_msg_free(struct fba_msg *m);

/* Whole-message receive and send within a deadline; on failure the
 * message names `what`. */
int fba_recv(int fd, struct fba_msg *m, uint32_t cap, int64_t deadline,
	     const char *what);
int fba_send_raw(int fd, const void *buf, size_t len, int64_t deadline,
		 const char *what);
int fba_send(int fd, uint32_t type, const void *p, uint32_t len,
	     int64_t deadline, const char *what);

/* An ERROR message as -errno with its text in fb_last_error(). */
int fba_agent_error(const struct fba_msg *m, const char *what);

/* Receives the reply to a request: an ERROR becomes its -errno; any type
 * other than want is -EPROTO. */
int fba_recv_reply(int fd, struct fba_msg *m, uint32_t want, uint32_t cap,
		   int64_t deadline, const char *what);

/* Writes all of buf to a plain fd (pipe, file, tty), waiting in poll if
 * it is non-blocking. */
int fba_write_fd(int fd, const void *buf, size_t len);

struct fba_out {
	uint8_t *buf;
	size_t off, len, size;
};

int fba_out_init(struct fba_out *o, size_t size);
void fba_out_free(struct fba_out *o);
static inline size_t fba_out_pending(const struct fba_out *o)
{
	return o->len - o->off;
}
uint8_t *fba_out_reserve(struct fba_out *o, size_t n);
void fba_out_commit_frame(struct fba_out *o, uint32_t type, uint32_t len);
int fba_out_frame(struct fba_out *o, uint32_t type, const void *p, uint32_t len);
/* Sends what the socket takes now; 0 or -errno. */
int fba_out_flush(int fd, struct fba_out *o);

#endif
