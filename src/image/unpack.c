#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "image/archive_lib.h"
#include "image/unpack.h"
#include "util/error.h"
#include "util/file.h"

#define READ_BLOCK (64u * 1024u)
#define TAR_BLOCK 512
/* Directory levels a whiteout removes or prunes: each holds an fd. */
#define MAX_DEPTH 256
#define SHOWN_MAX 200
#define WH_PREFIX ".wh."
#define WH_META ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define OVL_OPAQUE_XATTR "trusted.overlay.opaque"

/* Paths (as member names give them) that this layer put in the tree, with
 * every directory above them: what an opaque marker or a whiteout must
 * leave alone, since both apply to the lower layers only. */
struct pathset {
	char **slot;
	size_t cap; /* a power of two, or 0 */
	size_t used;
};

struct dirtime {
	char *path;
	struct timespec ts[2];
};

/* Overlay mode: a whiteout stored once the layer is whole. */
struct pending_wh {
	char *path;  /* what it whites out, or the opaque directory */
	char *shown; /* the marker member, for messages */
	bool opaque;
};

struct unpack {
	const struct fb_archive *A;
	struct archive *a;
	int rootfd;
	unsigned flags;
	const char *label;
	struct fb_unpack_stats *st;
	struct pathset mine;
	/* Directory mtimes wait for the end: adding entries changes them. */
	struct dirtime *dirs;
	size_t n_dirs, cap_dirs;
	struct pending_wh *wh;
	size_t n_wh, cap_wh;
	char path[PATH_MAX];   /* the member's name, cleaned */
	char shown[SHOWN_MAX]; /* the member's name as messages print it */
};

/* ---- the set of this layer's paths ---------------------------------- */

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (len--) {
		h ^= (uint8_t)*s++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static size_t set_slot(const struct pathset *s, const char *p, size_t len)
{
	size_t i = fnv1a(p, len) & (s->cap - 1);

	while (s->slot[i] && (strncmp(s->slot[i], p, len) || s->slot[i][len]))
		i = (i + 1) & (s->cap - 1);
	return i;
}

static bool set_has(const struct pathset *s, const char *p)
{
	return s->cap && s->slot[set_slot(s, p, strlen(p))];
}

static int set_grow(struct pathset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 1024, i;
	struct pathset bigger = { calloc(cap, sizeof(char *)), cap, s->used };

	if (!bigger.slot)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++)
		if (s->slot[i])
			bigger.slot[set_slot(&bigger, s->slot[i],
					     strlen(s->slot[i]))] = s->slot[i];
	free(s->slot);
	*s = bigger;
	return 0;
}

/* 1 if added, 0 if it was there, or -ENOMEM. */
static int set_add(struct pathset *s, const char *p, size_t len)
{
	size_t i;

	if ((s->used + 1) * 4 > s->cap * 3 && set_grow(s) < 0)
		return -ENOMEM;
	i = set_slot(s, p, len);
	if (s->slot[i])
		return 0;
	s->slot[i] = strndup(p, len);
	if (!s->slot[i])
		return -ENOMEM;
	s->used++;
	return 1;
}

static void set_free(struct pathset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
}

/* Adds path and its ancestors. A path already there has its ancestors
 * there too, so the walk up stops at the first one found. */
static int mark_mine(struct unpack *u, const char *path)
{
	size_t len = strlen(path);
	int r;

	while (len) {
		r = set_add(&u->mine, path, len);
		if (r < 0)
			return fb_errorf(r, "%s: out of memory", u->label);
		if (r == 0)
			return 0;
		while (len && path[len - 1] != '/')
			len--;
		if (len)
			len--;
	}
	return 0;
}

/* ---- names --------------------------------------------------------- */

/* Messages stay one line whatever bytes a member name holds. */
static void show(const char *name, char *buf, size_t size)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)name[i];

		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : name[i];
	}
	buf[i] = '\0';
	if (name[i] && size > 4)
		memcpy(buf + size - 4, "...", 4);
}

/* Drops "." components and repeated or trailing slashes ("./usr//bin/"
 * becomes "usr/bin", "./" the root ""). -EINVAL for an absolute name,
 * -EXDEV for a ".." component, -ENAMETOOLONG. */
static int clean_name(const char *raw, char *out, size_t size)
{
	size_t n = 0;

	if (raw[0] == '/')
		return -EINVAL;
	while (*raw) {
		const char *end = strchrnul(raw, '/');
		size_t len = (size_t)(end - raw);

		if (len == 2 && raw[0] == '.' && raw[1] == '.')
			return -EXDEV;
		if (len && !(len == 1 && raw[0] == '.')) {
			if (n + !!n + len >= size)
				return -ENAMETOOLONG;
			if (n)
				out[n++] = '/';
			memcpy(out + n, raw, len);
			n += len;
		}
		raw = *end ? end + 1 : end;
	}
	out[n] = '\0';
	return 0;
}

/* path -> parent ("" for the root) and the last component, in place. */
static const char *split(char *path, const char **parent)
{
	char *slash = strrchr(path, '/');

	if (!slash) {
		*parent = "";
		return path;
	}
	*slash = '\0';
	*parent = path;
	return slash + 1;
}

static const char *entry_name(struct unpack *u, struct archive_entry *e)
{
	const char *p = u->A->entry_pathname(e);

	return p ? p : u->A->entry_pathname_utf8(e);
}

static const char *entry_hardlink(struct unpack *u, struct archive_entry *e)
{
	const char *p = u->A->entry_hardlink(e);

	return p ? p : u->A->entry_hardlink_utf8(e);
}

static const char *entry_symlink(struct unpack *u, struct archive_entry *e)
{
	const char *p = u->A->entry_symlink(e);

	return p ? p : u->A->entry_symlink_utf8(e);
}

/* ---- resolving beneath the root ------------------------------------ */

/* An O_PATH fd of the directory at path ("" is the root), or -errno.
 * -EXDEV when the path would leave the root (a symlink to an absolute or
 * climbing target), -ELOOP for a magic link or a symlink loop. */
static int beneath_how(int rootfd, const char *path, uint64_t resolve)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | resolve,
	};
	int tries = 0;
	long fd;

	/* EAGAIN: a rename elsewhere raced the lookup; nothing else writes
	 * here, but the kernel asks us to retry, so we do, a few times. */
	do
		fd = syscall(SYS_openat2, rootfd, *path ? path : ".", &how,
			     sizeof(how));
	while (fd < 0 && errno == EAGAIN && ++tries < 16);
	return fd < 0 ? -errno : (int)fd;
}

static int beneath(int rootfd, const char *path)
{
	return beneath_how(rootfd, path, 0);
}

/* As beneath(), making missing directories when create is set: layers may
 * leave out the directories above a member, and tar makes them. Each
 * prefix is resolved again from the root, so a symlink among the
 * components is judged as in a single lookup. */
static int open_dir(struct unpack *u, const char *dir, bool create)
{
	char prefix[PATH_MAX];
	size_t start = 0;
	int fd = beneath(u->rootfd, dir), pfd;

	if (fd != -ENOENT || !create)
		return fd;
	pfd = beneath(u->rootfd, "");
	if (pfd < 0)
		return pfd;
	for (;;) {
		const char *end = strchrnul(dir + start, '/');
		size_t n = (size_t)(end - dir);

		memcpy(prefix, dir, n);
		prefix[n] = '\0';
		fd = beneath(u->rootfd, prefix);
		if (fd == -ENOENT) {
			if (mkdirat(pfd, prefix + start, 0755) < 0 &&
			    errno != EEXIST)
				fd = -errno;
			else
				fd = beneath(u->rootfd, prefix);
		}
		close(pfd);
		if (fd < 0 || !*end)
			return fd;
		pfd = fd;
		start = n + 1;
	}
}

static int resolve_error(struct unpack *u, int err, const char *dir)
{
	const char *d = *dir ? dir : ".";

	switch (err) {
	case -EXDEV:
		return fb_errorf(err, "%s: member %s climbs out of the root "
				 "(through a symlink in %s)", u->label,
				 u->shown, d);
	case -ELOOP:
		return fb_errorf(err, "%s: member %s: too many symlinks, or "
				 "a magic link, in %s", u->label, u->shown, d);
	case -ENOTDIR:
		return fb_errorf(err, "%s: member %s: %s is not a directory",
				 u->label, u->shown, d);
	default:
		return fb_errorf(err, "%s: member %s: open directory %s: %s",
				 u->label, u->shown, d, strerror(-err));
	}
}

static int sys_error(struct unpack *u, const char *call, const char *name)
{
	int err = -errno;

	return fb_errorf(err, "%s: member %s: %s %s: %s", u->label, u->shown,
			 call, name, strerror(-err));
}

static int archive_error(struct unpack *u)
{
	const char *msg = u->A->error_string(u->a);

	return fb_errorf(-EIO, "%s: %s", u->label,
			 msg ? msg : "unreadable archive");
}

/* ---- removing ------------------------------------------------------ */

/* Removes name in dfd, a whole tree if is_dir, never following a
 * symlink: each directory is opened O_NOFOLLOW from its parent's fd. */
static int remove_tree(struct unpack *u, int dfd, const char *name,
		       bool is_dir, unsigned depth)
{
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	if (!is_dir) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return sys_error(u, "unlink", name);
		return 0;
	}
	if (depth > MAX_DEPTH)
		return fb_errorf(-ELOOP, "%s: member %s: more than %d levels "
				 "of directories to remove", u->label,
				 u->shown, MAX_DEPTH);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sys_error(u, "open", name);
	d = fdopendir(fd);
	if (!d) {
		err = sys_error(u, "fdopendir", name);
		close(fd);
		return err;
	}
	while (!err) {
		struct stat st;
		bool sub;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				err = sys_error(u, "readdir", name);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(dirfd(d), de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0)
				err = sys_error(u, "stat", de->d_name);
			sub = !err && S_ISDIR(st.st_mode);
		}
		if (!err)
			err = remove_tree(u, dirfd(d), de->d_name, sub,
					  depth + 1);
	}
	closedir(d);
	if (!err && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		err = sys_error(u, "rmdir", name);
	return err;
}

static int hide_lower(struct unpack *u, int dfd, const char *name,
		      char *path, unsigned depth);

/* Hides what lower layers put in the directory open (readable) as fd,
 * whose member path is path (a PATH_MAX buffer, restored on return).
 * Takes fd. */
static int hide_children(struct unpack *u, int fd, char *path,
			 unsigned depth)
{
	size_t len = strlen(path);
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int err = 0;

	if (!d) {
		err = sys_error(u, "fdopendir", *path ? path : ".");
		close(fd);
		return err;
	}
	while (!err) {
		size_t n;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				err = sys_error(u, "readdir", *path ? path : ".");
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n = strlen(de->d_name);
		/* A name too long to be a member's cannot be this layer's. */
		if (len + 1 + n >= PATH_MAX) {
			err = hide_lower(u, dirfd(d), de->d_name, NULL, depth);
			continue;
		}
		if (len)
			path[len] = '/';
		memcpy(path + len + !!len, de->d_name, n + 1);
		err = hide_lower(u, dirfd(d), de->d_name, path, depth);
		path[len] = '\0';
	}
	closedir(d);
	return err;
}

/* Removes name (member path path, NULL if it cannot be one) unless this
 * layer made it; in a directory this layer made or kept, hides the rest. */
static int hide_lower(struct unpack *u, int dfd, const char *name,
		      char *path, unsigned depth)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sys_error(u, "stat", name);
	if (!path || !set_has(&u->mine, path))
		return remove_tree(u, dfd, name, S_ISDIR(st.st_mode), depth);
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (depth >= MAX_DEPTH)
		return fb_errorf(-ELOOP, "%s: member %s: more than %d levels "
				 "of directories under a whiteout", u->label,
				 u->shown, MAX_DEPTH);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sys_error(u, "open", name);
	return hide_children(u, fd, path, depth + 1);
}

/* Makes room for a new entry at dfd/base: 1 if an existing directory
 * stays (want_dir; a directory entry merges with the lower one), else 0
 * with whatever was there removed. A non-directory is replaced even by
 * one of its own type: writing into an existing file would write through
 * its other hardlinks. */
static int clear_spot(struct unpack *u, int dfd, const char *base,
		      bool want_dir)
{
	struct stat st;
	int err;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sys_error(u, "stat", base);
	if (want_dir && S_ISDIR(st.st_mode))
		return 1;
	err = remove_tree(u, dfd, base, S_ISDIR(st.st_mode), 0);
	return err < 0 ? err : 0;
}

/* ---- whiteouts ----------------------------------------------------- */

/* Overlay mode: the marker's directory is made now, as overlayfs needs
 * it in this layer to hold the whiteout; the whiteout itself waits for
 * the end of the layer (store_whiteouts), when it is known whether this
 * layer has the name or an opaque directory above it. */
/* Room for one more element in a growing array (doubling, from first). */
static int grow(void **arr, size_t *cap, size_t n, size_t elem, size_t first)
{
	size_t new_cap = *cap ? *cap * 2 : first;
	void *p;

	if (n < *cap)
		return 0;
	p = reallocarray(*arr, new_cap, elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = new_cap;
	return 0;
}

static int defer_whiteout(struct unpack *u, const char *parent,
			  const char *base)
{
	bool opaque = !strcmp(base, WH_OPAQUE);
	char path[PATH_MAX];
	struct pending_wh *w;
	int dfd = open_dir(u, parent, true), err;

	if (dfd == -ENOTDIR)
		return 0; /* a non-directory of this layer hides all below */
	if (dfd < 0)
		return resolve_error(u, dfd, parent);
	close(dfd);
	err = opaque ? fb_fmt(path, sizeof(path), "%s", parent) :
		fb_fmt(path, sizeof(path), "%s%s%s", parent, *parent ? "/" : "",
		       base + strlen(WH_PREFIX));
	if (err)
		return fb_errorf(err, "%s: member %s: name too long", u->label,
				 u->shown);
	if (grow((void **)&u->wh, &u->cap_wh, u->n_wh, sizeof(*w), 32) < 0)
		return fb_errorf(-ENOMEM, "%s: out of memory", u->label);
	w = &u->wh[u->n_wh];
	w->path = strdup(path);
	w->shown = strdup(u->shown);
	w->opaque = opaque;
	if (!w->path || !w->shown) {
		free(w->path);
		free(w->shown);
		return fb_errorf(-ENOMEM, "%s: out of memory", u->label);
	}
	u->n_wh++;
	return 0;
}

/* Resolved without following any symlink: a symlink this layer put over
 * a path hides everything below it, so there is nothing to store. */
static bool gone_error(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

/* Whether the filesystem refused the overlayfs form of a whiteout, not
 * the whiteout: overlayfs refuses trusted.overlay.* xattrs (before 6.7)
 * and 0/0 devices on its own files, some filesystems have no xattrs
 * (EOPNOTSUPP, which is ENOTSUP on Linux), the trusted namespace needs
 * CAP_SYS_ADMIN and mknod CAP_MKNOD (EPERM, EACCES). */
static bool overlay_form_refused(int err)
{
	return err == EOPNOTSUPP || err == EPERM || err == EACCES;
}

/* The aufs form instead, which layercopy.c reads: an empty file name in
 * the directory dfd (".wh..wh..opq", or ".wh.NAME" beside NAME). No
 * entry of the layer can have a ".wh." name (those members are
 * whiteouts), so the file stands for nothing else. refused names the
 * call that failed with errno refused_err, for the message. */
static int make_marker(struct unpack *u, const struct pending_wh *w, int dfd,
		       const char *name, const char *refused, int refused_err)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			O_CLOEXEC, 0600);

	/* EEXIST: the archive named the same whiteout twice. */
	if (fd < 0 && errno != EEXIST)
		return fb_errorf(-errno, "%s: member %s: %s refused (%s), and "
				 "create marker %s for %s: %s", u->label,
				 w->shown, refused, strerror(refused_err),
				 name, *w->path ? w->path : ".",
				 strerror(errno));
	if (fd >= 0)
		close(fd);
	u->st->wh_markers++;
	return 0;
}

/* Marks the directory open as fd opaque: the xattr, else the marker. */
static int mark_opaque(struct unpack *u, const struct pending_wh *w, int fd)
{
	int err;

	if (fsetxattr(fd, OVL_OPAQUE_XATTR, "y", 1, 0) == 0)
		return 0;
	err = errno;
	if (!overlay_form_refused(err))
		return fb_errorf(-err, "%s: member %s: setxattr %s on %s: %s",
				 u->label, w->shown, OVL_OPAQUE_XATTR,
				 *w->path ? w->path : ".", strerror(err));
	return make_marker(u, w, fd, WH_OPAQUE, "setxattr " OVL_OPAQUE_XATTR,
			   err);
}

/* 1 if path is a directory now and made opaque, 0 if it is none. */
static int set_opaque(struct unpack *u, const struct pending_wh *w)
{
	int dfd = beneath_how(u->rootfd, w->path, RESOLVE_NO_SYMLINKS), fd;
	int err;

	if (gone_error(dfd))
		return 0;
	if (dfd < 0)
		return fb_errorf(dfd, "%s: member %s: open %s: %s", u->label,
				 w->shown, *w->path ? w->path : ".",
				 strerror(-dfd));
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return fb_errorf(-errno, "%s: member %s: open %s: %s", u->label,
				 w->shown, *w->path ? w->path : ".",
				 strerror(errno));
	err = mark_opaque(u, w, fd);
	close(fd);
	return err ? err : 1;
}

/* Stores the whiteout of base in dfd (O_PATH): a 0/0 device, else the
 * marker ".wh.<base>". */
static int make_whiteout(struct unpack *u, const struct pending_wh *w,
			 int dfd, const char *base)
{
	char marker[NAME_MAX + 1];
	int err;

	if (mknodat(dfd, base, S_IFCHR, makedev(0, 0)) == 0)
		return 0;
	err = errno;
	if (!overlay_form_refused(err))
		return fb_errorf(-err, "%s: member %s: mknod whiteout %s: %s",
				 u->label, w->shown, w->path, strerror(err));
	if (fb_fmt(marker, sizeof(marker), "%s%s", WH_PREFIX, base) < 0)
		return fb_errorf(-ENAMETOOLONG, "%s: member %s: mknod whiteout "
				 "%s refused (%s), and the name is too long "
				 "for a marker", u->label, w->shown, w->path,
				 strerror(err));
	return make_marker(u, w, dfd, marker, "mknod whiteout", err);
}

/* The whiteout's directory (O_PATH) and the name in it; *st is what is
 * there now, or st_mode 0 for nothing. -ENOENT if the directory is gone. */
static int whiteout_spot(struct unpack *u, const struct pending_wh *w,
			 char *buf, const char **base, struct stat *st)
{
	const char *parent;
	int dfd;

	snprintf(buf, PATH_MAX, "%s", w->path);
	*base = split(buf, &parent);
	dfd = beneath_how(u->rootfd, parent, RESOLVE_NO_SYMLINKS);
	if (gone_error(dfd))
		return -ENOENT;
	if (dfd < 0)
		return fb_errorf(dfd, "%s: member %s: open %s: %s", u->label,
				 w->shown, *parent ? parent : ".",
				 strerror(-dfd));
	memset(st, 0, sizeof(*st));
	if (fstatat(dfd, *base, st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno != ENOENT) {
		int err = fb_errorf(-errno, "%s: member %s: stat %s: %s",
				    u->label, w->shown, w->path,
				    strerror(errno));

		close(dfd);
		return err;
	}
	return dfd;
}

/* Whether path, or a directory above it, is in set. */
static bool under(const struct pathset *set, const char *path)
{
	size_t len = strlen(path);

	for (;;) {
		if (set->cap && set->slot[set_slot(set, path, len)])
			return true;
		if (!len)
			return false;
		while (len && path[len - 1] != '/')
			len--;
		if (len)
			len--;
	}
}

static int store_whiteouts(struct unpack *u)
{
	struct pathset opaque = { 0 };
	char buf[PATH_MAX];
	const char *base;
	struct stat st;
	int err = 0, dfd;

	/* Opaque directories first: the markers', and those this layer
	 * has where a whiteout names them (the lower one is gone, this
	 * one stands in its place). */
	for (size_t i = 0; !err && i < u->n_wh; i++) {
		const struct pending_wh *w = &u->wh[i];

		if (!w->opaque) {
			dfd = whiteout_spot(u, w, buf, &base, &st);
			if (dfd == -ENOENT)
				continue;
			if (dfd < 0) {
				err = dfd;
				break;
			}
			close(dfd);
			if (!S_ISDIR(st.st_mode))
				continue;
		}
		err = set_opaque(u, w);
		if (err > 0)
			err = set_add(&opaque, w->path, strlen(w->path)) < 0 ?
				fb_errorf(-ENOMEM, "%s: out of memory",
					  u->label) : 0;
	}
	for (size_t i = 0; !err && i < u->n_wh; i++) {
		const struct pending_wh *w = &u->wh[i];

		/* Beneath an opaque directory it would hide nothing more,
		 * and overlayfs lists a whiteout in a directory of one
		 * layer as an entry (that cannot be opened). */
		if (w->opaque || under(&opaque, w->path))
			continue;
		dfd = whiteout_spot(u, w, buf, &base, &st);
		if (dfd == -ENOENT)
			continue;
		if (dfd < 0) {
			err = dfd;
			break;
		}
		/* This layer's own entry of that name hides the lower one. */
		if (!st.st_mode)
			err = make_whiteout(u, w, dfd, base);
		close(dfd);
	}
	set_free(&opaque);
	return err;
}

static int apply_whiteout(struct unpack *u, const char *parent,
			  const char *base)
{
	char path[PATH_MAX];
	const char *name = base + strlen(WH_PREFIX);
	int dfd, fd, err;

	/* Other .wh..wh. names are aufs bookkeeping, not whiteouts. */
	if (!strncmp(base, WH_META, strlen(WH_META)) && strcmp(base, WH_OPAQUE))
		return 0;
	if (strcmp(base, WH_OPAQUE) &&
	    (!*name || !strcmp(name, ".") || !strcmp(name, "..")))
		return fb_errorf(-EINVAL, "%s: member %s whites out no name",
				 u->label, u->shown);
	u->st->whiteouts++;
	if (u->flags & FB_UNPACK_OVERLAY)
		return defer_whiteout(u, parent, base);
	/* The marker's directory is this layer's, so an opaque parent
	 * processed later must not remove it. */
	err = mark_mine(u, parent);
	if (err)
		return err;
	/* Made if missing, as overlayfs has the marker's directory in the
	 * upper layer: an opaque parent processed earlier must not make
	 * the directory vanish. */
	dfd = open_dir(u, parent, true);
	if (dfd == -ENOTDIR)
		return 0; /* nothing below to hide */
	if (dfd < 0)
		return resolve_error(u, dfd, parent);
	if (fb_fmt(path, sizeof(path), "%s", parent) < 0) {
		close(dfd);
		return fb_errorf(-ENAMETOOLONG, "%s: member %s: name too long",
				 u->label, u->shown);
	}
	if (!strcmp(base, WH_OPAQUE)) {
		fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		err = fd < 0 ? sys_error(u, "open", *parent ? parent : ".")
			     : hide_children(u, fd, path, 0);
	} else {
		size_t len = strlen(path);

		err = fb_fmt(path + len, sizeof(path) - len, "%s%s",
			     len ? "/" : "", name);
		if (err < 0)
			err = fb_errorf(err, "%s: member %s: name too long",
					u->label, u->shown);
		else
			err = hide_lower(u, dfd, name, path, 0);
	}
	close(dfd);
	return err;
}

/* ---- creating ------------------------------------------------------ */

static void entry_times(struct unpack *u, struct archive_entry *e,
			struct timespec ts[2])
{
	ts[1].tv_sec = 0;
	ts[1].tv_nsec = UTIME_OMIT;
	if (u->A->entry_mtime_is_set(e)) {
		ts[1].tv_sec = u->A->entry_mtime(e);
		ts[1].tv_nsec = u->A->entry_mtime_nsec(e);
	}
	ts[0] = ts[1];
	if (u->A->entry_atime_is_set(e)) {
		ts[0].tv_sec = u->A->entry_atime(e);
		ts[0].tv_nsec = u->A->entry_atime_nsec(e);
	}
}

static int entry_owner(struct unpack *u, struct archive_entry *e,
		       uid_t *uid, gid_t *gid)
{
	la_int64_t o = u->A->entry_uid(e), g = u->A->entry_gid(e);

	/* (uid_t)-1 would tell chown to leave the owner as it is. */
	if (o < 0 || o >= UINT32_MAX || g < 0 || g >= UINT32_MAX)
		return fb_errorf(-EINVAL, "%s: member %s: owner %lld:%lld out "
				 "of range", u->label, u->shown, (long long)o,
				 (long long)g);
	*uid = (uid_t)o;
	*gid = (gid_t)g;
	return 0;
}

/* Only what a root filesystem needs: trusted.overlay.* would change how
 * overlayfs reads the tree should it become a lower layer, and SELinux
 * labels are the host's policy, not the image's. */
static bool xattr_wanted(const char *name)
{
	return !strncmp(name, "user.", 5) ||
	       !strcmp(name, "security.capability");
}

static int set_xattrs(struct unpack *u, int fd, struct archive_entry *e)
{
	const char *name;
	const void *value;
	size_t size;

	if (u->A->entry_xattr_reset(e) == 0)
		return 0;
	while (u->A->entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (!xattr_wanted(name)) {
			u->st->skipped_xattrs++;
			continue;
		}
		if (fsetxattr(fd, name, value, size, 0) == 0)
			continue;
		/* The filesystem may not do xattrs, or this one is malformed. */
		if (errno != ENOTSUP && errno != EPERM && errno != EINVAL)
			return sys_error(u, "setxattr", name);
		u->st->skipped_xattrs++;
	}
	return 0;
}

/* Owner before mode: chown clears the setuid and setgid bits. */
static int set_owner_mode(struct unpack *u, int fd, struct archive_entry *e,
			  const char *base)
{
	uid_t uid;
	gid_t gid;
	int err = entry_owner(u, e, &uid, &gid);

	if (err)
		return err;
	if (fchown(fd, uid, gid) < 0)
		return sys_error(u, "chown", base);
	if (fchmod(fd, u->A->entry_perm(e) & 07777) < 0)
		return sys_error(u, "chmod", base);
	return set_xattrs(u, fd, e);
}

/* Writes the member's data at the offsets libarchive gives, so the holes
 * of a sparse member stay holes. */
static int copy_data(struct unpack *u, int fd, struct archive_entry *e,
		     const char *base)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r, err;

	for (;;) {
		r = u->A->read_data_block(u->a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return archive_error(u);
		err = fb_pwrite_full(fd, buf, len, (uint64_t)off, base);
		if (err < 0) {
			errno = -err;
			return sys_error(u, "write", base);
		}
		u->st->bytes += len;
	}
	if (u->A->entry_size_is_set(e) &&
	    ftruncate(fd, u->A->entry_size(e)) < 0)
		return sys_error(u, "truncate", base);
	return 0;
}

static int make_file(struct unpack *u, struct archive_entry *e, int dfd,
		     const char *base)
{
	struct timespec ts[2];
	int fd, err = clear_spot(u, dfd, base, false);

	if (err)
		return err;
	fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return sys_error(u, "create", base);
	err = copy_data(u, fd, e, base);
	if (!err)
		err = set_owner_mode(u, fd, e, base);
	entry_times(u, e, ts);
	if (!err && futimens(fd, ts) < 0)
		err = sys_error(u, "futimens", base);
	if (close(fd) < 0 && !err)
		err = sys_error(u, "close", base);
	return err;
}

static int remember_dir_time(struct unpack *u, struct archive_entry *e)
{
	struct dirtime *d;

	if (grow((void **)&u->dirs, &u->cap_dirs, u->n_dirs, sizeof(*d),
		 64) < 0)
		return fb_errorf(-ENOMEM, "%s: out of memory", u->label);
	d = &u->dirs[u->n_dirs];
	d->path = strdup(u->path);
	if (!d->path)
		return fb_errorf(-ENOMEM, "%s: out of memory", u->label);
	entry_times(u, e, d->ts);
	u->n_dirs++;
	return 0;
}

static int make_dir(struct unpack *u, struct archive_entry *e, int dfd,
		    const char *base)
{
	int fd, err, kept = clear_spot(u, dfd, base, true);

	if (kept < 0)
		return kept;
	if (!kept && mkdirat(dfd, base, 0700) < 0)
		return sys_error(u, "mkdir", base);
	fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sys_error(u, "open", base);
	err = set_owner_mode(u, fd, e, base);
	close(fd);
	return err ? err : remember_dir_time(u, e);
}

/* Owner and times of something we cannot open: a symlink or a node. */
static int set_meta_at(struct unpack *u, struct archive_entry *e, int dfd,
		       const char *base, bool chmod_too)
{
	struct timespec ts[2];
	uid_t uid;
	gid_t gid;
	int err = entry_owner(u, e, &uid, &gid);

	if (err)
		return err;
	if (fchownat(dfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return sys_error(u, "chown", base);
	/* Only for nodes we just made, never symlinks: fchmodat follows. */
	if (chmod_too &&
	    fchmodat(dfd, base, u->A->entry_perm(e) & 07777, 0) < 0)
		return sys_error(u, "chmod", base);
	entry_times(u, e, ts);
	if (utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return sys_error(u, "utimensat", base);
	return 0;
}

static int make_symlink(struct unpack *u, struct archive_entry *e, int dfd,
			const char *base)
{
	const char *target = entry_symlink(u, e);
	int err;

	if (!target)
		return fb_errorf(-EINVAL, "%s: member %s: unreadable symlink "
				 "target", u->label, u->shown);
	err = clear_spot(u, dfd, base, false);
	if (err)
		return err;
	if (symlinkat(target, dfd, base) < 0)
		return sys_error(u, "symlink", base);
	return set_meta_at(u, e, dfd, base, false);
}

static int make_node(struct unpack *u, struct archive_entry *e, int dfd,
		     const char *base)
{
	mode_t type = u->A->entry_filetype(e);
	dev_t dev = makedev(u->A->entry_rdevmajor(e),
			    u->A->entry_rdevminor(e));
	int err = clear_spot(u, dfd, base, false);

	if (err)
		return err;
	if ((u->flags & FB_UNPACK_OVERLAY) && type == AE_IFCHR && dev == 0) {
		u->st->skipped_devices++;
		return 0;
	}
	if (mknodat(dfd, base, type | 0600, type == AE_IFIFO ? 0 : dev) < 0) {
		/* Without CAP_MKNOD (a user namespace, a container): the
		 * image still runs, it just misses the node. */
		if (errno == EPERM) {
			u->st->skipped_devices++;
			return 0;
		}
		return sys_error(u, "mknod", base);
	}
	return set_meta_at(u, e, dfd, base, true);
}

static int make_hardlink(struct unpack *u, const char *link, int dfd,
			 const char *base)
{
	char target[PATH_MAX], shown[SHOWN_MAX];
	const char *tparent, *tbase;
	int tfd, err;

	show(link, shown, sizeof(shown));
	err = clean_name(link, target, sizeof(target));
	if (err == -ENAMETOOLONG)
		return fb_errorf(err, "%s: member %s: link target too long",
				 u->label, u->shown);
	if (err || !target[0])
		return fb_errorf(-EINVAL, "%s: member %s links to %s, outside "
				 "the root", u->label, u->shown, shown);
	if (!strcmp(target, u->path))
		return 0;
	tbase = split(target, &tparent);
	tfd = open_dir(u, tparent, false);
	if (tfd == -EXDEV)
		return fb_errorf(tfd, "%s: member %s links to %s, outside the "
				 "root (through a symlink)", u->label,
				 u->shown, shown);
	if (tfd < 0)
		return fb_errorf(tfd, "%s: member %s links to %s: %s", u->label,
				 u->shown, shown, strerror(-tfd));
	err = clear_spot(u, dfd, base, false);
	/* Flags 0: a symlink target is linked itself, never followed. */
	if (!err && linkat(tfd, tbase, dfd, base, 0) < 0)
		err = fb_errorf(-errno, "%s: member %s links to %s: %s",
				u->label, u->shown, shown, strerror(errno));
	close(tfd);
	return err;
}

static int create_entry(struct unpack *u, struct archive_entry *e, int dfd,
			const char *base)
{
	const char *link = entry_hardlink(u, e);

	if (link)
		return make_hardlink(u, link, dfd, base);
	switch (u->A->entry_filetype(e)) {
	case AE_IFREG:
		return make_file(u, e, dfd, base);
	case AE_IFDIR:
		return make_dir(u, e, dfd, base);
	case AE_IFLNK:
		return make_symlink(u, e, dfd, base);
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		return make_node(u, e, dfd, base);
	default:
		return fb_errorf(-EINVAL, "%s: member %s has file type 0%o, "
				 "which a layer cannot hold", u->label,
				 u->shown, (unsigned)u->A->entry_filetype(e));
	}
}

static int apply_entry(struct unpack *u, struct archive_entry *e)
{
	const char *raw = entry_name(u, e), *base, *slash;
	char parent[PATH_MAX];
	int dfd, err;

	if (!raw)
		return fb_errorf(-EINVAL, "%s: a member's name cannot be "
				 "decoded", u->label);
	show(raw, u->shown, sizeof(u->shown));
	err = clean_name(raw, u->path, sizeof(u->path));
	if (err == -EINVAL)
		return fb_errorf(err, "%s: member %s is an absolute path",
				 u->label, u->shown);
	if (err == -EXDEV)
		return fb_errorf(-EINVAL, "%s: member %s climbs out of the "
				 "root", u->label, u->shown);
	if (err)
		return fb_errorf(err, "%s: member %s: name too long", u->label,
				 u->shown);
	if (!u->path[0]) {
		/* "./": the root is the caller's, its metadata stays. */
		if (u->A->entry_filetype(e) == AE_IFDIR &&
		    !entry_hardlink(u, e))
			return 0;
		return fb_errorf(-EINVAL, "%s: member %s would replace the "
				 "root", u->label, u->shown);
	}
	slash = strrchr(u->path, '/');
	base = slash ? slash + 1 : u->path;
	memcpy(parent, u->path, (size_t)(base - u->path));
	parent[slash ? slash - u->path : 0] = '\0';
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return apply_whiteout(u, parent, base);
	/* In a layer of its own nothing is lower: no whiteout looks. */
	err = (u->flags & FB_UNPACK_OVERLAY) ? 0 : mark_mine(u, u->path);
	if (err)
		return err;
	dfd = open_dir(u, parent, true);
	if (dfd < 0)
		return resolve_error(u, dfd, parent);
	err = create_entry(u, e, dfd, base);
	close(dfd);
	return err;
}

/* Best effort: a directory may be gone or replaced by now. */
static void apply_dir_times(struct unpack *u)
{
	for (size_t i = 0; i < u->n_dirs; i++) {
		const char *parent, *base = split(u->dirs[i].path, &parent);
		int dfd = beneath(u->rootfd, parent);

		if (dfd < 0)
			continue;
		utimensat(dfd, base, u->dirs[i].ts, AT_SYMLINK_NOFOLLOW);
		close(dfd);
	}
}

static int unpack_all(struct unpack *u)
{
	struct archive_entry *e;
	la_int64_t end = 0;
	int r, err;

	for (;;) {
		r = u->A->read_next_header(u->a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return archive_error(u);
		u->st->entries++;
		err = apply_entry(u, e);
		if (err)
			return err;
		if (u->A->read_data_skip(u->a) < ARCHIVE_WARN)
			return archive_error(u);
		end = u->A->filter_bytes(u->a, 0);
	}
	/* libarchive takes an end of input right after a member for the end
	 * of the archive; a tar cut there lacks the zero blocks every tar
	 * writer puts last, and would unpack as a silent partial layer. */
	if (u->A->filter_bytes(u->a, 0) - end < TAR_BLOCK)
		return fb_errorf(-EIO, "%s: truncated archive (no end-of-archive "
				 "marker)", u->label);
	return 0;
}

int fb_unpack_layer_flags(int rootfd, int layer_fd, const char *label,
			  unsigned flags, struct fb_unpack_stats *st)
{
	struct fb_unpack_stats scratch = { 0 };
	struct unpack *u = calloc(1, sizeof(*u));
	int err;

	if (!u)
		return fb_errorf(-ENOMEM, "%s: out of memory", label);
	u->rootfd = rootfd;
	u->flags = flags;
	u->label = label;
	u->st = st ? st : &scratch;
	u->A = fb_archive();
	if (!u->A) {
		err = -ELIBACC;
		goto out;
	}
	u->a = fb_archive_reader(u->A, false);
	if (!u->a) {
		err = fb_errorf(-ENOMEM, "%s: archive_read_new failed", label);
		goto out;
	}
	if (u->A->read_open_fd(u->a, layer_fd, READ_BLOCK) != ARCHIVE_OK) {
		err = archive_error(u);
		goto out;
	}
	err = unpack_all(u);
	/* Before the times: a whiteout made in a directory changes its. */
	if (!err && (flags & FB_UNPACK_OVERLAY))
		err = store_whiteouts(u);
	if (!err)
		apply_dir_times(u);
out:
	if (u->a)
		u->A->read_free(u->a);
	set_free(&u->mine);
	for (size_t i = 0; i < u->n_dirs; i++)
		free(u->dirs[i].path);
	free(u->dirs);
	for (size_t i = 0; i < u->n_wh; i++) {
		free(u->wh[i].path);
		free(u->wh[i].shown);
	}
	free(u->wh);
	free(u);
	return err;
}

int fb_unpack_layer(int rootfd, int layer_fd, const char *label,
		    struct fb_unpack_stats *st)
{
	return fb_unpack_layer_flags(rootfd, layer_fd, label, 0, st);
}

int fb_unpack_layer_path(int rootfd, const char *path,
			 struct fb_unpack_stats *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	err = fb_unpack_layer(rootfd, fd, path, st);
	close(fd);
	return err;
}
