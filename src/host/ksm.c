#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/ksm.h"
#include "util/error.h"
#include "util/file.h"

/* Debian 12's headers predate Linux 6.4. */
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

const char *fb_ksm_sysfs_dir(void)
{
	const char *dir = getenv("FORKBOX_KSM_SYSFS");

	return dir && dir[0] ? dir : FB_KSM_SYSFS_DEFAULT;
}

bool fb_ksm_wanted(bool flag)
{
	const char *env = getenv("FORKBOX_KSM");

	return flag || (env && !strcmp(env, "1"));
}

/* Every operation starts here, so that a kernel without KSM is told apart
 * from a missing counter or a permission problem. */
static int check_dir(const char *dir)
{
	struct stat st;
	int err = stat(dir, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? 0 :
		  -ENOTDIR;

	if (err == -ENOENT || err == -ENOTDIR)
		return fb_errorf(-ENOENT, "this kernel has no KSM (no directory "
				 "%s: built without CONFIG_KSM)", dir);
	if (err < 0)
		return fb_errorf(err, "stat %s: %s", dir, strerror(-err));
	return 0;
}

/* A sysfs counter: one decimal (maybe negative: general_profit) and a
 * newline. Anything else is refused rather than read as 0. */
static int read_value(const char *dir, const char *name, int64_t *out)
{
	char path[4096], text[64], *end;
	long long v;
	int err;

	err = fb_fmt(path, sizeof(path), "%s/%s", dir, name);
	if (err < 0)
		return err;
	err = fb_read_text(path, text, sizeof(text));
	if (err < 0)
		return fb_errorf(err, "read %s: %s", path, strerror(-err));
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end)
		return fb_errorf(-EINVAL, "%s: '%s' is not a number", path,
				 text);
	*out = v;
	return 0;
}

static int write_value(const char *dir, const char *name, uint64_t v)
{
	char path[4096], text[32];
	int fd, err;

	err = fb_fmt(path, sizeof(path), "%s/%s", dir, name);
	if (err < 0)
		return err;
	snprintf(text, sizeof(text), "%" PRIu64 "\n", v);
	/* O_TRUNC as a shell's > has it: sysfs ignores it, a fake
	 * directory's plain file needs it. */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		return fb_errorf(err, "open %s for writing: %s%s", path,
				 strerror(-err), err == -EACCES ||
				 err == -EPERM ? " (setting KSM needs root)" :
				 "");
	}
	err = fb_write_full(fd, text, strlen(text));
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err < 0)
		return fb_errorf(err, "write %" PRIu64 " to %s: %s", v, path,
				 strerror(-err));
	return 0;
}

int fb_ksm_status_read(const char *dir, struct fb_ksm_status *st)
{
	static const struct {
		const char *name;
		size_t off;
	} counters[] = {
#define C(f) { #f, offsetof(struct fb_ksm_status, f) }
		C(run), C(pages_to_scan), C(sleep_millisecs), C(pages_shared),
		C(pages_sharing), C(pages_unshared), C(full_scans),
#undef C
	};
	char path[4096];
	int err = check_dir(dir);

	memset(st, 0, sizeof(*st));
	st->page_size = sysconf(_SC_PAGESIZE);
	for (size_t i = 0; !err && i < sizeof(counters) / sizeof(counters[0]);
	     i++)
		err = read_value(dir, counters[i].name,
				 (int64_t *)((char *)st + counters[i].off));
	if (err < 0)
		return err;
	/* Only since Linux 6.7: absent is not an error. */
	err = fb_fmt(path, sizeof(path), "%s/general_profit", dir);
	if (!err && access(path, F_OK) == 0) {
		err = read_value(dir, "general_profit", &st->general_profit);
		st->has_general_profit = !err;
	}
	return err;
}

double fb_ksm_saved_mib(const struct fb_ksm_status *st)
{
	return (double)st->pages_sharing * (double)st->page_size /
	       (double)(1 << 20);
}

int fb_ksm_on(const char *dir, uint64_t pages_to_scan, uint64_t sleep_ms)
{
	int err = check_dir(dir);

	if (!err)
		err = write_value(dir, "pages_to_scan", pages_to_scan);
	if (!err)
		err = write_value(dir, "sleep_millisecs", sleep_ms);
	if (!err)
		err = write_value(dir, "run", 1);
	return err;
}

int fb_ksm_off(const char *dir, bool unmerge)
{
	int err = check_dir(dir);

	return err ? err : write_value(dir, "run", unmerge ? 2 : 0);
}

int fb_ksm_mark_mergeable(void *addr, size_t len)
{
	char prctl_why[128];
	int madvise_err;

	/* The whole process: also the mappings a fork later puts over
	 * guest RAM (snapshot/layers.c), which a madvise now cannot
	 * reach, and any the VMM makes after its jail is in place. */
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0)
		return FB_KSM_BY_PRCTL;
	snprintf(prctl_why, sizeof(prctl_why), "%s", strerror(errno));
	/* Before Linux 6.4 (the lab's 6.1): the range itself. */
	if (madvise(addr, len, MADV_MERGEABLE) == 0)
		return FB_KSM_BY_MADVISE;
	madvise_err = errno;
	return fb_errorf(-madvise_err, "prctl PR_SET_MEMORY_MERGE: %s; madvise "
			 "MADV_MERGEABLE: %s", prctl_why, strerror(madvise_err));
}
