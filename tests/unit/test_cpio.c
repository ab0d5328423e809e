/* The cpio writer and the initramfs builder, checked against an independent
 * reader: Debian's GNU cpio, plus a byte-level walk of the newc headers. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/cpio.h"
#include "image/initramfs.h"
#include "util/error.h"

#define BUSYBOX "/bin/busybox"
#define MAX_ENTRIES 1024

struct listed {
	char mode[16];
	unsigned long size;       /* regular files and symlinks */
	unsigned int major, minor; /* device nodes */
	char name[256];
	char target[256];         /* symlinks */
};

struct listing {
	struct listed e[MAX_ENTRIES];
	int n;
};

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fb-test-cpio.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static int teardown_dir(void **state)
{
	return nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in_tmp(char *buf, size_t size, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", tmpdir, name);

	assert_true(n > 0 && (size_t)n < size);
}

static void write_host_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static char *read_host_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Parses `cpio -itv`: "MODE NLINK USER GROUP SIZE MON DAY YEAR NAME
 * [-> TARGET]", with "MAJOR, MINOR" in place of SIZE for devices. */
static void list_archive(const char *archive, struct listing *out)
{
	char cmd[512], line[1024];
	FILE *p;
	int n;

	n = snprintf(cmd, sizeof(cmd), "LC_ALL=C cpio -itv --quiet < '%s'", archive);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	p = popen(cmd, "r");
	assert_non_null(p);
	out->n = 0;
	while (fgets(line, sizeof(line), p)) {
		struct listed *e = &out->e[out->n];
		char *tok[16], *save = NULL, *t;
		int ntok = 0, name_at;

		assert_true(out->n < MAX_ENTRIES);
		memset(e, 0, sizeof(*e));
		for (t = strtok_r(line, " \n", &save); t && ntok < 16;
		     t = strtok_r(NULL, " \n", &save))
			tok[ntok++] = t;
		assert_true(ntok >= 9);
		snprintf(e->mode, sizeof(e->mode), "%s", tok[0]);
		if (e->mode[0] == 'c' || e->mode[0] == 'b') {
			assert_int_equal(sscanf(tok[4], "%u,", &e->major), 1);
			assert_int_equal(sscanf(tok[5], "%u", &e->minor), 1);
			name_at = 9;
		} else {
			e->size = strtoul(tok[4], NULL, 10);
			name_at = 8;
		}
		assert_true(ntok > name_at);
		snprintf(e->name, sizeof(e->name), "%s", tok[name_at]);
		if (ntok >= name_at + 3 && strcmp(tok[name_at + 1], "->") == 0)
			snprintf(e->target, sizeof(e->target), "%s", tok[name_at + 2]);
		out->n++;
	}
	assert_int_equal(pclose(p), 0);
}

static const struct listed *find(const struct listing *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return &l->e[i];
	fail_msg("%s is not in the archive", name);
	return NULL;
}

static void assert_entry(const struct listing *l, const char *name,
			 const char *mode, unsigned long size)
{
	const struct listed *e = find(l, name);

	assert_string_equal(e->mode, mode);
	assert_int_equal(e->size, size);
}

static char *extract(const char *archive, const char *name, size_t *len)
{
	char cmd[512];
	char *buf = malloc(1 << 20);
	size_t n = 0, got;
	FILE *p;

	assert_non_null(buf);
	snprintf(cmd, sizeof(cmd), "cpio -i --quiet --to-stdout '%s' < '%s'",
		 name, archive);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((got = fread(buf + n, 1, (1 << 20) - n, p)) > 0)
		n += got;
	assert_int_equal(pclose(p), 0);
	*len = n;
	return buf;
}

static unsigned long hex8(const char *p)
{
	char field[9];

	memcpy(field, p, 8);
	field[8] = '\0';
	return strtoul(field, NULL, 16);
}

/* Walks the raw bytes: magic, 4-byte alignment of names and data, mtime
 * and uid 0, unique inodes, the trailer and the 512-byte padding. */
static void check_layout(const char *archive)
{
	size_t len, off = 0, i;
	char *buf = read_host_file(archive, &len);
	unsigned long inos[MAX_ENTRIES];
	size_t n_inos = 0;
	int saw_trailer = 0;

	assert_int_equal(len % 512, 0);
	while (!saw_trailer) {
		const char *h = buf + off;
		unsigned long namesize, filesize;

		assert_true(off + 110 <= len);
		assert_int_equal(off % 4, 0);
		assert_memory_equal(h, "070701", 6);
		namesize = hex8(h + 94);
		filesize = hex8(h + 54);
		assert_int_equal(hex8(h + 22), 0); /* uid */
		assert_int_equal(hex8(h + 30), 0); /* gid */
		assert_int_equal(hex8(h + 46), 0); /* mtime */
		assert_true(off + 110 + namesize <= len);
		assert_int_equal(h[110 + namesize - 1], '\0');
		saw_trailer = strcmp(h + 110, "TRAILER!!!") == 0;
		if (!saw_trailer) {
			unsigned long ino = hex8(h + 6);

			for (i = 0; i < n_inos; i++)
				assert_true(inos[i] != ino);
			assert_true(n_inos < MAX_ENTRIES);
			inos[n_inos++] = ino;
		}
		off += (110 + namesize + 3) & ~(size_t)3;
		off += (filesize + 3) & ~(size_t)3;
	}
	assert_true(off <= len);
	for (; off < len; off++)
		assert_int_equal(buf[off], '\0');
	free(buf);
}

static int open_archive(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	return fd;
}

static void build_sample(const char *archive, const char *host_file)
{
	struct fb_cpio c;
	int fd = open_archive(archive);

	fb_cpio_init(&c, fd);
	assert_int_equal(fb_cpio_add_dir(&c, "d", 0755), 0);
	assert_int_equal(fb_cpio_add_dir(&c, "d/sticky", 01777), 0);
	assert_int_equal(fb_cpio_add_file(&c, "d/hello", 0640, "hello world\n", 12), 0);
	assert_int_equal(fb_cpio_add_file(&c, "empty", 0600, NULL, 0), 0);
	assert_int_equal(fb_cpio_add_file_from_path(&c, "d/big", 0755, host_file), 0);
	assert_int_equal(fb_cpio_add_symlink(&c, "d/link", "hello"), 0);
	assert_int_equal(fb_cpio_add_chardev(&c, "d/console", 0600, 5, 1), 0);
	assert_int_equal(fb_cpio_finish(&c), 0);
	assert_int_equal(close(fd), 0);
}

static void make_big_file(const char *path, char *data, size_t len)
{
	size_t i;

	/* Odd length, so the data padding is exercised. */
	for (i = 0; i < len; i++)
		data[i] = (char)(i * 7 + 3);
	write_host_file(path, data, len);
}

static void test_entries_read_back(void **state)
{
	char archive[128], host_file[128];
	static char big[70001];
	struct listing *l = malloc(sizeof(*l));
	size_t len;
	char *got;

	assert_non_null(l);
	path_in_tmp(archive, sizeof(archive), "a.cpio");
	path_in_tmp(host_file, sizeof(host_file), "big.bin");
	make_big_file(host_file, big, sizeof(big));
	build_sample(archive, host_file);

	list_archive(archive, l);
	assert_int_equal(l->n, 7);
	assert_entry(l, "d", "drwxr-xr-x", 0);
	assert_entry(l, "d/sticky", "drwxrwxrwt", 0);
	assert_entry(l, "d/hello", "-rw-r-----", 12);
	assert_entry(l, "empty", "-rw-------", 0);
	assert_entry(l, "d/big", "-rwxr-xr-x", sizeof(big));
	assert_entry(l, "d/link", "lrwxrwxrwx", 5);
	assert_string_equal(find(l, "d/link")->target, "hello");
	assert_string_equal(find(l, "d/console")->mode, "crw-------");
	assert_int_equal(find(l, "d/console")->major, 5);
	assert_int_equal(find(l, "d/console")->minor, 1);

	got = extract(archive, "d/hello", &len);
	assert_int_equal(len, 12);
	assert_memory_equal(got, "hello world\n", 12);
	free(got);
	got = extract(archive, "d/big", &len);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(got, big, sizeof(big));
	free(got);
	free(l);
}

static void test_layout_and_reproducible(void **state)
{
	char a1[128], a2[128], host_file[128];
	static char big[3333];
	size_t len1, len2;
	char *b1, *b2;

	path_in_tmp(a1, sizeof(a1), "one.cpio");
	path_in_tmp(a2, sizeof(a2), "two.cpio");
	path_in_tmp(host_file, sizeof(host_file), "big.bin");
	make_big_file(host_file, big, sizeof(big));
	build_sample(a1, host_file);
	check_layout(a1);
	build_sample(a2, host_file);
	b1 = read_host_file(a1, &len1);
	b2 = read_host_file(a2, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(b1, b2, len1);
	free(b1);
	free(b2);
}

/* Each bad call returns -EINVAL with a message, writes nothing, and
 * poisons the writer. */
static void expect_rejected(int (*add)(struct fb_cpio *, const char *),
			    const char *name, const char *message_part)
{
	char archive[128];
	struct fb_cpio c;
	struct stat st;
	int fd;

	path_in_tmp(archive, sizeof(archive), "bad.cpio");
	fd = open_archive(archive);
	fb_cpio_init(&c, fd);
	fb_errorf(0, "%s", "");
	assert_int_equal(add(&c, name), -EINVAL);
	assert_non_null(strstr(fb_last_error(), message_part));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(fb_cpio_finish(&c), -EINVAL);
	close(fd);
}

static int add_dir_named(struct fb_cpio *c, const char *name)
{
	return fb_cpio_add_dir(c, name, 0755);
}

static int add_file_named(struct fb_cpio *c, const char *name)
{
	return fb_cpio_add_file(c, name, 0644, "x", 1);
}

static int add_link_to(struct fb_cpio *c, const char *target)
{
	return fb_cpio_add_symlink(c, "link", target);
}

static int add_dir_bad_mode(struct fb_cpio *c, const char *name)
{
	return fb_cpio_add_dir(c, name, 010755);
}

static int add_huge_file(struct fb_cpio *c, const char *name)
{
	static const char byte = 'x'; /* never read past: the size is refused */

	return fb_cpio_add_file(c, name, 0644, &byte, (size_t)1 << 32);
}

static int add_bad_device(struct fb_cpio *c, const char *name)
{
	return fb_cpio_add_chardev(c, name, 0600, 4096, 0);
}

static int add_missing_host_file(struct fb_cpio *c, const char *name)
{
	return fb_cpio_add_file_from_path(c, "f", 0644, name);
}

static void test_bad_input_rejected(void **state)
{
	char *long_name = malloc(FB_CPIO_NAME_MAX + 2);
	int err;
	struct fb_cpio c;
	char archive[128];
	int fd;

	assert_non_null(long_name);
	memset(long_name, 'a', FB_CPIO_NAME_MAX + 1);
	long_name[FB_CPIO_NAME_MAX + 1] = '\0';

	expect_rejected(add_dir_named, "", "empty entry name");
	expect_rejected(add_file_named, "", "empty entry name");
	expect_rejected(add_file_named, "/etc/passwd", "must be relative");
	expect_rejected(add_file_named, "..", "'..'");
	expect_rejected(add_file_named, "a/../../b", "'..'");
	expect_rejected(add_dir_named, "a/..", "'..'");
	expect_rejected(add_file_named, long_name, "longer than");
	expect_rejected(add_link_to, "", "empty symlink target");
	expect_rejected(add_link_to, long_name, "longer than");
	expect_rejected(add_dir_bad_mode, "d", "beyond 07777");
	expect_rejected(add_huge_file, "huge", "4 GiB");
	expect_rejected(add_bad_device, "dev/x", "out of range");
	expect_rejected(add_missing_host_file, "/etc", "not a regular file");

	/* Names that only look like "..": fine. */
	path_in_tmp(archive, sizeof(archive), "ok.cpio");
	fd = open_archive(archive);
	fb_cpio_init(&c, fd);
	assert_int_equal(add_file_named(&c, "..a"), 0);
	assert_int_equal(add_file_named(&c, "a.."), 0);
	/* Exactly at the bound. */
	long_name[FB_CPIO_NAME_MAX] = '\0';
	assert_int_equal(add_file_named(&c, long_name), 0);
	err = fb_cpio_add_file_from_path(&c, "f", 0644, "/nonexistent/file");
	assert_int_equal(err, -ENOENT);
	assert_non_null(strstr(fb_last_error(), "open /nonexistent/file"));
	close(fd);
	free(long_name);
}

/* The smallest thing the builder accepts as a static program: an ELF64
 * header without program headers, so without PT_INTERP. */
static void write_fake_init(const char *path)
{
	Elf64_Ehdr eh;

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_ehsize = sizeof(eh);
	write_host_file(path, &eh, sizeof(eh));
}

static void assert_parents_first(const struct listing *l)
{
	int i, j;

	for (i = 0; i < l->n; i++) {
		const char *slash = strrchr(l->e[i].name, '/');
		int parent_at = -1;

		if (!slash)
			continue;
		for (j = 0; j < l->n; j++)
			if (strlen(l->e[j].name) == (size_t)(slash - l->e[i].name) &&
			    strncmp(l->e[j].name, l->e[i].name,
				    (size_t)(slash - l->e[i].name)) == 0)
				parent_at = j;
		if (parent_at < 0 || parent_at > i)
			fail_msg("%s comes before its directory", l->e[i].name);
	}
}

static void test_initramfs_build(void **state)
{
	char init[128], module[128], out[128];
	const char *modules[1];
	struct fb_initramfs_spec spec = { 0 };
	struct listing *l = malloc(sizeof(*l));
	struct stat bb;
	size_t len, fake_len;
	char *got, *fake;
	DIR *dir;

	assert_non_null(l);
	path_in_tmp(init, sizeof(init), "fake-init");
	path_in_tmp(module, sizeof(module), "vsock.ko");
	path_in_tmp(out, sizeof(out), "initramfs.cpio");
	write_fake_init(init);
	write_host_file(module, "\x7f" "ELF module", 11);
	modules[0] = module;
	spec.init_path = init;
	spec.busybox_path = BUSYBOX;
	spec.module_paths = modules;
	spec.n_modules = 1;

	assert_int_equal(fb_initramfs_build(&spec, out), 0);
	check_layout(out);
	list_archive(out, l);
	assert_int_equal(stat(BUSYBOX, &bb), 0);
	assert_entry(l, "init", "-rwxr-xr-x", sizeof(Elf64_Ehdr));
	assert_entry(l, "bin/busybox", "-rwxr-xr-x", (unsigned long)bb.st_size);
	assert_entry(l, "bin/sh", "lrwxrwxrwx", strlen("busybox"));
	assert_string_equal(find(l, "bin/sh")->target, "busybox");
	assert_string_equal(find(l, "bin/ls")->target, "busybox");
	assert_string_equal(find(l, "dev/console")->mode, "crw-------");
	assert_int_equal(find(l, "dev/console")->major, 5);
	assert_int_equal(find(l, "dev/console")->minor, 1);
	assert_string_equal(find(l, "tmp")->mode, "drwxrwxrwt");
	assert_int_equal(find(l, "proc")->mode[0], 'd');
	assert_int_equal(find(l, "sys")->mode[0], 'd');
	assert_int_equal(find(l, "usr/sbin")->mode[0], 'd');
	assert_entry(l, "lib/modules/vsock.ko", "-rw-r--r--", 11);
	assert_parents_first(l);

	fake = read_host_file(init, &fake_len);
	got = extract(out, "init", &len);
	assert_int_equal(len, fake_len);
	assert_memory_equal(got, fake, len);
	free(got);
	free(fake);

	/* Nothing left under the temporary name. */
	dir = opendir(tmpdir);
	assert_non_null(dir);
	for (struct dirent *d; (d = readdir(dir));)
		assert_null(strstr(d->d_name, ".tmp."));
	closedir(dir);
	free(l);
}

static void test_initramfs_rejects(void **state)
{
	char init[128], module[128], out[128];
	const char *modules[2];
	struct fb_initramfs_spec spec = { 0 };
	struct stat st;

	path_in_tmp(init, sizeof(init), "fake-init");
	path_in_tmp(module, sizeof(module), "notes.txt");
	path_in_tmp(out, sizeof(out), "initramfs.cpio");
	write_fake_init(init);
	write_host_file(module, "x", 1);
	spec.init_path = init;
	spec.busybox_path = BUSYBOX;

	/* A dynamically linked program cannot run without a libc. */
	spec.init_path = "/bin/ls";
	assert_int_equal(fb_initramfs_build(&spec, out), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "dynamically linked"));
	spec.init_path = init;

	/* busybox must be busybox: the fake init does not answer --list. */
	spec.busybox_path = init;
	assert_true(fb_initramfs_build(&spec, out) < 0);
	assert_non_null(strstr(fb_last_error(), "--list"));
	spec.busybox_path = BUSYBOX;

	modules[0] = module;
	spec.module_paths = modules;
	spec.n_modules = 1;
	assert_int_equal(fb_initramfs_build(&spec, out), -EINVAL);
	assert_non_null(strstr(fb_last_error(), ".ko"));

	assert_int_equal(stat(out, &st), -1);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entries_read_back, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_layout_and_reproducible, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_bad_input_rejected, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_initramfs_build, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_initramfs_rejects, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
