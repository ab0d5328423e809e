/* Guest kernels in either form: a bzImage (boot.h: the 64-bit Linux boot
 * protocol, the kernel decompresses itself in the guest) or an ELF
 * vmlinux with a PVH entry (pvh.h: loaded as is). Which one a file is, is
 * told by its magic. And the vmlinux can be made from a bzImage here:
 * its payload, LZ4-compressed in Debian's kernels, decompressed on the
 * host once instead of in every guest. */
#ifndef FB_X86_KERNEL_H
#define FB_X86_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "vmm/guest_mem.h"

/* A bzImage read whole is at most this (boot.c reads it the same way). */
#define FB_BZIMAGE_FILE_MAX (128u << 20)

enum fb_kernel_kind {
	FB_KERNEL_BZIMAGE = 1,
	FB_KERNEL_ELF_PVH,
};

/* How vCPU 0 starts: 64-bit at entry with %rsi at the zero page
 * (bzImage), or 32-bit at entry with %ebx at the start_info (PVH). */
struct fb_x86_start {
	enum fb_kernel_kind kind;
	uint64_t entry;
	uint64_t boot_info;
};

/* Loads the kernel at boot->kernel_path, whichever kind it is. */
int fb_x86_load_kernel(const struct fb_guest_mem *mem,
		       const struct fb_linux_boot *boot,
		       struct fb_x86_start *start);

/* What `forkbox kernel info` prints. */
struct fb_kernel_desc {
	enum fb_kernel_kind kind;
	uint64_t file_size;
	uint16_t boot_version;     /* bzImage */
	uint32_t payload_size;
	char payload_format[16];   /* "lz4", "gzip", ... or "unknown" */
	uint32_t pvh_entry;        /* ELF */
	uint64_t load_start, load_end;
};

/* Describes the kernel at path; -ENOEXEC when it is neither kind. */
int fb_kernel_describe(const char *path, struct fb_kernel_desc *desc);

/* The bzImage's payload: payload_offset and payload_length of its setup
 * header (protocol 2.08+), checked to lie inside the protected-mode
 * kernel. */
int fb_bzimage_payload(const uint8_t *img, size_t len,
		       const struct fb_bzimage *bz, const uint8_t **payload,
		       size_t *payload_len);

/* Decodes an LZ4 legacy stream as the kernel's build makes it (lz4 -l,
 * then the uncompressed size appended in 4 bytes, which must match) into
 * a malloc'd buffer of at most max bytes. */
int fb_lz4_legacy_decode(const uint8_t *src, size_t len, size_t max,
			 uint8_t **out, size_t *out_len);

/* Makes an ELF vmlinux from a bzImage: decompresses the payload, checks
 * the result is an ELF kernel with a PVH entry (else -ENOEXEC and
 * nothing is written: keep booting the bzImage), writes it to out_path
 * under a temporary name, fsyncs and renames it. desc describes what was
 * written. */
int fb_kernel_extract(const char *bzimage, const char *out_path,
		      struct fb_kernel_desc *desc);

#endif
