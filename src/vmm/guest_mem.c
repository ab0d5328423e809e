#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86/layout.h"
#include "util/error.h"
#include "vmm/guest_mem.h"

void *fb_guest_mem_map(uint64_t size, int flags, int fd)
{
	uint64_t extra = FB_GUEST_MEM_ALIGN, head;
	uint8_t *r, *at;
	void *m;

	if (size > UINT64_MAX - extra) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	/* A reservation with room to slide to the next boundary; the
	 * mapping goes over it and the ends are given back. */
	r = mmap(NULL, size + extra, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	head = (FB_GUEST_MEM_ALIGN - (uintptr_t)r % FB_GUEST_MEM_ALIGN) %
	       FB_GUEST_MEM_ALIGN;
	at = r + head;
	m = mmap(at, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;

		munmap(r, size + extra);
		errno = e;
		return MAP_FAILED;
	}
	if (head)
		munmap(r, head);
	if (extra - head)
		munmap(at + size, extra - head);
	return m;
}

int fb_guest_mem_init(struct fb_guest_mem *mem, uint64_t ram_size)
{
	uint8_t *host;

	memset(mem, 0, sizeof(*mem));
	if (ram_size < (16ull << 20))
		return fb_errorf(-EINVAL, "guest memory %llu MiB is too small "
				 "(16 MiB at least)",
				 (unsigned long long)(ram_size >> 20));
	/* Anonymous: transparent huge pages where the host has them on
	 * (~20% faster boots in the lab than a shmem memfd, which gets
	 * none by default), and KSM can merge it. A fork copies what the
	 * guest touched into sealed layers (src/snapshot/layers.h).
	 * NORESERVE: a box pays only for the pages its guest touches. */
	host = fb_guest_mem_map(ram_size, MAP_PRIVATE | MAP_ANONYMOUS |
				MAP_NORESERVE, -1);
	if (host == MAP_FAILED)
		return fb_errorf(-errno, "mmap of %llu MiB guest memory: %s",
				 (unsigned long long)(ram_size >> 20),
				 strerror(errno));
	return fb_guest_mem_init_mapped(mem, ram_size, host);
}

int fb_guest_mem_init_mapped(struct fb_guest_mem *mem, uint64_t ram_size,
			     uint8_t *host)
{
	uint64_t low = ram_size;

	memset(mem, 0, sizeof(*mem));
	if (ram_size < (16ull << 20))
		return fb_errorf(-EINVAL, "guest memory %llu MiB is too small "
				 "(16 MiB at least)",
				 (unsigned long long)(ram_size >> 20));
	mem->mapping = host;
	mem->mapping_size = ram_size;
	mem->ram_size = ram_size;
	if (low > FB_MMIO_HOLE_START)
		low = FB_MMIO_HOLE_START;
	mem->regions[0] = (struct fb_mem_region){ 0, low, mem->mapping };
	mem->nr_regions = 1;
	if (ram_size > low) {
		mem->regions[1] = (struct fb_mem_region){
			FB_MMIO_HOLE_END, ram_size - low, mem->mapping + low };
		mem->nr_regions = 2;
	}
	return 0;
}

static uint64_t bitmap_words(const struct fb_guest_mem *mem)
{
	uint64_t pages = (mem->mapping_size + FB_PAGE_SIZE - 1) / FB_PAGE_SIZE;

	return (pages + 63) / 64;
}

int fb_guest_mem_track_start(struct fb_guest_mem *mem)
{
	if (!mem->vmm_dirty) {
		mem->vmm_dirty = calloc(bitmap_words(mem), sizeof(uint64_t));
		if (!mem->vmm_dirty)
			return fb_errorf(-ENOMEM, "calloc for the dirty bitmap");
		return 0;
	}
	memset(mem->vmm_dirty, 0, bitmap_words(mem) * sizeof(uint64_t));
	return 0;
}

void fb_guest_mem_mark_dirty(const struct fb_guest_mem *mem, uint64_t gpa,
			     uint64_t len)
{
	uint8_t *host;
	uint64_t first, last;

	if (!mem->vmm_dirty || !len)
		return;
	host = fb_gpa_ptr(mem, gpa, len);
	if (!host)
		return;
	first = (uint64_t)(host - mem->mapping) / FB_PAGE_SIZE;
	last = ((uint64_t)(host - mem->mapping) + len - 1) / FB_PAGE_SIZE;
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&mem->vmm_dirty[p / 64], 1ull << (p % 64),
				  __ATOMIC_RELAXED);
}

void fb_guest_mem_take_dirty(struct fb_guest_mem *mem, uint64_t *bitmap)
{
	if (!mem->vmm_dirty)
		return;
	for (uint64_t i = 0; i < bitmap_words(mem); i++)
		bitmap[i] |= __atomic_exchange_n(&mem->vmm_dirty[i], 0,
						 __ATOMIC_RELAXED);
}

void fb_guest_mem_release(struct fb_guest_mem *mem)
{
	free(mem->vmm_dirty);
	if (mem->mapping)
		munmap(mem->mapping, mem->mapping_size);
	memset(mem, 0, sizeof(*mem));
}

void *fb_gpa_ptr(const struct fb_guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct fb_mem_region *r = &mem->regions[i];
		uint64_t off;

		if (gpa < r->gpa)
			continue;
		off = gpa - r->gpa;
		/* off < size and len <= size - off: no sum can wrap. */
		if (off >= r->size || len == 0 || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int fb_guest_write(const struct fb_guest_mem *mem, uint64_t gpa,
		   const void *src, uint64_t len)
{
	void *dst = fb_gpa_ptr(mem, gpa, len);

	if (!dst)
		return fb_errorf(-EFAULT, "guest range 0x%llx+0x%llx is not RAM",
				 (unsigned long long)gpa,
				 (unsigned long long)len);
	memcpy(dst, src, len);
	return 0;
}

int fb_guest_read(const struct fb_guest_mem *mem, uint64_t gpa, void *dst,
		  uint64_t len)
{
	const void *src = fb_gpa_ptr(mem, gpa, len);

	if (!src)
		return fb_errorf(-EFAULT, "guest range 0x%llx+0x%llx is not RAM",
				 (unsigned long long)gpa,
				 (unsigned long long)len);
	memcpy(dst, src, len);
	return 0;
}

uint64_t fb_guest_mem_low_end(const struct fb_guest_mem *mem)
{
	return mem->regions[0].size;
}
