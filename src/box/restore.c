/* A new box from a snapshot: its memory mapped from the snapshot (shared
 * MAP_PRIVATE, or served on fault), the VM rebuilt from its state, and the
 * guest told of its new identity and the time before it is ready. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "box/boxvm.h"
#include "box/rootdisk.h"
#include "devices/virtio/virtio.h"
#include "disk/disk.h"
#include "host/ksm.h"
#include "snapshot/format.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "vmm/guest_mem.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"
#include "util/clock.h"

#define RESTORE_ENTROPY 64

/* The guest's vsock connections were reset with the restore; its agent
 * listens on. Ready is a fresh connection answered with HELLO (the device
 * holds it until the guest has handled the reset: src/devices/virtio/
 * vsock.c); then the guest gets its new box id, fresh entropy and the
 * host's time. */
static int greet(struct fb_box_vm *b, const char *box_id, int timeout_ms,
		 struct fb_agent_dial_times *times)
{
	uint8_t entropy[RESTORE_ENTROPY];
	char hostname[32];
	struct fb_agent_reinject ri = {
		.box_id = box_id, .hostname = hostname, .entropy = entropy,
		.entropy_len = sizeof(entropy),
	};
	struct timespec now;

	/* Every box its own name: forks of one box must not share one. */
	snprintf(hostname, sizeof(hostname), "forkbox-%.12s", box_id);
	if (getrandom(entropy, sizeof(entropy), 0) != sizeof(entropy))
		return fb_errorf(-errno, "getrandom: %s", strerror(errno));
	/* The clock as of the request: it travels with the CONNECT, not
	 * after the guest's HELLO (one trip to the guest, not two). */
	clock_gettime(CLOCK_REALTIME, &now);
	ri.realtime_ns = (uint64_t)now.tv_sec * 1000000000ull +
			 (uint64_t)now.tv_nsec;
	return fb_agent_dial_reinject(b->uds, &ri, NULL, times, timeout_ms);
}

/* The VM's state into the log (fb_vm_debug) for a guest that did not
 * answer; -ETIMEDOUT with the error it had, which gains how its VM ended
 * if it did, or the vCPU's rip when its state is not one the guest made
 * (a page table root outside its RAM: the lab's emulation,
 * docs/ARCHITECTURE.md "The lab"), since a failed box's log goes with its
 * directory. */
static int log_unanswered(struct fb_box_vm *b)
{
	char why[512], end[320];
	uint64_t rip;

	snprintf(why, sizeof(why), "%s", fb_last_error());
	/* One that ended (a triple fault, a panic) has logged how. */
	if (fb_vm_ended(b->vm, end, sizeof(end)))
		return fb_errorf(-ETIMEDOUT, "%s (its VM had ended: %s)", why,
				 end);
	fb_vm_debug(b->vm, stderr);
	if (fb_vm_foreign_state(b->vm, &rip))
		return fb_errorf(-ETIMEDOUT, "%s (its vCPU's state is not one "
				 "the guest made: rip %#llx, cr3 outside its "
				 "RAM)", why, (unsigned long long)rip);
	return fb_errorf(-ETIMEDOUT, "%s", why);
}

/* A fork's child: the parent's layers mapped MAP_PRIVATE into a fresh
 * reservation, and kept so this box can fork in turn. Kept by taking
 * them over, not by a copy: this VMM process got them over fork() from
 * the process that made it (fork.c), which never returns to use them,
 * and a copy would be a second owner table (2 bytes a page) that is
 * this box's alone once its maker exits. */
static int map_fork_memory(struct fb_box_vm *b, const struct fb_mem_layers *l,
			   uint64_t size, uint8_t **host)
{
	int err = fb_mem_layers_map_guest(l, size, host);

	if (!err)
		b->layers = *l;
	return err;
}

static unsigned count_disks(const struct fb_vm_snap_config *cfg)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->nr_virtio; i++)
		n += cfg->virtio_ids[i] == VIRTIO_ID_BLOCK;
	return n;
}

/* A restore makes exactly the snapshot's devices, in its order (each
 * one's saved state is checked against its id): one saved before boxes
 * had a balloon comes back without one. */
static bool has_balloon(const struct fb_vm_snap_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_virtio; i++)
		if (cfg->virtio_ids[i] == VIRTIO_ID_BALLOON)
			return true;
	return false;
}

int fb_box_vm_restore(const struct fb_box_spec *spec, const char *dir,
		      const char *snap_dir, int mem_mode,
		      struct fb_box_vm **out)
{
	char path[PATH_MAX + 16], why[512];
	const char *id = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	const char *from = snap_dir ? snap_dir : "the parent";
	struct fb_vm_snap_config cfg;
	struct fb_snap *snap = NULL;
	const struct fb_snap *state;
	struct fb_vm_config vmc;
	struct fb_disk *disks[FB_VM_MAX_DISKS];
	unsigned nr_disks = 0;
	struct fb_box_vm *b;
	uint8_t *host = NULL;
	struct fb_agent_dial_times dial = { 0 };
	double t0 = fb_now_ms(), t_mem, t_launch;
	int err;

	err = fb_box_vm_prepare(spec, dir, false, &b);
	if (err < 0)
		return err;
	if (spec->fork_state) {
		state = spec->fork_state;
		err = fb_vm_snapshot_config(state, &cfg);
		if (!err)
			err = map_fork_memory(b, spec->fork_layers,
					      cfg.mem_mib << 20, &host);
	} else {
		err = fb_fmt(path, sizeof(path), "%s/%s", snap_dir,
			     FB_SNAP_FILE_STATE);
		if (!err)
			err = fb_snap_read(path, &snap);
		state = snap;
		if (!err)
			err = fb_vm_snapshot_config(snap, &cfg);
		if (!err)
			err = fb_snap_mem_map(snap_dir, cfg.mem_mib << 20,
					      (enum fb_snap_mem_mode)mem_mode,
					      &b->snap_mem);
		if (!err)
			host = fb_snap_mem_take_host(b->snap_mem);
		b->snap_mem_uffd = mem_mode == FB_SNAP_MEM_UFFD;
		/* Diffs of this box start from the snapshot it came from.
		 * Resolved now: the jail entered by the launch has no view
		 * of it. */
		if (!err && !realpath(snap_dir, b->last_snapshot))
			b->last_snapshot[0] = '\0';
	}
	/* The disks the state expects: prepared in dir by the host side
	 * (diskshare.c) before this VMM started. */
	if (!err)
		err = fb_box_open_disks(dir, spec, disks, &nr_disks,
					&b->disk_dirfd);
	b->root_disk = b->disk_dirfd >= 0;
	if (!err && nr_disks != count_disks(&cfg)) {
		err = fb_errorf(-EINVAL, "the state has %u disks, the box %u",
				count_disks(&cfg), nr_disks);
		for (unsigned i = 0; i < nr_disks; i++)
			fb_disk_close(disks[i]);
	}
	if (err < 0)
		goto fail;
	t_mem = fb_now_ms();
	vmc = (struct fb_vm_config){
		.cpus = cfg.cpus,
		.mem_mib = cfg.mem_mib,
		.cmdline = "",
		.console_log_fd = fileno(b->console_log),
		.console_live_fd = spec->console_live_fd,
		.rng = cfg.rng,
		.vsock_uds = cfg.vsock ? b->uds : NULL,
		.vsock_cid = cfg.vsock_cid,
		/* Its transport state comes back, not its config: the
		 * target starts at 0 and the guest, told so, deflates
		 * (src/devices/virtio/balloon.c, balloon_activate). */
		.balloon = has_balloon(&cfg),
		.restore_mem = host,
		.disks = disks,
		.nr_disks = nr_disks,
		/* Restore and fork have no --ksm: FORKBOX_KSM=1 asks for
		 * it (merging what the guest writes; src/vmm/vm.c). */
		.ksm = fb_ksm_wanted(spec->ksm),
	};
	err = fb_box_vm_launch(b, spec, &vmc, state);
	if (err < 0)
		goto fail;
	t_launch = fb_now_ms();
	err = greet(b, id, spec->ready_timeout_ms ? (int)spec->ready_timeout_ms
						  : 60000, &dial);
	/* A guest that never answered: where it was, for the log. */
	if (err == -ETIMEDOUT)
		err = log_unanswered(b);
	if (err < 0)
		goto fail;
	b->ready_ms = fb_now_ms() - t0;
	/* Where a restore's time goes, in the box's vmm.log. */
	fprintf(stderr, "forkbox vmm: restored in %.1f ms: state and memory "
		"%.1f, VM and jail %.1f (at %.1f/%.1f/%.1f/%.1f: jail, VM, "
		"state, jail entered), agent %.1f (the guest took the "
		"connection at %.1f, its agent said HELLO at %.1f, re-stamped "
		"at %.1f)\n",
		b->ready_ms, t_mem - t0,
		t_launch - t_mem, b->launch_ms[FB_LAUNCH_JAIL_PREPARE],
		b->launch_ms[FB_LAUNCH_VM_CREATE], b->launch_ms[FB_LAUNCH_STATE],
		b->launch_ms[FB_LAUNCH_JAIL_ENTER], fb_now_ms() - t_launch,
		dial.connected_ms, dial.hello_ms, dial.done_ms);
	fb_snap_free(snap);
	*out = b;
	return 0;
fail:
	snprintf(why, sizeof(why), "%s", fb_last_error());
	fb_snap_free(snap);
	fb_box_vm_stop(b);
	return fb_errorf(err, "restore from %s: %s", from, why);
}
