/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c): a reader that takes
 * fields off the front of libFuzzer's input, and a guest memory whose
 * regions are separate heap blocks, so AddressSanitizer sees any access
 * past a region's end (a real guest memory is one big mapping, where such
 * a bug would read the neighbour region silently). */
#ifndef FB_TESTS_FUZZ_H
#define FB_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/guest_mem.h"

/* A check of the harness's own: a broken invariant is a crash libFuzzer
 * records, like a sanitizer report. */
#define FZ_CHECK(cond)                                                        \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",      \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

/* Whether FB_FUZZ_SKIP (a comma-separated list) names this path: a way to
 * keep fuzzing the rest of a target while a crash found in one of its
 * paths is open. A target reads it once. */
static inline bool fz_skip(const char *name)
{
	const char *s = getenv("FB_FUZZ_SKIP");
	size_t n = strlen(name);

	while (s && *s) {
		size_t len = strcspn(s, ",");

		if (len == n && !strncmp(s, name, n))
			return true;
		s += len + (s[len] == ',');
	}
	return false;
}

struct fz_in {
	const uint8_t *p;
	size_t left;
};

static inline void fz_init(struct fz_in *in, const uint8_t *p, size_t n)
{
	in->p = p;
	in->left = n;
}

/* Fields past the end read as zeros. */
static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->left) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);

	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t lo = fz_u16(in);

	return lo | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t lo = fz_u32(in);

	return lo | (uint64_t)fz_u32(in) << 32;
}

/* Up to n bytes (fewer at the end of the input): a pointer into it. */
static inline const uint8_t *fz_bytes(struct fz_in *in, size_t n, size_t *got)
{
	const uint8_t *p = in->p;

	if (n > in->left)
		n = in->left;
	in->p += n;
	in->left -= n;
	*got = n;
	return p;
}

/* ---- guest memory ------------------------------------------------------ */

#define FZ_MEM_MAX_REGIONS FB_MEM_MAX_REGIONS

/* Regions at the given guest addresses and sizes, each its own zeroed
 * heap block. */
static inline void fz_mem_init(struct fb_guest_mem *mem, int n,
			       const uint64_t *gpa, const uint64_t *size)
{
	memset(mem, 0, sizeof(*mem));
	for (int i = 0; i < n && i < FZ_MEM_MAX_REGIONS; i++) {
		uint8_t *host = aligned_alloc(4096, (size_t)size[i]);

		if (!host)
			abort();
		memset(host, 0, (size_t)size[i]);
		mem->regions[i] = (struct fb_mem_region){ gpa[i], size[i], host };
		mem->ram_size += size[i];
		mem->nr_regions++;
	}
}

static inline void fz_mem_free(struct fb_guest_mem *mem)
{
	for (int i = 0; i < mem->nr_regions; i++)
		free(mem->regions[i].host);
	memset(mem, 0, sizeof(*mem));
}

/* Whether [p, p + len) lies inside one region's host block. */
static inline bool fz_mem_holds(const struct fb_guest_mem *mem,
				const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;

	for (int i = 0; i < mem->nr_regions; i++) {
		uintptr_t lo = (uintptr_t)mem->regions[i].host;
		uintptr_t hi = lo + (uintptr_t)mem->regions[i].size;

		if (a >= lo && a <= hi && len <= hi - a)
			return true;
	}
	return false;
}

#endif
