#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/boxio.h"
#include "util/error.h"

int fb_box_exec(const char *uds, const struct fb_agent_exec_req *req,
		int stdin_fd, int stdout_fd, int stderr_fd, int *status)
{
	int fd = fb_agent_dial(uds, FB_AGENT_PORT, FB_BOX_DIAL_TIMEOUT_MS,
			       NULL);
	int err;

	if (fd < 0)
		return fd;
	err = fb_agent_exec(fd, req, stdin_fd, stdout_fd, stderr_fd, status);
	close(fd);
	return err;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int fb_box_copy_in(const char *uds, const char *host_path,
		   const char *guest_path)
{
	char target[PATH_MAX];
	struct fb_agent_stat gst;
	struct stat st;
	int src, fd, err;

	src = open(host_path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return fb_errorf(-errno, "open %s: %s", host_path,
				 strerror(errno));
	if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(src);
		return fb_errorf(-EINVAL, "%s is not a regular file",
				 host_path);
	}
	fd = fb_agent_dial(uds, FB_AGENT_PORT, FB_BOX_DIAL_TIMEOUT_MS, NULL);
	if (fd < 0) {
		close(src);
		return fd;
	}
	err = fb_fmt(target, sizeof(target), "%s", guest_path);
	if (!err && guest_path[strlen(guest_path) - 1] != '/' &&
	    fb_agent_stat(fd, guest_path, &gst, FB_BOX_DIAL_TIMEOUT_MS) == 0 &&
	    gst.type == FB_AGENT_FT_DIR)
		err = fb_fmt(target, sizeof(target), "%s/%s", guest_path,
			     base_name(host_path));
	else if (!err && guest_path[strlen(guest_path) - 1] == '/')
		err = fb_fmt(target, sizeof(target), "%s%s", guest_path,
			     base_name(host_path));
	close(fd);
	/* The stat used up that connection: one request per connection. */
	if (!err) {
		fd = fb_agent_dial(uds, FB_AGENT_PORT, FB_BOX_DIAL_TIMEOUT_MS,
				   NULL);
		err = fd < 0 ? fd : fb_agent_write_file(fd, target,
				st.st_mode & 07777, src, NULL, 0);
		if (fd >= 0)
			close(fd);
	}
	close(src);
	return err;
}

int fb_box_copy_out(const char *uds, const char *guest_path,
		    const char *host_path)
{
	char target[PATH_MAX], tmp[PATH_MAX + 32];
	struct stat st;
	int dst, fd, err;

	err = fb_fmt(target, sizeof(target), "%s", host_path);
	if (!err && stat(host_path, &st) == 0 && S_ISDIR(st.st_mode))
		err = fb_fmt(target, sizeof(target), "%s/%s", host_path,
			     base_name(guest_path));
	if (!err)
		err = fb_fmt(tmp, sizeof(tmp), "%s.forkbox-tmp.%d", target,
			     (int)getpid());
	if (err < 0)
		return err;
	fd = fb_agent_dial(uds, FB_AGENT_PORT, FB_BOX_DIAL_TIMEOUT_MS, NULL);
	if (fd < 0)
		return fd;
	dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (dst < 0) {
		err = fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
		close(fd);
		return err;
	}
	err = fb_agent_read_file(fd, guest_path, dst, 0);
	close(fd);
	if (!err && fsync(dst) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", tmp, strerror(errno));
	close(dst);
	if (!err && rename(tmp, target) < 0)
		err = fb_errorf(-errno, "rename to %s: %s", target,
				strerror(errno));
	if (err < 0)
		unlink(tmp);
	return err;
}
