#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/layercache.h"
#include "image/store.h"
#include "image/store_int.h"
#include "util/error.h"

int fb_layer_cache_dir(char *buf, size_t len)
{
	return fb_image_subdir("layers", buf, len);
}

/* 1 if dir holds the layer, 0 if not. */
static int cached(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 :
			fb_errorf(-errno, "stat %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fb_errorf(-ENOTDIR, "%s is not a cached layer (not a "
				 "directory): remove it", dir);
	return 1;
}

int fb_layer_cache_markers(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	int err = fb_fmt(path, sizeof(path), "%s/%s", dir, FB_LAYER_MARKERS);

	if (err)
		return fb_errorf(err, "layer %s: path too long", dir);
	if (lstat(path, &st) == 0)
		return S_ISREG(st.st_mode);
	if (errno == ENOENT)
		return 0;
	return fb_errorf(-errno, "stat %s: %s", path, strerror(errno));
}

/* Flags the layer being unpacked as one with marker files, so that no
 * overlayfs mount ever shows them as files. */
static int flag_markers(int rootfd, const char *tmp)
{
	static const char why[] = "Whiteouts in this layer are aufs-style "
				  "marker files: the filesystem refused "
				  "overlayfs' kind. See "
				  "src/image/layercache.h.\n";
	int fd = openat(rootfd, FB_LAYER_MARKERS, O_WRONLY | O_CREAT |
			O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), err = 0;
	ssize_t n;

	if (fd < 0)
		return fb_errorf(-errno, "create %s/%s: %s", tmp,
				 FB_LAYER_MARKERS, strerror(errno));
	n = write(fd, why, sizeof(why) - 1);
	if (n < 0)
		err = fb_errorf(-errno, "write %s/%s: %s", tmp,
				FB_LAYER_MARKERS, strerror(errno));
	else if ((size_t)n != sizeof(why) - 1)
		err = fb_errorf(-EIO, "write %s/%s: short write", tmp,
				FB_LAYER_MARKERS);
	close(fd);
	return err;
}

/* Unpacks the layer into tmp, an empty directory, and syncs it: after a
 * crash the rename must not have outlived the files. */
static int unpack_into(const struct fb_oci_layer *l, const char *tmp,
		       struct fb_unpack_stats *st)
{
	struct fb_unpack_stats scratch = { 0 };
	uint64_t markers;
	int rootfd, fd, err;

	/* The root of the topmost layer is the image's root in the mount. */
	if (chmod(tmp, 0755) < 0)
		return fb_errorf(-errno, "chmod %s: %s", tmp, strerror(errno));
	rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
	fd = open(l->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = fb_errorf(-errno, "open %s: %s", l->path,
				strerror(errno));
		goto out;
	}
	if (!st)
		st = &scratch;
	markers = st->wh_markers; /* st sums several layers */
	err = fb_unpack_layer_flags(rootfd, fd, l->label, FB_UNPACK_OVERLAY,
				    st);
	close(fd);
	if (!err && st->wh_markers > markers)
		err = flag_markers(rootfd, tmp);
	if (!err && syncfs(rootfd) < 0)
		err = fb_errorf(-errno, "syncfs %s: %s", tmp, strerror(errno));
out:
	close(rootfd);
	return err;
}

/* 0 if renamed, 1 if another import cached the layer meanwhile (theirs
 * is as good), or an error. */
static int place(const char *tmp, const char *dir)
{
	int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE);

	/* Without RENAME_NOREPLACE, rename still refuses to replace a
	 * directory that holds anything. */
	if (r < 0 && errno == EINVAL)
		r = rename(tmp, dir);
	if (r == 0)
		return 0;
	if (errno == EEXIST || errno == ENOTEMPTY) {
		r = cached(dir);
		if (r)
			return r;
		errno = EEXIST;
	}
	return fb_errorf(-errno, "rename %s to %s: %s", tmp, dir,
			 strerror(errno));
}

int fb_layer_cache_get(const struct fb_oci_layer *l, char *dir, size_t len,
		       bool *unpacked, struct fb_unpack_stats *st)
{
	char layers[PATH_MAX], tmp[PATH_MAX];
	int err = fb_layer_cache_dir(layers, sizeof(layers)), fd;

	*unpacked = false;
	if (!err)
		err = fb_fmt(dir, len, "%s/%s", layers, l->key);
	if (!err)
		err = fb_fmt(tmp, sizeof(tmp), "%s/.tmp-%s-XXXXXX", layers,
			     l->key);
	if (!err)
		err = cached(dir);
	if (err)
		return err < 0 ? err : 0;
	err = fb_oci_layer_check(l);
	if (err)
		return err;
	if (!mkdtemp(tmp))
		return fb_errorf(-errno, "mkdtemp %s: %s", tmp, strerror(errno));
	err = unpack_into(l, tmp, st);
	if (!err)
		err = place(tmp, dir);
	if (err) {
		fb_rm_tree(tmp);
		return err == 1 ? 0 : err;
	}
	*unpacked = true;
	fd = open(layers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}
