/* Guest memory in snapshots: full images (sparse), diff chains, restore in
 * FILE mode (MAP_PRIVATE, shared) and UFFD mode (pages served on fault),
 * merge, and the chain's failures (missing parent, loops, depth, damage). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot/format.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PAGE 4096ull

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/fb-snapmem-XXXXXX");
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

/* A page's worth of bytes that differ per page and per generation, with
 * no zero page among them. */
static void fill_page(uint8_t *p, uint64_t page, unsigned gen)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned i = 0; i < PAGE / 8; i++)
		w[i] = (page << 20) ^ ((uint64_t)gen << 56) ^ (i * 0x9e37ull) ^
		       1;
}

static void set_bit(uint64_t *bm, uint64_t page)
{
	bm[page / 64] |= 1ull << (page % 64);
}

/* Makes snapshot directory `name` from mem: full when bm is NULL, else a
 * diff of the pages in bm over parent. */
static void make_snap(const char *name, const struct fb_guest_mem *mem,
		      const uint64_t *bm, const char *parent)
{
	char final[256], state_path[300];
	struct fb_snap_writer *w;
	char *tmp;
	int dfd;

	path_in(final, sizeof(final), name);
	assert_int_equal(fb_snap_dir_begin(final, &tmp), 0);
	dfd = open(tmp, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	if (bm)
		assert_int_equal(fb_snap_mem_save_diff(mem, bm, dfd, parent),
				 0);
	else
		assert_int_equal(fb_snap_mem_save_full(mem, dfd), 0);
	assert_int_equal(fb_snap_writer_new(&w, bm ? FB_SNAP_F_DIFF :
					    FB_SNAP_F_FULL), 0);
	assert_int_equal(fb_snap_writer_add(w, FB_SNAP_SEC_VM_CONFIG, 1, name,
					    strlen(name)), 0);
	snprintf(state_path, sizeof(state_path), "%s/state", tmp);
	assert_int_equal(fb_snap_writer_write(w, state_path), 0);
	fb_snap_writer_free(w);
	close(dfd);
	assert_int_equal(fb_snap_dir_commit(tmp, final, 0), 0);
	free(tmp);
}

static struct fb_snap_mem *map_ok(const char *name, uint64_t size,
				  enum fb_snap_mem_mode mode)
{
	char p[256];
	struct fb_snap_mem *m = NULL;
	int err;

	path_in(p, sizeof(p), name);
	err = fb_snap_mem_map(p, size, mode, &m);
	if (err)
		fail_msg("map %s: %s", name, fb_last_error());
	assert_non_null(m);
	assert_int_equal(fb_snap_mem_size(m), size);
	return m;
}

static void expect_map_refused(const char *name, uint64_t size, int want,
			       const char *needle)
{
	char p[256];
	struct fb_snap_mem *m = (void *)1;
	int err;

	path_in(p, sizeof(p), name);
	for (int mode = FB_SNAP_MEM_FILE; mode <= FB_SNAP_MEM_UFFD; mode++) {
		err = fb_snap_mem_map(p, size, (enum fb_snap_mem_mode)mode, &m);
		assert_null(m);
		if (err != want || !strstr(fb_last_error(), needle) ||
		    strchr(fb_last_error(), '\n'))
			fail_msg("expected %d \"%s\", got %d \"%s\"", want,
				 needle, err, fb_last_error());
	}
}

static void expect_equal(struct fb_snap_mem *m, const uint8_t *want,
			 uint64_t size)
{
	const uint8_t *got = fb_snap_mem_host(m);

	for (uint64_t off = 0; off < size; off += PAGE)
		if (memcmp(got + off, want + off, PAGE))
			fail_msg("page %llu differs",
				 (unsigned long long)(off / PAGE));
}

static uint64_t file_blocks(const char *name, const char *file,
			    uint64_t *size)
{
	char p[300];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/%s", dir, name, file);
	assert_int_equal(stat(p, &st), 0);
	*size = (uint64_t)st.st_size;
	return (uint64_t)st.st_blocks * 512;
}

/* 64 MiB: every third page of the first 8 MiB and a few scattered pages
 * hold data, the rest is zero. */
static uint64_t fill_64m(struct fb_guest_mem *mem)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < 2048; p += 3, n++)
		fill_page(mem->mapping + p * PAGE, p, 0);
	for (uint64_t p = 4096; p < mem->ram_size / PAGE; p += 1021, n++)
		fill_page(mem->mapping + p * PAGE, p, 0);
	fill_page(mem->mapping + mem->ram_size - PAGE,
		  mem->ram_size / PAGE - 1, 0);
	return n + 1;
}

static void test_full_64m(void **state)
{
	struct fb_guest_mem mem;
	struct fb_snap_mem *m;
	uint64_t data_pages, blocks, size;

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	data_pages = fill_64m(&mem);
	make_snap("full", &mem, NULL, NULL);

	/* Zero pages are holes. */
	blocks = file_blocks("full", "memory", &size);
	assert_int_equal(size, 64 * MiB);
	if (blocks > data_pages * PAGE + 256 * 1024)
		fail_msg("memory file uses %llu bytes for %llu data pages",
			 (unsigned long long)blocks,
			 (unsigned long long)data_pages);

	m = map_ok("full", 64 * MiB, FB_SNAP_MEM_FILE);
	expect_equal(m, mem.mapping, mem.ram_size);
	assert_int_equal(fb_snap_mem_faults(m), 0);
	fb_snap_mem_release(m);

	m = map_ok("full", 64 * MiB, FB_SNAP_MEM_UFFD);
	expect_equal(m, mem.mapping, mem.ram_size);
	assert_int_equal(fb_snap_mem_status(m), 0);
	/* Every page was served once, by the handler. */
	assert_int_equal(fb_snap_mem_faults(m), 64 * MiB / PAGE);
	/* A second pass is served by memory, not the handler. */
	expect_equal(m, mem.mapping, mem.ram_size);
	assert_int_equal(fb_snap_mem_faults(m), 64 * MiB / PAGE);
	fb_snap_mem_release(m);

	/* Another VM size is refused before anything is mapped. */
	expect_map_refused("full", 128 * MiB, -EINVAL,
			   "memory is 67108864 bytes, the VM has 134217728");
	expect_map_refused("full", 64 * MiB + 1, -EINVAL,
			   "not a whole number of pages");
	fb_guest_mem_release(&mem);
}

/* Over 3 GiB: two regions around the MMIO hole, one host mapping. */
static void test_full_two_regions(void **state)
{
	const uint64_t size = 3 * GiB + 64 * MiB;
	const uint64_t pages = size / PAGE;
	const uint64_t touched[] = {
		0, 1, 256, 786431 /* last below the hole */,
		786432 /* first above it, gpa 4 GiB */, 786433,
		pages - 1,
	};
	struct fb_guest_mem mem;
	uint64_t blocks, fsize;

	assert_int_equal(fb_guest_mem_init(&mem, size), 0);
	assert_int_equal(mem.nr_regions, 2);
	for (size_t i = 0; i < sizeof(touched) / sizeof(touched[0]); i++)
		fill_page(mem.mapping + touched[i] * PAGE, touched[i], 0);
	make_snap("big", &mem, NULL, NULL);
	blocks = file_blocks("big", "memory", &fsize);
	assert_int_equal(fsize, size);
	assert_true(blocks < 1 * MiB);

	for (int mode = FB_SNAP_MEM_FILE; mode <= FB_SNAP_MEM_UFFD; mode++) {
		struct fb_snap_mem *m = map_ok("big", size,
					       (enum fb_snap_mem_mode)mode);
		const uint8_t *got = fb_snap_mem_host(m);
		static const uint8_t zero[PAGE];

		for (size_t i = 0; i < sizeof(touched) / sizeof(touched[0]);
		     i++)
			assert_memory_equal(got + touched[i] * PAGE,
					    mem.mapping + touched[i] * PAGE,
					    PAGE);
		/* The byte at gpa 4 GiB is at host offset 3 GiB. */
		assert_ptr_equal(fb_gpa_ptr(&mem, 4 * GiB, 1),
				 mem.mapping + 3 * GiB);
		for (uint64_t p = 7; p < pages; p += 4099)
			if (p != 786433)
				assert_memory_equal(got + p * PAGE, zero, PAGE);
		fb_snap_mem_release(m);
	}
	fb_guest_mem_release(&mem);
}

/* base (full) <- d1 <- d2 <- d3, each diff writing different pages,
 * one page rewritten by every generation, one data page zeroed. */
struct chain_fixture {
	struct fb_guest_mem mem;
	uint8_t *at_d1;		/* memory as d1 saw it */
	uint64_t words;
};

static void build_chain(struct chain_fixture *f)
{
	const uint64_t pages = 64 * MiB / PAGE;
	char abs_d2[256];

	assert_int_equal(fb_guest_mem_init(&f->mem, 64 * MiB), 0);
	f->words = (pages + 63) / 64;
	fill_64m(&f->mem);
	make_snap("base", &f->mem, NULL, NULL);

	for (unsigned gen = 1; gen <= 3; gen++) {
		uint64_t *bm = calloc(f->words, 8);
		char name[8];

		/* Pages only this generation writes, in runs and alone. */
		for (uint64_t p = 3000 + gen * 100; p < 3000 + gen * 100 + 40;
		     p++) {
			fill_page(f->mem.mapping + p * PAGE, p, gen);
			set_bit(bm, p);
		}
		for (uint64_t p = 9000 + gen; p < pages; p += 997) {
			fill_page(f->mem.mapping + p * PAGE, p, gen);
			set_bit(bm, p);
		}
		/* Every generation: page 5, and the last page. */
		fill_page(f->mem.mapping + 5 * PAGE, 5, gen);
		set_bit(bm, 5);
		fill_page(f->mem.mapping + (pages - 1) * PAGE, pages - 1, gen);
		set_bit(bm, pages - 1);
		/* A data page of the base becomes zero in gen 2. */
		if (gen == 2) {
			memset(f->mem.mapping + 3 * PAGE, 0, PAGE);
			set_bit(bm, 3);
		}
		/* A dirty page that did not change stays right too. */
		set_bit(bm, 6);
		snprintf(name, sizeof(name), "d%u", gen);
		if (gen == 1) {
			make_snap(name, &f->mem, bm, "../base");
			f->at_d1 = malloc(64 * MiB);
			memcpy(f->at_d1, f->mem.mapping, 64 * MiB);
		} else if (gen == 2) {
			make_snap(name, &f->mem, bm, "../d1");
		} else {
			/* An absolute parent path works too. */
			path_in(abs_d2, sizeof(abs_d2), "d2");
			make_snap(name, &f->mem, bm, abs_d2);
		}
		free(bm);
	}
}

static void free_chain(struct chain_fixture *f)
{
	free(f->at_d1);
	fb_guest_mem_release(&f->mem);
}

static void test_diff_chain(void **state)
{
	struct chain_fixture f;
	uint64_t size, blocks;

	build_chain(&f);
	/* A diff holds only its pages: 40 + ~16 + 3 (+1) of them. */
	blocks = file_blocks("d2", "memory.diff", &size);
	assert_true(size < 100 * PAGE);
	assert_true(blocks <= size);
	{
		char p[300], text[300];
		int fd;
		ssize_t n;

		snprintf(p, sizeof(p), "%s/d1/parent", dir);
		fd = open(p, O_RDONLY);
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		text[n > 0 ? n : 0] = '\0';
		assert_string_equal(text, "../base\n");
	}
	for (int mode = FB_SNAP_MEM_FILE; mode <= FB_SNAP_MEM_UFFD; mode++) {
		struct fb_snap_mem *m;

		m = map_ok("d3", 64 * MiB, (enum fb_snap_mem_mode)mode);
		expect_equal(m, f.mem.mapping, 64 * MiB);
		assert_int_equal(fb_snap_mem_status(m), 0);
		fb_snap_mem_release(m);
		/* A middle link restores its own moment. */
		m = map_ok("d1", 64 * MiB, (enum fb_snap_mem_mode)mode);
		expect_equal(m, f.at_d1, 64 * MiB);
		fb_snap_mem_release(m);
	}
	free_chain(&f);
}

static void test_merge(void **state)
{
	struct chain_fixture f;
	struct fb_snap *snap;
	char p[256], q[256];
	struct stat st;

	build_chain(&f);
	/* Another file of the newest snapshot (a disk layer, say). */
	path_in(p, sizeof(p), "d3/extra");
	{
		int fd = open(p, O_WRONLY | O_CREAT, 0600);

		assert_int_equal(write(fd, "x", 1), 1);
		close(fd);
	}
	path_in(p, sizeof(p), "d3");
	assert_int_equal(fb_snap_merge(p), 0);
	path_in(q, sizeof(q), "d3/memory.diff");
	assert_int_equal(stat(q, &st), -1);
	path_in(q, sizeof(q), "d3/parent");
	assert_int_equal(stat(q, &st), -1);
	path_in(q, sizeof(q), "d3/extra");
	assert_int_equal(stat(q, &st), 0);
	path_in(q, sizeof(q), "d3/state");
	assert_int_equal(fb_snap_read(q, &snap), 0);
	assert_int_equal(snap->flags, FB_SNAP_F_FULL);
	{
		const void *data;
		uint64_t len;

		assert_int_equal(fb_snap_section(snap, FB_SNAP_SEC_VM_CONFIG,
						 &data, &len), 0);
		assert_int_equal(len, 2);
		assert_memory_equal(data, "d3", 2);
	}
	fb_snap_free(snap);
	/* No temporary directory is left. */
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "ls -d %s/*.tmp-* >/dev/null 2>&1",
			 dir);
		assert_int_not_equal(system(cmd), 0);
	}

	/* The parents go; the merged snapshot restores alone. */
	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "base", "d1", "d2" };

		path_in(q, sizeof(q), names[i]);
		assert_int_equal(fb_snap_remove_tree(q), 0);
	}
	for (int mode = FB_SNAP_MEM_FILE; mode <= FB_SNAP_MEM_UFFD; mode++) {
		struct fb_snap_mem *m = map_ok("d3", 64 * MiB,
					       (enum fb_snap_mem_mode)mode);

		expect_equal(m, f.mem.mapping, 64 * MiB);
		fb_snap_mem_release(m);
	}
	/* A full snapshot is left as it is. */
	assert_int_equal(fb_snap_merge(p), 0);
	free_chain(&f);
}

/* Two FILE-mode restores of one snapshot share its pages read-only: a
 * write in one is seen neither by the other nor in the file. */
static void test_private_sharing(void **state)
{
	struct fb_guest_mem mem;
	struct fb_snap_mem *a, *b, *u;
	uint8_t page[PAGE], *pa, *pb;
	char p[256];
	int fd;

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	fill_64m(&mem);
	make_snap("s", &mem, NULL, NULL);
	a = map_ok("s", 64 * MiB, FB_SNAP_MEM_FILE);
	b = map_ok("s", 64 * MiB, FB_SNAP_MEM_FILE);
	pa = fb_snap_mem_host(a);
	pb = fb_snap_mem_host(b);
	assert_ptr_not_equal(pa, pb);

	memset(pa + 3 * PAGE, 0xaa, PAGE);	/* a data page */
	memset(pa + 10 * PAGE, 0xbb, PAGE);	/* a hole */
	assert_memory_equal(pb + 3 * PAGE, mem.mapping + 3 * PAGE, PAGE);
	assert_memory_equal(pb + 10 * PAGE, mem.mapping + 10 * PAGE, PAGE);
	memset(pb + 3 * PAGE, 0xcc, PAGE);
	assert_int_equal(pa[3 * PAGE], 0xaa);

	path_in(p, sizeof(p), "s/memory");
	fd = open(p, O_RDONLY);
	assert_int_equal(pread(fd, page, PAGE, 3 * PAGE), PAGE);
	assert_memory_equal(page, mem.mapping + 3 * PAGE, PAGE);
	assert_int_equal(pread(fd, page, PAGE, 10 * PAGE), PAGE);
	assert_memory_equal(page, mem.mapping + 10 * PAGE, PAGE);
	close(fd);

	/* A later restore, in either mode, sees the snapshot. */
	u = map_ok("s", 64 * MiB, FB_SNAP_MEM_UFFD);
	assert_memory_equal(fb_snap_mem_host(u) + 3 * PAGE,
			    mem.mapping + 3 * PAGE, PAGE);
	/* Writes into a page nobody touched yet (a write fault) land. */
	fb_snap_mem_host(u)[20 * PAGE + 5] = 0x5a;
	assert_int_equal(fb_snap_mem_host(u)[20 * PAGE + 5], 0x5a);
	assert_int_equal(fb_snap_mem_host(u)[20 * PAGE + 4],
			 mem.mapping[20 * PAGE + 4]);
	fb_snap_mem_release(u);
	fb_snap_mem_release(b);

	/* The mapping handed over outlives the fb_snap_mem. */
	pa = fb_snap_mem_take_host(a);
	fb_snap_mem_release(a);
	assert_int_equal(pa[3 * PAGE], 0xaa);
	assert_memory_equal(pa + 4 * PAGE, mem.mapping + 4 * PAGE, PAGE);
	assert_int_equal(munmap(pa, 64 * MiB), 0);
	fb_guest_mem_release(&mem);
}

static uint64_t *empty_bitmap(void)
{
	return calloc(64 * MiB / PAGE / 64, 8);
}

static void test_chain_refused(void **state)
{
	struct fb_guest_mem mem;
	uint64_t *bm = empty_bitmap();
	char p[256], want[512];

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	fill_64m(&mem);
	set_bit(bm, 1);

	/* A missing parent. */
	make_snap("orphan", &mem, bm, "../nope");
	snprintf(want, sizeof(want), "snapshot %s/orphan names parent ../nope, "
		 "which is missing", dir);
	expect_map_refused("orphan", 64 * MiB, -ENOENT, want);
	path_in(p, sizeof(p), "orphan");
	assert_int_equal(fb_snap_merge(p), -ENOENT);

	/* A loop of two, and a diff that is its own parent. */
	make_snap("x", &mem, bm, "../y");
	make_snap("y", &mem, bm, "../x");
	expect_map_refused("x", 64 * MiB, -ELOOP, "chain of parents loops "
			   "back to");
	make_snap("self", &mem, bm, ".");
	expect_map_refused("self", 64 * MiB, -ELOOP, "loops back");

	/* No snapshot there at all; a directory without memory. */
	expect_map_refused("nothing", 64 * MiB, -ENOENT, "No such file");
	path_in(p, sizeof(p), "empty");
	assert_int_equal(mkdir(p, 0700), 0);
	expect_map_refused("empty", 64 * MiB, -ENOENT,
			   "has no memory file (memory or memory.diff)");

	/* 64 diffs above a full snapshot restore; 65 are refused. */
	make_snap("c0", &mem, NULL, NULL);
	for (int i = 1; i <= FB_SNAP_MAX_CHAIN + 1; i++) {
		char name[16], parent[16];

		snprintf(name, sizeof(name), "c%d", i);
		snprintf(parent, sizeof(parent), "../c%d", i - 1);
		make_snap(name, &mem, bm, parent);
	}
	{
		char name[16];
		struct fb_snap_mem *m;

		snprintf(name, sizeof(name), "c%d", FB_SNAP_MAX_CHAIN);
		m = map_ok(name, 64 * MiB, FB_SNAP_MEM_FILE);
		expect_equal(m, mem.mapping, 64 * MiB);
		fb_snap_mem_release(m);
		snprintf(name, sizeof(name), "c%d", FB_SNAP_MAX_CHAIN + 1);
		expect_map_refused(name, 64 * MiB, -ELOOP,
				   "more than 64 diffs above its full "
				   "snapshot (merge it)");
	}
	free(bm);
	fb_guest_mem_release(&mem);
}

static void corrupt(const char *name, const char *file, off_t off,
		    uint8_t xor_with)
{
	char p[300];
	uint8_t c;
	int fd;

	snprintf(p, sizeof(p), "%s/%s/%s", dir, name, file);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= xor_with;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void cut(const char *name, const char *file, off_t len)
{
	char p[300];

	snprintf(p, sizeof(p), "%s/%s/%s", dir, name, file);
	assert_int_equal(truncate(p, len), 0);
}

static void test_damage_refused(void **state)
{
	struct fb_guest_mem mem;
	uint64_t *bm = empty_bitmap();

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	fill_64m(&mem);
	for (uint64_t p = 0; p < 100; p += 2)
		set_bit(bm, p);
	make_snap("base", &mem, NULL, NULL);
	make_snap("a", &mem, bm, "../base");
	make_snap("b", &mem, bm, "../base");
	make_snap("c", &mem, bm, "../base");
	make_snap("d", &mem, bm, "../base");
	make_snap("e", &mem, bm, "../base");
	make_snap("f", &mem, bm, "../base");

	/* A diff cut short, or with more than it says. */
	cut("a", "memory.diff", 4096 * 3 + 100);
	expect_map_refused("a", 64 * MiB, -EINVAL, "memory.diff is truncated");
	cut("b", "memory.diff", 100);
	expect_map_refused("b", 64 * MiB, -EINVAL, "memory.diff is truncated "
			   "(100 bytes");
	/* A flipped bit in the bitmap, in the header, in the magic. */
	corrupt("c", "memory.diff", 4096 + 1, 0x10);
	expect_map_refused("c", 64 * MiB, -EBADMSG, "page bitmap is corrupt");
	corrupt("d", "memory.diff", 20, 0x01);
	expect_map_refused("d", 64 * MiB, -EBADMSG, "header is corrupt");
	corrupt("e", "memory.diff", 0, 0x01);
	expect_map_refused("e", 64 * MiB, -EINVAL, "not a forkbox memory diff");
	/* A newer diff version. */
	corrupt("f", "memory.diff", 8, 0x03);
	expect_map_refused("f", 64 * MiB, -EPROTONOSUPPORT,
			   "version 2 is newer than this forkbox understands");
	/* A base memory file cut short (it would SIGBUS the guest). */
	cut("base", "memory", 32 * MiB);
	make_snap("g", &mem, bm, "../base");
	expect_map_refused("g", 64 * MiB, -EINVAL, "memory is 33554432 bytes, "
			   "the VM has 67108864");
	free(bm);
	fb_guest_mem_release(&mem);
}

/* Diffs of many short runs: past the MAP_FIXED budget (16384 runs in a
 * chain) the pages are copied instead; the bytes are the same. */
static void test_many_runs(void **state)
{
	const uint64_t pages = 64 * MiB / PAGE;
	struct fb_guest_mem mem;

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	fill_64m(&mem);
	make_snap("r0", &mem, NULL, NULL);
	for (unsigned gen = 1; gen <= 3; gen++) {
		uint64_t *bm = empty_bitmap();
		char name[8], parent[8];

		/* Every other page: 8192 runs of one page each. */
		for (uint64_t p = gen % 2; p < pages; p += 2) {
			fill_page(mem.mapping + p * PAGE, p, gen);
			set_bit(bm, p);
		}
		snprintf(name, sizeof(name), "r%u", gen);
		snprintf(parent, sizeof(parent), "../r%u", gen - 1);
		make_snap(name, &mem, bm, parent);
		free(bm);
	}
	for (int mode = FB_SNAP_MEM_FILE; mode <= FB_SNAP_MEM_UFFD; mode++) {
		struct fb_snap_mem *m = map_ok("r3", 64 * MiB,
					       (enum fb_snap_mem_mode)mode);

		expect_equal(m, mem.mapping, 64 * MiB);
		fb_snap_mem_release(m);
	}
	fb_guest_mem_release(&mem);
}

/* A diff of another VM size over this base. */
static void test_size_mismatch(void **state)
{
	struct fb_guest_mem small, mem;
	uint64_t *bm = empty_bitmap();

	assert_int_equal(fb_guest_mem_init(&small, 32 * MiB), 0);
	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	make_snap("base", &mem, NULL, NULL);
	make_snap("d", &small, bm, "../base");
	expect_map_refused("d", 64 * MiB, -EINVAL, "memory.diff covers 8192 "
			   "pages, the VM has 16384");
	free(bm);
	fb_guest_mem_release(&small);
	fb_guest_mem_release(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_64m, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_two_regions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_diff_chain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_sharing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chain_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damage_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_size_mismatch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_runs, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
