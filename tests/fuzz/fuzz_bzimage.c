/* Fuzzes the kernel image checks (src/arch/x86/boot.c): fb_bzimage_parse
 * on the image bytes, then, for an image it accepts, fb_zero_page_fill
 * into a 4 KiB zero page and the whole fb_x86_load_linux into a guest
 * memory (the image is handed over as /proc/self/fd/N of a memfd). The
 * input is the image. Checked: the sizes it reports add up, the setup
 * header lies in the setup area, and the zero page keeps the image's
 * header with the boot loader's fields set. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "fuzz.h"

#define GUEST_MEM (32ull << 20)

static struct fb_guest_mem mem;
static int memfd = -1;

static void load(const uint8_t *data, size_t size)
{
	struct fb_linux_boot boot = { .cmdline = "console=ttyS0" };
	char path[64];
	uint64_t entry;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_bzimage", MFD_CLOEXEC);
		FZ_CHECK(memfd >= 0);
		FZ_CHECK(fb_guest_mem_init(&mem, GUEST_MEM) == 0);
	}
	FZ_CHECK(ftruncate(memfd, 0) == 0);
	FZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	boot.kernel_path = path;
	if (fb_x86_load_linux(&mem, &boot, &entry) == 0)
		FZ_CHECK(entry == FB_KERNEL_LOAD_ADDR + FB_KERNEL_64BIT_ENTRY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_e820_entry e820[4] = {
		{ 0, 0x9fc00, FB_E820_RAM },
		{ 0x9fc00, 0x100000 - 0x9fc00, FB_E820_RESERVED },
		{ 0x100000, GUEST_MEM - 0x100000, FB_E820_RAM },
	};
	struct fb_zero_page_args args = {
		.cmdline_addr = 0x20000, .cmdline_len = 13,
		.initrd_addr = 0x1000000, .initrd_size = 4096,
		.rsdp_addr = 0xe0000, .e820 = e820, .e820_entries = 3,
	};
	struct fb_bzimage bz;
	uint8_t *img, *zp;

	/* An exact-size heap copy: any read past the image is caught. */
	img = malloc(size ? size : 1);
	FZ_CHECK(img);
	memcpy(img, data, size);
	if (fb_bzimage_parse(img, size, &bz) == 0) {
		FZ_CHECK(bz.setup_size < size);
		FZ_CHECK((size_t)bz.setup_size + bz.kernel_size == size);
		FZ_CHECK(bz.hdr_end > FB_BP_HDR && bz.hdr_end <= bz.setup_size &&
			 bz.hdr_end <= FB_BP_HDR_LIMIT);
		FZ_CHECK(bz.init_size >= bz.kernel_size);
		FZ_CHECK(bz.version >= FB_BOOT_MIN_VERSION);
		zp = malloc(4096);
		FZ_CHECK(zp);
		FZ_CHECK(fb_zero_page_fill(zp, img, &bz, &args) == 0);
		FZ_CHECK(zp[FB_BP_TYPE_OF_LOADER] == 0xff);
		/* The header as the image has it, up to its own length or
		 * the first field the loader owns. */
		FZ_CHECK(memcmp(zp + FB_BP_HDR, img + FB_BP_HDR,
				(bz.hdr_end < FB_BP_TYPE_OF_LOADER ? bz.hdr_end :
				 FB_BP_TYPE_OF_LOADER) - FB_BP_HDR) == 0);
		FZ_CHECK(zp[FB_BP_E820_ENTRIES] == 3);
		free(zp);
		load(img, size);
	}
	free(img);
	return 0;
}
