/* Page-granular helpers shared by snapshot memory files and fork layers. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/pages.h"
#include "util/error.h"

int fb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		       const char *what)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "write %s: %s", what,
					 strerror(errno));
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int fb_pread_full(int fd, void *buf, size_t len, uint64_t off,
		      const char *what)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "read %s: %s", what,
					 strerror(errno));
		if (n == 0)
			return fb_errorf(-EIO, "read %s: unexpected end of file "
					 "at offset %llu", what,
					 (unsigned long long)off);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

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

