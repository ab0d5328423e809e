#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layercache.h"
#include "image/rootfs.h"
#include "image/store.h"
#include "image/store_int.h"
#include "util/error.h"

#define OVL_OPAQUE "trusted.overlay.opaque"
#define WH_OPAQUE ".wh..wh..opq" /* its aufs form, see unpack.h */
#define COPIED "layers copied, not mounted: "

static bool overlay_refused(void)
{
	const char *e = getenv("FORKBOX_NO_OVERLAY");

	return e && *e && strcmp(e, "0");
}

/* Whether the layer keeps whiteouts as marker files (layercache.h):
 * one per layer, marked[i], or an error. */
static int find_markers(char *const *layers, size_t n, bool *marked)
{
	for (size_t i = 0; i < n; i++) {
		int r = fb_layer_cache_markers(layers[i]);

		if (r < 0)
			return r;
		marked[i] = r;
	}
	return 0;
}

/* The layer's root is opaque: the xattr, or in a layer with marker
 * files, the marker (the xattr may be what its filesystem refused). */
static bool root_opaque(const char *layer, bool marked)
{
	char v[2], path[PATH_MAX];
	struct stat st;

	if (lgetxattr(layer, OVL_OPAQUE, v, sizeof(v)) == 1 && v[0] == 'y')
		return true;
	return marked && !fb_fmt(path, sizeof(path), "%s/" WH_OPAQUE, layer) &&
	       lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* overlayfs reads no opaque mark on a layer's root, so the stack is cut
 * there instead: the layers below such a root are hidden whole. */
static size_t first_layer(char *const *layers, size_t n, const bool *marked)
{
	for (size_t i = n; i-- > 1;)
		if (root_opaque(layers[i], marked[i]))
			return i;
	return 0;
}

/* 1 with a note if a layer keeps marker files, which a mount would show
 * as files; else 0. */
static int markers_refuse_mount(struct fb_rootfs *rf, char *const *layers,
				const bool *marked, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *base = strrchr(layers[i], '/');

		if (!marked[i])
			continue;
		snprintf(rf->note, sizeof(rf->note), COPIED "layer %.12s "
			 "keeps whiteouts as files (its filesystem refused "
			 "overlayfs' kind)", base ? base + 1 : layers[i]);
		return 1;
	}
	return 0;
}

/* "lowerdir=top:...:bottom", in a malloc'd string; NULL and a note when
 * the kernel could not take it (it reads one page of options, and takes
 * ':' and ',' for separators). A single layer gets an empty directory
 * below it: overlayfs wants two lower layers when there is no upper. */
static char *lowerdir_option(char *const *layers, size_t n, const char *empty,
			     char *note, size_t note_len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t cap = page > 0 ? (size_t)page : 4096, used;
	char *opt = malloc(cap);

	if (!opt) {
		snprintf(note, note_len, COPIED "out of memory");
		return NULL;
	}
	used = (size_t)snprintf(opt, cap, "lowerdir=");
	for (size_t k = 0; k < n + (n == 1); k++) {
		const char *dir = k < n ? layers[n - 1 - k] : empty;
		size_t len = strlen(dir);

		if (strpbrk(dir, ":,\\")) {
			snprintf(note, note_len, COPIED "the path %.80s holds "
				 "':', ',' or '\\\\'", dir);
			goto fail;
		}
		if (used + len + 2 > cap) {
			snprintf(note, note_len, COPIED "%zu layers make a "
				 "mount option longer than %zu bytes", n, cap);
			goto fail;
		}
		if (k)
			opt[used++] = ':';
		memcpy(opt + used, dir, len + 1);
		used += len;
	}
	return opt;
fail:
	free(opt);
	return NULL;
}

static __thread char leaked[PATH_MAX];

static int find_leak(const char *path, const struct stat *st, int type,
		     struct FTW *ftw)
{
	if (type != FTW_NS)
		return 0;
	snprintf(leaked, sizeof(leaked), "%s", path);
	return 1;
}

static void unmount(struct fb_rootfs *rf)
{
	if (umount2(rf->dir, 0) == 0 ||
	    (errno == EBUSY && umount2(rf->dir, MNT_DETACH) == 0))
		rf->mounted = false;
}

/* 0 mounted at rf->dir, 1 not (rf->note says why), or an error. */
static int try_mount(struct fb_rootfs *rf, char *const *layers, size_t n)
{
	char empty[PATH_MAX];
	char *opt;
	int r;

	if (overlay_refused()) {
		snprintf(rf->note, sizeof(rf->note), COPIED
			 "FORKBOX_NO_OVERLAY is set");
		return 1;
	}
	r = fb_fmt(rf->dir, sizeof(rf->dir), "%s/mnt", rf->tmp);
	if (!r)
		r = fb_fmt(empty, sizeof(empty), "%s/empty", rf->tmp);
	if (r)
		return r;
	if (mkdir(rf->dir, 0755) < 0 || mkdir(empty, 0755) < 0)
		return fb_errorf(-errno, "mkdir in %s: %s", rf->tmp,
				 strerror(errno));
	opt = lowerdir_option(layers, n, empty, rf->note, sizeof(rf->note));
	if (!opt)
		return 1;
	/* nodev: mkfs only stats the image's device nodes; nothing may
	 * open one through this mount. */
	r = mount("overlay", rf->dir, "overlay", MS_RDONLY | MS_NODEV |
		  MS_NOSUID | MS_NOEXEC, opt);
	free(opt);
	if (r < 0) {
		snprintf(rf->note, sizeof(rf->note), COPIED "mount overlay: "
			 "%s", strerror(errno));
		return 1;
	}
	rf->mounted = true;
	/* A whiteout in a directory that only one layer has (a pointless
	 * one: nothing below had the name) is listed by overlayfs and
	 * cannot be stat'ed: mkfs would fail on it, the copy drops it. */
	leaked[0] = '\0';
	r = nftw(rf->dir, find_leak, 32, FTW_PHYS | FTW_MOUNT);
	if (r == 0)
		return 0;
	if (r > 0)
		snprintf(rf->note, sizeof(rf->note), COPIED "overlayfs lists "
			 "a whiteout as an entry (%.80s)",
			 leaked + strlen(rf->dir));
	else
		snprintf(rf->note, sizeof(rf->note), COPIED "reading the "
			 "mount: %s", strerror(errno));
	unmount(rf);
	if (rf->mounted)
		return fb_errorf(-errno, "umount %s: %s", rf->dir,
				 strerror(errno));
	return 1;
}

static int copy(struct fb_rootfs *rf, char *const *layers, size_t n)
{
	int fd, err = fb_fmt(rf->dir, sizeof(rf->dir), "%s/root", rf->tmp);

	if (err)
		return err;
	if (mkdir(rf->dir, 0755) < 0 ||
	    (fd = open(rf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return fb_errorf(-errno, "mkdir %s: %s", rf->dir,
				 strerror(errno));
	err = fb_layers_copy(layers, n, fd);
	close(fd);
	return err;
}

/* The layers without the lower copies of one that comes twice (docker's
 * empty layers do): overlayfs refuses a directory twice in a stack, and
 * the upper copy has every name, whiteout and opaque mark the lower
 * one has, so the view is the same. Returns the new count. */
static size_t dedup(char **layers, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		bool again = false;

		for (size_t j = i + 1; j < n && !again; j++)
			again = !strcmp(layers[i], layers[j]);
		if (!again)
			layers[kept++] = layers[i];
	}
	return kept;
}

int fb_rootfs_assemble(char *const *all, size_t count, struct fb_rootfs *rf)
{
	char **layers = calloc(count ? count : 1, sizeof(char *));
	bool *marked = calloc(count ? count : 1, sizeof(bool));
	size_t n, first = 0;
	int err;

	memset(rf, 0, sizeof(*rf));
	if (!layers || !marked) {
		free(layers);
		free(marked);
		return fb_errorf(-ENOMEM, "assembling the root: out of memory");
	}
	memcpy(layers, all, count * sizeof(char *));
	n = dedup(layers, count);
	err = find_markers(layers, n, marked);
	if (err)
		goto out;
	first = first_layer(layers, n, marked);
	err = fb_image_subdir("tmp", rf->tmp, sizeof(rf->tmp));
	if (!err)
		err = fb_fmt(rf->tmp + strlen(rf->tmp), sizeof(rf->tmp) -
			     strlen(rf->tmp), "/rootfs-XXXXXX");
	if (err)
		goto out;
	if (!mkdtemp(rf->tmp)) {
		err = fb_errorf(-errno, "mkdtemp %s: %s", rf->tmp,
				strerror(errno));
		rf->tmp[0] = '\0';
		goto out;
	}
	err = markers_refuse_mount(rf, layers + first, marked + first,
				   n - first);
	if (!err)
		err = n ? try_mount(rf, layers + first, n - first) : 1;
	if (err == 1)
		err = copy(rf, layers + first, n - first);
	if (err)
		fb_rootfs_release(rf);
out:
	free(layers);
	free(marked);
	return err;
}

int fb_rootfs_release(struct fb_rootfs *rf)
{
	int err = 0;

	if (!rf->tmp[0])
		return 0;
	if (rf->mounted) {
		unmount(rf);
		/* Left in place: removing files under a mount that stayed
		 * would be removing the image's. */
		if (rf->mounted)
			return fb_errorf(-errno, "umount %s: %s", rf->dir,
					 strerror(errno));
	}
	err = fb_rm_tree(rf->tmp);
	rf->tmp[0] = '\0';
	return err;
}
