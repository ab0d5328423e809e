/* A small AML (ACPI Machine Language) encoder: just what our DSDT says,
 * names, integers, strings, packages, buffers, scopes and devices.
 * Each builder appends to a growable buffer; an out-of-memory failure is
 * remembered and reported once, at the end, by fb_aml_failed(). */
#ifndef FB_X86_AML_H
#define FB_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fb_aml {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool failed;
};

void fb_aml_free(struct fb_aml *a);
bool fb_aml_failed(const struct fb_aml *a);

void fb_aml_bytes(struct fb_aml *a, const void *p, size_t n);
void fb_aml_integer(struct fb_aml *a, uint64_t v);
void fb_aml_string(struct fb_aml *a, const char *s);
/* A NameString: "\\_SB_" (root-relative) or "_S5_" / "VR00"; segments
 * shorter than four characters are padded with '_'. */
void fb_aml_name_string(struct fb_aml *a, const char *name);

/* Name(name, value): value is an already encoded data object. */
void fb_aml_name(struct fb_aml *a, const char *name, const struct fb_aml *v);
/* Package(){ elements }: elements holds count encoded data objects. */
void fb_aml_package(struct fb_aml *a, const struct fb_aml *elements,
		    unsigned count);
void fb_aml_buffer(struct fb_aml *a, const uint8_t *data, size_t len);
void fb_aml_scope(struct fb_aml *a, const char *name, const struct fb_aml *body);
void fb_aml_device(struct fb_aml *a, const char *name, const struct fb_aml *body);

/* Resource template items, appended to a plain byte buffer that then
 * goes into fb_aml_buffer() (the end tag is added by fb_aml_end_tag). */
void fb_aml_res_memory32_fixed(struct fb_aml *a, uint32_t base, uint32_t len);
void fb_aml_res_interrupt(struct fb_aml *a, uint32_t gsi, bool edge);
void fb_aml_res_io(struct fb_aml *a, uint16_t port, uint8_t len);
void fb_aml_res_end_tag(struct fb_aml *a);
/* EisaId("PNP0501") and the like, as a DWord integer. */
void fb_aml_eisa_id(struct fb_aml *a, const char *id);

#endif
