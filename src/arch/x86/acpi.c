#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "util/error.h"
#include "util/le.h"

#define HDR_LEN 36
#define RSDP_LEN 36
#define FADT_LEN 276
#define FADT_REVISION 6
#define FADT_MINOR 3

#define FADT_F_PWR_BUTTON (1u << 4)
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED (1u << 20)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED (1u << 3)
#define IAPC_NO_CMOS_RTC (1u << 5)
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_LAPIC_NMI 4

uint8_t fb_acpi_sum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return sum;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	fb_put_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "FRKBOX", 6);
	memcpy(t + 16, "FBOX", 4);    /* OEM table id: FBOX and the signature */
	memcpy(t + 20, sig, 4);
	fb_put_le32(t + 24, 1);  /* OEM revision */
	memcpy(t + 28, "FBOX", 4);
	fb_put_le32(t + 32, 1);  /* creator revision */
}

static void finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)-fb_acpi_sum(t, len);
}

static void gas_io(uint8_t *p, size_t off, uint16_t port)
{
	p[off] = GAS_SYSTEM_IO;
	p[off + 1] = 8;          /* bit width */
	p[off + 2] = 0;          /* bit offset */
	p[off + 3] = GAS_ACCESS_BYTE;
	fb_put_le64(p + off + 4, port);
}

/* The UARTs must be ACPI devices: on a hardware-reduced platform Linux
 * has no legacy PIC and maps no ISA IRQ that no device asks for, so the
 * 8250 driver would find its ports but get no interrupt. */
static void add_uart(struct fb_aml *sb, const char *name, unsigned uid,
		     uint16_t port, uint32_t irq)
{
	struct fb_aml body = { 0 }, v = { 0 }, crs = { 0 };

	fb_aml_eisa_id(&v, "PNP0501");
	fb_aml_name(&body, "_HID", &v);
	v.len = 0;
	fb_aml_integer(&v, uid);
	fb_aml_name(&body, "_UID", &v);
	v.len = 0;
	fb_aml_res_io(&crs, port, 8);
	fb_aml_res_interrupt(&crs, irq, true);
	fb_aml_res_end_tag(&crs);
	fb_aml_buffer(&v, crs.data, crs.len);
	fb_aml_name(&body, "_CRS", &v);
	fb_aml_device(sb, name, &body);
	sb->failed |= crs.failed;
	fb_aml_free(&body);
	fb_aml_free(&v);
	fb_aml_free(&crs);
}

static int build_dsdt(const struct fb_acpi_config *cfg, struct fb_aml *dsdt)
{
	struct fb_aml sb = { 0 }, s5 = { 0 }, pkg = { 0 };

	add_uart(&sb, "COM1", 1, FB_PORT_COM1, FB_IRQ_COM1);
	add_uart(&sb, "COM2", 2, FB_PORT_COM2, FB_IRQ_COM2);

	for (unsigned i = 0; i < cfg->nr_virtio; i++) {
		const struct fb_acpi_virtio_dev *d = &cfg->virtio[i];
		struct fb_aml body = { 0 }, v = { 0 }, crs = { 0 };
		char name[5];

		snprintf(name, sizeof(name), "VR%02X", i & 0xff);
		fb_aml_string(&v, "LNRO0005");
		fb_aml_name(&body, "_HID", &v);
		v.len = 0;
		fb_aml_integer(&v, i);
		fb_aml_name(&body, "_UID", &v);
		v.len = 0;
		fb_aml_res_memory32_fixed(&crs, (uint32_t)d->base, d->size);
		fb_aml_res_interrupt(&crs, d->gsi, true);
		fb_aml_res_end_tag(&crs);
		fb_aml_buffer(&v, crs.data, crs.len);
		fb_aml_name(&body, "_CRS", &v);
		fb_aml_device(&sb, name, &body);
		sb.failed |= crs.failed;
		fb_aml_free(&body);
		fb_aml_free(&v);
		fb_aml_free(&crs);
	}
	fb_aml_scope(dsdt, "\\_SB_", &sb);
	/* \_S5: SLP_TYPa, SLP_TYPb, reserved, reserved. */
	for (int i = 0; i < 4; i++)
		fb_aml_integer(&pkg, i == 0 ? FB_ACPI_S5_TYPE : 0);
	fb_aml_package(&s5, &pkg, 4);
	fb_aml_name(dsdt, "\\_S5_", &s5);
	fb_aml_free(&sb);
	fb_aml_free(&s5);
	fb_aml_free(&pkg);
	return fb_aml_failed(dsdt) ? fb_errorf(-ENOMEM, "DSDT: AML encoding "
					       "failed") : 0;
}

int fb_acpi_build(uint8_t *area, size_t area_len, uint64_t area_gpa,
		  const struct fb_acpi_config *cfg, struct fb_acpi_layout *out)
{
	struct fb_aml dsdt_aml = { 0 };
	size_t off_rsdp = 0, off_xsdt = 64, off_fadt, off_madt, off_dsdt;
	size_t xsdt_len = HDR_LEN + 2 * 8;
	size_t madt_len = HDR_LEN + 8 + 8 * (size_t)cfg->ncpus + 12 + 6;
	size_t dsdt_len, end;
	uint8_t *t;
	int err;

	if (cfg->ncpus < 1 || cfg->ncpus > 255)
		return fb_errorf(-EINVAL, "ACPI: %u vCPUs (1..255)", cfg->ncpus);
	if (cfg->nr_virtio > FB_ACPI_MAX_VIRTIO)
		return fb_errorf(-EINVAL, "ACPI: %u virtio devices (max %d)",
				 cfg->nr_virtio, FB_ACPI_MAX_VIRTIO);
	err = build_dsdt(cfg, &dsdt_aml);
	if (err < 0)
		goto out;
	dsdt_len = HDR_LEN + dsdt_aml.len;
	off_fadt = (off_xsdt + xsdt_len + 15) & ~(size_t)15;
	off_madt = (off_fadt + FADT_LEN + 15) & ~(size_t)15;
	off_dsdt = (off_madt + madt_len + 15) & ~(size_t)15;
	end = off_dsdt + dsdt_len;
	if (end > area_len) {
		err = fb_errorf(-ENOSPC, "ACPI tables need %zu bytes, the area "
				"has %zu", end, area_len);
		goto out;
	}
	memset(area, 0, end);

	t = area + off_dsdt;
	header(t, "DSDT", (uint32_t)dsdt_len, 2);
	memcpy(t + HDR_LEN, dsdt_aml.data, dsdt_aml.len);
	finish(t, (uint32_t)dsdt_len);

	t = area + off_madt;
	header(t, "APIC", (uint32_t)madt_len, 5);
	fb_put_le32(t + 36, FB_LAPIC_ADDR);
	fb_put_le32(t + 40, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		uint8_t *e = t + 44 + 8 * i;

		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i; /* processor UID */
		e[3] = (uint8_t)i; /* APIC ID */
		fb_put_le32(e + 4, 1); /* enabled */
	}
	{
		uint8_t *e = t + 44 + 8 * cfg->ncpus;

		e[0] = MADT_IOAPIC;
		e[1] = 12;
		e[2] = 0;          /* I/O APIC ID */
		fb_put_le32(e + 4, FB_IOAPIC_ADDR);
		fb_put_le32(e + 8, 0); /* GSI base */
		e += 12;
		e[0] = MADT_LAPIC_NMI; /* LINT1 of every CPU is NMI */
		e[1] = 6;
		e[2] = 0xff;
		fb_put_le16(e + 3, 0);
		e[5] = 1;
	}
	finish(t, (uint32_t)madt_len);

	t = area + off_fadt;
	header(t, "FACP", FADT_LEN, FADT_REVISION);
	fb_put_le32(t + 40, (uint32_t)(area_gpa + off_dsdt));
	fb_put_le16(t + 46, 9);           /* SCI: unused when hardware-reduced */
	fb_put_le16(t + 109, IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED |
		    IAPC_NO_CMOS_RTC);
	fb_put_le32(t + 112, FADT_F_HW_REDUCED | FADT_F_RESET_REG_SUP |
		    FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON);
	gas_io(t, 116, FB_PORT_ACPI_RESET);
	t[128] = FB_ACPI_RESET_VALUE;
	t[131] = FADT_MINOR;
	fb_put_le64(t + 140, area_gpa + off_dsdt);
	gas_io(t, 244, FB_PORT_ACPI_SLEEP_CTL);
	gas_io(t, 256, FB_PORT_ACPI_SLEEP_STS);
	memcpy(t + 268, "FORKBOX\0", 8); /* hypervisor vendor identity */
	finish(t, FADT_LEN);

	t = area + off_xsdt;
	header(t, "XSDT", (uint32_t)xsdt_len, 1);
	fb_put_le64(t + HDR_LEN, area_gpa + off_fadt);
	fb_put_le64(t + HDR_LEN + 8, area_gpa + off_madt);
	finish(t, (uint32_t)xsdt_len);

	t = area + off_rsdp;
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, "FRKBOX", 6);
	t[15] = 2;                        /* ACPI 2.0+: use the XSDT */
	fb_put_le32(t + 20, RSDP_LEN);
	fb_put_le64(t + 24, area_gpa + off_xsdt);
	t[8] = (uint8_t)-fb_acpi_sum(t, 20);
	t[32] = (uint8_t)-fb_acpi_sum(t, RSDP_LEN);

	out->rsdp = area_gpa + off_rsdp;
	out->xsdt = area_gpa + off_xsdt;
	out->fadt = area_gpa + off_fadt;
	out->madt = area_gpa + off_madt;
	out->dsdt = area_gpa + off_dsdt;
	out->used = end;
out:
	fb_aml_free(&dsdt_aml);
	return err;
}
