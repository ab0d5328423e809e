/* The VM-wide x86 KVM state as plain data, for snapshots and forks: the
 * in-kernel interrupt controllers (two 8259 PICs and the IOAPIC), the PIT
 * and kvmclock. Like struct fb_x86_vcpu_state it has no pointers and a
 * fixed layout (checked below); a layout change bumps the version.
 *
 * Order: save with every vCPU out of KVM_RUN (fb_vm_pause); restore after
 * every vCPU's state (fb_x86_vcpu_state_restore) and before the devices. */
#ifndef FB_X86_VM_STATE_H
#define FB_X86_VM_STATE_H

#include <assert.h>
#include <linux/kvm.h>
#include <stdint.h>

#define FB_X86_VM_STATE_VERSION 1

struct fb_x86_vm_state {
	uint32_t version;  /* FB_X86_VM_STATE_VERSION */
	uint32_t reserved0;
	struct kvm_irqchip pic_master; /* chip_id KVM_IRQCHIP_PIC_MASTER */
	struct kvm_irqchip pic_slave;  /* chip_id KVM_IRQCHIP_PIC_SLAVE */
	struct kvm_irqchip ioapic;     /* chip_id KVM_IRQCHIP_IOAPIC */
	struct kvm_pit_state2 pit;
	/* kvmclock at the save. KVM sets KVM_CLOCK_REALTIME (with the host's
	 * CLOCK_REALTIME read at the same instant in .realtime) only when the
	 * host clocksource is the TSC; not on every host (not on KVM-PVM
	 * nested in a VM), hence host_realtime_ns. */
	struct kvm_clock_data clock;
	/* The host's CLOCK_REALTIME right after KVM_GET_CLOCK, in ns. */
	uint64_t host_realtime_ns;
};

static_assert(sizeof(struct fb_x86_vm_state) == 8 + 3 * 520 + 112 + 48 + 8,
	      "struct fb_x86_vm_state changed: bump FB_X86_VM_STATE_VERSION "
	      "and fix this size");

/* How kvmclock (the guest's monotonic time) resumes on restore. */
enum fb_x86_clock_mode {
	/* From the saved value: the guest sees no time pass while it was
	 * stopped. Right for forks of a template saved long ago (no burst of
	 * expired timers, no soft-lockup or RCU-stall reports); the guest's
	 * CLOCK_REALTIME is then behind and is set afresh through the agent. */
	FB_X86_CLOCK_CONTINUE = 0,
	/* Forward by the host time elapsed since the save (KVM_CLOCK_REALTIME
	 * when the save had it, else host_realtime_ns): right for suspend
	 * and resume of one VM whose guest expects wall time to have gone on. */
	FB_X86_CLOCK_ADVANCE = 1,
};

int fb_x86_vm_state_save(int kvm_fd, int vm_fd, struct fb_x86_vm_state *st);

/* Checks st (version, chip ids) first: a bad one is -EINVAL and changes
 * nothing. Then PIT2, CLOCK, IRQCHIP in that order. */
int fb_x86_vm_state_restore(int kvm_fd, int vm_fd,
			    const struct fb_x86_vm_state *st,
			    enum fb_x86_clock_mode clock_mode);

int fb_x86_vm_state_check(const struct fb_x86_vm_state *st);

#endif
