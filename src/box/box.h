/* Detached boxes: a box whose VMM process outlives the command that
 * created it. Its state is its directory, $FORKBOX_HOME/boxes/ID/:
 *   lock         the VMM holds an flock on it while it lives (so "is the
 *                box alive" never trusts a pid that may have been reused)
 *   pid          the VMM's pid
 *   name         the box's name, if given
 *   ready        written (atomically) once the agent said hello:
 *                boot-to-ready in ms
 *   exit         written when the VM ended: reason and message
 *   console.log  the guest console
 *   vmm.log      the VMM process's own messages
 *   vsock.sock   the host end of the box's vsock (hybrid protocol)
 *   disk/        its root disk (src/box/rootdisk.h), if made from an image
 *   image-config.json  that image's defaults (Env, WorkingDir, Cmd...)
 *   trace        when each step on the way to ready happened (trace.h)
 *   paused       present while the box is paused (forkbox pause) */
#ifndef FB_BOX_BOX_H
#define FB_BOX_BOX_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "box/boxdir.h"
#include "box/boxvm.h"

#define FB_BOX_IMAGE_CONFIG "image-config.json"
#define FB_BOX_PAUSED_NAME "paused"

enum fb_box_state {
	FB_BOX_STARTING,
	FB_BOX_RUNNING,
	FB_BOX_PAUSED,   /* running, its vCPUs parked by `forkbox pause` */
	FB_BOX_DEAD,
};

struct fb_box_info {
	char id[FB_BOX_ID_LEN + 1];
	char name[64];
	char dir[PATH_MAX];
	enum fb_box_state state;
	pid_t pid;
	double ready_ms;     /* boot to ready, or -1 */
	char exit[256];      /* how it ended, for a dead box */
};

const char *fb_box_state_name(enum fb_box_state s);

/* Creates and boots a detached box; returns when it is ready (or failed),
 * with its id. name may be NULL. */
int fb_box_create(const struct fb_box_spec *spec, const char *name,
		  char id[FB_BOX_ID_LEN + 1]);

/* A fork child's id and directory with its disk (spec->fork_disk_*),
 * made before any child starts; fb_box_create then takes the id as
 * spec->preset_id. */
int fb_box_prepare_child(const struct fb_box_spec *spec,
			 char id[FB_BOX_ID_LEN + 1]);

/* A process forked to make a box outlives the moment, and its creator
 * may be a daemon with sockets, pipes, flocks and other boxes'
 * connections open: it closes every fd but the spec's (console, fork
 * layers) and keep_fd, first thing after fork(). */
void fb_box_keep_handed_fds(const struct fb_box_spec *spec, int keep_fd);

/* Finds a box by id, unique id prefix, or name. */
int fb_box_find(const char *ref, struct fb_box_info *info);

/* Calls fn for each box; stops at the first non-zero return. */
int fb_box_list(int (*fn)(const struct fb_box_info *info, void *opaque),
		void *opaque);

/* Stops a box's VMM (SIGTERM, then SIGKILL after timeout_ms). */
int fb_box_stop(const struct fb_box_info *info, unsigned timeout_ms);

/* Snapshots a running box into final (a new directory, appearing whole
 * or not at all); diff: only what changed since its last snapshot. */
int fb_box_snapshot(const struct fb_box_info *info, const char *final,
		    bool diff, char *detail, size_t detail_len);

struct fb_box_fork_result {
	struct { char id[FB_BOX_ID_LEN + 1]; } *ids; /* the children */
	unsigned nr;
	double pause_ms;    /* how long the parent was paused */
	double template_ms; /* request to the parent's template in hand */
	double disk_ms;     /* sealing its frozen disk and making the
			       children's disks (0 without a root disk) */
	unsigned layers;    /* frozen memory layers the children map */
	unsigned long long runs; /* ... in this many mappings */
	double total_ms;    /* request to every child ready */
};

/* Forks a running box into n children that start where it is; returns
 * when all are ready (or with the first error; the children that did
 * start are in res). */
int fb_box_fork(const struct fb_box_info *parent, unsigned n,
		const struct fb_box_spec *child_spec,
		struct fb_box_fork_result *res);
void fb_box_fork_result_free(struct fb_box_fork_result *res);

/* Copies the image defaults (FB_BOX_IMAGE_CONFIG) from one box or
 * snapshot directory to another, if there are any. */
int fb_box_copy_image_config(const char *from_dir, const char *to_dir);

/* Removes a box's directory; a live box needs force (it is stopped). */
int fb_box_remove(const struct fb_box_info *info, bool force);

#endif
