/* The boot trace (src/box/trace.c): the VMM's file and its reading back,
 * what a VMM collects from its box, and the phases on a caller's
 * timeline, the guest's aligned on its hello. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "box/trace.h"
#include "util/error.h"
#include "vmm/vm.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fb-trace-test-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put_trace_file(const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A boot as a VMM would see it: ms since its start on the host, the
 * guest's boot clock for the guest. */
static void sample(struct fb_box_trace *t)
{
	fb_box_trace_clear(t);
	t->vmm_start_ns = 1000000000ull * 5000 + 250000;  /* 5000000.25 ms */
	t->prepared_ns = 1000000000ull * 5000 - 1500000; /* 1.75 ms before */
	t->host_ms[FB_TRACE_JAIL_PREPARED] = 0.5;
	t->host_ms[FB_TRACE_VM_CREATED] = 12.25;
	t->host_ms[FB_TRACE_STATE_SET] = 12.25;
	t->host_ms[FB_TRACE_JAIL_ENTERED] = 13;
	t->host_ms[FB_TRACE_VCPU_RUN] = 13.125;
	t->host_ms[FB_TRACE_HELLO] = 90;
	t->guest_ms[FB_AGENT_BOOT_INIT] = 40;
	t->guest_ms[FB_AGENT_BOOT_MOUNTED] = 41.5;
	t->guest_ms[FB_AGENT_BOOT_MODULES] = 55;
	t->guest_ms[FB_AGENT_BOOT_ROOT] = 60.75;
	t->guest_hello_ms = 70;
}

static void assert_same(const struct fb_box_trace *a, const struct fb_box_trace *b)
{
	assert_int_equal(a->vmm_start_ns, b->vmm_start_ns);
	assert_int_equal(a->prepared_ns, b->prepared_ns);
	for (unsigned i = 0; i < FB_TRACE_HOST_MARKS; i++)
		assert_float_equal(a->host_ms[i], b->host_ms[i], 1e-9);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		assert_float_equal(a->guest_ms[i], b->guest_ms[i], 1e-9);
	assert_float_equal(a->guest_hello_ms, b->guest_hello_ms, 1e-9);
}

static void test_round_trip(void **state)
{
	struct fb_box_trace w, r;
	char path[128];

	sample(&w);
	assert_int_equal(fb_box_trace_write(tmpdir, &w), 0);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(fb_box_trace_read(tmpdir, &r), 0);
	assert_same(&w, &r);
	/* Renamed into place: no temporary left behind. */
	snprintf(path, sizeof(path), "%s/trace.tmp", tmpdir);
	assert_int_equal(access(path, F_OK), -1);

	/* What was not recorded stays out, and reads back as not recorded:
	 * no root disk, no hello (a restore), no prepared time. */
	fb_box_trace_clear(&w);
	w.vmm_start_ns = 42;
	w.host_ms[FB_TRACE_JAIL_PREPARED] = 1;
	assert_int_equal(fb_box_trace_write(tmpdir, &w), 0);
	assert_int_equal(fb_box_trace_read(tmpdir, &r), 0);
	assert_same(&w, &r);
	assert_true(r.host_ms[FB_TRACE_HELLO] < 0);
	assert_true(r.guest_hello_ms < 0);
	assert_int_equal(r.prepared_ns, 0);
}

static void test_read_format(void **state)
{
	struct fb_box_trace t, before;

	/* A newer VMM's keys and empty lines are skipped. */
	put_trace_file("vmm_start_ns=7\n\nfuture_thing_ms=3.5\n"
		       "hello_ms=80.5\nguest_root_ms=2\n");
	assert_int_equal(fb_box_trace_read(tmpdir, &t), 0);
	assert_int_equal(t.vmm_start_ns, 7);
	assert_float_equal(t.host_ms[FB_TRACE_HELLO], 80.5, 1e-9);
	assert_float_equal(t.guest_ms[FB_AGENT_BOOT_ROOT], 2, 1e-9);
	assert_true(t.guest_ms[FB_AGENT_BOOT_INIT] < 0);

	/* Bad files fail with a message and leave *t alone. */
	static const char *const bad[] = {
		"hello_ms=1\n",                    /* no vmm_start_ns */
		"vmm_start_ns=1\nhello_ms\n",      /* no '=' */
		"vmm_start_ns=1\nhello_ms=x\n",
		"vmm_start_ns=1\nhello_ms=-3\n",
		"vmm_start_ns=1\nhello_ms=nan\n",
		"vmm_start_ns=1\nhello_ms=inf\n",
		"vmm_start_ns=1\nhello_ms=1.5x\n",
		"vmm_start_ns=-1\n",
		"vmm_start_ns=99999999999999999999999\n",
		"vmm_start_ns=\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_trace_file(bad[i]);
		t = before = (struct fb_box_trace){ .vmm_start_ns = 123 };
		if (fb_box_trace_read(tmpdir, &t) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(fb_last_error(), "trace"));
		assert_memory_equal(&t, &before, sizeof(t));
	}

	/* Over the cap: refused before reading. */
	{
		char big[5000];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		put_trace_file(big);
		assert_int_equal(fb_box_trace_read(tmpdir, &t), -EFBIG);
	}
	/* No trace at all (a VMM from before traces). */
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/trace", tmpdir);
		unlink(path);
		assert_int_equal(fb_box_trace_read(tmpdir, &t), -ENOENT);
	}
}

static void test_collect(void **state)
{
	struct fb_box_vm b;
	struct fb_box_trace t;

	memset(&b, 0, sizeof(b));
	b.launch_at_ms = 1000.5;
	b.launch_ms[FB_LAUNCH_JAIL_PREPARE] = 1;
	b.launch_ms[FB_LAUNCH_VM_CREATE] = 10;
	b.launch_ms[FB_LAUNCH_STATE] = 10;
	b.launch_ms[FB_LAUNCH_JAIL_ENTER] = 11;
	b.hello_at_ms = 1100;
	b.guest_hello_ns = 70000000;
	b.guest_boot_ns[FB_AGENT_BOOT_INIT] = 40000000;
	b.guest_boot_ns[FB_AGENT_BOOT_MODULES] = 55000000;
	/* MOUNTED and ROOT 0: not passed. */

	fb_box_trace_collect(&t, &b, 998000000, 997000000); /* start 998 ms */
	assert_int_equal(t.vmm_start_ns, 998000000);
	assert_int_equal(t.prepared_ns, 997000000);
	assert_float_equal(t.host_ms[FB_TRACE_JAIL_PREPARED], 3.5, 1e-6);
	assert_float_equal(t.host_ms[FB_TRACE_VM_CREATED], 12.5, 1e-6);
	assert_float_equal(t.host_ms[FB_TRACE_JAIL_ENTERED], 13.5, 1e-6);
	assert_true(t.host_ms[FB_TRACE_VCPU_RUN] < 0); /* no VM here */
	assert_float_equal(t.host_ms[FB_TRACE_HELLO], 102, 1e-6);
	assert_float_equal(t.guest_hello_ms, 70, 1e-9);
	assert_float_equal(t.guest_ms[FB_AGENT_BOOT_INIT], 40, 1e-9);
	assert_true(t.guest_ms[FB_AGENT_BOOT_MOUNTED] < 0);
	assert_float_equal(t.guest_ms[FB_AGENT_BOOT_MODULES], 55, 1e-9);
	assert_true(t.guest_ms[FB_AGENT_BOOT_ROOT] < 0);

	/* A restore: no hello on the ready port, so no guest side. */
	b.hello_at_ms = 0;
	b.guest_hello_ns = 0;
	fb_box_trace_collect(&t, &b, 998000000, 0);
	assert_true(t.host_ms[FB_TRACE_HELLO] < 0);
	assert_true(t.guest_hello_ms < 0);
	assert_true(t.guest_ms[FB_AGENT_BOOT_INIT] < 0);
}

static const struct fb_trace_phase *find(const struct fb_trace_phase *ph,
					 unsigned n, const char *prefix)
{
	for (unsigned i = 0; i < n; i++)
		if (!strncmp(ph[i].what, prefix, strlen(prefix)))
			return &ph[i];
	fail_msg("no phase \"%s\"", prefix);
	return NULL;
}

static void test_phases(void **state)
{
	struct fb_trace_phase ph[FB_TRACE_MAX_PHASES];
	struct fb_box_trace t;
	double origin = 5000000.25 - 10; /* the CLI began 10 ms before */
	static const char *const order[] = {
		"box directory", "VMM process started", "jail prepared",
		"VM created", "jail entered", "vCPUs started",
		"guest kernel entry", "guest PID 1 started",
		"basic filesystems mounted", "modules loaded",
		"root disk mounted", "agent ready (HELLO)",
	};
	unsigned n;

	sample(&t);
	n = fb_box_trace_phases(&t, origin, ph, FB_TRACE_MAX_PHASES);
	assert_int_equal(n, sizeof(order) / sizeof(order[0]));
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(strncmp(ph[i].what, order[i], strlen(order[i])), 0);
		if (i)
			assert_true(ph[i].ms >= ph[i - 1].ms);
		assert_int_equal(ph[i].approx, i == 6);
	}
	assert_float_equal(ph[0].ms, 10 - 1.75, 1e-6);
	assert_float_equal(find(ph, n, "VMM process")->ms, 10, 1e-6);
	assert_float_equal(find(ph, n, "jail prepared")->ms, 10.5, 1e-6);
	/* The hello arrived at 100: the guest's clock said 70 then. */
	assert_float_equal(find(ph, n, "agent ready")->ms, 100, 1e-6);
	assert_float_equal(find(ph, n, "guest kernel entry")->ms, 30, 1e-6);
	assert_float_equal(find(ph, n, "guest PID 1")->ms, 70, 1e-6);
	assert_float_equal(find(ph, n, "modules loaded")->ms, 85, 1e-6);
	assert_float_equal(find(ph, n, "root disk")->ms, 90.75, 1e-6);

	/* A guest clock that ran before vCPU 0 did (from vCPU creation):
	 * the entry is no earlier than the vCPU's first run. */
	t.guest_hello_ms = 95;
	n = fb_box_trace_phases(&t, origin, ph, FB_TRACE_MAX_PHASES);
	assert_float_equal(find(ph, n, "guest kernel entry")->ms, 23.125, 1e-6);
	assert_float_equal(find(ph, n, "guest PID 1")->ms, 45, 1e-6);

	/* No root disk, and an old agent without BOOT_TIMES: only what was
	 * recorded. */
	sample(&t);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		t.guest_ms[i] = -1;
	t.prepared_ns = 0;
	n = fb_box_trace_phases(&t, origin, ph, FB_TRACE_MAX_PHASES);
	assert_int_equal(n, 7);
	assert_string_equal(ph[0].what, "VMM process started");
	assert_int_equal(strncmp(ph[5].what, "guest kernel entry", 18), 0);
	assert_string_equal(ph[6].what, "agent ready (HELLO)");

	/* A restore (no hello): the host's marks only; and max is kept. */
	t.host_ms[FB_TRACE_HELLO] = -1;
	n = fb_box_trace_phases(&t, origin, ph, FB_TRACE_MAX_PHASES);
	assert_int_equal(n, 5);
	assert_int_equal(fb_box_trace_phases(&t, origin, ph, 2), 2);
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The VMM's own mark on this host's KVM, with the tiny guest: vCPU 0's
 * first KVM_RUN falls between the VM's creation and its end. */
static void test_vcpu_first_run(void **state)
{
	const char *tiny = getenv("TINY_GUEST");
	int log = memfd_create("console", MFD_CLOEXEC);
	struct fb_vm_config cfg = {
		.cpus = 2, .mem_mib = 32,
		.kernel = tiny ? tiny : "build/tests/tiny-guest.bin",
		.cmdline = "poweroff", .console_log_fd = log,
		.console_live_fd = -1,
	};
	struct fb_vm_exit ex;
	struct fb_vm *vm;
	uint64_t before, after, run;

	assert_true(log >= 0);
	assert_int_equal(fb_vm_create(&cfg, &vm), 0);
	assert_int_equal(fb_vm_first_run_ns(vm), 0);
	before = mono_ns();
	assert_int_equal(fb_vm_run(vm, &ex), 0);
	after = mono_ns();
	assert_int_equal(ex.reason, FB_VM_EXIT_POWEROFF);
	run = fb_vm_first_run_ns(vm);
	assert_true(run >= before && run <= after);
	fb_vm_destroy(vm);
	close(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_read_format),
		cmocka_unit_test(test_collect),
		cmocka_unit_test(test_phases),
		cmocka_unit_test(test_vcpu_first_run),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
