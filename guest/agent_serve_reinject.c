/* REINJECT: a forked box takes its new identity before anything runs in
 * it. The RNG goes first, so whatever runs next draws from a pool the
 * siblings do not share (Debian's 6.1 has no vmgenid driver to do it);
 * then the clock, which stood still while the snapshot slept; then the
 * names. Each step goes through agent_sys.h, so a host test records the
 * calls instead of changing the test machine. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "agent_sys.h"

static bool name_chars_ok(const char *s, uint32_t n, const char *extra)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(extra, c))))
			return false;
	}
	return true;
}

static void add_done(char *text, size_t size, const char *what)
{
	size_t len = strlen(text);

	snprintf(text + len, size - len, "%s%s", len ? ", " : "", what);
}

int fbg_serve_reinject(int fd, const struct fbg_msg *m)
{
	struct fb_agent_dec d;
	const char *box_id, *host, *entropy;
	uint32_t id_len, host_len, ent_len, done = 0;
	uint64_t realtime_ns;
	char text[256] = "";
	int err;

	fb_dec_init(&d, m->data, m->len);
	box_id = fb_dec_str(&d, FB_AGENT_MAX_BOX_ID, &id_len);
	host = fb_dec_str(&d, FB_AGENT_MAX_HOSTNAME, &host_len);
	entropy = fb_dec_str(&d, FB_AGENT_MAX_ENTROPY, &ent_len);
	realtime_ns = fb_dec_u64(&d);
	if (!fb_dec_ok(&d))
		return fbg_send_error(fd, EINVAL, "reinject: malformed request "
				      "(box id <= %u, hostname <= %u, entropy "
				      "<= %u bytes)", FB_AGENT_MAX_BOX_ID,
				      FB_AGENT_MAX_HOSTNAME, FB_AGENT_MAX_ENTROPY);
	if (!name_chars_ok(box_id, id_len, "._-"))
		return fbg_send_error(fd, EINVAL, "reinject: the box id may hold "
				      "only letters, digits, '.', '_' and '-'");
	if (!name_chars_ok(host, host_len, ".-") ||
	    (host_len && (host[0] == '-' || host[0] == '.')))
		return fbg_send_error(fd, EINVAL, "reinject: bad hostname");

	if (ent_len) {
		err = fbg_sys_add_entropy((const uint8_t *)entropy, ent_len);
		if (err)
			return fbg_send_error(fd, -err, "RNDADDENTROPY: %s",
					      strerror(-err));
		done |= FB_AGENT_RI_ENTROPY;
		add_done(text, sizeof(text), "entropy");
		err = fbg_sys_reseed_crng();
		if (!err) {
			done |= FB_AGENT_RI_RESEED;
			add_done(text, sizeof(text), "reseed");
		} else if (err != -ENOTTY && err != -EINVAL) {
			return fbg_send_error(fd, -err, "RNDRESEEDCRNG: %s",
					      strerror(-err));
		} /* else: an old kernel without it; the entropy still went in */
	}
	if (realtime_ns) {
		err = fbg_sys_set_realtime(realtime_ns);
		if (err)
			return fbg_send_error(fd, -err, "clock_settime: %s",
					      strerror(-err));
		done |= FB_AGENT_RI_CLOCK;
		add_done(text, sizeof(text), "clock");
	}
	if (host_len) {
		err = fbg_sys_sethostname(host, host_len);
		if (err)
			return fbg_send_error(fd, -err, "sethostname: %s",
					      strerror(-err));
		done |= FB_AGENT_RI_HOSTNAME;
		add_done(text, sizeof(text), "hostname");
	}
	if (id_len) {
		err = fbg_sys_store_box_id(box_id, id_len);
		if (err)
			return fbg_send_error(fd, -err, "store box id in %s: %s",
					      FB_AGENT_BOX_ID_PATH, strerror(-err));
		done |= FB_AGENT_RI_BOX_ID;
		add_done(text, sizeof(text), "box id");
	}
	return fbg_send_ok(fd, done, text);
}
