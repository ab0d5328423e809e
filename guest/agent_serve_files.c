/* FILE_WRITE, FILE_READ, STAT and LIST.
 *
 * A write lands in a temporary file in the target's directory, is fsynced
 * and renamed over the target, and the directory is fsynced: a reader sees
 * the old file or the whole new one, never a part, and a crash leaves at
 * worst a stray ".NAME.fbtmp-*" file, never a torn target. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define TMP_BASE_MAX 200   /* of the name in a temp name: stays < NAME_MAX */
#define TMP_TRIES 100

static uint32_t file_type(mode_t m)
{
	if (S_ISREG(m))
		return FB_AGENT_FT_REG;
	if (S_ISDIR(m))
		return FB_AGENT_FT_DIR;
	if (S_ISLNK(m))
		return FB_AGENT_FT_LNK;
	return FB_AGENT_FT_OTHER;
}

static uint64_t mtime_ns(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000u +
	       (uint64_t)st->st_mtim.tv_nsec;
}

/* After an ERROR mid-stream: swallow the host's remaining data so it is
 * not cut off mid-send; a client that saw the ERROR closes, which ends
 * this too. */
static void discard_until_end(int fd)
{
	struct fbg_msg m;

	while (fbg_recv(fd, &m, FB_AGENT_MAX_PAYLOAD) == 0) {
		uint32_t type = m.type;

		fbg_msg_free(&m);
		if (type == FB_AGENT_END)
			return;
	}
}

static int open_temp(const char *dir, const char *base, char *tmp, size_t size)
{
	static unsigned counter;
	int i, fd;

	for (i = 0; i < TMP_TRIES; i++) {
		snprintf(tmp, size, "%s/.%.*s.fbtmp-%d-%u", dir, TMP_BASE_MAX, base,
			 (int)getpid(), counter++);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			  0600);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* Receives the data into tmp_fd; 0, or the errno of a reply it sent. */
static int receive_data(int fd, int tmp_fd, uint64_t size, uint64_t *total)
{
	struct fbg_msg m;
	int err;

	for (;;) {
		err = fbg_recv(fd, &m, FB_AGENT_MAX_PAYLOAD);
		if (err == -EMSGSIZE) {
			fbg_send_error(fd, EMSGSIZE, "file write: message over "
				       "the cap");
			return -EMSGSIZE;
		}
		if (err)
			return err; /* the host went away: nobody to tell */
		if (m.type == FB_AGENT_END) {
			fbg_msg_free(&m);
			break;
		}
		if (m.type != FB_AGENT_DATA) {
			fbg_msg_free(&m);
			fbg_send_error(fd, EPROTO, "file write: expected DATA or END");
			return -EPROTO;
		}
		if (size != UINT64_MAX && m.len > size - *total) {
			fbg_msg_free(&m);
			fbg_send_error(fd, EFBIG, "file write: more data than the "
				       "%llu bytes announced",
				       (unsigned long long)size);
			discard_until_end(fd);
			return -EFBIG;
		}
		err = fbg_write_all(tmp_fd, m.data, m.len);
		*total += m.len;
		fbg_msg_free(&m);
		if (err) {
			fbg_send_error(fd, -err, "file write: %s", strerror(-err));
			discard_until_end(fd);
			return err;
		}
	}
	if (size != UINT64_MAX && *total != size) {
		fbg_send_error(fd, EINVAL, "file write: got %llu bytes of the "
			       "%llu announced", (unsigned long long)*total,
			       (unsigned long long)size);
		return -EINVAL;
	}
	return 0;
}

int fbg_serve_file_write(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1], dir[FB_AGENT_MAX_PATH + 1];
	char tmp[FB_AGENT_MAX_PATH + TMP_BASE_MAX + 64];
	struct fb_agent_dec d;
	struct stat st;
	uint64_t size, total = 0;
	uint32_t mode;
	const char *base;
	char *slash;
	int tmp_fd, err;

	fb_dec_init(&d, m->data, m->len);
	mode = fb_dec_u32(&d);
	size = fb_dec_u64(&d);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return 0;
	if (!fb_dec_ok(&d) || mode > 07777)
		return fbg_send_error(fd, EINVAL, "file write: malformed request");
	slash = strrchr(path, '/');
	base = slash + 1;
	if (!*base || (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)))
		return fbg_send_error(fd, EISDIR, "%s: is a directory", path);
	if (!strcmp(base, ".") || !strcmp(base, ".."))
		return fbg_send_error(fd, EINVAL, "%s: not a file name", path);
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path),
		 path);

	tmp_fd = open_temp(dir, base, tmp, sizeof(tmp));
	if (tmp_fd < 0)
		return fbg_send_error(fd, -tmp_fd, "create a file in %s: %s", dir,
				      strerror(-tmp_fd));
	err = receive_data(fd, tmp_fd, size, &total);
	if (err) {
		close(tmp_fd);
		unlink(tmp);
		return 0;
	}
	/* fchmod: the mode is exact, whatever our umask. */
	if (fchmod(tmp_fd, mode) < 0 || fsync(tmp_fd) < 0) {
		err = -errno;
		close(tmp_fd);
		unlink(tmp);
		return fbg_send_error(fd, -err, "file write %s: %s", path,
				      strerror(-err));
	}
	close(tmp_fd);
	if (rename(tmp, path) < 0) {
		err = -errno;
		unlink(tmp);
		return fbg_send_error(fd, -err, "rename to %s: %s", path,
				      strerror(-err));
	}
	err = fsync_dir(dir);
	if (err)
		return fbg_send_error(fd, -err, "fsync %s: %s", dir, strerror(-err));
	snprintf(tmp, sizeof(tmp), "wrote %llu bytes", (unsigned long long)total);
	return fbg_send_ok(fd, 0, tmp);
}

int fbg_serve_file_read(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1];
	struct fb_agent_dec d;
	struct stat st;
	uint8_t *buf;
	int file, err = 0;
	ssize_t n;

	fb_dec_init(&d, m->data, m->len);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return 0;
	if (!fb_dec_ok(&d))
		return fbg_send_error(fd, EINVAL, "file read: malformed request");
	/* O_NONBLOCK: opening a FIFO must not hang the connection. */
	file = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (file < 0)
		return fbg_send_error(fd, errno, "open %s: %s", path, strerror(errno));
	if (fstat(file, &st) < 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	else if (!S_ISREG(st.st_mode))
		err = EINVAL;
	if (err) {
		close(file);
		return fbg_send_error(fd, err, "%s: %s", path,
				      err == EINVAL ? "not a regular file" :
				      strerror(err));
	}
	buf = malloc(FB_AGENT_CHUNK);
	if (!buf) {
		close(file);
		return fbg_send_error(fd, ENOMEM, "file read: out of memory");
	}
	for (;;) {
		n = read(file, buf, FB_AGENT_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fbg_send_error(fd, errno, "read %s: %s", path,
					     strerror(errno));
			break;
		}
		err = fbg_send(fd, n ? FB_AGENT_DATA : FB_AGENT_END, buf, (uint32_t)n);
		if (err || n == 0)
			break;
	}
	free(buf);
	close(file);
	return err;
}

int fbg_serve_stat(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1];
	uint8_t buf[24];
	struct fb_agent_dec d;
	struct fb_agent_enc e;
	struct stat st;

	fb_dec_init(&d, m->data, m->len);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return 0;
	if (!fb_dec_ok(&d))
		return fbg_send_error(fd, EINVAL, "stat: malformed request");
	if (stat(path, &st) < 0)
		return fbg_send_error(fd, errno, "stat %s: %s", path, strerror(errno));
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, file_type(st.st_mode));
	fb_enc_u32(&e, st.st_mode & 07777);
	fb_enc_u64(&e, (uint64_t)st.st_size);
	fb_enc_u64(&e, mtime_ns(&st));
	return fbg_send(fd, FB_AGENT_STAT_REPLY, buf, e.len);
}

int fbg_serve_list(int fd, const struct fbg_msg *m)
{
	char path[FB_AGENT_MAX_PATH + 1];
	struct fb_agent_dec d;
	struct fb_agent_enc e;
	struct dirent *de;
	struct stat st;
	uint32_t count = 0, flags = 0;
	uint8_t *buf;
	DIR *dir;
	int dfd, err;

	fb_dec_init(&d, m->data, m->len);
	if (fbg_dec_path(fd, &d, path, sizeof(path)) < 0)
		return 0;
	if (!fb_dec_ok(&d))
		return fbg_send_error(fd, EINVAL, "list: malformed request");
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fbg_send_error(fd, errno, "open %s: %s", path, strerror(errno));
	dir = fdopendir(dfd);
	buf = malloc(FB_AGENT_MAX_PAYLOAD);
	if (!dir || !buf) {
		err = errno ? errno : ENOMEM;
		if (dir)
			closedir(dir);
		else
			close(dfd);
		free(buf);
		return fbg_send_error(fd, err, "list %s: %s", path, strerror(err));
	}
	fb_enc_init(&e, buf, FB_AGENT_MAX_PAYLOAD);
	fb_enc_u32(&e, 0); /* flags and count, filled in at the end */
	fb_enc_u32(&e, 0);
	while ((de = readdir(dir)) != NULL) {
		uint32_t before = e.len, n = (uint32_t)strlen(de->d_name);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (count == FB_AGENT_MAX_LIST) {
			flags |= FB_AGENT_LIST_TRUNCATED;
			break;
		}
		/* An entry gone since readdir is just left out. */
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		fb_enc_str(&e, de->d_name, n > FB_AGENT_MAX_NAME ? FB_AGENT_MAX_NAME : n);
		fb_enc_u32(&e, file_type(st.st_mode));
		fb_enc_u32(&e, st.st_mode & 07777);
		fb_enc_u64(&e, (uint64_t)st.st_size);
		if (e.overflow) {
			e.len = before;
			e.overflow = false;
			flags |= FB_AGENT_LIST_TRUNCATED;
			break;
		}
		count++;
	}
	closedir(dir);
	fb_put_le32(buf, flags);
	fb_put_le32(buf + 4, count);
	err = fbg_send(fd, FB_AGENT_LIST_REPLY, buf, e.len);
	free(buf);
	return err;
}
