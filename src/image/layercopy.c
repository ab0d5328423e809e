/* The root tree by copying, where overlayfs cannot be mounted: cached
 * layers (layercache.h) merged bottom to top as overlayfs would show
 * them. Every entry is made through fds beneath the tree's root, never
 * following a symlink; regular files go through fb_copy_fd_cow, so they
 * share blocks where the filesystem can (fd-based, without the fsync of
 * fb_copy_file_cow: the tree is thrown away once mkfs has read it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "image/layercache.h"
#include "image/rootfs.h"
#include "util/copy.h"
#include "util/error.h"

/* Directory levels: each holds three fds while its children are copied. */
#define MAX_DEPTH 256
#define XATTR_BUF (64u << 10) /* XATTR_LIST_MAX, XATTR_SIZE_MAX */
#define OVL_PREFIX "trusted.overlay."
#define OVL_OPAQUE "trusted.overlay.opaque"
/* The aufs forms of whiteouts, in a layer flagged with FB_LAYER_MARKERS
 * (unpack.h): ".wh.NAME" hides NAME, ".wh..wh..opq" its directory's
 * lower contents; other ".wh..wh." names (the flag itself) mean nothing. */
#define WH_PREFIX ".wh."
#define WH_META ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"

/* A file of this layer with several names: where its first copy went. */
struct link {
	ino_t ino;
	char *path;
};

struct lcopy {
	const char *layer;   /* its directory, for messages */
	bool markers;        /* it keeps whiteouts as marker files */
	int rootfd;          /* the tree being made */
	struct link *links;  /* open addressing, cap a power of two or 0 */
	size_t cap, used;
	char *names, *value; /* xattr buffers, XATTR_BUF each */
	char path[PATH_MAX]; /* the entry at hand, below the root */
};

static int fail(struct lcopy *c, const char *call)
{
	int err = -errno;

	return fb_errorf(err, "layer %s: %s %s: %s", c->layer, call,
			 *c->path ? c->path : ".", strerror(-err));
}

/* ---- hardlinks ------------------------------------------------------ */

static size_t link_slot(const struct lcopy *c, ino_t ino)
{
	size_t i = (size_t)((uint64_t)ino * 0x9e3779b97f4a7c15ull) &
		   (c->cap - 1);

	while (c->links[i].path && c->links[i].ino != ino)
		i = (i + 1) & (c->cap - 1);
	return i;
}

static const char *link_find(const struct lcopy *c, ino_t ino)
{
	return c->cap ? c->links[link_slot(c, ino)].path : NULL;
}

static int link_add(struct lcopy *c, ino_t ino)
{
	size_t i;

	if ((c->used + 1) * 4 > c->cap * 3) {
		struct lcopy bigger = { .cap = c->cap ? c->cap * 2 : 64 };

		bigger.links = calloc(bigger.cap, sizeof(struct link));
		if (!bigger.links)
			return fb_errorf(-ENOMEM, "layer %s: out of memory",
					 c->layer);
		for (i = 0; i < c->cap; i++)
			if (c->links[i].path)
				bigger.links[link_slot(&bigger,
						       c->links[i].ino)] =
					c->links[i];
		free(c->links);
		c->links = bigger.links;
		c->cap = bigger.cap;
	}
	i = link_slot(c, ino);
	c->links[i].path = strdup(c->path);
	if (!c->links[i].path)
		return fb_errorf(-ENOMEM, "layer %s: out of memory", c->layer);
	c->links[i].ino = ino;
	c->used++;
	return 0;
}

static void links_reset(struct lcopy *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->links[i].path);
	free(c->links);
	c->links = NULL;
	c->cap = c->used = 0;
}

/* Links the file first copied to first (a path below the root) as name
 * in dfd. The path is resolved again without following symlinks. */
static int relink(struct lcopy *c, const char *first, int dfd,
		  const char *name)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	char buf[PATH_MAX];
	char *slash;
	const char *base = buf;
	long pfd;
	int err = 0;

	snprintf(buf, sizeof(buf), "%s", first);
	slash = strrchr(buf, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
	}
	pfd = syscall(SYS_openat2, c->rootfd, slash ? buf : ".", &how,
		      sizeof(how));
	if (pfd < 0)
		return fail(c, "open the first name of");
	if (linkat((int)pfd, base, dfd, name, 0) < 0)
		err = fail(c, "link");
	close((int)pfd);
	return err;
}

/* ---- removing ------------------------------------------------------- */

static int rm_at(struct lcopy *c, int dfd, const char *name, unsigned depth);

/* A directory stream of its own on the directory open as fd (which the
 * caller keeps). */
static int open_stream(struct lcopy *c, int fd, DIR **out)
{
	int rfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (rfd < 0)
		return fail(c, "open");
	*out = fdopendir(rfd);
	if (!*out) {
		err = fail(c, "fdopendir");
		close(rfd);
		return err;
	}
	return 0;
}

static int empty_dir(struct lcopy *c, int fd, unsigned depth)
{
	struct dirent *de;
	int err = 0;
	DIR *d;

	err = open_stream(c, fd, &d);
	if (err)
		return err;
	while (!err) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				err = fail(c, "readdir");
			break;
		}
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			err = rm_at(c, dirfd(d), de->d_name, depth);
	}
	closedir(d);
	return err;
}

/* Removes name in dfd, a whole tree if it is a directory, never
 * following a symlink; nothing there is no error. */
static int rm_at(struct lcopy *c, int dfd, const char *name, unsigned depth)
{
	struct stat st;
	int fd, err;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : fail(c, "stat");
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 ? fail(c, "unlink") : 0;
	if (depth > MAX_DEPTH)
		return fb_errorf(-ELOOP, "layer %s: more than %d levels of "
				 "directories to remove at %s", c->layer,
				 MAX_DEPTH, c->path);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(c, "open");
	err = empty_dir(c, fd, depth + 1);
	close(fd);
	if (!err && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		err = fail(c, "rmdir");
	return err;
}

/* ---- metadata ------------------------------------------------------- */

/* All but overlayfs' own, which the mount would not show either.
 * replace: the directory was a lower layer's, whose xattrs the mount
 * would not show. */
static int copy_xattrs(struct lcopy *c, int sfd, int dfd, bool replace)
{
	ssize_t n, len;
	char *p;

	if (replace) {
		n = flistxattr(dfd, c->names, XATTR_BUF);
		if (n < 0 && errno != ENOTSUP)
			return fail(c, "listxattr");
		for (p = c->names; n > 0 && p < c->names + n; p += strlen(p) + 1)
			if (fremovexattr(dfd, p) < 0 && errno != ENODATA &&
			    errno != ENOTSUP && errno != EPERM)
				return fail(c, "removexattr");
	}
	n = flistxattr(sfd, c->names, XATTR_BUF);
	if (n < 0)
		return errno == ENOTSUP ? 0 : fail(c, "listxattr");
	for (p = c->names; p < c->names + n; p += strlen(p) + 1) {
		if (!strncmp(p, OVL_PREFIX, strlen(OVL_PREFIX)))
			continue;
		len = fgetxattr(sfd, p, c->value, XATTR_BUF);
		if (len < 0 && errno == ENODATA)
			continue;
		if (len < 0)
			return fail(c, "getxattr");
		/* As the unpacker: a filesystem without them, or a
		 * namespace the host keeps to itself. */
		if (fsetxattr(dfd, p, c->value, (size_t)len, 0) < 0 &&
		    errno != ENOTSUP && errno != EPERM && errno != EINVAL)
			return fail(c, "setxattr");
	}
	return 0;
}

/* Owner before mode (chown clears setuid bits), xattrs after both
 * (chown drops security.capability), times last. */
static int set_meta(struct lcopy *c, int fd, const struct stat *st, int sfd,
		    bool replace)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int err;

	if (fchown(fd, st->st_uid, st->st_gid) < 0)
		return fail(c, "chown");
	if (fchmod(fd, st->st_mode & 07777) < 0)
		return fail(c, "chmod");
	err = copy_xattrs(c, sfd, fd, replace);
	if (!err && futimens(fd, ts) < 0)
		err = fail(c, "futimens");
	return err;
}

/* ---- copying -------------------------------------------------------- */

static int copy_file(struct lcopy *c, int sfd, int dfd, const char *name,
		     const struct stat *st)
{
	const char *first = st->st_nlink > 1 ? link_find(c, st->st_ino) : NULL;
	char msg[256];
	int src, dst, err;

	if (first)
		return relink(c, first, dfd, name);
	src = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return fail(c, "open");
	dst = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		     O_CLOEXEC, 0600);
	if (dst < 0) {
		err = fail(c, "create");
		close(src);
		return err;
	}
	err = fb_copy_fd_cow(src, dst, NULL);
	if (err) {
		snprintf(msg, sizeof(msg), "%s", fb_last_error());
		err = fb_errorf(err, "layer %s: copy %s: %s", c->layer,
				c->path, msg);
	}
	if (!err)
		err = set_meta(c, dst, st, src, false);
	if (close(dst) < 0 && !err)
		err = fail(c, "close");
	close(src);
	if (!err && st->st_nlink > 1)
		err = link_add(c, st->st_ino);
	return err;
}

/* Symlinks and nodes: no xattrs (user.* cannot be set on them, and the
 * unpacker sets no other kind). */
static int copy_node(struct lcopy *c, int sfd, int dfd, const char *name,
		     const struct stat *st)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	char target[PATH_MAX];
	ssize_t n;

	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(sfd, name, target, sizeof(target));
		if (n < 0)
			return fail(c, "readlink");
		if ((size_t)n == sizeof(target)) {
			errno = ENAMETOOLONG;
			return fail(c, "readlink");
		}
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return fail(c, "symlink");
	} else if (mknodat(dfd, name, (st->st_mode & S_IFMT) | 0600,
			   st->st_rdev) < 0) {
		/* Without CAP_MKNOD, as the unpacker: the node is left out. */
		return errno == EPERM ? 0 : fail(c, "mknod");
	}
	if (fchownat(dfd, name, st->st_uid, st->st_gid,
		     AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, "chown");
	/* Never on a symlink: fchmodat follows it. */
	if (!S_ISLNK(st->st_mode) &&
	    fchmodat(dfd, name, st->st_mode & 07777, 0) < 0)
		return fail(c, "chmod");
	if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, "utimensat");
	return 0;
}

static int merge(struct lcopy *c, int sfd, int dfd, unsigned depth);

/* The xattr, or the marker where the layer has them: the filesystem may
 * have refused the xattr (overlayfs before 6.7 neither stores nor reads
 * trusted.overlay.* on its files: ENODATA or EOPNOTSUPP, no mark). */
static bool opaque(const struct lcopy *c, int fd)
{
	struct stat st;
	char v[2];

	if (fgetxattr(fd, OVL_OPAQUE, v, sizeof(v)) == 1 && v[0] == 'y')
		return true;
	return c->markers && fstatat(fd, WH_OPAQUE, &st,
				     AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

/* A directory in several layers is one in the tree, with the topmost
 * layer's owner, mode, times and xattrs, as the mount shows it. */
static int copy_dir(struct lcopy *c, int sfd, int dfd, const char *name,
		    const struct stat *st, unsigned depth)
{
	bool existed = false;
	struct stat old;
	int cs = -1, cd = -1, err = 0;

	if (fstatat(dfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0) {
		existed = S_ISDIR(old.st_mode);
		if (!existed)
			err = rm_at(c, dfd, name, 0);
	} else if (errno != ENOENT) {
		err = fail(c, "stat");
	}
	if (!err && !existed && mkdirat(dfd, name, 0700) < 0)
		err = fail(c, "mkdir");
	if (!err && (cs = openat(sfd, name, O_RDONLY | O_DIRECTORY |
				 O_NOFOLLOW | O_CLOEXEC)) < 0)
		err = fail(c, "open");
	if (!err && (cd = openat(dfd, name, O_RDONLY | O_DIRECTORY |
				 O_NOFOLLOW | O_CLOEXEC)) < 0)
		err = fail(c, "open");
	/* What the lower layers put there goes; this layer's follows. */
	if (!err && existed && opaque(c, cs))
		err = empty_dir(c, cd, 0);
	if (!err)
		err = merge(c, cs, cd, depth + 1);
	if (!err)
		err = set_meta(c, cd, st, cs, existed);
	if (cs >= 0)
		close(cs);
	if (cd >= 0)
		close(cd);
	return err;
}

/* A marker file: 1 once applied (the name it whites out removed from
 * dfd; an opaque marker is read by copy_dir before the merge), 0 if name
 * is no marker. Only regular files: a directory a member's path implied
 * may have any name. */
static int apply_marker(struct lcopy *c, int dfd, const char *name,
			const struct stat *st)
{
	int err;

	if (!c->markers || !S_ISREG(st->st_mode) ||
	    strncmp(name, WH_PREFIX, strlen(WH_PREFIX)))
		return 0;
	if (!strncmp(name, WH_META, strlen(WH_META)))
		return 1;
	err = rm_at(c, dfd, name + strlen(WH_PREFIX), 0);
	return err ? err : 1;
}

static int copy_entry(struct lcopy *c, int sfd, int dfd, const char *name,
		      unsigned depth)
{
	struct stat st;
	int err;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, "stat");
	/* A whiteout: the name goes, the device is never copied. */
	if (S_ISCHR(st.st_mode) && st.st_rdev == 0)
		return rm_at(c, dfd, name, 0);
	err = apply_marker(c, dfd, name, &st);
	if (err)
		return err < 0 ? err : 0;
	if (S_ISDIR(st.st_mode))
		return copy_dir(c, sfd, dfd, name, &st, depth);
	err = rm_at(c, dfd, name, 0);
	if (err)
		return err;
	return S_ISREG(st.st_mode) ? copy_file(c, sfd, dfd, name, &st) :
		copy_node(c, sfd, dfd, name, &st);
}

/* Copies the directory open as sfd into the one open as dfd, whose path
 * below the root is c->path. */
static int merge(struct lcopy *c, int sfd, int dfd, unsigned depth)
{
	size_t len = strlen(c->path);
	struct dirent *de;
	int err = 0;
	DIR *d;

	if (depth > MAX_DEPTH)
		return fb_errorf(-ELOOP, "layer %s: more than %d levels of "
				 "directories at %s", c->layer, MAX_DEPTH,
				 c->path);
	err = open_stream(c, sfd, &d);
	if (err)
		return err;
	while (!err) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				err = fail(c, "readdir");
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		err = fb_fmt(c->path + len, sizeof(c->path) - len, "%s%s",
			     len ? "/" : "", de->d_name);
		if (err)
			err = fb_errorf(err, "layer %s: a path below %s is too "
					"long", c->layer, *c->path ? c->path :
					".");
		else
			err = copy_entry(c, dirfd(d), dfd, de->d_name, depth);
		c->path[len] = '\0';
	}
	closedir(d);
	return err;
}

int fb_layers_copy(char *const *layers, size_t n, int rootfd)
{
	struct lcopy c = { .rootfd = rootfd };
	int err = 0, fd;

	c.names = malloc(XATTR_BUF);
	c.value = malloc(XATTR_BUF);
	if (!c.names || !c.value)
		err = fb_errorf(-ENOMEM, "copying layers: out of memory");
	/* Inode numbers mean something within one layer only. */
	for (size_t i = 0; !err && i < n; i++) {
		c.layer = layers[i];
		c.path[0] = '\0';
		err = fb_layer_cache_markers(layers[i]);
		if (err < 0)
			break;
		c.markers = err;
		fd = open(layers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			err = fail(&c, "open");
			break;
		}
		err = merge(&c, fd, rootfd, 0);
		close(fd);
		links_reset(&c);
	}
	free(c.names);
	free(c.value);
	return err;
}
