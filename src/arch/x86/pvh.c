#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/elf.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "util/error.h"

_Static_assert(sizeof(struct fb_hvm_start_info) == 56, "start_info ABI");
_Static_assert(sizeof(struct fb_hvm_modlist_entry) == 32, "modlist ABI");
_Static_assert(sizeof(struct fb_hvm_memmap_entry) == 24, "memmap ABI");
_Static_assert(FB_PVH_MEMMAP_OFF + FB_PVH_MEMMAP_MAX *
	       sizeof(struct fb_hvm_memmap_entry) <= 4096, "memmap fits");

int fb_pvh_info_fill(uint8_t *page, uint64_t page_gpa,
		     const struct fb_pvh_args *a)
{
	struct fb_hvm_start_info si = {
		.magic = FB_HVM_START_MAGIC,
		.version = FB_HVM_START_VERSION,
		.cmdline_paddr = a->cmdline_addr,
		.rsdp_paddr = a->rsdp_addr,
		.memmap_paddr = page_gpa + FB_PVH_MEMMAP_OFF,
		.memmap_entries = (uint32_t)a->e820_entries,
	};

	if (a->e820_entries < 1 || a->e820_entries > FB_PVH_MEMMAP_MAX)
		return fb_errorf(-EINVAL, "PVH memory map: %d entries (1 to "
				 "%d)", a->e820_entries, FB_PVH_MEMMAP_MAX);
	/* Linux takes the initrd's address and size into 32-bit fields of
	 * its boot_params, and the page itself is read before paging. */
	if (page_gpa > UINT32_MAX - 4096 || a->cmdline_addr > UINT32_MAX ||
	    a->initrd_addr > UINT32_MAX || a->initrd_size > UINT32_MAX)
		return fb_errorf(-EINVAL, "PVH start_info, command line or "
				 "initrd above 4 GiB");
	memset(page, 0, 4096);
	if (a->initrd_size) {
		struct fb_hvm_modlist_entry mod = {
			.paddr = a->initrd_addr, .size = a->initrd_size,
		};

		/* Module 0 is the initrd: Linux reads no other. */
		si.nr_modules = 1;
		si.modlist_paddr = page_gpa + FB_PVH_MODLIST_OFF;
		memcpy(page + FB_PVH_MODLIST_OFF, &mod, sizeof(mod));
	}
	for (int i = 0; i < a->e820_entries; i++) {
		struct fb_hvm_memmap_entry e = {
			.addr = a->e820[i].addr, .size = a->e820[i].size,
			.type = a->e820[i].type,
		};

		memcpy(page + FB_PVH_MEMMAP_OFF + (size_t)i * sizeof(e), &e,
		       sizeof(e));
	}
	memcpy(page, &si, sizeof(si));
	return 0;
}

/* Segments go where the kernel was linked to run: no relocation in a PVH
 * boot (Linux 6.1 runs at 16 MiB). Each must lie in RAM above the low
 * megabyte, which holds our GDT, start_info, command line and ACPI
 * tables. */
static int load_segments(int fd, const char *path,
			 const struct fb_guest_mem *mem,
			 const struct fb_elf_kernel *k)
{
	for (unsigned i = 0; i < k->nr_load; i++) {
		const struct fb_elf_load *l = &k->load[i];
		uint8_t *dst;
		int err;

		if (l->paddr < FB_HIMEM_ADDR)
			return fb_errorf(-ENOEXEC, "%s: segment at 0x%llx is "
					 "below 1 MiB, where the boot tables "
					 "are", path,
					 (unsigned long long)l->paddr);
		dst = fb_gpa_ptr(mem, l->paddr, l->memsz);
		if (!dst)
			return fb_errorf(-ENOMEM, "%s: segment 0x%llx-0x%llx "
					 "is not in guest RAM (%llu MiB): give "
					 "the box more --mem", path,
					 (unsigned long long)l->paddr,
					 (unsigned long long)(l->paddr +
							      l->memsz),
					 (unsigned long long)(mem->ram_size >>
							      20));
		err = fb_elf_pread(fd, dst, l->filesz, l->offset, path);
		if (err < 0)
			return err;
		/* Guest RAM is fresh zeroes today, but .bss must be zero
		 * whatever memory we are handed. */
		memset(dst + l->filesz, 0, l->memsz - l->filesz);
	}
	return 0;
}

int fb_x86_load_pvh(const struct fb_guest_mem *mem,
		    const struct fb_linux_boot *boot, uint64_t *entry)
{
	struct fb_e820_entry e820[FB_PVH_MEMMAP_MAX];
	struct fb_pvh_args args = { 0 };
	size_t cmdline_len = strlen(boot->cmdline);
	struct fb_elf_kernel k;
	uint8_t *page;
	int fd, err, n;

	if (cmdline_len >= FB_CMDLINE_MAX)
		return fb_errorf(-E2BIG, "kernel command line is %zu bytes; "
				 "the kernel takes %u", cmdline_len,
				 (unsigned)FB_CMDLINE_MAX - 1);
	fd = open(boot->kernel_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", boot->kernel_path,
				 strerror(errno));
	err = fb_elf_parse_file(fd, boot->kernel_path, &k);
	if (err < 0) {
		fb_errorf(err, "%s: %s", boot->kernel_path, fb_last_error());
		goto out;
	}
	err = load_segments(fd, boot->kernel_path, mem, &k);
	if (!err)
		err = fb_guest_write(mem, FB_CMDLINE_ADDR, boot->cmdline,
				     cmdline_len + 1);
	/* The initrd goes as high as low RAM allows, above the kernel. */
	if (!err && boot->initrd_path)
		err = fb_x86_load_initrd(mem, boot->initrd_path,
					 (k.end + 0xfffull) & ~0xfffull,
					 UINT32_MAX + 1ull, k.end - k.start,
					 &args.initrd_addr,
					 &args.initrd_size);
	if (err < 0)
		goto out;
	n = fb_e820_build(mem, e820, FB_PVH_MEMMAP_MAX);
	if (n < 0) {
		err = n;
		goto out;
	}
	args.cmdline_addr = FB_CMDLINE_ADDR;
	args.rsdp_addr = boot->rsdp_addr;
	args.e820 = e820;
	args.e820_entries = n;
	page = fb_gpa_ptr(mem, FB_PVH_INFO_ADDR, 4096);
	if (!page) {
		err = fb_errorf(-EFAULT, "PVH start_info is not in guest RAM");
		goto out;
	}
	err = fb_pvh_info_fill(page, FB_PVH_INFO_ADDR, &args);
	*entry = k.pvh_entry;
out:
	close(fd);
	return err;
}
