/* Fork of a running box into N children: the parent's VMM freezes its
 * memory into sealed layers and hands them over with its state
 * (src/box/fork_template.c); N new VMM processes map the layers
 * MAP_PRIVATE, so parent and children share every page none of them
 * writes, and each child gets its own id, hostname, entropy, clock and
 * vsock before it is reported ready (src/box/restore.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "box/boxdir.h"
#include "box/rootdisk.h"
#include "box/control.h"
#include "snapshot/format.h"
#include "snapshot/layers.h"
#include "vmm/vm_snapshot.h"
#include "util/error.h"
#include "util/file.h"
#include "util/clock.h"

#define FORK_MAX 1024
#define FORK_CONTROL_TIMEOUT_MS 60000

/* Asks the parent's VMM for a template (its pause is the only time it
 * stops) and checks it: the state like a snapshot's, the layers sealed. */
static int get_template(const struct fb_box_info *parent, struct fb_snap **state,
			struct fb_mem_layers *layers, double *pause_ms,
			unsigned long long *runs, char *disk, size_t disk_len)
{
	int fds[2 + FB_LAYERS_MAX];
	struct fb_vm_snap_config cfg;
	char detail[256];
	const char *d;
	unsigned nr_fds, nr_layers = 0;
	int err;

	err = fb_box_control_call_fds(parent->dir, "fork", detail,
				      sizeof(detail), fds, 2 + FB_LAYERS_MAX,
				      &nr_fds, FORK_CONTROL_TIMEOUT_MS);
	if (err < 0)
		return err;
	if (sscanf(detail, "paused_ms=%lf layers=%u runs=%llu", pause_ms,
		   &nr_layers, runs) != 3 || nr_fds != 2 + nr_layers) {
		for (unsigned i = 0; i < nr_fds; i++)
			close(fds[i]);
		return fb_errorf(-EPROTO, "fork: the parent's reply '%.80s' "
				 "came with %u fds", detail, nr_fds);
	}
	/* The parent's root disk, frozen with its memory (diskfreeze.c). */
	d = strstr(detail, " disk=");
	snprintf(disk, disk_len, "%.*s", d ? (int)strcspn(d + 6, " \n") : 0,
		 d ? d + 6 : "");
	err = lseek(fds[0], 0, SEEK_SET) < 0 ?
	      fb_errorf(-errno, "lseek: %s", strerror(errno)) :
	      fb_snap_read_fd(fds[0], "the parent's state", 0, state);
	close(fds[0]);
	if (!err)
		err = fb_vm_snapshot_config(*state, &cfg);
	if (err) {
		for (unsigned i = 1; i < nr_fds; i++)
			close(fds[i]);
		return err;
	}
	err = fb_mem_layers_from_fds(layers, fds[1], fds + 2, nr_layers,
				     (cfg.mem_mib << 20) / FB_PAGE_SIZE);
	close(fds[1]);
	return err;
}

/* A child's VMM process: creates the box and reports "ok ID" or
 * "error MESSAGE" on fd. */
static void __attribute__((noreturn))
child_main(const struct fb_box_spec *spec, int fd)
{
	char id[FB_BOX_ID_LEN + 1], line[600];
	int e;

	fb_box_keep_handed_fds(spec, fd);
	e = fb_box_create(spec, NULL, id);

	snprintf(line, sizeof(line), "%s %s\n", e < 0 ? "error" : "ok",
		 e < 0 ? fb_last_error() : id);
	(void)fb_write_full(fd, line, strlen(line));
	_exit(e < 0 ? 1 : 0);
}

/* Reads child i's report line into res (or the first error into err).
 * Up to the newline, not to EOF: the child's VMM, forked from it, holds
 * the pipe's write end for as long as it lives. */
static void reap(int fd, pid_t pid, unsigned i, struct fb_box_fork_result *res,
		 int *err)
{
	char line[600] = "";
	size_t got = 0;
	ssize_t r;

	while (got < sizeof(line) - 1 && !memchr(line, '\n', got) &&
	       ((r = read(fd, line + got, sizeof(line) - 1 - got)) > 0 ||
		(r < 0 && errno == EINTR)))
		got += r > 0 ? (size_t)r : 0;
	line[got] = '\0';
	close(fd);
	waitpid(pid, NULL, 0);
	line[strcspn(line, "\n")] = '\0';
	if (!strncmp(line, "ok ", 3) && strlen(line + 3) == FB_BOX_ID_LEN) {
		memcpy(res->ids[res->nr].id, line + 3, FB_BOX_ID_LEN + 1);
		res->nr++;
	} else if (!*err) {
		*err = fb_errorf(-EIO, "child %u: %s", i, line[0] ? line + 6 :
				 "its VMM died while it was restored");
	}
}

struct child_id {
	char id[FB_BOX_ID_LEN + 1];
};

/* A child whose directory was prepared but whose VMM never started. */
static void remove_prepared(const char *id)
{
	char home[PATH_MAX], dir[PATH_MAX];

	if (id[0] && !fb_home_dir(home, sizeof(home)) &&
	    !fb_fmt(dir, sizeof(dir), "%s/boxes/%s", home, id))
		fb_box_dir_remove(dir);
}

/* The parent's frozen top sealed (diskshare.c: no VMM can write the
 * copy), then every child's disk links the chain. */
static int share_disk(const struct fb_box_info *parent,
		      const struct fb_box_spec *spec, unsigned n,
		      struct child_id **out)
{
	struct child_id *ids = calloc(n, sizeof(*ids));
	int err = ids ? 0 : fb_errorf(-ENOMEM, "calloc for %u ids", n);

	if (!err)
		err = fb_disk_seal_frozen(parent->dir, spec->fork_disk_frozen);
	for (unsigned i = 0; !err && i < n; i++) {
		err = fb_box_prepare_child(spec, ids[i].id);
		if (err)
			ids[i].id[0] = '\0'; /* removed by prepare_child */
	}
	if (err < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", fb_last_error());
		for (unsigned i = 0; ids && i < n; i++)
			remove_prepared(ids[i].id);
		free(ids);
		return fb_errorf(err, "%s", why);
	}
	*out = ids;
	return 0;
}

int fb_box_fork(const struct fb_box_info *parent, unsigned n,
		const struct fb_box_spec *child_spec,
		struct fb_box_fork_result *res)
{
	struct fb_box_spec spec = *child_spec;
	struct fb_mem_layers layers = { 0 };
	struct fb_snap *state = NULL;
	struct child_id *preset = NULL;
	char disk[128];
	unsigned window, started = 0, done = 0;
	struct { int fd; pid_t pid; unsigned i; } *run = NULL;
	double t0 = fb_now_ms();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int err;

	memset(res, 0, sizeof(*res));
	if (n < 1 || n > FORK_MAX)
		return fb_errorf(-EINVAL, "fork -n %u: 1..%d", n, FORK_MAX);
	res->ids = calloc(n, sizeof(*res->ids));
	if (!res->ids)
		return fb_errorf(-ENOMEM, "calloc for %u children", n);
	err = get_template(parent, &state, &layers, &res->pause_ms,
			   &res->runs, disk, sizeof(disk));
	if (err < 0)
		return err;
	res->template_ms = fb_now_ms() - t0;
	res->layers = layers.nr;
	spec.restore_from = NULL;
	spec.fork_state = state;
	spec.fork_layers = &layers;
	spec.fork_disk_dir = disk[0] ? parent->dir : NULL;
	spec.fork_disk_frozen = disk[0] ? disk : NULL;
	if (disk[0]) {
		double t_disk = fb_now_ms();

		err = share_disk(parent, &spec, n, &preset);
		res->disk_ms = fb_now_ms() - t_disk;
		if (err < 0)
			goto out;
	}

	/* Children are restored a few at a time: more than the CPUs can
	 * run only queue up in the kernel. */
	window = (unsigned)(cpus > 0 ? 2 * cpus : 4);
	if (window > n)
		window = n;
	run = calloc(window, sizeof(*run));
	if (!run) {
		err = fb_errorf(-ENOMEM, "calloc for %u children", window);
		goto out;
	}
	while (done < started || (started < n && !err)) {
		unsigned active = started - done;

		if (started < n && !err && active < window) {
			int p[2];
			pid_t pid;

			if (pipe2(p, O_CLOEXEC) < 0) {
				err = fb_errorf(-errno, "pipe: %s",
						strerror(errno));
				continue;
			}
			if (preset)
				spec.preset_id = preset[started].id;
			pid = fork();
			if (pid == 0) {
				close(p[0]);
				child_main(&spec, p[1]);
			}
			close(p[1]);
			if (pid < 0) {
				err = fb_errorf(-errno, "fork: %s",
						strerror(errno));
				close(p[0]);
				continue;
			}
			run[started % window].fd = p[0];
			run[started % window].pid = pid;
			run[started % window].i = started;
			started++;
			continue;
		}
		/* Oldest first: they were started first and finish first. */
		reap(run[done % window].fd, run[done % window].pid,
		     run[done % window].i, res, &err);
		done++;
	}
	res->total_ms = fb_now_ms() - t0;
out:
	/* Children prepared but never started. */
	for (unsigned i = started; preset && i < n; i++)
		remove_prepared(preset[i].id);
	free(preset);
	free(run);
	fb_snap_free(state);
	fb_mem_layers_free(&layers);
	return err;
}

void fb_box_fork_result_free(struct fb_box_fork_result *res)
{
	free(res->ids);
	memset(res, 0, sizeof(*res));
}
