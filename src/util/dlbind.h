/* Filling a struct of function pointers from a library dlopen'ed on
 * first use (libcurl, libarchive): linked in, such a library and what it
 * pulls in are loaded and relocated by every command, even those that
 * never call it. */
#ifndef FB_UTIL_DLBIND_H
#define FB_UTIL_DLBIND_H

#include <stddef.h>

struct fb_dlsym {
	const char *name;
	size_t off; /* offsetof the pointer in the struct */
};

/* Points each member of table at its symbol in the library h (soname
 * names it in the message). 0, or -ENOENT naming the first symbol it
 * lacks: members already set are left set, so a failed table must not
 * be used. */
int fb_dlbind(void *h, const char *soname, const struct fb_dlsym *syms,
	      size_t n, void *table);

#endif
