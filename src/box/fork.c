/* Fork of a running box into N children: a snapshot of the parent (its
 * pause is the only time it stops), then N restores of it at once. The
 * children map the snapshot's memory MAP_PRIVATE, so they share every
 * page none of them writes; each gets its own id, hostname, entropy,
 * clock and vsock before it is reported ready. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "util/file.h"

#define FORK_MAX 1024

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* $FORKBOX_HOME/templates/PARENT-NNNN: kept, since the children's later
 * diff snapshots name it as their parent. */
static int template_dir(const char *parent, char *buf, size_t len)
{
	char home[PATH_MAX], dir[PATH_MAX + 16];
	struct timespec t;
	int err = fb_home_dir(home, sizeof(home));

	if (!err)
		err = fb_fmt(dir, sizeof(dir), "%s/templates", home);
	if (err < 0)
		return err;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fb_errorf(-errno, "mkdir %s: %s", dir, strerror(errno));
	clock_gettime(CLOCK_REALTIME, &t);
	return fb_fmt(buf, len, "%s/%s-%lld%09ld", dir, parent,
		      (long long)t.tv_sec, t.tv_nsec);
}

int fb_box_fork(const struct fb_box_info *parent, unsigned n,
		const struct fb_box_spec *child_spec,
		struct fb_box_fork_result *res)
{
	char tmpl[PATH_MAX], detail[256];
	struct fb_box_spec spec = *child_spec;
	int (*pipes)[2];
	pid_t *pids;
	double t0 = now_ms();
	const char *p;
	int err;

	memset(res, 0, sizeof(*res));
	if (n < 1 || n > FORK_MAX)
		return fb_errorf(-EINVAL, "fork -n %u: 1..%d", n, FORK_MAX);
	err = template_dir(parent->id, tmpl, sizeof(tmpl));
	if (!err)
		err = fb_box_snapshot(parent, tmpl, false, detail,
				      sizeof(detail));
	if (err < 0)
		return err;
	p = strstr(detail, "paused_ms=");
	res->pause_ms = p ? atof(p + 10) : -1;
	res->snapshot_ms = now_ms() - t0;
	spec.restore_from = tmpl;
	spec.restore_mem_mode = FB_SNAP_MEM_FILE;

	res->ids = calloc(n, sizeof(*res->ids));
	pipes = calloc(n, sizeof(*pipes));
	pids = calloc(n, sizeof(*pids));
	if (!res->ids || !pipes || !pids) {
		err = fb_errorf(-ENOMEM, "calloc for %u children", n);
		goto out;
	}
	/* One process per child, so the N restores run at once. */
	for (unsigned i = 0; i < n; i++) {
		if (pipe(pipes[i]) < 0) {
			err = fb_errorf(-errno, "pipe: %s", strerror(errno));
			n = i;
			break;
		}
		pids[i] = fork();
		if (pids[i] == 0) {
			char id[FB_BOX_ID_LEN + 1], line[600];
			int e;

			close(pipes[i][0]);
			e = fb_box_create(&spec, NULL, id);
			snprintf(line, sizeof(line), "%s %s\n", e < 0 ? "error" :
				 "ok", e < 0 ? fb_last_error() : id);
			(void)fb_write_full(pipes[i][1], line, strlen(line));
			_exit(e < 0 ? 1 : 0);
		}
		close(pipes[i][1]);
		if (pids[i] < 0) {
			err = fb_errorf(-errno, "fork: %s", strerror(errno));
			close(pipes[i][0]);
			n = i;
			break;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		char line[600] = "";
		ssize_t got = 0, r;

		while (got < (ssize_t)sizeof(line) - 1 &&
		       (r = read(pipes[i][0], line + got,
				 sizeof(line) - 1 - (size_t)got)) > 0)
			got += r;
		line[got > 0 ? got : 0] = '\0';
		close(pipes[i][0]);
		waitpid(pids[i], NULL, 0);
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "ok ", 3) &&
		    strlen(line + 3) == FB_BOX_ID_LEN) {
			memcpy(res->ids[res->nr].id, line + 3,
			       FB_BOX_ID_LEN + 1);
			res->nr++;
		} else if (!err) {
			err = fb_errorf(-EIO, "child %u: %s", i, line[0] ?
					line + 6 : "its restore died");
		}
	}
	res->total_ms = now_ms() - t0;
out:
	free(pipes);
	free(pids);
	return err;
}

void fb_box_fork_result_free(struct fb_box_fork_result *res)
{
	free(res->ids);
	memset(res, 0, sizeof(*res));
}
