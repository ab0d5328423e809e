#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "image/archive_lib.h"
#include "util/dlbind.h"
#include "util/error.h"

#define ARCHIVE_SONAME "libarchive.so.13"

static struct fb_archive lib;
static bool loaded;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

#define SYM(f) { "archive_" #f, offsetof(struct fb_archive, f) }

static int bind_all(void *h)
{
	static const struct fb_dlsym syms[] = {
		SYM(read_new), SYM(read_support_format_tar),
		SYM(read_support_format_raw), SYM(read_support_filter_gzip),
		SYM(read_support_filter_zstd), SYM(read_support_filter_xz),
		SYM(read_support_filter_bzip2), SYM(read_open_fd),
		SYM(read_open_filename), SYM(read_next_header),
		SYM(read_data_block), SYM(read_data_skip), SYM(read_free),
		SYM(filter_bytes), SYM(error_string),
		SYM(entry_pathname), SYM(entry_pathname_utf8),
		SYM(entry_hardlink), SYM(entry_hardlink_utf8),
		SYM(entry_symlink), SYM(entry_symlink_utf8),
		SYM(entry_filetype), SYM(entry_perm), SYM(entry_uid),
		SYM(entry_gid), SYM(entry_size), SYM(entry_size_is_set),
		SYM(entry_mtime), SYM(entry_mtime_nsec), SYM(entry_mtime_is_set),
		SYM(entry_atime), SYM(entry_atime_nsec), SYM(entry_atime_is_set),
		SYM(entry_rdevmajor), SYM(entry_rdevminor),
		SYM(entry_xattr_reset), SYM(entry_xattr_next),
	};
	/* A member left out of the table would stay NULL until called. */
	_Static_assert(sizeof(syms) / sizeof(syms[0]) ==
		       sizeof(struct fb_archive) / sizeof(void *),
		       "every member of struct fb_archive is bound");

	return fb_dlbind(h, ARCHIVE_SONAME, syms,
			 sizeof(syms) / sizeof(syms[0]), &lib);
}

const struct fb_archive *fb_archive(void)
{
	const struct fb_archive *ret = NULL;
	void *h;

	pthread_mutex_lock(&load_lock);
	if (loaded) {
		ret = &lib;
		goto out;
	}
	h = dlopen(ARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fb_errorf(-ELIBACC, "image import needs %s (Debian's "
			  "libarchive13): %s", ARCHIVE_SONAME, dlerror());
		goto out;
	}
	/* bind_all said which symbol is missing. */
	if (bind_all(h) < 0) {
		dlclose(h);
		goto out;
	}
	loaded = true;
	ret = &lib;
out:
	pthread_mutex_unlock(&load_lock);
	return ret;
}

struct archive *fb_archive_reader(const struct fb_archive *A, bool raw)
{
	struct archive *a = A->read_new();

	if (!a)
		return NULL;
	if (raw)
		A->read_support_format_raw(a);
	else
		A->read_support_format_tar(a);
	/* Named filters only: _all would also run external programs
	 * (lrzip, lzop...) on untrusted input. */
	A->read_support_filter_gzip(a);
	A->read_support_filter_zstd(a);
	A->read_support_filter_xz(a);
	A->read_support_filter_bzip2(a);
	return a;
}
