/* Snapshots of a running box: pause, write the state and the memory (all
 * of it, or only the pages written since the last snapshot), resume. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "box/boxvm.h"
#include "box/rootdisk.h"
#include "disk/layer.h"
#include "snapshot/format.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"
#include "util/clock.h"

/* Writes state and memory into the temporary directory tmp. */
static int write_snapshot(struct fb_box_vm *b, const char *tmp, bool diff)
{
	struct fb_snap_writer *w = NULL;
	uint64_t *dirty = NULL;
	char path[PATH_MAX + 16];
	int dir_fd, err;

	err = fb_snap_writer_new(&w, diff ? FB_SNAP_F_DIFF : FB_SNAP_F_FULL);
	if (!err)
		err = fb_vm_snapshot_write(b->vm, w);
	if (!err)
		err = fb_fmt(path, sizeof(path), "%s/%s", tmp,
			     FB_SNAP_FILE_STATE);
	if (!err)
		err = fb_snap_writer_write(w, path);
	fb_snap_writer_free(w);
	if (err < 0)
		return err;
	dir_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
	if (!diff) {
		err = fb_snap_mem_save_full(&b->vm->mem, dir_fd);
	} else {
		uint64_t pages = b->vm->mem.mapping_size / FB_PAGE_SIZE;

		dirty = calloc((pages + 63) / 64, sizeof(uint64_t));
		err = dirty ? fb_vm_dirty_fetch(b->vm, dirty) :
			      fb_errorf(-ENOMEM, "calloc for the dirty bitmap");
		if (!err)
			err = fb_box_vm_keep_dirty(b, dirty);
		if (!err)
			err = fb_snap_mem_save_diff(&b->vm->mem, dirty, dir_fd,
						    b->last_snapshot);
		free(dirty);
	}
	close(dir_fd);
	return err;
}

/* args: "TMP FINAL [diff]". The caller (outside the VMM's jail) made TMP,
 * an empty directory the VMM can write, and moves it to FINAL after. */
int fb_box_vm_snapshot(struct fb_box_vm *b, const char *args, char *detail,
		       size_t detail_len)
{
	char tmp[PATH_MAX], final[PATH_MAX], opt[16] = "";
	char frozen[FB_LAYER_NAME_MAX + 1] = "";
	bool diff;
	double t0 = fb_now_ms(), paused_ms;
	int n, err;

	n = sscanf(args, "%4095s %4095s %15s", tmp, final, opt);
	if (n < 2 || tmp[0] != '/' || final[0] != '/' ||
	    (n == 3 && strcmp(opt, "diff")))
		return fb_errorf(-EINVAL, "snapshot: expected TMP FINAL [diff] "
				 "with absolute paths");
	diff = n == 3;
	if (diff && !b->last_snapshot[0])
		return fb_errorf(-EINVAL, "snapshot --diff: this box has no "
				 "earlier snapshot to be a diff of");
	err = fb_vm_pause(b->vm);
	if (err < 0)
		return err;
	err = write_snapshot(b, tmp, diff);
	/* The disk as the saved memory knows it: frozen in the pause, for
	 * the host to copy into the snapshot after. */
	if (!err)
		err = fb_box_vm_freeze_root(b, frozen, sizeof(frozen));
	/* The restart below clears the log; the next fork needs it. */
	if (!err && !diff)
		err = fb_box_vm_keep_dirty(b, NULL);
	/* From here on, writes count towards the next diff. */
	if (!err)
		err = fb_vm_dirty_start(b->vm);
	fb_vm_resume(b->vm);
	paused_ms = fb_now_ms() - t0;
	if (err < 0)
		return err;
	snprintf(b->last_snapshot, sizeof(b->last_snapshot), "%s", final);
	snprintf(detail, detail_len, "%s paused_ms=%.1f%s%s", diff ? "diff" :
		 "full", paused_ms, frozen[0] ? " disk=" : "", frozen);
	return 0;
}
