/* KSM (src/host/ksm.h): the sysfs counters read and the scanner set
 * against a fake directory (FORKBOX_KSM_SYSFS), and the call the VMM makes
 * for --ksm, checked on this process's own mappings: the kernel must show
 * them as mergeable ("mg" in /proc/self/smaps' VmFlags). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/ksm.h"
#include "util/error.h"

#define MiB (1ull << 20)

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void get(const char *name, char *buf, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
}

/* A fake /sys/kernel/mm/ksm as Linux 6.7+ has it (with general_profit). */
static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/fb-ksm-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	put("run", "0\n");
	put("pages_to_scan", "100\n");
	put("sleep_millisecs", "200\n");
	put("pages_shared", "10\n");
	put("pages_sharing", "512\n");
	put("pages_unshared", "77\n");
	put("full_scans", "3\n");
	put("general_profit", "-8192\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_status(void **state)
{
	struct fb_ksm_status st;

	assert_int_equal(fb_ksm_status_read(dir, &st), 0);
	assert_int_equal(st.run, 0);
	assert_int_equal(st.pages_to_scan, 100);
	assert_int_equal(st.sleep_millisecs, 200);
	assert_int_equal(st.pages_shared, 10);
	assert_int_equal(st.pages_sharing, 512);
	assert_int_equal(st.pages_unshared, 77);
	assert_int_equal(st.full_scans, 3);
	assert_true(st.has_general_profit);
	assert_int_equal(st.general_profit, -8192);
	assert_int_equal(st.page_size, sysconf(_SC_PAGESIZE));
	/* 512 pages of 4 KiB: 2 MiB saved. */
	assert_true(fb_ksm_saved_mib(&st) ==
		    512.0 * (double)st.page_size / (double)MiB);
}

/* Before Linux 6.7 there is no general_profit: not an error. */
static void test_status_old_kernel(void **state)
{
	struct fb_ksm_status st;
	char path[128];

	snprintf(path, sizeof(path), "%s/general_profit", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fb_ksm_status_read(dir, &st), 0);
	assert_false(st.has_general_profit);
	assert_int_equal(st.pages_sharing, 512);
}

static void test_status_bad_counters(void **state)
{
	struct fb_ksm_status st;
	char path[128];

	put("pages_sharing", "12abc\n");
	assert_int_equal(fb_ksm_status_read(dir, &st), -EINVAL);
	assert_non_null(strstr(fb_last_error(), "pages_sharing"));
	put("pages_sharing", "\n");
	assert_int_equal(fb_ksm_status_read(dir, &st), -EINVAL);
	put("pages_sharing", "99999999999999999999999\n");
	assert_int_equal(fb_ksm_status_read(dir, &st), -EINVAL);
	put("pages_sharing", "5\n");
	snprintf(path, sizeof(path), "%s/full_scans", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fb_ksm_status_read(dir, &st), -ENOENT);
	assert_non_null(strstr(fb_last_error(), "full_scans"));
}

static void test_no_ksm(void **state)
{
	struct fb_ksm_status st;
	char missing[96];

	snprintf(missing, sizeof(missing), "%s/none", dir);
	assert_int_equal(fb_ksm_status_read(missing, &st), -ENOENT);
	assert_non_null(strstr(fb_last_error(), "has no KSM"));
	assert_int_equal(fb_ksm_on(missing, 1000, 20), -ENOENT);
	assert_non_null(strstr(fb_last_error(), "has no KSM"));
	assert_int_equal(fb_ksm_off(missing, false), -ENOENT);
	/* A file where the directory should be: no KSM either. */
	snprintf(missing, sizeof(missing), "%s/run", dir);
	assert_int_equal(fb_ksm_status_read(missing, &st), -ENOENT);
}

static void test_on_off(void **state)
{
	char buf[32];

	assert_int_equal(fb_ksm_on(dir, FB_KSM_DEFAULT_PAGES_TO_SCAN,
				   FB_KSM_DEFAULT_SLEEP_MS), 0);
	get("run", buf, sizeof(buf));
	assert_string_equal(buf, "1\n");
	get("pages_to_scan", buf, sizeof(buf));
	assert_string_equal(buf, "1000\n");
	/* Shorter than what was there: written whole, nothing left over. */
	get("sleep_millisecs", buf, sizeof(buf));
	assert_string_equal(buf, "20\n");

	assert_int_equal(fb_ksm_off(dir, false), 0);
	get("run", buf, sizeof(buf));
	assert_string_equal(buf, "0\n");
	get("pages_to_scan", buf, sizeof(buf));
	assert_string_equal(buf, "1000\n");
	assert_int_equal(fb_ksm_off(dir, true), 0);
	get("run", buf, sizeof(buf));
	assert_string_equal(buf, "2\n");
}

/* A write that fails names the file (here run is a directory; as root,
 * file modes cannot make EACCES). */
static void test_write_fails(void **state)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/run", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(fb_ksm_on(dir, 1000, 20), -EISDIR);
	assert_non_null(strstr(fb_last_error(), "/run for writing"));
	assert_int_equal(rmdir(path), 0);
}

static void test_env(void **state)
{
	unsetenv("FORKBOX_KSM_SYSFS");
	assert_string_equal(fb_ksm_sysfs_dir(), "/sys/kernel/mm/ksm");
	setenv("FORKBOX_KSM_SYSFS", "", 1);
	assert_string_equal(fb_ksm_sysfs_dir(), "/sys/kernel/mm/ksm");
	setenv("FORKBOX_KSM_SYSFS", dir, 1);
	assert_string_equal(fb_ksm_sysfs_dir(), dir);
	unsetenv("FORKBOX_KSM_SYSFS");

	unsetenv("FORKBOX_KSM");
	assert_false(fb_ksm_wanted(false));
	assert_true(fb_ksm_wanted(true));
	setenv("FORKBOX_KSM", "1", 1);
	assert_true(fb_ksm_wanted(false));
	setenv("FORKBOX_KSM", "0", 1);
	assert_false(fb_ksm_wanted(false));
	unsetenv("FORKBOX_KSM");
}

/* The VmFlags of the mapping holding addr, from /proc/self/smaps. */
static bool vmflags_of(const void *addr, char *flags, size_t len)
{
	unsigned long start, end, a = (unsigned long)addr;
	bool inside = false, found = false;
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		/* A mapping's first line; "Key: value" lines never
		 * parse as two hex numbers around a dash. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			inside = a >= start && a < end;
		else if (inside && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, len, "%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool mergeable(const void *addr)
{
	char flags[512];

	assert_true(vmflags_of(addr, flags, sizeof(flags)));
	return strstr(flags, " mg") != NULL;
}

/* What the kernel says of this process as a whole (Linux >= 6.8 has the
 * line): -1 when it does not say. */
static int merge_any(void)
{
	char line[128];
	int r = -1;
	FILE *f = fopen("/proc/self/ksm_stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "ksm_merge_any: ", 15))
			r = !strncmp(line + 15, "yes", 3);
	fclose(f);
	return r;
}

/* Guest RAM as fb_guest_mem_init maps it, and a restore's or fork
 * child's: a file mapped MAP_PRIVATE over part of it. After the helper
 * --ksm calls, the kernel shows all of it mergeable. */
static void test_mark_guest_ram(void **state)
{
	size_t size = 8 * MiB;
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fd = memfd_create("fb-ksm-layer", MFD_CLOEXEC), how;
	uint8_t *fresh;

	assert_ptr_not_equal(ram, MAP_FAILED);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * MiB), 0);
	assert_ptr_not_equal(mmap(ram + 4 * MiB, 2 * MiB, PROT_READ |
				  PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0),
			     MAP_FAILED);
	memset(ram, 0x5a, size); /* pages present, the file's copied */
	if (merge_any() == 1 || mergeable(ram))
		skip(); /* marked before: the test would prove nothing */

	how = fb_ksm_mark_mergeable(ram, size);
	if (how == -EINVAL) {
		/* A kernel without KSM: what --ksm notices and goes on. */
		print_message("no KSM here: %s\n", fb_last_error());
		skip();
	}
	assert_true(how == FB_KSM_BY_PRCTL || how == FB_KSM_BY_MADVISE);
	assert_true(mergeable(ram));
	assert_true(mergeable(ram + 4 * MiB));
	assert_true(mergeable(ram + size - 1));
	if (how == FB_KSM_BY_PRCTL) {
		/* The whole process, and mappings made later (what a
		 * fork's remap of guest RAM makes) too. */
		assert_int_not_equal(merge_any(), 0);
		fresh = mmap(NULL, MiB, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_ptr_not_equal(fresh, MAP_FAILED);
		fresh[0] = 1;
		assert_true(mergeable(fresh));
		munmap(fresh, MiB);
	}
	/* Called again (a second VM in one process): still fine. */
	assert_true(fb_ksm_mark_mergeable(ram, size) > 0);
	munmap(ram, size);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_old_kernel, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_bad_counters,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_ksm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		/* Last: PR_SET_MEMORY_MERGE stays on for this process. */
		cmocka_unit_test(test_mark_guest_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
