/* Fork memory layers (src/snapshot/layers.h) without a VM: a parent's
 * touched memory frozen, children's views that never change after, new
 * layers for later writes, flattening, and the checks a child makes on
 * what it is handed. */
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot/layers.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define PG 4096ull
#define RAM (16 * MiB)
#define PAGES (RAM / PG)

static void fill(uint8_t *host, uint64_t page, uint8_t v)
{
	memset(host + page * PG, v, PG);
}

static uint8_t *child_view(const struct fb_mem_layers *l)
{
	uint8_t *c = mmap(NULL, RAM, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_ptr_not_equal(c, MAP_FAILED);
	/* A fresh child's view, as a fork's child maps it (restore.c). */
	assert_int_equal(fb_mem_layers_map_fresh(l, c), 0);
	return c;
}

/* Whether the mapping holding addr has VmFlags flag (smaps). */
static bool vma_has_flag(const void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, has = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* Only a mapping's first line reads as two hex numbers. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char want[8];

			snprintf(want, sizeof(want), " %s", flag);
			has = strstr(line, want) != NULL;
			break;
		}
	}
	fclose(f);
	return has;
}

static void set_bit(uint64_t *bm, uint64_t p)
{
	bm[p / 64] |= 1ull << (p % 64);
}

static bool has_bit(const uint64_t *bm, uint64_t p)
{
	return (bm[p / 64] >> (p % 64)) & 1;
}

static void test_freeze_touched_then_copy(void **state)
{
	struct fb_guest_mem mem;
	struct fb_mem_layers l;
	uint64_t dirty[PAGES / 64] = { 0 };
	uint8_t *c1, *c2, byte;
	int seals;

	assert_int_equal(fb_guest_mem_init(&mem, RAM), 0);
	fill(mem.mapping, 0, 0x11);
	fill(mem.mapping, 7, 0x77);
	fill(mem.mapping, PAGES - 1, 0xee);

	/* The first fork takes what the guest touched. */
	assert_int_equal(fb_mem_layers_touched(mem.mapping, PAGES, dirty), 0);
	assert_true(has_bit(dirty, 0));
	assert_true(has_bit(dirty, 7));
	assert_true(has_bit(dirty, PAGES - 1));
	assert_int_equal(fb_mem_layers_init(&l, PAGES), 0);
	assert_int_equal(fb_mem_layers_freeze_copy(&l, mem.mapping, dirty,
						   false), 0);
	assert_int_equal(l.nr, 1);
	assert_int_equal(l.owner[0], 1);
	assert_int_equal(l.owner[7], 1);
	assert_int_equal(l.owner[PAGES - 1], 1);
	assert_int_equal(l.owner[3], 0);
	/* The parent's zeros are 4 KiB pages now (layers.h). */
	assert_true(vma_has_flag(mem.mapping + 3 * PG, "nh"));
	seals = fcntl(l.fds[0], F_GET_SEALS);
	assert_true(seals & F_SEAL_WRITE);
	assert_int_equal(pwrite(l.fds[0], "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);

	/* The parent's writes go to private copies; the layer keeps the
	 * frozen bytes, so a child sees the memory of the fork. */
	c1 = child_view(&l);
	fill(mem.mapping, 7, 0x78);
	fill(mem.mapping, 9, 0x99);
	assert_int_equal(pread(l.fds[0], &byte, 1, 7 * PG), 1);
	assert_int_equal(byte, 0x77);
	assert_int_equal(c1[7 * PG], 0x77);
	assert_int_equal(c1[9 * PG], 0);
	assert_int_equal(c1[PAGES * PG - 1], 0xee);

	/* Second fork: a new layer with just the dirty pages. */
	memset(dirty, 0, sizeof(dirty));
	set_bit(dirty, 7);
	set_bit(dirty, 9);
	assert_int_equal(fb_mem_layers_freeze_copy(&l, mem.mapping, dirty,
						   false), 0);
	assert_int_equal(l.nr, 2);
	assert_int_equal(l.owner[7], 2);
	assert_int_equal(l.owner[9], 2);
	assert_int_equal(l.owner[0], 1);
	c2 = child_view(&l);
	assert_int_equal(c2[7 * PG + 5], 0x78);
	assert_int_equal(c2[9 * PG], 0x99);
	assert_int_equal(c2[0], 0x11);
	/* The first child still sees the first fork's memory. */
	assert_int_equal(c1[7 * PG], 0x77);
	/* A child's write is its own. */
	c2[0] = 0x22;
	assert_int_equal(mem.mapping[0], 0x11);
	assert_int_equal(c1[0], 0x11);

	/* A page written back to zeros needs no layer. */
	memset(dirty, 0, sizeof(dirty));
	fill(mem.mapping, 9, 0);
	set_bit(dirty, 9);
	assert_int_equal(fb_mem_layers_freeze_copy(&l, mem.mapping, dirty,
						   false), 0);
	assert_int_equal(l.owner[9], 0);
	assert_int_equal(mem.mapping[9 * PG], 0);

	/* Flattening keeps the bytes and leaves one layer. */
	assert_int_equal(fb_mem_layers_freeze_copy(&l, mem.mapping, NULL,
						   true), 0);
	assert_int_equal(l.nr, 1);
	munmap(c2, RAM);
	c2 = child_view(&l);
	assert_memory_equal(c2, mem.mapping, RAM);
	assert_int_equal(c1[7 * PG], 0x77);

	munmap(c1, RAM);
	munmap(c2, RAM);
	fb_mem_layers_free(&l);
	fb_guest_mem_release(&mem);
}

/* A first fork with the guest running: a page written during the
 * precopy, and one written for the first time then, both reach the
 * children as they are at the commit. */
static void test_precopy_then_commit(void **state)
{
	uint64_t sel[PAGES / 64] = { 0 }, dirty[PAGES / 64] = { 0 };
	struct fb_mem_precopy pc;
	struct fb_guest_mem mem;
	struct fb_mem_layers l;
	uint8_t *c;

	assert_int_equal(fb_guest_mem_init(&mem, RAM), 0);
	fill(mem.mapping, 1, 0x01);
	fill(mem.mapping, 2, 0x02);
	assert_int_equal(fb_mem_layers_touched(mem.mapping, PAGES, sel), 0);
	assert_int_equal(fb_mem_layers_init(&l, PAGES), 0);
	assert_int_equal(fb_mem_layers_precopy(&pc, mem.mapping, PAGES, sel),
			 0);
	/* The guest goes on: rewrites page 2, writes page 40 first time,
	 * zeroes page 1. */
	fill(mem.mapping, 2, 0x22);
	fill(mem.mapping, 40, 0x40);
	fill(mem.mapping, 1, 0);
	set_bit(dirty, 1);
	set_bit(dirty, 2);
	set_bit(dirty, 40);
	assert_int_equal(fb_mem_layers_commit(&l, &pc, mem.mapping, dirty), 0);
	assert_int_equal(l.nr, 1);
	assert_int_equal(l.owner[1], 0);
	assert_int_equal(l.owner[2], 1);
	assert_int_equal(l.owner[40], 1);
	assert_true(fcntl(l.fds[0], F_GET_SEALS) & F_SEAL_WRITE);
	c = child_view(&l);
	assert_memory_equal(c, mem.mapping, RAM);
	assert_int_equal(c[2 * PG], 0x22);
	/* The parent's writes after the commit stay its own. */
	fill(mem.mapping, 2, 0x23);
	assert_int_equal(c[2 * PG], 0x22);
	munmap(c, RAM);
	fb_mem_precopy_free(&pc);
	fb_mem_layers_free(&l);
	fb_guest_mem_release(&mem);
}

static void test_layout_round_trip_and_checks(void **state)
{
	struct fb_guest_mem mem;
	struct fb_mem_layers l, got;
	uint64_t dirty[PAGES / 64] = { 0 };
	int layout, fds[1], bad;
	uint8_t *c;

	assert_int_equal(fb_guest_mem_init(&mem, RAM), 0);
	fill(mem.mapping, 5, 0x55);
	set_bit(dirty, 5);
	assert_int_equal(fb_mem_layers_init(&l, PAGES), 0);
	assert_int_equal(fb_mem_layers_freeze_copy(&l, mem.mapping, dirty,
						   false), 0);

	layout = fb_mem_layers_layout_fd(&l);
	assert_true(layout >= 0);
	fds[0] = dup(l.fds[0]);
	assert_int_equal(fb_mem_layers_from_fds(&got, layout, fds, 1, PAGES),
			 0);
	assert_int_equal(got.owner[5], 1);
	c = child_view(&got);
	assert_int_equal(c[5 * PG], 0x55);
	munmap(c, RAM);
	fb_mem_layers_free(&got);

	/* The wrong size, and an unsealed layer, are refused. */
	fds[0] = dup(l.fds[0]);
	assert_int_equal(fb_mem_layers_from_fds(&got, layout, fds, 1,
						PAGES / 2), -EINVAL);
	bad = memfd_create("unsealed", MFD_CLOEXEC);
	assert_int_equal(ftruncate(bad, RAM), 0);
	fds[0] = bad;
	assert_int_equal(fb_mem_layers_from_fds(&got, layout, fds, 1, PAGES),
			 -EPERM);
	/* The fds were taken: closed on failure. */
	assert_int_equal(fcntl(bad, F_GETFD), -1);
	close(layout);

	/* A layout naming a layer that was not sent. */
	l.owner[6] = 2;
	layout = fb_mem_layers_layout_fd(&l);
	fds[0] = dup(l.fds[0]);
	assert_int_equal(fb_mem_layers_from_fds(&got, layout, fds, 1, PAGES),
			 -EINVAL);
	close(layout);
	l.owner[6] = 0;
	fb_mem_layers_free(&l);
	fb_guest_mem_release(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_freeze_touched_then_copy),
		cmocka_unit_test(test_precopy_then_commit),
		cmocka_unit_test(test_layout_round_trip_and_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
