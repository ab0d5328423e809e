#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "util/error.h"
#include "util/file.h"
#include "util/le.h"

#define KERNEL_FILE_MAX (128u << 20)

int fb_bzimage_parse(const uint8_t *img, size_t len, struct fb_bzimage *out)
{
	unsigned setup_sects;

	memset(out, 0, sizeof(*out));
	if (len < 0x400)
		return fb_errorf(-ENOEXEC, "kernel image is %zu bytes, too "
				 "small to be a bzImage", len);
	if (fb_le16(img + FB_BP_BOOT_FLAG) != 0xaa55 ||
	    memcmp(img + FB_BP_HDR_MAGIC, "HdrS", 4) != 0)
		return fb_errorf(-ENOEXEC, "kernel image is not a bzImage "
				 "(no HdrS boot header)");
	out->version = fb_le16(img + FB_BP_VERSION);
	if (out->version < FB_BOOT_MIN_VERSION)
		return fb_errorf(-ENOEXEC, "kernel boot protocol %u.%02u is "
				 "older than the 2.12 that forkbox needs",
				 out->version >> 8, out->version & 0xff);
	if (!(fb_le16(img + FB_BP_XLOADFLAGS) & FB_XLF_KERNEL_64))
		return fb_errorf(-ENOEXEC, "kernel image has no 64-bit entry "
				 "point (XLF_KERNEL_64 unset)");
	if (!(img[FB_BP_LOADFLAGS] & FB_LOADFLAG_LOADED_HIGH))
		return fb_errorf(-ENOEXEC, "kernel image does not load at "
				 "1 MiB (a zImage?)");
	setup_sects = img[FB_BP_SETUP_SECTS] ? img[FB_BP_SETUP_SECTS] : 4;
	out->setup_size = (setup_sects + 1) * 512;
	/* The header's own length is in the jump at 0x200. */
	out->hdr_end = 0x202 + img[FB_BP_HDR_JUMP + 1];
	/* Every field we read (up to init_size) must lie inside the header
	 * the image declares: protocol 2.12 headers reach 0x268. */
	if (out->setup_size >= len || out->hdr_end > out->setup_size ||
	    out->hdr_end > FB_BP_HDR_LIMIT || out->hdr_end < FB_BP_HDR_MIN_END)
		return fb_errorf(-ENOEXEC, "kernel image is truncated or its "
				 "setup header is malformed");
	out->kernel_size = (uint32_t)(len - out->setup_size);
	out->initrd_addr_max = fb_le32(img + FB_BP_INITRD_ADDR_MAX);
	out->cmdline_size = fb_le32(img + FB_BP_CMDLINE_SIZE);
	out->init_size = fb_le32(img + FB_BP_INIT_SIZE);
	if (out->init_size < out->kernel_size)
		out->init_size = out->kernel_size;
	return 0;
}

int fb_e820_build(const struct fb_guest_mem *mem, struct fb_e820_entry *out,
		  int max)
{
	uint64_t low_end = fb_guest_mem_low_end(mem);
	int n = 0;

	if (max < 4 || low_end <= FB_HIMEM_ADDR)
		return fb_errorf(-EINVAL, "e820: too little memory or room");
	out[n++] = (struct fb_e820_entry){ 0, FB_EBDA_ADDR, FB_E820_RAM };
	out[n++] = (struct fb_e820_entry){ FB_EBDA_ADDR,
		FB_HIMEM_ADDR - FB_EBDA_ADDR, FB_E820_RESERVED };
	out[n++] = (struct fb_e820_entry){ FB_HIMEM_ADDR,
		low_end - FB_HIMEM_ADDR, FB_E820_RAM };
	if (mem->nr_regions > 1)
		out[n++] = (struct fb_e820_entry){ mem->regions[1].gpa,
			mem->regions[1].size, FB_E820_RAM };
	return n;
}

int fb_zero_page_fill(uint8_t *zp, const uint8_t *img,
		      const struct fb_bzimage *bz,
		      const struct fb_zero_page_args *a)
{
	if (a->e820_entries < 1 || a->e820_entries > FB_E820_MAX_ENTRIES)
		return fb_errorf(-EINVAL, "e820: %d entries", a->e820_entries);
	if (a->cmdline_addr > UINT32_MAX || a->initrd_addr > UINT32_MAX ||
	    a->initrd_size > UINT32_MAX)
		return fb_errorf(-EINVAL, "command line or initrd above 4 GiB");
	memset(zp, 0, 4096);
	/* The setup header travels as the image has it; we then set the
	 * fields that the boot loader owns. */
	memcpy(zp + FB_BP_HDR, img + FB_BP_HDR, bz->hdr_end - FB_BP_HDR);
	zp[FB_BP_TYPE_OF_LOADER] = 0xff; /* undefined boot loader */
	zp[FB_BP_LOADFLAGS] |= FB_LOADFLAG_CAN_USE_HEAP;
	fb_put_le16(zp + FB_BP_HEAP_END_PTR, 0xfe00);
	fb_put_le32(zp + FB_BP_CMD_LINE_PTR, (uint32_t)a->cmdline_addr);
	fb_put_le32(zp + FB_BP_RAMDISK_IMAGE, (uint32_t)a->initrd_addr);
	fb_put_le32(zp + FB_BP_RAMDISK_SIZE, (uint32_t)a->initrd_size);
	fb_put_le64(zp + FB_BP_ACPI_RSDP, a->rsdp_addr);
	zp[FB_BP_E820_ENTRIES] = (uint8_t)a->e820_entries;
	memcpy(zp + FB_BP_E820_TABLE, a->e820,
	       sizeof(a->e820[0]) * (size_t)a->e820_entries);
	(void)a->cmdline_len;
	return 0;
}

int fb_x86_load_initrd(const struct fb_guest_mem *mem, const char *path,
		       uint64_t floor, uint64_t top, uint64_t kernel_size,
		       uint64_t *addr, uint64_t *size)
{
	uint64_t at;
	struct stat st;
	void *dst;
	int fd, err;

	if (top > fb_guest_mem_low_end(mem))
		top = fb_guest_mem_low_end(mem);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open initrd %s: %s", path,
				 strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		err = fb_errorf(-EINVAL, "initrd %s is not a non-empty "
				"regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > top || top - (uint64_t)st.st_size < floor) {
		err = fb_errorf(-ENOMEM, "guest memory is too small for the "
				"kernel (%llu MiB) and initrd %s (%lld MiB): "
				"give the box more --mem",
				(unsigned long long)(kernel_size >> 20), path,
				(long long)(st.st_size >> 20));
		goto out;
	}
	at = (top - (uint64_t)st.st_size) & ~0xfffull;
	dst = fb_gpa_ptr(mem, at, (uint64_t)st.st_size);
	if (!dst) {
		err = fb_errorf(-EFAULT, "initrd does not fit in guest RAM");
		goto out;
	}
	err = fb_read_full(fd, dst, (size_t)st.st_size, path);
	*addr = at;
	*size = (uint64_t)st.st_size;
out:
	close(fd);
	return err;
}

/* The initrd goes as high as low RAM and the kernel allow, clear of the
 * memory the kernel decompresses into. */
static int load_initrd(const struct fb_guest_mem *mem,
		       const struct fb_bzimage *bz, const char *path,
		       uint64_t *addr, uint64_t *size)
{
	uint64_t top = fb_guest_mem_low_end(mem);

	if (bz->initrd_addr_max && top > (uint64_t)bz->initrd_addr_max + 1)
		top = (uint64_t)bz->initrd_addr_max + 1;
	return fb_x86_load_initrd(mem, path, FB_KERNEL_RUN_ADDR +
				  bz->init_size, top, bz->init_size, addr,
				  size);
}

int fb_x86_load_linux(const struct fb_guest_mem *mem,
		      const struct fb_linux_boot *boot, uint64_t *entry)
{
	struct fb_e820_entry e820[FB_E820_MAX_ENTRIES];
	struct fb_zero_page_args args = { 0 };
	struct fb_bzimage bz;
	size_t img_len, cmdline_len = strlen(boot->cmdline);
	uint8_t *img, *zp;
	int err, n;

	err = fb_read_file(boot->kernel_path, KERNEL_FILE_MAX, &img, &img_len);
	if (err < 0)
		return err;
	err = fb_bzimage_parse(img, img_len, &bz);
	if (err < 0) {
		fb_errorf(err, "%s: %s", boot->kernel_path, fb_last_error());
		goto out;
	}
	if (cmdline_len >= FB_CMDLINE_MAX ||
	    (bz.cmdline_size && cmdline_len > bz.cmdline_size)) {
		err = fb_errorf(-E2BIG, "kernel command line is %zu bytes; "
				"the kernel takes %u", cmdline_len,
				bz.cmdline_size ? bz.cmdline_size :
				(unsigned)FB_CMDLINE_MAX - 1);
		goto out;
	}
	err = fb_guest_write(mem, FB_KERNEL_LOAD_ADDR, img + bz.setup_size,
			     bz.kernel_size);
	if (err < 0)
		goto out;
	err = fb_guest_write(mem, FB_CMDLINE_ADDR, boot->cmdline,
			     cmdline_len + 1);
	if (err < 0)
		goto out;
	if (boot->initrd_path) {
		err = load_initrd(mem, &bz, boot->initrd_path,
				  &args.initrd_addr, &args.initrd_size);
		if (err < 0)
			goto out;
	}
	n = fb_e820_build(mem, e820, FB_E820_MAX_ENTRIES);
	if (n < 0) {
		err = n;
		goto out;
	}
	args.cmdline_addr = FB_CMDLINE_ADDR;
	args.cmdline_len = (uint32_t)cmdline_len;
	args.rsdp_addr = boot->rsdp_addr;
	args.e820 = e820;
	args.e820_entries = n;
	zp = fb_gpa_ptr(mem, FB_ZERO_PAGE_ADDR, 4096);
	if (!zp) {
		err = fb_errorf(-EFAULT, "zero page is not in guest RAM");
		goto out;
	}
	err = fb_zero_page_fill(zp, img, &bz, &args);
	*entry = FB_KERNEL_LOAD_ADDR + FB_KERNEL_64BIT_ENTRY;
out:
	free(img);
	return err;
}
