/* The host's half of a disk freeze (root, outside any jail): the VMM
 * froze its root disk's top (diskfreeze.c) and said which file that is;
 * here the frozen chain is shared with a fork's children or copied into
 * a snapshot, and a restored box gets its own top over a snapshot's.
 *
 * Children share the parent's frozen files by hard links (O(1), whatever
 * the disk holds). A file a VMM once had open for writing (its old top,
 * its raw root.img) is then made immutable (FS_IMMUTABLE_FL): a parent
 * VMM taken over later could otherwise write through the fd it kept into
 * what its children read. Immutable files refuse unlink, so removing a
 * box lifts the flag for the moment of the unlink and puts it back if
 * other boxes still link the file (boxdir.c). Snapshots and restores copy
 * instead (reflinks where the filesystem has them): a snapshot directory
 * belongs to the user, who must be able to rm -rf it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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

int fb_disk_set_immutable(int fd, bool on, const char *name)
{
	int flags;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return fb_errorf(-errno, "FS_IOC_GETFLAGS %s: %s", name,
				 strerror(errno));
	if (!!(flags & FS_IMMUTABLE_FL) == on)
		return 0;
	flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
		return fb_errorf(-errno, "FS_IOC_SETFLAGS %s: %s%s", name,
				 strerror(errno), errno == ENOTTY ||
				 errno == EOPNOTSUPP ? " (this filesystem "
				 "cannot make a file immutable, so a fork "
				 "could not keep its children's disks safe "
				 "from their parent)" : "");
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

int fb_disk_share_frozen(const char *box_dir, const char *frozen)
{
	struct chain_files cf;
	int dirfd = -1, err = open_disk_dir(box_dir, &dirfd);

	if (!err)
		err = walk_chain(dirfd, frozen, &cf);
	for (unsigned i = 0; !err && i < cf.n; i++) {
		int fd = openat(dirfd, cf.names[i], O_RDONLY | O_NOFOLLOW |
				O_CLOEXEC);

		if (fd < 0) {
			err = fb_errorf(-errno, "open %s: %s", cf.names[i],
					strerror(errno));
			break;
		}
		err = fb_disk_set_immutable(fd, true, cf.names[i]);
		close(fd);
	}
	if (dirfd >= 0)
		close(dirfd);
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
	for (unsigned i = 0; !err && i < cf.n; i++)
		if (linkat(pfd, cf.names[i], cfd, cf.names[i], 0) < 0)
			err = fb_errorf(-errno, "link %s into %s: %s",
					cf.names[i], path, strerror(errno));
	if (!err)
		err = new_top_over(cfd, frozen);
	if (pfd >= 0)
		close(pfd);
	if (cfd >= 0)
		close(cfd);
	return err;
}

/* Copies the chain from `from` (an fd on a directory) into `to`, sparse,
 * reflinked where it can be. */
static int copy_chain(int from, int to, const struct chain_files *cf)
{
	int err = 0;

	for (unsigned i = 0; !err && i < cf->n; i++) {
		int src = openat(from, cf->names[i], O_RDONLY | O_NOFOLLOW |
				 O_CLOEXEC);
		int dst = openat(to, cf->names[i], O_WRONLY | O_CREAT | O_EXCL |
				 O_NOFOLLOW | O_CLOEXEC, 0600);

		if (src < 0 || dst < 0)
			err = fb_errorf(-errno, "copy %s: %s", cf->names[i],
					strerror(errno));
		if (!err)
			err = fb_copy_fd_cow(src, dst, NULL);
		if (!err && fsync(dst) < 0)
			err = fb_errorf(-errno, "fsync %s: %s", cf->names[i],
					strerror(errno));
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
	}
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
		err = copy_chain(from, to, &cf);
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
		err = copy_chain(from, to, &cf);
	if (!err)
		err = new_top_over(to, top);
	close(from);
	if (to >= 0)
		close(to);
	return err;
}
