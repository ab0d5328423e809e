/* cgroup v2: one cgroup per box, FB_JAIL_CGROUP_ROOT/forkbox/<id>/, with
 * memory.max, cpu.max and pids.max; the VMM is born in it
 * (fb_jail_fork_into_cgroup), or moves itself in (the whole process:
 * cgroup.procs), before guest memory exists, so every page of it is
 * charged to the box. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/error.h"
#include "util/file.h"
#include "util/clock.h"

#define CGROUP2_MAGIC 0x63677270
#define SYSFS_MAGIC 0x62656572
#define CLEANUP_TIMEOUT_MS 5000

/* What a box's limits need, in every cgroup above its own. */
static const char *const controllers[] = { "memory", "cpu", "pids" };
#define NR_CONTROLLERS (sizeof(controllers) / sizeof(controllers[0]))

/* word appears in the space-separated list text. */
static bool has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = text; (p = strstr(p, word)); p += n)
		if ((p == text || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static int write_str(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	n = write(fd, text, strlen(text));
	if (n < 0) {
		int err = -errno;

		close(fd);
		return fb_errorf(err, "write '%s' to %s: %s", text, path,
				 strerror(-err));
	}
	close(fd);
	return 0;
}

/* Hosts with systemd have cgroup2 here; an init without it (the lab's)
 * leaves sysfs's empty directory, and we mount it as systemd would. A
 * cgroup v1 or hybrid hierarchy is refused. */
static int ensure_cgroup2(void)
{
	struct statfs sf;

	if (statfs(FB_JAIL_CGROUP_ROOT, &sf) < 0)
		return fb_errorf(-errno, "statfs %s: %s (the jail needs cgroup "
				 "v2 there; or use --no-jail)",
				 FB_JAIL_CGROUP_ROOT, strerror(errno));
	if (sf.f_type == CGROUP2_MAGIC)
		return 0;
	if (sf.f_type != SYSFS_MAGIC)
		return fb_errorf(-ENOTSUP, "%s is not a cgroup v2 hierarchy "
				 "(cgroup v1 or hybrid?): the jail needs the "
				 "unified hierarchy (systemd.unified_cgroup_"
				 "hierarchy=1), or use --no-jail",
				 FB_JAIL_CGROUP_ROOT);
	if (mount("cgroup2", FB_JAIL_CGROUP_ROOT, "cgroup2",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && errno != EBUSY)
		return fb_errorf(-errno, "mount cgroup2 on %s: %s",
				 FB_JAIL_CGROUP_ROOT, strerror(errno));
	fprintf(stderr, "forkbox jail: mounted cgroup2 on %s (nothing was "
		"there)\n", FB_JAIL_CGROUP_ROOT);
	return 0;
}

/* Writing cgroup.subtree_control drains every dying cgroup under it
 * first (in the lab up to ~20 ms after boxes went), so only when a
 * controller is missing. */
static int enable_controllers(const char *dir)
{
	char path[PATH_MAX + 32], have[256], add[64] = "";
	bool all = true;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	if (fb_read_text(path, have, sizeof(have)) < 0)
		all = false;
	for (unsigned i = 0; all && i < NR_CONTROLLERS; i++)
		all = has_word(have, controllers[i]);
	if (all)
		return 0;
	for (unsigned i = 0; i < NR_CONTROLLERS; i++)
		snprintf(add + strlen(add), sizeof(add) - strlen(add), "%s+%s",
			 i ? " " : "", controllers[i]);
	return write_str(path, add);
}

/* FB_JAIL_CGROUP_ROOT/forkbox/<id>, made with its controllers. */
static int make_box_cgroup(const char *box_id, char *dir, size_t len)
{
	char parent[PATH_MAX];
	int err;

	err = ensure_cgroup2();
	if (!err)
		err = enable_controllers(FB_JAIL_CGROUP_ROOT);
	if (err < 0)
		return err;
	snprintf(parent, sizeof(parent), "%s/%s", FB_JAIL_CGROUP_ROOT,
		 FB_JAIL_CGROUP_PARENT);
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return fb_errorf(-errno, "mkdir %s: %s", parent,
				 strerror(errno));
	err = enable_controllers(parent);
	if (err < 0)
		return err;
	if ((size_t)snprintf(dir, len, "%s/%s", parent, box_id) >= len)
		return fb_errorf(-ENAMETOOLONG, "cgroup path for box %s",
				 box_id);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return fb_errorf(-errno, "mkdir %s: %s", dir, strerror(errno));
	return 0;
}

/* Whether this process is in the box's cgroup already (born there:
 * fb_jail_fork_into_cgroup). Unsure counts as no. */
static bool in_box_cgroup(const char *box_id)
{
	char line[PATH_MAX], want[PATH_MAX];

	if (fb_read_text("/proc/self/cgroup", line, sizeof(line)) < 0)
		return false;
	line[strcspn(line, "\n")] = '\0';
	snprintf(want, sizeof(want), "0::/%s/%s", FB_JAIL_CGROUP_PARENT,
		 box_id);
	return !strcmp(line, want);
}

int fb_jail_cgroup_open(const char *box_id)
{
	char dir[PATH_MAX + 64];
	int err = make_box_cgroup(box_id, dir, sizeof(dir)), fd;

	if (err < 0)
		return err;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", dir, strerror(errno));
	return fd;
}

int fb_jail_cgroup_setup(const struct fb_jail_config *cfg)
{
	char dir[PATH_MAX + 64], path[PATH_MAX + 96];
	char text[64];
	int err;

	err = make_box_cgroup(cfg->box_id, dir, sizeof(dir));
	if (err < 0)
		return err;
	snprintf(path, sizeof(path), "%s/memory.max", dir);
	snprintf(text, sizeof(text), "%llu", (unsigned long long)cfg->mem_max);
	err = write_str(path, text);
	if (!err) {
		snprintf(path, sizeof(path), "%s/cpu.max", dir);
		snprintf(text, sizeof(text), "%llu %u",
			 (unsigned long long)cfg->cpu_quota_us,
			 FB_JAIL_CPU_PERIOD_US);
		err = write_str(path, text);
	}
	if (!err) {
		snprintf(path, sizeof(path), "%s/pids.max", dir);
		snprintf(text, sizeof(text), "%llu",
			 (unsigned long long)cfg->pids_max);
		err = write_str(path, text);
	}
	/* A move waits for an RCU grace period (~20 ms in the lab), even
	 * into the cgroup the process is in: skipped when born there. */
	if (!err && !in_box_cgroup(cfg->box_id)) {
		/* "0": the writer, with all its threads. */
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		err = write_str(path, "0");
	}
	return err;
}

/* cgroup.events says "populated 1" while a task is inside; the file
 * signals POLLPRI when that changes. */
static void wait_unpopulated(const char *dir, unsigned timeout_ms)
{
	char path[PATH_MAX + 32], buf[256];
	double end = fb_now_ms() + timeout_ms;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLPRI };
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		double left = end - fb_now_ms();

		if (n < 0)
			break;
		buf[n] = '\0';
		if (strstr(buf, "populated 0") || left <= 0)
			break;
		if (poll(&p, 1, (int)left + 1) < 0 && errno != EINTR)
			break;
	}
	close(fd);
}

int fb_jail_cleanup(const char *box_id)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/%s/%s", FB_JAIL_CGROUP_ROOT,
		 FB_JAIL_CGROUP_PARENT, box_id);
	if (rmdir(dir) == 0 || errno == ENOENT)
		return 0;
	if (errno != EBUSY)
		return fb_errorf(-errno, "rmdir %s: %s", dir, strerror(errno));
	/* The VMM is exiting: its last thread leaves the cgroup shortly. */
	wait_unpopulated(dir, CLEANUP_TIMEOUT_MS);
	if (rmdir(dir) == 0 || errno == ENOENT)
		return 0;
	return fb_errorf(-errno, "rmdir %s: %s (a task of the box is still "
			 "in it?)", dir, strerror(errno));
}
