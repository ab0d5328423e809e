/* Page-granular helpers shared by snapshot memory files and fork layers. */
#ifndef FB_SNAPSHOT_PAGES_H
#define FB_SNAPSHOT_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/file.h"
#include "vmm/guest_mem.h"

/* Whether the 4 KiB page at p is all zeros. */
bool fb_page_is_zero(const uint8_t *p);

/* In a bitmap of pages bits: the first page >= p whose bit is want, or
 * pages if none. */
uint64_t fb_next_bit(const uint64_t *bm, uint64_t pages, uint64_t p,
		     int want);

#endif
