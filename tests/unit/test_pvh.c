/* The PVH boot: the ELF64 parser and its PVH note (synthetic files built
 * here byte by byte, and Debian's vmlinux when FORKBOX_KERNEL_ELF names
 * one or FORKBOX_KERNEL's bzImage can be unpacked), the LZ4 legacy
 * decoder and `forkbox kernel extract`, the hvm_start_info and memory map,
 * the loading into guest memory, the choice between bzImage and ELF, the
 * default kernel path, and vCPU 0's entry state against its GDT. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/kvm.h>
#include <lz4.h>
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

#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "arch/x86/elf.h"
#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "forkbox/forkbox.h"
#include "util/error.h"
#include "util/le.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)

/* The synthetic ELF: header, 3 program headers (PT_LOAD, PT_NOTE,
 * PT_GNU_STACK), notes at 0x200, the segment's bytes at 0x1000: 0x2000
 * in the file, 0x3000 in memory (0x1000 of .bss), loaded at 2 MiB. */
#define SYN_LEN 0x3000u
#define SYN_PADDR 0x200000ull
#define SYN_FILESZ 0x2000ull
#define SYN_MEMSZ 0x3000ull
#define SYN_ENTRY (SYN_PADDR + 0x10)
#define SYN_NOTES 0x200u
#define PH(i) (64u + (i) * 56u)

static void set_phdr(uint8_t *img, unsigned i, uint32_t type, uint64_t off,
		     uint64_t paddr, uint64_t filesz, uint64_t memsz,
		     uint64_t align)
{
	uint8_t *ph = img + PH(i);

	fb_put_le32(ph, type);
	fb_put_le32(ph + 4, 5);
	fb_put_le64(ph + 8, off);
	fb_put_le64(ph + 16, 0xffffffff80000000ull + paddr); /* vaddr: unused */
	fb_put_le64(ph + 24, paddr);
	fb_put_le64(ph + 32, filesz);
	fb_put_le64(ph + 40, memsz);
	fb_put_le64(ph + 48, align);
}

/* One note at p, padded to 4; returns its size. */
static size_t put_note(uint8_t *p, const char *name, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;
	size_t at = 12;

	fb_put_le32(p, namesz);
	fb_put_le32(p + 4, descsz);
	fb_put_le32(p + 8, type);
	memcpy(p + at, name, namesz);
	at += (namesz + 3) & ~3u;
	memcpy(p + at, desc, descsz);
	return at + ((descsz + 3) & ~3u);
}

/* Notes as Linux has them: others first, the entry as 8 bytes. */
static size_t linux_notes(uint8_t *p, uint64_t entry)
{
	uint8_t id[20] = { 1, 2, 3 };
	size_t n = 0;

	n += put_note(p + n, "GNU", 3, id, sizeof(id));
	n += put_note(p + n, "Xen", 6, "linux", 6);
	n += put_note(p + n, "Linux", 18, "\0\0\0\0", 4); /* not Xen's */
	n += put_note(p + n, "Xen", 18, &entry, 8);
	return n;
}

static uint8_t *synthetic_elf(size_t len)
{
	uint8_t *img = calloc(1, len);
	size_t n;

	assert_non_null(img);
	memcpy(img, "\x7f" "ELF", 4);
	img[4] = 2;
	img[5] = 1;
	img[6] = 1;
	fb_put_le16(img + 0x10, 2);
	fb_put_le16(img + 0x12, 62);
	fb_put_le32(img + 0x14, 1);
	fb_put_le64(img + 0x18, SYN_PADDR);
	fb_put_le64(img + 0x20, 64);
	fb_put_le16(img + 0x34, 64);
	fb_put_le16(img + 0x36, 56);
	fb_put_le16(img + 0x38, 3);
	n = linux_notes(img + SYN_NOTES, SYN_ENTRY);
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, SYN_FILESZ, SYN_MEMSZ, 0x1000);
	set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
	set_phdr(img, 2, 0x6474e551, 0, 0, 0, 0, 16);
	for (size_t i = 0x1000; i < 0x1000 + SYN_FILESZ; i++)
		img[i] = (uint8_t)(i * 7 + 3);
	return img;
}

static void expect_noexec(const uint8_t *img, size_t len, const char *why)
{
	struct fb_elf_kernel k;

	fb_errorf(0, "%s", "");
	assert_int_equal(fb_elf_parse_image(img, len, &k), -ENOEXEC);
	if (!strstr(fb_last_error(), why))
		fail_msg("message \"%s\" lacks \"%s\"", fb_last_error(), why);
}

/* ---- the ELF parser ---------------------------------------------------- */

static void test_elf_synthetic(void **state)
{
	uint8_t *img = synthetic_elf(SYN_LEN);
	struct fb_elf_kernel k;

	assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
	assert_int_equal(k.nr_load, 1);
	assert_int_equal(k.load[0].offset, 0x1000);
	assert_int_equal(k.load[0].filesz, SYN_FILESZ);
	assert_int_equal(k.load[0].paddr, SYN_PADDR);
	assert_int_equal(k.load[0].memsz, SYN_MEMSZ);
	assert_int_equal(k.nr_note, 1);
	assert_int_equal(k.note[0].offset, SYN_NOTES);
	assert_int_equal(k.start, SYN_PADDR);
	assert_int_equal(k.end, SYN_PADDR + SYN_MEMSZ);
	assert_int_equal(k.pvh_entry, SYN_ENTRY);

	/* The ABI's 4-byte entry works as Linux's 8-byte one does. */
	{
		uint32_t e = SYN_ENTRY + 4;
		size_t n = put_note(img + SYN_NOTES, "Xen", 18, &e, 4);

		set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
		assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
		assert_int_equal(k.pvh_entry, SYN_ENTRY + 4);
	}
	/* Trailing bytes after the ELF (Linux's relocations follow it in
	 * a bzImage's payload) are no matter. */
	img = realloc(img, SYN_LEN + 100);
	assert_non_null(img);
	assert_int_equal(fb_elf_parse_image(img, SYN_LEN + 100, &k), 0);
	free(img);
}

static void test_elf_refuses_headers(void **state)
{
	uint8_t *img = synthetic_elf(SYN_LEN);

	expect_noexec(img, 63, "truncated");
	expect_noexec(img, 0, "truncated");
	img[0] = 0x7e;
	expect_noexec(img, SYN_LEN, "not an ELF");
	img[0] = 0x7f;
	img[4] = 1;
	expect_noexec(img, SYN_LEN, "ELF64");
	img[4] = 2;
	img[5] = 2;
	expect_noexec(img, SYN_LEN, "little-endian");
	img[5] = 1;
	fb_put_le16(img + 0x10, 3); /* ET_DYN */
	expect_noexec(img, SYN_LEN, "executable");
	fb_put_le16(img + 0x10, 2);
	fb_put_le16(img + 0x12, 3); /* i386 */
	expect_noexec(img, SYN_LEN, "x86-64");
	fb_put_le16(img + 0x12, 62);
	fb_put_le16(img + 0x36, 32);
	expect_noexec(img, SYN_LEN, "program header size");
	fb_put_le16(img + 0x36, 56);
	fb_put_le16(img + 0x38, 0);
	expect_noexec(img, SYN_LEN, "0 program headers");
	fb_put_le16(img + 0x38, FB_ELF_MAX_PHDRS + 1);
	expect_noexec(img, SYN_LEN, "program headers");
	fb_put_le16(img + 0x38, 3);
	/* Program headers past the end, and at an offset that wraps. */
	fb_put_le64(img + 0x20, SYN_LEN - 100);
	expect_noexec(img, SYN_LEN, "beyond");
	fb_put_le64(img + 0x20, 0xffffffffffffff00ull);
	expect_noexec(img, SYN_LEN, "beyond");
	/* Only the first 4 KiB are read for them. */
	fb_put_le64(img + 0x20, FB_ELF_HEAD_MAX - 100);
	expect_noexec(img, SYN_LEN, "beyond");
	/* A file shorter than its program headers. */
	fb_put_le64(img + 0x20, 64);
	expect_noexec(img, 64 + 56, "beyond");
	free(img);
}

static void test_elf_refuses_segments(void **state)
{
	uint8_t *img = synthetic_elf(SYN_LEN);

	/* Bytes beyond the file's end, by size and by a wrapping offset. */
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, SYN_LEN - 0x1000 + 1,
		 SYN_MEMSZ, 0);
	expect_noexec(img, SYN_LEN, "beyond the file");
	set_phdr(img, 0, 1, 0xfffffffffffff000ull, SYN_PADDR, 0x2000,
		 SYN_MEMSZ, 0);
	expect_noexec(img, SYN_LEN, "beyond the file");
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, 0xffffffffffffff00ull,
		 0xffffffffffffff00ull, 0);
	expect_noexec(img, SYN_LEN, "beyond the file");
	/* Exactly to the file's end is fine. */
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, SYN_LEN - 0x1000, SYN_MEMSZ, 0);
	{
		struct fb_elf_kernel k;

		assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
	}
	/* More in the file than in memory. */
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, 0x2000, 0x1fff, 0);
	expect_noexec(img, SYN_LEN, "beyond its memory size");
	/* An address range that wraps around. */
	set_phdr(img, 0, 1, 0x1000, 0xfffffffffffff000ull, 0x2000, 0x2000, 0);
	expect_noexec(img, SYN_LEN, "overflows");
	/* Two loads over the same memory. */
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, 0x1000, 0x2000, 0);
	set_phdr(img, 2, 1, 0x2000, SYN_PADDR + 0x1fff, 0x10, 0x10, 0);
	expect_noexec(img, SYN_LEN, "overlaps");
	/* Back to back is fine, and an empty PT_LOAD loads nothing. */
	set_phdr(img, 2, 1, 0x2000, SYN_PADDR + 0x2000, 0x10, 0x10, 0);
	{
		struct fb_elf_kernel k;

		assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
		assert_int_equal(k.nr_load, 2);
		assert_int_equal(k.end, SYN_PADDR + 0x2010);
		set_phdr(img, 2, 1, 0, 0, 0, 0, 0);
		assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
		assert_int_equal(k.nr_load, 1);
	}
	/* No PT_LOAD at all. */
	set_phdr(img, 0, 6, 0, 0, 0, 0, 0);
	expect_noexec(img, SYN_LEN, "no PT_LOAD");
	free(img);

	/* More PT_LOADs than the cap. */
	img = synthetic_elf(SYN_LEN);
	fb_put_le16(img + 0x38, FB_ELF_MAX_LOADS + 2);
	for (unsigned i = 0; i <= FB_ELF_MAX_LOADS; i++)
		set_phdr(img, i + 1, 1, 0x1000, SYN_PADDR + 0x10000 * (i + 1),
			 0x10, 0x10, 0);
	expect_noexec(img, SYN_LEN, "more than 16 PT_LOAD");
	free(img);
}

static void test_elf_refuses_notes(void **state)
{
	size_t big = FB_ELF_NOTE_MAX + 0x2000;
	uint8_t *img = synthetic_elf(big);
	uint64_t e64;
	uint32_t e32;
	size_t n;

	/* No PVH note: an ELF Linux without CONFIG_PVH. */
	n = put_note(img + SYN_NOTES, "Xen", 6, "linux", 6);
	set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
	expect_noexec(img, SYN_LEN, "no PVH entry note");
	/* ... nor any note segment. */
	set_phdr(img, 1, 6, 0, 0, 0, 0, 0);
	expect_noexec(img, SYN_LEN, "no PVH entry note");
	/* A note whose name runs past its segment. */
	n = put_note(img + SYN_NOTES, "Xen", 18, "\x10\x00\x20\x00", 4);
	fb_put_le32(img + SYN_NOTES, 0xfffffff0u);
	set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
	expect_noexec(img, SYN_LEN, "run past");
	/* ... or whose desc does. */
	fb_put_le32(img + SYN_NOTES, 4);
	fb_put_le32(img + SYN_NOTES + 4, 0xffffffffu);
	expect_noexec(img, SYN_LEN, "run past");
	/* A segment cut inside the header leaves no note: none found. */
	set_phdr(img, 1, 4, SYN_NOTES, 0, 11, 11, 4);
	expect_noexec(img, SYN_LEN, "no PVH entry note");
	/* Entry sizes other than 4 or 8. */
	n = put_note(img + SYN_NOTES, "Xen", 18, "\x10\x00", 2);
	set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
	expect_noexec(img, SYN_LEN, "4 or 8");
	/* An 8-byte entry above 4 GiB. */
	e64 = 0x100200010ull;
	n = put_note(img + SYN_NOTES, "Xen", 18, &e64, 8);
	set_phdr(img, 1, 4, SYN_NOTES, 0, n, n, 4);
	expect_noexec(img, SYN_LEN, "above 4 GiB");
	/* Entry 0, outside any segment, in .bss (not in the file). */
	e32 = 0;
	n = put_note(img + SYN_NOTES, "Xen", 18, &e32, 4);
	expect_noexec(img, SYN_LEN, "address 0");
	e32 = 0x100000;
	put_note(img + SYN_NOTES, "Xen", 18, &e32, 4);
	expect_noexec(img, SYN_LEN, "not in a loaded segment");
	e32 = (uint32_t)(SYN_PADDR + SYN_FILESZ);
	put_note(img + SYN_NOTES, "Xen", 18, &e32, 4);
	expect_noexec(img, SYN_LEN, "not in a loaded segment");
	e32 = (uint32_t)(SYN_PADDR + SYN_FILESZ - 1);
	put_note(img + SYN_NOTES, "Xen", 18, &e32, 4);
	{
		struct fb_elf_kernel k;

		assert_int_equal(fb_elf_parse_image(img, SYN_LEN, &k), 0);
		assert_int_equal(k.pvh_entry, e32);
	}
	/* A note segment over the cap, and too many of them. */
	set_phdr(img, 1, 4, SYN_NOTES, 0, FB_ELF_NOTE_MAX + 1,
		 FB_ELF_NOTE_MAX + 1, 4);
	expect_noexec(img, big, "at most");
	free(img);

	img = synthetic_elf(SYN_LEN);
	fb_put_le16(img + 0x38, FB_ELF_MAX_NOTES + 2);
	for (unsigned i = 1; i <= FB_ELF_MAX_NOTES + 1; i++)
		set_phdr(img, i, 4, SYN_NOTES, 0, 4, 4, 4);
	expect_noexec(img, SYN_LEN, "more than 4 PT_NOTE");
	free(img);
}

static void test_elf_notes_align8(void **state)
{
	uint8_t notes[48] = { 0 };
	uint32_t entry = 0;

	/* In a segment aligned to 8, the desc and the next note start at
	 * offsets rounded up to 8: a "GNU" note with a 4-byte desc (at
	 * 16) is followed by Xen's at 24, not at 20. */
	fb_put_le32(notes, 4);
	fb_put_le32(notes + 4, 4);
	fb_put_le32(notes + 8, 5);
	memcpy(notes + 12, "GNU", 4);
	fb_put_le32(notes + 16, 0xdeadbeef);
	fb_put_le32(notes + 24, 4);
	fb_put_le32(notes + 28, 4);
	fb_put_le32(notes + 32, 18);
	memcpy(notes + 36, "Xen", 4);
	fb_put_le32(notes + 40, 0x123456);
	assert_int_equal(fb_elf_find_pvh(notes, sizeof(notes), 8, &entry), 0);
	assert_int_equal(entry, 0x123456);
	/* Read with 4-byte padding the same bytes are garbage from 20 on:
	 * refused, nothing found. */
	entry = 0;
	assert_int_equal(fb_elf_find_pvh(notes, sizeof(notes), 4, &entry),
			 -ENOEXEC);
	assert_int_equal(entry, 0);
	/* The last note's padding may be cut off; nothing at all is no
	 * note. */
	assert_int_equal(fb_elf_find_pvh(notes, 44, 8, &entry), 0);
	assert_int_equal(fb_elf_find_pvh(notes, 0, 4, &entry), -ENOENT);
	assert_int_equal(fb_elf_find_pvh(notes, 11, 4, &entry), -ENOENT);
}

/* ---- LZ4 and kernel extraction ------------------------------------------- */

/* An LZ4 legacy stream as the kernel's build makes it: magic, blocks of
 * at most 8 MiB, then the size appended. */
static uint8_t *lz4_legacy(const uint8_t *data, size_t len, size_t *out_len)
{
	size_t block = 8u << 20, bound = (size_t)LZ4_compressBound(8 << 20);
	uint8_t *out = malloc(8 + (len / block + 1) * (4 + bound));
	size_t at = 4;

	assert_non_null(out);
	fb_put_le32(out, 0x184c2102u);
	for (size_t off = 0; off < len; off += block) {
		size_t n = len - off < block ? len - off : block;
		int c = LZ4_compress_default((const char *)data + off,
					     (char *)out + at + 4, (int)n,
					     (int)bound);

		assert_true(c > 0);
		fb_put_le32(out + at, (uint32_t)c);
		at += 4 + (size_t)c;
	}
	fb_put_le32(out + at, (uint32_t)len);
	*out_len = at + 4;
	return out;
}

static void test_lz4_legacy(void **state)
{
	size_t len = 9u << 20, slen, olen;
	uint8_t *data = malloc(len), *s, *out;

	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)((i / 3) ^ (i >> 13));
	s = lz4_legacy(data, len, &slen);
	/* Two blocks, both decoded, the size matching. */
	assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out, &olen), 0);
	assert_int_equal(olen, len);
	assert_memory_equal(out, data, len);
	free(out);
	/* A cap below the size. */
	assert_int_equal(fb_lz4_legacy_decode(s, slen, len - 1, &out, &olen),
			 -ENOEXEC);
	/* A trailer that disagrees (here: says less, so a block does not
	 * fit; then says more than was there). */
	fb_put_le32(s + slen - 4, (uint32_t)len - 1);
	assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out, &olen),
			 -ENOEXEC);
	fb_put_le32(s + slen - 4, (uint32_t)len + 1);
	assert_int_equal(fb_lz4_legacy_decode(s, slen, len + 1, &out, &olen),
			 -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "trailer"));
	fb_put_le32(s + slen - 4, (uint32_t)len);
	/* Truncated anywhere. */
	for (size_t cut = 1; cut < 64; cut += 7)
		assert_int_equal(fb_lz4_legacy_decode(s, slen - cut, len, &out,
						      &olen), -ENOEXEC);
	assert_int_equal(fb_lz4_legacy_decode(s, 11, len, &out, &olen),
			 -ENOEXEC);
	/* A block size larger than the rest, and than any block may be. */
	{
		uint32_t c0 = fb_le32(s + 4);

		fb_put_le32(s + 4, (uint32_t)slen);
		assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out,
						      &olen), -ENOEXEC);
		fb_put_le32(s + 4, 0x7fffffff);
		assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out,
						      &olen), -ENOEXEC);
		fb_put_le32(s + 4, 0);
		assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out,
						      &olen), -ENOEXEC);
		fb_put_le32(s + 4, c0);
		/* Garbage inside a block. */
		memset(s + 8, 0xff, 64);
		assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out,
						      &olen), -ENOEXEC);
	}
	/* Not LZ4 legacy at all. */
	fb_put_le32(s, 0x184d2204u); /* the frame format's magic */
	assert_int_equal(fb_lz4_legacy_decode(s, slen, len, &out, &olen),
			 -ENOEXEC);
	free(s);

	/* A second magic mid-stream (concatenated streams) is skipped. */
	{
		size_t a_len, b_len;
		uint8_t *a = lz4_legacy(data, 1000, &a_len);
		uint8_t *b = lz4_legacy(data + 1000, 2000, &b_len);
		uint8_t *cat = malloc(a_len + b_len);

		assert_non_null(cat);
		memcpy(cat, a, a_len - 4);
		memcpy(cat + a_len - 4, b, b_len);
		fb_put_le32(cat + (a_len - 4 + b_len - 4), 3000);
		assert_int_equal(fb_lz4_legacy_decode(cat, a_len - 4 + b_len,
						      len, &out, &olen), 0);
		assert_int_equal(olen, 3000);
		assert_memory_equal(out, data, 3000);
		free(out);
		free(a);
		free(b);
		free(cat);
	}
	free(data);
}

static char tmpdir[64];

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fb-test-pvh.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	return nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		fail_msg("create %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A 2.15 bzImage whose payload (at 0x100 into the kernel) is given. */
static uint8_t *bzimage_with(const uint8_t *payload, size_t plen,
			     size_t *len)
{
	uint8_t *img = calloc(1, 0x400 + 0x100 + plen);

	assert_non_null(img);
	img[FB_BP_SETUP_SECTS] = 1;
	fb_put_le16(img + FB_BP_BOOT_FLAG, 0xaa55);
	img[FB_BP_HDR_JUMP] = 0xeb;
	img[FB_BP_HDR_JUMP + 1] = 0x66;
	memcpy(img + FB_BP_HDR_MAGIC, "HdrS", 4);
	fb_put_le16(img + FB_BP_VERSION, 0x020f);
	img[FB_BP_LOADFLAGS] = FB_LOADFLAG_LOADED_HIGH;
	fb_put_le16(img + FB_BP_XLOADFLAGS, FB_XLF_KERNEL_64);
	fb_put_le32(img + FB_BP_INIT_SIZE, 0x100000);
	fb_put_le32(img + FB_BP_PAYLOAD_OFFSET, 0x100);
	fb_put_le32(img + FB_BP_PAYLOAD_LENGTH, (uint32_t)plen);
	memcpy(img + 0x500, payload, plen);
	*len = 0x400 + 0x100 + plen;
	return img;
}

static void test_bzimage_payload(void **state)
{
	uint8_t junk[16] = { 1, 2, 3 };
	const uint8_t *p;
	struct fb_bzimage bz;
	size_t len, plen;
	uint8_t *img = bzimage_with(junk, sizeof(junk), &len);

	assert_int_equal(fb_bzimage_parse(img, len, &bz), 0);
	assert_int_equal(fb_bzimage_payload(img, len, &bz, &p, &plen), 0);
	assert_ptr_equal(p, img + 0x500);
	assert_int_equal(plen, sizeof(junk));
	/* One byte more than the kernel holds; an offset past it; an
	 * offset + length that wraps in 32 bits. */
	fb_put_le32(img + FB_BP_PAYLOAD_LENGTH, sizeof(junk) + 1);
	assert_int_equal(fb_bzimage_payload(img, len, &bz, &p, &plen),
			 -ENOEXEC);
	fb_put_le32(img + FB_BP_PAYLOAD_LENGTH, sizeof(junk));
	fb_put_le32(img + FB_BP_PAYLOAD_OFFSET, 0x200);
	assert_int_equal(fb_bzimage_payload(img, len, &bz, &p, &plen),
			 -ENOEXEC);
	fb_put_le32(img + FB_BP_PAYLOAD_OFFSET, 0x100);
	fb_put_le32(img + FB_BP_PAYLOAD_LENGTH, 0xffffff10u);
	assert_int_equal(fb_bzimage_payload(img, len, &bz, &p, &plen),
			 -ENOEXEC);
	free(img);
}

static void test_kernel_extract(void **state)
{
	uint8_t *elf = synthetic_elf(SYN_LEN), *stream, *img, *back;
	char bz_path[128], out[128];
	struct fb_kernel_desc d;
	size_t slen, len, blen;
	struct stat st;

	tmp_path(bz_path, sizeof(bz_path), "bzImage");
	tmp_path(out, sizeof(out), "vmlinux");
	stream = lz4_legacy(elf, SYN_LEN, &slen);
	img = bzimage_with(stream, slen, &len);
	write_file(bz_path, img, len);
	free(img);

	assert_int_equal(fb_kernel_extract(bz_path, out, &d), 0);
	back = slurp(out, &blen);
	assert_int_equal(blen, SYN_LEN);
	assert_memory_equal(back, elf, SYN_LEN);
	free(back);
	assert_int_equal(d.kind, FB_KERNEL_ELF_PVH);
	assert_int_equal(d.pvh_entry, SYN_ENTRY);
	assert_int_equal(d.load_start, SYN_PADDR);
	assert_int_equal(d.file_size, SYN_LEN);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* Both describe themselves. */
	assert_int_equal(fb_kernel_describe(out, &d), 0);
	assert_int_equal(d.kind, FB_KERNEL_ELF_PVH);
	assert_int_equal(d.pvh_entry, SYN_ENTRY);
	assert_int_equal(fb_kernel_describe(bz_path, &d), 0);
	assert_int_equal(d.kind, FB_KERNEL_BZIMAGE);
	assert_string_equal(d.payload_format, "lz4");
	assert_int_equal(d.payload_size, slen);
	assert_int_equal(unlink(out), 0);
	free(stream);

	/* An ELF without a PVH note: nothing written, the bzImage stays. */
	fb_put_le32(elf + PH(1), 6);
	stream = lz4_legacy(elf, SYN_LEN, &slen);
	img = bzimage_with(stream, slen, &len);
	write_file(bz_path, img, len);
	assert_int_equal(fb_kernel_extract(bz_path, out, &d), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "no PVH entry note"));
	assert_non_null(strstr(fb_last_error(), bz_path));
	assert_int_equal(access(out, F_OK), -1);
	free(img);

	/* A gzip payload: named, refused, nothing written. */
	stream[0] = 0x1f;
	stream[1] = 0x8b;
	img = bzimage_with(stream, slen, &len);
	write_file(bz_path, img, len);
	assert_int_equal(fb_kernel_extract(bz_path, out, &d), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "LZ4 only"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(fb_kernel_describe(bz_path, &d), 0);
	assert_string_equal(d.payload_format, "gzip");
	free(img);
	free(stream);

	/* Not a bzImage at all. */
	assert_int_equal(fb_kernel_extract(out, bz_path, &d), -ENOENT);
	write_file(out, elf, 100);
	assert_int_equal(fb_kernel_extract(out, bz_path, &d), -ENOEXEC);
	assert_int_equal(unlink(out), 0);
	free(elf);
}

/* ---- start_info and memory map ------------------------------------------- */

static const struct fb_e820_entry test_e820[3] = {
	{ 0, 0x9fc00, FB_E820_RAM },
	{ 0x9fc00, 0x60400, FB_E820_RESERVED },
	{ 0x100000, 0x7f00000, FB_E820_RAM },
};

static void test_start_info(void **state)
{
	struct fb_pvh_args a = {
		.cmdline_addr = 0x20000,
		.initrd_addr = 0x7f00000,
		.initrd_size = 0x12345,
		.rsdp_addr = 0xe0000,
		.e820 = test_e820,
		.e820_entries = 3,
	};
	uint8_t page[4096];

	memset(page, 0xee, sizeof(page));
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), 0);
	/* Field by field, at the ABI's offsets. */
	assert_int_equal(fb_le32(page), 0x336ec578);
	assert_int_equal(fb_le32(page + 4), 1);
	assert_int_equal(fb_le32(page + 8), 0);          /* flags */
	assert_int_equal(fb_le32(page + 12), 1);         /* nr_modules */
	assert_int_equal(fb_le64(page + 16), 0x7040);    /* modlist_paddr */
	assert_int_equal(fb_le64(page + 24), 0x20000);   /* cmdline_paddr */
	assert_int_equal(fb_le64(page + 32), 0xe0000);   /* rsdp_paddr */
	assert_int_equal(fb_le64(page + 40), 0x7080);    /* memmap_paddr */
	assert_int_equal(fb_le32(page + 48), 3);         /* memmap_entries */
	assert_int_equal(fb_le32(page + 52), 0);
	/* Module 0, the initrd, no command line of its own. */
	assert_int_equal(fb_le64(page + 0x40), 0x7f00000);
	assert_int_equal(fb_le64(page + 0x48), 0x12345);
	assert_int_equal(fb_le64(page + 0x50), 0);
	assert_int_equal(fb_le64(page + 0x58), 0);
	/* The map, 24 bytes an entry. */
	for (int i = 0; i < 3; i++) {
		const uint8_t *e = page + 0x80 + 24 * i;

		assert_int_equal(fb_le64(e), test_e820[i].addr);
		assert_int_equal(fb_le64(e + 8), test_e820[i].size);
		assert_int_equal(fb_le32(e + 16), test_e820[i].type);
		assert_int_equal(fb_le32(e + 20), 0);
	}
	/* Nothing else: the rest of the page is zero. */
	for (size_t i = 0x80 + 3 * 24; i < sizeof(page); i++)
		assert_int_equal(page[i], 0);
	for (size_t i = 56; i < 0x40; i++)
		assert_int_equal(page[i], 0);

	/* No initrd: no module and no list. */
	a.initrd_size = 0;
	a.initrd_addr = 0;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), 0);
	assert_int_equal(fb_le32(page + 12), 0);
	assert_int_equal(fb_le64(page + 16), 0);
	assert_int_equal(fb_le64(page + 0x40), 0);
}

static void test_start_info_refusals(void **state)
{
	struct fb_e820_entry many[FB_E820_MAX_ENTRIES];
	struct fb_pvh_args ok = {
		.cmdline_addr = 0x20000, .e820 = test_e820, .e820_entries = 3,
	}, a;
	uint8_t page[4096];

	memset(many, 0, sizeof(many));
	a = ok;
	a.e820_entries = 0;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), -EINVAL);
	/* Linux adds one entry to the map it copies into 128 slots. */
	a.e820 = many;
	a.e820_entries = FB_E820_MAX_ENTRIES;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), -EINVAL);
	a.e820_entries = FB_E820_MAX_ENTRIES - 1;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), 0);
	assert_int_equal(fb_le32(page + 48), FB_E820_MAX_ENTRIES - 1);
	a = ok;
	a.cmdline_addr = 0x100000000ull;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), -EINVAL);
	a = ok;
	a.initrd_addr = 0x100000000ull;
	a.initrd_size = 1;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), -EINVAL);
	a = ok;
	a.initrd_addr = 0x1000;
	a.initrd_size = 0x100000000ull;
	assert_int_equal(fb_pvh_info_fill(page, 0x7000, &a), -EINVAL);
	a = ok;
	assert_int_equal(fb_pvh_info_fill(page, 0xfffff000ull, &a), -EINVAL);
}

/* ---- loading ------------------------------------------------------------- */

static void test_load_pvh(void **state)
{
	static const char cmdline[] = "console=ttyS0 panic=-1";
	char kernel[128], initrd[128];
	struct fb_linux_boot boot = {
		.kernel_path = kernel, .initrd_path = initrd,
		.cmdline = cmdline, .rsdp_addr = FB_ACPI_ADDR,
	};
	uint8_t *img = synthetic_elf(SYN_LEN), rd[5000], *p, *si;
	struct fb_guest_mem mem;
	uint64_t entry = 0, rd_addr;

	tmp_path(kernel, sizeof(kernel), "vmlinux-syn");
	tmp_path(initrd, sizeof(initrd), "initrd");
	write_file(kernel, img, SYN_LEN);
	for (size_t i = 0; i < sizeof(rd); i++)
		rd[i] = (uint8_t)(i * 13 + 1);
	write_file(initrd, rd, sizeof(rd));

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	/* Garbage where .bss goes: the loader must clear it. */
	memset(fb_gpa_ptr(&mem, SYN_PADDR, SYN_MEMSZ), 0xcc, SYN_MEMSZ);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), 0);
	assert_int_equal(entry, SYN_ENTRY);
	p = fb_gpa_ptr(&mem, SYN_PADDR, SYN_MEMSZ);
	assert_memory_equal(p, img + 0x1000, SYN_FILESZ);
	for (size_t i = SYN_FILESZ; i < SYN_MEMSZ; i++)
		assert_int_equal(p[i], 0);
	assert_memory_equal(fb_gpa_ptr(&mem, FB_CMDLINE_ADDR, sizeof(cmdline)),
			    cmdline, sizeof(cmdline));

	si = fb_gpa_ptr(&mem, FB_PVH_INFO_ADDR, 4096);
	assert_int_equal(fb_le32(si), FB_HVM_START_MAGIC);
	assert_int_equal(fb_le32(si + 4), 1);
	assert_int_equal(fb_le64(si + 24), FB_CMDLINE_ADDR);
	assert_int_equal(fb_le64(si + 32), FB_ACPI_ADDR);
	assert_int_equal(fb_le32(si + 12), 1);
	/* The map is fb_e820_build's for 64 MiB. */
	assert_int_equal(fb_le32(si + 48), 3);
	assert_int_equal(fb_le64(si + 0x80 + 48), 0x100000);
	assert_int_equal(fb_le64(si + 0x80 + 56), 63 * MiB);
	/* The initrd: page-aligned, as high as RAM goes, intact. */
	rd_addr = fb_le64(si + 0x40);
	assert_int_equal(fb_le64(si + 0x48), sizeof(rd));
	assert_int_equal(rd_addr, (64 * MiB - sizeof(rd)) & ~0xfffull);
	assert_memory_equal(fb_gpa_ptr(&mem, rd_addr, sizeof(rd)), rd,
			    sizeof(rd));
	fb_guest_mem_release(&mem);

	/* Without an initrd: no module. */
	boot.initrd_path = NULL;
	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), 0);
	assert_int_equal(fb_le32(fb_gpa_ptr(&mem, FB_PVH_INFO_ADDR + 12, 4)),
			 0);
	fb_guest_mem_release(&mem);
	free(img);
}

static void test_load_pvh_refusals(void **state)
{
	char kernel[128], initrd[128], *line;
	struct fb_linux_boot boot = {
		.kernel_path = kernel, .cmdline = "",
	};
	uint8_t *img = synthetic_elf(SYN_LEN);
	struct fb_guest_mem mem;
	uint64_t entry = 0;
	int fd;

	tmp_path(kernel, sizeof(kernel), "vmlinux-bad");
	tmp_path(initrd, sizeof(initrd), "big-initrd");
	assert_int_equal(fb_guest_mem_init(&mem, 32 * MiB), 0);

	/* A segment past the end of RAM. */
	set_phdr(img, 0, 1, 0x1000, 32 * MiB - 0x1000, SYN_FILESZ, SYN_MEMSZ,
		 0);
	put_note(img + SYN_NOTES, "Xen", 18,
		 &(uint32_t){ (uint32_t)(32 * MiB - 0x1000 + 0x10) }, 4);
	set_phdr(img, 1, 4, SYN_NOTES, 0, 20, 20, 4);
	write_file(kernel, img, SYN_LEN);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOMEM);
	assert_non_null(strstr(fb_last_error(), "--mem"));
	assert_non_null(strstr(fb_last_error(), kernel));
	/* Into the MMIO hole of a big guest is no better. */
	fb_guest_mem_release(&mem);
	assert_int_equal(fb_guest_mem_init(&mem, 4096 * MiB), 0);
	set_phdr(img, 0, 1, 0x1000, 0xc0000000ull, SYN_FILESZ, SYN_MEMSZ, 0);
	put_note(img + SYN_NOTES, "Xen", 18, &(uint32_t){ 0xc0000010u }, 4);
	write_file(kernel, img, SYN_LEN);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOMEM);
	fb_guest_mem_release(&mem);
	assert_int_equal(fb_guest_mem_init(&mem, 32 * MiB), 0);

	/* Below 1 MiB, over our own tables. */
	set_phdr(img, 0, 1, 0x1000, 0x8000, SYN_FILESZ, SYN_MEMSZ, 0);
	put_note(img + SYN_NOTES, "Xen", 18, &(uint32_t){ 0x8010 }, 4);
	write_file(kernel, img, SYN_LEN);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "below 1 MiB"));

	/* A file cut short of its segment, after the headers were read. */
	set_phdr(img, 0, 1, 0x1000, SYN_PADDR, SYN_FILESZ, SYN_MEMSZ, 0);
	put_note(img + SYN_NOTES, "Xen", 18, &(uint32_t){ SYN_ENTRY }, 4);
	write_file(kernel, img, 0x1800);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "beyond the file"));

	/* The message names the file and the reason (no PVH note). */
	fb_put_le32(img + PH(1), 6);
	write_file(kernel, img, SYN_LEN);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), kernel));
	assert_non_null(strstr(fb_last_error(), "no PVH entry note"));
	fb_put_le32(img + PH(1), 4);
	write_file(kernel, img, SYN_LEN);

	/* A command line too long for the kernel. */
	line = malloc(FB_CMDLINE_MAX + 1);
	assert_non_null(line);
	memset(line, 'a', FB_CMDLINE_MAX);
	line[FB_CMDLINE_MAX] = '\0';
	boot.cmdline = line;
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -E2BIG);
	line[FB_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), 0);
	boot.cmdline = "";
	free(line);

	/* An initrd that does not fit above the kernel's end (2 MiB +
	 * 12 KiB) in 32 MiB. */
	fd = open(initrd, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 30 * MiB), 0);
	close(fd);
	boot.initrd_path = initrd;
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOMEM);
	assert_non_null(strstr(fb_last_error(), "--mem"));
	/* Exactly enough: 32 MiB - 12 KiB - 2 MiB. */
	fd = open(initrd, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 30 * MiB - SYN_MEMSZ), 0);
	close(fd);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), 0);
	assert_int_equal(fb_le64(fb_gpa_ptr(&mem, FB_PVH_INFO_ADDR + 0x40, 8)),
			 SYN_PADDR + SYN_MEMSZ);
	fb_guest_mem_release(&mem);
	free(img);
}

/* bzImage or ELF, by magic; junk is neither. */
static void test_load_kernel_dispatch(void **state)
{
	char path[128];
	uint8_t *img = synthetic_elf(SYN_LEN), junk[0x400] = { 0 };
	struct fb_linux_boot boot = { .kernel_path = path, .cmdline = "x" };
	struct fb_x86_start start;
	struct fb_guest_mem mem;
	size_t len;

	assert_int_equal(fb_guest_mem_init(&mem, 64 * MiB), 0);
	tmp_path(path, sizeof(path), "kernel-elf");
	write_file(path, img, SYN_LEN);
	free(img);
	assert_int_equal(fb_x86_load_kernel(&mem, &boot, &start), 0);
	assert_int_equal(start.kind, FB_KERNEL_ELF_PVH);
	assert_int_equal(start.entry, SYN_ENTRY);
	assert_int_equal(start.boot_info, FB_PVH_INFO_ADDR);

	img = bzimage_with(junk, 16, &len);
	tmp_path(path, sizeof(path), "kernel-bz");
	write_file(path, img, len);
	free(img);
	assert_int_equal(fb_x86_load_kernel(&mem, &boot, &start), 0);
	assert_int_equal(start.kind, FB_KERNEL_BZIMAGE);
	assert_int_equal(start.entry, FB_KERNEL_LOAD_ADDR +
			 FB_KERNEL_64BIT_ENTRY);
	assert_int_equal(start.boot_info, FB_ZERO_PAGE_ADDR);

	tmp_path(path, sizeof(path), "kernel-junk");
	write_file(path, junk, sizeof(junk));
	assert_int_equal(fb_x86_load_kernel(&mem, &boot, &start), -ENOEXEC);
	assert_non_null(strstr(fb_last_error(), "neither"));
	assert_non_null(strstr(fb_last_error(), path));
	write_file(path, junk, 0);
	assert_int_equal(fb_x86_load_kernel(&mem, &boot, &start), -ENOEXEC);
	tmp_path(path, sizeof(path), "kernel-missing");
	assert_int_equal(fb_x86_load_kernel(&mem, &boot, &start), -ENOENT);
	fb_guest_mem_release(&mem);
}

/* ---- Debian's vmlinux ---------------------------------------------------- */

/* FORKBOX_KERNEL_ELF, else FORKBOX_KERNEL if it is an ELF, else that
 * bzImage unpacked here; NULL to skip. */
static const char *real_vmlinux(char *buf, size_t size)
{
	const char *elf = getenv("FORKBOX_KERNEL_ELF");
	const char *bz = getenv("FORKBOX_KERNEL");
	struct fb_kernel_desc d;
	uint8_t magic[4] = { 0 };
	FILE *f;

	if (elf && *elf)
		return elf;
	if (!bz || !*bz)
		return NULL;
	f = fopen(bz, "rb");
	if (!f)
		return NULL;
	if (fread(magic, 1, 4, f) != 4)
		magic[0] = 0;
	fclose(f);
	if (fb_elf_is_elf(magic, 4))
		return bz;
	snprintf(buf, size, "%s/vmlinux-real", tmpdir);
	if (fb_kernel_extract(bz, buf, &d) < 0) {
		print_message("  cannot unpack %s: %s\n", bz, fb_last_error());
		return NULL;
	}
	return buf;
}

static void test_real_vmlinux(void **state)
{
	static const uint8_t pvh_note[] = {
		4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0,
	};
	char buf[128], initrd[128];
	const char *path = real_vmlinux(buf, sizeof(buf));
	struct fb_linux_boot boot = {
		.kernel_path = path, .initrd_path = initrd,
		.cmdline = "console=ttyS0",
	};
	struct fb_elf_kernel k, kf;
	struct fb_guest_mem mem;
	const uint8_t *note;
	uint64_t entry = 0;
	uint8_t *img, *si;
	size_t len;
	int fd;

	if (!path)
		skip();
	img = slurp(path, &len);
	assert_int_equal(fb_elf_parse_image(img, len, &k), 0);
	/* Independently: Linux's note is "Xen", type 18, 8 bytes. */
	note = memmem(img, len, pvh_note, sizeof(pvh_note));
	assert_non_null(note);
	assert_int_equal(k.pvh_entry, fb_le64(note + sizeof(pvh_note)));
	/* x86-64 Linux runs from LOAD_PHYSICAL_ADDR, 16 MiB. */
	assert_int_equal(k.start, 16 * MiB);
	assert_true(k.pvh_entry > k.start && k.pvh_entry < k.end);
	assert_true(k.nr_load >= 2);
	print_message("  %s: PVH entry 0x%x, %u segments at 0x%llx-0x%llx\n",
		      path, k.pvh_entry, k.nr_load,
		      (unsigned long long)k.start, (unsigned long long)k.end);

	/* Read from the file as the VMM does: the same. */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fb_elf_parse_file(fd, path, &kf), 0);
	close(fd);
	assert_memory_equal(&kf, &k, sizeof(k));

	/* Loaded into a 256 MiB guest: every segment's bytes. */
	tmp_path(initrd, sizeof(initrd), "initrd-real");
	write_file(initrd, "initrd", 6);
	assert_int_equal(fb_guest_mem_init(&mem, 256 * MiB), 0);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), 0);
	assert_int_equal(entry, k.pvh_entry);
	for (unsigned i = 0; i < k.nr_load; i++)
		assert_memory_equal(fb_gpa_ptr(&mem, k.load[i].paddr,
					       k.load[i].filesz),
				    img + k.load[i].offset, k.load[i].filesz);
	si = fb_gpa_ptr(&mem, FB_PVH_INFO_ADDR, 4096);
	assert_int_equal(fb_le32(si), FB_HVM_START_MAGIC);
	assert_true(fb_le64(si + 0x40) >= k.end);
	fb_guest_mem_release(&mem);
	/* Its segments do not fit 32 MiB: said so, with --mem. */
	assert_int_equal(fb_guest_mem_init(&mem, 32 * MiB), 0);
	assert_int_equal(fb_x86_load_pvh(&mem, &boot, &entry), -ENOMEM);
	assert_non_null(strstr(fb_last_error(), "--mem"));
	fb_guest_mem_release(&mem);
	free(img);
}

/* ---- the default kernel -------------------------------------------------- */

static void test_default_kernel(void **state)
{
	char *old_home = getenv("FORKBOX_HOME"), *old_kernel =
		getenv("FORKBOX_KERNEL");
	char save_home[512] = "", save_kernel[512] = "", dir[256], path[512];
	char want[512];

	if (old_home)
		snprintf(save_home, sizeof(save_home), "%s", old_home);
	if (old_kernel)
		snprintf(save_kernel, sizeof(save_kernel), "%s", old_kernel);
	setenv("FORKBOX_HOME", tmpdir, 1);
	unsetenv("FORKBOX_KERNEL");
	snprintf(dir, sizeof(dir), "%s/kernels", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/kernels/default", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);

	assert_int_equal(fb_default_kernel(path, sizeof(path)), -ENOENT);
	snprintf(want, sizeof(want), "%s/vmlinuz", dir);
	write_file(want, "bz", 2);
	assert_int_equal(fb_default_kernel(path, sizeof(path)), 0);
	assert_string_equal(path, want);
	/* The unpacked vmlinux wins once it is there. */
	snprintf(want, sizeof(want), "%s/vmlinux", dir);
	write_file(want, "elf", 3);
	assert_int_equal(fb_default_kernel(path, sizeof(path)), 0);
	assert_string_equal(path, want);
	/* FORKBOX_KERNEL over both. */
	setenv("FORKBOX_KERNEL", "/some/kernel", 1);
	assert_int_equal(fb_default_kernel(path, sizeof(path)), 0);
	assert_string_equal(path, "/some/kernel");

	if (old_home)
		setenv("FORKBOX_HOME", save_home, 1);
	else
		unsetenv("FORKBOX_HOME");
	if (old_kernel)
		setenv("FORKBOX_KERNEL", save_kernel, 1);
	else
		unsetenv("FORKBOX_KERNEL");
}

/* ---- vCPU 0 at the PVH entry --------------------------------------------- */

/* A GDT descriptor as the CPU loads it into a segment register. */
static struct kvm_segment decode(uint64_t d, uint16_t sel)
{
	struct kvm_segment s = { 0 };
	uint8_t access = (uint8_t)(d >> 40), flags = (uint8_t)(d >> 52) & 0xf;

	s.base = ((d >> 16) & 0xffffff) | ((d >> 56) & 0xff) << 24;
	s.limit = (uint32_t)((d & 0xffff) | ((d >> 48) & 0xf) << 16);
	s.selector = sel;
	s.type = access & 0xf;
	s.s = (access >> 4) & 1;
	s.dpl = (access >> 5) & 3;
	s.present = access >> 7;
	s.l = (flags >> 1) & 1;
	s.db = (flags >> 2) & 1;
	s.g = (flags >> 3) & 1;
	if (s.g)
		s.limit = s.limit << 12 | 0xfff;
	return s;
}

static void expect_segment(const struct kvm_segment *s, uint16_t sel,
			   uint8_t type, uint8_t code_or_data, uint32_t limit,
			   uint8_t db, uint8_t g)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, limit);
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->type, type);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->db, db);
	assert_int_equal(s->s, code_or_data);
	assert_int_equal(s->l, 0);
	assert_int_equal(s->g, g);
	assert_int_equal(s->unusable, 0);
}

static void test_pvh_cpu_state(void **state)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	struct fb_guest_mem mem;
	const uint64_t *gdt;
	struct kvm_segment d;

	memset(&s, 0xa5, sizeof(s));
	memset(&r, 0xa5, sizeof(r));
	fb_x86_pvh_cpu_state(&s, &r, 0x1000850, FB_PVH_INFO_ADDR);
	/* Flat 4 GiB: 32-bit code (execute/read, accessed), data
	 * (read/write, accessed), a busy 32-bit TSS of 0x68 bytes. */
	expect_segment(&s.cs, FB_GDT_SEL_CODE, 0xb, 1, 0xffffffff, 1, 1);
	expect_segment(&s.ds, FB_GDT_SEL_DATA, 0x3, 1, 0xffffffff, 1, 1);
	assert_memory_equal(&s.es, &s.ds, sizeof(s.ds));
	assert_memory_equal(&s.ss, &s.ds, sizeof(s.ds));
	assert_memory_equal(&s.fs, &s.ds, sizeof(s.ds));
	assert_memory_equal(&s.gs, &s.ds, sizeof(s.ds));
	expect_segment(&s.tr, FB_GDT_SEL_TSS, 0xb, 0, 0x67, 0, 0);
	assert_true(s.cr0 & 1);                /* PE */
	assert_false(s.cr0 & 0x80000000ull);   /* PG */
	assert_int_equal(s.cr0 & ~0x10ull, 1); /* nothing else but ET */
	assert_int_equal(s.cr3, 0);
	assert_int_equal(s.cr4, 0);
	assert_int_equal(s.efer, 0);
	assert_int_equal(s.gdt.base, FB_GDT_ADDR);
	assert_int_equal(s.gdt.limit, FB_GDT_ENTRIES * 8 - 1);
	assert_int_equal(s.idt.limit, 0);
	assert_int_equal(r.rip, 0x1000850);
	assert_int_equal(r.rbx, FB_PVH_INFO_ADDR);
	assert_int_equal(r.rflags, 0x2); /* IF, TF, VM clear */
	assert_int_equal(r.rax | r.rcx | r.rdx | r.rsi | r.rdi | r.rsp |
			 r.rbp | r.r8 | r.r15, 0);

	/* The GDT in memory says what the registers hold, so a reload of
	 * any selector before the kernel's own lgdt changes nothing. */
	assert_int_equal(fb_guest_mem_init(&mem, 16 * MiB), 0);
	assert_int_equal(fb_x86_write_boot_tables(&mem, true), 0);
	gdt = fb_gpa_ptr(&mem, FB_GDT_ADDR, FB_GDT_ENTRIES * 8);
	assert_non_null(gdt);
	assert_int_equal(gdt[0], 0);
	d = decode(gdt[FB_GDT_SEL_CODE / 8], FB_GDT_SEL_CODE);
	expect_segment(&d, FB_GDT_SEL_CODE, 0xb, 1, 0xffffffff, 1, 1);
	d = decode(gdt[FB_GDT_SEL_DATA / 8], FB_GDT_SEL_DATA);
	expect_segment(&d, FB_GDT_SEL_DATA, 0x3, 1, 0xffffffff, 1, 1);
	d = decode(gdt[FB_GDT_SEL_TSS / 8], FB_GDT_SEL_TSS);
	expect_segment(&d, FB_GDT_SEL_TSS, 0xb, 0, 0x67, 0, 0);
	/* Paging is off: no page tables written. */
	assert_int_equal(*(uint64_t *)fb_gpa_ptr(&mem, FB_PML4_ADDR, 8), 0);
	/* The 64-bit boot's GDT has a long-mode code segment instead, and
	 * its page tables. */
	assert_int_equal(fb_x86_write_boot_tables(&mem, false), 0);
	d = decode(gdt[FB_GDT_SEL_CODE / 8], FB_GDT_SEL_CODE);
	assert_int_equal(d.l, 1);
	assert_int_equal(d.db, 0);
	assert_int_equal(*(uint64_t *)fb_gpa_ptr(&mem, FB_PML4_ADDR, 8),
			 FB_PDPT_ADDR | 3);
	fb_guest_mem_release(&mem);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_elf_synthetic),
		cmocka_unit_test(test_elf_refuses_headers),
		cmocka_unit_test(test_elf_refuses_segments),
		cmocka_unit_test(test_elf_refuses_notes),
		cmocka_unit_test(test_elf_notes_align8),
		cmocka_unit_test(test_lz4_legacy),
		cmocka_unit_test(test_bzimage_payload),
		cmocka_unit_test(test_start_info),
		cmocka_unit_test(test_start_info_refusals),
		cmocka_unit_test(test_pvh_cpu_state),
	};
	const struct CMUnitTest files[] = {
		cmocka_unit_test(test_kernel_extract),
		cmocka_unit_test(test_load_pvh),
		cmocka_unit_test(test_load_pvh_refusals),
		cmocka_unit_test(test_load_kernel_dispatch),
		cmocka_unit_test(test_default_kernel),
		cmocka_unit_test(test_real_vmlinux),
	};
	int failed = cmocka_run_group_tests_name("pvh", pure, NULL, NULL);

	failed += cmocka_run_group_tests_name("pvh_files", files, make_tmpdir,
					      remove_tmpdir);
	return failed ? 1 : 0;
}
