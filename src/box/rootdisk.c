#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/rootdisk.h"
#include "disk/layer.h"
#include "image/store.h"
#include "jail/jail.h"
#include "util/error.h"
#include "util/file.h"

/* 1 if made, 0 if the filesystem cannot share blocks, or an error. */
static int try_reflink(int dirfd, const struct fb_image *img)
{
	int src = open(img->path, O_RDONLY | O_CLOEXEC), dst, err = 0;

	if (src < 0)
		return fb_errorf(-errno, "open %s: %s", img->path,
				 strerror(errno));
	dst = openat(dirfd, FB_BOX_ROOT_RAW, O_WRONLY | O_CREAT | O_EXCL |
		     O_CLOEXEC, 0600);
	if (dst < 0) {
		err = fb_errorf(-errno, "create %s: %s", FB_BOX_ROOT_RAW,
				strerror(errno));
	} else if (ioctl(dst, FICLONE, src) == 0) {
		err = fsync(dst) < 0 ? fb_errorf(-errno, "fsync %s: %s",
			FB_BOX_ROOT_RAW, strerror(errno)) : 1;
	} else if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL &&
		   errno != ENOTTY && errno != ENOSYS) {
		err = fb_errorf(-errno, "FICLONE %s: %s", img->path,
				strerror(errno));
	}
	if (dst >= 0)
		close(dst);
	if (err <= 0)
		unlinkat(dirfd, FB_BOX_ROOT_RAW, 0);
	close(src);
	return err;
}

/* An empty layer over the image file, which the chain finds by name in
 * the image store (a link into the box would be cheaper to keep, but on
 * an overlayfs, as in the lab, a link copies the whole file up). */
static int make_layer(int dirfd, const struct fb_image *img)
{
	struct fb_layer_parent parent = { .kind = FB_LAYER_PARENT_RAW,
					  .size = img->size };

	snprintf(parent.name, sizeof(parent.name), "%s", img->blob);
	return fb_layer_create(dirfd, FB_BOX_ROOT_LAYER, img->size, 0, &parent,
			       NULL);
}

int fb_box_disk_dir_create(const char *box_dir, char *path, size_t len,
			   int *dirfd)
{
	const char *id = strrchr(box_dir, '/') ? strrchr(box_dir, '/') + 1 :
			 box_dir;
	uid_t uid = fb_jail_box_uid(id);
	int err = fb_fmt(path, len, "%s/" FB_BOX_DISK_DIR, box_dir);

	if (err)
		return err;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return fb_errorf(-errno, "mkdir %s: %s", path, strerror(errno));
	/* The jailed VMM makes the new top layers of its freezes here. */
	if (chown(path, uid, uid) < 0)
		return fb_errorf(-errno, "chown %s: %s", path, strerror(errno));
	*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	return 0;
}

int fb_box_root_disk_create(const char *box_dir, const struct fb_image *img,
			    bool *reflinked)
{
	char path[PATH_MAX];
	int dirfd, err;

	err = fb_box_disk_dir_create(box_dir, path, sizeof(path), &dirfd);
	if (err)
		return err;
	err = try_reflink(dirfd, img);
	*reflinked = err == 1;
	if (err == 0)
		err = make_layer(dirfd, img);
	close(dirfd);
	return err < 0 ? err : 0;
}

/* The top's name: root.top once a freeze moved it on, else root.fbl. */
static int top_name(int dirfd, char *name, size_t len)
{
	int fd = openat(dirfd, FB_BOX_ROOT_TOP, O_RDONLY | O_NOFOLLOW |
			O_CLOEXEC);
	ssize_t n;

	if (fd < 0 && errno == ENOENT) {
		snprintf(name, len, "%s", FB_BOX_ROOT_LAYER);
		return 0;
	}
	if (fd < 0)
		return fb_errorf(-errno, "open " FB_BOX_ROOT_TOP ": %s",
				 strerror(errno));
	n = read(fd, name, len - 1);
	close(fd);
	if (n <= 0)
		return fb_errorf(-EINVAL, FB_BOX_ROOT_TOP " is empty");
	name[n] = '\0';
	name[strcspn(name, "\n")] = '\0';
	return fb_layer_name_ok(name);
}

static int open_root(int dirfd, struct fb_disk **out)
{
	char blobs[PATH_MAX], top[FB_LAYER_NAME_MAX + 2];
	int dirs[2] = { dirfd, -1 }, err;

	int fd = openat(dirfd, FB_BOX_ROOT_RAW, O_RDWR | O_CLOEXEC |
			O_NOFOLLOW);

	if (fd >= 0)
		return fb_disk_open_raw(fd, false, "forkbox-root", out);
	if (errno != ENOENT)
		return fb_errorf(-errno, "open %s: %s", FB_BOX_ROOT_RAW,
				 strerror(errno));
	err = top_name(dirfd, top, sizeof(top));
	if (err)
		return err;
	if (faccessat(dirfd, top, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	err = fb_image_blob_dir(blobs, sizeof(blobs));
	if (err < 0)
		return err;
	dirs[1] = open(blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirs[1] < 0)
		return fb_errorf(-errno, "open %s: %s", blobs, strerror(errno));
	err = fb_disk_open_chain(dirs, 2, top, false, "forkbox-root", out);
	close(dirs[1]);
	return err;
}

int fb_box_open_disks(const char *box_dir, const struct fb_box_spec *spec,
		      struct fb_disk **disks, unsigned *nr, int *root_dirfd)
{
	char path[PATH_MAX];
	int dirfd, err = 0;

	*nr = 0;
	*root_dirfd = -1;
	if (fb_fmt(path, sizeof(path), "%s/" FB_BOX_DISK_DIR, box_dir) < 0)
		return -ENAMETOOLONG;
	disks[0] = NULL;
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd >= 0) {
		err = open_root(dirfd, &disks[0]);
		if (err < 0 || !disks[0]) {
			close(dirfd);
			if (err < 0)
				return err;
		} else {
			*root_dirfd = dirfd;
			*nr = 1;
		}
	}
	for (unsigned i = 0; i < spec->nr_disks; i++) {
		const struct fb_box_disk *bd = &spec->disks[i];
		char serial[21];
		int fd;

		if (*nr >= FB_VM_MAX_DISKS) {
			err = fb_errorf(-EINVAL, "too many disks (%u at most)",
					FB_VM_MAX_DISKS);
			break;
		}
		fd = open(bd->path, (bd->read_only ? O_RDONLY : O_RDWR) |
			  O_CLOEXEC);
		if (fd < 0) {
			err = fb_errorf(-errno, "--disk %s: %s", bd->path,
					strerror(errno));
			break;
		}
		snprintf(serial, sizeof(serial), "forkbox-extra-%c",
			 (char)('0' + i % 10));
		err = fb_disk_open_raw(fd, bd->read_only, serial, &disks[*nr]);
		if (err < 0) {
			char why[256];

			snprintf(why, sizeof(why), "%s", fb_last_error());
			err = fb_errorf(err, "--disk %s: %s", bd->path, why);
			break;
		}
		(*nr)++;
	}
	if (err < 0) {
		for (unsigned i = 0; i < *nr; i++)
			fb_disk_close(disks[i]);
		*nr = 0;
		if (*root_dirfd >= 0)
			close(*root_dirfd);
		*root_dirfd = -1;
	}
	return err;
}

int fb_box_new_top_name(char *buf, size_t len)
{
	uint8_t r[8];

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return fb_errorf(-EIO, "getrandom failed");
	return fb_fmt(buf, len, "root-%02x%02x%02x%02x%02x%02x%02x%02x.fbl",
		      r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* Through the directory fd: in the jail the box's paths are not ours. */
int fb_box_write_top(int dirfd, const char *name)
{
	char line[FB_LAYER_NAME_MAX + 2];
	int fd, err = 0;

	snprintf(line, sizeof(line), "%s\n", name);
	fd = openat(dirfd, FB_BOX_ROOT_TOP ".tmp", O_WRONLY | O_CREAT |
		    O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fb_errorf(-errno, "create " FB_BOX_ROOT_TOP ": %s",
				 strerror(errno));
	err = fb_write_full(fd, line, strlen(line));
	if (!err && fsync(fd) < 0)
		err = fb_errorf(-errno, "fsync " FB_BOX_ROOT_TOP ": %s",
				strerror(errno));
	close(fd);
	if (!err && renameat(dirfd, FB_BOX_ROOT_TOP ".tmp", dirfd,
			     FB_BOX_ROOT_TOP) < 0)
		err = fb_errorf(-errno, "rename " FB_BOX_ROOT_TOP ": %s",
				strerror(errno));
	return err;
}
