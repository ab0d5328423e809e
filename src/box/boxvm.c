#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "box/boxvm.h"
#include "box/rootdisk.h"
#include "disk/disk.h"
#include "forkbox/agent_proto.h"
#include "forkbox/guest_proto.h"
#include "host/ksm.h"
#include "jail/jail.h"
#include "snapshot/memory.h"
#include "vmm/vm_snapshot.h"
#include "util/error.h"
#include "util/sock.h"
#include "util/clock.h"

#define DEFAULT_READY_TIMEOUT_MS 60000
#define AGENT_CMDLINE FB_CMDLINE_BASE " " FB_CMDLINE_AGENT "1"

static int listen_unix(const char *path)
{
	struct sockaddr_un addr;
	int fd, err = fb_unix_addr(&addr, path);

	if (err < 0)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fb_errorf(-errno, "socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, 8) < 0) {
		err = -errno;
		close(fd);
		return fb_errorf(err, "bind/listen %s: %s", path,
				 strerror(-err));
	}
	return fd;
}

static void *vm_thread(void *arg)
{
	struct fb_box_vm *b = arg;
	uint64_t one = 1;

	b->run_err = fb_vm_run(b->vm, &b->exit);
	if (write(b->exited_efd, &one, sizeof(one)) < 0) {
		/* eventfd writes of 1 cannot fail short of overflow */
	}
	return NULL;
}

/* Waits for the agent's hello on the ready socket, or for the VM to end
 * first, or for the deadline. */
static int wait_ready(struct fb_box_vm *b, unsigned timeout_ms, double t0)
{
	struct pollfd p[2] = {
		{ .fd = b->ready_listen_fd, .events = POLLIN },
		{ .fd = b->exited_efd, .events = POLLIN },
	};
	struct fb_agent_hello hello;
	struct fb_agent_boot boot;
	double left = timeout_ms - (fb_now_ms() - t0);
	int n, err;

	if (left < 1)
		left = 1;
	n = poll(p, 2, (int)left);
	if (n < 0)
		return fb_errorf(-errno, "poll: %s", strerror(errno));
	if (p[1].revents)
		return fb_errorf(-EIO, "the box ended (%s: %s) before its "
				 "agent was ready",
				 fb_vm_exit_reason_name(b->exit.reason),
				 b->exit.message);
	if (n == 0)
		return fb_errorf(-ETIMEDOUT, "the box's agent did not say "
				 "hello within %u ms", timeout_ms);
	left = timeout_ms - (fb_now_ms() - t0);
	err = fb_agent_accept_ready(b->ready_listen_fd,
				    left < 1 ? 1 : (int)left, &hello, &boot);
	if (err < 0)
		return err;
	b->hello_at_ms = fb_now_ms();
	b->ready_ms = b->hello_at_ms - t0;
	b->guest_hello_ns = hello.boottime_ns;
	memcpy(b->guest_boot_ns, boot.ns, sizeof(b->guest_boot_ns));
	return 0;
}

/* The VMM's threads (vCPUs, device workers) get stacks below the 2 MiB
 * of a transparent huge page: with the default 8 MiB, a stack whose top
 * lands on a 2 MiB boundary (as the ones mapped beside aligned guest RAM
 * do) takes a whole huge page for the few KiB it uses, 2 MiB a box. None
 * of them keeps more than a few KiB on its stack. */
#define VMM_THREAD_STACK (1u << 20)

static void small_thread_stacks(void)
{
	pthread_attr_t attr;

	if (pthread_attr_init(&attr))
		return;
	if (!pthread_attr_setstacksize(&attr, VMM_THREAD_STACK))
		(void)pthread_setattr_default_np(&attr);
	pthread_attr_destroy(&attr);
}

int fb_box_vm_prepare(const struct fb_box_spec *spec, const char *dir,
		      bool listen_ready, struct fb_box_vm **out)
{
	char console[PATH_MAX + 16];
	struct fb_box_vm *b;
	int err;

	small_thread_stacks();
	b = calloc(1, sizeof(*b));
	if (!b)
		return fb_errorf(-ENOMEM, "calloc for the box");
	b->exited_efd = b->ready_listen_fd = b->disk_dirfd = -1;
	snprintf(b->dir, sizeof(b->dir), "%s", dir);
	err = fb_fmt(b->uds, sizeof(b->uds), "%s/%s", dir, FB_BOX_VSOCK_NAME);
	if (!err)
		err = fb_fmt(console, sizeof(console), "%s/%s", dir,
			     FB_BOX_CONSOLE_NAME);
	if (err < 0)
		goto fail;
	b->console_log = fopen(console, "we");
	if (!b->console_log) {
		err = fb_errorf(-errno, "open %s: %s", console,
				strerror(errno));
		goto fail;
	}
	setvbuf(b->console_log, NULL, _IONBF, 0);
	if (listen_ready) {
		/* The agent dials the host as soon as it runs: listen
		 * first. */
		snprintf(b->ready_path, sizeof(b->ready_path), "%s_%u", b->uds,
			 FB_AGENT_READY_PORT);
		b->ready_listen_fd = listen_unix(b->ready_path);
		if (b->ready_listen_fd < 0) {
			err = b->ready_listen_fd;
			goto fail;
		}
	}
	b->exited_efd = eventfd(0, EFD_CLOEXEC);
	if (b->exited_efd < 0) {
		err = fb_errorf(-errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	*out = b;
	return 0;
fail:
	fb_box_vm_stop(b);
	return err;
}

int fb_box_vm_launch(struct fb_box_vm *b, const struct fb_box_spec *spec,
		     const struct fb_vm_config *vmc, const struct fb_snap *snap)
{
	const char *dir = b->dir;
	struct fb_jail_config jail;
	double t = fb_now_ms();
	int err;

	b->launch_at_ms = t;
	/* The jail (src/jail/jail.h): its cgroup and namespaces before the
	 * VM exists (one thread yet; guest memory charged to the box from
	 * its first page), the rest once everything privileged is done
	 * (/dev/kvm, VM, memory, vCPU fds, sockets) and before a vCPU runs. */
	fb_jail_config_for(&jail, strrchr(dir, '/') ? strrchr(dir, '/') + 1 :
			   dir, dir, vmc->mem_mib, vmc->cpus);
	if (!spec->no_jail) {
		err = fb_jail_prepare(&jail);
		if (err < 0)
			return err;
	}
	b->launch_ms[FB_LAUNCH_JAIL_PREPARE] = fb_now_ms() - t;
	err = fb_vm_create(vmc, &b->vm);
	if (err < 0)
		return err;
	b->launch_ms[FB_LAUNCH_VM_CREATE] = fb_now_ms() - t;
	if (snap) {
		err = fb_vm_snapshot_apply(b->vm, snap);
		/* Diffs of a restored box count from the snapshot. */
		if (!err)
			err = fb_vm_dirty_start(b->vm);
		if (err < 0)
			return err;
	}
	b->launch_ms[FB_LAUNCH_STATE] = fb_now_ms() - t;
	if (!spec->no_jail) {
		err = fb_jail_enter(&jail);
		if (err < 0)
			return err;
	}
	b->launch_ms[FB_LAUNCH_JAIL_ENTER] = fb_now_ms() - t;
	err = -pthread_create(&b->thread, NULL, vm_thread, b);
	if (err)
		return fb_errorf(err, "pthread_create: %s", strerror(-err));
	b->thread_started = true;
	return 0;
}

int fb_box_vm_start(const struct fb_box_spec *spec, const char *dir,
		    struct fb_box_vm **out)
{
	char kernel[PATH_MAX], initrd[PATH_MAX], cmdline[256];
	struct fb_disk *disks[FB_VM_MAX_DISKS];
	struct fb_vm_config vmc;
	struct fb_box_vm *b;
	unsigned nr_disks = 0;
	double t0 = fb_now_ms();
	int err;

	err = fb_box_vm_prepare(spec, dir, true, &b);
	if (err < 0)
		return err;
	/* Opened here, with the privilege the jail takes away; the VM owns
	 * them from fb_vm_create on. */
	err = fb_box_open_disks(dir, spec, disks, &nr_disks, &b->disk_dirfd);
	if (err < 0)
		goto fail;
	b->root_disk = b->disk_dirfd >= 0;
	if (!spec->kernel)
		err = fb_default_kernel(kernel, sizeof(kernel));
	if (!err && !spec->initrd)
		err = fb_default_initrd(initrd, sizeof(initrd));
	if (err < 0) {
		for (unsigned i = 0; i < nr_disks; i++)
			fb_disk_close(disks[i]);
		goto fail;
	}
	/* With KSM, no KASLR in the guest: each box's kernel would be
	 * relocated to its own random place, and its text, data and page
	 * tables would differ from every other box's, page for page. */
	snprintf(cmdline, sizeof(cmdline), "%s%s%s", AGENT_CMDLINE,
		 b->root_disk ? " " FB_CMDLINE_ROOT "vda" : "",
		 fb_ksm_wanted(spec->ksm) ? " nokaslr" : "");
	vmc = (struct fb_vm_config){
		.cpus = spec->cpus ? spec->cpus : 1,
		.mem_mib = spec->mem_mib ? spec->mem_mib : 256,
		.kernel = spec->kernel ? spec->kernel : kernel,
		.initrd = spec->initrd ? spec->initrd : initrd,
		.cmdline = cmdline,
		.console_log_fd = fileno(b->console_log),
		.console_live_fd = spec->console_live_fd,
		.rng = true,
		.vsock_uds = b->uds,
		.vsock_cid = FB_BOX_GUEST_CID,
		/* Free page reporting gives back what the guest frees;
		 * forkbox balloon and stats (src/box/stats.c). */
		.balloon = true,
		.disks = disks,
		.nr_disks = nr_disks,
		.ksm = fb_ksm_wanted(spec->ksm),
	};
	err = fb_box_vm_launch(b, spec, &vmc, NULL);
	if (!err)
		err = wait_ready(b, spec->ready_timeout_ms ?
				 spec->ready_timeout_ms :
				 DEFAULT_READY_TIMEOUT_MS, t0);
	if (err < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", fb_last_error());
		fb_box_vm_stop(b);
		return fb_errorf(err, "%s (console log: %s/%s)", why, dir,
				 FB_BOX_CONSOLE_NAME);
	}
	*out = b;
	return 0;
fail:
	fb_box_vm_stop(b);
	return err;
}

int fb_box_vm_wait(struct fb_box_vm *b, int fd)
{
	struct pollfd p[2] = {
		{ .fd = b->exited_efd, .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fb_errorf(-errno, "poll: %s", strerror(errno));
		}
		if (p[0].revents)
			return 1;
		if (fd >= 0 && p[1].revents)
			return 0;
	}
}

void fb_box_vm_stop(struct fb_box_vm *b)
{
	if (!b)
		return;
	if (b->thread_started) {
		fb_vm_stop(b->vm);
		pthread_join(b->thread, NULL);
	}
	fb_vm_destroy(b->vm);
	/* After the VM: in UFFD mode its handler serves guest memory. */
	fb_snap_mem_release(b->snap_mem);
	fb_mem_layers_free(&b->layers);
	free(b->fork_dirty);
	if (b->ready_listen_fd >= 0) {
		close(b->ready_listen_fd);
		unlink(b->ready_path);
	}
	if (b->exited_efd >= 0)
		close(b->exited_efd);
	if (b->disk_dirfd >= 0)
		close(b->disk_dirfd);
	if (b->console_log)
		fclose(b->console_log);
	free(b);
}
