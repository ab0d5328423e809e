/* A running box's memory: its balloon (src/devices/virtio/balloon.h), the
 * guest's own statistics, and what the box costs the host. The VMM answers
 * the first two over its control socket ("balloon MIB", "stats"); the
 * host's cost is read here, outside the VMM's jail, which has no /proc. */
#ifndef FB_BOX_STATS_H
#define FB_BOX_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "box/box.h"
#include "devices/virtio/balloon.h"

struct fb_box_stats {
	bool balloon;             /* the box has a balloon device */
	bool driver;              /* ... and the guest's driver runs it */
	uint64_t target_mib;      /* the balloon's target size */
	uint64_t actual_mib;      /* its size as the guest says */
	uint64_t inflated_bytes;  /* given back by inflating */
	uint64_t reported_bytes;  /* ... by free page reporting */
	uint64_t given_back_bytes;
	uint64_t ignored;         /* bad page numbers or ranges refused */
	int64_t stats_age_ms;     /* the guest's statistics' age, -1: none */
	/* guest[tag] (enum fb_balloon_stat) valid if bit tag is set. */
	uint64_t guest[FB_BALLOON_S_NR];
	uint32_t guest_valid;
	/* The VMM process's resident and proportional set size (its guest
	 * RAM and its own), from /proc/PID/smaps_rollup; -1 if unreadable
	 * (another user's process, without CAP_SYS_PTRACE). */
	int64_t host_rss_bytes;
	int64_t host_pss_bytes;
};

/* Sets the balloon's target size in MiB (0: deflate it all). */
int fb_box_balloon(const struct fb_box_info *info, uint64_t mib);

/* The box's memory now; asks the guest for fresh statistics (waits a
 * second at most: stats_age_ms says how old they are). */
int fb_box_stats(const struct fb_box_info *info, struct fb_box_stats *st);

/* Fills st from the VMM's "stats" reply line (unknown keys are skipped:
 * a newer VMM may say more). The host fields are left at -1. */
int fb_box_stats_parse(const char *line, struct fb_box_stats *st);

/* Rss and Pss of process pid in bytes, from /proc/PID/smaps_rollup. */
int fb_proc_memory(int pid, int64_t *rss_bytes, int64_t *pss_bytes);

#endif
