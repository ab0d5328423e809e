/* The snapshot state file and snapshot directories: a round trip, and
 * every kind of damage refused with one clear line before anything is
 * allocated or returned. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot/format.h"
#include "util/error.h"
#include "util/le.h"

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/fb-snapfmt-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return fb_snap_remove_tree(dir);
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
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

static void spill(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Recomputes the header CRC (bytes 44..47) after a deliberate edit. */
static void fix_header_crc(uint8_t *h)
{
	fb_put_le32(h + 44, 0);
	fb_put_le32(h + 44, fb_snap_crc32(0, h, FB_SNAP_HEADER_SIZE));
}

/* Recomputes the CRC of the section whose header is at off. */
static void fix_section_crc(uint8_t *buf, size_t off, uint64_t len)
{
	uint32_t crc;

	fb_put_le32(buf + off + 12, 0);
	crc = fb_snap_crc32(0, buf + off, FB_SNAP_SECTION_HEADER_SIZE);
	crc = fb_snap_crc32(crc, buf + off + FB_SNAP_SECTION_HEADER_SIZE, len);
	fb_put_le32(buf + off + 12, crc);
}

static const char cfg[] = "config!";	/* 8 bytes with the NUL */
static uint8_t dev[1001];

/* A state file with sections of several types, a repeated one, an empty
 * one and one whose length is not a multiple of 8. */
static void write_sample(const char *path, const struct fb_snap_cpu *cpu)
{
	struct fb_snap_writer *w;

	for (size_t i = 0; i < sizeof(dev); i++)
		dev[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(fb_snap_writer_new(&w, FB_SNAP_F_FULL), 0);
	if (cpu)
		fb_snap_writer_set_cpu(w, cpu);
	fb_snap_writer_set_created(w, 1700000000);
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_VM_CONFIG, 3, cfg,
					    sizeof(cfg)), 0);
	for (int i = 0; i < 3; i++) {
		char v[16];

		snprintf(v, sizeof(v), "vcpu-%d", i);
		assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_VCPU, 1, v,
						    strlen(v)), 0);
	}
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_VM_STATE, 1, NULL,
					    0), 0);
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE, 2, dev,
					    sizeof(dev)), 0);
	assert_int_equal(fb_snap_writer_write(w, path), 0);
	fb_snap_writer_free(w);
}

static void test_round_trip(void **state)
{
	char path[128];
	struct fb_snap *snap;
	struct fb_snap_cpu host;
	const void *data;
	uint64_t len;
	uint32_t version;

	path_in(path, sizeof(path), "state");
	write_sample(path, NULL);
	assert_int_equal(fb_snap_read(path, &snap), 0);
	fb_snap_host_cpu(&host);
	assert_int_equal(snap->version, FB_SNAPSHOT_VERSION);
	assert_int_equal(snap->flags, FB_SNAP_F_FULL);
	assert_string_equal(snap->cpu.vendor, host.vendor);
	assert_int_equal(snap->cpu.family, host.family);
	assert_int_equal(snap->cpu.model, host.model);
	assert_int_equal(snap->created, 1700000000);
	assert_int_equal(snap->nr_sections, 6);

	assert_int_equal(fb_snap_section(snap, FB_SNAP_SEC_VM_CONFIG, &data,
					 &len), 0);
	assert_int_equal(len, sizeof(cfg));
	assert_memory_equal(data, cfg, sizeof(cfg));
	assert_int_equal(fb_snap_section_count(snap, FB_SNAP_SEC_VCPU), 3);
	for (uint32_t i = 0; i < 3; i++) {
		char v[16];

		snprintf(v, sizeof(v), "vcpu-%u", i);
		assert_int_equal(fb_snap_section_at(snap, FB_SNAP_SEC_VCPU, i,
						    &version, &data, &len), 0);
		assert_int_equal(version, 1);
		assert_int_equal(len, strlen(v));
		assert_memory_equal(data, v, len);
		assert_int_equal((uintptr_t)data % FB_SNAP_ALIGN, 0);
	}
	assert_int_equal(fb_snap_section_at(snap, FB_SNAP_SEC_VCPU, 3, NULL,
					    &data, &len), -ENOENT);
	assert_int_equal(fb_snap_section(snap, FB_SNAP_SEC_VM_STATE, &data,
					 &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(fb_snap_section_at(snap, FB_SNAP_SEC_DEVICE, 0,
					    &version, &data, &len), 0);
	assert_int_equal(version, 2);
	assert_int_equal(len, sizeof(dev));
	assert_memory_equal(data, dev, sizeof(dev));
	assert_int_equal(fb_snap_section(snap, FB_SNAP_SEC_MEMORY_MAP, &data,
					 &len), -ENOENT);
	fb_snap_free(snap);

	/* No temporary file is left next to it. */
	{
		DIR *d = opendir(dir);
		struct dirent *de;
		int n = 0;

		while ((de = readdir(d)))
			n += de->d_name[0] != '.';
		closedir(d);
		assert_int_equal(n, 1);
	}
}

static void expect_refused(const char *path, const char *needle)
{
	struct fb_snap *snap = (void *)1;
	int err = fb_snap_read(path, &snap);

	assert_true(err < 0);
	assert_null(snap);
	if (!strstr(fb_last_error(), needle) || strchr(fb_last_error(), '\n'))
		fail_msg("expected \"%s\" in one line, got \"%s\"", needle,
			 fb_last_error());
}

static void test_truncated_everywhere(void **state)
{
	char path[128], cut[128];
	uint8_t *buf;
	size_t len;

	path_in(path, sizeof(path), "state");
	path_in(cut, sizeof(cut), "cut");
	write_sample(path, NULL);
	buf = slurp(path, &len);
	for (size_t n = 0; n < len; n++) {
		spill(cut, buf, n);
		expect_refused(cut, "truncated");
	}
	free(buf);
}

static void test_flipped_bytes(void **state)
{
	char path[128], bad[128];
	uint8_t *buf;
	size_t len;

	path_in(path, sizeof(path), "state");
	path_in(bad, sizeof(bad), "bad");
	write_sample(path, NULL);
	buf = slurp(path, &len);
	/* Every single flipped bit anywhere in the file is refused. */
	for (size_t off = 0; off < len; off++) {
		for (int bit = 0; bit < 8; bit += 3) {
			struct fb_snap *snap;

			buf[off] ^= (uint8_t)(1u << bit);
			spill(bad, buf, len);
			if (fb_snap_read(bad, &snap) == 0)
				fail_msg("a flip of bit %d at offset %zu "
					 "passed", bit, off);
			assert_true(fb_last_error()[0] != '\0');
			buf[off] ^= (uint8_t)(1u << bit);
		}
	}
	/* A payload byte: the section's CRC names the section. */
	buf[len - 8] ^= 0x40;
	spill(bad, buf, len);
	expect_refused(bad, "section 5 (device) is corrupt (CRC mismatch)");
	buf[len - 8] ^= 0x40;
	/* A header byte (the creation time): the header's CRC. */
	buf[50] ^= 1;
	spill(bad, buf, len);
	expect_refused(bad, "snapshot header is corrupt");
	buf[50] ^= 1;
	/* Not a snapshot at all. */
	spill(bad, "hello, world, this is not a snapshot state file at all, "
	      "nope, not at all", 72);
	expect_refused(bad, "not a forkbox snapshot state file (bad magic)");
	free(buf);
}

static void test_versions(void **state)
{
	char path[128], bad[128];
	uint8_t *buf;
	size_t len;

	path_in(path, sizeof(path), "state");
	path_in(bad, sizeof(bad), "bad");
	write_sample(path, NULL);
	buf = slurp(path, &len);
	assert_int_equal(fb_le32(buf + 8), FB_SNAPSHOT_VERSION);

	fb_put_le32(buf + 8, FB_SNAPSHOT_VERSION + 1);
	fix_header_crc(buf);
	spill(bad, buf, len);
	expect_refused(bad, "snapshot version 2 is newer than this forkbox "
		       "understands (1)");
	/* Refused on the version even with a stale CRC. */
	fb_put_le32(buf + 8, 77);
	spill(bad, buf, len);
	expect_refused(bad, "snapshot version 77 is newer");
	fb_put_le32(buf + 8, 0);
	fix_header_crc(buf);
	spill(bad, buf, len);
	expect_refused(bad, "snapshot version 0 is not supported");

	/* Unknown flags, even with a good CRC. */
	fb_put_le32(buf + 8, FB_SNAPSHOT_VERSION);
	fb_put_le32(buf + 12, 0x4);
	fix_header_crc(buf);
	spill(bad, buf, len);
	expect_refused(bad, "unknown snapshot flags 0x4");
	free(buf);
}

static void test_cpu_checked(void **state)
{
	struct fb_snap_cpu fake, host;
	char path[128];
	char want[128];
	struct fb_snap *snap;

	fb_snap_host_cpu(&host);
	assert_int_equal(strlen(host.vendor), 12);

	path_in(path, sizeof(path), "state");
	fake = host;
	memcpy(fake.vendor, "FakeVendorXY", 13);
	write_sample(path, &fake);
	snprintf(want, sizeof(want), "was taken on a FakeVendorXY CPU, this "
		 "host's is %s: restore refused", host.vendor);
	expect_refused(path, want);
	assert_int_equal(fb_snap_read(path, &snap), -ENOEXEC);
	/* Inspection and merges may read it. */
	assert_int_equal(fb_snap_read_flags(path, FB_SNAP_READ_ANY_CPU,
					    &snap), 0);
	assert_string_equal(snap->cpu.vendor, "FakeVendorXY");
	fb_snap_free(snap);

	fake = host;
	fake.model = host.model + 1;
	write_sample(path, &fake);
	expect_refused(path, "restore refused");
	expect_refused(path, "model");
	/* The stepping is recorded, not checked. */
	fake = host;
	fake.stepping = host.stepping + 1;
	write_sample(path, &fake);
	assert_int_equal(fb_snap_read(path, &snap), 0);
	assert_int_equal(snap->cpu.stepping, host.stepping + 1);
	fb_snap_free(snap);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Reads path in a child whose address space cannot grow by more than
 * 16 MiB: a reader that allocated what the file claims would fail there
 * with ENOMEM instead of the expected message. */
static void refused_without_allocating(const char *path, const char *needle)
{
#ifdef UNDER_ASAN
	expect_refused(path, needle);
#else
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct fb_snap *snap;
		struct rlimit rl;
		unsigned long pages = 0;
		FILE *f = fopen("/proc/self/statm", "r");

		if (!f || fscanf(f, "%lu", &pages) != 1)
			_exit(3);
		fclose(f);
		rl.rlim_cur = rl.rlim_max =
			pages * (unsigned long)getpagesize() + (16ul << 20);
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			_exit(4);
		if (fb_snap_read(path, &snap) == 0)
			_exit(1);
		_exit(strstr(fb_last_error(), needle) ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_refused(path, needle);
#endif
}

static void test_lengths_capped(void **state)
{
	char path[128], bad[128];
	const size_t first = FB_SNAP_HEADER_SIZE; /* section 0's header */
	uint8_t *buf;
	size_t len;
	double t;
	int fd;

	path_in(path, sizeof(path), "state");
	path_in(bad, sizeof(bad), "bad");
	write_sample(path, NULL);
	buf = slurp(path, &len);

	/* 2^62 bytes: over the cap, refused at once (before its CRC is even
	 * looked at), nothing allocated. */
	fb_put_le64(buf + first + 16, 1ull << 62);
	spill(bad, buf, len);
	t = now();
	expect_refused(bad, "section 0 (vm-config) claims 4611686018427387904 "
		       "bytes, over the 64 MiB cap");
	assert_true(now() - t < 0.1);
	refused_without_allocating(bad, "over the 64 MiB cap");
	/* Every length from 2^32 to 2^63: never a wrap-around. */
	for (int shift = 32; shift < 64; shift++) {
		fb_put_le64(buf + first + 16, 1ull << shift);
		spill(bad, buf, len);
		expect_refused(bad, "over the 64 MiB cap");
	}
	fb_put_le64(buf + first + 16, UINT64_MAX);
	spill(bad, buf, len);
	expect_refused(bad, "over the 64 MiB cap");

	/* Under the cap but past the end of the file (with a correct CRC
	 * field or not, the length is checked first). */
	fb_put_le64(buf + first + 16, 60ull << 20);
	fix_section_crc(buf, first, 0);
	spill(bad, buf, len);
	refused_without_allocating(bad, "truncated: section 0 (vm-config) "
				   "needs 62914560 bytes");
	fb_put_le64(buf + first + 16, sizeof(cfg));
	fix_section_crc(buf, first, sizeof(cfg));

	/* A section count over the cap, with a valid header CRC. */
	fb_put_le32(buf + 40, 0xffffffffu);
	fix_header_crc(buf);
	spill(bad, buf, len);
	expect_refused(bad, "4294967295 sections, over the cap of 4096");
	/* Under the cap, more than the file can hold. */
	fb_put_le32(buf + 40, 4000);
	fix_header_crc(buf);
	spill(bad, buf, len);
	refused_without_allocating(bad, "truncated: 4000 sections");
	/* Fewer than there are: trailing data. */
	fb_put_le32(buf + 40, 5);
	fix_header_crc(buf);
	spill(bad, buf, len);
	expect_refused(bad, "bytes of trailing data");
	fb_put_le32(buf + 40, 6);
	fix_header_crc(buf);

	/* Trailing bytes after a good file. */
	{
		uint8_t *more = calloc(1, len + 8);

		memcpy(more, buf, len);
		spill(bad, more, len + 8);
		expect_refused(bad, "8 bytes of trailing data");
		free(more);
	}

	/* A state file bigger than the cap is refused from its size. */
	fd = open(bad, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(ftruncate(fd, (off_t)FB_SNAP_MAX_STATE + 4096), 0);
	close(fd);
	refused_without_allocating(bad, "over the 256 MiB cap");
	free(buf);

	/* A directory, a missing file. */
	expect_refused(dir, "is not a regular file");
	path_in(bad, sizeof(bad), "nope");
	expect_refused(bad, "No such file");
}

static void test_section_order_checked(void **state)
{
	char path[128], bad[128];
	uint8_t *buf;
	size_t len, off;

	path_in(path, sizeof(path), "state");
	path_in(bad, sizeof(bad), "bad");
	write_sample(path, NULL);
	buf = slurp(path, &len);
	/* Section 1 is vcpu 0; claim it is vcpu 5 (with a good CRC). */
	off = FB_SNAP_HEADER_SIZE + FB_SNAP_SECTION_HEADER_SIZE + 8;
	assert_int_equal(fb_le32(buf + off), FB_SNAP_SEC_VCPU);
	fb_put_le32(buf + off + 4, 5);
	fix_section_crc(buf, off, 6);
	spill(bad, buf, len);
	expect_refused(bad, "section 1 (vcpu) has index 5, expected 0");
	free(buf);
}

static void test_writer_caps(void **state)
{
	struct fb_snap_writer *w;
	static const uint8_t one;

	assert_int_equal(fb_snap_writer_new(&w, 0), -EINVAL);
	assert_int_equal(fb_snap_writer_new(&w, FB_SNAP_F_FULL |
					    FB_SNAP_F_DIFF), -EINVAL);
	assert_int_equal(fb_snap_writer_new(&w, FB_SNAP_F_DIFF), 0);
	/* The length is checked before the data is touched. */
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE, 1, &one,
					    (uint64_t)FB_SNAP_MAX_SECTION + 1),
			 -EFBIG);
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE, 1, &one,
					    1ull << 62), -EFBIG);
	for (int i = 0; i < FB_SNAP_MAX_SECTIONS; i++)
		assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE, 1,
						    &one, 1), 0);
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE, 1, &one, 1),
			 -E2BIG);
	/* The full writer still round-trips (4096 sections). */
	{
		char path[128];
		struct fb_snap *snap;

		path_in(path, sizeof(path), "many");
		assert_int_equal(fb_snap_writer_write(w, path), 0);
		assert_int_equal(fb_snap_read(path, &snap), 0);
		assert_int_equal(snap->flags, FB_SNAP_F_DIFF);
		assert_int_equal(fb_snap_section_count(snap,
						       FB_SNAP_SEC_DEVICE),
				 FB_SNAP_MAX_SECTIONS);
		fb_snap_free(snap);
	}
	fb_snap_writer_free(w);
}

/* --- directories ----------------------------------------------------- */

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void put_file(const char *d, const char *name, const char *text)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", d, name);
	spill(p, text, strlen(text));
}

static void expect_file(const char *d, const char *name, const char *text)
{
	char p[256];
	uint8_t *buf;
	size_t len;

	snprintf(p, sizeof(p), "%s/%s", d, name);
	buf = slurp(p, &len);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(buf, text, len);
	free(buf);
}

static void test_dir_atomic(void **state)
{
	char final[128], p[256];
	struct stat st;
	char *tmp;

	path_in(final, sizeof(final), "snap");

	/* Abort leaves nothing. */
	assert_int_equal(fb_snap_dir_begin(final, &tmp), 0);
	assert_non_null(strstr(tmp, "/snap.tmp-"));
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	put_file(tmp, "state", "one");
	assert_int_equal(fb_snap_dir_abort(tmp), 0);
	free(tmp);
	assert_int_equal(count_entries(dir), 0);

	/* Commit: the whole directory appears under its name. */
	assert_int_equal(fb_snap_dir_begin(final, &tmp), 0);
	put_file(tmp, "state", "one");
	put_file(tmp, "memory", "ram");
	assert_int_equal(stat(final, &st), -1);
	assert_int_equal(fb_snap_dir_commit(tmp, final, 0), 0);
	assert_int_equal(stat(tmp, &st), -1);
	free(tmp);
	expect_file(final, "state", "one");
	expect_file(final, "memory", "ram");
	assert_int_equal(count_entries(dir), 1);

	/* An existing snapshot is not overwritten, and is left whole. */
	assert_int_equal(fb_snap_dir_begin(final, &tmp), 0);
	put_file(tmp, "state", "two");
	assert_int_equal(fb_snap_dir_commit(tmp, final, 0), -EEXIST);
	assert_non_null(strstr(fb_last_error(), "already exists: not "
			       "overwritten"));
	expect_file(final, "state", "one");
	expect_file(final, "memory", "ram");
	expect_file(tmp, "state", "two");

	/* Unless told: then it is replaced whole, and the old one is gone. */
	assert_int_equal(fb_snap_dir_commit(tmp, final, FB_SNAP_DIR_REPLACE),
			 0);
	assert_int_equal(stat(tmp, &st), -1);
	free(tmp);
	expect_file(final, "state", "two");
	snprintf(p, sizeof(p), "%s/memory", final);
	assert_int_equal(stat(p, &st), -1);
	assert_int_equal(count_entries(dir), 1);

	/* A trailing slash names the same directory. */
	snprintf(p, sizeof(p), "%s/", final);
	assert_int_equal(fb_snap_dir_begin(p, &tmp), 0);
	assert_null(strstr(tmp, "/.tmp-"));
	assert_int_equal(fb_snap_dir_abort(tmp), 0);
	free(tmp);

	/* Begin in a directory that does not exist: one clear line. */
	snprintf(p, sizeof(p), "%s/no/such/snap", dir);
	assert_int_equal(fb_snap_dir_begin(p, &tmp), -ENOENT);
	assert_null(tmp);
	assert_non_null(strstr(fb_last_error(), "mkdtemp"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated_everywhere,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_versions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cpu_checked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lengths_capped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_section_order_checked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_caps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dir_atomic, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
