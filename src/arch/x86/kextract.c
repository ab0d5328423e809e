/* A bzImage's compressed payload made into an ELF vmlinux on the host,
 * once, so that no guest spends its first seconds decompressing it (~2 s
 * of a 4.5 s cold boot in the lab). Debian's kernels compress with LZ4;
 * liblz4 decodes each block with its bounds-checked decoder, and the
 * legacy framing around the blocks is parsed here, every length checked.
 * What comes out is checked with the same parser the VMM loads it with
 * before anything is written. */
#include <errno.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/elf.h"
#include "arch/x86/kernel.h"
#include "util/error.h"
#include "util/file.h"
#include "util/le.h"

#define VMLINUX_MAX (512u << 20)       /* Debian's is 51 MiB */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)    /* what each block holds at most */

int fb_bzimage_payload(const uint8_t *img, size_t len,
		       const struct fb_bzimage *bz, const uint8_t **payload,
		       size_t *payload_len)
{
	uint32_t off = fb_le32(img + FB_BP_PAYLOAD_OFFSET);
	uint32_t plen = fb_le32(img + FB_BP_PAYLOAD_LENGTH);

	/* fb_bzimage_parse checked that the header reaches 0x268 and the
	 * kernel follows the setup in the file. */
	if (bz->setup_size > len || off > bz->kernel_size ||
	    plen > bz->kernel_size - off || plen < 8)
		return fb_errorf(-ENOEXEC, "bzImage payload at 0x%x, 0x%x "
				 "bytes, is not inside its 0x%x-byte kernel",
				 off, plen, bz->kernel_size);
	*payload = img + bz->setup_size + off;
	*payload_len = plen;
	return 0;
}

int fb_lz4_legacy_decode(const uint8_t *src, size_t len, size_t max,
			 uint8_t **out, size_t *out_len)
{
	const size_t bound = (size_t)LZ4_compressBound(LZ4_LEGACY_BLOCK);
	size_t at = 4, pos = 0, total;
	uint8_t *dst;

	if (len < 12 || fb_le32(src) != LZ4_LEGACY_MAGIC)
		return fb_errorf(-ENOEXEC, "not an LZ4 legacy stream");
	/* The kernel's build appends the uncompressed size (size_append):
	 * the output's exact size, known before anything is decoded. */
	total = fb_le32(src + len - 4);
	if (!total || total > max)
		return fb_errorf(-ENOEXEC, "LZ4 stream says it holds %zu bytes "
				 "(1 to %zu)", total, max);
	dst = malloc(total);
	if (!dst)
		return fb_errorf(-ENOMEM, "malloc %zu bytes for the kernel",
				 total);
	len -= 4;
	while (at < len) {
		size_t csize, room = total - pos;
		int n;

		if (len - at < 4)
			goto corrupt;
		csize = fb_le32(src + at);
		at += 4;
		/* Streams may be concatenated, each with its magic. */
		if (csize == LZ4_LEGACY_MAGIC)
			continue;
		if (!csize || csize > bound || csize > len - at)
			goto corrupt;
		n = LZ4_decompress_safe((const char *)src + at,
					(char *)dst + pos, (int)csize,
					(int)(room < LZ4_LEGACY_BLOCK ? room :
					      LZ4_LEGACY_BLOCK));
		if (n <= 0)
			goto corrupt;
		pos += (size_t)n;
		at += csize;
	}
	if (pos != total) {
		free(dst);
		return fb_errorf(-ENOEXEC, "LZ4 stream decodes to %zu bytes, "
				 "its trailer says %zu", pos, total);
	}
	*out = dst;
	*out_len = total;
	return 0;
corrupt:
	free(dst);
	return fb_errorf(-ENOEXEC, "LZ4 stream is corrupt at byte %zu", at);
}

static int extract(const uint8_t *img, size_t len, const char *out_path,
		   struct fb_kernel_desc *d)
{
	const uint8_t *payload;
	struct fb_elf_kernel k;
	struct fb_bzimage bz;
	size_t plen, vlen;
	uint8_t *vmlinux;
	int err;

	err = fb_bzimage_parse(img, len, &bz);
	if (!err)
		err = fb_bzimage_payload(img, len, &bz, &payload, &plen);
	if (err < 0)
		return err;
	if (fb_le32(payload) != LZ4_LEGACY_MAGIC)
		return fb_errorf(-ENOEXEC, "its payload is not LZ4-compressed "
				 "(magic %02x %02x %02x %02x); forkbox "
				 "unpacks LZ4 only", payload[0], payload[1],
				 payload[2], payload[3]);
	err = fb_lz4_legacy_decode(payload, plen, VMLINUX_MAX, &vmlinux,
				   &vlen);
	if (err < 0)
		return err;
	err = fb_elf_parse_image(vmlinux, vlen, &k);
	if (err < 0) {
		fb_errorf(err, "its payload is no ELF kernel with a PVH entry: "
			  "%s", fb_last_error());
	} else {
		err = fb_write_file_atomic(out_path, vmlinux, vlen, 0644);
	}
	free(vmlinux);
	if (err < 0)
		return err;
	d->kind = FB_KERNEL_ELF_PVH;
	d->file_size = vlen;
	d->pvh_entry = k.pvh_entry;
	d->load_start = k.start;
	d->load_end = k.end;
	return 0;
}

int fb_kernel_extract(const char *bzimage, const char *out_path,
		      struct fb_kernel_desc *desc)
{
	size_t len;
	uint8_t *img;
	int err;

	memset(desc, 0, sizeof(*desc));
	err = fb_read_file(bzimage, FB_BZIMAGE_FILE_MAX, &img, &len);
	if (err < 0)
		return err;
	err = extract(img, len, out_path, desc);
	free(img);
	if (err < 0)
		return fb_errorf(err, "%s: %s", bzimage, fb_last_error());
	return 0;
}
