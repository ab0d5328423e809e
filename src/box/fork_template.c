/* The parent's side of a fork, in its VMM: a short pause in which the VM
 * state is written to a memfd and the guest memory frozen into sealed
 * layers that the children map copy-on-write (src/snapshot/layers.h).
 * A booted box's first fork copies the pages its guest touched, most of
 * them while it runs; later forks copy the pages written since the one
 * before. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "box/boxvm.h"
#include "box/rootdisk.h"
#include "snapshot/format.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"
#include "util/clock.h"

static uint64_t bitmap_words(const struct fb_box_vm *b)
{
	return (b->layers.pages + 63) / 64;
}

int fb_box_vm_keep_dirty(struct fb_box_vm *b, const uint64_t *bitmap)
{
	uint64_t words = bitmap_words(b), *fetched = NULL;
	int err = 0;

	if (!b->layers.nr)
		return 0; /* never forked: the next fork takes all it needs */
	if (!b->fork_dirty) {
		b->fork_dirty = calloc(words, sizeof(uint64_t));
		if (!b->fork_dirty)
			return fb_errorf(-ENOMEM, "calloc for the fork's dirty "
					 "bitmap");
	}
	if (!bitmap) {
		fetched = calloc(words, sizeof(uint64_t));
		if (!fetched)
			return fb_errorf(-ENOMEM, "calloc for a dirty bitmap");
		err = fb_vm_dirty_fetch(b->vm, fetched);
		bitmap = fetched;
	}
	for (uint64_t i = 0; !err && i < words; i++)
		b->fork_dirty[i] |= bitmap[i];
	free(fetched);
	return err;
}

/* A booted box's first fork: what its guest touched is copied while it
 * runs, with the dirty log on from just before; the pause then copies
 * only what was written meanwhile (fb_box_vm_fork). */
static int precopy(struct fb_box_vm *b, struct fb_mem_precopy *pc)
{
	uint64_t words = bitmap_words(b), *touched;
	int err;

	touched = calloc(words, sizeof(uint64_t));
	if (!touched)
		return fb_errorf(-ENOMEM, "calloc for a page bitmap");
	err = fb_vm_dirty_start(b->vm);
	/* The log may have been on (a snapshot): start it afresh. */
	if (!err)
		err = fb_vm_dirty_fetch(b->vm, touched);
	if (!err)
		err = fb_mem_layers_touched(b->vm->mem.mapping,
					    b->layers.pages, touched);
	if (!err)
		err = fb_mem_layers_precopy(pc, b->vm->mem.mapping,
					    b->layers.pages, touched);
	free(touched);
	return err;
}

static int commit_precopy(struct fb_box_vm *b, struct fb_mem_precopy *pc)
{
	uint64_t *dirty = calloc(bitmap_words(b), sizeof(uint64_t));
	int err;

	if (!dirty)
		return fb_errorf(-ENOMEM, "calloc for the dirty bitmap");
	err = fb_vm_dirty_fetch(b->vm, dirty);
	if (!err)
		err = fb_mem_layers_commit(&b->layers, pc, b->vm->mem.mapping,
					   dirty);
	free(dirty);
	return err;
}

/* With the VM paused: the memory becomes layers, exactly as it is. */
static int freeze(struct fb_box_vm *b)
{
	struct fb_guest_mem *mem = &b->vm->mem;
	uint64_t words = bitmap_words(b), *dirty;
	int err = 0;

	dirty = calloc(words, sizeof(uint64_t));
	if (!dirty)
		return fb_errorf(-ENOMEM, "calloc for the dirty bitmap");
	if (!b->layers.nr && b->snap_mem) {
		/* A restored box: its memory is the snapshot's file pages
		 * (resident or not) and its own copies; all of it goes into
		 * one layer. */
		memset(dirty, 0xff, words * sizeof(uint64_t));
	} else {
		err = fb_vm_dirty_fetch(b->vm, dirty);
		for (uint64_t i = 0; !err && b->fork_dirty && i < words; i++)
			dirty[i] |= b->fork_dirty[i];
	}
	if (!err)
		err = fb_mem_layers_freeze_copy(&b->layers, mem->mapping, dirty,
						false);
	if (!err && b->fork_dirty)
		memset(b->fork_dirty, 0, words * sizeof(uint64_t));
	free(dirty);
	return err;
}

static int write_state(struct fb_box_vm *b, int fd)
{
	struct fb_snap_writer *w = NULL;
	int err = fb_snap_writer_new(&w, FB_SNAP_F_FULL);

	if (!err)
		err = fb_vm_snapshot_write(b->vm, w);
	if (!err)
		err = fb_snap_writer_write_fd(w, fd);
	fb_snap_writer_free(w);
	return err;
}

int fb_box_vm_fork(struct fb_box_vm *b, struct fb_fork_template *t)
{
	struct fb_mem_precopy pc = { .fd = -1 };
	bool live;
	double t0, t_state = 0, t_mem = 0, t_disk = 0;
	int err;

	memset(t, 0, sizeof(*t));
	t->state_fd = t->layout_fd = -1;
	if (b->snap_mem_uffd)
		return fb_errorf(-ENOTSUP, "fork of a box restored with "
				 "--memory uffd: its pages are not all in it "
				 "yet (restore with --memory file to fork)");
	if (!b->layers.owner) {
		err = fb_mem_layers_init(&b->layers, b->vm->mem.mapping_size /
					 FB_PAGE_SIZE);
		if (err)
			return err;
	}
	t->state_fd = memfd_create("forkbox-state", MFD_CLOEXEC);
	if (t->state_fd < 0)
		return fb_errorf(-errno, "memfd_create: %s", strerror(errno));
	live = !b->layers.nr && !b->snap_mem;
	if (live) {
		err = precopy(b, &pc);
		if (err < 0)
			goto fail;
	}

	t0 = fb_now_ms();
	err = fb_vm_pause(b->vm);
	if (err < 0)
		goto fail;
	err = write_state(b, t->state_fd);
	t_state = fb_now_ms();
	if (!err)
		err = live ? commit_precopy(b, &pc) : freeze(b);
	t_mem = fb_now_ms();
	/* The disk with the memory: the children's tops go over this. */
	if (!err)
		err = fb_box_vm_freeze_root(b, t->disk_frozen,
					    sizeof(t->disk_frozen));
	t_disk = fb_now_ms();
	/* The next fork's layer: what is written from now on. */
	if (!err)
		err = fb_vm_dirty_start(b->vm);
	fb_vm_resume(b->vm);
	t->paused_ms = fb_now_ms() - t0;
	if (err < 0)
		goto fail;
	/* Where a fork's pause goes, in the parent's vmm.log. */
	fprintf(stderr, "forkbox vmm: fork: paused %.1f ms: state %.1f, "
		"memory %.1f (%s), disk %.1f, dirty log %.1f\n", t->paused_ms,
		t_state - t0, t_mem - t_state, live ? "the pages written "
		"during the copy" : "the pages written since", t_disk - t_mem,
		t0 + t->paused_ms - t_disk);
	/* The dirty log now counts from the fork, not from a snapshot. */
	b->last_snapshot[0] = '\0';
	t->runs = fb_mem_layers_runs(&b->layers);

	t->layout_fd = fb_mem_layers_layout_fd(&b->layers);
	if (t->layout_fd < 0) {
		err = t->layout_fd;
		goto fail;
	}
	for (unsigned i = 0; i < b->layers.nr; i++) {
		t->layer_fds[i] = fcntl(b->layers.fds[i], F_DUPFD_CLOEXEC, 3);
		if (t->layer_fds[i] < 0) {
			err = fb_errorf(-errno, "dup of a memory layer: %s",
					strerror(errno));
			goto fail;
		}
		t->nr_layers = i + 1;
	}
	fb_mem_precopy_free(&pc);
	return 0;
fail:
	fb_mem_precopy_free(&pc);
	fb_fork_template_close(t);
	return err;
}

void fb_fork_template_close(struct fb_fork_template *t)
{
	if (t->state_fd >= 0)
		close(t->state_fd);
	if (t->layout_fd >= 0)
		close(t->layout_fd);
	for (unsigned i = 0; i < t->nr_layers; i++)
		close(t->layer_fds[i]);
	t->state_fd = t->layout_fd = -1;
	t->nr_layers = 0;
}
