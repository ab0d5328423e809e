/* Guest-physical memory map of a forkbox x86 VM.
 *
 * Low memory holds what the 64-bit boot protocol needs (GDT, zero page,
 * page tables, command line), or the PVH boot (GDT, start_info, command
 * line); the BIOS area holds the ACPI tables, where Linux also scans for
 * the RSDP; a bzImage's kernel loads at 1 MiB, an ELF vmlinux at its own
 * physical addresses (1 MiB or above; 16 MiB for Linux); RAM above 3 GiB
 * moves over the MMIO hole to 4 GiB. */
#ifndef FB_X86_LAYOUT_H
#define FB_X86_LAYOUT_H

#define FB_GDT_ADDR 0x500ull
#define FB_IDT_ADDR 0x520ull
#define FB_ZERO_PAGE_ADDR 0x7000ull
/* A PVH boot has no zero page: its hvm_start_info, module list and
 * memory map take that page instead (arch/x86/pvh.h). */
#define FB_PVH_INFO_ADDR FB_ZERO_PAGE_ADDR
#define FB_PML4_ADDR 0x9000ull
#define FB_PDPT_ADDR 0xa000ull
#define FB_PD_ADDR 0xb000ull        /* 4 pages: identity map of 4 GiB */
#define FB_CMDLINE_ADDR 0x20000ull
#define FB_CMDLINE_MAX 2048ull      /* x86 COMMAND_LINE_SIZE */
#define FB_EBDA_ADDR 0x9fc00ull     /* end of low RAM in the e820 map */
#define FB_ACPI_ADDR 0xe0000ull     /* RSDP first, then the tables */
#define FB_ACPI_MAX 0x1f000ull      /* up to the reset stub */
/* Where a PC starts after reset (F000:FFF0). Linux's last resorts for a
 * reboot jump here in real mode (on hardware-reduced ACPI it tries EFI,
 * then the BIOS, before the reset register), so a stub here resets the
 * VM through the ACPI reset register. */
#define FB_RESET_VECTOR 0xffff0ull
#define FB_HIMEM_ADDR 0x100000ull   /* the protected-mode kernel */

#define FB_MMIO_HOLE_START 0xc0000000ull
#define FB_MMIO_HOLE_END 0x100000000ull
#define FB_IOAPIC_ADDR 0xfec00000ull
#define FB_LAPIC_ADDR 0xfee00000ull
/* virtio-mmio devices, 4 KiB each, from here (described in the DSDT). */
#define FB_VIRTIO_MMIO_BASE 0xd0000000ull
#define FB_VIRTIO_MMIO_SIZE 0x1000ull
#define FB_VIRTIO_IRQ_BASE 5u

/* I/O ports. */
#define FB_PORT_COM1 0x3f8
#define FB_PORT_COM2 0x2f8
#define FB_IRQ_COM1 4
#define FB_IRQ_COM2 3
#define FB_PORT_I8042_CMD 0x64
/* ACPI hardware-reduced sleep control, sleep status and reset registers. */
#define FB_PORT_ACPI_SLEEP_CTL 0x3c0
#define FB_PORT_ACPI_SLEEP_STS 0x3c1
#define FB_PORT_ACPI_RESET 0x3c2
#define FB_ACPI_RESET_VALUE 0x01
#define FB_ACPI_S5_TYPE 5 /* SLP_TYP of \_S5 in our DSDT */

#endif
