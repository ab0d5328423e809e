/* The client side of "balloon" and "stats" on a box's control socket, and
 * the host's cost of the box, read from /proc outside the VMM's jail. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/control.h"
#include "box/stats.h"
#include "util/error.h"

/* The VMM waits up to a second for the guest's statistics. */
#define STATS_TIMEOUT_MS 10000
#define BALLOON_TIMEOUT_MS 10000

int fb_box_balloon(const struct fb_box_info *info, uint64_t mib)
{
	char req[64], reply[FB_BOX_CONTROL_MAX_LINE];

	snprintf(req, sizeof(req), "balloon %" PRIu64, mib);
	return fb_box_control_call(info->dir, req, reply, sizeof(reply),
				   BALLOON_TIMEOUT_MS);
}

/* The reply's plain numbers, by key. */
static const struct {
	const char *key;
	size_t off;
} u64_fields[] = {
	{ "target_mib", offsetof(struct fb_box_stats, target_mib) },
	{ "actual_mib", offsetof(struct fb_box_stats, actual_mib) },
	{ "inflated_bytes", offsetof(struct fb_box_stats, inflated_bytes) },
	{ "reported_bytes", offsetof(struct fb_box_stats, reported_bytes) },
	{ "given_back_bytes", offsetof(struct fb_box_stats,
					given_back_bytes) },
	{ "ignored", offsetof(struct fb_box_stats, ignored) },
};

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	*v = strtoull(s, &end, 10);
	return *end || errno ? -EINVAL : 0;
}

/* One key=value of the reply into st. */
static void set_field(struct fb_box_stats *st, const char *key, uint64_t v)
{
	for (size_t i = 0; i < sizeof(u64_fields) / sizeof(u64_fields[0]); i++)
		if (!strcmp(key, u64_fields[i].key)) {
			memcpy((char *)st + u64_fields[i].off, &v, sizeof(v));
			return;
		}
	if (!strcmp(key, "balloon"))
		st->balloon = v != 0;
	else if (!strcmp(key, "driver"))
		st->driver = v != 0;
	else if (!strcmp(key, "stats_age_ms"))
		st->stats_age_ms = v > INT64_MAX ? INT64_MAX : (int64_t)v;
	for (unsigned t = 0; t < FB_BALLOON_S_NR; t++)
		if (!strcmp(key, fb_balloon_stat_key(t))) {
			st->guest[t] = v;
			st->guest_valid |= 1u << t;
		}
}

int fb_box_stats_parse(const char *line, struct fb_box_stats *st)
{
	char buf[FB_BOX_CONTROL_MAX_LINE], *save = NULL, *tok;

	memset(st, 0, sizeof(*st));
	st->stats_age_ms = st->host_rss_bytes = st->host_pss_bytes = -1;
	if (fb_fmt(buf, sizeof(buf), "%s", line) < 0)
		return fb_errorf(-EPROTO, "stats reply too long");
	for (tok = strtok_r(buf, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t v;

		if (!eq || parse_u64(eq + 1, &v) < 0)
			return fb_errorf(-EPROTO, "unexpected field '%.60s' in "
					 "the stats reply", tok);
		*eq = '\0';
		set_field(st, tok, v);
	}
	return 0;
}

int fb_proc_memory(int pid, int64_t *rss_bytes, int64_t *pss_bytes)
{
	char path[64], line[256];
	long long kb;
	FILE *f;

	*rss_bytes = *pss_bytes = -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "re");
	if (!f)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Rss: %lld kB", &kb) == 1)
			*rss_bytes = kb * 1024;
		else if (sscanf(line, "Pss: %lld kB", &kb) == 1)
			*pss_bytes = kb * 1024;
	}
	fclose(f);
	if (*rss_bytes < 0 || *pss_bytes < 0)
		return fb_errorf(-EPROTO, "%s has no Rss or Pss line", path);
	return 0;
}

int fb_box_stats(const struct fb_box_info *info, struct fb_box_stats *st)
{
	char reply[FB_BOX_CONTROL_MAX_LINE];
	int err = fb_box_control_call(info->dir, "stats", reply, sizeof(reply),
				      STATS_TIMEOUT_MS);

	if (!err)
		err = fb_box_stats_parse(reply, st);
	if (err < 0)
		return err;
	/* The VMM just answered, so info->pid is still it. Unreadable
	 * (not our process, no CAP_SYS_PTRACE): the host fields stay -1,
	 * the rest is still worth having. */
	(void)fb_proc_memory((int)info->pid, &st->host_rss_bytes,
			     &st->host_pss_bytes);
	return 0;
}
