#ifndef FB_UTIL_FILE_H
#define FB_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file of at most max bytes into a malloc'd buffer. */
int fb_read_file(const char *path, size_t max, uint8_t **data, size_t *len);

/* Reads exactly len bytes from fd into buf, retrying short reads. */
int fb_read_full(int fd, void *buf, size_t len, const char *what);

/* Writes all of buf, retrying short writes and EINTR. */
int fb_write_full(int fd, const void *buf, size_t len);

/* Writes a whole file atomically: a temporary name in the same directory,
 * fsync, rename over path, fsync of the directory. Readers see the old
 * file or the new one, never a part. */
int fb_write_file_atomic(const char *path, const void *data, size_t len,
			 unsigned mode);

/* Reads a small text file (< len bytes) into buf, NUL-terminated, with a
 * trailing newline removed. */
int fb_read_text(const char *path, char *buf, size_t len);

/* pwrite/pread all of len bytes at off, or a negative errno with a
 * message naming what. A read that meets the end of the file fails. */
int fb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		   const char *what);
int fb_pread_full(int fd, void *buf, size_t len, uint64_t off,
		  const char *what);

/* Closes every fd from 3 up but those in keep[0..n). A process forked
 * from a busy caller (a daemon's threads hold sockets, pipes, other
 * boxes' connections) calls it so that it holds nothing it was not
 * handed: a leaked write end would keep someone's pipe from ever
 * reaching EOF. */
void fb_close_fds_except(const int *keep, unsigned n);

#endif
