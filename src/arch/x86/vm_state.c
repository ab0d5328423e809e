/* VM-wide x86 state save and restore (see vm_state.h). */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "arch/x86/vm_state.h"
#include "util/error.h"

static const struct { long cap; const char *name; } vm_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2" },
	{ KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
};

static int required_caps(int kvm_fd)
{
	for (size_t i = 0; i < sizeof(vm_caps) / sizeof(vm_caps[0]); i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, vm_caps[i].cap) <= 0)
			return fb_errorf(-ENOTSUP, "KVM lacks %s: this host "
					 "cannot save or restore a VM",
					 vm_caps[i].name);
	return 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int get_chip(int vm_fd, uint32_t id, struct kvm_irqchip *chip)
{
	memset(chip, 0, sizeof(*chip));
	chip->chip_id = id;
	if (ioctl(vm_fd, KVM_GET_IRQCHIP, chip) < 0)
		return fb_errorf(-errno, "KVM_GET_IRQCHIP (chip %u): %s", id,
				 strerror(errno));
	return 0;
}

int fb_x86_vm_state_save(int kvm_fd, int vm_fd, struct fb_x86_vm_state *st)
{
	int err;

	memset(st, 0, sizeof(*st));
	st->version = FB_X86_VM_STATE_VERSION;
	err = required_caps(kvm_fd);
	if (!err)
		err = get_chip(vm_fd, KVM_IRQCHIP_PIC_MASTER, &st->pic_master);
	if (!err)
		err = get_chip(vm_fd, KVM_IRQCHIP_PIC_SLAVE, &st->pic_slave);
	if (!err)
		err = get_chip(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic);
	if (err < 0)
		return err;
	if (ioctl(vm_fd, KVM_GET_PIT2, &st->pit) < 0)
		return fb_errorf(-errno, "KVM_GET_PIT2: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_GET_CLOCK, &st->clock) < 0)
		return fb_errorf(-errno, "KVM_GET_CLOCK: %s", strerror(errno));
	st->host_realtime_ns = realtime_ns();
	return 0;
}

int fb_x86_vm_state_check(const struct fb_x86_vm_state *st)
{
	if (st->version != FB_X86_VM_STATE_VERSION)
		return fb_errorf(-EINVAL, "VM state version %u: this forkbox "
				 "reads version %u only", st->version,
				 FB_X86_VM_STATE_VERSION);
	if (st->reserved0)
		return fb_errorf(-EINVAL, "VM state: reserved field is not "
				 "zero");
	if (st->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    st->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
	    st->ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return fb_errorf(-EINVAL, "VM state: irqchip ids %u/%u/%u, not "
				 "%d/%d/%d", st->pic_master.chip_id,
				 st->pic_slave.chip_id, st->ioapic.chip_id,
				 KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
				 KVM_IRQCHIP_IOAPIC);
	return 0;
}

static int set_chip(int vm_fd, const struct kvm_irqchip *chip)
{
	struct kvm_irqchip c = *chip;

	if (ioctl(vm_fd, KVM_SET_IRQCHIP, &c) < 0)
		return fb_errorf(-errno, "KVM_SET_IRQCHIP (chip %u): %s",
				 chip->chip_id, strerror(errno));
	return 0;
}

int fb_x86_vm_state_restore(int kvm_fd, int vm_fd,
			    const struct fb_x86_vm_state *st,
			    enum fb_x86_clock_mode clock_mode)
{
	struct kvm_pit_state2 pit = st->pit;
	struct kvm_clock_data clock;
	int err;

	err = fb_x86_vm_state_check(st);
	if (!err && clock_mode != FB_X86_CLOCK_CONTINUE &&
	    clock_mode != FB_X86_CLOCK_ADVANCE)
		err = fb_errorf(-EINVAL, "clock mode %d", (int)clock_mode);
	if (!err)
		err = required_caps(kvm_fd);
	if (err < 0)
		return err;

	/* All of this comes after the vCPUs: the IOAPIC's routes and the
	 * kvmclock update below are worked out against vCPUs (their LAPIC
	 * IDs and modes, their kvmclock MSRs) that must already be back. */

	/* PIT2 first: it reloads the channels' counters and restarts the
	 * PIT's timer, which may then raise IRQ 0 any time. */
	if (ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
		return fb_errorf(-errno, "KVM_SET_PIT2: %s", strerror(errno));

	/* CLOCK: sets the VM's kvmclock offset and makes every vCPU rewrite
	 * its kvmclock page (found through the MSRs just restored) on its
	 * next entry. Only KVM_CLOCK_REALTIME is an input flag; the others
	 * KVM_GET_CLOCK reports are dropped. */
	memset(&clock, 0, sizeof(clock));
	clock.clock = st->clock.clock;
	if (clock_mode == FB_X86_CLOCK_ADVANCE) {
		if (st->clock.flags & KVM_CLOCK_REALTIME) {
			/* KVM adds the host's realtime since the save, read
			 * atomically with its own clock. */
			clock.flags = KVM_CLOCK_REALTIME;
			clock.realtime = st->clock.realtime;
		} else {
			uint64_t now = realtime_ns();

			if (now > st->host_realtime_ns)
				clock.clock += now - st->host_realtime_ns;
		}
	}
	if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return fb_errorf(-errno, "KVM_SET_CLOCK: %s", strerror(errno));

	/* IRQCHIP last: the pins, IRR/ISR and masks the guest saw at the save
	 * are what stands at resume, whatever the restores above signalled
	 * on the way. */
	err = set_chip(vm_fd, &st->pic_master);
	if (!err)
		err = set_chip(vm_fd, &st->pic_slave);
	if (!err)
		err = set_chip(vm_fd, &st->ioapic);
	return err;
}
