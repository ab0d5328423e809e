/* Guest RAM and fb_gpa_ptr(), the one checked turn of a guest-physical
 * address into a host pointer: whole ranges inside one region, no
 * wrap-around, nothing in the MMIO hole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "util/error.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static void test_init_small(void **state)
{
	struct fb_guest_mem mem;

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, 64 * MiB);
	assert_int_equal(mem.ram_size, 64 * MiB);
	assert_int_equal(fb_guest_mem_low_end(&mem), 64 * MiB);
	fb_guest_mem_release(&mem);
	assert_null(mem.mapping);

	assert_int_equal(fb_guest_mem_init(&mem, 16 * MiB - 4096), -EINVAL);
	assert_null(mem.mapping);
	assert_int_equal(fb_guest_mem_init(&mem, 16 * MiB), 0);
	fb_guest_mem_release(&mem);
}

static void test_bounds_64m(void **state)
{
	struct fb_guest_mem mem;
	const uint64_t end = 64 * MiB;
	uint8_t *base;

	assert_int_equal(fb_guest_mem_init(&mem, end), 0);
	base = mem.mapping;

	/* Inside. */
	assert_ptr_equal(fb_gpa_ptr(&mem, 0, 1), base);
	assert_ptr_equal(fb_gpa_ptr(&mem, 0, end), base);
	assert_ptr_equal(fb_gpa_ptr(&mem, 0x1000, 4096), base + 0x1000);
	assert_ptr_equal(fb_gpa_ptr(&mem, end - 1, 1), base + end - 1);
	assert_ptr_equal(fb_gpa_ptr(&mem, end - 4096, 4096),
			 base + end - 4096);

	/* Straddling the end, or past it. */
	assert_null(fb_gpa_ptr(&mem, end - 1, 2));
	assert_null(fb_gpa_ptr(&mem, end - 4096, 4097));
	assert_null(fb_gpa_ptr(&mem, 0, end + 1));
	assert_null(fb_gpa_ptr(&mem, end, 1));
	assert_null(fb_gpa_ptr(&mem, end + 4096, 1));

	/* len 0 is refused, inside or not. */
	assert_null(fb_gpa_ptr(&mem, 0, 0));
	assert_null(fb_gpa_ptr(&mem, 0x1000, 0));
	assert_null(fb_gpa_ptr(&mem, end, 0));

	/* gpa + len wraps around 2^64. */
	assert_null(fb_gpa_ptr(&mem, UINT64_MAX - 10, 100));
	assert_null(fb_gpa_ptr(&mem, UINT64_MAX, 1));
	assert_null(fb_gpa_ptr(&mem, UINT64_MAX, 2));
	assert_null(fb_gpa_ptr(&mem, 1, UINT64_MAX));
	assert_null(fb_gpa_ptr(&mem, 0x1000, UINT64_MAX - 0xfff));
	assert_null(fb_gpa_ptr(&mem, 0, UINT64_MAX));
	fb_guest_mem_release(&mem);
}

/* 4 GiB of RAM: 3 GiB below the hole, the last 1 GiB at 4 GiB. */
static void test_bounds_4g(void **state)
{
	struct fb_guest_mem mem;
	const uint64_t hole = FB_MMIO_HOLE_START, high = FB_MMIO_HOLE_END;
	uint8_t *base;

	assert_int_equal(hole, 3 * GiB);
	assert_int_equal(high, 4 * GiB);
	assert_int_equal(fb_guest_mem_init(&mem, 4 * GiB), 0);
	base = mem.mapping;
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, 3 * GiB);
	assert_int_equal(mem.regions[1].gpa, 4 * GiB);
	assert_int_equal(mem.regions[1].size, 1 * GiB);
	assert_int_equal(fb_guest_mem_low_end(&mem), 3 * GiB);

	/* The top of low RAM. */
	assert_ptr_equal(fb_gpa_ptr(&mem, hole - 1, 1), base + hole - 1);
	assert_ptr_equal(fb_gpa_ptr(&mem, 0, hole), base);
	/* Into the hole. */
	assert_null(fb_gpa_ptr(&mem, hole - 1, 2));
	assert_null(fb_gpa_ptr(&mem, 0, hole + 1));
	assert_null(fb_gpa_ptr(&mem, hole, 1));
	assert_null(fb_gpa_ptr(&mem, FB_VIRTIO_MMIO_BASE, 4));
	assert_null(fb_gpa_ptr(&mem, FB_IOAPIC_ADDR, 4));
	assert_null(fb_gpa_ptr(&mem, FB_LAPIC_ADDR, 4));
	assert_null(fb_gpa_ptr(&mem, high - 1, 1));
	/* Across the hole: low RAM to high RAM is not one range. */
	assert_null(fb_gpa_ptr(&mem, hole - 4096, high - hole + 8192));
	assert_null(fb_gpa_ptr(&mem, high - 1, 2));

	/* RAM above 3 GiB is at 4 GiB, right after low RAM in the mapping. */
	assert_ptr_equal(fb_gpa_ptr(&mem, high, 1), base + hole);
	assert_ptr_equal(fb_gpa_ptr(&mem, high, GiB), base + hole);
	assert_ptr_equal(fb_gpa_ptr(&mem, high + GiB - 1, 1),
			 base + 4 * GiB - 1);
	assert_null(fb_gpa_ptr(&mem, high + GiB - 1, 2));
	assert_null(fb_gpa_ptr(&mem, high + GiB, 1));
	assert_null(fb_gpa_ptr(&mem, high, GiB + 1));
	assert_null(fb_gpa_ptr(&mem, high + GiB - 1, 0));
	assert_null(fb_gpa_ptr(&mem, UINT64_MAX - 10, 100));

	/* The second region's last byte, written and read back. */
	{
		uint8_t v = 0x7e, r = 0;

		assert_int_equal(fb_guest_write(&mem, high + GiB - 1, &v, 1),
				 0);
		assert_int_equal(base[4 * GiB - 1], 0x7e);
		assert_int_equal(fb_guest_read(&mem, high + GiB - 1, &r, 1),
				 0);
		assert_int_equal(r, 0x7e);
		assert_int_equal(fb_guest_write(&mem, hole, &v, 1), -EFAULT);
		assert_int_equal(fb_guest_read(&mem, high - 1, &r, 1),
				 -EFAULT);
	}
	fb_guest_mem_release(&mem);
}

/* Exactly 3 GiB needs no second region; one page more does. */
static void test_hole_edge(void **state)
{
	struct fb_guest_mem mem;

	assert_int_equal(fb_guest_mem_init(&mem, 3 * GiB), 0);
	assert_int_equal(mem.nr_regions, 1);
	assert_null(fb_gpa_ptr(&mem, 4 * GiB, 1));
	fb_guest_mem_release(&mem);

	assert_int_equal(fb_guest_mem_init(&mem, 3 * GiB + 4096), 0);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[1].gpa, 4 * GiB);
	assert_int_equal(mem.regions[1].size, 4096);
	assert_ptr_equal(fb_gpa_ptr(&mem, 4 * GiB, 4096),
			 mem.mapping + 3 * GiB);
	assert_null(fb_gpa_ptr(&mem, 4 * GiB, 4097));
	assert_null(fb_gpa_ptr(&mem, 3 * GiB, 1));
	fb_guest_mem_release(&mem);
}

static void test_write_read(void **state)
{
	struct fb_guest_mem mem;
	uint8_t buf[64], back[64];
	const uint64_t end = 32 * MiB;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5c);
	assert_int_equal(fb_guest_mem_init(&mem, end), 0);

	assert_int_equal(fb_guest_write(&mem, 0x5000, buf, sizeof(buf)), 0);
	assert_memory_equal(mem.mapping + 0x5000, buf, sizeof(buf));
	memset(back, 0, sizeof(back));
	assert_int_equal(fb_guest_read(&mem, 0x5000, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));

	/* The last bytes of RAM. */
	assert_int_equal(fb_guest_write(&mem, end - sizeof(buf), buf,
					sizeof(buf)), 0);
	assert_int_equal(fb_guest_read(&mem, end - sizeof(buf), back,
				       sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));

	/* Out of range: -EFAULT, a message, and nothing written or read. */
	memset(mem.mapping + end - 32, 0xcc, 32);
	fb_errorf(0, "%s", "");
	assert_int_equal(fb_guest_write(&mem, end - 32, buf, sizeof(buf)),
			 -EFAULT);
	assert_non_null(strstr(fb_last_error(), "not RAM"));
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(mem.mapping[end - 32 + i], 0xcc);
	memset(back, 0xab, sizeof(back));
	assert_int_equal(fb_guest_read(&mem, end - 32, back, sizeof(back)),
			 -EFAULT);
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0xab);

	assert_int_equal(fb_guest_write(&mem, end, buf, 1), -EFAULT);
	assert_int_equal(fb_guest_read(&mem, end, back, 1), -EFAULT);
	assert_int_equal(fb_guest_write(&mem, UINT64_MAX - 10, buf, 100),
			 -EFAULT);
	assert_int_equal(fb_guest_read(&mem, UINT64_MAX - 10, back, 100),
			 -EFAULT);
	assert_int_equal(fb_guest_write(&mem, 0x1000, buf, 0), -EFAULT);
	assert_int_equal(fb_guest_read(&mem, 0x1000, back, 0), -EFAULT);
	fb_guest_mem_release(&mem);
}

/* Guest RAM starts on a 2 MiB boundary however the process's mappings
 * lie, anonymous or from a file, and the reservation's ends are given
 * back (the pages on either side are not ours). */
static void test_map_aligned(void **state)
{
	int fd = memfd_create("test_guest_mem", MFD_CLOEXEC);
	unsigned char vec;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 6 << 20), 0);
	for (unsigned i = 0; i < 8; i++) {
		/* A page-sized mapping first shifts where the next one goes. */
		void *pad = mmap(NULL, 4096 * (i + 1), PROT_READ,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint8_t *a = fb_guest_mem_map(16 << 20, MAP_PRIVATE |
					      MAP_ANONYMOUS | MAP_NORESERVE, -1);
		uint8_t *f = fb_guest_mem_map(6 << 20, MAP_PRIVATE, fd);

		assert_true(pad != MAP_FAILED && a != MAP_FAILED &&
			    f != MAP_FAILED);
		assert_int_equal((uintptr_t)a % FB_GUEST_MEM_ALIGN, 0);
		assert_int_equal((uintptr_t)f % FB_GUEST_MEM_ALIGN, 0);
		a[0] = a[(16 << 20) - 1] = 1;
		f[0] = 2;
		/* Nothing mapped right after: the tail went back. */
		assert_int_equal(mincore(a + (16 << 20), 4096, &vec), -1);
		assert_int_equal(errno, ENOMEM);
		assert_int_equal(mincore(f + (6 << 20), 4096, &vec), -1);
		munmap(a, 16 << 20);
		munmap(f, 6 << 20);
		munmap(pad, 4096 * (i + 1));
	}
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_small),
		cmocka_unit_test(test_bounds_64m),
		cmocka_unit_test(test_bounds_4g),
		cmocka_unit_test(test_hole_edge),
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_map_aligned),
	};

	return cmocka_run_group_tests_name("guest_mem", tests, NULL, NULL);
}
