#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

int fb_buf_append(struct fb_buf *b, const void *p, size_t n)
{
	if (n > (size_t)-1 / 2 - b->len - 1)
		return -ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}
