/* Guest memory as a stack of frozen, sealed memfd layers (layers.h). */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "snapshot/layers.h"
#include "snapshot/pages.h"
#include "snapshot/snap_util.h"
#include "util/error.h"
#include "util/le.h"
#include "vmm/guest_mem.h"

#define PAGE FB_PAGE_SIZE
#define SEALS_FROZEN (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

int fb_mem_layers_init(struct fb_mem_layers *l, uint64_t pages)
{
	memset(l, 0, sizeof(*l));
	for (unsigned i = 0; i < FB_LAYERS_MAX; i++)
		l->fds[i] = -1;
	l->pages = pages;
	l->owner = calloc(pages ? pages : 1, sizeof(*l->owner));
	if (!l->owner)
		return fb_errorf(-ENOMEM, "calloc for a %llu-page owner table",
				 (unsigned long long)pages);
	return 0;
}

void fb_mem_layers_free(struct fb_mem_layers *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->nr; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	free(l->owner);
	memset(l, 0, sizeof(*l));
}

static int map_run(const struct fb_mem_layers *l, uint8_t *base, uint64_t p,
		   uint64_t n)
{
	uint16_t o = l->owner[p];
	void *r;

	if (o)
		r = mmap(base + p * PAGE, n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
			 l->fds[o - 1], (off_t)(p * PAGE));
	else
		r = mmap(base + p * PAGE, n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
			 MAP_NORESERVE, -1, 0);
	/* Zeros stay 4 KiB pages (layers.h says why). */
	if (r != MAP_FAILED && !o)
		(void)madvise(r, n * PAGE, MADV_NOHUGEPAGE);
	if (r == MAP_FAILED)
		return fb_errorf(-errno, "mmap of %llu pages at page %llu from "
				 "layer %u: %s", (unsigned long long)n,
				 (unsigned long long)p, o, strerror(errno));
	return 0;
}

static int map_range(const struct fb_mem_layers *l, uint8_t *base,
		     uint64_t first, uint64_t count, bool skip_zeros)
{
	uint64_t end = first + count;

	if (end < first || end > l->pages)
		return fb_errorf(-EINVAL, "layers: pages %llu+%llu beyond %llu",
				 (unsigned long long)first,
				 (unsigned long long)count,
				 (unsigned long long)l->pages);
	for (uint64_t p = first; p < end;) {
		uint64_t q = p + 1;
		int err;

		while (q < end && l->owner[q] == l->owner[p])
			q++;
		err = skip_zeros && !l->owner[p] ? 0 : map_run(l, base, p, q - p);
		if (err)
			return err;
		p = q;
	}
	return 0;
}

int fb_mem_layers_map(const struct fb_mem_layers *l, uint8_t *base,
		      uint64_t first, uint64_t count)
{
	return map_range(l, base, first, count, false);
}

int fb_mem_layers_map_fresh(const struct fb_mem_layers *l, uint8_t *base)
{
	return map_range(l, base, 0, l->pages, true);
}

int fb_mem_layers_map_guest(const struct fb_mem_layers *l, uint64_t size,
			    uint8_t **host)
{
	int err;

	if (l->pages != size / PAGE)
		return fb_errorf(-EINVAL, "fork: %llu pages of layers for %llu "
				 "MiB of RAM", (unsigned long long)l->pages,
				 (unsigned long long)(size >> 20));
	*host = fb_guest_mem_map(size, MAP_PRIVATE | MAP_ANONYMOUS |
				 MAP_NORESERVE, -1);
	if (*host == MAP_FAILED) {
		*host = NULL;
		return fb_errorf(-errno, "mmap of %llu MiB guest memory: %s",
				 (unsigned long long)(size >> 20),
				 strerror(errno));
	}
	/* Its zeros in 4 KiB pages, as in the parent (layers.h). */
	(void)madvise(*host, size, MADV_NOHUGEPAGE);
	err = fb_mem_layers_map_fresh(l, *host);
	if (err) {
		munmap(*host, size);
		*host = NULL;
	}
	return err;
}

uint64_t fb_mem_layers_runs(const struct fb_mem_layers *l)
{
	uint64_t runs = 0;

	for (uint64_t p = 0; p < l->pages; p++)
		runs += p == 0 || l->owner[p] != l->owner[p - 1];
	return runs;
}

static int seal(int fd)
{
	if (fcntl(fd, F_ADD_SEALS, SEALS_FROZEN | F_SEAL_SEAL) < 0)
		return fb_errorf(-errno, "sealing a memory layer: %s",
				 strerror(errno));
	return 0;
}

int fb_mem_layers_touched(uint8_t *host, uint64_t pages, uint64_t *bitmap)
{
	uint64_t words = (pages + 63) / 64;
	struct sysinfo si;
	unsigned char *vec;

	memset(bitmap, 0, words * sizeof(uint64_t));
	/* With swap, a page out of memory may still hold data: all of
	 * them, then (the copy skips the zero ones). */
	if (sysinfo(&si) < 0 || si.totalswap) {
		memset(bitmap, 0xff, words * sizeof(uint64_t));
		return 0;
	}
	vec = malloc(pages ? pages : 1);
	if (!vec)
		return fb_errorf(-ENOMEM, "malloc for a %llu-page residency "
				 "vector", (unsigned long long)pages);
	if (mincore(host, pages * PAGE, vec) < 0) {
		int err = fb_errorf(-errno, "mincore of guest memory: %s",
				    strerror(errno));

		free(vec);
		return err;
	}
	for (uint64_t p = 0; p < pages; p++)
		if (vec[p] & 1)
			bitmap[p / 64] |= 1ull << (p % 64);
	free(vec);
	return 0;
}

static bool bit(const uint64_t *bm, uint64_t p)
{
	return (bm[p / 64] >> (p % 64)) & 1;
}

/* Copies the non-zero pages of [p, q) into fd, setting their owner in
 * owner to k (zero pages to 0). */
static int copy_run(int fd, const uint8_t *host, uint16_t *owner, uint16_t k,
		    uint64_t p, uint64_t q)
{
	while (p < q) {
		uint64_t s;
		int err;

		while (p < q && fb_page_is_zero(host + p * PAGE))
			owner[p++] = 0;
		s = p;
		while (p < q && !fb_page_is_zero(host + p * PAGE))
			owner[p++] = k;
		if (p > s) {
			err = fb_pwrite_full(fd, host + s * PAGE, (p - s) * PAGE,
					     s * PAGE, "a memory layer");
			if (err)
				return err;
		}
	}
	return 0;
}

static int new_layer_fd(uint64_t size)
{
	int fd = memfd_create("forkbox-layer", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return fb_errorf(-errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = fb_errorf(-errno, "ftruncate of a memory layer to "
				    "%llu MiB: %s",
				    (unsigned long long)(size >> 20),
				    strerror(errno));

		close(fd);
		return err;
	}
	return fd;
}

int fb_mem_layers_freeze_copy(struct fb_mem_layers *l, uint8_t *host,
			      const uint64_t *dirty, bool flatten)
{
	struct fb_mem_layers fresh, *dst = l;
	bool all = flatten || l->nr >= FB_LAYERS_MAX;
	int fd, err = 0;
	uint16_t k;

	/* From the first fork on, the box's zeros are 4 KiB pages
	 * (layers.h): huge pages it holds now stay until split. */
	(void)madvise(host, l->pages * PAGE, MADV_NOHUGEPAGE);
	fd = new_layer_fd(l->pages * PAGE);
	if (fd < 0)
		return fd;
	if (all) {
		/* A stack of one: built apart, swapped in at the end. */
		err = fb_mem_layers_init(&fresh, l->pages);
		if (err) {
			close(fd);
			return err;
		}
		dst = &fresh;
	}
	dst->fds[dst->nr++] = fd;
	k = (uint16_t)dst->nr;
	for (uint64_t p = 0; p < l->pages && !err;) {
		uint64_t q = p;

		while (q < l->pages && ((dirty && bit(dirty, q)) ||
					(all && l->owner[q])))
			q++;
		if (q == p) {
			p++;
			continue;
		}
		err = copy_run(fd, host, dst->owner, k, p, q);
		if (!err)
			err = fb_mem_layers_map(dst, host, p, q - p);
		p = q;
	}
	if (!err)
		err = seal(fd);
	if (all) {
		if (err) {
			fb_mem_layers_free(&fresh);
			return err;
		}
		fb_mem_layers_free(l);
		*l = fresh;
	}
	return err;
}

static void put_bit(uint64_t *bm, uint64_t p, bool on)
{
	if (on)
		bm[p / 64] |= 1ull << (p % 64);
	else
		bm[p / 64] &= ~(1ull << (p % 64));
}

/* Copies page p into fd unless it is all zeros; records which. */
static int copy_page(int fd, const uint8_t *host, uint64_t *written,
		     uint64_t p)
{
	bool data = !fb_page_is_zero(host + p * PAGE);

	put_bit(written, p, data);
	return data ? fb_pwrite_full(fd, host + p * PAGE, PAGE, p * PAGE,
				     "a memory layer") : 0;
}

void fb_mem_precopy_free(struct fb_mem_precopy *pc)
{
	if (pc->fd >= 0)
		close(pc->fd);
	free(pc->sel);
	free(pc->written);
	memset(pc, 0, sizeof(*pc));
	pc->fd = -1;
}

int fb_mem_layers_precopy(struct fb_mem_precopy *pc, const uint8_t *host,
			  uint64_t pages, const uint64_t *sel)
{
	uint64_t words = (pages + 63) / 64;
	int err = 0;

	memset(pc, 0, sizeof(*pc));
	pc->pages = pages;
	pc->fd = new_layer_fd(pages * PAGE);
	if (pc->fd < 0)
		return pc->fd;
	pc->sel = calloc(words, sizeof(uint64_t));
	pc->written = calloc(words, sizeof(uint64_t));
	if (!pc->sel || !pc->written) {
		fb_mem_precopy_free(pc);
		return fb_errorf(-ENOMEM, "calloc for the precopy bitmaps");
	}
	memcpy(pc->sel, sel, words * sizeof(uint64_t));
	for (uint64_t p = 0; p < pages && !err; p++)
		if (bit(sel, p))
			err = copy_page(pc->fd, host, pc->written, p);
	if (err)
		fb_mem_precopy_free(pc);
	return err;
}

int fb_mem_layers_commit(struct fb_mem_layers *l, struct fb_mem_precopy *pc,
			 uint8_t *host, const uint64_t *dirty)
{
	uint16_t k;
	int err = 0;

	if (pc->pages != l->pages || l->nr >= FB_LAYERS_MAX)
		return fb_errorf(-EINVAL, "layers: a precopy of %llu pages "
				 "onto %u layers of %llu",
				 (unsigned long long)pc->pages, l->nr,
				 (unsigned long long)l->pages);
	for (uint64_t p = 0; p < l->pages && !err; p++)
		if (bit(dirty, p))
			err = copy_page(pc->fd, host, pc->written, p);
	if (!err)
		err = seal(pc->fd);
	if (err)
		return err;
	l->fds[l->nr++] = pc->fd;
	pc->fd = -1;
	k = (uint16_t)l->nr;
	for (uint64_t p = 0; p < l->pages && !err;) {
		uint64_t q = p;

		while (q < l->pages && (bit(pc->sel, q) || bit(dirty, q))) {
			l->owner[q] = bit(pc->written, q) ? k : 0;
			q++;
		}
		if (q == p) {
			p++;
			continue;
		}
		err = fb_mem_layers_map(l, host, p, q - p);
		p = q;
	}
	return err;
}

int fb_mem_layers_layout_fd(const struct fb_mem_layers *l)
{
	uint8_t h[FB_LAYOUT_HEADER_SIZE] = { 0 };
	uint64_t len = l->pages * sizeof(uint16_t);
	int fd, err;

	fd = memfd_create("forkbox-layout", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return fb_errorf(-errno, "memfd_create: %s", strerror(errno));
	memcpy(h, FB_LAYOUT_MAGIC, 8);
	fb_put_le32(h + 8, FB_LAYOUT_VERSION);
	fb_put_le32(h + 12, l->nr);
	fb_put_le64(h + 16, l->pages);
	err = fb_pwrite_full(fd, h, sizeof(h), 0, "the layer layout");
	/* The table is host-endian uint16: snap_util.h insists on little. */
	if (!err)
		err = fb_pwrite_full(fd, l->owner, len, sizeof(h),
				     "the layer layout");
	if (!err)
		err = seal(fd);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* what: "memory layer" with i its number, or the layout. */
static int check_frozen(int fd, const char *what, unsigned i, uint64_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 || (seals & SEALS_FROZEN) != SEALS_FROZEN)
		return fb_errorf(-EPERM, "fork: %s %u is not sealed against "
				 "writes (seals %d)", what, i, seals);
	if (fstat(fd, &st) < 0)
		return fb_errorf(-errno, "fork: fstat of %s %u: %s", what, i,
				 strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < size)
		return fb_errorf(-EINVAL, "fork: %s %u is %lld bytes, less "
				 "than %llu", what, i, (long long)st.st_size,
				 (unsigned long long)size);
	return 0;
}

int fb_mem_layers_from_fds(struct fb_mem_layers *l, int layout_fd,
			   const int *fds, unsigned nr, uint64_t expect_pages)
{
	uint8_t h[FB_LAYOUT_HEADER_SIZE];
	int err;

	memset(l, 0, sizeof(*l));
	if (nr > FB_LAYERS_MAX) {
		err = fb_errorf(-EINVAL, "fork: %u memory layers, at most %d",
				nr, FB_LAYERS_MAX);
		goto fail_fds;
	}
	err = check_frozen(layout_fd, "layout", 0, sizeof(h) + expect_pages * 2);
	if (!err)
		err = fb_pread_full(layout_fd, h, sizeof(h), 0,
				    "the layer layout");
	if (err)
		goto fail_fds;
	if (memcmp(h, FB_LAYOUT_MAGIC, 8) || fb_le32(h + 8) !=
	    FB_LAYOUT_VERSION || fb_le32(h + 12) != nr ||
	    fb_le64(h + 16) != expect_pages) {
		err = fb_errorf(-EINVAL, "fork: bad layer layout (want %s v%d, "
				"%u layers, %llu pages)", FB_LAYOUT_MAGIC,
				FB_LAYOUT_VERSION, nr,
				(unsigned long long)expect_pages);
		goto fail_fds;
	}
	for (unsigned i = 0; i < nr && !err; i++)
		err = check_frozen(fds[i], "memory layer", i + 1,
				   expect_pages * PAGE);
	if (!err)
		err = fb_mem_layers_init(l, expect_pages);
	if (!err)
		err = fb_pread_full(layout_fd, l->owner,
				    expect_pages * sizeof(uint16_t), sizeof(h),
				    "the layer layout");
	for (uint64_t p = 0; !err && p < expect_pages; p++)
		if (l->owner[p] > nr)
			err = fb_errorf(-EINVAL, "fork: page %llu names layer "
					"%u of %u", (unsigned long long)p,
					l->owner[p], nr);
	if (err) {
		free(l->owner);
		l->owner = NULL;
		goto fail_fds;
	}
	memcpy(l->fds, fds, nr * sizeof(int));
	l->nr = nr;
	return 0;
fail_fds:
	for (unsigned i = 0; i < nr; i++)
		close(fds[i]);
	return err;
}
