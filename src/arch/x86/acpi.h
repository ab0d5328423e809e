/* ACPI tables for a hardware-reduced platform: RSDP, XSDT, FADT, MADT and
 * a DSDT that holds \_S5 (power-off through the sleep control register)
 * and the virtio-mmio devices (Debian's kernel cannot take them from its
 * command line). Built into a caller's buffer that stands for guest memory
 * at area_gpa, so tests can build and check them without a VM. */
#ifndef FB_X86_ACPI_H
#define FB_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define FB_ACPI_MAX_VIRTIO 16

struct fb_acpi_virtio_dev {
	uint64_t base;
	uint32_t size;
	uint32_t gsi;
};

struct fb_acpi_config {
	unsigned ncpus;
	const struct fb_acpi_virtio_dev *virtio;
	unsigned nr_virtio;
};

/* Where each table went, for the caller and for tests. */
struct fb_acpi_layout {
	uint64_t rsdp, xsdt, fadt, madt, dsdt;
	size_t used; /* bytes of the area used */
};

int fb_acpi_build(uint8_t *area, size_t area_len, uint64_t area_gpa,
		  const struct fb_acpi_config *cfg,
		  struct fb_acpi_layout *out);

/* Sum of bytes, mod 256: 0 for a table whose checksum is right. */
uint8_t fb_acpi_sum(const uint8_t *p, size_t len);

#endif
