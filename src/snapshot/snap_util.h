/* Small helpers shared by the snapshot files (not part of the API). */
#ifndef FB_SNAPSHOT_SNAP_UTIL_H
#define FB_SNAPSHOT_SNAP_UTIL_H

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot files are little-endian; bitmaps are stored as host words"
#endif

/* fsync of the directory that holds path ("." if path has no slash). */
int fb_fsync_parent(const char *path);

#endif
