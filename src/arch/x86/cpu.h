/* x86 vCPU set-up: CPUID from KVM's supported list with per-vCPU topology,
 * the LAPIC's LINT pins, and the boot CPU's registers for the 64-bit boot
 * protocol (long mode, identity-mapped 4 GiB, flat GDT) or for the PVH
 * boot (32-bit protected mode, paging off, flat GDT). */
#ifndef FB_X86_CPU_H
#define FB_X86_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

struct kvm_cpuid2;
struct kvm_regs;
struct kvm_sregs;

/* GDT selectors of both boots: Linux's __BOOT_CS and __BOOT_DS, then a
 * TSS (KVM wants a usable TR). */
#define FB_GDT_SEL_CODE 0x10
#define FB_GDT_SEL_DATA 0x18
#define FB_GDT_SEL_TSS 0x20
#define FB_GDT_ENTRIES 5

/* KVM's supported CPUID list; free() it. */
int fb_x86_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);

/* Sets CPUID of vCPU id out of ncpus: APIC IDs, topology, hypervisor bit. */
int fb_x86_vcpu_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *supported,
			  unsigned id, unsigned ncpus);

/* LINT0 as ExtINT (the PIC), LINT1 as NMI, as firmware leaves them. */
int fb_x86_vcpu_set_lint(int vcpu_fd);

/* Boot MSRs every vCPU starts with. */
int fb_x86_vcpu_set_boot_msrs(int vcpu_fd);

/* GDT and the reset-vector stub in guest memory, and for the 64-bit boot
 * the identity page tables. The GDT's code segment is 64-bit, or 32-bit
 * for a PVH boot, matching the registers set below. */
int fb_x86_write_boot_tables(const struct fb_guest_mem *mem, bool pvh);

/* The boot CPU's registers: long mode at entry with %rsi at the zero page. */
int fb_x86_vcpu_set_boot_regs(int vcpu_fd, uint64_t entry,
			      uint64_t zero_page);

/* The PVH entry state (Xen's docs/misc/pvh.pandoc): CR0.PE only, CR4 and
 * EFER clear, flat 32-bit code and data segments (base 0, limit 4 GiB),
 * a 32-bit busy TSS of limit 0x67, EFLAGS with IF and TF clear, %ebx at
 * the start_info. Fills sregs and regs over what KVM_GET_SREGS gave. */
void fb_x86_pvh_cpu_state(struct kvm_sregs *sregs, struct kvm_regs *regs,
			  uint32_t entry, uint32_t start_info);
int fb_x86_vcpu_set_pvh_regs(int vcpu_fd, uint32_t entry,
			     uint32_t start_info);

#endif
