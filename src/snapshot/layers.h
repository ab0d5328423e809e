/* Guest memory as a stack of frozen layers, for fork (docs/ARCHITECTURE.md
 * "Fork").
 *
 * A layer is a sealed memfd (no write, grow or shrink: whoever holds it,
 * the pages are fixed) of the guest's mapping size holding some pages at
 * their own offsets. An owner table says, for each 4 KiB page of the
 * mapping, which layer holds it, or 0: a page of zeros. A VM runs on its
 * layers mapped MAP_PRIVATE page run by page run, so every VM forked from
 * them shares each page until it writes it.
 *
 * A fork freezes the parent's memory into the stack (a new layer with the
 * pages written since the last fork, or on the first fork every page the
 * guest touched, mapped back into the parent in place of its private
 * copies) and hands the layers and the table to the children. */
#ifndef FB_SNAPSHOT_LAYERS_H
#define FB_SNAPSHOT_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

/* More layers than this are flattened into one by the next fork. */
#define FB_LAYERS_MAX 32
#define FB_LAYOUT_MAGIC "FBLAYOUT"
#define FB_LAYOUT_VERSION 1
#define FB_LAYOUT_HEADER_SIZE 32

struct fb_mem_layers {
	uint64_t pages;     /* of the mapping */
	uint16_t *owner;    /* per page: 0 zeros, k: fds[k - 1] */
	int fds[FB_LAYERS_MAX];
	unsigned nr;
};

/* An empty stack for a mapping of pages pages (nothing frozen yet). */
int fb_mem_layers_init(struct fb_mem_layers *l, uint64_t pages);
void fb_mem_layers_free(struct fb_mem_layers *l);

/* Maps pages [first, first + count) of the stack at base + first pages,
 * MAP_PRIVATE | MAP_FIXED: one mapping per run of pages of one owner. */
int fb_mem_layers_map(const struct fb_mem_layers *l, uint8_t *base,
		      uint64_t first, uint64_t count);

/* Guest memory made of layers keeps its zero runs in 4 KiB pages
 * (MADV_NOHUGEPAGE: a parent's whole mapping at its first freeze and
 * every zero run mapped here, a fork child's whole reservation): with
 * transparent huge pages and RAM aligned to 2 MiB, a guest's first write
 * into a free 2 MiB range of zeros would take a whole huge page, in the
 * parent and in each child, where sharing is the point. */

/* The whole stack over a fresh anonymous mapping of l->pages pages at
 * base: zero runs are left as they are (already zeros), so a child's
 * memory takes one mmap per run of layer pages only (in the lab each
 * costs ~10 us, and a parent forked a few times has thousands of runs,
 * half of them zeros). */
int fb_mem_layers_map_fresh(const struct fb_mem_layers *l, uint8_t *base);

/* A fork child's guest RAM: size bytes (l's pages) reserved on a 2 MiB
 * boundary (fb_guest_mem_map) with the whole stack mapped over it, into
 * *host; on an error *host is NULL. */
int fb_mem_layers_map_guest(const struct fb_mem_layers *l, uint64_t size,
			    uint8_t **host);

/* How many mappings fb_mem_layers_map() makes for the whole stack. */
uint64_t fb_mem_layers_runs(const struct fb_mem_layers *l);

/* The pages of an anonymous mapping its guest ever touched (resident, by
 * mincore), as a bitmap of pages bits; every page where the host has
 * swap, since a page swapped out is not resident but holds data. */
int fb_mem_layers_touched(uint8_t *host, uint64_t pages, uint64_t *bitmap);

/* Freezes pages of the mapping host into a new layer: those set in dirty
 * (a bitmap of l->pages bits), plus, when the stack is full or flatten
 * is set, every page any layer holds (which then become the only layer).
 * All-zero pages become owner 0. The pages move run by run (copied, then
 * mapped back over the private copy), so memory is never held twice for
 * more than one run. */
int fb_mem_layers_freeze_copy(struct fb_mem_layers *l, uint8_t *host,
			      const uint64_t *dirty, bool flatten);

/* A freeze in two steps, so that the guest runs during the long part (as
 * in a live migration): precopy copies the pages set in sel into a new,
 * unsealed layer while the guest may still write them; commit, with the
 * guest paused, copies again the pages written since before the precopy
 * began (dirty), makes the layer the top of l for every page of sel and
 * dirty (all-zero ones become owner 0), maps those back over host, and
 * seals it. */
struct fb_mem_precopy {
	int fd;
	uint64_t pages;
	uint64_t *sel;      /* the pages asked for */
	uint64_t *written;  /* ... that were not all zero, now in fd */
};
int fb_mem_layers_precopy(struct fb_mem_precopy *pc, const uint8_t *host,
			  uint64_t pages, const uint64_t *sel);
int fb_mem_layers_commit(struct fb_mem_layers *l, struct fb_mem_precopy *pc,
			 uint8_t *host, const uint64_t *dirty);
void fb_mem_precopy_free(struct fb_mem_precopy *pc);

/* The owner table as a sealed memfd: header (magic, version, layers,
 * pages) and then one little-endian uint16 per page. */
int fb_mem_layers_layout_fd(const struct fb_mem_layers *l);

/* Rebuilds a stack from a layout fd and nr layer fds (taken: kept in l
 * on success, closed on failure), checking everything a child must not
 * trust: header, pages == expect_pages, owners <= nr, each layer sealed
 * against writes and shrinking and at least the mapping's size. */
int fb_mem_layers_from_fds(struct fb_mem_layers *l, int layout_fd,
			   const int *fds, unsigned nr, uint64_t expect_pages);

#endif
