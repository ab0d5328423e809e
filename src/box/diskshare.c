/* The host's half of a disk freeze (root, outside any jail): the VMM
 * froze its root disk's top (diskfreeze.c) and said which file that is;
 * here the frozen chain is shared with a fork's children or a snapshot,
 * and a restored box gets its own top over a snapshot's.
 *
 * The file the VMM just froze was its top: it opened it for writing and
 * may keep that fd, and a VMM taken over later could write through it.
 * So before anyone else uses it, the file is *sealed*: copied (a reflink
 * where the filesystem has them, else copy_file_range of the clusters
 * written since the last freeze) to a file of root's that no VMM ever
 * had open for writing, renamed over the original name. The parent's
 * VMM keeps reading its old inode, which now only it can see. Every
 * other file of a chain was sealed when it was frozen, or is an image,
 * so children, snapshots and restores share them by hard links: O(1) in
 * what the disk holds, and plain files anyone may remove. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/rootdisk.h"
#include "disk/layer.h"
#include "util/copy.h"
#include "util/error.h"

/* The files of a frozen chain that live in one directory, top first: its
 * layers, and a raw base there (root.img); a base in the image store is
 * not the box's to share or copy. */
struct chain_files {
	char names[FB_LAYER_MAX_DEPTH + 1][FB_LAYER_NAME_MAX + 1];
	unsigned n;
};

static int walk_chain(int dirfd, const char *top, struct chain_files *cf)
{
	char name[FB_LAYER_NAME_MAX + 1];
	bool raw = false; /* the next name is a raw base's */
	int err = fb_layer_name_ok(top);

	snprintf(name, sizeof(name), "%s", top);
	cf->n = 0;
	while (!err) {
		struct fb_layer_info info;
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0 && errno == ENOENT && raw)
			return 0; /* a raw base in the image store */
		if (fd < 0)
			return fb_errorf(-errno, "open %s: %s", name,
					 strerror(errno));
		if (cf->n > FB_LAYER_MAX_DEPTH) {
			close(fd);
			return fb_errorf(-ELOOP, "disk chain deeper than %u",
					 FB_LAYER_MAX_DEPTH);
		}
		snprintf(cf->names[cf->n++], FB_LAYER_NAME_MAX + 1, "%s",
			 name);
		err = fb_layer_read_info(fd, &info);
		close(fd);
		if (err && (raw || !strcmp(name, FB_BOX_ROOT_RAW)))
			return 0; /* a raw base: the end of the chain */
		if (err)
			return err;
		if (info.parent.kind == FB_LAYER_PARENT_NONE)
			return 0;
		raw = info.parent.kind == FB_LAYER_PARENT_RAW;
		snprintf(name, sizeof(name), "%s", info.parent.name);
		err = fb_layer_name_ok(name);
	}
	return err;
}

static int open_disk_dir(const char *box_dir, int *dirfd)
{
	char path[PATH_MAX];
	int err = fb_fmt(path, sizeof(path), "%s/" FB_BOX_DISK_DIR, box_dir);

	if (err)
		return err;
	*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	return 0;
}

/* A new empty top over `below` (a frozen layer, or the raw root.img) in
 * dirfd, named in root.top: where the box's writes go. */
static int new_top_over(int dirfd, const char *below)
{
	struct fb_layer_parent parent = { 0 };
	struct fb_layer_info info;
	char top[FB_LAYER_NAME_MAX + 1];
	struct stat st;
	int fd = openat(dirfd, below, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int err;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", below, strerror(errno));
	err = fb_layer_read_info(fd, &info);
	if (!err) {
		parent.kind = FB_LAYER_PARENT_LAYER;
		memcpy(parent.uuid, info.uuid, 16);
		parent.size = info.virtual_size;
	} else if (!strcmp(below, FB_BOX_ROOT_RAW) && fstat(fd, &st) == 0) {
		parent.kind = FB_LAYER_PARENT_RAW;
		parent.size = (uint64_t)st.st_size;
		err = 0;
	}
	close(fd);
	if (err)
		return err;
	snprintf(parent.name, sizeof(parent.name), "%s", below);
	err = fb_box_new_top_name(top, sizeof(top));
	if (!err)
		err = fb_layer_create(dirfd, top, parent.size, 0, &parent, NULL);
	if (!err)
		err = fb_box_write_top(dirfd, top);
	return err;
}

int fb_disk_seal_frozen(const char *box_dir, const char *frozen)
{
	char tmp[FB_LAYER_NAME_MAX + 16];
	int dirfd = -1, src = -1, dst = -1;
	int err = fb_layer_name_ok(frozen);

	if (!err)
		err = open_disk_dir(box_dir, &dirfd);
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), ".seal-%s", frozen);
	unlinkat(dirfd, tmp, 0); /* a crashed seal's leftover */
	src = openat(dirfd, frozen, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src >= 0)
		dst = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
			     O_NOFOLLOW | O_CLOEXEC, 0600);
	if (src < 0 || dst < 0)
		err = fb_errorf(-errno, "seal %s: %s", frozen, strerror(errno));
	if (!err)
		err = fb_copy_fd_cow(src, dst, NULL);
	if (!err && fsync(dst) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", tmp, strerror(errno));
	if (!err && renameat(dirfd, tmp, dirfd, frozen) < 0)
		err = fb_errorf(-errno, "rename %s: %s", tmp, strerror(errno));
	if (err)
		unlinkat(dirfd, tmp, 0);
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	close(dirfd);
	return err;
}

/* Shares the chain's files from `from` (an fd on a directory) into `to`:
 * hard links, or sparse copies (reflinked where possible) across
 * filesystems. */
static int share_chain(int from, int to, const struct chain_files *cf)
{
	int err = 0;

	for (unsigned i = 0; !err && i < cf->n; i++) {
		const char *name = cf->names[i];
		int src, dst;

		if (linkat(from, name, to, name, 0) == 0)
			continue;
		if (errno != EXDEV)
			return fb_errorf(-errno, "link %s: %s", name,
					 strerror(errno));
		src = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		dst = openat(to, name, O_WRONLY | O_CREAT | O_EXCL |
			     O_NOFOLLOW | O_CLOEXEC, 0600);
		if (src < 0 || dst < 0)
			err = fb_errorf(-errno, "copy %s: %s", name,
					strerror(errno));
		if (!err)
			err = fb_copy_fd_cow(src, dst, NULL);
		if (!err && fsync(dst) < 0)
			err = fb_errorf(-errno, "fsync %s: %s", name,
					strerror(errno));
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
	}
	return err;
}

int fb_disk_child_create(const char *parent_dir, const char *frozen,
			 const char *child_dir)
{
	char path[PATH_MAX];
	struct chain_files cf;
	int pfd = -1, cfd = -1, err = open_disk_dir(parent_dir, &pfd);

	if (!err)
		err = walk_chain(pfd, frozen, &cf);
	if (!err)
		err = fb_box_disk_dir_create(child_dir, path, sizeof(path),
					     &cfd);
	if (!err)
		err = share_chain(pfd, cfd, &cf);
	if (!err)
		err = new_top_over(cfd, frozen);
	if (pfd >= 0)
		close(pfd);
	if (cfd >= 0)
		close(cfd);
	return err;
}

int fb_disk_snapshot_copy(const char *box_dir, const char *frozen,
			  const char *snap_dir)
{
	struct chain_files cf;
	int from = -1, to, err = open_disk_dir(box_dir, &from);

	if (err)
		return err;
	to = open(snap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (to < 0)
		err = fb_errorf(-errno, "open %s: %s", snap_dir,
				strerror(errno));
	if (!err)
		err = walk_chain(from, frozen, &cf);
	if (!err)
		err = share_chain(from, to, &cf);
	/* root.top in a snapshot names its frozen top, not a writable one. */
	if (!err)
		err = fb_box_write_top(to, frozen);
	close(from);
	if (to >= 0)
		close(to);
	return err;
}

int fb_disk_restore_prepare(const char *snap_dir, const char *box_dir)
{
	char top[FB_LAYER_NAME_MAX + 2], path[PATH_MAX];
	struct chain_files cf;
	int from, to = -1, err = 0;
	ssize_t n;
	int fd;

	from = open(snap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (from < 0)
		return fb_errorf(-errno, "open %s: %s", snap_dir,
				 strerror(errno));
	fd = openat(from, FB_BOX_ROOT_TOP, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		close(from);
		return errno == ENOENT ? 0 : fb_errorf(-errno, "open %s/"
			FB_BOX_ROOT_TOP ": %s", snap_dir, strerror(errno));
	}
	n = read(fd, top, sizeof(top) - 1);
	close(fd);
	top[n > 0 ? n : 0] = '\0';
	top[strcspn(top, "\n")] = '\0';
	err = walk_chain(from, top, &cf);
	if (!err)
		err = fb_box_disk_dir_create(box_dir, path, sizeof(path), &to);
	if (!err)
		err = share_chain(from, to, &cf);
	if (!err)
		err = new_top_over(to, top);
	close(from);
	if (to >= 0)
		close(to);
	return err;
}
