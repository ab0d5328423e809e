/* Copy-on-write file copies (src/util/copy.h): the bytes, the mode, the
 * size and the holes come out right by every method; failures leave
 * neither a destination nor a temporary behind. With FORKBOX_REFLINK_DIR
 * set (tests/integration/reflink-test sets it to a btrfs or XFS mount),
 * also that a copy there is a real reflink, taking no space. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/copy.h"
#include "util/error.h"
#include "util/file.h"

#define KiB (1ll << 10)
#define MiB (1ll << 20)
#define GiB (1ll << 30)

struct dir {
	char path[256];
};

static void path_in(char *buf, size_t len, const struct dir *d,
		    const char *name)
{
	assert_int_equal(fb_fmt(buf, len, "%s/%s", d->path, name), 0);
}

static int setup(void **state)
{
	const char *base = getenv("TMPDIR");
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "%s/forkbox-copy.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	struct dir *d = *state;

	chmod(d->path, 0700);
	nftw(d->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
	return 0;
}

static void fill_random(uint8_t *p, size_t len)
{
	uint64_t x;
	size_t i;

	assert_int_equal(getrandom(&x, sizeof(x), 0), (ssize_t)sizeof(x));
	x |= 1;
	/* xorshift64*: 64 MiB from getrandom would take a while. */
	for (i = 0; i < len; i++) {
		if (i % 8 == 0) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
		}
		p[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> (8 * (i % 8)));
	}
}

static uint8_t *random_buf(size_t len)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	fill_random(p, len);
	return p;
}

static void write_file(const char *path, const void *data, size_t len,
		       unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(fb_write_full(fd, data, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(close(fd), 0);
}

static void assert_file_is(const char *path, const uint8_t *data, size_t len)
{
	uint8_t *got;
	size_t got_len;

	assert_int_equal(fb_read_file(path, 256 * MiB, &got, &got_len), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, data, len);
	free(got);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* That a directory holds n entries, listing them if not. */
static void assert_entries(const char *dir, int n)
{
	struct dirent *e;
	int found = 0;
	DIR *dp;

	dp = opendir(dir);
	assert_non_null(dp);
	while ((e = readdir(dp)))
		found += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (found != n) {
		rewinddir(dp);
		while ((e = readdir(dp)))
			print_message("  %s/%s\n", dir, e->d_name);
	}
	closedir(dp);
	assert_int_equal(found, n);
}

static void test_content_unaligned_size(void **state)
{
	const struct dir *d = *state;
	size_t len = 3 * MiB + 123;
	uint8_t *data = random_buf(len);
	enum fb_copy_how how = 99;
	char src[300], dst[300];

	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, len, 0644);
	assert_int_equal(fb_copy_file_cow(src, dst, &how), 0);
	assert_true(how <= FB_COPY_BYTES);
	print_message("  copied by %s\n", fb_copy_how_name(how));
	assert_file_is(dst, data, len);
	assert_file_is(src, data, len);
	assert_entries(d->path, 2);
	/* how may be NULL. */
	assert_int_equal(fb_copy_file_cow(src, dst, NULL), 0);
	assert_file_is(dst, data, len);
	free(data);
}

static void test_each_forced_path(void **state)
{
	const struct dir *d = *state;
	size_t len = 3 * MiB + 123;
	uint8_t *data = random_buf(len);
	char src[300], dst[300];
	enum fb_copy_how first, how;

	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, len, 0644);
	for (first = FB_COPY_RANGE; first <= FB_COPY_BYTES; first++) {
		how = 99;
		assert_int_equal(fb_copy_file_cow_from(src, dst, first, &how),
				 0);
		assert_int_equal(how, first);
		assert_file_is(dst, data, len);
		assert_int_equal(unlink(dst), 0);
	}
	free(data);
}

static void test_fd_copy_each_path(void **state)
{
	const struct dir *d = *state;
	size_t len = 1 * MiB + 7;
	uint8_t *data = random_buf(len);
	char src[300], dst[300];
	enum fb_copy_how first, how;
	int in, out;

	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, len, 0644);
	in = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	for (first = FB_COPY_REFLINK; first <= FB_COPY_BYTES; first++) {
		out = open(dst, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(out >= 0);
		/* The caller's offset on src is its own business. */
		assert_int_equal(lseek(in, 4321, SEEK_SET), 4321);
		how = 99;
		assert_int_equal(fb_copy_fd_cow_from(in, out, first, &how), 0);
		assert_true(how >= first && how <= FB_COPY_BYTES);
		if (first != FB_COPY_REFLINK)
			assert_int_equal(how, first);
		assert_int_equal(lseek(in, 0, SEEK_CUR), 4321);
		assert_int_equal(close(out), 0);
		assert_file_is(dst, data, len);
	}
	close(in);
	free(data);
}

static void test_fd_copy_refuses_same_file_and_append(void **state)
{
	const struct dir *d = *state;
	uint8_t data[100] = { 1, 2, 3 };
	char src[300], dst[300];
	int in, out;

	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, sizeof(data), 0644);
	in = open(src, O_RDWR | O_CLOEXEC);
	assert_true(in >= 0);
	assert_int_equal(fb_copy_fd_cow(in, in, NULL), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "same file"));
	assert_file_is(src, data, sizeof(data));

	out = open(dst, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	assert_int_equal(fb_copy_fd_cow(in, out, NULL), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "O_APPEND"));
	close(out);
	close(in);
}

/* Copying into a non-empty open file starts from empty: what it held
 * must not show through the source's holes. */
static void test_fd_copy_into_longer_file(void **state)
{
	const struct dir *d = *state;
	size_t junk_len = 8 * MiB;
	uint8_t *junk = malloc(junk_len), *want = calloc(1, junk_len);
	uint8_t *data = random_buf(64 * KiB);
	char src[300], dst[300];
	enum fb_copy_how first;
	int in, out;

	assert_non_null(junk);
	assert_non_null(want);
	memset(junk, 0xAA, junk_len);
	memcpy(want + 4 * MiB, data, 64 * KiB);
	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, want, junk_len, 0644);
	/* Make the zeros real holes. */
	in = open(src, O_RDWR | O_CLOEXEC);
	assert_true(in >= 0);
	assert_int_equal(ftruncate(in, 0), 0);
	assert_int_equal(pwrite(in, data, 64 * KiB, 4 * MiB), 64 * KiB);
	assert_int_equal(ftruncate(in, (off_t)junk_len), 0);
	for (first = FB_COPY_REFLINK; first <= FB_COPY_BYTES; first++) {
		write_file(dst, junk, junk_len, 0600);
		out = open(dst, O_RDWR | O_CLOEXEC);
		assert_true(out >= 0);
		assert_int_equal(fb_copy_fd_cow_from(in, out, first, NULL), 0);
		close(out);
		assert_file_is(dst, want, junk_len);
	}
	close(in);
	free(junk);
	free(want);
	free(data);
}

static unsigned mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_mode_bits_despite_umask(void **state)
{
	const struct dir *d = *state;
	static const unsigned modes[] = { 0640, 0755, 0600, 0444 };
	uint8_t data[4096];
	char src[300], dst[300];
	mode_t old = umask(077);
	size_t i;

	fill_random(data, sizeof(data));
	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(src, data, sizeof(data), modes[i]);
		assert_int_equal(mode_of(src), modes[i]);
		/* An existing dst's own mode does not matter either. */
		assert_int_equal(fb_copy_file_cow(src, dst, NULL), 0);
		assert_int_equal(mode_of(dst), modes[i]);
		assert_file_is(dst, data, sizeof(data));
		assert_int_equal(fb_copy_file_cow_from(src, dst, FB_COPY_BYTES,
						       NULL), 0);
		assert_int_equal(mode_of(dst), modes[i]);
	}
	umask(old);
}

static void test_longer_destination_replaced(void **state)
{
	const struct dir *d = *state;
	size_t long_len = 10 * MiB;
	uint8_t *junk = malloc(long_len), data[100];
	char src[300], dst[300];
	enum fb_copy_how first;

	assert_non_null(junk);
	memset(junk, 0xAA, long_len);
	fill_random(data, sizeof(data));
	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, sizeof(data), 0644);
	for (first = FB_COPY_REFLINK; first <= FB_COPY_BYTES; first++) {
		write_file(dst, junk, long_len, 0644);
		assert_int_equal(fb_copy_file_cow_from(src, dst, first, NULL),
				 0);
		assert_file_is(dst, data, sizeof(data));
	}
	/* An empty source empties dst too. */
	write_file(src, data, 0, 0644);
	assert_int_equal(fb_copy_file_cow(src, dst, NULL), 0);
	assert_file_is(dst, data, 0);
	assert_entries(d->path, 2);
	free(junk);
}

static void assert_zeros_at(int fd, off_t off)
{
	uint8_t buf[4096], zero[4096] = { 0 };

	assert_int_equal(pread(fd, buf, sizeof(buf), off), sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
}

static void test_sparse_stays_sparse(void **state)
{
	const struct dir *d = *state;
	size_t len = 1 * MiB;
	off_t at = 512 * MiB + 12345, size = 1 * GiB;
	uint8_t *data = random_buf(len), *got = malloc(len);
	char src[300], dst[300];
	enum fb_copy_how first, how;
	struct stat st;
	int fd;

	assert_non_null(got);
	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	fd = open(src, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	if (st.st_blocks * 512ll > 8 * MiB) {
		print_message("  this filesystem does not keep holes\n");
		free(got);
		free(data);
		skip();
	}
	for (first = FB_COPY_REFLINK; first <= FB_COPY_BYTES; first++) {
		how = 99;
		assert_int_equal(fb_copy_file_cow_from(src, dst, first, &how),
				 0);
		assert_int_equal(stat(dst, &st), 0);
		print_message("  %s: %lld KiB allocated\n",
			      fb_copy_how_name(how),
			      (long long)st.st_blocks / 2);
		assert_int_equal(st.st_size, size);
		assert_true(st.st_blocks * 512ll <= 4 * MiB);
		fd = open(dst, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, got, len, at), (ssize_t)len);
		assert_memory_equal(got, data, len);
		assert_zeros_at(fd, 0);
		assert_zeros_at(fd, at - 4096);
		assert_zeros_at(fd, at + (off_t)len);
		assert_zeros_at(fd, size - 4096);
		close(fd);
	}
	free(got);
	free(data);
}

/* Across filesystems FICLONE and copy_file_range give EXDEV (since Linux
 * 5.19, for filesystems without a copy_file_range of their own): the
 * byte copy has to take over. */
static void test_across_filesystems_falls_back(void **state)
{
	const struct dir *d = *state;
	size_t len = 2 * MiB + 1;
	uint8_t *data = random_buf(len);
	char src[64], dst[300];
	enum fb_copy_how how = 99;
	struct stat a, b;

	assert_int_equal(stat(d->path, &a), 0);
	if (stat("/dev/shm", &b) < 0 || a.st_dev == b.st_dev) {
		print_message("  no /dev/shm on another filesystem\n");
		free(data);
		skip();
	}
	snprintf(src, sizeof(src), "/dev/shm/forkbox-copy.%d", (int)getpid());
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, len, 0600);
	assert_int_equal(fb_copy_file_cow(src, dst, &how), 0);
	unlink(src);
	assert_int_equal(how, FB_COPY_BYTES);
	assert_file_is(dst, data, len);
	free(data);
}

static void test_missing_source(void **state)
{
	const struct dir *d = *state;
	char src[300], dst[300];
	enum fb_copy_how how = 99;

	path_in(src, sizeof(src), d, "no-such-file");
	path_in(dst, sizeof(dst), d, "dst");
	assert_int_equal(fb_copy_file_cow(src, dst, &how), -ENOENT);
	assert_int_equal(how, 99);
	assert_non_null(strstr(fb_last_error(), src));
	assert_false(exists(dst));
	assert_entries(d->path, 0);
}

static void test_source_not_regular(void **state)
{
	const struct dir *d = *state;
	char src[300], dst[300];

	path_in(src, sizeof(src), d, "fifo");
	path_in(dst, sizeof(dst), d, "dst");
	assert_int_equal(mkfifo(src, 0600), 0);
	/* Must not block in open waiting for a writer. */
	assert_int_equal(fb_copy_file_cow(src, dst, NULL), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "not a regular file"));
	assert_int_equal(fb_copy_file_cow(d->path, dst, NULL), -EINVAL);
	assert_false(exists(dst));
	assert_entries(d->path, 1);
}

/* The copy is made but cannot be put in place (a directory is in the
 * way): the temporary must go. */
static void test_failed_rename_removes_temporary(void **state)
{
	const struct dir *d = *state;
	uint8_t data[5000];
	char src[300], dst[300], inside[320];

	fill_random(data, sizeof(data));
	path_in(src, sizeof(src), d, "src");
	path_in(dst, sizeof(dst), d, "dst");
	write_file(src, data, sizeof(data), 0644);
	assert_int_equal(mkdir(dst, 0755), 0);
	snprintf(inside, sizeof(inside), "%s/keep", dst);
	write_file(inside, data, 1, 0644);
	assert_int_equal(fb_copy_file_cow(src, dst, NULL), -EISDIR);
	assert_non_null(strstr(fb_last_error(), "rename"));
	assert_entries(d->path, 2);
	assert_file_is(inside, data, 1);
}

/* Root ignores directory permissions; without CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH it is held to them like anyone. */
static int drop_dac_override(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -1;
	data[0].effective &= ~((1u << CAP_DAC_OVERRIDE) |
			       (1u << CAP_DAC_READ_SEARCH));
	return (int)syscall(SYS_capset, &hdr, data);
}

static void test_unwritable_destination_dir(void **state)
{
	const struct dir *d = *state;
	char src[300], ro[300], dst[320], msg[512] = "";
	uint8_t data[1000];
	int p[2], status, err;
	ssize_t n;
	pid_t pid;

	fill_random(data, sizeof(data));
	path_in(src, sizeof(src), d, "src");
	path_in(ro, sizeof(ro), d, "ro");
	snprintf(dst, sizeof(dst), "%s/dst", ro);
	write_file(src, data, sizeof(data), 0644);
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	assert_int_equal(pipe(p), 0);
	/* In a child, so that dropping capabilities does not outlive the
	 * test. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (geteuid() == 0 && drop_dac_override() < 0)
			_exit(2);
		err = fb_copy_file_cow(src, dst, NULL);
		if (write(p[1], &err, sizeof(err)) != sizeof(err) ||
		    write(p[1], fb_last_error(), strlen(fb_last_error())) < 0)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &err, sizeof(err)), sizeof(err));
	n = read(p[0], msg, sizeof(msg) - 1);
	assert_true(n >= 0);
	msg[n] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	print_message("  %s\n", msg);
	assert_int_equal(err, -EACCES);
	assert_non_null(strstr(msg, ro));
	assert_false(exists(dst));
	assert_entries(ro, 0);
}

/* Only with FORKBOX_REFLINK_DIR: a directory on a filesystem with
 * reflinks, where the copy must share the blocks rather than use more. */
static void test_reflink_dir(void **state)
{
	const char *dir = getenv("FORKBOX_REFLINK_DIR");
	size_t len = 64 * MiB;
	uint8_t *data;
	char src[300], dst[300];
	enum fb_copy_how how = 99;
	struct statvfs before, after;
	long long grew;
	int fd;

	if (!dir || !*dir) {
		print_message("  FORKBOX_REFLINK_DIR not set\n");
		skip();
	}
	data = random_buf(len);
	snprintf(src, sizeof(src), "%s/reflink-src.%d", dir, (int)getpid());
	snprintf(dst, sizeof(dst), "%s/reflink-dst.%d", dir, (int)getpid());
	write_file(src, data, len, 0644);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* Free space is only counted right once allocation is done. */
	assert_int_equal(syncfs(fd), 0);
	assert_int_equal(statvfs(dir, &before), 0);
	assert_int_equal(fb_copy_file_cow(src, dst, &how), 0);
	assert_int_equal(syncfs(fd), 0);
	assert_int_equal(statvfs(dir, &after), 0);
	close(fd);
	grew = ((long long)before.f_bfree - (long long)after.f_bfree) *
	       (long long)after.f_frsize;
	print_message("  %s: copied by %s, free space down %lld KiB\n", dir,
		      fb_copy_how_name(how), grew / KiB);
	assert_int_equal(how, FB_COPY_REFLINK);
	assert_true(grew < 8 * MiB);
	assert_file_is(dst, data, len);
	unlink(src);
	unlink(dst);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_content_unaligned_size,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_forced_path, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fd_copy_each_path, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_fd_copy_refuses_same_file_and_append, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_fd_copy_into_longer_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_bits_despite_umask,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_longer_destination_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_stays_sparse,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_across_filesystems_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_source, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_source_not_regular, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_rename_removes_temporary, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_unwritable_destination_dir, setup, teardown),
		cmocka_unit_test(test_reflink_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
