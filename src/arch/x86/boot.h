/* The Linux/x86 64-bit boot protocol (Documentation/arch/x86/boot.rst):
 * a bzImage's setup header, the zero page (struct boot_params) with the
 * e820 map, command line and initrd, and the loading of it all into guest
 * memory. Parsing is separate from loading so that both can be tested
 * without KVM. */
#ifndef FB_X86_BOOT_H
#define FB_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

/* Offsets in the bzImage file and in the zero page (they coincide for the
 * setup header, which starts at 0x1f1 in both). */
#define FB_BP_ACPI_RSDP 0x070
#define FB_BP_E820_ENTRIES 0x1e8
#define FB_BP_HDR 0x1f1
#define FB_BP_SETUP_SECTS 0x1f1
#define FB_BP_BOOT_FLAG 0x1fe
#define FB_BP_HDR_JUMP 0x200
#define FB_BP_HDR_MAGIC 0x202
#define FB_BP_VERSION 0x206
#define FB_BP_TYPE_OF_LOADER 0x210
#define FB_BP_LOADFLAGS 0x211
#define FB_BP_RAMDISK_IMAGE 0x218
#define FB_BP_RAMDISK_SIZE 0x21c
#define FB_BP_HEAP_END_PTR 0x224
#define FB_BP_CMD_LINE_PTR 0x228
#define FB_BP_INITRD_ADDR_MAX 0x22c
#define FB_BP_XLOADFLAGS 0x236
#define FB_BP_CMDLINE_SIZE 0x238
#define FB_BP_PAYLOAD_OFFSET 0x248 /* from the protected-mode start */
#define FB_BP_PAYLOAD_LENGTH 0x24c
#define FB_BP_INIT_SIZE 0x260
#define FB_BP_HDR_LIMIT 0x290 /* struct setup_header ends by here */
#define FB_BP_HDR_MIN_END 0x268 /* and reaches at least here (2.12) */
#define FB_BP_E820_TABLE 0x2d0
#define FB_E820_MAX_ENTRIES 128

#define FB_LOADFLAG_LOADED_HIGH 0x01
#define FB_LOADFLAG_CAN_USE_HEAP 0x80
#define FB_XLF_KERNEL_64 0x01
#define FB_BOOT_MIN_VERSION 0x020c /* 2.12: xloadflags, 64-bit entry */
#define FB_KERNEL_LOAD_ADDR 0x100000ull
#define FB_KERNEL_64BIT_ENTRY 0x200 /* from the protected-mode start */
#define FB_KERNEL_RUN_ADDR 0x1000000ull /* LOAD_PHYSICAL_ADDR, 16 MiB */

#define FB_E820_RAM 1
#define FB_E820_RESERVED 2

struct fb_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct fb_bzimage {
	uint16_t version;
	uint32_t setup_size;   /* bytes before the protected-mode kernel */
	uint32_t kernel_size;  /* bytes of the protected-mode kernel */
	uint32_t init_size;    /* memory the kernel needs from 16 MiB up */
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* without the NUL */
	size_t hdr_end;        /* end of the setup header in the file */
};

/* Checks the image and fills out; a bad image gets -ENOEXEC and a message
 * that says what is wrong with it. */
int fb_bzimage_parse(const uint8_t *img, size_t len, struct fb_bzimage *out);

/* The e820 map of mem: low RAM up to the EBDA, the BIOS area reserved,
 * RAM from 1 MiB, and RAM above 4 GiB if any. Returns the entry count. */
int fb_e820_build(const struct fb_guest_mem *mem, struct fb_e820_entry *out,
		  int max);

struct fb_zero_page_args {
	uint64_t cmdline_addr;
	uint32_t cmdline_len; /* without the NUL */
	uint64_t initrd_addr;
	uint64_t initrd_size;
	uint64_t rsdp_addr;
	const struct fb_e820_entry *e820;
	int e820_entries;
};

/* Fills a 4 KiB zero page from the image's setup header and args. */
int fb_zero_page_fill(uint8_t *zero_page, const uint8_t *img,
		      const struct fb_bzimage *bz,
		      const struct fb_zero_page_args *args);

struct fb_linux_boot {
	const char *kernel_path;
	const char *initrd_path; /* may be NULL */
	const char *cmdline;
	uint64_t rsdp_addr;
};

/* Loads the initrd at path as high as it fits below top (and low RAM's
 * end), page-aligned, no lower than floor (the kernel's end); kernel_size
 * only names the kernel's need in the message when RAM is too small. */
int fb_x86_load_initrd(const struct fb_guest_mem *mem, const char *path,
		       uint64_t floor, uint64_t top, uint64_t kernel_size,
		       uint64_t *addr, uint64_t *size);

/* Loads kernel, initrd, command line and zero page into mem; *entry gets
 * the 64-bit entry point. */
int fb_x86_load_linux(const struct fb_guest_mem *mem,
		      const struct fb_linux_boot *boot, uint64_t *entry);

#endif
