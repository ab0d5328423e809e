/* Page-granular helpers shared by snapshot memory files and fork layers. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/pages.h"
#include "util/error.h"

bool fb_page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;

	for (unsigned i = 0; i < FB_PAGE_SIZE / 8; i++)
		acc |= w[i];
	return acc == 0;
}

/* The first page >= p whose bit is `want`, or pages. */
uint64_t fb_next_bit(const uint64_t *bm, uint64_t pages, uint64_t p,
			 int want)
{
	while (p < pages) {
		uint64_t w = want ? bm[p / 64] : ~bm[p / 64];

		w >>= p % 64;
		if (w) {
			p += (uint64_t)__builtin_ctzll(w);
			return p < pages ? p : pages;
		}
		p = (p / 64 + 1) * 64;
	}
	return pages;
}

