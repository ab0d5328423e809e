/* Fork's memory on this host's own KVM (KVM-PVM included), with the tiny
 * guest's "m" mode (tests/guest/tiny.S): it writes generation after
 * generation into 512 pages and powers off with "BAD" as soon as a page
 * holds anything but the generation it last wrote there. Meanwhile the
 * parent is forked again and again (fb_box_vm_fork: its pause, KVM's
 * dirty log and the VMM's, its memory frozen into layers and remapped
 * under the running guest) and a child is started from each template:
 * neither may ever see a page go back in time. */
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

#include "box/boxvm.h"
#include "snapshot/format.h"
#include "snapshot/layers.h"
#include "vmm/guest_mem.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"

/* FORK_TINY_ROUNDS overrides, for a longer soak. */
#define FORK_ROUNDS 16
#define MEM_MIB 32

static const char *tiny(void)
{
	const char *p = getenv("TINY_GUEST");

	return p ? p : "build/tests/tiny-guest.bin";
}

struct running {
	struct fb_vm *vm;
	struct fb_vm_exit ex;
	pthread_t thread;
	int log;
};

static void *run_vm(void *arg)
{
	struct running *r = arg;

	fb_vm_run(r->vm, &r->ex);
	return NULL;
}

static void start(struct running *r)
{
	assert_int_equal(pthread_create(&r->thread, NULL, run_vm, r), 0);
}

/* The whole console so far, NUL-ended (it outgrows any fixed buffer in
 * a long soak); the caller frees it. */
static char *read_console(int fd)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *out;
	ssize_t n;

	assert_true(size >= 0);
	out = calloc(1, (size_t)size + 1);
	assert_non_null(out);
	n = pread(fd, out, (size_t)size, 0);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

/* Stops the VM and returns its console; the caller frees it. */
static char *finish(struct running *r)
{
	char *out;

	fb_vm_stop(r->vm);
	pthread_join(r->thread, NULL);
	fb_vm_destroy(r->vm);
	out = read_console(r->log);
	close(r->log);
	return out;
}

static unsigned count_lines(int fd, const char *line)
{
	char *buf = read_console(fd);
	unsigned c = 0;

	for (char *p = buf; (p = strstr(p, line)); p += strlen(line))
		c++;
	free(buf);
	return c;
}

/* Waits (polling: a test helper) until the guest printed more than n
 * progress lines, or said BAD, or 10 s passed. */
static unsigned progress_past(int fd, unsigned n)
{
	unsigned c = 0;

	for (int i = 0; i < 1000; i++) {
		c = count_lines(fd, "m\n");
		if (c > n || count_lines(fd, "BAD"))
			break;
		usleep(10000);
	}
	return c;
}

/* A child from the template: the state applied to a new VM over the
 * layers mapped copy-on-write, as src/box/restore.c does for a fork. */
static void run_child(struct fb_fork_template *t, unsigned round)
{
	struct fb_vm_snap_config cfg;
	struct fb_mem_layers l = { 0 };
	struct fb_snap *snap = NULL;
	struct running c = { .log = memfd_create("child", 0) };
	uint64_t size = (uint64_t)MEM_MIB << 20;
	uint8_t *host;
	char *out;

	assert_true(c.log >= 0);
	assert_true(lseek(t->state_fd, 0, SEEK_SET) == 0);
	assert_int_equal(fb_snap_read_fd(t->state_fd, "template", 0, &snap),
			 0);
	assert_int_equal(fb_vm_snapshot_config(snap, &cfg), 0);
	assert_int_equal(fb_mem_layers_from_fds(&l, t->layout_fd,
						t->layer_fds, t->nr_layers,
						size / FB_PAGE_SIZE), 0);
	t->nr_layers = 0; /* taken by l */
	assert_int_equal(fb_mem_layers_map_guest(&l, size, &host), 0);
	struct fb_vm_config vmc = {
		.cpus = cfg.cpus, .mem_mib = cfg.mem_mib, .cmdline = "",
		.console_log_fd = c.log, .console_live_fd = -1,
		.restore_mem = host,
	};
	assert_int_equal(fb_vm_create(&vmc, &c.vm), 0);
	assert_int_equal(fb_vm_snapshot_apply(c.vm, snap), 0);
	start(&c);
	/* A child that does not get on says where its vCPU is. */
	if (progress_past(c.log, 3) <= 3 && !count_lines(c.log, "BAD"))
		fb_vm_debug(c.vm, stderr);
	out = finish(&c);
	if (strstr(out, "BAD") || !strstr(out, "m\n"))
		fail_msg("child of fork %u: console '%.200s', its VM ended "
			 "%s (%s)", round, out,
			 fb_vm_exit_reason_name(c.ex.reason), c.ex.message);
	free(out);
	fb_snap_free(snap);
	fb_mem_layers_free(&l);
}

static void test_no_page_goes_back(void **state)
{
	struct running p = { .log = memfd_create("parent", 0) };
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = MEM_MIB, .kernel = tiny(),
		.cmdline = "m", .console_log_fd = p.log,
		.console_live_fd = -1,
	};
	struct fb_box_vm b = { .disk_dirfd = -1 };
	const char *env = getenv("FORK_TINY_ROUNDS");
	unsigned rounds = env && atoi(env) > 0 ? (unsigned)atoi(env) :
			  FORK_ROUNDS, seen = 0;
	char *out;

	assert_true(p.log >= 0);
	assert_int_equal(fb_vm_create(&cfg, &p.vm), 0);
	b.vm = p.vm;
	start(&p);
	seen = progress_past(p.log, 0);
	assert_true(seen > 0);
	for (unsigned round = 0; round < rounds; round++) {
		struct fb_fork_template t;

		/* The pause lands anywhere in a pass. */
		usleep((useconds_t)(rand() % 5000));
		assert_int_equal(fb_box_vm_fork(&b, &t), 0);
		run_child(&t, round);
		fb_fork_template_close(&t);
		seen = progress_past(p.log, seen);
		if (count_lines(p.log, "BAD"))
			fail_msg("the parent saw a page go back after fork %u",
				 round);
	}
	out = finish(&p);
	assert_null(strstr(out, "BAD"));
	free(out);
	free(b.fork_dirty);
	fb_mem_layers_free(&b.layers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_page_goes_back),
	};

	srand((unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
