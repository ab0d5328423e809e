/* File copies that share the source's blocks where the filesystem can
 * (btrfs, XFS with reflink=1), so a box's disk image is copied
 * in no time and no space, and that still work, more slowly, where it
 * cannot. */
#ifndef FB_UTIL_COPY_H
#define FB_UTIL_COPY_H

/* How a copy was made, in the order they are tried. */
enum fb_copy_how {
	FB_COPY_REFLINK,	/* ioctl FICLONE: blocks shared, copy-on-write */
	FB_COPY_RANGE,		/* copy_file_range: in the kernel (or server) */
	FB_COPY_BYTES,		/* pread and pwrite through a buffer */
};

/* Copies src to dst: FICLONE first, then copy_file_range, then a byte
 * copy. A method is given up for the next one only when it fails with
 * EOPNOTSUPP, EXDEV, EINVAL, ENOSYS or ENOTTY (or copy_file_range stops
 * short of the end); any other error ends the copy.
 *
 * The copy is written to a temporary name next to dst (dst.tmp.XXXXXX),
 * gets src's mode bits (07777, set with fchmod, so the umask plays no
 * part), is fsynced and renamed over dst. So dst is either untouched or
 * the whole copy, never a part, and the temporary is removed on failure.
 * dst is replaced, not written into: a symlink at dst is replaced rather
 * than followed, other hard links to the old dst keep the old contents,
 * and the new file belongs to the caller.
 *
 * Holes in src stay holes where the fallbacks can see them (SEEK_DATA /
 * SEEK_HOLE); a reflink shares them anyway. *how, if how is not NULL,
 * says which method made the copy. Returns 0 or a negative errno with a
 * message (fb_last_error). */
int fb_copy_file_cow(const char *src, const char *dst, enum fb_copy_how *how);

/* The same on open files: dst_fd a regular file open for writing (not
 * O_APPEND), on which the copy starts over from an empty file (whatever
 * it held is discarded). dst's mode is left alone and nothing is fsynced:
 * both are the caller's to do. src_fd's file offset is left where it was. */
int fb_copy_fd_cow(int src_fd, int dst_fd, enum fb_copy_how *how);

/* As above, but starting the fallback order at first instead of at
 * FB_COPY_REFLINK, so tests can run the copy_file_range and byte paths
 * on any filesystem. (Not a way to get unshared blocks: btrfs and XFS
 * implement copy_file_range as a reflink too.) */
int fb_copy_file_cow_from(const char *src, const char *dst,
			  enum fb_copy_how first, enum fb_copy_how *how);
int fb_copy_fd_cow_from(int src_fd, int dst_fd, enum fb_copy_how first,
			enum fb_copy_how *how);

/* "reflink", "copy_file_range" or "bytes". */
const char *fb_copy_how_name(enum fb_copy_how how);

#endif
