/* Errors: library functions return a negative errno and leave a one-line
 * message, naming the failing call or the bad input, in a per-thread
 * buffer that the caller (the CLI, a daemon) prints or sends on. */
#ifndef FB_UTIL_ERROR_H
#define FB_UTIL_ERROR_H

#include <stddef.h>

/* Sets the message and returns err (a negative errno), so a failure reads
 *     return fb_errorf(-errno, "KVM_CREATE_VM: %s", strerror(errno)); */
int fb_errorf(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The last message set on this thread ("" if none). */
const char *fb_last_error(void);

/* snprintf that reports truncation as -ENAMETOOLONG (for paths and
 * messages whose cut would change their meaning). */
int fb_fmt(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
