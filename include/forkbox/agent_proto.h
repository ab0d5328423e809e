/* The guest agent's wire protocol over virtio-vsock, shared by the host's
 * client (src/agent/) and the agent (guest/agent*.c). docs/agent-protocol.md
 * is the reader's description; this header is the normative one.
 *
 * A message is an 8-byte header, u32 type then u32 payload length, both
 * little-endian, followed by the payload. Payload fields are encoded with
 * the helpers below: u32/u64 little-endian, strings as a u32 length and
 * that many bytes (no NUL terminator), in the order each message lists.
 * Both peers treat the other as hostile: every length and count is checked
 * against the caps here before anything is allocated for it.
 *
 * Fixed-width types, <string.h> and util/le.h (header-only) only, so the
 * static guest and the host library compile the same file. */
#ifndef FORKBOX_AGENT_PROTO_H
#define FORKBOX_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/le.h"

/* Kernel command line key: "forkbox.agent=1" makes PID 1 run the agent
 * (after its mounts) instead of a command from forkbox.cmd. */
#define FB_CMDLINE_AGENT "forkbox.agent="

#define FB_AGENT_VERSION 1u     /* bumped on any incompatible change */
#define FB_AGENT_PORT 1024u     /* the agent listens here (any CID) */
#define FB_AGENT_READY_PORT 1025u /* the agent dials the host (CID 2) here */
/* REINJECT only, served by PID 1 itself rather than a forked server: a
 * fork in a just-forked guest copies on write what the fork path waits
 * for. Hosts fall back to FB_AGENT_PORT when nothing listens here (an
 * agent from before it, in an old snapshot). */
#define FB_AGENT_RESTAMP_PORT 1026u
#define FB_AGENT_HOST_CID 2u

/* ---- caps ------------------------------------------------------------- */

#define FB_AGENT_HDR_LEN 8u
#define FB_AGENT_MAX_PAYLOAD (1u << 20) /* any message */
#define FB_AGENT_CHUNK (64u * 1024u)    /* what senders put in one data msg */
#define FB_AGENT_MAX_ARGS 4096u         /* argv entries */
#define FB_AGENT_MAX_ENV 4096u          /* env entries */
#define FB_AGENT_MAX_PATH 4096u         /* bytes in a path, cwd */
#define FB_AGENT_MAX_NAME 255u          /* bytes in a directory entry name */
#define FB_AGENT_MAX_HOSTNAME 64u       /* HOST_NAME_MAX */
#define FB_AGENT_MAX_BOX_ID 128u
#define FB_AGENT_MAX_ENTROPY 256u       /* bytes of entropy in REINJECT */
#define FB_AGENT_MAX_TEXT 1024u         /* ERROR / OK text */
#define FB_AGENT_MAX_LIST 4096u         /* entries in one LIST_REPLY */
#define FB_AGENT_MAX_BOOT_MARKS 64u     /* count in BOOT_TIMES */

/* ---- message types ---------------------------------------------------- */

enum fb_agent_type {
	/* Any direction, any time. */
	FB_AGENT_HELLO = 1,      /* agent -> host, first on every connection */
	FB_AGENT_ERROR = 2,      /* i32 errno, str text */
	FB_AGENT_OK = 3,         /* u32 flags, str text */
	FB_AGENT_BOOT_TIMES = 4, /* agent -> host, only on the ready connection,
				    right after its HELLO: u32 count, count x
				    u64 boottime_ns (fb_agent_boot_mark) */

	/* EXEC and its streams. */
	FB_AGENT_EXEC = 0x10,    /* host -> agent: see fb_agent_exec_flags */
	FB_AGENT_STDIN = 0x11,   /* host -> agent: raw bytes */
	FB_AGENT_STDIN_EOF = 0x12, /* host -> agent: empty */
	FB_AGENT_SIGNAL = 0x13,  /* host -> agent: u32 signo */
	FB_AGENT_STARTED = 0x14, /* agent -> host: u32 pid */
	FB_AGENT_STDOUT = 0x15,  /* agent -> host: raw bytes */
	FB_AGENT_STDERR = 0x16,  /* agent -> host: raw bytes */
	FB_AGENT_EXIT = 0x17,    /* agent -> host: u32 kind, i32 value, u32 flags */

	/* Files. */
	FB_AGENT_FILE_WRITE = 0x20, /* u32 mode, u64 size, str path; DATA.. END */
	FB_AGENT_DATA = 0x21,       /* raw bytes, either direction */
	FB_AGENT_END = 0x22,        /* empty: the data stream is complete */
	FB_AGENT_FILE_READ = 0x23,  /* str path -> DATA.. END, or ERROR */
	FB_AGENT_STAT = 0x24,       /* str path -> STAT_REPLY or ERROR */
	FB_AGENT_STAT_REPLY = 0x25, /* u32 type, u32 mode, u64 size, i64 mtime_ns */
	FB_AGENT_LIST = 0x26,       /* str path -> LIST_REPLY or ERROR */
	FB_AGENT_LIST_REPLY = 0x27, /* u32 flags, u32 count, count x entry */

	/* Identity after a fork. */
	FB_AGENT_REINJECT = 0x30, /* str box_id, str hostname, str entropy,
				     u64 realtime_ns -> OK or ERROR */
};

/* EXEC payload: u32 flags, u32 timeout_ms (0: none), u32 tty_rows,
 * u32 tty_cols (0: 24x80), str cwd ("" : "/"), u32 argc, argc x str,
 * u32 envc, envc x str ("K=V"). */
enum fb_agent_exec_flags {
	FB_AGENT_EXEC_TTY = 1u << 0,   /* one pty for stdin, stdout, stderr */
	FB_AGENT_EXEC_STDIN = 1u << 1, /* stdin open (STDIN msgs), else /dev/null */
};
#define FB_AGENT_EXEC_FLAGS_KNOWN (FB_AGENT_EXEC_TTY | FB_AGENT_EXEC_STDIN)

/* EXIT kind; the host maps it docker-style. */
enum fb_agent_exit_kind {
	FB_AGENT_EXITED = 0,      /* value: exit code 0..255 */
	FB_AGENT_SIGNALED = 1,    /* value: signal number -> 128 + value */
	FB_AGENT_NOT_STARTED = 2, /* value: 127 not found, 126 cannot execute;
				     an ERROR message came first */
};
enum fb_agent_exit_flags {
	FB_AGENT_EXIT_TIMED_OUT = 1u << 0, /* killed for timeout_ms */
	FB_AGENT_EXIT_CORE = 1u << 1,      /* dumped core */
};

/* STAT_REPLY and LIST entry type. */
enum fb_agent_file_type {
	FB_AGENT_FT_OTHER = 0,
	FB_AGENT_FT_REG = 1,
	FB_AGENT_FT_DIR = 2,
	FB_AGENT_FT_LNK = 3,
};

/* LIST_REPLY: u32 flags, u32 count, then per entry: str name, u32 type,
 * u32 mode, u64 size. */
enum fb_agent_list_flags {
	FB_AGENT_LIST_TRUNCATED = 1u << 0, /* more entries than fit */
};

/* OK flags after REINJECT: what was done. */
enum fb_agent_reinject_done {
	FB_AGENT_RI_HOSTNAME = 1u << 0,
	FB_AGENT_RI_ENTROPY = 1u << 1, /* RNDADDENTROPY */
	FB_AGENT_RI_RESEED = 1u << 2,  /* RNDRESEEDCRNG (absent on old kernels) */
	FB_AGENT_RI_CLOCK = 1u << 3,
	FB_AGENT_RI_BOX_ID = 1u << 4,
};

/* BOOT_TIMES: the guest's CLOCK_BOOTTIME (ns) when PID 1 reached each
 * point of its boot, in this order; 0 for a point it did not pass (no root
 * disk). The HELLO before it carries the time it said hello. An agent may
 * send more marks than a host knows (later ones are appended here): a host
 * takes the first it knows and skips the rest. */
enum fb_agent_boot_mark {
	FB_AGENT_BOOT_INIT = 0,    /* PID 1 started */
	FB_AGENT_BOOT_MOUNTED = 1, /* /proc, /sys, /dev, /tmp mounted */
	FB_AGENT_BOOT_MODULES = 2, /* the initramfs's kernel modules loaded */
	FB_AGENT_BOOT_ROOT = 3,    /* the root disk mounted and switched to */
	FB_AGENT_BOOT_MARKS
};

/* Where the agent stores the box id from REINJECT. */
#define FB_AGENT_BOX_ID_DIR "/run/forkbox"
#define FB_AGENT_BOX_ID_PATH "/run/forkbox/box-id"

/* ---- encoding --------------------------------------------------------- */

static inline void fb_agent_hdr_put(uint8_t hdr[FB_AGENT_HDR_LEN],
				    uint32_t type, uint32_t len)
{
	fb_put_le32(hdr, type);
	fb_put_le32(hdr + 4, len);
}

/* A writer into a caller's buffer; overflow sticks, so a sequence of puts
 * needs one check at the end. */
struct fb_agent_enc {
	uint8_t *buf;
	uint32_t cap, len;
	bool overflow;
};

static inline void fb_enc_init(struct fb_agent_enc *e, void *buf, uint32_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->overflow = false;
}

static inline void fb_enc_raw(struct fb_agent_enc *e, const void *p, uint32_t n)
{
	if (e->overflow || n > e->cap - e->len) {
		e->overflow = true;
		return;
	}
	if (n)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static inline void fb_enc_u32(struct fb_agent_enc *e, uint32_t v)
{
	uint8_t b[4];

	fb_put_le32(b, v);
	fb_enc_raw(e, b, 4);
}

static inline void fb_enc_u64(struct fb_agent_enc *e, uint64_t v)
{
	fb_enc_u32(e, (uint32_t)v);
	fb_enc_u32(e, (uint32_t)(v >> 32));
}

static inline void fb_enc_str(struct fb_agent_enc *e, const void *s, size_t n)
{
	if (n > UINT32_MAX) {
		e->overflow = true;
		return;
	}
	fb_enc_u32(e, (uint32_t)n);
	fb_enc_raw(e, s, (uint32_t)n);
}

/* A reader over a received payload; any short or over-cap field makes it
 * bad, and later gets return zeros. */
struct fb_agent_dec {
	const uint8_t *buf;
	uint32_t len, off;
	bool bad;
};

static inline void fb_dec_init(struct fb_agent_dec *d, const void *buf,
			       uint32_t len)
{
	d->buf = buf;
	d->len = len;
	d->off = 0;
	d->bad = false;
}

static inline uint32_t fb_dec_u32(struct fb_agent_dec *d)
{
	uint32_t v;

	if (d->bad || d->len - d->off < 4) {
		d->bad = true;
		return 0;
	}
	v = fb_le32(d->buf + d->off);
	d->off += 4;
	return v;
}

static inline uint64_t fb_dec_u64(struct fb_agent_dec *d)
{
	uint64_t lo = fb_dec_u32(d);

	return lo | (uint64_t)fb_dec_u32(d) << 32;
}

/* A string of at most max bytes: a pointer into the payload (not
 * NUL-terminated) and its length in *n. */
static inline const char *fb_dec_str(struct fb_agent_dec *d, uint32_t max,
				     uint32_t *n)
{
	uint32_t len = fb_dec_u32(d);
	const char *s;

	*n = 0;
	if (d->bad || len > max || len > d->len - d->off) {
		d->bad = true;
		return "";
	}
	s = (const char *)d->buf + d->off;
	d->off += len;
	*n = len;
	return s;
}

/* True when every byte was consumed by well-formed fields: trailing bytes
 * are an error, so a peer cannot smuggle data past a decoder. */
static inline bool fb_dec_ok(const struct fb_agent_dec *d)
{
	return !d->bad && d->off == d->len;
}

/* Copies a wire string into dst (size >= n + 1) with a NUL; false when it
 * holds a NUL byte itself (a path or argument cannot). */
static inline bool fb_agent_cstr(char *dst, const char *s, uint32_t n)
{
	if (n && memchr(s, '\0', n))
		return false;
	if (n)
		memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

#endif
