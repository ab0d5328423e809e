/* A running VM's device and interrupt state, written out on request
 * (`forkbox debug BOX`, into the box's vmm.log): for a guest that stopped
 * answering, whether its queues had buffers, an interrupt was left
 * pending, or a vCPU last left KVM_RUN for what. Read while the VM runs:
 * a snapshot of moving values, not a consistent one. */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "devices/virtio/virtio.h"
#include "vmm/vm.h"

static void dump_ioapic(struct fb_vm *vm, FILE *f)
{
	struct kvm_irqchip chip;

	memset(&chip, 0, sizeof(chip));
	chip.chip_id = KVM_IRQCHIP_IOAPIC;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
		fprintf(f, "forkbox debug: KVM_GET_IRQCHIP: %m\n");
		return;
	}
	fprintf(f, "forkbox debug: ioapic irr %#x\n", chip.chip.ioapic.irr);
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		unsigned gsi = vm->virtio[i]->gsi;
		const struct kvm_ioapic_state *io = &chip.chip.ioapic;

		if (gsi >= KVM_IOAPIC_NUM_PINS)
			continue;
		fprintf(f, "forkbox debug: ioapic pin %u (%s): vector %u, "
			"mask %u, %s, remote_irr %u, delivery_status %u\n",
			gsi, vm->virtio[i]->ops->name,
			io->redirtbl[gsi].fields.vector,
			io->redirtbl[gsi].fields.mask,
			io->redirtbl[gsi].fields.trig_mode ? "level" : "edge",
			io->redirtbl[gsi].fields.remote_irr,
			io->redirtbl[gsi].fields.delivery_status);
	}
}

/* The set bits of a LAPIC vector register (IRR, ISR: 8 words of 32
 * bits, 16 bytes apart from offset off). */
static void lapic_vectors(FILE *f, const char *name,
			  const struct kvm_lapic_state *l, unsigned off)
{
	fprintf(f, " %s", name);
	for (unsigned w = 0; w < 8; w++) {
		uint32_t bits;

		memcpy(&bits, l->regs + off + 16 * w, sizeof(bits));
		for (unsigned b = 0; b < 32; b++)
			if (bits & (1u << b))
				fprintf(f, " %u", w * 32 + b);
	}
}

/* The guest-physical address of a 64-bit guest virtual one through the
 * guest's own 4-level page tables at cr3, or UINT64_MAX. Every table
 * read goes through fb_gpa_ptr: the tables are the guest's to forge. */
static uint64_t guest_virt_to_phys(const struct fb_guest_mem *mem,
				   uint64_t cr3, uint64_t va)
{
	const uint64_t addr_mask = 0x000ffffffffff000ull;
	uint64_t table = cr3 & addr_mask;

	for (int level = 3; level >= 0; level--) {
		unsigned idx = (unsigned)(va >> (12 + 9 * level)) & 511;
		const uint64_t *e = fb_gpa_ptr(mem, table + 8ull * idx, 8);
		uint64_t entry;

		if (!e)
			return UINT64_MAX;
		memcpy(&entry, e, sizeof(entry));
		if (!(entry & 1))
			return UINT64_MAX;
		/* A 1 GiB or 2 MiB page ends the walk. */
		if ((level == 2 || level == 1) && (entry & 0x80)) {
			uint64_t size = 1ull << (12 + 9 * level);

			return (entry & addr_mask & ~(size - 1)) +
			       (va & (size - 1));
		}
		table = entry & addr_mask;
	}
	return table + (va & 0xfff);
}

/* n bytes at a guest virtual address (within one page), in hex. */
static void guest_bytes(FILE *f, const struct fb_guest_mem *mem,
			uint64_t cr3, const char *what, uint64_t va, unsigned n)
{
	uint64_t pa = guest_virt_to_phys(mem, cr3, va);
	const uint8_t *p;

	if ((va & 0xfff) + n > 4096)
		n = 4096 - (unsigned)(va & 0xfff);
	p = pa == UINT64_MAX ? NULL : fb_gpa_ptr(mem, pa, n);
	fprintf(f, "forkbox debug:   %s at %#llx:", what,
		(unsigned long long)va);
	if (!p) {
		fprintf(f, " (not mapped)\n");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		fprintf(f, " %02x", p[i]);
	fprintf(f, "\n");
}

void fb_vcpu_debug(struct fb_vcpu *vcpu, FILE *f,
		   struct fb_vcpu_seen *seen)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_lapic_state lapic;
	bool foreign;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0) {
		fprintf(f, "forkbox debug: vCPU %u: its state: %m\n", vcpu->id);
		if (seen)
			*seen = (struct fb_vcpu_seen){ 0 };
		return;
	}
	fprintf(f, "forkbox debug: vCPU %u: rip %#llx rsp %#llx rflags %#llx "
		"cs %#x cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx efer %#llx "
		"idt %#llx/%u gdt %#llx/%u, mp_state %u, interrupt injected %u "
		"(vector %u), shadow %u, nmi pending %u; LAPIC", vcpu->id,
		(unsigned long long)regs.rip, (unsigned long long)regs.rsp,
		(unsigned long long)regs.rflags, sregs.cs.selector,
		(unsigned long long)sregs.cr0, (unsigned long long)sregs.cr2,
		(unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
		(unsigned long long)sregs.efer,
		(unsigned long long)sregs.idt.base, sregs.idt.limit,
		(unsigned long long)sregs.gdt.base, sregs.gdt.limit,
		mp.mp_state, ev.interrupt.injected, ev.interrupt.nr,
		ev.interrupt.shadow, ev.nmi.pending);
	lapic_vectors(f, "IRR", &lapic, 0x200);
	lapic_vectors(f, ", ISR", &lapic, 0x100);
	fprintf(f, "\n");
	/* A page table root outside guest RAM cannot be the guest's: seen
	 * in the lab, whose emulation of SVM handed KVM the host's own
	 * registers as a guest's (docs/ARCHITECTURE.md, "The lab"). */
	foreign = (sregs.cr0 & (1u << 31)) &&
		  !fb_gpa_ptr(&vcpu->vm->mem, sregs.cr3 & ~0xfffull, 4096);
	if (seen)
		*seen = (struct fb_vcpu_seen){ .foreign = foreign,
					       .rip = regs.rip };
	if (foreign)
		fprintf(f, "forkbox debug: vCPU %u: cr3 %#llx is outside guest "
			"RAM: this state is not one the guest made\n",
			vcpu->id, (unsigned long long)sregs.cr3);
	/* What it runs and what called it (long mode only). */
	if (sregs.efer & (1u << 10)) {
		guest_bytes(f, &vcpu->vm->mem, sregs.cr3, "code", regs.rip - 16,
			    48);
		for (unsigned i = 0; i < 4; i++)
			guest_bytes(f, &vcpu->vm->mem, sregs.cr3, "stack",
				    regs.rsp + 64ull * i, 64);
	}
}

/* Each vCPU's thread logs its own state (vCPU ioctls wait for KVM_RUN
 * to end, and only a kick ends it); a thread that does not answer
 * within a second is not in KVM_RUN: parked, or stuck in the VMM. */
static void ask_vcpus(struct fb_vm *vm, FILE *f)
{
	struct timespec deadline;

	pthread_mutex_lock(&vm->lock);
	fprintf(f, "forkbox debug: pause_requested %u, %u of %u vCPUs parked, "
		"pause depth %u, exit reason %d\n", vm->pause_requested,
		vm->nr_parked, vm->nr_vcpus, vm->pause_depth,
		(int)vm->exit_reason);
	pthread_mutex_unlock(&vm->lock);
	fflush(f);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct fb_vcpu *vcpu = &vm->vcpus[i];
		const struct kvm_run *run = vcpu->run;
		bool answered;

		if (run)
			fprintf(f, "forkbox debug: vCPU %u: last exit to the VMM "
				"%u, if_flag %u, ready_for_interrupt_injection "
				"%u\n", i, run->exit_reason, run->if_flag,
				run->ready_for_interrupt_injection);
		fflush(f);
		if (!vcpu->started)
			continue;
		pthread_mutex_lock(&vm->lock);
		vcpu->seen = (struct fb_vcpu_seen){ 0 };
		pthread_mutex_unlock(&vm->lock);
		__atomic_store_n(&vcpu->debug_requested, true, __ATOMIC_RELEASE);
		fb_vcpu_kick(vcpu);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		pthread_mutex_lock(&vm->lock);
		while (__atomic_load_n(&vcpu->debug_requested, __ATOMIC_ACQUIRE) &&
		       pthread_cond_timedwait(&vm->pause_cond, &vm->lock,
					      &deadline) != ETIMEDOUT)
			;
		answered = !__atomic_load_n(&vcpu->debug_requested,
					    __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&vm->lock);
		if (!answered)
			fprintf(f, "forkbox debug: vCPU %u did not answer within "
				"1 s: its thread is not in KVM_RUN\n", i);
	}
}

void fb_vm_debug(struct fb_vm *vm, FILE *f)
{
	ask_vcpus(vm, f);
	dump_ioapic(vm, f);
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		fb_virtio_debug(vm->virtio[i], f);
	fflush(f);
}

bool fb_vm_foreign_state(struct fb_vm *vm, uint64_t *rip)
{
	bool found = false;

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus && !found; i++) {
		found = vm->vcpus[i].seen.foreign;
		*rip = vm->vcpus[i].seen.rip;
	}
	pthread_mutex_unlock(&vm->lock);
	return found;
}
