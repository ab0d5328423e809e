/* A snapshot's memory chain: its diffs, newest first, down to one full
 * snapshot. Internal to src/snapshot/. */
#ifndef FB_SNAPSHOT_CHAIN_H
#define FB_SNAPSHOT_CHAIN_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "snapshot/memory.h"

struct fb_snap_layer {
	char dir[PATH_MAX];	/* realpath of the snapshot directory */
	int fd;			/* memory (base) or memory.diff */
	int is_base;
	uint64_t total_pages;	/* diff: pages the bitmap covers */
	uint64_t present;	/* diff: pages stored */
	uint64_t data_off;	/* diff: offset of the first stored page */
	uint64_t *bitmap;	/* diff: one bit per page */
	uint64_t *rank;		/* diff: set bits before each word */
};

struct fb_snap_chain {
	uint64_t ram_size, pages, words;
	int nr;			/* layers[0] newest .. layers[nr - 1] base */
	struct fb_snap_layer layers[FB_SNAP_MAX_CHAIN + 1];
};

/* Loads and validates the chain of snap_dir. ram_size 0: take it from the
 * base's memory file (merge); else every file must match it. */
int fb_snap_chain_load(const char *snap_dir, uint64_t ram_size,
		       struct fb_snap_chain **out);
void fb_snap_chain_free(struct fb_snap_chain *c);

static inline int fb_snap_layer_has(const struct fb_snap_layer *l,
				    uint64_t page)
{
	return (l->bitmap[page / 64] >> (page % 64)) & 1;
}

/* File offset of a page a diff layer has. */
static inline uint64_t fb_snap_layer_off(const struct fb_snap_layer *l,
					 uint64_t page)
{
	uint64_t below = l->bitmap[page / 64] & ((1ull << (page % 64)) - 1);

	return l->data_off + (l->rank[page / 64] +
			      (uint64_t)__builtin_popcountll(below)) *
			     FB_SNAP_PAGE_SIZE;
}

/* UFFD mode (uffd.c): takes the chain. */
int fb_snap_uffd_map(struct fb_snap_chain *c, struct fb_snap_mem **out);

struct fb_snap_mem {
	enum fb_snap_mem_mode mode;
	uint8_t *host;
	uint64_t size;
	int host_taken;
	/* UFFD mode */
	struct fb_snap_chain *chain;
	int uffd, stop_fd;
	int thread_started;
	pthread_t thread;
	uint64_t faults;		/* atomic */
	int err;			/* atomic; msg is set before it */
	char msg[512];
};

#endif
