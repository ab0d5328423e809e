#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "arch/x86/kernel.h"
#include "arch/x86/layout.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "disk/disk.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "devices/virtio/virtio.h"
#include "host/ksm.h"
#include "util/error.h"
#include "util/file.h"
#include "vmm/vm.h"

#define KVM_API_EXPECTED 12
#define TSS_ADDR 0xfffbd000ull
#define IDENTITY_MAP_ADDR 0xfffbc000ull
#define PANIC_MARK "Kernel panic - not syncing"

const char *fb_vm_exit_reason_name(enum fb_vm_exit_reason reason)
{
	switch (reason) {
	case FB_VM_RUNNING: return "running";
	case FB_VM_EXIT_POWEROFF: return "poweroff";
	case FB_VM_EXIT_REBOOT: return "reboot";
	case FB_VM_EXIT_PANIC: return "panic";
	case FB_VM_EXIT_CRASH: return "crash";
	case FB_VM_EXIT_TIMEOUT: return "timeout";
	case FB_VM_EXIT_STOPPED: return "stopped";
	}
	return "unknown";
}

void fb_vm_request_stop(struct fb_vm *vm, enum fb_vm_exit_reason reason,
			const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->exit_reason == FB_VM_RUNNING) {
		/* panic=-1 makes a panicking kernel reset at once; the
		 * console told us first. */
		if (reason == FB_VM_EXIT_REBOOT &&
		    __atomic_load_n(&vm->console.panic_seen, __ATOMIC_ACQUIRE)) {
			reason = FB_VM_EXIT_PANIC;
			snprintf(vm->exit_message, sizeof(vm->exit_message),
				 "guest kernel panic: %s", vm->console.panic_line);
		} else {
			va_start(ap, fmt);
			vsnprintf(vm->exit_message, sizeof(vm->exit_message),
				  fmt, ap);
			va_end(ap);
		}
		__atomic_store_n(&vm->exit_reason, reason, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->stopped_cond);
		pthread_cond_broadcast(&vm->pause_cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

bool fb_vm_ended(struct fb_vm *vm, char *why, size_t len)
{
	bool ended;

	pthread_mutex_lock(&vm->lock);
	ended = vm->exit_reason != FB_VM_RUNNING;
	if (ended)
		snprintf(why, len, "%s: %s",
			 fb_vm_exit_reason_name(vm->exit_reason),
			 vm->exit_message);
	pthread_mutex_unlock(&vm->lock);
	return ended;
}

static void resume_now(struct fb_vm *vm);

int fb_vm_pause(struct fb_vm *vm)
{
	if (vm->pause_depth) {
		vm->pause_depth++;
		return 0;
	}
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->pause_requested, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		fb_vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_parked < vm->nr_vcpus &&
	       vm->exit_reason == FB_VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	if (vm->exit_reason != FB_VM_RUNNING) {
		resume_now(vm);
		return fb_errorf(-ESRCH, "the VM has stopped (%s)",
				 fb_vm_exit_reason_name(vm->exit_reason));
	}
	/* Then the devices' own threads. */
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		if (vm->virtio[i]->ops->quiesce)
			vm->virtio[i]->ops->quiesce(vm->virtio[i]);
	vm->pause_depth = 1;
	return 0;
}

void fb_vm_resume(struct fb_vm *vm)
{
	if (vm->pause_depth > 1) {
		vm->pause_depth--;
		return;
	}
	vm->pause_depth = 0;
	resume_now(vm);
}

static void resume_now(struct fb_vm *vm)
{
	if (__atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE) &&
	    vm->nr_parked == vm->nr_vcpus)
		for (unsigned i = 0; i < vm->nr_virtio; i++)
			if (vm->virtio[i]->ops->unquiesce)
				vm->virtio[i]->ops->unquiesce(vm->virtio[i]);
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);
}

void fb_vm_stop(struct fb_vm *vm)
{
	fb_vm_request_stop(vm, FB_VM_EXIT_STOPPED, "stopped by the host");
}

void fb_vm_irq_line(struct fb_vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		fb_vm_request_stop(vm, FB_VM_EXIT_CRASH, "KVM_IRQ_LINE %u: %s",
				   gsi, strerror(errno));
}

static void serial_irq(void *opaque, unsigned irq, int level)
{
	fb_vm_irq_line(opaque, irq, level);
}

static void console_flush(struct fb_console *c)
{
	if (!c->line_len)
		return;
	/* A full log or a closed terminal must not stop the guest. */
	if (c->log_fd >= 0)
		(void)fb_write_full(c->log_fd, c->line, c->line_len);
	if (c->live_fd >= 0)
		(void)fb_write_full(c->live_fd, c->line, c->line_len);
	c->line[c->line_len < sizeof(c->line) ? c->line_len :
		sizeof(c->line) - 1] = '\0';
	if (!c->panic_seen && strstr(c->line, PANIC_MARK)) {
		char *nl = strchr(c->line, '\n'), *cr = strchr(c->line, '\r');

		if (nl)
			*nl = '\0';
		if (cr)
			*cr = '\0';
		snprintf(c->panic_line, sizeof(c->panic_line), "%s",
			 strstr(c->line, PANIC_MARK));
		__atomic_store_n(&c->panic_seen, true, __ATOMIC_RELEASE);
	}
	c->line_len = 0;
}

/* Console bytes go out a line at a time (one write per line, not per
 * byte), and each line is checked for the kernel's panic message. */
static void console_sink(void *opaque, uint8_t byte)
{
	struct fb_console *c = opaque;

	c->line[c->line_len++] = (char)byte;
	if (byte == '\n' || c->line_len == sizeof(c->line) - 1)
		console_flush(c);
}

static void channel_sink(void *opaque, uint8_t byte)
{
	struct fb_vm *vm = opaque;

	if (vm->cfg.channel)
		vm->cfg.channel(vm->cfg.channel_opaque, byte);
}

static int setup_devices(struct fb_vm *vm)
{
	int err;

	vm->console.log_fd = vm->cfg.console_log_fd;
	vm->console.live_fd = vm->cfg.console_live_fd;
	fb_serial_init(&vm->com1, FB_IRQ_COM1, console_sink, &vm->console,
		       serial_irq, vm);
	fb_serial_init(&vm->com2, FB_IRQ_COM2, channel_sink, vm,
		       serial_irq, vm);
	vm->power.vm = vm;
	err = fb_bus_register(&vm->pio, FB_PORT_COM1, 8, &fb_serial_ops,
			      &vm->com1);
	if (!err)
		err = fb_bus_register(&vm->pio, FB_PORT_COM2, 8,
				      &fb_serial_ops, &vm->com2);
	if (!err)
		err = fb_bus_register(&vm->pio, FB_PORT_ACPI_SLEEP_CTL, 3,
				      &fb_power_acpi_ops, &vm->power);
	if (!err)
		err = fb_bus_register(&vm->pio, FB_PORT_I8042_CMD, 1,
				      &fb_power_i8042_ops, &vm->power);
	return err;
}

static int set_slots(struct fb_vm *vm, uint32_t flags)
{
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		struct fb_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = (uint32_t)i,
			.flags = flags,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->host,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return fb_errorf(-errno, "KVM_SET_USER_MEMORY_REGION "
					 "slot %d: %s", i, strerror(errno));
	}
	return 0;
}

int fb_vm_dirty_start(struct fb_vm *vm)
{
	int err = fb_guest_mem_track_start(&vm->mem);

	return err ? err : set_slots(vm, KVM_MEM_LOG_DIRTY_PAGES);
}

int fb_vm_dirty_fetch(struct fb_vm *vm, uint64_t *bitmap)
{
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		struct fb_mem_region *r = &vm->mem.regions[i];
		uint64_t pages = r->size / FB_PAGE_SIZE;
		uint64_t base = (uint64_t)(r->host - vm->mem.mapping) /
				FB_PAGE_SIZE;
		struct kvm_dirty_log log = { .slot = (uint32_t)i };
		uint64_t *slot_bits = calloc((pages + 63) / 64, 8);

		if (!slot_bits)
			return fb_errorf(-ENOMEM, "calloc for the dirty log");
		log.dirty_bitmap = slot_bits;
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			int err = -errno;

			free(slot_bits);
			return fb_errorf(err, "KVM_GET_DIRTY_LOG slot %d: %s",
					 i, strerror(-err));
		}
		for (uint64_t p = 0; p < pages; p++)
			if (slot_bits[p / 64] & (1ull << (p % 64)))
				bitmap[(base + p) / 64] |= 1ull <<
							   ((base + p) % 64);
		free(slot_bits);
	}
	fb_guest_mem_take_dirty(&vm->mem, bitmap);
	return 0;
}

/* --ksm, right after guest RAM is mapped and before the jail (whose
 * seccomp has no prctl). A restored box's RAM is its snapshot file mapped
 * MAP_PRIVATE (diffs over it), a fork child's the parent's sealed memfd
 * layers mapped MAP_PRIVATE: KSM scans private file mappings too, but it
 * merges only anonymous pages, i.e. the copies the guest wrote since; the
 * pages it only read already share the page cache. Merging is an
 * optimisation: a kernel without it costs a notice, never the box. */
static void setup_ksm(struct fb_vm *vm)
{
	int err;

	if (!vm->cfg.ksm)
		return;
	err = fb_ksm_mark_mergeable(vm->mem.mapping, vm->mem.mapping_size);
	if (err == -EINVAL || err == -ENOSYS)
		fprintf(stderr, "forkbox: --ksm: this kernel can merge no pages "
			"(%s); the box runs without\n", fb_last_error());
	else if (err < 0)
		fprintf(stderr, "forkbox: --ksm: %s; the box runs without\n",
			fb_last_error());
}

static int setup_memory(struct fb_vm *vm)
{
	int err = vm->cfg.restore_mem ?
		  fb_guest_mem_init_mapped(&vm->mem, vm->cfg.mem_mib << 20,
					   vm->cfg.restore_mem) :
		  fb_guest_mem_init(&vm->mem, vm->cfg.mem_mib << 20);

	if (!err)
		setup_ksm(vm);
	return err ? err : set_slots(vm, 0);
}

static int setup_irqchip(struct fb_vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	/* Intel needs these three pages below 4 GiB; elsewhere harmless. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0)
		return fb_errorf(-errno, "KVM_SET_TSS_ADDR: %s",
				 strerror(errno));
	{
		uint64_t id_map = IDENTITY_MAP_ADDR;

		(void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &id_map);
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fb_errorf(-errno, "KVM_CREATE_IRQCHIP: %s",
				 strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fb_errorf(-errno, "KVM_CREATE_PIT2: %s",
				 strerror(errno));
	return 0;
}

static int setup_virtio(struct fb_vm *vm)
{
	int err = 0;

	if (vm->cfg.rng)
		err = fb_virtio_rng_add(vm);
	if (!err && vm->cfg.vsock_uds) {
		struct fb_vsock_config vc = {
			.guest_cid = vm->cfg.vsock_cid,
			.uds_path = vm->cfg.vsock_uds,
		};
		struct fb_vsock *vsock;

		/* Freed with the other virtio devices (ops->destroy). */
		err = fb_vsock_create(vm, &vc, &vsock);
	}
	/* After vsock, before the disks: a snapshot's device order (its
	 * virtio ids) must come out the same when it is restored. */
	if (!err && vm->cfg.balloon)
		err = fb_balloon_create(vm, &vm->balloon);
	for (unsigned i = 0; !err && i < vm->cfg.nr_disks; i++) {
		struct fb_disk *disk = vm->disks[i];

		vm->disks[i] = NULL; /* the device's now, even if it fails */
		err = fb_blk_create(vm, disk, &vm->blk[vm->nr_blk]);
		if (!err)
			vm->nr_blk++;
	}
	return err;
}

static int setup_boot(struct fb_vm *vm)
{
	struct fb_acpi_virtio_dev virtio[FB_VM_MAX_VIRTIO];
	struct fb_acpi_config acpi = {
		.ncpus = vm->nr_vcpus, .virtio = virtio,
		.nr_virtio = vm->nr_virtio,
	};
	struct fb_acpi_layout layout;
	struct fb_linux_boot boot;
	struct fb_x86_start start;
	uint8_t *area;
	bool pvh;
	int err;

	for (unsigned i = 0; i < vm->nr_virtio; i++)
		virtio[i] = (struct fb_acpi_virtio_dev){
			vm->virtio[i]->mmio_base, FB_VIRTIO_MMIO_SIZE,
			vm->virtio[i]->gsi };
	area = fb_gpa_ptr(&vm->mem, FB_ACPI_ADDR, FB_ACPI_MAX);
	if (!area)
		return fb_errorf(-EFAULT, "ACPI area is not in guest RAM");
	err = fb_acpi_build(area, FB_ACPI_MAX, FB_ACPI_ADDR, &acpi, &layout);
	if (err < 0)
		return err;
	boot = (struct fb_linux_boot){
		.kernel_path = vm->cfg.kernel,
		.initrd_path = vm->cfg.initrd,
		.cmdline = vm->cfg.cmdline ? vm->cfg.cmdline : "",
		.rsdp_addr = layout.rsdp,
	};
	/* An ELF vmlinux boots through its PVH entry, a bzImage through
	 * the 64-bit boot protocol: the file's magic decides. */
	err = fb_x86_load_kernel(&vm->mem, &boot, &start);
	if (err < 0)
		return err;
	pvh = start.kind == FB_KERNEL_ELF_PVH;
	err = fb_x86_write_boot_tables(&vm->mem, pvh);
	if (err < 0)
		return err;
	if (pvh)
		return fb_x86_vcpu_set_pvh_regs(vm->vcpus[0].fd,
						(uint32_t)start.entry,
						(uint32_t)start.boot_info);
	return fb_x86_vcpu_set_boot_regs(vm->vcpus[0].fd, start.entry,
					 start.boot_info);
}

static int setup_vcpus(struct fb_vm *vm)
{
	struct kvm_cpuid2 *cpuid;
	int err;

	err = fb_x86_supported_cpuid(vm->kvm_fd, &cpuid);
	if (err < 0)
		return err;
	for (unsigned i = 0; i < vm->nr_vcpus && !err; i++) {
		err = fb_vcpu_create(vm, i);
		if (!err)
			err = fb_x86_vcpu_set_cpuid(vm->vcpus[i].fd, cpuid, i,
						    vm->nr_vcpus);
		if (!err)
			err = fb_x86_vcpu_set_boot_msrs(vm->vcpus[i].fd);
		if (!err)
			err = fb_x86_vcpu_set_lint(vm->vcpus[i].fd);
	}
	free(cpuid);
	return err;
}

static int open_kvm(struct fb_vm *vm)
{
	int version;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return fb_errorf(-errno, "open /dev/kvm: %s", strerror(errno));
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_EXPECTED)
		return fb_errorf(-ENOTSUP, "KVM API version %d, forkbox needs "
				 "%d", version, KVM_API_EXPECTED);
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->run_size <= 0)
		return fb_errorf(-errno, "KVM_GET_VCPU_MMAP_SIZE: %s",
				 strerror(errno));
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fb_errorf(-errno, "KVM_CREATE_VM: %s", strerror(errno));
	return 0;
}

static void close_disks(struct fb_disk *const *disks, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fb_disk_close(disks[i]);
}

int fb_vm_create(const struct fb_vm_config *cfg, struct fb_vm **out)
{
	struct fb_vm *vm;
	int err;

	if (cfg->cpus < 1 || cfg->cpus > 255)
		return fb_errorf(-EINVAL, "--cpus %u: must be 1..255",
				 cfg->cpus);
	if (!cfg->kernel && !cfg->restore_mem)
		return fb_errorf(-EINVAL, "no kernel given");
	if (cfg->nr_disks > FB_VM_MAX_DISKS) {
		close_disks(cfg->disks, cfg->nr_disks);
		return fb_errorf(-EINVAL, "%u disks; a box has at most %u",
				 cfg->nr_disks, FB_VM_MAX_DISKS);
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		close_disks(cfg->disks, cfg->nr_disks);
		return fb_errorf(-ENOMEM, "calloc for the VM");
	}
	vm->cfg = *cfg;
	for (unsigned i = 0; i < cfg->nr_disks; i++)
		vm->disks[i] = cfg->disks[i];
	vm->cfg.disks = NULL; /* the caller's array need not outlive this */
	vm->kvm_fd = vm->vm_fd = -1;
	vm->pio.name = "port I/O";
	vm->mmio.name = "MMIO";
	vm->pio.trace = vm->mmio.trace = getenv("FORKBOX_TRACE_IO") &&
					 !strcmp(getenv("FORKBOX_TRACE_IO"), "1");
	vm->nr_vcpus = cfg->cpus;
	pthread_mutex_init(&vm->lock, NULL);
	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&vm->stopped_cond, &attr);
		pthread_cond_init(&vm->pause_cond, NULL);
		pthread_condattr_destroy(&attr);
	}
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		err = fb_errorf(-ENOMEM, "calloc for %u vCPUs", vm->nr_vcpus);
		goto fail;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;
	/* Order matters: the irqchip before any vCPU, vCPUs before their
	 * registers are set in setup_boot. */
	err = open_kvm(vm);
	if (!err)
		err = setup_irqchip(vm);
	if (!err)
		err = setup_memory(vm);
	if (!err)
		err = setup_devices(vm);
	if (!err)
		err = setup_virtio(vm);
	if (!err)
		err = setup_vcpus(vm);
	/* A restore's memory and registers come from its snapshot. */
	if (!err && !cfg->restore_mem)
		err = setup_boot(vm);
	if (!err)
		err = fb_vcpu_signal_setup();
	if (err < 0)
		goto fail;
	*out = vm;
	return 0;
fail:
	fb_vm_destroy(vm);
	return err;
}

static void wait_for_stop(struct fb_vm *vm)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += vm->cfg.timeout_ms / 1000;
	deadline.tv_nsec += (long)(vm->cfg.timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&vm->lock);
	while (vm->exit_reason == FB_VM_RUNNING) {
		if (!vm->cfg.timeout_ms) {
			pthread_cond_wait(&vm->stopped_cond, &vm->lock);
		} else if (pthread_cond_timedwait(&vm->stopped_cond, &vm->lock,
						  &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&vm->lock);
			fb_vm_request_stop(vm, FB_VM_EXIT_TIMEOUT, "the box "
					   "ran past its %u ms deadline",
					   vm->cfg.timeout_ms);
			pthread_mutex_lock(&vm->lock);
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

int fb_vm_run(struct fb_vm *vm, struct fb_vm_exit *exit)
{
	sigset_t kick, old;
	int err = 0;

	/* vCPU threads inherit a mask with the kick blocked; KVM_RUN alone
	 * unblocks it. */
	sigemptyset(&kick);
	sigaddset(&kick, FB_SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &kick, &old);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		err = -pthread_create(&vm->vcpus[i].thread, NULL,
				      fb_vcpu_thread, &vm->vcpus[i]);
		if (err) {
			fb_vm_request_stop(vm, FB_VM_EXIT_CRASH,
					   "pthread_create for vCPU %u: %s", i,
					   strerror(-err));
			break;
		}
		vm->vcpus[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	wait_for_stop(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		fb_vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].started = false;
	}
	pthread_mutex_lock(&vm->com1.lock);
	console_flush(&vm->console);
	pthread_mutex_unlock(&vm->com1.lock);

	exit->reason = vm->exit_reason;
	snprintf(exit->message, sizeof(exit->message), "%s",
		 vm->exit_message);
	if (err < 0)
		return fb_errorf(err, "%s", vm->exit_message);
	return 0;
}

void fb_vm_destroy(struct fb_vm *vm)
{
	if (!vm)
		return;
	/* Devices first: their threads may still touch guest memory. */
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		fb_virtio_mmio_free(vm->virtio[i]);
	close_disks(vm->disks, FB_VM_MAX_DISKS);
	for (unsigned i = 0; vm->vcpus && i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	free(vm->vcpus);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	fb_guest_mem_release(&vm->mem);
	fb_serial_release(&vm->com1);
	fb_serial_release(&vm->com2);
	pthread_cond_destroy(&vm->stopped_cond);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
