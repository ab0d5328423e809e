#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/cpio.h"
#include "image/initramfs.h"
#include "util/error.h"

/* busybox 1.36 lists about 400 applets in 3 KB; anything past this is not
 * an applet list. */
#define APPLET_LIST_MAX (256u * 1024u)
#define APPLET_NAME_MAX 64u
#define ELF_PHDR_MAX 256u

struct dir_entry {
	const char *name;
	mode_t perm;
};

/* Parents before children: the kernel does not create missing parents. */
static const struct dir_entry base_dirs[] = {
	{ "bin", 0755 },  { "dev", 0755 },   { "etc", 0755 },
	{ "lib", 0755 },  { "lib/modules", 0755 },
	{ "mnt", 0755 },  { "proc", 0555 },  { "root", 0700 },
	{ "sbin", 0755 }, { "sys", 0555 },   { "tmp", 01777 },
	{ "usr", 0755 },  { "usr/bin", 0755 }, { "usr/sbin", 0755 },
};

static int read_exact_at(int fd, void *buf, size_t len, off_t off,
			 const char *path)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n < 0)
		return fb_errorf(-errno, "read %s: %s", path, strerror(errno));
	if ((size_t)n != len)
		return fb_errorf(-EINVAL, "%s: truncated ELF file", path);
	return 0;
}

/* A dynamically linked program would die in the guest with a baffling
 * "not found" from the kernel, so refuse it here with a reason. */
static int check_static_elf(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	unsigned int i;
	int err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	err = read_exact_at(fd, &eh, sizeof(eh), 0, path);
	if (!err && (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
		     eh.e_ident[EI_CLASS] != ELFCLASS64))
		err = fb_errorf(-EINVAL, "%s: not a 64-bit ELF executable", path);
	if (!err && (eh.e_phentsize != sizeof(ph) || eh.e_phnum > ELF_PHDR_MAX))
		err = fb_errorf(-EINVAL, "%s: bad ELF program headers", path);
	for (i = 0; !err && i < eh.e_phnum; i++) {
		off_t off = (off_t)eh.e_phoff + (off_t)i * (off_t)sizeof(ph);

		err = read_exact_at(fd, &ph, sizeof(ph), off, path);
		if (!err && ph.p_type == PT_INTERP)
			err = fb_errorf(-EINVAL,
				"%s is dynamically linked; the initramfs has no "
				"libc, so it needs a static build", path);
	}
	close(fd);
	return err;
}

/* Runs `busybox --list` (no shell) and returns its output, NUL-ended. */
static int list_applets(const char *busybox, char **out)
{
	char *argv[] = { (char *)busybox, (char *)"--list", NULL };
	posix_spawn_file_actions_t fa;
	int pipefd[2];
	char *buf = NULL;
	size_t len = 0;
	pid_t pid;
	int status, err;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return fb_errorf(-errno, "pipe2: %s", strerror(errno));
	err = -posix_spawn_file_actions_init(&fa);
	if (!err)
		err = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
							O_RDONLY, 0);
	if (!err)
		err = -posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	if (!err) {
		err = -posix_spawn(&pid, busybox, &fa, NULL, argv, environ);
		if (err)
			fb_errorf(err, "exec %s --list: %s", busybox, strerror(-err));
	} else {
		fb_errorf(err, "posix_spawn_file_actions: %s", strerror(-err));
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (err) {
		close(pipefd[0]);
		return err;
	}

	buf = malloc(APPLET_LIST_MAX + 1);
	if (!buf)
		err = fb_errorf(-ENOMEM, "busybox --list: out of memory");
	while (!err) {
		ssize_t n = read(pipefd[0], buf + len, APPLET_LIST_MAX - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = fb_errorf(-errno, "read from %s --list: %s", busybox,
					strerror(errno));
		else if (n == 0)
			break;
		else if ((len += (size_t)n) == APPLET_LIST_MAX)
			err = fb_errorf(-E2BIG, "%s --list: more than %u bytes",
					busybox, APPLET_LIST_MAX);
	}
	/* Closing first lets a child blocked on a full pipe die of SIGPIPE. */
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}
	if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		err = fb_errorf(-EINVAL, "%s --list failed (wait status %#x): "
				"is it busybox?", busybox, (unsigned int)status);
	if (!err && len == 0)
		err = fb_errorf(-EINVAL, "%s --list printed no applets", busybox);
	if (err) {
		free(buf);
		return err;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static int check_plain_name(const char *what, const char *name)
{
	size_t len = strnlen(name, APPLET_NAME_MAX + 1);

	if (len == 0 || len > APPLET_NAME_MAX || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return fb_errorf(-EINVAL, "bad %s name: \"%.*s\"", what,
				 (int)APPLET_NAME_MAX, name);
	return 0;
}

static int add_busybox(struct fb_cpio *cpio, const char *busybox)
{
	char *list = NULL, *line, *save = NULL;
	char name[sizeof("bin/") + APPLET_NAME_MAX];
	int err = list_applets(busybox, &list);

	if (err)
		return err;
	err = fb_cpio_add_file_from_path(cpio, "bin/busybox", 0755, busybox);
	for (line = strtok_r(list, "\n", &save); line && !err;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "busybox") == 0)
			continue;
		err = check_plain_name("busybox applet", line);
		if (!err) {
			snprintf(name, sizeof(name), "bin/%s", line);
			err = fb_cpio_add_symlink(cpio, name, "busybox");
		}
	}
	free(list);
	return err;
}

static int add_modules(struct fb_cpio *cpio, const struct fb_initramfs_spec *spec)
{
	char name[sizeof("lib/modules/") + APPLET_NAME_MAX];
	size_t i, j;
	int err = 0;

	for (i = 0; i < spec->n_modules && !err; i++) {
		const char *path = spec->module_paths[i];
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		size_t len = strlen(base);

		err = check_plain_name("module file", base);
		if (!err && (len < 4 || strcmp(base + len - 3, ".ko") != 0))
			err = fb_errorf(-EINVAL, "module %s: name must end in .ko "
					"(the guest loads it uncompressed)", path);
		for (j = 0; j < i && !err; j++) {
			const char *other = strrchr(spec->module_paths[j], '/');

			other = other ? other + 1 : spec->module_paths[j];
			if (strcmp(other, base) == 0)
				err = fb_errorf(-EINVAL, "module %s given twice", base);
		}
		if (!err) {
			snprintf(name, sizeof(name), "lib/modules/%s", base);
			err = fb_cpio_add_file_from_path(cpio, name, 0644, path);
		}
	}
	return err;
}

static int write_archive(int fd, const struct fb_initramfs_spec *spec)
{
	struct fb_cpio cpio;
	size_t i;
	int err = 0;

	fb_cpio_init(&cpio, fd);
	for (i = 0; i < sizeof(base_dirs) / sizeof(base_dirs[0]) && !err; i++)
		err = fb_cpio_add_dir(&cpio, base_dirs[i].name, base_dirs[i].perm);
	/* The kernel opens /dev/console for init's stdio before init runs,
	 * long before anyone mounts devtmpfs. */
	if (!err)
		err = fb_cpio_add_chardev(&cpio, "dev/console", 0600, 5, 1);
	if (!err)
		err = fb_cpio_add_file_from_path(&cpio, "init", 0755, spec->init_path);
	if (!err)
		err = add_busybox(&cpio, spec->busybox_path);
	if (!err)
		err = add_modules(&cpio, spec);
	return err ? err : fb_cpio_finish(&cpio);
}

static int fsync_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, err = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", dir, strerror(errno));
	if (fsync(fd) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return err;
}

static int check_spec(const struct fb_initramfs_spec *spec, const char *out_path)
{
	if (!spec || !spec->init_path || !spec->busybox_path || !out_path ||
	    !*out_path)
		return fb_errorf(-EINVAL, "initramfs: init, busybox and output "
				 "paths are all required");
	if (spec->n_modules > 0 && !spec->module_paths)
		return fb_errorf(-EINVAL, "initramfs: %zu modules but no paths",
				 spec->n_modules);
	return 0;
}

int fb_initramfs_build(const struct fb_initramfs_spec *spec,
		       const char *out_path)
{
	char tmp[PATH_MAX];
	int fd, n, err;

	err = check_spec(spec, out_path);
	if (!err)
		err = check_static_elf(spec->init_path);
	if (!err)
		err = check_static_elf(spec->busybox_path);
	if (err)
		return err;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out_path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return fb_errorf(-ENAMETOOLONG, "initramfs: output path too long: %s",
				 out_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
	err = write_archive(fd, spec);
	if (!err && fsync(fd) < 0)
		err = fb_errorf(-errno, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close %s: %s", tmp, strerror(errno));
	if (!err && rename(tmp, out_path) < 0)
		err = fb_errorf(-errno, "rename %s to %s: %s", tmp, out_path,
				strerror(errno));
	if (err) {
		unlink(tmp);
		return err;
	}
	return fsync_parent_dir(out_path);
}
