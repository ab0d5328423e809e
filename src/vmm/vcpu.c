/* vCPU threads: one per vCPU, each looping on KVM_RUN and dispatching its
 * exits to the buses. A thread is kicked out of KVM_RUN with a signal that
 * is blocked everywhere but inside KVM_RUN (KVM_SET_SIGNAL_MASK), so a
 * kick that lands between two KVM_RUNs is not lost: it stays pending and
 * ends the next one at once. */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "util/error.h"
#include "vmm/vm.h"

static void kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

int fb_vcpu_signal_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(FB_SIG_KICK, &sa, NULL) < 0)
		return fb_errorf(-errno, "sigaction: %s", strerror(errno));
	return 0;
}

int fb_vcpu_create(struct fb_vm *vm, unsigned id)
{
	struct fb_vcpu *vcpu = &vm->vcpus[id];

	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return fb_errorf(-errno, "KVM_CREATE_VCPU %u: %s", id,
				 strerror(errno));
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return fb_errorf(-errno, "mmap of vCPU %u run area: %s", id,
				 strerror(errno));
	}
	return 0;
}

void fb_vcpu_kick(struct fb_vcpu *vcpu)
{
	if (vcpu->started)
		pthread_kill(vcpu->thread, FB_SIG_KICK);
}

static int set_run_signal_mask(struct fb_vcpu *vcpu)
{
	struct {
		struct kvm_signal_mask hdr;
		uint8_t set[8];
	} mask;
	sigset_t set;

	pthread_sigmask(SIG_BLOCK, NULL, &set);
	sigdelset(&set, FB_SIG_KICK);
	mask.hdr.len = sizeof(mask.set); /* the kernel's sigset: 64 bits */
	memcpy(mask.set, &set, sizeof(mask.set));
	if (ioctl(vcpu->fd, KVM_SET_SIGNAL_MASK, &mask) < 0)
		return fb_errorf(-errno, "KVM_SET_SIGNAL_MASK: %s",
				 strerror(errno));
	return 0;
}

/* A kick that ended KVM_RUN is still pending: KVM_RUN unblocks it only
 * while it runs and blocks it again before returning, so it is never
 * delivered. Left pending, it would end every later KVM_RUN at once.
 * Eat it (a zero timeout: never waits). */
static void eat_kicks(void)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, FB_SIG_KICK);
	while (sigtimedwait(&kick, NULL, &zero) > 0)
		;
}

static bool stopping(struct fb_vm *vm)
{
	return __atomic_load_n(&vm->exit_reason, __ATOMIC_ACQUIRE) !=
	       FB_VM_RUNNING;
}

static void handle_io(struct fb_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint64_t total = (uint64_t)run->io.size * run->io.count;

	/* The data area lies in the run page KVM gave us; still, trust
	 * nothing the exit says without checking it. */
	if (run->io.data_offset >= vcpu->vm->run_size ||
	    total > vcpu->vm->run_size - run->io.data_offset) {
		fb_vm_request_stop(vcpu->vm, FB_VM_EXIT_CRASH, "vCPU %u: port "
				   "I/O exit out of the run area", vcpu->id);
		return;
	}
	for (uint32_t i = 0; i < run->io.count; i++) {
		fb_bus_access(&vcpu->vm->pio, run->io.port, data,
			      run->io.size,
			      run->io.direction == KVM_EXIT_IO_OUT);
		data += run->io.size;
	}
}

/* A triple fault says nothing of why: where the vCPU was and what its
 * tables were, into the VMM's log, is what tells a guest bug from a
 * memory the host got wrong. On AMD, KVM has reset the vCPU by the time
 * it reports the shutdown: there the registers are reset values. */
static void log_triple_fault(struct fb_vcpu *vcpu)
{
	fprintf(stderr, "forkbox vmm: vCPU %u triple fault; its state:\n",
		vcpu->id);
	fb_vcpu_debug(vcpu, stderr, NULL);
}

static void handle_exit(struct fb_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct fb_vm *vm = vcpu->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		break;
	case KVM_EXIT_MMIO:
		if (run->mmio.len > sizeof(run->mmio.data))
			break;
		fb_bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data,
			      run->mmio.len, run->mmio.is_write);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: what a PC does on reset, and what Linux
		 * falls back to when every other reboot method failed. */
		log_triple_fault(vcpu);
		fb_vm_request_stop(vm, FB_VM_EXIT_REBOOT, "guest reset "
				   "(triple fault on vCPU %u)", vcpu->id);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			fb_vm_request_stop(vm, FB_VM_EXIT_POWEROFF,
					   "guest powered off");
		else if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			fb_vm_request_stop(vm, FB_VM_EXIT_REBOOT,
					   "guest rebooted");
		else
			fb_vm_request_stop(vm, FB_VM_EXIT_PANIC,
					   "guest crashed (system event %u)",
					   run->system_event.type);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "vCPU %u: KVM could "
				   "not enter the guest (hardware reason 0x%llx)",
				   vcpu->id, (unsigned long long)
				   run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "vCPU %u: KVM internal "
				   "error, suberror %u (an instruction KVM "
				   "cannot emulate?)", vcpu->id,
				   run->internal.suberror);
		break;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; nothing will wake it. */
		fb_vm_request_stop(vm, FB_VM_EXIT_POWEROFF, "guest halted "
				   "vCPU %u", vcpu->id);
		break;
	default:
		fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "vCPU %u: unhandled "
				   "KVM exit %u", vcpu->id, run->exit_reason);
		break;
	}
}

/* Completes a pending I/O instruction (KVM needs one more KVM_RUN for it:
 * immediate_exit makes that run return at once), then parks until resumed. */
static void park(struct fb_vcpu *vcpu)
{
	struct fb_vm *vm = vcpu->vm;

	vcpu->run->immediate_exit = 1;
	(void)ioctl(vcpu->fd, KVM_RUN, 0);
	vcpu->run->immediate_exit = 0;
	eat_kicks();
	pthread_mutex_lock(&vm->lock);
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->pause_requested && vm->exit_reason == FB_VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->lock);
	vm->nr_parked--;
	pthread_mutex_unlock(&vm->lock);
}

static void answer_debug(struct fb_vcpu *vcpu)
{
	struct fb_vcpu_seen seen;

	fb_vcpu_debug(vcpu, stderr, &seen);
	pthread_mutex_lock(&vcpu->vm->lock);
	vcpu->seen = seen;
	__atomic_store_n(&vcpu->debug_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vcpu->vm->pause_cond);
	pthread_mutex_unlock(&vcpu->vm->lock);
}

/* Once per vCPU: vCPU 0's first entry is when the guest starts to boot
 * (forkbox run --trace). */
static void note_first_run(struct fb_vcpu *vcpu)
{
	struct timespec t;

	vcpu->entered = true;
	if (vcpu->id != 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	__atomic_store_n(&vcpu->vm->first_run_ns,
			 (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec,
			 __ATOMIC_RELEASE);
}

uint64_t fb_vm_first_run_ns(struct fb_vm *vm)
{
	return __atomic_load_n(&vm->first_run_ns, __ATOMIC_ACQUIRE);
}

void *fb_vcpu_thread(void *arg)
{
	struct fb_vcpu *vcpu = arg;
	struct fb_vm *vm = vcpu->vm;

	if (set_run_signal_mask(vcpu) < 0) {
		fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "vCPU %u: %s",
				   vcpu->id, fb_last_error());
		return NULL;
	}
	while (!stopping(vm)) {
		if (__atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE)) {
			park(vcpu);
			continue;
		}
		if (!vcpu->entered)
			note_first_run(vcpu);
		if (__atomic_load_n(&vcpu->debug_requested, __ATOMIC_ACQUIRE))
			answer_debug(vcpu);
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				eat_kicks();
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "vCPU %u: "
					   "KVM_RUN: %s", vcpu->id,
					   strerror(errno));
			break;
		}
		handle_exit(vcpu);
	}
	return NULL;
}
