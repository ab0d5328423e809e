#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#include "cli/curl_lib.h"
#include "util/dlbind.h"
#include "util/error.h"

#define CURL_SONAME "libcurl.so.4"

static struct fb_curl lib;
static int loaded; /* 0 not yet, 1 loaded, -1 failed */

static int bind_all(void *h)
{
	static const struct fb_dlsym syms[] = {
		{ "curl_global_init", offsetof(struct fb_curl, global_init) },
		{ "curl_easy_init", offsetof(struct fb_curl, easy_init) },
		{ "curl_easy_setopt", offsetof(struct fb_curl, easy_setopt) },
		{ "curl_easy_perform", offsetof(struct fb_curl, easy_perform) },
		{ "curl_easy_getinfo", offsetof(struct fb_curl, easy_getinfo) },
		{ "curl_easy_cleanup", offsetof(struct fb_curl, easy_cleanup) },
		{ "curl_easy_strerror", offsetof(struct fb_curl, easy_strerror) },
		{ "curl_slist_append", offsetof(struct fb_curl, slist_append) },
		{ "curl_slist_free_all", offsetof(struct fb_curl, slist_free_all) },
	};

	return fb_dlbind(h, CURL_SONAME, syms, sizeof(syms) / sizeof(syms[0]),
			 &lib);
}

const struct fb_curl *fb_curl(void)
{
	void *h;

	if (loaded > 0)
		return &lib;
	if (loaded < 0) {
		fb_errorf(-ENOENT, "libcurl could not be loaded before");
		return NULL;
	}
	h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fb_errorf(-ENOENT, "talking to forkboxd needs %s (Debian's "
			  "libcurl4): %s", CURL_SONAME, dlerror());
		loaded = -1;
		return NULL;
	}
	/* bind_all said which symbol is missing: that is kept, not made
	 * a failed init. */
	if (bind_all(h) < 0) {
		loaded = -1;
		return NULL;
	}
	if (lib.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fb_errorf(-ENOMEM, "curl_global_init failed");
		loaded = -1;
		return NULL;
	}
	loaded = 1;
	return &lib;
}
