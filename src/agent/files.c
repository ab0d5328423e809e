/* File requests: FILE_WRITE (streamed, atomic on the guest side),
 * FILE_READ, STAT and LIST. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "util/error.h"

#define ENTRY_MIN_WIRE 20u /* name length, type, mode, size: 4 + 4 + 4 + 8 */

static int check_path(const char *path, const char *what)
{
	size_t n = strlen(path);

	if (n == 0 || n > FB_AGENT_MAX_PATH || path[0] != '/')
		return fb_errorf(-EINVAL, "%s: guest path \"%.64s\" must be "
				 "absolute and at most %u bytes", what, path,
				 FB_AGENT_MAX_PATH);
	return 0;
}

/* A request whose payload is only a path. */
static int send_path_request(int fd, uint32_t type, const char *path,
			     int64_t deadline, const char *what)
{
	uint8_t buf[4 + FB_AGENT_MAX_PATH];
	struct fb_agent_enc e;
	int err = check_path(path, what);

	if (err)
		return err;
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_str(&e, path, strlen(path));
	return fba_send(fd, type, buf, e.len, deadline, what);
}

/* Did the agent answer early (an ERROR while we still send)? */
static bool reply_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static int finish_write(int fd, const char *path)
{
	struct fba_msg m;
	int err = fba_recv_reply(fd, &m, FB_AGENT_OK, 8 + FB_AGENT_MAX_TEXT, -1,
				 path);

	fba_msg_free(&m);
	return err;
}

int fb_agent_write_file(int fd, const char *guest_path, uint32_t mode,
			int src_fd, const void *buf, size_t len)
{
	uint8_t hdr[16 + FB_AGENT_MAX_PATH];
	struct fb_agent_enc e;
	uint64_t size = len;
	struct stat st;
	uint8_t *chunk = NULL;
	size_t off = 0;
	int err = check_path(guest_path, "file write");

	if (err)
		return err;
	if (mode > 07777)
		return fb_errorf(-EINVAL, "file write %s: mode %o", guest_path, mode);
	if (src_fd >= 0) {
		/* A regular file announces its size; a pipe cannot. */
		size = fstat(src_fd, &st) == 0 && S_ISREG(st.st_mode) ?
		       (uint64_t)st.st_size : UINT64_MAX;
		chunk = malloc(FB_AGENT_CHUNK);
		if (!chunk)
			return fb_errorf(-ENOMEM, "file write: out of memory");
	}
	fb_enc_init(&e, hdr, sizeof(hdr));
	fb_enc_u32(&e, mode);
	fb_enc_u64(&e, size);
	fb_enc_str(&e, guest_path, strlen(guest_path));
	err = fba_send(fd, FB_AGENT_FILE_WRITE, hdr, e.len, -1, guest_path);
	while (!err) {
		const void *data;
		ssize_t n;

		if (reply_waiting(fd))
			break; /* an early ERROR: stop sending, read it */
		if (src_fd >= 0) {
			do
				n = read(src_fd, chunk, FB_AGENT_CHUNK);
			while (n < 0 && errno == EINTR);
			if (n < 0) {
				err = fb_errorf(-errno, "file write: read the "
						"source: %s", strerror(errno));
				break;
			}
			data = chunk;
		} else {
			n = (ssize_t)(len - off < FB_AGENT_CHUNK ? len - off :
				      FB_AGENT_CHUNK);
			data = (const uint8_t *)buf + off;
			off += (size_t)n;
		}
		err = fba_send(fd, n ? FB_AGENT_DATA : FB_AGENT_END, data,
			       (uint32_t)n, -1, guest_path);
		if (n == 0)
			break;
	}
	free(chunk);
	/* A send that failed because the agent hung up may have an ERROR
	 * waiting that says why: prefer it. */
	if (!err || err == -EPIPE || err == -ECONNRESET) {
		int reply = finish_write(fd, guest_path);

		if (!err || reply != -ECONNRESET)
			err = reply;
	}
	return err;
}

int fb_agent_read_file(int fd, const char *guest_path, int dst_fd,
		       uint64_t max_bytes)
{
	uint64_t got = 0;
	struct fba_msg m;
	int err = send_path_request(fd, FB_AGENT_FILE_READ, guest_path, -1,
				    "file read");

	while (!err) {
		err = fba_recv(fd, &m, FB_AGENT_MAX_PAYLOAD, -1, guest_path);
		if (err)
			break;
		if (m.type == FB_AGENT_END) {
			fba_msg_free(&m);
			break;
		}
		if (m.type == FB_AGENT_DATA && max_bytes &&
		    m.len > max_bytes - got) {
			err = fb_errorf(-EFBIG, "file read %s: over the %llu-"
					"byte cap", guest_path,
					(unsigned long long)max_bytes);
		} else if (m.type == FB_AGENT_DATA) {
			got += m.len;
			err = fba_write_fd(dst_fd, m.data, m.len);
			if (err)
				fb_errorf(err, "file read %s: write: %s", guest_path,
					  strerror(-err));
		} else if (m.type == FB_AGENT_ERROR) {
			err = fba_agent_error(&m, "file read");
		} else {
			err = fb_errorf(-EPROTO, "file read: unexpected message "
					"type 0x%x", m.type);
		}
		fba_msg_free(&m);
	}
	return err;
}

int fb_agent_stat(int fd, const char *guest_path, struct fb_agent_stat *st,
		  int timeout_ms)
{
	int64_t deadline = fba_deadline(timeout_ms);
	struct fb_agent_dec d;
	struct fba_msg m;
	int err = send_path_request(fd, FB_AGENT_STAT, guest_path, deadline, "stat");

	if (!err)
		err = fba_recv_reply(fd, &m, FB_AGENT_STAT_REPLY, 64, deadline,
				     "stat");
	if (err)
		return err;
	fb_dec_init(&d, m.data, m.len);
	st->type = fb_dec_u32(&d);
	st->mode = fb_dec_u32(&d);
	st->size = fb_dec_u64(&d);
	st->mtime_ns = fb_dec_u64(&d);
	fba_msg_free(&m);
	if (!fb_dec_ok(&d))
		return fb_errorf(-EPROTO, "stat: malformed STAT_REPLY");
	return 0;
}

static int decode_list(const struct fba_msg *m, struct fb_agent_dirent **entries,
		       size_t *count, bool *truncated)
{
	struct fb_agent_dirent *ents;
	struct fb_agent_dec d;
	uint32_t flags, n, i, len;

	fb_dec_init(&d, m->data, m->len);
	flags = fb_dec_u32(&d);
	n = fb_dec_u32(&d);
	/* Checked against the cap and the bytes present before calloc. */
	if (d.bad || n > FB_AGENT_MAX_LIST || n > (d.len - d.off) / ENTRY_MIN_WIRE)
		return fb_errorf(-EPROTO, "list: bad entry count %u", n);
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents)
		return fb_errorf(-ENOMEM, "list: out of memory");
	for (i = 0; i < n; i++) {
		const char *name = fb_dec_str(&d, FB_AGENT_MAX_NAME, &len);

		if (d.bad || len == 0 || memchr(name, '/', len) ||
		    !fb_agent_cstr(ents[i].name, name, len))
			break;
		ents[i].type = fb_dec_u32(&d);
		ents[i].mode = fb_dec_u32(&d);
		ents[i].size = fb_dec_u64(&d);
	}
	if (i < n || !fb_dec_ok(&d)) {
		free(ents);
		return fb_errorf(-EPROTO, "list: malformed LIST_REPLY");
	}
	*entries = ents;
	*count = n;
	if (truncated)
		*truncated = flags & FB_AGENT_LIST_TRUNCATED;
	return 0;
}

int fb_agent_list(int fd, const char *guest_path,
		  struct fb_agent_dirent **entries, size_t *count,
		  bool *truncated, int timeout_ms)
{
	int64_t deadline = fba_deadline(timeout_ms);
	struct fba_msg m;
	int err = send_path_request(fd, FB_AGENT_LIST, guest_path, deadline, "list");

	*entries = NULL;
	*count = 0;
	if (!err)
		err = fba_recv_reply(fd, &m, FB_AGENT_LIST_REPLY,
				     FB_AGENT_MAX_PAYLOAD, deadline, "list");
	if (err)
		return err;
	err = decode_list(&m, entries, count, truncated);
	fba_msg_free(&m);
	return err;
}
