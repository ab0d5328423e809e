/* libarchive, loaded when an image is first imported. Linked in, it and
 * the 11 libraries it pulls in (libxml2, ICU, libstdc++...) were loaded
 * and relocated by every forkbox command and by forkboxd, though only
 * image import reads archives: 1.6 ms more a command natively (2.9 ms
 * against 1.3), far more in the lab's emulated CPU. Its headers still
 * give the types and constants. */
#ifndef FB_IMAGE_ARCHIVE_LIB_H
#define FB_IMAGE_ARCHIVE_LIB_H

#include <stdbool.h>

#include <archive.h>
#include <archive_entry.h>

/* Typed from the header's own prototypes, so that a pointer cannot drift
 * from the function it stands for; named as that function without
 * "archive_", which is how archive_lib.c finds it. */
struct fb_archive {
	__typeof__(archive_read_new) *read_new;
	__typeof__(archive_read_support_format_tar) *read_support_format_tar;
	__typeof__(archive_read_support_format_raw) *read_support_format_raw;
	__typeof__(archive_read_support_filter_gzip) *read_support_filter_gzip;
	__typeof__(archive_read_support_filter_zstd) *read_support_filter_zstd;
	__typeof__(archive_read_support_filter_xz) *read_support_filter_xz;
	__typeof__(archive_read_support_filter_bzip2) *read_support_filter_bzip2;
	__typeof__(archive_read_open_fd) *read_open_fd;
	__typeof__(archive_read_open_filename) *read_open_filename;
	__typeof__(archive_read_next_header) *read_next_header;
	__typeof__(archive_read_data_block) *read_data_block;
	__typeof__(archive_read_data_skip) *read_data_skip;
	__typeof__(archive_read_free) *read_free;
	__typeof__(archive_filter_bytes) *filter_bytes;
	__typeof__(archive_error_string) *error_string;
	__typeof__(archive_entry_pathname) *entry_pathname;
	__typeof__(archive_entry_pathname_utf8) *entry_pathname_utf8;
	__typeof__(archive_entry_hardlink) *entry_hardlink;
	__typeof__(archive_entry_hardlink_utf8) *entry_hardlink_utf8;
	__typeof__(archive_entry_symlink) *entry_symlink;
	__typeof__(archive_entry_symlink_utf8) *entry_symlink_utf8;
	__typeof__(archive_entry_filetype) *entry_filetype;
	__typeof__(archive_entry_perm) *entry_perm;
	__typeof__(archive_entry_uid) *entry_uid;
	__typeof__(archive_entry_gid) *entry_gid;
	__typeof__(archive_entry_size) *entry_size;
	__typeof__(archive_entry_size_is_set) *entry_size_is_set;
	__typeof__(archive_entry_mtime) *entry_mtime;
	__typeof__(archive_entry_mtime_nsec) *entry_mtime_nsec;
	__typeof__(archive_entry_mtime_is_set) *entry_mtime_is_set;
	__typeof__(archive_entry_atime) *entry_atime;
	__typeof__(archive_entry_atime_nsec) *entry_atime_nsec;
	__typeof__(archive_entry_atime_is_set) *entry_atime_is_set;
	__typeof__(archive_entry_rdevmajor) *entry_rdevmajor;
	__typeof__(archive_entry_rdevminor) *entry_rdevminor;
	__typeof__(archive_entry_xattr_reset) *entry_xattr_reset;
	__typeof__(archive_entry_xattr_next) *entry_xattr_next;
};

/* The library, loaded once (thread-safe: forkboxd imports on several
 * threads). NULL, with the reason in fb_last_error(), when it cannot be
 * loaded; callers return -ELIBACC then, not -ENOENT, which forkboxd
 * would answer as 404, as if the tarball were missing. A failure is not
 * remembered, so a daemon picks the library up once it is installed. */
const struct fb_archive *fb_archive(void);

/* A reader for image layers and image tarballs: tar members, or with raw
 * the decompressed bytes as one entry, through the compressions images
 * use. NULL only when out of memory. */
struct archive *fb_archive_reader(const struct fb_archive *A, bool raw);

#endif
