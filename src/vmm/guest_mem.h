/* Guest RAM and the one place where guest-physical addresses are checked.
 *
 * Every guest-supplied address and length goes through fb_gpa_ptr(), which
 * checks the whole range [gpa, gpa + len) against one memory region with
 * overflow checks; nothing else turns a guest address into a pointer. */
#ifndef FB_VMM_GUEST_MEM_H
#define FB_VMM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define FB_MEM_MAX_REGIONS 2

struct fb_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct fb_guest_mem {
	struct fb_mem_region regions[FB_MEM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size; /* sum of the regions */
	uint8_t *mapping;  /* one host mapping behind all regions */
	size_t mapping_size;
	/* Pages the VMM itself wrote (used rings, device buffers), which
	 * KVM's dirty log cannot see: one bit per 4 KiB page of the host
	 * mapping, or NULL while nobody tracks. */
	uint64_t *vmm_dirty;
};

#define FB_PAGE_SIZE 4096ull

/* Starts (or restarts, cleared) tracking of VMM writes. */
int fb_guest_mem_track_start(struct fb_guest_mem *mem);
/* Marks [gpa, gpa + len) written by the VMM; a no-op when not tracking. */
void fb_guest_mem_mark_dirty(const struct fb_guest_mem *mem, uint64_t gpa,
			     uint64_t len);
/* ORs the VMM's dirty bits into bitmap (host-mapping page order) and
 * clears them. */
void fb_guest_mem_take_dirty(struct fb_guest_mem *mem, uint64_t *bitmap);

/* Huge pages back guest memory only where its host address and its
 * guest address agree modulo this: KVM maps a 2 MiB guest page with
 * one nested page table entry only if both are aligned alike. */
#define FB_GUEST_MEM_ALIGN (2ull << 20)

/* mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0), but at a
 * FB_GUEST_MEM_ALIGN-aligned address (mmap gives only page alignment,
 * and in the lab boots were ~35% slower when it fell wrong). Every
 * mapping of guest RAM goes through it. MAP_FAILED with errno set on
 * failure. */
void *fb_guest_mem_map(uint64_t size, int flags, int fd);

/* Maps ram_size bytes of anonymous memory and lays the regions out
 * around the MMIO hole below 4 GiB. */
int fb_guest_mem_init(struct fb_guest_mem *mem, uint64_t ram_size);
/* The same layout over a mapping the caller made (a restored snapshot's
 * memory); mem takes it over and unmaps it on release. */
int fb_guest_mem_init_mapped(struct fb_guest_mem *mem, uint64_t ram_size,
			     uint8_t *host);
void fb_guest_mem_release(struct fb_guest_mem *mem);

/* A host pointer to [gpa, gpa + len) if the range lies inside one region,
 * else NULL. len 0 is refused. */
void *fb_gpa_ptr(const struct fb_guest_mem *mem, uint64_t gpa, uint64_t len);

int fb_guest_write(const struct fb_guest_mem *mem, uint64_t gpa,
		   const void *src, uint64_t len);
int fb_guest_read(const struct fb_guest_mem *mem, uint64_t gpa, void *dst,
		  uint64_t len);

/* End of the RAM region that starts at 0 (the highest address below the
 * MMIO hole that is RAM). */
uint64_t fb_guest_mem_low_end(const struct fb_guest_mem *mem);

#endif
