#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/boxdir.h"
#include "forkbox/forkbox.h"
#include "util/error.h"

int fb_box_new_id(char id[FB_BOX_ID_LEN + 1])
{
	unsigned char raw[FB_BOX_ID_LEN / 2];

	/* Ids need to be unique, not secret: never wait for the CRNG. */
	if (getrandom(raw, sizeof(raw), GRND_INSECURE) != (ssize_t)sizeof(raw) &&
	    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return fb_errorf(-errno, "getrandom: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int err = -errno;

			*p = '/';
			return fb_errorf(err, "mkdir %s: %s", path,
					 strerror(-err));
		}
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return fb_errorf(-errno, "mkdir %s: %s", path, strerror(errno));
	return 0;
}

int fb_box_dir_create(const char *id, char *buf, size_t len)
{
	char home[PATH_MAX];
	int n, err = fb_home_dir(home, sizeof(home));

	if (err < 0)
		return err;
	n = snprintf(buf, len, "%s/boxes/%s", home, id);
	if (n < 0 || (size_t)n >= len)
		return fb_errorf(-ENAMETOOLONG, "box directory path too long");
	return mkdir_p(buf);
}

/* Empties the directory open as fd, subdirectories (disk/) included.
 * Opened with O_NOFOLLOW beneath their parent's fd, so a symlink the
 * box's VMM left there is removed, never followed. */
static int empty_dir(int fd, const char *path)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	int err = 0;

	if (!d) {
		close(fd);
		return fb_errorf(-errno, "opendir %s: %s", path,
				 strerror(errno));
	}
	while (!err && (e = readdir(d))) {
		int sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		if (errno != EISDIR) {
			err = fb_errorf(-errno, "unlink %s/%s: %s", path,
					e->d_name, strerror(errno));
			break;
		}
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY |
			     O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			err = fb_errorf(-errno, "open %s/%s: %s", path,
					e->d_name, strerror(errno));
		if (!err)
			err = empty_dir(sub, e->d_name);
		if (!err && unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
			err = fb_errorf(-errno, "rmdir %s/%s: %s", path,
					e->d_name, strerror(errno));
	}
	closedir(d);
	return err;
}

int fb_box_dir_remove(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int err;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", dir, strerror(errno));
	err = empty_dir(fd, dir);
	if (!err && rmdir(dir) < 0)
		err = fb_errorf(-errno, "rmdir %s: %s", dir, strerror(errno));
	return err;
}
