/* ELF64 kernels (an uncompressed vmlinux) and their PVH entry point, the
 * XEN_ELFNOTE_PHYS32_ENTRY note that Linux built with CONFIG_PVH carries
 * (name "Xen", type 18, a 32-bit physical address). The checks work over
 * bytes the caller has read, so that each can be tested without a file or
 * a VM; fb_elf_parse_file reads just those bytes from a file, and pvh.c
 * loads what passes into guest memory. */
#ifndef FB_X86_ELF_H
#define FB_X86_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on what a kernel may declare. Linux has 5 program headers, 4 of
 * them PT_LOAD, and one 512-byte PT_NOTE. */
#define FB_ELF_HEAD_MAX 4096u       /* ELF + program headers lie here */
#define FB_ELF_MAX_PHDRS 64
#define FB_ELF_MAX_LOADS 16
#define FB_ELF_MAX_NOTES 4
#define FB_ELF_NOTE_MAX (64u << 10)  /* bytes of one PT_NOTE */

#define FB_XEN_ELFNOTE_PHYS32_ENTRY 18

struct fb_elf_load {
	uint64_t offset, filesz; /* in the file */
	uint64_t paddr, memsz;   /* in guest-physical memory */
};

struct fb_elf_note {
	uint64_t offset, filesz;
	uint64_t align;          /* 4 or 8: the padding of names, descs */
};

struct fb_elf_kernel {
	struct fb_elf_load load[FB_ELF_MAX_LOADS];
	unsigned nr_load;
	struct fb_elf_note note[FB_ELF_MAX_NOTES];
	unsigned nr_note;
	uint64_t start, end;     /* lowest paddr, highest paddr + memsz */
	uint32_t pvh_entry;      /* 0 until a PVH note is found */
};

/* The ELF magic at the start of p. */
bool fb_elf_is_elf(const uint8_t *p, size_t len);

/* Checks the ELF header and program headers: head holds the file's first
 * head_len bytes, file_size is the whole file's. PT_LOAD and PT_NOTE
 * ranges must lie inside the file, overflow-free; PT_LOADs must not
 * overlap. Fills out (without the PVH entry). -ENOEXEC and a message
 * naming the problem otherwise. */
int fb_elf_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
		 struct fb_elf_kernel *out);

/* Looks through the notes of one PT_NOTE (len bytes, padded to align) for
 * the PVH entry: 0 and *entry when found, -ENOENT when not there,
 * -ENOEXEC for a malformed note. */
int fb_elf_find_pvh(const uint8_t *notes, size_t len, uint64_t align,
		    uint32_t *entry);

/* The PVH entry must lie in the file-backed bytes of a PT_LOAD: code
 * that is actually loaded. */
int fb_elf_check_entry(const struct fb_elf_kernel *k);

/* All of the above over a whole file in memory (tests, and kernel
 * extraction's check of what it made): 0 only for an ELF kernel with a
 * valid PVH entry. */
int fb_elf_parse_image(const uint8_t *img, size_t len,
		       struct fb_elf_kernel *out);

/* Header, program headers and notes from an open file, each read on its
 * own (nothing is allocated by the file's size: a vmlinux is ~50 MiB):
 * 0 only for an ELF kernel with a valid PVH entry. */
int fb_elf_parse_file(int fd, const char *path, struct fb_elf_kernel *k);

/* pread of exactly len bytes at off; a short file is -EIO. */
int fb_elf_pread(int fd, void *buf, uint64_t len, uint64_t off,
		 const char *path);

#endif
