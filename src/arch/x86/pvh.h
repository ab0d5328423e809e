/* The PVH boot (Xen's x86/HVM direct boot ABI, which Linux, Firecracker
 * and Cloud Hypervisor use without Xen): an ELF vmlinux loaded at its
 * physical addresses, entered at its XEN_ELFNOTE_PHYS32_ENTRY in 32-bit
 * protected mode with paging off and %ebx at an hvm_start_info, which
 * names the command line, the initrd (module 0), the RSDP and the memory
 * map. No decompression in the guest: that is the point. */
#ifndef FB_X86_PVH_H
#define FB_X86_PVH_H

#include <stdint.h>

#include "arch/x86/boot.h"
#include "vmm/guest_mem.h"

#define FB_HVM_START_MAGIC 0x336ec578u
/* Version 1 has the memory map; Linux without Xen needs it (version 0
 * would have it ask the hypervisor, which is not there). */
#define FB_HVM_START_VERSION 1

/* xen/include/public/arch-x86/hvm/start_info.h, little-endian. */
struct fb_hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct fb_hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
} __attribute__((packed));

struct fb_hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* the e820 types */
	uint32_t reserved;
} __attribute__((packed));

/* Where each part sits in the 4 KiB page at FB_PVH_INFO_ADDR. */
#define FB_PVH_MODLIST_OFF 0x40
#define FB_PVH_MEMMAP_OFF 0x80
/* Linux copies the map into its zero page's 128-entry e820 table and
 * adds one entry of its own (the ISA hole): leave it room. */
#define FB_PVH_MEMMAP_MAX (FB_E820_MAX_ENTRIES - 1)

struct fb_pvh_args {
	uint64_t cmdline_addr;
	uint64_t initrd_addr;  /* initrd_size 0: no initrd */
	uint64_t initrd_size;
	uint64_t rsdp_addr;    /* 0: none (the kernel scans the BIOS area) */
	const struct fb_e820_entry *e820;
	int e820_entries;
};

/* Fills the 4 KiB page that will sit at guest address page_gpa with the
 * start_info, module list and memory map. */
int fb_pvh_info_fill(uint8_t *page, uint64_t page_gpa,
		     const struct fb_pvh_args *args);

/* Loads an ELF vmlinux's PT_LOAD segments at their physical addresses,
 * the command line, the initrd and the start_info page (at
 * FB_PVH_INFO_ADDR) into mem; *entry gets the PVH entry point. */
int fb_x86_load_pvh(const struct fb_guest_mem *mem,
		    const struct fb_linux_boot *boot, uint64_t *entry);

#endif
