/* SHA-256 (FIPS 180-4), for checking the digests that container image
 * archives name their blobs by. */
#ifndef FB_IMAGE_SHA256_H
#define FB_IMAGE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define FB_SHA256_LEN 32u
#define FB_SHA256_HEX_LEN 64u

struct fb_sha256 {
	uint32_t h[8];
	uint64_t total;     /* bytes hashed so far */
	uint8_t block[64];
	size_t used;        /* bytes waiting in block */
};

void fb_sha256_init(struct fb_sha256 *s);
void fb_sha256_update(struct fb_sha256 *s, const void *data, size_t len);
void fb_sha256_final(struct fb_sha256 *s, uint8_t out[FB_SHA256_LEN]);

/* The digest of one buffer, as lowercase hex with a NUL. */
void fb_sha256_hex(const void *data, size_t len,
		   char out[FB_SHA256_HEX_LEN + 1]);

/* Lowercase hex of a finished digest. */
void fb_sha256_to_hex(const uint8_t digest[FB_SHA256_LEN],
		      char out[FB_SHA256_HEX_LEN + 1]);

#endif
