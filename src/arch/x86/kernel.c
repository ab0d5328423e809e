#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/elf.h"
#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "util/error.h"
#include "util/file.h"


/* The first bytes of path, enough for both magics (ELF at 0, HdrS at
 * 0x202); *len is less for a shorter file. */
static int read_magic(const char *path, uint8_t *buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	do
		n = pread(fd, buf, *len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = -errno;

		close(fd);
		return fb_errorf(err, "read %s: %s", path, strerror(-err));
	}
	close(fd);
	*len = (size_t)n;
	return 0;
}

int fb_x86_load_kernel(const struct fb_guest_mem *mem,
		       const struct fb_linux_boot *boot,
		       struct fb_x86_start *start)
{
	uint8_t magic[0x210];
	size_t len = sizeof(magic);
	int err = read_magic(boot->kernel_path, magic, &len);

	if (err < 0)
		return err;
	if (fb_elf_is_elf(magic, len)) {
		start->kind = FB_KERNEL_ELF_PVH;
		start->boot_info = FB_PVH_INFO_ADDR;
		return fb_x86_load_pvh(mem, boot, &start->entry);
	}
	if (len < 0x206 || memcmp(magic + FB_BP_HDR_MAGIC, "HdrS", 4))
		return fb_errorf(-ENOEXEC, "%s: neither an ELF vmlinux nor a "
				 "bzImage (no HdrS boot header)",
				 boot->kernel_path);
	start->kind = FB_KERNEL_BZIMAGE;
	start->boot_info = FB_ZERO_PAGE_ADDR;
	return fb_x86_load_linux(mem, boot, &start->entry);
}

/* The compression of a bzImage's payload, by its magic (the formats
 * Linux's arch/x86/boot/compressed can hold). */
static const char *payload_format(const uint8_t *p, size_t len)
{
	static const struct { const char *name, *magic; size_t len; } f[] = {
		{ "lz4", "\x02\x21\x4c\x18", 4 },
		{ "gzip", "\x1f\x8b", 2 },
		{ "xz", "\xfd" "7zXZ", 5 },
		{ "lzma", "\x5d\x00\x00", 3 },
		{ "bzip2", "BZh", 3 },
		{ "lzo", "\x89LZO", 4 },
		{ "zstd", "\x28\xb5\x2f\xfd", 4 },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (len >= f[i].len && !memcmp(p, f[i].magic, f[i].len))
			return f[i].name;
	return "unknown";
}

static int describe_bzimage(const char *path, struct fb_kernel_desc *d)
{
	const uint8_t *payload;
	struct fb_bzimage bz;
	size_t len, plen;
	uint8_t *img;
	int err;

	err = fb_read_file(path, FB_BZIMAGE_FILE_MAX, &img, &len);
	if (err < 0)
		return err;
	d->kind = FB_KERNEL_BZIMAGE;
	d->file_size = len;
	err = fb_bzimage_parse(img, len, &bz);
	if (!err) {
		d->boot_version = bz.version;
		/* A kernel without a payload (a test guest) is still one. */
		if (fb_bzimage_payload(img, len, &bz, &payload, &plen) < 0) {
			payload = NULL;
			plen = 0;
		}
		d->payload_size = (uint32_t)plen;
		snprintf(d->payload_format, sizeof(d->payload_format), "%s",
			 payload ? payload_format(payload, plen) : "none");
	}
	free(img);
	return err;
}

int fb_kernel_describe(const char *path, struct fb_kernel_desc *d)
{
	uint8_t magic[4];
	size_t len = sizeof(magic);
	struct fb_elf_kernel k;
	struct stat st;
	int fd, err;

	memset(d, 0, sizeof(*d));
	err = read_magic(path, magic, &len);
	if (err < 0)
		return err;
	if (!fb_elf_is_elf(magic, len)) {
		err = describe_bzimage(path, d);
		return err < 0 ? fb_errorf(err, "%s: %s", path,
					   fb_last_error()) : 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	err = fb_elf_parse_file(fd, path, &k);
	if (!err && fstat(fd, &st) == 0)
		d->file_size = (uint64_t)st.st_size;
	close(fd);
	if (err < 0)
		return fb_errorf(err, "%s: %s", path, fb_last_error());
	d->kind = FB_KERNEL_ELF_PVH;
	d->pvh_entry = k.pvh_entry;
	d->load_start = k.start;
	d->load_end = k.end;
	return 0;
}
