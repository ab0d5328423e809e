#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/elf.h"
#include "util/error.h"
#include "util/le.h"

/* Offsets and values of the ELF64 format (the System V ABI). */
#define EHDR_SIZE 64
#define EH_TYPE 0x10
#define EH_MACHINE 0x12
#define EH_VERSION 0x14
#define EH_PHOFF 0x20
#define EH_PHENTSIZE 0x36
#define EH_PHNUM 0x38
#define PHDR_SIZE 56
#define PH_TYPE 0
#define PH_OFFSET 8
#define PH_PADDR 24
#define PH_FILESZ 32
#define PH_MEMSZ 40
#define PH_ALIGN 48
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_NOTE 4
#define NHDR_SIZE 12

bool fb_elf_is_elf(const uint8_t *p, size_t len)
{
	return len >= 4 && !memcmp(p, "\x7f" "ELF", 4);
}

/* [offset, offset + size) inside a file of file_size bytes. */
static bool in_file(uint64_t offset, uint64_t size, uint64_t file_size)
{
	return offset <= file_size && size <= file_size - offset;
}

static int check_ehdr(const uint8_t *h, size_t len, uint64_t file_size)
{
	if (len < EHDR_SIZE || file_size < EHDR_SIZE)
		return fb_errorf(-ENOEXEC, "ELF header truncated (%zu bytes)",
				 len);
	if (!fb_elf_is_elf(h, len))
		return fb_errorf(-ENOEXEC, "not an ELF file");
	if (h[4] != ELFCLASS64 || h[5] != ELFDATA2LSB || h[6] != 1)
		return fb_errorf(-ENOEXEC, "not a little-endian ELF64 file "
				 "(class %u, data %u, version %u)", h[4], h[5],
				 h[6]);
	if (fb_le16(h + EH_TYPE) != ET_EXEC ||
	    fb_le16(h + EH_MACHINE) != EM_X86_64 ||
	    fb_le32(h + EH_VERSION) != 1)
		return fb_errorf(-ENOEXEC, "not an x86-64 executable ELF "
				 "(type %u, machine %u)", fb_le16(h + EH_TYPE),
				 fb_le16(h + EH_MACHINE));
	return 0;
}

static int add_load(struct fb_elf_kernel *k, const struct fb_elf_load *l,
		    unsigned i)
{
	if (l->filesz > l->memsz)
		return fb_errorf(-ENOEXEC, "program header %u: file size "
				 "0x%llx beyond its memory size 0x%llx", i,
				 (unsigned long long)l->filesz,
				 (unsigned long long)l->memsz);
	if (l->memsz > UINT64_MAX - l->paddr)
		return fb_errorf(-ENOEXEC, "program header %u: address 0x%llx "
				 "+ size 0x%llx overflows", i,
				 (unsigned long long)l->paddr,
				 (unsigned long long)l->memsz);
	if (k->nr_load == FB_ELF_MAX_LOADS)
		return fb_errorf(-ENOEXEC, "more than %d PT_LOAD segments",
				 FB_ELF_MAX_LOADS);
	/* Overlapping segments would have one overwrite the other: no
	 * linker makes that, so it is a damaged or hostile file. */
	for (unsigned j = 0; j < k->nr_load; j++) {
		const struct fb_elf_load *o = &k->load[j];

		if (l->paddr < o->paddr + o->memsz &&
		    o->paddr < l->paddr + l->memsz)
			return fb_errorf(-ENOEXEC, "program header %u: PT_LOAD "
					 "at 0x%llx overlaps another", i,
					 (unsigned long long)l->paddr);
	}
	if (!k->nr_load || l->paddr < k->start)
		k->start = l->paddr;
	if (!k->nr_load || l->paddr + l->memsz > k->end)
		k->end = l->paddr + l->memsz;
	k->load[k->nr_load++] = *l;
	return 0;
}

static int add_phdr(struct fb_elf_kernel *k, const uint8_t *ph,
		    uint64_t file_size, unsigned i)
{
	uint32_t type = fb_le32(ph + PH_TYPE);
	uint64_t offset = fb_le64(ph + PH_OFFSET);
	uint64_t filesz = fb_le64(ph + PH_FILESZ);

	if (type != PT_LOAD && type != PT_NOTE)
		return 0;
	if (!in_file(offset, filesz, file_size))
		return fb_errorf(-ENOEXEC, "program header %u: bytes 0x%llx + "
				 "0x%llx lie beyond the file's end (0x%llx)", i,
				 (unsigned long long)offset,
				 (unsigned long long)filesz,
				 (unsigned long long)file_size);
	if (type == PT_LOAD) {
		struct fb_elf_load l = {
			.offset = offset, .filesz = filesz,
			.paddr = fb_le64(ph + PH_PADDR),
			.memsz = fb_le64(ph + PH_MEMSZ),
		};

		/* An empty segment loads nothing. */
		return l.memsz ? add_load(k, &l, i) : 0;
	}
	if (filesz > FB_ELF_NOTE_MAX)
		return fb_errorf(-ENOEXEC, "program header %u: a note segment "
				 "of %llu bytes (at most %u)", i,
				 (unsigned long long)filesz, FB_ELF_NOTE_MAX);
	if (k->nr_note == FB_ELF_MAX_NOTES)
		return fb_errorf(-ENOEXEC, "more than %d PT_NOTE segments",
				 FB_ELF_MAX_NOTES);
	k->note[k->nr_note++] = (struct fb_elf_note){
		offset, filesz, fb_le64(ph + PH_ALIGN) == 8 ? 8 : 4 };
	return 0;
}

int fb_elf_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
		 struct fb_elf_kernel *out)
{
	uint64_t phoff;
	unsigned phnum;
	int err;

	memset(out, 0, sizeof(*out));
	if (head_len > file_size)
		head_len = (size_t)file_size;
	err = check_ehdr(head, head_len, file_size);
	if (err < 0)
		return err;
	phoff = fb_le64(head + EH_PHOFF);
	phnum = fb_le16(head + EH_PHNUM);
	if (fb_le16(head + EH_PHENTSIZE) != PHDR_SIZE)
		return fb_errorf(-ENOEXEC, "program header size %u, not %u",
				 fb_le16(head + EH_PHENTSIZE), PHDR_SIZE);
	if (phnum < 1 || phnum > FB_ELF_MAX_PHDRS)
		return fb_errorf(-ENOEXEC, "%u program headers (1 to %d)",
				 phnum, FB_ELF_MAX_PHDRS);
	/* phnum * 56 cannot overflow: phnum <= 64. */
	if (!in_file(phoff, (uint64_t)phnum * PHDR_SIZE, head_len))
		return fb_errorf(-ENOEXEC, "program headers at 0x%llx lie "
				 "beyond the file's first %zu bytes",
				 (unsigned long long)phoff, head_len);
	for (unsigned i = 0; i < phnum; i++) {
		err = add_phdr(out, head + phoff + (uint64_t)i * PHDR_SIZE,
			       file_size, i);
		if (err < 0)
			return err;
	}
	if (!out->nr_load)
		return fb_errorf(-ENOEXEC, "no PT_LOAD segment");
	return 0;
}

static uint64_t pad(uint64_t n, uint64_t align)
{
	return (n + align - 1) & ~(align - 1);
}

/* The PHYS32_ENTRY desc. Linux writes the address as a pointer-sized
 * value (_ASM_PTR): 8 bytes on x86-64, where the ABI says 4. Either way
 * it is a 32-bit physical address, and 0 means none. */
static int pvh_entry(const uint8_t *desc, uint64_t descsz, uint32_t *entry)
{
	if (descsz != 4 && descsz != 8)
		return fb_errorf(-ENOEXEC, "PVH entry note of %llu bytes (4 "
				 "or 8)", (unsigned long long)descsz);
	if (descsz == 8 && fb_le32(desc + 4))
		return fb_errorf(-ENOEXEC, "PVH entry 0x%llx is above 4 GiB",
				 (unsigned long long)fb_le64(desc));
	if (!fb_le32(desc))
		return fb_errorf(-ENOEXEC, "PVH entry note holds address 0");
	*entry = fb_le32(desc);
	return 0;
}

int fb_elf_find_pvh(const uint8_t *notes, size_t len, uint64_t align,
		    uint32_t *entry)
{
	size_t at = 0;

	/* Each note: a 12-byte header, the name, then the desc and the
	 * next note at offsets rounded up to the segment's alignment. */
	while (len - at >= NHDR_SIZE) {
		const uint8_t *n = notes + at;
		uint64_t namesz = fb_le32(n), descsz = fb_le32(n + 4);
		uint32_t type = fb_le32(n + 8);
		uint64_t rest = len - at;
		/* Sizes are 32-bit: these sums cannot overflow 64 bits. */
		uint64_t desc_off = pad(NHDR_SIZE + namesz, align);
		uint64_t next = pad(desc_off + descsz, align);

		if (desc_off > rest || descsz > rest - desc_off)
			return fb_errorf(-ENOEXEC, "note at 0x%zx: name %llu + "
					 "desc %llu bytes run past the note "
					 "segment", at,
					 (unsigned long long)namesz,
					 (unsigned long long)descsz);
		if (namesz == 4 && !memcmp(n + NHDR_SIZE, "Xen", 4) &&
		    type == FB_XEN_ELFNOTE_PHYS32_ENTRY)
			return pvh_entry(n + desc_off, descsz, entry);
		/* The last note's padding may be cut off. */
		at += next < rest ? (size_t)next : (size_t)rest;
	}
	return -ENOENT;
}

int fb_elf_check_entry(const struct fb_elf_kernel *k)
{
	for (unsigned i = 0; k->pvh_entry && i < k->nr_load; i++) {
		const struct fb_elf_load *l = &k->load[i];

		if (k->pvh_entry >= l->paddr &&
		    k->pvh_entry - l->paddr < l->filesz)
			return 0;
	}
	return fb_errorf(-ENOEXEC, "PVH entry 0x%x is not in a loaded "
			 "segment", k->pvh_entry);
}

/* After the notes were searched: a PVH entry, in a loaded segment. */
static int has_entry(const struct fb_elf_kernel *k)
{
	if (!k->pvh_entry)
		return fb_errorf(-ENOEXEC, "no PVH entry note (Xen "
				 "XEN_ELFNOTE_PHYS32_ENTRY; a Linux built "
				 "with CONFIG_PVH=y has one): boot its "
				 "bzImage");
	return fb_elf_check_entry(k);
}

int fb_elf_parse_image(const uint8_t *img, size_t len,
		       struct fb_elf_kernel *out)
{
	int err = fb_elf_parse(img, len < FB_ELF_HEAD_MAX ? len :
			       FB_ELF_HEAD_MAX, len, out);

	for (unsigned i = 0; !err && i < out->nr_note; i++) {
		const struct fb_elf_note *n = &out->note[i];

		err = fb_elf_find_pvh(img + n->offset, (size_t)n->filesz,
				      n->align, &out->pvh_entry);
		if (err == -ENOENT)
			err = 0;
		else if (!err)
			break;
	}
	return err < 0 ? err : has_entry(out);
}

int fb_elf_pread(int fd, void *buf, uint64_t len, uint64_t off,
		 const char *path)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len > (1u << 30) ? (1u << 30) :
				  (size_t)len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "read %s: %s", path,
					 strerror(errno));
		if (n == 0)
			return fb_errorf(-EIO, "read %s: file shrank while "
					 "being read", path);
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Headers from the file's start, then the notes, each read on its own:
 * nothing is allocated by the file's size (a vmlinux is ~50 MiB). */
int fb_elf_parse_file(int fd, const char *path, struct fb_elf_kernel *k)
{
	uint8_t head[FB_ELF_HEAD_MAX], *notes;
	struct stat st;
	size_t head_len;
	int err;

	if (fstat(fd, &st) < 0)
		return fb_errorf(-errno, "stat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fb_errorf(-EINVAL, "%s is not a regular file", path);
	head_len = (uint64_t)st.st_size < sizeof(head) ?
		   (size_t)st.st_size : sizeof(head);
	err = fb_elf_pread(fd, head, head_len, 0, path);
	if (!err)
		err = fb_elf_parse(head, head_len, (uint64_t)st.st_size, k);
	for (unsigned i = 0; !err && i < k->nr_note && !k->pvh_entry; i++) {
		if (!k->note[i].filesz)
			continue;
		notes = malloc((size_t)k->note[i].filesz);
		if (!notes)
			return fb_errorf(-ENOMEM, "malloc for ELF notes");
		err = fb_elf_pread(fd, notes, k->note[i].filesz,
				   k->note[i].offset, path);
		if (!err)
			err = fb_elf_find_pvh(notes, (size_t)k->note[i].filesz,
					      k->note[i].align,
					      &k->pvh_entry);
		if (err == -ENOENT)
			err = 0;
		free(notes);
	}
	return err < 0 ? err : has_entry(k);
}
