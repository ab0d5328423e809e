#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_WORD 0x0b
#define AML_DWORD 0x0c
#define AML_STRING 0x0d
#define AML_QWORD 0x0e
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_EXT 0x5b
#define AML_DEVICE 0x82
#define AML_ROOT '\\'

void fb_aml_free(struct fb_aml *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
}

bool fb_aml_failed(const struct fb_aml *a)
{
	return a->failed;
}

void fb_aml_bytes(struct fb_aml *a, const void *p, size_t n)
{
	if (a->failed || n == 0)
		return;
	if (n > a->cap - a->len) {
		size_t cap = a->cap ? a->cap : 256;
		uint8_t *grown;

		while (cap - a->len < n)
			cap *= 2;
		grown = realloc(a->data, cap);
		if (!grown) {
			a->failed = true;
			return;
		}
		a->data = grown;
		a->cap = cap;
	}
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

static void byte(struct fb_aml *a, uint8_t b)
{
	fb_aml_bytes(a, &b, 1);
}

static void le(struct fb_aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		byte(a, (uint8_t)(v >> (8 * i)));
}

/* PkgLength counts its own bytes too: 1 byte up to 63, else a lead byte
 * with the low nibble and 1..3 more bytes. */
static void pkg_length(struct fb_aml *a, size_t body)
{
	size_t total;

	if (body + 1 < 0x40) {
		byte(a, (uint8_t)(body + 1));
		return;
	}
	for (unsigned extra = 1; extra <= 3; extra++) {
		total = body + 1 + extra;
		if (total < (1ul << (4 + 8 * extra))) {
			byte(a, (uint8_t)((extra << 6) | (total & 0xf)));
			le(a, total >> 4, extra);
			return;
		}
	}
	a->failed = true;
}

void fb_aml_integer(struct fb_aml *a, uint64_t v)
{
	if (v == 0)
		byte(a, AML_ZERO);
	else if (v == 1)
		byte(a, AML_ONE);
	else if (v <= 0xff)
		byte(a, AML_BYTE), le(a, v, 1);
	else if (v <= 0xffff)
		byte(a, AML_WORD), le(a, v, 2);
	else if (v <= 0xffffffff)
		byte(a, AML_DWORD), le(a, v, 4);
	else
		byte(a, AML_QWORD), le(a, v, 8);
}

void fb_aml_string(struct fb_aml *a, const char *s)
{
	byte(a, AML_STRING);
	fb_aml_bytes(a, s, strlen(s) + 1);
}

void fb_aml_name_string(struct fb_aml *a, const char *name)
{
	char seg[4];
	size_t n;

	if (*name == AML_ROOT)
		byte(a, AML_ROOT), name++;
	n = strlen(name);
	if (n == 0 || n > 4) {
		a->failed = true; /* multi-segment names are not needed */
		return;
	}
	memset(seg, '_', sizeof(seg));
	memcpy(seg, name, n);
	fb_aml_bytes(a, seg, sizeof(seg));
}

void fb_aml_name(struct fb_aml *a, const char *name, const struct fb_aml *v)
{
	byte(a, AML_NAME);
	fb_aml_name_string(a, name);
	fb_aml_bytes(a, v->data, v->len);
	a->failed |= v->failed;
}

void fb_aml_package(struct fb_aml *a, const struct fb_aml *elements,
		    unsigned count)
{
	if (count > 255) {
		a->failed = true;
		return;
	}
	byte(a, AML_PACKAGE);
	pkg_length(a, 1 + elements->len);
	byte(a, (uint8_t)count);
	fb_aml_bytes(a, elements->data, elements->len);
	a->failed |= elements->failed;
}

void fb_aml_buffer(struct fb_aml *a, const uint8_t *data, size_t len)
{
	struct fb_aml size = { 0 };

	fb_aml_integer(&size, len);
	byte(a, AML_BUFFER);
	pkg_length(a, size.len + len);
	fb_aml_bytes(a, size.data, size.len);
	fb_aml_bytes(a, data, len);
	a->failed |= size.failed;
	fb_aml_free(&size);
}

static void named_block(struct fb_aml *a, const char *name,
			const struct fb_aml *body)
{
	struct fb_aml nm = { 0 };

	fb_aml_name_string(&nm, name);
	pkg_length(a, nm.len + body->len);
	fb_aml_bytes(a, nm.data, nm.len);
	fb_aml_bytes(a, body->data, body->len);
	a->failed |= nm.failed || body->failed;
	fb_aml_free(&nm);
}

void fb_aml_scope(struct fb_aml *a, const char *name, const struct fb_aml *body)
{
	byte(a, AML_SCOPE);
	named_block(a, name, body);
}

void fb_aml_device(struct fb_aml *a, const char *name,
		   const struct fb_aml *body)
{
	byte(a, AML_EXT);
	byte(a, AML_DEVICE);
	named_block(a, name, body);
}

void fb_aml_res_memory32_fixed(struct fb_aml *a, uint32_t base, uint32_t len)
{
	byte(a, 0x86); /* large item: 32-bit fixed memory range */
	le(a, 9, 2);
	byte(a, 1);    /* read-write */
	le(a, base, 4);
	le(a, len, 4);
}

void fb_aml_res_interrupt(struct fb_aml *a, uint32_t gsi, bool edge)
{
	byte(a, 0x89); /* large item: extended interrupt */
	le(a, 6, 2);
	/* consumer; edge or level; active high; exclusive */
	byte(a, (uint8_t)(0x01 | (edge ? 0x02 : 0)));
	byte(a, 1);    /* one interrupt */
	le(a, gsi, 4);
}

void fb_aml_res_io(struct fb_aml *a, uint16_t port, uint8_t len)
{
	byte(a, 0x47); /* small item: I/O port range */
	byte(a, 1);    /* 16-bit decode */
	le(a, port, 2);
	le(a, port, 2);
	byte(a, 1);    /* alignment */
	byte(a, len);
}

void fb_aml_eisa_id(struct fb_aml *a, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t v = 0;

	/* Three letters in five bits each, then four hex digits; the
	 * DWord holds them big-endian. */
	if (strlen(id) != 7) {
		a->failed = true;
		return;
	}
	for (int i = 0; i < 3; i++)
		v = v << 5 | ((uint32_t)(id[i] - 0x40) & 0x1f);
	for (int i = 3; i < 7; i++) {
		const char *d = strchr(hex, id[i]);

		if (!d || !*d) {
			a->failed = true;
			return;
		}
		v = v << 4 | (uint32_t)(d - hex);
	}
	byte(a, AML_DWORD);
	le(a, __builtin_bswap32(v), 4);
}

void fb_aml_res_end_tag(struct fb_aml *a)
{
	byte(a, 0x79);
	byte(a, 0);    /* checksum 0: "treat as correct" */
}
