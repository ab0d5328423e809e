/* A box's VM running on a thread of this process, with its vsock device
 * and guest agent: started, waited on until the agent says hello (the box
 * is ready), and stopped. Both `forkbox run` (in-process) and a detached
 * box's VMM process (box.c) use it. */
#ifndef FB_BOX_BOXVM_H
#define FB_BOX_BOXVM_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "forkbox/agent_proto.h"
#include "forkbox/forkbox.h"
#include "snapshot/layers.h"

#define FB_BOX_GUEST_CID 3
#define FB_BOX_VSOCK_NAME "vsock.sock"
#define FB_BOX_CONSOLE_NAME "console.log"

enum fb_launch_step {
	FB_LAUNCH_JAIL_PREPARE, FB_LAUNCH_VM_CREATE, FB_LAUNCH_STATE,
	FB_LAUNCH_JAIL_ENTER, FB_LAUNCH_STEPS
};

/* An extra disk for a box (--disk FILE[,ro]): the user's file, in place. */
struct fb_box_disk {
	const char *path;
	bool read_only;
};
#define FB_BOX_MAX_EXTRA_DISKS 7

struct fb_box_spec {
	unsigned cpus;
	uint64_t mem_mib;
	const char *kernel;         /* NULL: the default guest kernel */
	const char *initrd;         /* NULL: forkbox's initramfs */
	unsigned ready_timeout_ms;  /* 0: 60 s */
	int console_live_fd;        /* -1: none */
	bool no_jail;               /* --no-jail: the VMM runs unjailed
				     * (debugging only; src/jail/) */
	bool attached;              /* the VMM dies with the process that
				     * created the box (forkbox run) */
	/* The box's root disk: a copy-on-write view of this image
	 * (src/image/store.h), or NULL for the initramfs as root. */
	const char *image;
	struct fb_box_disk disks[FB_BOX_MAX_EXTRA_DISKS];
	unsigned nr_disks;
	const char *restore_from;   /* a snapshot directory, or NULL: boot */
	int restore_mem_mode;       /* enum fb_snap_mem_mode */
	/* A fork's child: the parent's state and frozen memory (both
	 * checked already; src/box/fork.c), or NULL. */
	const struct fb_snap *fork_state;
	const struct fb_mem_layers *fork_layers;
	/* ... and its root disk: the parent's directory and the frozen top
	 * the child's own top goes over (src/box/diskshare.c), or NULL. */
	const char *fork_disk_dir;
	const char *fork_disk_frozen;
	/* An id whose directory and disk are ready (fb_box_prepare_child),
	 * or NULL: fb_box_create makes them. */
	const char *preset_id;
	/* --ksm: guest RAM mergeable (src/host/ksm.h); FORKBOX_KSM=1 asks
	 * the same for every box. */
	bool ksm;
};

struct fb_box_vm {
	struct fb_vm *vm;
	pthread_t thread;
	bool thread_started;
	int exited_efd;             /* becomes readable when the VM ends */
	int ready_listen_fd;        /* <uds>_<FB_AGENT_READY_PORT> */
	struct fb_vm_exit exit;
	int run_err;
	char dir[PATH_MAX];
	char uds[PATH_MAX];         /* host end of the box's vsock */
	char ready_path[PATH_MAX + 16];
	FILE *console_log;
	double ready_ms;            /* VMM start to the agent's hello */
	/* When each step of fb_box_vm_launch ended, ms from its start. */
	double launch_ms[FB_LAUNCH_STEPS];
	/* For the boot trace (src/box/trace.h), CLOCK_MONOTONIC ms: when
	 * fb_box_vm_launch started and when the agent's hello arrived (0:
	 * not yet); the guest's CLOCK_BOOTTIME (ns) at its hello and at each
	 * fb_agent_boot_mark (0: not passed, or an older agent). */
	double launch_at_ms, hello_at_ms;
	uint64_t guest_hello_ns;
	uint64_t guest_boot_ns[FB_AGENT_BOOT_MARKS];
	/* The snapshot the guest memory last matched (taken or restored
	 * from): a diff snapshot's parent. Empty if none. */
	char last_snapshot[PATH_MAX];
	struct fb_snap_mem *snap_mem; /* a restored box's memory, or NULL */
	bool snap_mem_uffd;           /* ... served by userfaultfd */
	/* Guest memory frozen by forks (owner == NULL before the first),
	 * and the pages written since the last fork that a snapshot's
	 * restart of the dirty log took away (NULL: none yet). */
	struct fb_mem_layers layers;
	uint64_t *fork_dirty;
	/* A root disk (vda) from an image, and its directory (disk/),
	 * opened before the jail: freezes create new layers in it. */
	bool root_disk;
	int disk_dirfd;
	/* Paused by `forkbox pause` (a second pause is a no-op, and a
	 * resume undoes only that one, not a fork's own pause). */
	bool user_paused;
};

/* A fork's template, as the parent hands it out: the VM state (a snapshot
 * state file in a memfd), the layer layout and the layers (dups). */
struct fb_fork_template {
	int state_fd, layout_fd;
	int layer_fds[FB_LAYERS_MAX];
	unsigned nr_layers;
	uint64_t runs;        /* mappings a child makes */
	double paused_ms;
	char disk_frozen[128]; /* the root disk's frozen top, or "" */
};

/* The parent's side of a fork: pauses the VM, writes its state, freezes
 * its memory into layers (src/snapshot/layers.h), resumes. The caller
 * sends the fds and closes them with fb_fork_template_close(). */
int fb_box_vm_fork(struct fb_box_vm *b, struct fb_fork_template *t);
void fb_fork_template_close(struct fb_fork_template *t);

/* Keeps dirty-log bits a snapshot consumes or clears for the next fork. */
int fb_box_vm_keep_dirty(struct fb_box_vm *b, const uint64_t *bitmap);

/* Boots the box whose state directory is dir and waits for its agent's
 * hello (an event, with a deadline). On failure the VM is gone and the
 * message says why, naming the console log. */
int fb_box_vm_start(const struct fb_box_spec *spec, const char *dir,
		    struct fb_box_vm **out);

/* The steps of fb_box_vm_start, for restores too: prepare the state
 * (console log, sockets; the ready listener if the agent will dial in),
 * then launch a VM of vmc (restored from snap if not NULL) on a thread,
 * in its jail. */
int fb_box_vm_prepare(const struct fb_box_spec *spec, const char *dir,
		      bool listen_ready, struct fb_box_vm **out);
struct fb_snap;
int fb_box_vm_launch(struct fb_box_vm *b, const struct fb_box_spec *spec,
		     const struct fb_vm_config *vmc, const struct fb_snap *snap);

/* Starts the box in dir from the snapshot in snap_dir; ready once its
 * agent answers and took its new identity and the time. */
int fb_box_vm_restore(const struct fb_box_spec *spec, const char *dir,
		      const char *snap_dir, int mem_mode,
		      struct fb_box_vm **out);

/* Blocks until the VM ends by itself or until fd (if >= 0) is readable;
 * returns 1 if the VM ended, 0 if fd became readable. */
int fb_box_vm_wait(struct fb_box_vm *b, int fd);

/* Snapshots the running box to a new directory (args: "DIR" or
 * "DIR diff"); the box runs on. detail gets a one-line summary. */
int fb_box_vm_snapshot(struct fb_box_vm *b, const char *args, char *detail,
		       size_t detail_len);

/* Stops the VM (if still running), joins its thread, removes the sockets
 * and frees everything. */
void fb_box_vm_stop(struct fb_box_vm *b);

#endif
