/* Page-granular helpers shared by snapshot memory files and fork layers. */
#ifndef FB_SNAPSHOT_PAGES_H
#define FB_SNAPSHOT_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

/* pwrite/pread all of len bytes at off, or a negative errno with a
 * message naming what. A read that meets the end of the file fails. */
int fb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		   const char *what);
int fb_pread_full(int fd, void *buf, size_t len, uint64_t off,
		  const char *what);

/* Whether the 4 KiB page at p is all zeros. */
bool fb_page_is_zero(const uint8_t *p);

/* In a bitmap of pages bits: the first page >= p whose bit is want, or
 * pages if none. */
uint64_t fb_next_bit(const uint64_t *bm, uint64_t pages, uint64_t p,
		     int want);

#endif
