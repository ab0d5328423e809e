/* KSM (kernel samepage merging): the host's scanner, seen and set through
 * sysfs (`forkbox host ksm`), and a box's guest RAM marked mergeable
 * (`--ksm`). Guest kernels, libraries and zeroed pages are the same in
 * many boxes; KSM lets them share one copy, at the price of a scanner
 * thread's CPU and copy-on-write faults when a guest writes a merged page.
 *
 * FORKBOX_KSM_SYSFS names the sysfs directory instead of
 * /sys/kernel/mm/ksm (the unit tests point it at a fake one).
 * FORKBOX_KSM=1 asks for --ksm for every box forkbox starts (restored and
 * forked ones too, whose commands have no flag). */
#ifndef FB_HOST_KSM_H
#define FB_HOST_KSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FB_KSM_SYSFS_DEFAULT "/sys/kernel/mm/ksm"
#define FB_KSM_DEFAULT_PAGES_TO_SCAN 1000
#define FB_KSM_DEFAULT_SLEEP_MS 20

/* $FORKBOX_KSM_SYSFS if set and not empty, else FB_KSM_SYSFS_DEFAULT. */
const char *fb_ksm_sysfs_dir(void);

/* What the scanner is doing and what it merged (see the kernel's
 * Documentation/admin-guide/mm/ksm.rst). */
struct fb_ksm_status {
	int64_t run;             /* 0 stopped, 1 running, 2 unmerged */
	int64_t pages_to_scan;   /* pages a wake-up scans */
	int64_t sleep_millisecs; /* between wake-ups */
	int64_t pages_shared;    /* KSM pages in use */
	int64_t pages_sharing;   /* mappings of them: the pages saved */
	int64_t pages_unshared;  /* scanned, unique so far */
	int64_t full_scans;
	bool has_general_profit; /* Linux >= 6.7 */
	int64_t general_profit;  /* bytes saved less KSM's own, may be < 0 */
	long page_size;
};

/* Reads dir's counters. A missing dir is -ENOENT, saying the kernel has no
 * KSM; a missing or unreadable counter names its file. */
int fb_ksm_status_read(const char *dir, struct fb_ksm_status *st);

/* pages_sharing * page size, in MiB: the memory KSM saves. */
double fb_ksm_saved_mib(const struct fb_ksm_status *st);

/* Sets pages_to_scan and sleep_millisecs, then run=1 (so the scanner
 * starts with them). Not root: -EACCES, naming the file. */
int fb_ksm_on(const char *dir, uint64_t pages_to_scan, uint64_t sleep_ms);

/* run=0: the scanner stops and what it merged stays merged. unmerge:
 * run=2, which also splits every merged page again (memory use grows back
 * at once; it can take a while). */
int fb_ksm_off(const char *dir, bool unmerge);

/* How fb_ksm_mark_mergeable made memory mergeable. */
enum fb_ksm_how { FB_KSM_BY_PRCTL = 1, FB_KSM_BY_MADVISE = 2 };

/* Marks [addr, addr + len) mergeable, for a box's guest RAM:
 * PR_SET_MEMORY_MERGE (Linux >= 6.4: every anonymous or private mapping
 * of this process, now and later), else MADV_MERGEABLE on the range.
 * Returns an enum fb_ksm_how, or a negative errno (-EINVAL where the
 * kernel has no KSM) with both calls' errors in the message. */
int fb_ksm_mark_mergeable(void *addr, size_t len);

/* The --ksm flag, or FORKBOX_KSM=1 where the flag is absent. */
bool fb_ksm_wanted(bool flag);

#endif
