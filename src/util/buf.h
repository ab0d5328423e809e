/* A growing byte buffer, always NUL-terminated after its bytes (so text
 * in it is a C string): a request body, a response read in pieces. */
#ifndef FB_UTIL_BUF_H
#define FB_UTIL_BUF_H

#include <stddef.h>

struct fb_buf {
	char *data;   /* NULL until the first append; free() it */
	size_t len, cap;
};

/* Appends n bytes, growing by doubling; -ENOMEM leaves b as it was. */
int fb_buf_append(struct fb_buf *b, const void *p, size_t n);

#endif
