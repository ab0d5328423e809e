/* libforkbox: the public C API. The forkbox CLI is a thin layer over it,
 * and a daemon or an SDK binding can use it the same way.
 *
 * Functions return 0 or a negative errno; on failure fb_last_error()
 * (per thread) holds a one-line message naming the failing call or the
 * bad input. */
#ifndef FORKBOX_FORKBOX_H
#define FORKBOX_FORKBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

const char *fb_last_error(void);

/* ---- Host ---------------------------------------------------------- */

/* 0 if this host's KVM can run an unmodified Linux guest (hardware VMX or
 * SVM); else -ENODEV (no usable /dev/kvm) or -ENOTSUP (KVM-PVM or no
 * hardware virtualization), with the reason and the way out in
 * fb_last_error(). */
int fb_host_check(void);

/* ---- Virtual machines ---------------------------------------------- */

enum fb_vm_exit_reason {
	FB_VM_RUNNING = 0,
	FB_VM_EXIT_POWEROFF,
	FB_VM_EXIT_REBOOT,
	FB_VM_EXIT_PANIC,   /* the guest kernel panicked */
	FB_VM_EXIT_CRASH,   /* KVM could not go on: triple fault is REBOOT,
			       this is an internal or entry failure */
	FB_VM_EXIT_TIMEOUT, /* the caller's deadline passed */
	FB_VM_EXIT_STOPPED, /* the caller stopped it */
};

/* A byte the guest wrote to the second UART (the run channel). */
typedef void (*fb_channel_fn)(void *opaque, uint8_t byte);

struct fb_vm_config {
	unsigned cpus;         /* 1..255 */
	uint64_t mem_mib;
	const char *kernel;    /* bzImage, or ELF vmlinux with a PVH
				* entry (told apart by magic) */
	const char *initrd;    /* may be NULL */
	const char *cmdline;
	int console_log_fd;    /* the guest console (COM1) goes here, or -1 */
	int console_live_fd;   /* and here too, or -1 */
	fb_channel_fn channel; /* COM2's bytes, or NULL */
	void *channel_opaque;
	unsigned timeout_ms;   /* 0: none */
	bool rng;              /* a virtio-rng device */
	const char *vsock_uds; /* a virtio-vsock device, its host socket */
	uint64_t vsock_cid;    /* the guest's CID (>= 3) */
	bool balloon;          /* a virtio-balloon device (free page
				* reporting, stats; src/devices/virtio/
				* balloon.h) */
	/* virtio-blk disks (src/disk/disk.h), the guest's vda, vdb, ... in
	 * this order. fb_vm_create takes them, also when it fails. */
	struct fb_disk *const *disks;
	unsigned nr_disks;     /* <= FB_VM_MAX_DISKS */
	/* Restoring a snapshot: guest memory already holds the snapshot's
	 * RAM (mem_mib of it, handed over); no kernel is loaded. */
	uint8_t *restore_mem;
	/* Guest RAM mergeable by KSM (--ksm; src/host/ksm.h). A kernel
	 * without KSM gets a notice on stderr, not a failure. */
	bool ksm;
};

struct fb_vm;
struct fb_disk;
#define FB_VM_MAX_DISKS 8

struct fb_vm_exit {
	enum fb_vm_exit_reason reason;
	char message[256];
};

int fb_vm_create(const struct fb_vm_config *cfg, struct fb_vm **out);
/* Runs until the guest or the caller ends it; fills exit. */
int fb_vm_run(struct fb_vm *vm, struct fb_vm_exit *exit);
/* Parks every vCPU outside KVM_RUN (half-done port I/O completed) and
 * quiesces the devices' threads, so that state can be read; returns when
 * all are parked, or an error if the VM has stopped. */
int fb_vm_pause(struct fb_vm *vm);
void fb_vm_resume(struct fb_vm *vm);
/* Ends a running VM from any thread. */
void fb_vm_stop(struct fb_vm *vm);
void fb_vm_destroy(struct fb_vm *vm);

const char *fb_vm_exit_reason_name(enum fb_vm_exit_reason reason);

/* ---- Running a command in a fresh box -------------------------------- */

struct fb_run_config {
	unsigned cpus;
	uint64_t mem_mib;
	const char *kernel;      /* NULL: the default guest kernel */
	const char *initrd;      /* NULL: forkbox's initramfs */
	const char *console_log; /* NULL: none */
	int console_live_fd;     /* -1: none */
	unsigned timeout_ms;
	const char *const *argv; /* the command */
	int stdout_fd;
	int stderr_fd;
};

struct fb_run_result {
	int exit_status;          /* the command's, docker style */
	struct fb_vm_exit vm_exit;
	double boot_to_init_ms;   /* VMM start to the guest's PID 1 */
	double total_ms;
};

/* Boots a box, runs argv, relays its output and fills result. Returns a
 * negative errno when forkbox itself fails or the guest never reports the
 * command's status (result->vm_exit then says why). */
int fb_run(const struct fb_run_config *cfg, struct fb_run_result *result);

/* Default paths: $FORKBOX_HOME (default ~/.local/share/forkbox), the guest
 * kernel ($FORKBOX_KERNEL, else $FORKBOX_HOME/kernels/default/vmlinux
 * where `forkbox kernel extract` made it, else vmlinuz there), the
 * initramfs next to the forkbox binary or in $FORKBOX_HOME. Each writes
 * into buf. */
int fb_home_dir(char *buf, size_t len);
int fb_default_kernel(char *buf, size_t len);
int fb_default_initrd(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
