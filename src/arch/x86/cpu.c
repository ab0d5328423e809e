#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/cpu.h"
#include "arch/x86/layout.h"
#include "util/error.h"

#define CPUID_MAX_ENTRIES 256

#define X86_CR0_PE 0x1ull
#define X86_CR0_ET 0x10ull
#define X86_CR0_PG 0x80000000ull
#define X86_CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MISC_ENABLE_FAST_STRING 0x1ull
#define MTRR_ENABLE_WRITEBACK 0x806ull /* MTRRs on, default type WB */

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

#define GDT_SEL_CODE FB_GDT_SEL_CODE
#define GDT_SEL_DATA FB_GDT_SEL_DATA
#define GDT_SEL_TSS FB_GDT_SEL_TSS
#define TSS_LIMIT_PVH 0x67 /* a 32-bit TSS, as the PVH ABI asks */

int fb_x86_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return fb_errorf(-ENOMEM, "calloc for CPUID");
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int err = -errno;

		free(c);
		return fb_errorf(err, "KVM_GET_SUPPORTED_CPUID: %s",
				 strerror(-err));
	}
	*out = c;
	return 0;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

int fb_x86_vcpu_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *supported,
			  unsigned id, unsigned ncpus)
{
	size_t size = sizeof(*supported) +
		      supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	unsigned core_bits = bits_for(ncpus);
	int err = 0;

	if (!c)
		return fb_errorf(-ENOMEM, "malloc for CPUID");
	memcpy(c, supported, size);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC ID, logical CPU count, HTT. */
			e->ebx = (e->ebx & 0xffff) | (id << 24) |
				 ((ncpus & 0xff) << 16);
			if (ncpus > 1)
				e->edx |= 1u << 28;
			e->ecx |= 1u << 31; /* running on a hypervisor */
			break;
		case 0xb:
		case 0x1f:
			/* One thread per core, ncpus cores in one package. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = 1u << 8; /* level 0: SMT */
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = ncpus;
				e->ecx = 2u << 8 | 1; /* level 1: core */
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			e->edx = id;
			break;
		case 0x8000001e:
			e->eax = id; /* extended APIC ID (AMD) */
			e->ebx = (e->ebx & ~0xffu) | (id & 0xff);
			break;
		}
	}
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		err = fb_errorf(-errno, "KVM_SET_CPUID2: %s", strerror(errno));
	free(c);
	return err;
}

int fb_x86_vcpu_set_lint(int vcpu_fd)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0, *lvt1;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
		return fb_errorf(-errno, "KVM_GET_LAPIC: %s", strerror(errno));
	lvt0 = (uint32_t *)(void *)&lapic.regs[APIC_LVT0];
	lvt1 = (uint32_t *)(void *)&lapic.regs[APIC_LVT1];
	*lvt0 = (*lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
		return fb_errorf(-errno, "KVM_SET_LAPIC: %s", strerror(errno));
	return 0;
}

int fb_x86_vcpu_set_boot_msrs(int vcpu_fd)
{
	static const struct { uint32_t index; uint64_t value; } boot[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 }, { MSR_STAR, 0 },
		{ MSR_CSTAR, 0 }, { MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 }, { MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK },
	};
	const unsigned n = sizeof(boot) / sizeof(boot[0]);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[sizeof(boot) / sizeof(boot[0])];
	} msrs;
	int set;

	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		msrs.e[i].index = boot[i].index;
		msrs.e[i].data = boot[i].value;
	}
	set = ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return fb_errorf(-errno, "KVM_SET_MSRS: %s", strerror(errno));
	/* KVM stops at the first MSR it refuses; a host that lacks one of
	 * these (say MTRRs) still boots Linux, so that is not an error. */
	return 0;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) |
	       ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) |
	       ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

int fb_x86_write_boot_tables(const struct fb_guest_mem *mem, bool pvh)
{
	const uint64_t gdt[FB_GDT_ENTRIES] = {
		0, 0,
		/* 0x10: 64-bit code (L), or 32-bit code (D/B) for PVH */
		pvh ? gdt_entry(0xc09b, 0, 0xfffff) :
		      gdt_entry(0xa09b, 0, 0xfffff),
		gdt_entry(0xc093, 0, 0xfffff), /* 0x18: data */
		/* 0x20: TSS (busy) */
		pvh ? gdt_entry(0x008b, 0, TSS_LIMIT_PVH) :
		      gdt_entry(0x808b, 0, 0xfffff),
	};

	/* Real mode: mov dx, RESET_PORT; mov al, RESET_VALUE; out dx, al;
	 * then hlt for ever. */
	const uint8_t reset_stub[] = {
		0xba, FB_PORT_ACPI_RESET & 0xff, FB_PORT_ACPI_RESET >> 8,
		0xb0, FB_ACPI_RESET_VALUE, 0xee, 0xf4, 0xeb, 0xfd,
	};
	uint64_t *pml4, *pdpt, *pd;
	int err;

	err = fb_guest_write(mem, FB_GDT_ADDR, gdt, sizeof(gdt));
	if (!err)
		err = fb_guest_write(mem, FB_RESET_VECTOR, reset_stub,
				     sizeof(reset_stub));
	if (err < 0 || pvh)
		return err; /* PVH starts with paging off */
	pml4 = fb_gpa_ptr(mem, FB_PML4_ADDR, 4096);
	pdpt = fb_gpa_ptr(mem, FB_PDPT_ADDR, 4096);
	pd = fb_gpa_ptr(mem, FB_PD_ADDR, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return fb_errorf(-EFAULT, "page tables are not in guest RAM");
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = FB_PDPT_ADDR | 0x3;          /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (FB_PD_ADDR + i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;      /* 2 MiB, present, writable */
	return 0;
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t s,
				  uint8_t l, uint8_t db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = db, .s = s, .l = l, .g = 1,
	};
}

/* x87 and SSE as after reset. */
static int set_boot_fpu(int vcpu_fd)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return fb_errorf(-errno, "KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

int fb_x86_vcpu_set_boot_regs(int vcpu_fd, uint64_t entry,
			      uint64_t zero_page)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return fb_errorf(-errno, "KVM_GET_SREGS: %s", strerror(errno));
	sregs.cs = segment(GDT_SEL_CODE, 0xb, 1, 1, 0);
	sregs.ds = segment(GDT_SEL_DATA, 0x3, 1, 0, 1);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = segment(GDT_SEL_TSS, 0xb, 0, 0, 0);
	sregs.gdt.base = FB_GDT_ADDR;
	sregs.gdt.limit = FB_GDT_ENTRIES * 8 - 1;
	sregs.idt.base = FB_IDT_ADDR;
	sregs.idt.limit = 0;
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
	sregs.cr3 = FB_PML4_ADDR;
	sregs.cr4 = X86_CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return fb_errorf(-errno, "KVM_SET_SREGS: %s", strerror(errno));

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rsi = zero_page;
	regs.rsp = regs.rbp = FB_ZERO_PAGE_ADDR - 0x10; /* below the zero page */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fb_errorf(-errno, "KVM_SET_REGS: %s", strerror(errno));

	return set_boot_fpu(vcpu_fd);
}

void fb_x86_pvh_cpu_state(struct kvm_sregs *sregs, struct kvm_regs *regs,
			  uint32_t entry, uint32_t start_info)
{
	sregs->cs = segment(GDT_SEL_CODE, 0xb, 1, 0, 1);
	sregs->ds = segment(GDT_SEL_DATA, 0x3, 1, 0, 1);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	sregs->tr = segment(GDT_SEL_TSS, 0xb, 0, 0, 0);
	sregs->tr.limit = TSS_LIMIT_PVH;
	sregs->tr.g = 0;
	sregs->gdt.base = FB_GDT_ADDR;
	sregs->gdt.limit = FB_GDT_ENTRIES * 8 - 1;
	sregs->idt.base = FB_IDT_ADDR;
	sregs->idt.limit = 0;
	/* ET is hard-wired on every CPU since the 486. */
	sregs->cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs->cr3 = 0;
	sregs->cr4 = 0;
	sregs->efer = 0;

	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2; /* the reserved bit; IF, TF, VM clear */
	regs->rip = entry;
	regs->rbx = start_info;
}

int fb_x86_vcpu_set_pvh_regs(int vcpu_fd, uint32_t entry,
			     uint32_t start_info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return fb_errorf(-errno, "KVM_GET_SREGS: %s", strerror(errno));
	fb_x86_pvh_cpu_state(&sregs, &regs, entry, start_info);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return fb_errorf(-errno, "KVM_SET_SREGS (PVH entry state): %s",
				 strerror(errno));
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fb_errorf(-errno, "KVM_SET_REGS: %s", strerror(errno));
	return set_boot_fpu(vcpu_fd);
}
