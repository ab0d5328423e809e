/* Image layers and image archives unpacked into a tree: whiteouts and
 * opaque directories (applied, or stored the overlayfs way), file types
 * and metadata, docker-save and OCI
 * archives with their configs, and hostile or broken archives refused
 * with nothing written outside the root. tests/unit/mktar.py (python's
 * tarfile, an independent writer) builds every archive. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/oci.h"
#include "image/sha256.h"
#include "image/unpack.h"
#include "util/error.h"

#define MKTAR "tests/unit/mktar.py"

static char tmpdir[64];
static char path_buf[512];
static int rootfd = -1;

static const char *in_tmp(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", tmpdir, name);
	return path_buf;
}

static char *archive_path(const char *name)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s/archives/%s", tmpdir, name);
	return buf;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static void remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int run_mktar(void)
{
	char out[128], outside[128];
	pid_t pid;
	int status;

	snprintf(out, sizeof(out), "%s/archives", tmpdir);
	snprintf(outside, sizeof(outside), "%s", tmpdir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("python3", "python3", MKTAR, out, outside, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int setup_group(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fb-test-unpack.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	if (mkdir(in_tmp("scratch"), 0700) < 0)
		return -1;
	/* fb_oci_import's temporary copies go here, so a test can see
	 * they were all removed. */
	setenv("TMPDIR", in_tmp("scratch"), 1);
	if (run_mktar() < 0) {
		fprintf(stderr, "%s failed\n", MKTAR);
		return -1;
	}
	return 0;
}

static int teardown_group(void **state)
{
	remove_tree(tmpdir);
	return 0;
}

/* A fresh root and fresh siblings: outside-dir (a target for hostile
 * symlinks) and outside-file. */
static int setup_root(void **state)
{
	int fd;

	remove_tree(in_tmp("root"));
	remove_tree(in_tmp("outside-dir"));
	unlink(in_tmp("outside-file"));
	if (mkdir(in_tmp("root"), 0755) < 0 ||
	    mkdir(in_tmp("outside-dir"), 0755) < 0)
		return -1;
	fd = open(in_tmp("outside-file"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "outside\n", 8) != 8)
		return -1;
	close(fd);
	rootfd = open(in_tmp("root"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return rootfd < 0 ? -1 : 0;
}

static int teardown_root(void **state)
{
	close(rootfd);
	rootfd = -1;
	return 0;
}

static void assert_content(const char *name, const char *want)
{
	char buf[256];
	int fd = openat(rootfd, name, O_RDONLY | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		fail_msg("open %s: %s", name, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void assert_absent(const char *name)
{
	struct stat st;

	if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		fail_msg("%s exists in the root", name);
	assert_int_equal(errno, ENOENT);
}

static void assert_outside_absent(const char *name)
{
	if (access(in_tmp(name), F_OK) == 0)
		fail_msg("%s was created outside the root", in_tmp(name));
}

static struct stat lstat_in(const char *name)
{
	struct stat st;

	if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("stat %s: %s", name, strerror(errno));
	return st;
}

static void assert_link(const char *name, const char *target)
{
	char buf[256];
	ssize_t n = readlinkat(rootfd, name, buf, sizeof(buf) - 1);

	if (n < 0)
		fail_msg("readlink %s: %s", name, strerror(errno));
	buf[n] = '\0';
	assert_string_equal(buf, target);
}

static int find_whiteout(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	return strncmp(path + ftw->base, ".wh.", 4) == 0;
}

static void assert_dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fail_msg("%s holds %s", path, de->d_name);
	closedir(d);
}

static void assert_error_has(const char *what)
{
	if (!strstr(fb_last_error(), what))
		fail_msg("error \"%s\" does not mention \"%s\"",
			 fb_last_error(), what);
	assert_null(strchr(fb_last_error(), '\n'));
}

static void test_sha256(void **state)
{
	static const char *msg =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[FB_SHA256_LEN];
	char hex[FB_SHA256_HEX_LEN + 1], big[1024];
	struct fb_sha256 s;

	fb_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
				 "27ae41e4649b934ca495991b7852b855");
	fb_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
	fb_sha256_hex(msg, strlen(msg), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039"
				 "a33ce45964ff2167f6ecedd419db06c1");
	/* A million 'a's, fed in uneven pieces (7 to 1003 bytes) across
	 * block edges. */
	memset(big, 'a', sizeof(big));
	fb_sha256_init(&s);
	for (size_t done = 0, step = 1; done < 1000000; step = step % 997 + 7) {
		size_t n = step < 1000000 - done ? step : 1000000 - done;

		fb_sha256_update(&s, big, n);
		done += n;
	}
	fb_sha256_final(&s, d);
	fb_sha256_to_hex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
				 "f1809a48a497200e046d39ccc7112cd0");
}

static void check_docker_tree(const struct fb_image_config *cfg)
{
	struct stat st, st2;
	char buf[16];

	/* Whiteouts of a file and a whole directory from layer 1. */
	assert_absent("etc/remove-me");
	assert_absent("dir-remove");
	/* Opaque: the lower entries gone, this layer's kept, before the
	 * marker in the archive or after, in a subdirectory too. */
	assert_absent("opq/old1");
	assert_absent("opq/sub/old2");
	assert_content("opq/+new-before", "new\n");
	assert_content("opq/new-after", "new\n");
	assert_content("opq/sub/new3", "new\n");
	assert_int_equal(lstat_in("opq/keep-before").st_mode, S_IFDIR | 0755);
	assert_int_equal(lstat_in("opq/keep-after").st_mode, S_IFDIR | 0755);
	assert_absent("opq/keep-before/other");
	assert_absent("opq/keep-after/other");
	assert_absent("opq/keep-after/gone");
	/* No marker anywhere in the tree. */
	assert_int_equal(nftw(in_tmp("root"), find_whiteout, 16, FTW_PHYS), 0);

	/* Rewritten in layer 2: the hardlink from layer 1 keeps the old
	 * content, so the rewrite did not go through it. */
	assert_content("etc/hello", "new hello\n");
	assert_content("hl", "hello\n");
	assert_content("etc/self", "self\n");
	st = lstat_in("etc/hello");
	assert_int_equal(st.st_mode, S_IFREG | 0644);
	assert_int_equal(st.st_mtime, 1000000000);

	/* A file over a symlink that pointed outside: the symlink goes,
	 * the outside file is untouched. */
	assert_true(S_ISREG(lstat_in("victim").st_mode));
	assert_content("victim", "replaced\n");
	{
		int fd = open(in_tmp("outside-file"), O_RDONLY);
		ssize_t n = read(fd, buf, sizeof(buf));

		close(fd);
		assert_int_equal(n, 8);
		assert_memory_equal(buf, "outside\n", 8);
	}
	/* Through the relative symlink lib -> usr/lib. */
	assert_link("lib", "usr/lib");
	assert_content("usr/lib/added", "added\n");
	assert_link("abs-link", "/etc/hello");

	st = lstat_in("bin/su");
	assert_int_equal(st.st_mode, S_IFREG | 04755);
	st = lstat_in("bin/sh");
	assert_int_equal(st.st_mode, S_IFREG | 0755);
	st = lstat_in("home/user");
	assert_int_equal(st.st_mode, S_IFDIR | 0700);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1000);
	/* Set after its file was added. */
	assert_int_equal(lstat_in("dirtime").st_mtime, 1234567890);
	assert_true(S_ISFIFO(lstat_in("run/fifo").st_mode));
	if (cfg->stats.skipped_devices == 0) {
		st = lstat_in("dev/null2");
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(1, 3));
		assert_int_equal(st.st_mode & 07777, 0666);
	} else {
		assert_int_equal(cfg->stats.skipped_devices, 1);
	}
	assert_true(S_ISREG(lstat_in("replace-dir-with-file").st_mode));
	assert_content("replace-dir-with-file", "now a file\n");
	st2 = lstat_in("replace-file-with-dir");
	assert_int_equal(st2.st_mode, S_IFDIR | 0750);

	/* user.* applied, trusted.overlay.* not. */
	{
		int fd = openat(rootfd, "etc/xattr", O_RDONLY);
		ssize_t n = fgetxattr(fd, "user.fb", buf, sizeof(buf));

		if (n >= 0 || errno != ENOTSUP) {
			assert_int_equal(n, 3);
			assert_memory_equal(buf, "yes", 3);
		}
		assert_true(fgetxattr(fd, "trusted.overlay.opaque", buf,
				      sizeof(buf)) < 0);
		close(fd);
	}
	assert_true(cfg->stats.skipped_xattrs >= 1);
	assert_int_equal(cfg->stats.whiteouts, 5);
}

static void test_docker_save(void **state)
{
	struct fb_image_config cfg;
	int err = fb_oci_import(archive_path("docker.tar"), rootfd, &cfg);

	if (err)
		fail_msg("import: %s", fb_last_error());
	check_docker_tree(&cfg);

	assert_int_equal(cfg.n_env, 2);
	assert_string_equal(cfg.env[0], "PATH=/usr/bin:/bin");
	assert_string_equal(cfg.env[1], "FOO=bar baz");
	assert_null(cfg.env[2]);
	assert_string_equal(cfg.workdir, "/srv");
	assert_int_equal(cfg.n_entrypoint, 2);
	assert_string_equal(cfg.entrypoint[0], "/bin/sh");
	assert_string_equal(cfg.entrypoint[1], "-c");
	assert_int_equal(cfg.n_cmd, 1);
	assert_string_equal(cfg.cmd[0], "echo hi");
	assert_string_equal(cfg.user, "1000:1000");
	/* manifest.json lists the image twice. */
	assert_non_null(strstr(cfg.note, "2 images"));
	assert_true(cfg.stats.entries > 30);
	assert_true(cfg.stats.bytes > 0);
	fb_image_config_free(&cfg);
	assert_null(cfg.env);
	assert_dir_empty(in_tmp("scratch"));
}

static void test_oci_gzip(void **state)
{
	struct fb_image_config cfg;
	int err = fb_oci_import(archive_path("oci.tar"), rootfd, &cfg);

	if (err)
		fail_msg("import: %s", fb_last_error());
	assert_content("bin/hello", "hi\n");
	assert_int_equal(lstat_in("bin/hello").st_mode, S_IFREG | 0755);
	assert_link("bin/sh", "busybox");
	assert_content("etc/os-release", "ID=forkbox\n");
	assert_int_equal(cfg.n_env, 1);
	assert_string_equal(cfg.env[0], "PATH=/bin");
	assert_int_equal(cfg.n_cmd, 1);
	assert_string_equal(cfg.cmd[0], "/bin/hello");
	assert_int_equal(cfg.n_entrypoint, 0);
	assert_null(cfg.entrypoint);
	assert_null(cfg.workdir);
	assert_null(cfg.user);
	assert_string_equal(cfg.note, "");
	assert_int_equal(cfg.stats.entries, 5);
	fb_image_config_free(&cfg);
	assert_dir_empty(in_tmp("scratch"));
}

static void test_oci_bad_digest(void **state)
{
	struct fb_image_config cfg;
	int err = fb_oci_import(archive_path("oci-bad-digest.tar"), rootfd, &cfg);

	assert_int_equal(err, -EBADMSG);
	assert_error_has("does not match its digest");
	assert_error_has("layer 1");
	/* Checked before anything was unpacked. */
	assert_dir_empty(in_tmp("root"));
	assert_null(cfg.env);
	assert_dir_empty(in_tmp("scratch"));
}

/* Docker names layers by no digest, but the config's diff_ids are
 * theirs. */
static void test_docker_bad_diff_id(void **state)
{
	struct fb_image_config cfg;
	int err = fb_oci_import(archive_path("docker-bad-diffid.tar"), rootfd,
				&cfg);

	assert_int_equal(err, -EBADMSG);
	assert_error_has("layer 1 (by the config's diff_ids)");
	assert_dir_empty(in_tmp("root"));
	assert_dir_empty(in_tmp("scratch"));
}

static void refuse(const char *layer, const char *member)
{
	struct fb_unpack_stats st = { 0 };
	int err = fb_unpack_layer_path(rootfd, archive_path(layer), &st);

	if (err == 0)
		fail_msg("%s was unpacked", layer);
	assert_error_has(member);
	assert_error_has(layer);
}

static void test_refuse_escape(void **state)
{
	refuse("escape.tar", "member ../escape climbs out of the root");
	assert_outside_absent("escape");
	/* Entries before the bad one were applied (the caller throws the
	 * tree away), and stayed inside. */
	assert_content("ok-before", "fine\n");
}

static void test_refuse_absolute(void **state)
{
	char name[256];

	snprintf(name, sizeof(name), "member %s/abs-target is an absolute "
		 "path", tmpdir);
	refuse("abs.tar", name);
	assert_outside_absent("abs-target");
	assert_absent(tmpdir + 1);
}

static void test_refuse_symlink_parent(void **state)
{
	refuse("symlink.tar", "member link/file climbs out of the root");
	assert_outside_absent("outside-dir/file");
	/* The symlink itself was made, pointing where it likes. */
	snprintf(path_buf, sizeof(path_buf), "%s/outside-dir", tmpdir);
	assert_link("link", path_buf);

	refuse("symlink-rel.tar", "member up/escape-rel climbs out of the root");
	assert_outside_absent("escape-rel");
}

static void test_refuse_hardlink(void **state)
{
	struct stat before, after;

	assert_int_equal(stat("/etc/passwd", &before), 0);
	refuse("hardlink.tar", "member hl links to ../../etc/passwd, outside "
	       "the root");
	assert_absent("hl");
	refuse("hardlink-sym.tar", "member hl2 links to etcl/passwd, outside "
	       "the root");
	assert_absent("hl2");
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_nlink, after.st_nlink);
}

static void test_truncated(void **state)
{
	struct fb_image_config cfg;

	refuse("truncated.tar", "runcated");
	refuse("truncated.tar.gz", "truncated.tar.gz: ");
	refuse("truncated-boundary.tar", "truncated archive");
	assert_true(fb_oci_import(archive_path("docker-truncated.tar"), rootfd,
				  &cfg) < 0);
	assert_error_has("runcated");
	assert_true(fb_oci_import(archive_path("docker-truncated-boundary.tar"),
				  rootfd, &cfg) < 0);
	assert_error_has("truncated archive");
	assert_dir_empty(in_tmp("scratch"));
}

/* Applied twice, the same layers give the same tree: whiteouts of what
 * is already gone and directories that exist are no errors. */
static void test_reapply(void **state)
{
	struct fb_image_config cfg;

	assert_int_equal(fb_oci_import(archive_path("docker.tar"), rootfd,
				       &cfg), 0);
	fb_image_config_free(&cfg);
	if (fb_oci_import(archive_path("docker.tar"), rootfd, &cfg))
		fail_msg("second import: %s", fb_last_error());
	check_docker_tree(&cfg);
	fb_image_config_free(&cfg);
}

/* ---- overlay mode: whiteouts stored, not applied ---------------------- */

static void assert_whiteout(const char *name)
{
	struct stat st = lstat_in(name);

	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0))
		fail_msg("%s is no whiteout (mode 0%o)", name, st.st_mode);
}

static void assert_opaque(const char *name, bool want)
{
	int fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	char v[4];
	ssize_t n;

	assert_true(fd >= 0);
	n = fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v));
	close(fd);
	if (want) {
		assert_int_equal(n, 1);
		assert_int_equal(v[0], 'y');
	} else {
		assert_int_equal(n, -1);
	}
}

static int unpack_overlay(const char *layer, struct fb_unpack_stats *st)
{
	int fd = open(archive_path(layer), O_RDONLY | O_CLOEXEC), err;

	assert_true(fd >= 0);
	err = fb_unpack_layer_flags(rootfd, fd, layer, FB_UNPACK_OVERLAY, st);
	close(fd);
	return err;
}

/* docker.tar's second layer alone, as the layer cache keeps it. */
static void test_overlay_layer(void **state)
{
	struct fb_unpack_stats st = { 0 };

	if (unpack_overlay("docker-layer2.tar", &st))
		fail_msg("unpack: %s", fb_last_error());
	assert_whiteout("etc/remove-me");
	assert_whiteout("dir-remove");
	assert_opaque("opq", true);
	assert_opaque("etc", false);
	/* Beneath the opaque directory: left out, the directories kept. */
	assert_int_equal(lstat_in("opq/keep-before").st_mode, S_IFDIR | 0755);
	assert_int_equal(lstat_in("opq/keep-after").st_mode, S_IFDIR | 0755);
	assert_absent("opq/keep-before/gone");
	assert_absent("opq/keep-after/gone");
	assert_opaque("opq/keep-before", false);
	assert_content("opq/+new-before", "new\n");
	assert_content("opq/new-after", "new\n");
	assert_content("opq/sub/new3", "new\n");
	assert_content("etc/hello", "new hello\n");
	/* No lower layer here: "lib" is this layer's own directory. */
	assert_int_equal(lstat_in("lib").st_mode & S_IFMT, S_IFDIR);
	assert_content("lib/added", "added\n");
	assert_int_equal(lstat_in("replace-file-with-dir").st_mode,
			 S_IFDIR | 0750);
	assert_int_equal(nftw(in_tmp("root"), find_whiteout, 16, FTW_PHYS), 0);
	assert_int_equal(st.whiteouts, 5);
}

/* Whiteouts against the same layer's entries, in either order. */
static void test_overlay_same_layer(void **state)
{
	struct fb_unpack_stats st = { 0 };

	if (unpack_overlay("ovl-mixed.tar", &st))
		fail_msg("unpack: %s", fb_last_error());
	/* The lower d and e are gone, this layer's stand in their place. */
	assert_opaque("d", true);
	assert_content("d/new", "new\n");
	assert_opaque("e", true);
	assert_content("e/f", "f\n");
	/* A file of this layer hides the lower one itself. */
	assert_true(S_ISREG(lstat_in("f").st_mode));
	assert_content("f", "f\n");
	assert_content("g", "g\n");
	assert_whiteout("h/x");
	assert_opaque("h", false);
	/* A 0/0 device member would read as a whiteout: left out. */
	assert_absent("zero");
	assert_int_equal(st.skipped_devices, 1);
	assert_int_equal(nftw(in_tmp("root"), find_whiteout, 16, FTW_PHYS), 0);
}

/* The same refusals, nothing written outside. */
static void test_overlay_refuse(void **state)
{
	static const char *const layers[] = {
		"escape.tar", "abs.tar", "symlink.tar", "symlink-rel.tar",
		"hardlink.tar", "hardlink-sym.tar", "truncated.tar",
	};
	struct stat before, after;

	assert_int_equal(stat("/etc/passwd", &before), 0);
	for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
		if (unpack_overlay(layers[i], NULL) == 0)
			fail_msg("%s was unpacked", layers[i]);
		assert_error_has(layers[i]);
	}
	assert_outside_absent("escape");
	assert_outside_absent("abs-target");
	assert_outside_absent("outside-dir/file");
	assert_outside_absent("escape-rel");
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_nlink, after.st_nlink);
	assert_absent("hl");
	assert_absent("hl2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test_setup_teardown(test_docker_save, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_oci_gzip, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_oci_bad_digest, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_docker_bad_diff_id, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_refuse_escape, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_refuse_absolute, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_refuse_symlink_parent, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_refuse_hardlink, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_truncated, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_reapply, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_overlay_layer, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_overlay_same_layer, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_overlay_refuse, setup_root, teardown_root),
	};

	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
