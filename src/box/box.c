#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "box/rootdisk.h"
#include "box/trace.h"
#include "image/store.h"
#include "util/copy.h"
#include "box/control.h"
#include "jail/jail.h"
#include "util/error.h"
#include "util/file.h"

#define STATUS_MSG_MAX 600
#define CREATE_SLACK_MS 10000 /* beyond the ready deadline */

const char *fb_box_state_name(enum fb_box_state s)
{
	switch (s) {
	case FB_BOX_STARTING: return "starting";
	case FB_BOX_RUNNING: return "running";
	case FB_BOX_PAUSED: return "paused";
	case FB_BOX_DEAD: return "dead";
	}
	return "unknown";
}

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	/* Box directories are short, checked when created. */
	(void)fb_fmt(buf, len, "%s/%s", dir, name);
}

static int write_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX + 32];

	path_in(path, sizeof(path), dir, name);
	return fb_write_file_atomic(path, text, strlen(text), 0600);
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 63)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
		      *c == '.'))
			return false;
	return true;
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The boot's trace for forkbox run --trace (box/trace.h), before the box
 * says it is ready so the CLI finds it then. A trace is not worth failing
 * a box for: a line in vmm.log. */
static void write_trace(const struct fb_box_vm *b, const char *dir,
			uint64_t start_ns, uint64_t prepared_ns)
{
	struct fb_box_trace t;

	fb_box_trace_collect(&t, b, start_ns, prepared_ns);
	if (fb_box_trace_write(dir, &t) < 0)
		fprintf(stderr, "forkbox vmm: %s\n", fb_last_error());
}

void fb_box_keep_handed_fds(const struct fb_box_spec *spec, int status_fd)
{
	int keep[FB_LAYERS_MAX + 2];
	unsigned n = 0;

	keep[n++] = status_fd;
	keep[n++] = spec->console_live_fd;
	for (unsigned i = 0; spec->fork_layers && i < spec->fork_layers->nr &&
	     i < FB_LAYERS_MAX; i++)
		keep[n++] = spec->fork_layers->fds[i];
	fb_close_fds_except(keep, n);
}

/* The detached VMM process: holds the box's lock for its whole life,
 * boots the box, reports ready (or why not) on status_fd, then runs until
 * the guest ends or a signal asks it to stop. prepared_ns: when its
 * directory and disk were ready (CLOCK_MONOTONIC), for the trace. Never
 * returns. */
static void __attribute__((noreturn))
vmm_main(const struct fb_box_spec *box_spec, const char *dir, int status_fd,
	 uint64_t prepared_ns)
{
	uint64_t start_ns = mono_ns();
	char path[PATH_MAX + 32], msg[STATUS_MSG_MAX], text[64];
	struct fb_box_spec spec_copy = *box_spec, *spec = &spec_copy;
	struct fb_box_vm *b;
	sigset_t sigs;
	int lock_fd, sig_fd, ctl_fd, log_fd, null_fd, err;

	path_in(path, sizeof(path), dir, "lock");
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0) {
		(void)fb_fmt(msg, sizeof(msg), "error lock %.400s: %s\n", path,
			     strerror(errno));
		(void)!write(status_fd, msg, strlen(msg));
		_exit(1);
	}
	/* In its own PID namespace the VMM is pid 1 there: record the pid
	 * the host knows it by. */
	snprintf(text, sizeof(text), "%d\n", (int)fb_jail_host_pid());
	write_text(dir, "pid", text);
	/* --console (run): the caller's stderr, before it becomes vmm.log. */
	if (spec->console_live_fd >= 0)
		spec->console_live_fd = fcntl(spec->console_live_fd,
					      F_DUPFD_CLOEXEC, 3);

	path_in(path, sizeof(path), dir, "vmm.log");
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (log_fd >= 0 && null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
	}
	if (spec->no_jail)
		fprintf(stderr, "forkbox vmm: --no-jail: this VMM runs without "
			"its jail (no seccomp, namespaces, cgroup or uid of its "
			"own): for debugging only\n");
	/* Blocked before any thread starts, so only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

	/* Made before the jail: the VMM cannot bind in the box directory
	 * once it has dropped its privileges. */
	ctl_fd = fb_box_control_listen(dir);
	err = ctl_fd < 0 ? ctl_fd :
	      spec->restore_from || spec->fork_state ?
	      fb_box_vm_restore(spec, dir, spec->restore_from,
				spec->restore_mem_mode, &b) :
	      fb_box_vm_start(spec, dir, &b);
	if (err < 0) {
		snprintf(msg, sizeof(msg), "error %s\n", fb_last_error());
		(void)!write(status_fd, msg, strlen(msg));
		snprintf(msg, sizeof(msg), "failed to boot: %s\n",
			 fb_last_error());
		write_text(dir, "exit", msg);
		fprintf(stderr, "forkbox vmm: %s", msg);
		_exit(1);
	}
	write_trace(b, dir, start_ns, prepared_ns);
	snprintf(text, sizeof(text), "%.1f\n", b->ready_ms);
	write_text(dir, "ready", text);
	snprintf(msg, sizeof(msg), "ok %.1f\n", b->ready_ms);
	(void)!write(status_fd, msg, strlen(msg));
	close(status_fd);

	if (fb_box_control_loop(b, ctl_fd, sig_fd) == 0)
		snprintf(msg, sizeof(msg), "stopped: stopped by the host\n");
	else
		snprintf(msg, sizeof(msg), "%s: %s\n",
			 fb_vm_exit_reason_name(b->exit.reason),
			 b->exit.message);
	fb_box_vm_stop(b);
	write_text(dir, "exit", msg);
	fprintf(stderr, "forkbox vmm: %s", msg);
	_exit(0);
}

/* Reads the VMM's one status line, with a deadline. */
static int read_status(int fd, unsigned timeout_ms, char *msg, size_t len)
{
	size_t got = 0;

	while (got < len - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r = poll(&p, 1, (int)timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fb_errorf(-ETIMEDOUT, "the box did not become "
					 "ready in time");
		n = read(fd, msg + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(msg, '\n', got))
			break;
	}
	msg[got] = '\0';
	return 0;
}

int fb_box_copy_image_config(const char *from_dir, const char *to_dir)
{
	char from[PATH_MAX], to[PATH_MAX];
	int err = fb_fmt(from, sizeof(from), "%s/%s", from_dir,
			 FB_BOX_IMAGE_CONFIG);

	if (!err)
		err = fb_fmt(to, sizeof(to), "%s/%s", to_dir,
			     FB_BOX_IMAGE_CONFIG);
	if (!err && access(from, F_OK) == 0)
		err = fb_copy_file_cow(from, to, NULL);
	return err;
}

/* Cleans up after a failure without losing its message. */
static void remove_dir_keep_error(const char *dir)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", fb_last_error());
	fb_box_dir_remove(dir);
	fb_errorf(0, "%s", why);
}

/* The box's root disk: from its image, its fork parent's frozen disk or
 * its snapshot's, with the image defaults that go with it. */
static int prepare_disk(const struct fb_box_spec *spec, const char *dir,
			const struct fb_image *img)
{
	char cfg_path[PATH_MAX];
	int err = 0;

	if (img) {
		bool reflinked;

		err = fb_box_root_disk_create(dir, img, &reflinked);
		if (!err)
			err = fb_fmt(cfg_path, sizeof(cfg_path), "%s/%s", dir,
				     FB_BOX_IMAGE_CONFIG);
		if (!err)
			err = fb_image_config_save(&img->cfg, cfg_path);
	} else if (spec->fork_disk_frozen) {
		err = fb_disk_child_create(spec->fork_disk_dir,
					   spec->fork_disk_frozen, dir);
	} else if (spec->restore_from) {
		err = fb_disk_restore_prepare(spec->restore_from, dir);
	}
	if (!err && (spec->fork_disk_dir || spec->restore_from))
		err = fb_box_copy_image_config(spec->fork_disk_dir ?
					       spec->fork_disk_dir :
					       spec->restore_from, dir);
	return err;
}

int fb_box_prepare_child(const struct fb_box_spec *spec,
			 char id[FB_BOX_ID_LEN + 1])
{
	char dir[PATH_MAX] = "";
	int err = fb_box_new_id(id);

	if (!err)
		err = fb_box_dir_create(id, dir, sizeof(dir));
	if (!err)
		err = prepare_disk(spec, dir, NULL);
	if (err < 0 && dir[0])
		remove_dir_keep_error(dir);
	return err;
}

int fb_box_create(const struct fb_box_spec *spec, const char *name,
		  char id[FB_BOX_ID_LEN + 1])
{
	char dir[PATH_MAX] = "", msg[STATUS_MSG_MAX], *nl;
	struct fb_box_info other;
	struct fb_image img;
	uint64_t prepared_ns;
	int status[2], err, st, cgroup_fd;
	unsigned timeout = (spec->ready_timeout_ms ? spec->ready_timeout_ms :
			    60000) + CREATE_SLACK_MS;
	pid_t pid;

	if (name) {
		if (!valid_name(name))
			return fb_errorf(-EINVAL, "box name '%s': use 1-63 of "
					 "A-Z a-z 0-9 - _ .", name);
		if (fb_box_find(name, &other) == 0)
			return fb_errorf(-EEXIST, "a box named '%s' exists "
					 "already (%s)", name, other.id);
	}
	if (spec->image) {
		err = fb_image_ensure(spec->image, &img);
		if (err < 0)
			return err;
	}
	if (spec->preset_id) {
		/* Made ready by the caller (a fork's children: their disks
		 * are linked to the parent's sealed layers first). */
		snprintf(id, FB_BOX_ID_LEN + 1, "%s", spec->preset_id);
		err = fb_box_dir_create(id, dir, sizeof(dir));
		if (spec->image)
			fb_image_free(&img);
		if (err < 0)
			return err;
	} else {
		err = fb_box_new_id(id);
		if (!err)
			err = fb_box_dir_create(id, dir, sizeof(dir));
		if (!err)
			err = prepare_disk(spec, dir, spec->image ? &img : NULL);
		if (spec->image)
			fb_image_free(&img);
	}
	if (!err && name)
		err = write_text(dir, "name", name);
	if (err < 0) {
		if (dir[0])
			remove_dir_keep_error(dir);
		return err;
	}
	prepared_ns = mono_ns();
	/* The VMM is born in its cgroup (src/jail/clone.c). */
	cgroup_fd = spec->no_jail ? -1 : fb_jail_cgroup_open(id);
	if (cgroup_fd < 0 && !spec->no_jail) {
		remove_dir_keep_error(dir);
		return cgroup_fd;
	}
	if (pipe2(status, O_CLOEXEC) < 0) {
		err = fb_errorf(-errno, "pipe: %s", strerror(errno));
		goto fail_cgroup;
	}
	pid = cgroup_fd >= 0 ? fb_jail_fork_into_cgroup(cgroup_fd) : fork();
	if (pid < 0) {
		err = fb_errorf(-errno, "fork: %s", strerror(errno));
		close(status[0]);
		close(status[1]);
		goto fail_cgroup;
	}
	if (pid == 0) {
		pid_t vmm;

		/* Twice, so the VMM is nobody's child and outlives us (its
		 * own session: a ^C for the caller is not for the box). In
		 * the jail, the VMM is PID 1 of a PID namespace of its own. */
		/* Before anything else: from here on a daemon's sockets,
		 * its clients' connections and other requests' pipes (and
		 * flocks) would live as long as this process. */
		fb_box_keep_handed_fds(spec, status[1]);
		setsid();
		if (spec->attached)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!spec->no_jail && fb_jail_new_pid_ns() < 0) {
			snprintf(msg, sizeof(msg), "error jail: %s\n",
				 fb_last_error());
			(void)!write(status[1], msg, strlen(msg));
			_exit(1);
		}
		vmm = fork();
		if (vmm == 0) {
			/* Attached (run): it ends with its creator. */
			if (spec->attached)
				prctl(PR_SET_PDEATHSIG, SIGTERM);
			vmm_main(spec, dir, status[1], prepared_ns);
		}
		/* Attached: stay its parent until it ends, and die with
		 * ours (then the VMM gets SIGTERM and stops its guest). */
		if (spec->attached && vmm > 0)
			waitpid(vmm, &st, 0);
		_exit(0);
	}
	close(status[1]);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	if (!spec->attached)
		waitpid(pid, &st, 0);
	err = read_status(status[0], timeout, msg, sizeof(msg));
	close(status[0]);
	if (err < 0)
		return err;
	nl = strchr(msg, '\n');
	if (nl)
		*nl = '\0';
	if (!strncmp(msg, "ok ", 3))
		return 0;
	if (!strncmp(msg, "error ", 6))
		return fb_errorf(-EIO, "%s", msg + 6);
	return fb_errorf(-EIO, "the box's VMM process died while booting "
			 "(see %s/vmm.log)", dir);
fail_cgroup:
	if (cgroup_fd >= 0) {
		close(cgroup_fd);
		fb_jail_cleanup(id);
	}
	remove_dir_keep_error(dir);
	return err;
}

/* Alive means the lock is held: a dead VMM's lock is released by the
 * kernel, whatever killed it, and a reused pid holds no lock. */
static bool lock_held(const char *dir)
{
	char path[PATH_MAX + 32];
	bool held = false;
	int fd;

	path_in(path, sizeof(path), dir, "lock");
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		close(fd);
	}
	return held;
}

static void load_info(const char *home_boxes, const char *id,
		      struct fb_box_info *info)
{
	char path[PATH_MAX + 32], text[64];

	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%s", id);
	(void)fb_fmt(info->dir, sizeof(info->dir), "%s/%s", home_boxes, id);
	path_in(path, sizeof(path), info->dir, "name");
	fb_read_text(path, info->name, sizeof(info->name));
	path_in(path, sizeof(path), info->dir, "pid");
	if (fb_read_text(path, text, sizeof(text)) == 0)
		info->pid = (pid_t)atoi(text);
	info->ready_ms = -1;
	path_in(path, sizeof(path), info->dir, "ready");
	if (fb_read_text(path, text, sizeof(text)) == 0)
		info->ready_ms = atof(text);
	path_in(path, sizeof(path), info->dir, "exit");
	fb_read_text(path, info->exit, sizeof(info->exit));
	info->state = FB_BOX_DEAD;
	if (lock_held(info->dir))
		info->state = info->ready_ms >= 0 ? FB_BOX_RUNNING :
						    FB_BOX_STARTING;
	path_in(path, sizeof(path), info->dir, FB_BOX_PAUSED_NAME);
	if (info->state == FB_BOX_RUNNING && access(path, F_OK) == 0)
		info->state = FB_BOX_PAUSED;
	if (info->state == FB_BOX_DEAD && !info->exit[0])
		snprintf(info->exit, sizeof(info->exit), "its VMM process "
			 "died");
}

static int boxes_dir(char *buf, size_t len)
{
	char home[PATH_MAX];
	int err = fb_home_dir(home, sizeof(home));

	if (err < 0)
		return err;
	return fb_fmt(buf, len, "%s/boxes", home);
}

static bool is_box_id(const char *s)
{
	if (strlen(s) != FB_BOX_ID_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int fb_box_list(int (*fn)(const struct fb_box_info *info, void *opaque),
		void *opaque)
{
	char dir[PATH_MAX];
	struct fb_box_info info;
	struct dirent *e;
	DIR *d;
	int err, r = 0;

	err = boxes_dir(dir, sizeof(dir));
	if (err < 0)
		return err;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : fb_errorf(-errno, "opendir %s: %s",
						      dir, strerror(errno));
	while (!r && (e = readdir(d))) {
		if (!is_box_id(e->d_name))
			continue;
		load_info(dir, e->d_name, &info);
		r = fn(&info, opaque);
	}
	closedir(d);
	return r < 0 ? r : 0;
}

struct find_state {
	const char *ref;
	struct fb_box_info *out;
	int matches;
	bool exact;
};

static int find_one(const struct fb_box_info *info, void *opaque)
{
	struct find_state *f = opaque;

	if (!strcmp(info->id, f->ref) || (info->name[0] &&
					  !strcmp(info->name, f->ref))) {
		*f->out = *info;
		f->exact = true;
		return 1;
	}
	if (!strncmp(info->id, f->ref, strlen(f->ref))) {
		if (!f->matches++)
			*f->out = *info;
	}
	return 0;
}

int fb_box_find(const char *ref, struct fb_box_info *info)
{
	struct find_state f = { .ref = ref, .out = info };
	int err;

	if (!*ref)
		return fb_errorf(-EINVAL, "empty box name");
	err = fb_box_list(find_one, &f);
	if (err < 0)
		return err;
	if (f.exact || f.matches == 1)
		return 0;
	if (f.matches > 1)
		return fb_errorf(-EINVAL, "'%s' matches %d boxes: give more of "
				 "the id", ref, f.matches);
	return fb_errorf(-ENOENT, "no box '%s' (see forkbox ps)", ref);
}

static int wait_exit(int pidfd, unsigned timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, (int)timeout_ms) > 0;
}

int fb_box_stop(const struct fb_box_info *info, unsigned timeout_ms)
{
	int pidfd;

	if (info->state == FB_BOX_DEAD || info->pid <= 0)
		return 0;
	pidfd = (int)syscall(SYS_pidfd_open, info->pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : fb_errorf(-errno, "pidfd_open %d: "
						     "%s", (int)info->pid,
						     strerror(errno));
	/* Through the pidfd, and only while the lock says the pid is still
	 * the box's VMM. */
	if (!lock_held(info->dir)) {
		close(pidfd);
		return 0;
	}
	syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
	if (!wait_exit(pidfd, timeout_ms)) {
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		wait_exit(pidfd, 5000);
	}
	close(pidfd);
	return 0;
}

int fb_box_remove(const struct fb_box_info *info, bool force)
{
	int err;

	if (info->state != FB_BOX_DEAD) {
		if (!force)
			return fb_errorf(-EBUSY, "box %s is %s: stop it first, "
					 "or use rm -f", info->id,
					 fb_box_state_name(info->state));
		err = fb_box_stop(info, 10000);
		if (err < 0)
			return err;
	}
	/* Its jail's cgroup goes with it. */
	err = fb_jail_cleanup(info->id);
	if (err < 0)
		return err;
	return fb_box_dir_remove(info->dir);
}
