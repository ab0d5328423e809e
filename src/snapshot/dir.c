/* Snapshot directories appear whole or not at all: built under a
 * temporary name next to the final one, every file fsynced, renamed into
 * place, the parent directory fsynced. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/format.h"
#include "snapshot/snap_util.h"
#include "util/error.h"

int fb_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, err = 0;

	if (fb_fmt(dir, sizeof(dir), "%s", path) < 0)
		return -ENAMETOOLONG;
	/* "a/b/" names b: drop trailing slashes first. */
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", dir, strerror(errno));
	if (fsync(fd) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return err;
}

int fb_snap_dir_begin(const char *final_path, char **tmp)
{
	char buf[PATH_MAX];
	size_t n = strlen(final_path);
	int err;

	*tmp = NULL;
	while (n > 1 && final_path[n - 1] == '/')
		n--;
	err = fb_fmt(buf, sizeof(buf), "%.*s.tmp-XXXXXX", (int)n, final_path);
	if (err < 0)
		return err;
	if (!mkdtemp(buf))
		return fb_errorf(-errno, "mkdtemp %s: %s", buf,
				 strerror(errno));
	*tmp = strdup(buf);
	if (!*tmp) {
		rmdir(buf);
		return fb_errorf(-ENOMEM, "snapshot dir: out of memory");
	}
	return 0;
}

/* fsync every regular file in a directory, then the directory. */
static int fsync_dir_files(const char *path)
{
	struct dirent *de;
	DIR *d;
	int dfd, err = 0;

	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	d = fdopendir(dfd);
	if (!d) {
		err = fb_errorf(-errno, "opendir %s: %s", path,
				strerror(errno));
		close(dfd);
		return err;
	}
	while (!err && (errno = 0, de = readdir(d))) {
		int fd;

		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ELOOP || errno == EISDIR)
				continue;
			err = fb_errorf(-errno, "open %s/%s: %s", path,
					de->d_name, strerror(errno));
			break;
		}
		if (fsync(fd) < 0)
			err = fb_errorf(-errno, "fsync %s/%s: %s", path,
					de->d_name, strerror(errno));
		close(fd);
	}
	if (!err && errno)
		err = fb_errorf(-errno, "readdir %s: %s", path,
				strerror(errno));
	if (!err && fsync(dfd) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", path, strerror(errno));
	closedir(d);
	return err;
}

static int remove_at(int parent, const char *name, const char *shown)
{
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return fb_errorf(-errno, "unlink %s: %s", shown,
				 strerror(errno));
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
		    O_NOFOLLOW);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", shown, strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return fb_errorf(-errno, "opendir %s: %s", shown,
				 strerror(errno));
	}
	while (!err && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		err = remove_at(dirfd(d), de->d_name, shown);
	}
	closedir(d);
	if (!err && unlinkat(parent, name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		err = fb_errorf(-errno, "rmdir %s: %s", shown, strerror(errno));
	return err;
}

int fb_snap_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path, path);
}

int fb_snap_dir_abort(const char *tmp)
{
	return fb_snap_remove_tree(tmp);
}

int fb_snap_dir_commit(const char *tmp, const char *final_path,
		       unsigned flags)
{
	struct stat st;
	int err;

	err = fsync_dir_files(tmp);
	if (err)
		return err;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final_path,
		      RENAME_NOREPLACE) == 0)
		return fb_fsync_parent(final_path);
	err = -errno;
	if (err == -EINVAL) {
		/* A filesystem without RENAME_NOREPLACE: check, then rename
		 * (a directory never replaces a non-empty one anyway). */
		if (lstat(final_path, &st) == 0) {
			err = -EEXIST;
		} else if (rename(tmp, final_path) == 0) {
			return fb_fsync_parent(final_path);
		} else {
			err = -errno;
		}
	}
	if (err != -EEXIST)
		return fb_errorf(err, "rename %s to %s: %s", tmp, final_path,
				 strerror(-err));
	if (!(flags & FB_SNAP_DIR_REPLACE))
		return fb_errorf(-EEXIST, "snapshot %s already exists: not "
				 "overwritten", final_path);
	/* Swap the two atomically, then remove the old one (now at tmp). */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final_path,
		      RENAME_EXCHANGE) < 0)
		return fb_errorf(-errno, "exchange %s with %s: %s", tmp,
				 final_path, strerror(errno));
	err = fb_fsync_parent(final_path);
	if (err)
		return err;
	return fb_snap_remove_tree(tmp);
}
