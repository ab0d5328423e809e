/* A new box from a snapshot: its memory mapped from the snapshot (shared
 * MAP_PRIVATE, or served on fault), the VM rebuilt from its state, and the
 * guest told of its new identity and the time before it is ready. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "box/boxvm.h"
#include "snapshot/format.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"

#define RESTORE_ENTROPY 64

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The guest's vsock connections were reset with the restore; its agent
 * listens on. Ready is a fresh connection answered with HELLO; then the
 * guest gets its new box id, fresh entropy and the host's time. */
/* The transport reset we queued for the guest and our first connection
 * can reach it in one interrupt; Linux then handles the connection first
 * and the reset kills it, silently. So a connection whose HELLO does not
 * come within a short wait is dropped and made again, until the
 * deadline: a fresh connection after the reset always answers. */
#define HELLO_ATTEMPT_MS 3000

static int dial_agent(struct fb_box_vm *b, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	int fd;

	for (;;) {
		double left = deadline - now_ms();
		int attempt = left < HELLO_ATTEMPT_MS ? (int)left :
						       HELLO_ATTEMPT_MS;

		fd = fb_agent_dial(b->uds, FB_AGENT_PORT,
				   attempt > 0 ? attempt : 1, NULL);
		if (fd >= 0 || now_ms() >= deadline)
			return fd;
	}
}

static int greet(struct fb_box_vm *b, const char *box_id, int timeout_ms)
{
	uint8_t entropy[RESTORE_ENTROPY];
	char hostname[32];
	struct fb_agent_reinject ri = {
		.box_id = box_id, .hostname = hostname, .entropy = entropy,
		.entropy_len = sizeof(entropy),
	};
	struct timespec now;
	int fd, err;

	/* Every box its own name: forks of one box must not share one. */
	snprintf(hostname, sizeof(hostname), "forkbox-%.12s", box_id);
	fd = dial_agent(b, timeout_ms);
	if (fd < 0)
		return fd;
	if (getrandom(entropy, sizeof(entropy), 0) != sizeof(entropy)) {
		close(fd);
		return fb_errorf(-errno, "getrandom: %s", strerror(errno));
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ri.realtime_ns = (uint64_t)now.tv_sec * 1000000000ull +
			 (uint64_t)now.tv_nsec;
	err = fb_agent_reinject(fd, &ri, NULL, timeout_ms);
	close(fd);
	return err;
}

int fb_box_vm_restore(const struct fb_box_spec *spec, const char *dir,
		      const char *snap_dir, int mem_mode,
		      struct fb_box_vm **out)
{
	char path[PATH_MAX + 16], why[512];
	const char *id = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	struct fb_vm_snap_config cfg;
	struct fb_snap *snap = NULL;
	struct fb_vm_config vmc;
	struct fb_box_vm *b;
	double t0 = now_ms();
	int err;

	err = fb_box_vm_prepare(spec, dir, false, &b);
	if (err < 0)
		return err;
	err = fb_fmt(path, sizeof(path), "%s/%s", snap_dir, FB_SNAP_FILE_STATE);
	if (!err)
		err = fb_snap_read(path, &snap);
	if (!err)
		err = fb_vm_snapshot_config(snap, &cfg);
	if (!err)
		err = fb_snap_mem_map(snap_dir, cfg.mem_mib << 20,
				      (enum fb_snap_mem_mode)mem_mode,
				      &b->snap_mem);
	if (err < 0)
		goto fail;
	vmc = (struct fb_vm_config){
		.cpus = cfg.cpus,
		.mem_mib = cfg.mem_mib,
		.cmdline = "",
		.console_log_fd = fileno(b->console_log),
		.console_live_fd = spec->console_live_fd,
		.rng = cfg.rng,
		.vsock_uds = cfg.vsock ? b->uds : NULL,
		.vsock_cid = cfg.vsock_cid,
		.restore_mem = fb_snap_mem_take_host(b->snap_mem),
	};
	/* Diffs of this box start from the snapshot it came from. Resolved
	 * now: the jail entered by the launch has no view of it. */
	if (!realpath(snap_dir, b->last_snapshot))
		b->last_snapshot[0] = '\0';
	err = fb_box_vm_launch(b, spec, &vmc, snap);
	if (err < 0)
		goto fail;
	err = greet(b, id, spec->ready_timeout_ms ? (int)spec->ready_timeout_ms
						  : 60000);
	if (err < 0)
		goto fail;
	b->ready_ms = now_ms() - t0;
	fb_snap_free(snap);
	*out = b;
	return 0;
fail:
	snprintf(why, sizeof(why), "%s", fb_last_error());
	fb_snap_free(snap);
	fb_box_vm_stop(b);
	return fb_errorf(err, "restore from %s: %s", snap_dir, why);
}
