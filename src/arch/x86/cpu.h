/* x86 vCPU set-up: CPUID from KVM's supported list with per-vCPU topology,
 * the LAPIC's LINT pins, and the boot CPU's registers for the 64-bit boot
 * protocol (long mode, identity-mapped 4 GiB, flat GDT). */
#ifndef FB_X86_CPU_H
#define FB_X86_CPU_H

#include <stdint.h>

#include "vmm/guest_mem.h"

struct kvm_cpuid2;

/* KVM's supported CPUID list; free() it. */
int fb_x86_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);

/* Sets CPUID of vCPU id out of ncpus: APIC IDs, topology, hypervisor bit. */
int fb_x86_vcpu_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *supported,
			  unsigned id, unsigned ncpus);

/* LINT0 as ExtINT (the PIC), LINT1 as NMI, as firmware leaves them. */
int fb_x86_vcpu_set_lint(int vcpu_fd);

/* Boot MSRs every vCPU starts with. */
int fb_x86_vcpu_set_boot_msrs(int vcpu_fd);

/* GDT, identity page tables and the reset-vector stub in guest memory. */
int fb_x86_write_boot_tables(const struct fb_guest_mem *mem);

/* The boot CPU's registers: long mode at entry with %rsi at the zero page. */
int fb_x86_vcpu_set_boot_regs(int vcpu_fd, uint64_t entry,
			      uint64_t zero_page);

#endif
