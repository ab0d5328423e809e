/* One x86 vCPU's KVM state as plain data, for snapshots and forks.
 *
 * struct fb_x86_vcpu_state holds no pointers and has a fixed size and
 * layout (checked below), so a snapshot can write it to a file as it is,
 * behind its own magic, version and CRC. Any change to the layout bumps
 * FB_X86_VCPU_STATE_VERSION.
 *
 * Not in it: CPUID (the VMM sets it when it creates the vCPU, as for a
 * fresh boot, and must set the same on restore) and nested virtualisation
 * state (forkbox does not offer VMX/SVM to its guests).
 *
 * Both calls need the vCPU out of KVM_RUN with no exit half done: after a
 * port I/O or MMIO exit, KVM completes the instruction only on the next
 * KVM_RUN, so the caller re-enters once with immediate_exit = 1 first
 * (fb_vm_pause does that). Saving in the middle would replay the I/O. */
#ifndef FB_X86_VCPU_STATE_H
#define FB_X86_VCPU_STATE_H

#include <assert.h>
#include <linux/kvm.h>
#include <stdint.h>

#define FB_X86_VCPU_STATE_VERSION 1

/* XSAVE image: 4 KiB without AMX; with the AMX tile data it is about
 * 11 KiB. Bigger is refused (a new state component we do not know). */
#define FB_X86_XSAVE_MAX 16384
/* Room for the allow list of vcpu_state.c at its fullest (about 45 named
 * MSRs, 27 MTRRs, up to 160 machine-check bank registers, the PMU's);
 * KVM takes at most 256 per KVM_GET/SET_MSRS call, so they go in chunks. */
#define FB_X86_MAX_MSRS 512

struct fb_x86_vcpu_state {
	uint32_t version;    /* FB_X86_VCPU_STATE_VERSION */
	uint32_t xsave_size; /* bytes of xsave[] in use: 4096 or more */
	uint32_t nmsrs;      /* entries of msrs[] in use */
	uint32_t tsc_khz;    /* the vCPU's TSC rate (KVM_GET_TSC_KHZ) */
	struct kvm_mp_state mp_state;
	uint32_t reserved0; /* zero; keeps what follows 8-byte aligned */
	struct kvm_regs regs;
	/* kvm_sregs rather than sregs2: forkbox guests run in long mode,
	 * where the PAE PDPTRs that only sregs2 carries are unused. Its
	 * interrupt_bitmap repeats the pending interrupt vcpu_events holds. */
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_msr_entry msrs[FB_X86_MAX_MSRS];
	/* struct kvm_xsave and its extension (KVM_GET_XSAVE2). */
	uint32_t xsave[FB_X86_XSAVE_MAX / 4];
};

/* The layout of version 1: a change here is a change of format. */
static_assert(sizeof(struct fb_x86_vcpu_state) == 24 + 144 + 312 + 392 +
	      128 + 1024 + 64 + FB_X86_MAX_MSRS * 16 + FB_X86_XSAVE_MAX,
	      "struct fb_x86_vcpu_state changed: bump "
	      "FB_X86_VCPU_STATE_VERSION and fix this size");

/* Reads the vCPU's state into st. kvm_fd is /dev/kvm (the MSR index list
 * and the XSAVE size are system-wide queries). Fails, naming the ioctl,
 * if any part cannot be read: KVM lacking a capability this needs
 * (XSAVE, XCRS, DEBUGREGS, VCPU_EVENTS, MP_STATE) is -ENOTSUP. */
int fb_x86_vcpu_state_save(int kvm_fd, int vcpu_fd,
			   struct fb_x86_vcpu_state *st);

/* Loads st into a vCPU created and given its CPUID as for a boot, in a VM
 * whose guest memory already holds the snapshot's (kvmclock, steal time
 * and PV EOI MSRs point into it). Checks st first (version, sizes,
 * counts, duplicate MSRs): a bad one is -EINVAL and changes nothing; an
 * MSR this KVM refuses is -EIO naming it. Restore every vCPU, one after
 * the other without a pause (KVM takes TSC writes less than a second
 * apart as one synchronised TSC), then the VM-wide state (vm_state.h). */
int fb_x86_vcpu_state_restore(int kvm_fd, int vcpu_fd,
			      const struct fb_x86_vcpu_state *st);

/* Checks st without touching KVM (for a parser, before restore). */
int fb_x86_vcpu_state_check(const struct fb_x86_vcpu_state *st);

/* The MSRs a save would read on this vCPU (the allow list filtered by
 * what KVM has), for diagnostics and tests; returns the count or a
 * negative errno. */
int fb_x86_vcpu_msr_list(int kvm_fd, int vcpu_fd,
			 uint32_t list[FB_X86_MAX_MSRS]);

#endif
