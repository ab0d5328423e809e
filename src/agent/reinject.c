/* REINJECT: a forked child's new identity, sent before anything runs in
 * it. */
#include <errno.h>
#include <string.h>

#include "agent/client.h"
#include "agent/wire.h"
#include "util/error.h"

int fb_agent_reinject(int fd, const struct fb_agent_reinject *ri,
		      uint32_t *done, int timeout_ms)
{
	uint8_t buf[32 + FB_AGENT_MAX_BOX_ID + FB_AGENT_MAX_HOSTNAME +
		    FB_AGENT_MAX_ENTROPY];
	const char *id = ri->box_id ? ri->box_id : "";
	const char *host = ri->hostname ? ri->hostname : "";
	int64_t deadline = fba_deadline(timeout_ms);
	struct fb_agent_enc e;
	struct fb_agent_dec d;
	struct fba_msg m;
	uint32_t flags;
	int err;

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
	err = fba_send(fd, FB_AGENT_REINJECT, buf, e.len, deadline, "reinject");
	if (!err)
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
