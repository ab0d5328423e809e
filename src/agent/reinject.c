/* REINJECT: a forked child's new identity, sent before anything runs in
 * it. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "util/clock.h"
#include "util/error.h"

static int send_reinject(int fd, const struct fb_agent_reinject *ri,
			 int64_t deadline)
{
	uint8_t buf[32 + FB_AGENT_MAX_BOX_ID + FB_AGENT_MAX_HOSTNAME +
		    FB_AGENT_MAX_ENTROPY];
	const char *id = ri->box_id ? ri->box_id : "";
	const char *host = ri->hostname ? ri->hostname : "";
	struct fb_agent_enc e;

	if (strlen(id) > FB_AGENT_MAX_BOX_ID || strlen(host) > FB_AGENT_MAX_HOSTNAME ||
	    ri->entropy_len > FB_AGENT_MAX_ENTROPY)
		return fb_errorf(-EINVAL, "reinject: box id <= %u, hostname <= %u, "
				 "entropy <= %u bytes", FB_AGENT_MAX_BOX_ID,
				 FB_AGENT_MAX_HOSTNAME, FB_AGENT_MAX_ENTROPY);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_str(&e, id, strlen(id));
	fb_enc_str(&e, host, strlen(host));
	fb_enc_str(&e, ri->entropy, ri->entropy_len);
	fb_enc_u64(&e, ri->realtime_ns);
	return fba_send(fd, FB_AGENT_REINJECT, buf, e.len, deadline, "reinject");
}

static int recv_reinject(int fd, uint32_t *done, int64_t deadline)
{
	struct fb_agent_dec d;
	struct fba_msg m;
	uint32_t flags;
	int err;

	err = fba_recv_reply(fd, &m, FB_AGENT_OK, 8 + FB_AGENT_MAX_TEXT,
			     deadline, "reinject");
	if (err)
		return err;
	fb_dec_init(&d, m.data, m.len);
	flags = fb_dec_u32(&d);
	fba_msg_free(&m);
	if (d.bad)
		return fb_errorf(-EPROTO, "reinject: malformed OK");
	if (done)
		*done = flags;
	return 0;
}

int fb_agent_reinject(int fd, const struct fb_agent_reinject *ri,
		      uint32_t *done, int timeout_ms)
{
	int64_t deadline = fba_deadline(timeout_ms);
	int err = send_reinject(fd, ri, deadline);

	return err ? err : recv_reinject(fd, done, deadline);
}

int fb_agent_dial_reinject(const char *uds_path,
			   const struct fb_agent_reinject *ri,
			   uint32_t *done, struct fb_agent_dial_times *times,
			   int timeout_ms)
{
	struct fb_agent_dial_times t = { 0 };
	double t0 = fb_now_ms();
	int64_t deadline = fba_deadline(timeout_ms);
	/* The agent's port, not FB_AGENT_RESTAMP_PORT: with re-stamps on
	 * that port, fork children in the lab went on to leave the next
	 * CONNECT 1024 unanswered (4 of 9 fork-tests runs) for a cause not
	 * found yet. */
	int fd = fb_agent_connect(uds_path, FB_AGENT_PORT, timeout_ms);
	int err;

	if (fd < 0)
		return fd;
	t.connected_ms = fb_now_ms() - t0;
	err = send_reinject(fd, ri, deadline);
	if (!err)
		err = fba_read_hello(fd, deadline, NULL);
	t.hello_ms = fb_now_ms() - t0;
	if (!err)
		err = recv_reinject(fd, done, deadline);
	t.done_ms = fb_now_ms() - t0;
	close(fd);
	if (times)
		*times = t;
	return err;
}
