/* The built-in images, made on this machine from Debian's packages:
 *   base    busybox (the host's static one) and a skeleton: tiny, quick
 *   python  Debian minbase by debootstrap, with python3
 * The agent is not in them: it is PID 1 from the initramfs and switches
 * root into the image (guest/agent_root.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/store.h"
#include "util/copy.h"
#include "util/error.h"
#include "util/file.h"

#define DEFAULT_BUSYBOX "/bin/busybox"
#define DEFAULT_SUITE "bookworm"
#define DEFAULT_MIRROR "http://deb.debian.org/debian"

static const char *const base_dirs[] = {
	"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "tmp",
	"proc", "sys", "dev", "run", "var", "var/tmp", "home",
};

static const char *const base_files[][2] = {
	{ "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n" },
	{ "etc/group", "root:x:0:\n" },
	{ "etc/hostname", "forkbox\n" },
};

static int write_text(const char *root, const char *rel, const char *text)
{
	char path[PATH_MAX];
	int err = fb_fmt(path, sizeof(path), "%s/%s", root, rel);

	return err ? err : fb_write_file_atomic(path, text, strlen(text), 0644);
}

/* Every applet as a symlink to /bin/busybox, as `busybox --install -s`
 * would make inside the guest. */
static int link_applets(const char *root, const char *busybox)
{
	char cmd[PATH_MAX + 32], line[256], path[PATH_MAX];
	FILE *f;
	int err = 0;

	snprintf(cmd, sizeof(cmd), "'%s' --list-full", busybox);
	f = popen(cmd, "re");
	if (!f)
		return fb_errorf(-errno, "run %s --list-full: %s", busybox,
				 strerror(errno));
	while (!err && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || strstr(line, "..") || line[0] == '/' ||
		    !strcmp(line, "bin/busybox"))
			continue;
		err = fb_fmt(path, sizeof(path), "%s/%s", root, line);
		if (!err && symlink("/bin/busybox", path) < 0 &&
		    errno != EEXIST)
			err = fb_errorf(-errno, "symlink %s: %s", path,
					strerror(errno));
	}
	if (pclose(f) != 0 && !err)
		err = fb_errorf(-EIO, "%s --list-full failed", busybox);
	return err;
}

static int fill_base(const char *root)
{
	const char *busybox = getenv("FORKBOX_BUSYBOX");
	char path[PATH_MAX];
	int err = 0;

	if (!busybox || !busybox[0])
		busybox = DEFAULT_BUSYBOX;
	for (size_t i = 0; !err && i < sizeof(base_dirs) / sizeof(*base_dirs);
	     i++) {
		err = fb_fmt(path, sizeof(path), "%s/%s", root, base_dirs[i]);
		if (!err && mkdir(path, strcmp(base_dirs[i], "tmp") &&
				  strcmp(base_dirs[i], "var/tmp") ? 0755 :
				  01777) < 0 && errno != EEXIST)
			err = fb_errorf(-errno, "mkdir %s: %s", path,
					strerror(errno));
	}
	for (size_t i = 0;
	     !err && i < sizeof(base_files) / sizeof(*base_files); i++)
		err = write_text(root, base_files[i][0], base_files[i][1]);
	if (!err)
		err = fb_fmt(path, sizeof(path), "%s/bin/busybox", root);
	if (!err)
		err = fb_copy_file_cow(busybox, path, NULL);
	if (!err)
		err = link_applets(root, busybox);
	return err;
}

/* The mirror apt on this machine uses (the first deb.debian.org-style
 * URI of its sources), else Debian's own; FORKBOX_DEBIAN_MIRROR wins. */
static void debian_mirror(char *buf, size_t len)
{
	static const char *const lists[] = {
		"/etc/apt/sources.list.d/debian.sources",
		"/etc/apt/sources.list",
	};
	const char *env = getenv("FORKBOX_DEBIAN_MIRROR");
	char line[512];

	snprintf(buf, len, "%s", env && env[0] ? env : DEFAULT_MIRROR);
	if (env && env[0])
		return;
	for (size_t i = 0; i < sizeof(lists) / sizeof(*lists); i++) {
		FILE *f = fopen(lists[i], "re");

		while (f && fgets(line, sizeof(line), f)) {
			char *uri = NULL;

			if (!strncmp(line, "URIs:", 5))
				uri = line + 5;
			else if (!strncmp(line, "deb ", 4))
				uri = line + 4;
			if (!uri)
				continue;
			uri += strspn(uri, " \t");
			if (*uri == '[') /* deb [options] URI */
				uri = strchr(uri, ']') ? strchr(uri, ']') + 1 :
				      uri;
			uri += strspn(uri, " \t");
			uri[strcspn(uri, " \t\n")] = '\0';
			if (strstr(uri, "security") || !strstr(uri, "://"))
				continue;
			snprintf(buf, len, "%s", uri);
			fclose(f);
			return;
		}
		if (f)
			fclose(f);
	}
}

static int fill_python(const char *root)
{
	char mirror[256], cache[PATH_MAX];
	char *argv[] = { "debootstrap", "--variant=minbase",
			 "--include=python3", DEFAULT_SUITE, (char *)root,
			 mirror, NULL };
	int err;

	debian_mirror(mirror, sizeof(mirror));
	fprintf(stderr, "forkbox: building image python: debootstrap %s "
		"(minbase + python3) from %s; this takes a few minutes, once\n",
		DEFAULT_SUITE, mirror);
	err = fb_run_tool(argv, "image python: debootstrap", true);
	/* The package cache is half the tree and no box needs it. */
	if (!err && !fb_fmt(cache, sizeof(cache), "%s/var/cache/apt/archives",
			    root)) {
		fb_rm_tree(cache);
		mkdir(cache, 0755);
	}
	return err;
}

int fb_image_build_builtin(const char *name, struct fb_image *out)
{
	char stage[PATH_MAX], root[PATH_MAX + 8], dir[PATH_MAX];
	int err;

	if (strcmp(name, "base") && strcmp(name, "python"))
		return fb_errorf(-ENOENT, "no built-in image named %s "
				 "(there are base and python)", name);
	err = fb_image_dir(dir, sizeof(dir));
	if (!err)
		err = fb_fmt(stage, sizeof(stage), "%s/tmp", dir);
	if (!err && mkdir(stage, 0700) < 0 && errno != EEXIST)
		err = fb_errorf(-errno, "mkdir %s: %s", stage,
				strerror(errno));
	if (!err)
		err = fb_fmt(stage, sizeof(stage), "%s/tmp/%s-XXXXXX", dir,
			     name);
	if (err)
		return err;
	if (!mkdtemp(stage))
		return fb_errorf(-errno, "mkdtemp %s: %s", stage,
				 strerror(errno));
	snprintf(root, sizeof(root), "%s/root", stage);
	if (mkdir(root, 0755) < 0)
		err = fb_errorf(-errno, "mkdir %s: %s", root, strerror(errno));
	if (!err)
		err = strcmp(name, "base") ? fill_python(root) :
		      fill_base(root);
	if (!err)
		err = fb_image_build_dir(name, root, NULL, "built-in", 0, out);
	fb_rm_tree(stage);
	return err;
}

int fb_image_ensure(const char *name, struct fb_image *img)
{
	int err = fb_image_get(name, img);

	if (err != -ENOENT || (strcmp(name, "base") && strcmp(name, "python")))
		return err;
	return fb_image_build_builtin(name, img);
}
