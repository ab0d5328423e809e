/* A KVM virtual machine: guest memory, vCPU threads, the port and MMIO
 * buses, the in-kernel irqchip and PIT, and the platform devices (two
 * UARTs, ACPI power and reset). fb_vm_run() blocks until the guest powers
 * off, reboots, panics or crashes, or the caller stops it. */
#ifndef FB_VMM_VM_H
#define FB_VMM_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/power.h"
#include "devices/serial.h"
#include "forkbox/forkbox.h"
#include "vmm/bus.h"
#include "vmm/guest_mem.h"

/* What a vCPU's debug dump found. foreign: paging on with cr3 outside
 * guest RAM, a state the guest cannot have made (the lab's fault, in
 * docs/ARCHITECTURE.md "The lab"); rip: where the vCPU was. */
struct fb_vcpu_seen {
	bool foreign;
	uint64_t rip;
};

struct fb_vcpu {
	struct fb_vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	bool entered; /* has been in KVM_RUN (its own thread's flag) */
	/* fb_vm_debug asks the vCPU's thread to log its registers and
	 * pending events (atomic; cleared under vm->lock once done). */
	bool debug_requested;
	/* What that answer found (under vm->lock): fb_vm_foreign_state. */
	struct fb_vcpu_seen seen;
};

struct fb_console {
	int log_fd;  /* the box's console log, or -1 */
	int live_fd; /* a terminal or pipe to copy it to, or -1 */
	char line[512];
	unsigned line_len;
	bool panic_seen;
	char panic_line[160];
};

#define FB_VM_MAX_VIRTIO 16

struct fb_virtio_device;
struct fb_blk;
struct fb_balloon;

struct fb_vm {
	struct fb_vm_config cfg;
	int kvm_fd;
	int vm_fd;
	struct fb_guest_mem mem;
	struct fb_bus pio;
	struct fb_bus mmio;
	struct fb_vcpu *vcpus;
	unsigned nr_vcpus;
	size_t run_size;

	struct fb_console console;
	struct fb_serial com1;
	struct fb_serial com2;
	struct fb_power power;
	struct fb_virtio_device *virtio[FB_VM_MAX_VIRTIO];
	unsigned nr_virtio;
	/* Disks not yet handed to their device (closed by fb_vm_destroy),
	 * and the devices that took them. */
	struct fb_disk *disks[FB_VM_MAX_DISKS];
	struct fb_blk *blk[FB_VM_MAX_DISKS];
	unsigned nr_blk;
	struct fb_balloon *balloon; /* cfg.balloon's device, or NULL */

	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t stopped_cond;
	enum fb_vm_exit_reason exit_reason;
	/* Pausing: vCPU threads park outside KVM_RUN while pause_requested,
	 * counting themselves in nr_parked; pause_cond wakes both sides. */
	bool pause_requested;
	unsigned nr_parked;
	/* Pauses in force: a user's pause and a fork's or snapshot's own
	 * nest, and only the last resume lets the VM run (a second quiesce
	 * of a paused device would deadlock on its own lock). Touched by
	 * the control thread only. */
	unsigned pause_depth;
	pthread_cond_t pause_cond;
	char exit_message[256];
	/* CLOCK_MONOTONIC ns when vCPU 0 first entered KVM_RUN, 0 before:
	 * the start of the guest's boot in the box's trace. Atomic. */
	uint64_t first_run_ns;
};

/* Dirty pages since the last call, for diff snapshots: KVM's dirty log
 * (turned on by fb_vm_dirty_start) and the VMM's own writes, as one bit
 * per 4 KiB page of the guest memory's host mapping. */
int fb_vm_dirty_start(struct fb_vm *vm);
int fb_vm_dirty_fetch(struct fb_vm *vm, uint64_t *bitmap);

/* Writes the pause state, the IOAPIC pins of the virtio devices and
 * every virtio device's transport and queue state to f, and has each
 * vCPU's thread write its state to stderr (the VMM's log; up to a
 * second each) (vm_debug.c). Any thread but a vCPU's, while the VM
 * runs. */
void fb_vm_debug(struct fb_vm *vm, FILE *f);
/* After fb_vm_debug: whether a vCPU's state was one the guest cannot
 * have made, and that vCPU's rip. */
bool fb_vm_foreign_state(struct fb_vm *vm, uint64_t *rip);

/* Drives a GSI line of the in-kernel irqchip. */
void fb_vm_irq_line(struct fb_vm *vm, unsigned gsi, int level);

/* Asks the VM to stop for reason; the first reason wins. Any thread. */
void fb_vm_request_stop(struct fb_vm *vm, enum fb_vm_exit_reason reason,
			const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Whether the VM has ended (a stop was asked, or the guest ended it),
 * and if so how, into why. Any thread. */
bool fb_vm_ended(struct fb_vm *vm, char *why, size_t len);

/* vCPU threads (vcpu.c). The kick signal is blocked but inside KVM_RUN. */
#define FB_SIG_KICK (SIGRTMIN + 1)
int fb_vcpu_create(struct fb_vm *vm, unsigned id);
void *fb_vcpu_thread(void *arg);
void fb_vcpu_kick(struct fb_vcpu *vcpu);
/* On the vCPU's own thread (or any, while none runs it): its registers,
 * events, LAPIC IRR/ISR bits and the code at rip and top of its stack
 * to f (vm_debug.c); what it found into *seen, if not NULL. */
void fb_vcpu_debug(struct fb_vcpu *vcpu, FILE *f,
		   struct fb_vcpu_seen *seen);
int fb_vcpu_signal_setup(void);
/* vm->first_run_ns, from any thread. */
uint64_t fb_vm_first_run_ns(struct fb_vm *vm);

#endif
