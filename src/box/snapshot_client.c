/* The host side of `forkbox snapshot`: the VMM (in its jail) can write
 * only inside its box directory, so the snapshot is made there, in a
 * directory we create for it, and then moved to where the user asked:
 * renamed where it can be, else copied (util/copy.c: reflinked where it
 * can be, the memory file kept sparse)
 * into a temporary directory beside the target and renamed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/box.h"
#include "box/control.h"
#include "box/rootdisk.h"
#include "util/copy.h"
#include "snapshot/format.h"
#include "util/error.h"

#define SNAPSHOT_TIMEOUT_MS 300000

/* The VMM's uid and gid, so that it may write the directory we made. */
static void vmm_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
	char path[64], line[256];
	FILE *f;

	*uid = 0;
	*gid = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned v;

		if (sscanf(line, "Uid: %u", &v) == 1)
			*uid = v;
		else if (sscanf(line, "Gid: %u", &v) == 1)
			*gid = v;
	}
	fclose(f);
}

static int copy_dir(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *e;
	int err = 0;

	if (!d)
		return fb_errorf(-errno, "opendir %s: %s", from,
				 strerror(errno));
	while (!err && (e = readdir(d))) {
		int src, dst;

		if (e->d_name[0] == '.')
			continue;
		src = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
		dst = -1;
		if (src >= 0) {
			char path[PATH_MAX + 256];

			snprintf(path, sizeof(path), "%s/%s", to, e->d_name);
			dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				   0600);
		}
		if (src < 0 || dst < 0)
			err = fb_errorf(-errno, "copy %s/%s: %s", from,
					e->d_name, strerror(errno));
		else
			err = fb_copy_fd_cow(src, dst, NULL);
		if (!err && fsync(dst) < 0)
			err = fb_errorf(-errno, "fsync %s: %s", e->d_name,
					strerror(errno));
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
	}
	closedir(d);
	return err;
}

static int move_into_place(const char *tmp, const char *final)
{
	char *tmp2 = NULL;
	int err = fb_snap_dir_commit(tmp, final, 0);

	if (err != -EXDEV)
		return err;
	err = fb_snap_dir_begin(final, &tmp2);
	if (!err)
		err = copy_dir(tmp, tmp2);
	if (!err)
		err = fb_snap_dir_commit(tmp2, final, 0);
	if (err < 0 && tmp2)
		fb_snap_dir_abort(tmp2);
	free(tmp2);
	if (!err)
		fb_snap_remove_tree(tmp);
	return err;
}

int fb_box_snapshot(const struct fb_box_info *info, const char *final,
		    bool diff, char *detail, size_t detail_len)
{
	char tmp[PATH_MAX], req[2 * PATH_MAX + 32];
	const char *disk;
	struct stat st;
	uid_t uid;
	gid_t gid;
	int err;

	if (final[0] != '/')
		return fb_errorf(-EINVAL, "snapshot directory must be an "
				 "absolute path");
	if (lstat(final, &st) == 0)
		return fb_errorf(-EEXIST, "%s exists already", final);
	err = fb_fmt(tmp, sizeof(tmp), "%s/snapshot.tmp-XXXXXX", info->dir);
	if (err < 0)
		return err;
	if (!mkdtemp(tmp))
		return fb_errorf(-errno, "mkdtemp in %s: %s", info->dir,
				 strerror(errno));
	vmm_ids(info->pid, &uid, &gid);
	if ((uid || gid) && chown(tmp, uid, gid) < 0) {
		err = fb_errorf(-errno, "chown %s: %s", tmp, strerror(errno));
		goto fail;
	}
	err = fb_fmt(req, sizeof(req), "snapshot %s %s%s", tmp, final,
		     diff ? " diff" : "");
	if (!err)
		err = fb_box_control_call(info->dir, req, detail, detail_len,
					  SNAPSHOT_TIMEOUT_MS);
	/* The root disk as the memory knows it, frozen by the VMM in its
	 * pause, and the image defaults that go with it. */
	if (!err && (disk = strstr(detail, " disk="))) {
		char frozen[128];

		snprintf(frozen, sizeof(frozen), "%.*s",
			 (int)strcspn(disk + 6, " \n"), disk + 6);
		err = fb_disk_seal_frozen(info->dir, frozen);
		if (!err)
			err = fb_disk_snapshot_copy(info->dir, frozen, tmp);
		if (!err)
			err = fb_box_copy_image_config(info->dir, tmp);
	}
	if (!err)
		err = move_into_place(tmp, final);
	if (!err)
		return 0;
fail:
	fb_snap_remove_tree(tmp);
	return err;
}
