/* Guest memory in snapshots: full images, diffs, chains, restore.
 *
 * Pages are 4 KiB, numbered in host-mapping order: page i is bytes
 * [i * 4096, (i + 1) * 4096) of fb_guest_mem's one host mapping (region 0
 * first, then region 1 above the MMIO hole). The formats are in
 * docs/snapshot-format.md. */
#ifndef FB_SNAPSHOT_MEMORY_H
#define FB_SNAPSHOT_MEMORY_H

#include <stdint.h>

#include "vmm/guest_mem.h"

#define FB_SNAP_PAGE_SIZE 4096u
#define FB_SNAP_DIFF_MAGIC "FBXMDIFF"
#define FB_SNAP_DIFF_VERSION 1
#define FB_SNAP_DIFF_HEADER_SIZE 64	/* in a 4096-byte first page */
#define FB_SNAP_MAX_CHAIN 64		/* diffs above one full snapshot */

/* File names inside a snapshot directory. */
#define FB_SNAP_FILE_STATE "state"
#define FB_SNAP_FILE_MEMORY "memory"
#define FB_SNAP_FILE_DIFF "memory.diff"
#define FB_SNAP_FILE_PARENT "parent"

/* Writes dir_fd/memory: ram_size bytes, the host mapping as is; all-zero
 * pages are left as holes, so the file is sparse. */
int fb_snap_mem_save_full(const struct fb_guest_mem *mem, int dir_fd);

/* Writes dir_fd/memory.diff with the pages whose bit is set in
 * dirty_bitmap (bit i % 64 of word i / 64 is page i; ram_size / 4096
 * bits, the tail of the last word ignored) and dir_fd/parent with
 * parent_path (absolute, or relative to the new snapshot's own
 * directory, like a symlink's target: "../base"). The bitmap is the
 * union of KVM's dirty log and the pages the VMM wrote itself, since
 * the parent snapshot was taken or restored. */
int fb_snap_mem_save_diff(const struct fb_guest_mem *mem,
			  const uint64_t *dirty_bitmap, int dir_fd,
			  const char *parent_path);

enum fb_snap_mem_mode {
	/* The base full snapshot's memory file mapped MAP_PRIVATE, the
	 * diffs' pages mapped MAP_PRIVATE | MAP_FIXED over it: restores of
	 * one snapshot share every page they only read. */
	FB_SNAP_MEM_FILE,
	/* Anonymous memory registered with userfaultfd; a handler thread
	 * fills each page on first touch from the newest layer that has
	 * it. Every restore gets private copies. */
	FB_SNAP_MEM_UFFD,
};

struct fb_snap_mem;

/* Validates the whole chain from snap_dir down to its full snapshot
 * (headers, bitmaps, sizes against ram_size, at most FB_SNAP_MAX_CHAIN
 * diffs, no loops, no missing parent) and only then maps ram_size bytes
 * of guest memory restored from it. */
int fb_snap_mem_map(const char *snap_dir, uint64_t ram_size,
		    enum fb_snap_mem_mode mode, struct fb_snap_mem **out);

/* The restored memory: ram_size bytes, laid out like fb_guest_mem's
 * mapping. Owned by the fb_snap_mem until release. */
uint8_t *fb_snap_mem_host(const struct fb_snap_mem *m);
uint64_t fb_snap_mem_size(const struct fb_snap_mem *m);

/* Hands the mapping over to the caller (fb_guest_mem_init_mapped(),
 * which unmaps it on release): fb_snap_mem_release() will then not unmap
 * it. In UFFD mode the handler still serves faults until
 * fb_snap_mem_release(), so release only after the VM has stopped. */
uint8_t *fb_snap_mem_take_host(struct fb_snap_mem *m);

/* 0, or the error that stopped the UFFD handler (with the message set);
 * a VM whose handler failed must be stopped: its vCPU waits forever on
 * the page it touched. */
int fb_snap_mem_status(const struct fb_snap_mem *m);

/* Pages the UFFD handler has served (0 in FILE mode). */
uint64_t fb_snap_mem_faults(const struct fb_snap_mem *m);

/* Stops the handler (UFFD), unmaps (unless taken), closes. Every user of the memory
 * (vCPUs, device threads) must be stopped first. */
void fb_snap_mem_release(struct fb_snap_mem *m);

/* Flattens snap_dir's diff chain into a full snapshot in place: a new
 * directory (temporary name, renamed over snap_dir) with `memory`, the
 * newest `state` marked full, and the newest directory's other files.
 * The parents are left alone. A full snapshot is left as it is. */
int fb_snap_merge(const char *snap_dir);

#endif
