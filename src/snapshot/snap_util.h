/* Small helpers shared by the snapshot files (not part of the API). */
#ifndef FB_SNAPSHOT_SNAP_UTIL_H
#define FB_SNAPSHOT_SNAP_UTIL_H

#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot files are little-endian; bitmaps are stored as host words"
#endif

static inline void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* fsync of the directory that holds path ("." if path has no slash). */
int fb_fsync_parent(const char *path);

#endif
