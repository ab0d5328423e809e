#include <dlfcn.h>
#include <errno.h>

#include "util/dlbind.h"
#include "util/error.h"

int fb_dlbind(void *h, const char *soname, const struct fb_dlsym *syms,
	      size_t n, void *table)
{
	for (size_t i = 0; i < n; i++) {
		void *p = dlsym(h, syms[i].name);

		if (!p)
			return fb_errorf(-ENOENT, "%s has no %s", soname,
					 syms[i].name);
		/* POSIX dlsym: a function's address as a data pointer. */
		*(void **)((char *)table + syms[i].off) = p;
	}
	return 0;
}
