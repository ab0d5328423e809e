/* The VMM end to end on this host's own KVM (KVM-PVM included), with the
 * tiny guest of tests/guest/tiny.S: each way a guest can end, the run
 * channel, a hostile frame, a deadline, and SMP set-up; and with its ELF
 * twin tests/guest/tiny-pvh.S, the PVH entry: 32-bit protected mode, the
 * start_info in %ebx, the memory map, RSDP and initrd it names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "forkbox/forkbox.h"

static const char *tiny(void)
{
	const char *p = getenv("TINY_GUEST");

	return p ? p : "build/tests/tiny-guest.bin";
}

/* The ELF twin: TINY_PVH_GUEST, else tiny-pvh.elf beside the tiny
 * guest. */
static const char *tiny_pvh(void)
{
	static char path[512];
	const char *p = getenv("TINY_PVH_GUEST");
	char *slash;

	if (p && *p)
		return p;
	snprintf(path, sizeof(path), "%s", tiny());
	slash = strrchr(path, '/');
	snprintf(slash ? slash + 1 : path,
		 sizeof(path) - (size_t)(slash ? slash + 1 - path : 0),
		 "tiny-pvh.elf");
	return path;
}

/* Boots the tiny guest with cmdline; returns its exit and its console. */
static enum fb_vm_exit_reason boot(const char *cmdline, unsigned cpus,
				   unsigned timeout_ms, char *console,
				   size_t console_len)
{
	int log = memfd_create("console", 0);
	struct fb_vm_config cfg = {
		.cpus = cpus, .mem_mib = 32, .kernel = tiny(),
		.cmdline = cmdline, .console_log_fd = log,
		.console_live_fd = -1, .timeout_ms = timeout_ms,
	};
	struct fb_vm_exit ex;
	struct fb_vm *vm;
	ssize_t n;

	assert_true(log >= 0);
	assert_int_equal(fb_vm_create(&cfg, &vm), 0);
	assert_int_equal(fb_vm_run(vm, &ex), 0);
	fb_vm_destroy(vm);
	n = pread(log, console, console_len - 1, 0);
	assert_true(n >= 0);
	console[n] = '\0';
	close(log);
	return ex.reason;
}

static void test_poweroff_and_console(void **state)
{
	char console[4096];

	assert_int_equal(boot("poweroff please", 1, 0, console,
			      sizeof(console)), FB_VM_EXIT_POWEROFF);
	/* The guest echoed the command line it found via the zero page. */
	assert_string_equal(console, "poweroff please\n");
}

static void test_reboot_paths(void **state)
{
	char console[4096];

	assert_int_equal(boot("reset", 1, 0, console, sizeof(console)),
			 FB_VM_EXIT_REBOOT);
	assert_int_equal(boot("kbd", 1, 0, console, sizeof(console)),
			 FB_VM_EXIT_REBOOT);
	assert_int_equal(boot("triple", 1, 0, console, sizeof(console)),
			 FB_VM_EXIT_REBOOT);
}

static void test_panic(void **state)
{
	char console[4096];

	assert_int_equal(boot("n", 1, 0, console, sizeof(console)),
			 FB_VM_EXIT_PANIC);
	assert_non_null(strstr(console, "Kernel panic - not syncing"));
}

static void test_timeout_kicks_halted_vcpu(void **state)
{
	char console[4096];

	assert_int_equal(boot("hang", 1, 300, console, sizeof(console)),
			 FB_VM_EXIT_TIMEOUT);
}

static void test_smp_poweroff(void **state)
{
	char console[4096];

	/* The APs wait for INIT/SIPI in the kernel; power-off must still
	 * end every vCPU thread. */
	assert_int_equal(boot("off", 4, 0, console, sizeof(console)),
			 FB_VM_EXIT_POWEROFF);
}

static void test_garbage_io_survives(void **state)
{
	char console[4096];

	assert_int_equal(boot("garbage", 1, 0, console, sizeof(console)),
			 FB_VM_EXIT_POWEROFF);
}

/* A hostile virtio driver: the VM stops with a message naming the device
 * and what it did; the host process goes on (this test still runs). */
static void hostile_virtio(const char *cmdline, const char *why)
{
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = tiny(), .cmdline = cmdline,
		.console_log_fd = -1, .console_live_fd = -1, .rng = true,
		.timeout_ms = 20000,
	};
	struct fb_vm_exit ex;
	struct fb_vm *vm;

	assert_int_equal(fb_vm_create(&cfg, &vm), 0);
	assert_int_equal(fb_vm_run(vm, &ex), 0);
	fb_vm_destroy(vm);
	assert_int_equal(ex.reason, FB_VM_EXIT_CRASH);
	assert_non_null(strstr(ex.message, "virtio-rng"));
	assert_non_null(strstr(ex.message, why));
}

static void test_virtio_descriptor_loop(void **state)
{
	hostile_virtio("v", "loops");
}

static void test_virtio_wild_buffer(void **state)
{
	hostile_virtio("w", "not in RAM");
}

static void test_bad_kernel(void **state)
{
	char path[] = "/tmp/fb-badkernel-XXXXXX";
	int fd = mkstemp(path);
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = path, .cmdline = "",
		.console_log_fd = -1, .console_live_fd = -1,
	};
	struct fb_vm *vm;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a kernel", 12), 12);
	close(fd);
	assert_int_equal(fb_vm_create(&cfg, &vm), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), path));
	unlink(path);
}

/* Boots kernel with cmdline and initrd (may be NULL). */
static enum fb_vm_exit_reason boot_kernel(const char *kernel,
					  const char *cmdline,
					  const char *initrd, unsigned cpus,
					  unsigned timeout_ms, char *console,
					  size_t console_len)
{
	int log = memfd_create("console", 0);
	struct fb_vm_config cfg = {
		.cpus = cpus, .mem_mib = 32, .kernel = kernel,
		.initrd = initrd, .cmdline = cmdline, .console_log_fd = log,
		.console_live_fd = -1, .timeout_ms = timeout_ms,
	};
	struct fb_vm_exit ex;
	struct fb_vm *vm;
	ssize_t n;

	assert_true(log >= 0);
	if (fb_vm_create(&cfg, &vm) < 0)
		fail_msg("fb_vm_create %s: %s", kernel, fb_last_error());
	assert_int_equal(fb_vm_run(vm, &ex), 0);
	fb_vm_destroy(vm);
	n = pread(log, console, console_len - 1, 0);
	assert_true(n >= 0);
	console[n] = '\0';
	close(log);
	return ex.reason;
}

/* The PVH entry on real KVM: the guest runs 32-bit code with paging off,
 * finds the start_info magic in %ebx and reads back what it names. */
static void test_pvh_entry(void **state)
{
	static const char want[] =
		"pvh magic 336ec578 version 00000001\n"
		"mode 32 paging off\n"
		"cmdline pvh says hi\n"
		"memmap 00000003\n"
		"00000000 0009fc00 00000001\n"
		"0009fc00 00060400 00000002\n"
		"00100000 01f00000 00000001\n"
		"rsdp RSD PTR \n"
		"module pvh-initrd-01234\n";
	char initrd[] = "/tmp/fb-pvh-initrd-XXXXXX";
	int fd = mkstemp(initrd);
	char console[4096];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "pvh-initrd-0123456789", 21), 21);
	close(fd);
	assert_int_equal(boot_kernel(tiny_pvh(), "pvh says hi", initrd, 1, 0,
				     console, sizeof(console)),
			 FB_VM_EXIT_POWEROFF);
	unlink(initrd);
	assert_string_equal(console, want);
}

static void test_pvh_smp_and_timeout(void **state)
{
	char console[4096];

	/* No initrd: no module. The APs wait for INIT/SIPI as with a
	 * bzImage; power-off ends every vCPU thread. */
	assert_int_equal(boot_kernel(tiny_pvh(), "smp", NULL, 3, 0, console,
				     sizeof(console)), FB_VM_EXIT_POWEROFF);
	assert_non_null(strstr(console, "module none\n"));
	assert_int_equal(boot_kernel(tiny_pvh(), "hang", NULL, 1, 300,
				     console, sizeof(console)),
			 FB_VM_EXIT_TIMEOUT);
}

/* The same ELF without its PVH note is refused before anything runs. */
static void test_pvh_no_note(void **state)
{
	static const uint8_t note[] = { 18, 0, 0, 0, 'X', 'e', 'n', 0 };
	char path[] = "/tmp/fb-pvh-nonote-XXXXXX";
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = path, .cmdline = "",
		.console_log_fd = -1, .console_live_fd = -1,
	};
	uint8_t buf[65536], *at;
	struct fb_vm *vm;
	FILE *f = fopen(tiny_pvh(), "rb");
	size_t n;
	int fd;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	at = memmem(buf, n, note, sizeof(note));
	assert_non_null(at);
	at[0] = 17; /* another Xen note type */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
	assert_int_equal(fb_vm_create(&cfg, &vm), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), path));
	assert_non_null(strstr(fb_last_error(), "PVH"));
	unlink(path);
}

struct paused_vm {
	struct fb_vm *vm;
	struct fb_vm_exit ex;
};

static void *run_vm(void *arg)
{
	struct paused_vm *p = arg;

	fb_vm_run(p->vm, &p->ex);
	return NULL;
}

/* Waits (polling its size: a test helper) until the log grows past n. */
static bool grows_past(int fd, off_t n, int tries)
{
	for (int i = 0; i < tries; i++) {
		if (lseek(fd, 0, SEEK_END) > n)
			return true;
		usleep(10000);
	}
	return false;
}

/* Pause parks the vCPU (no output while paused); resume lets it go on,
 * which a kick left pending would prevent. */
static void test_pause_resume(void **state)
{
	int log = memfd_create("console", 0);
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = tiny(), .cmdline = "z",
		.console_log_fd = log, .console_live_fd = -1,
	};
	struct paused_vm p;
	pthread_t t;
	off_t at_pause;

	assert_int_equal(fb_vm_create(&cfg, &p.vm), 0);
	assert_int_equal(pthread_create(&t, NULL, run_vm, &p), 0);
	assert_true(grows_past(log, 1000, 500));
	for (int round = 0; round < 3; round++) {
		assert_int_equal(fb_vm_pause(p.vm), 0);
		at_pause = lseek(log, 0, SEEK_END);
		usleep(50000);
		/* A line may have been half done; nothing more comes. */
		assert_true(lseek(log, 0, SEEK_END) <= at_pause + 32);
		at_pause = lseek(log, 0, SEEK_END);
		fb_vm_resume(p.vm);
		assert_true(grows_past(log, at_pause + 1000, 500));
	}
	fb_vm_stop(p.vm);
	pthread_join(t, NULL);
	assert_int_equal(p.ex.reason, FB_VM_EXIT_STOPPED);
	fb_vm_destroy(p.vm);
	close(log);
}

struct run_out {
	int status;
	int err;
	char out[64], errbuf[64];
};

static void run_tiny(const char *const *argv, struct run_out *r)
{
	char initrd[] = "/tmp/fb-initrd-XXXXXX";
	int ifd = mkstemp(initrd);
	int ofd = memfd_create("out", 0), efd = memfd_create("err", 0);
	struct fb_run_config cfg = {
		.cpus = 1, .mem_mib = 64, .kernel = tiny(), .initrd = initrd,
		.console_live_fd = -1, .argv = argv,
		.stdout_fd = ofd, .stderr_fd = efd, .timeout_ms = 20000,
	};
	struct fb_run_result res;
	ssize_t n;

	assert_true(ifd >= 0 && ofd >= 0 && efd >= 0);
	assert_int_equal(write(ifd, "initrd", 6), 6);
	close(ifd);
	r->err = fb_run(&cfg, &res);
	r->status = res.exit_status;
	n = pread(ofd, r->out, sizeof(r->out) - 1, 0);
	r->out[n > 0 ? n : 0] = '\0';
	n = pread(efd, r->errbuf, sizeof(r->errbuf) - 1, 0);
	r->errbuf[n > 0 ? n : 0] = '\0';
	close(ofd);
	close(efd);
	unlink(initrd);
}

static void test_run_channel(void **state)
{
	/* fb_run's command line starts "console=": channel mode. */
	const char *argv[] = { "sh", "-c", "echo hi; exit 3", NULL };
	struct run_out r;

	run_tiny(argv, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 3);
	assert_string_equal(r.out, "hi\n");
	assert_string_equal(r.errbuf, "err\n");
}

static void test_run_command_too_long(void **state)
{
	static char big[1500];
	const char *argv[] = { "echo", big, NULL };
	struct run_out r;

	memset(big, 'a', sizeof(big) - 1);
	run_tiny(argv, &r);
	assert_int_equal(r.err, -E2BIG);
	assert_non_null(strstr(fb_last_error(), "too long"));
}

static void test_hostile_frame_is_refused(void **state)
{
	int log = memfd_create("console", 0);
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = tiny(),
		.cmdline = "x", .console_log_fd = log, .console_live_fd = -1,
	};
	struct fb_vm_exit ex;
	struct fb_vm *vm;

	/* Without a channel consumer the bytes are dropped; the VM ends
	 * normally. (fb_run's parser is tested in test_frames.) */
	assert_int_equal(fb_vm_create(&cfg, &vm), 0);
	assert_int_equal(fb_vm_run(vm, &ex), 0);
	assert_int_equal(ex.reason, FB_VM_EXIT_POWEROFF);
	fb_vm_destroy(vm);
	close(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poweroff_and_console),
		cmocka_unit_test(test_reboot_paths),
		cmocka_unit_test(test_panic),
		cmocka_unit_test(test_timeout_kicks_halted_vcpu),
		cmocka_unit_test(test_smp_poweroff),
		cmocka_unit_test(test_garbage_io_survives),
		cmocka_unit_test(test_bad_kernel),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_virtio_descriptor_loop),
		cmocka_unit_test(test_virtio_wild_buffer),
		cmocka_unit_test(test_run_channel),
		cmocka_unit_test(test_run_command_too_long),
		cmocka_unit_test(test_hostile_frame_is_refused),
		cmocka_unit_test(test_pvh_entry),
		cmocka_unit_test(test_pvh_smp_and_timeout),
		cmocka_unit_test(test_pvh_no_note),
	};

	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("test_vm_tiny: no /dev/kvm here\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
