#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/vcpu_state.h"
#include "arch/x86/vm_state.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/vsock.h"
#include "util/error.h"
#include "vmm/vm_snapshot.h"

/* Device sections, in this order: COM1, COM2, then each virtio device. */
enum { DEV_COM1, DEV_COM2, DEV_VIRTIO0 };

int fb_vm_snapshot_write(struct fb_vm *vm, struct fb_snap_writer *w)
{
	struct fb_vm_snap_config cfg = {
		.cpus = vm->nr_vcpus, .rng = vm->cfg.rng,
		.mem_mib = vm->cfg.mem_mib, .vsock = vm->cfg.vsock_uds != NULL,
		.nr_virtio = vm->nr_virtio, .vsock_cid = vm->cfg.vsock_cid,
	};
	struct fb_x86_vcpu_state *vst;
	struct fb_x86_vm_state vmst;
	struct fb_serial_state ser;
	struct fb_virtio_state vio;
	int err;

	for (unsigned i = 0; i < vm->nr_virtio; i++)
		cfg.virtio_ids[i] = vm->virtio[i]->ops->device_id;
	err = fb_snap_writer_add(w, FB_SNAP_SEC_VM_CONFIG,
				 FB_VM_SNAP_CONFIG_VERSION, &cfg, sizeof(cfg));
	if (err < 0)
		return err;
	vst = malloc(sizeof(*vst));
	if (!vst)
		return fb_errorf(-ENOMEM, "malloc for vCPU state");
	/* Devices were quiesced with the vCPUs: nothing runs that could
	 * change the state between these reads. */
	for (unsigned i = 0; i < vm->nr_vcpus && !err; i++) {
		err = fb_x86_vcpu_state_save(vm->kvm_fd, vm->vcpus[i].fd, vst);
		if (!err)
			err = fb_snap_writer_add(w, FB_SNAP_SEC_VCPU,
						 FB_X86_VCPU_STATE_VERSION,
						 vst, sizeof(*vst));
	}
	free(vst);
	if (!err)
		err = fb_x86_vm_state_save(vm->kvm_fd, vm->vm_fd, &vmst);
	if (!err)
		err = fb_snap_writer_add(w, FB_SNAP_SEC_VM_STATE,
					 FB_X86_VM_STATE_VERSION, &vmst,
					 sizeof(vmst));
	fb_serial_save(&vm->com1, &ser);
	if (!err)
		err = fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE,
					 FB_VM_SNAP_DEVICE_VERSION, &ser,
					 sizeof(ser));
	fb_serial_save(&vm->com2, &ser);
	if (!err)
		err = fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE,
					 FB_VM_SNAP_DEVICE_VERSION, &ser,
					 sizeof(ser));
	for (unsigned i = 0; i < vm->nr_virtio && !err; i++) {
		fb_virtio_save(vm->virtio[i], &vio);
		err = fb_snap_writer_add(w, FB_SNAP_SEC_DEVICE,
					 FB_VM_SNAP_DEVICE_VERSION, &vio,
					 sizeof(vio));
	}
	return err;
}

/* A section of exactly the expected version and size, or an error that
 * names it: a snapshot is input like any other. */
static int section(const struct fb_snap *snap, uint32_t type, uint32_t index,
		   uint32_t want_version, size_t want_len, const void **data)
{
	uint32_t version;
	uint64_t len;
	int err = fb_snap_section_at(snap, type, index, &version, data, &len);

	if (err < 0)
		return fb_errorf(-EINVAL, "snapshot has no section %u/%u", type,
				 index);
	if (version != want_version || len != want_len)
		return fb_errorf(-EINVAL, "snapshot section %u/%u has version "
				 "%u and %llu bytes; this forkbox reads "
				 "version %u of %zu bytes", type, index,
				 version, (unsigned long long)len,
				 want_version, want_len);
	return 0;
}

int fb_vm_snapshot_config(const struct fb_snap *snap,
			  struct fb_vm_snap_config *cfg)
{
	const void *data;
	int err = section(snap, FB_SNAP_SEC_VM_CONFIG, 0,
			  FB_VM_SNAP_CONFIG_VERSION, sizeof(*cfg), &data);

	if (err < 0)
		return err;
	memcpy(cfg, data, sizeof(*cfg));
	if (cfg->cpus < 1 || cfg->cpus > 255 || cfg->mem_mib < 16 ||
	    cfg->mem_mib > (1u << 20) || cfg->nr_virtio > FB_VM_MAX_VIRTIO)
		return fb_errorf(-EINVAL, "snapshot config is out of range "
				 "(%u vCPUs, %llu MiB, %u virtio devices)",
				 cfg->cpus, (unsigned long long)cfg->mem_mib,
				 cfg->nr_virtio);
	return 0;
}

int fb_vm_snapshot_apply(struct fb_vm *vm, const struct fb_snap *snap)
{
	const struct fb_x86_vcpu_state *vst;
	const struct fb_x86_vm_state *vmst;
	const struct fb_serial_state *ser;
	const struct fb_virtio_state *vio;
	const void *data;
	int err = 0;

	/* Per vCPU first, then the VM-wide chips and clock, then devices
	 * (vcpu_state.c and vm_state.c say why, call by call). */
	for (unsigned i = 0; i < vm->nr_vcpus && !err; i++) {
		err = section(snap, FB_SNAP_SEC_VCPU, i,
			      FB_X86_VCPU_STATE_VERSION, sizeof(*vst), &data);
		vst = data;
		if (!err)
			err = fb_x86_vcpu_state_restore(vm->kvm_fd,
							vm->vcpus[i].fd, vst);
	}
	if (!err)
		err = section(snap, FB_SNAP_SEC_VM_STATE,
			      0, FB_X86_VM_STATE_VERSION, sizeof(*vmst),
			      &data);
	vmst = data;
	if (!err)
		err = fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, vmst,
					      FB_X86_CLOCK_CONTINUE);
	for (unsigned i = DEV_COM1; i <= DEV_COM2 && !err; i++) {
		err = section(snap, FB_SNAP_SEC_DEVICE, i,
			      FB_VM_SNAP_DEVICE_VERSION, sizeof(*ser), &data);
		ser = data;
		if (!err && fb_serial_restore(i == DEV_COM1 ? &vm->com1 :
					      &vm->com2, ser) < 0)
			err = fb_errorf(-EINVAL, "snapshot UART state is out "
					"of range");
	}
	for (unsigned i = 0; i < vm->nr_virtio && !err; i++) {
		err = section(snap, FB_SNAP_SEC_DEVICE, DEV_VIRTIO0 + i,
			      FB_VM_SNAP_DEVICE_VERSION, sizeof(*vio), &data);
		vio = data;
		if (!err)
			err = fb_virtio_restore(vm->virtio[i], vio);
		/* The host ends of the guest's vsock connections are gone:
		 * tell the guest (its listeners live on). Only if it had
		 * any: the reset can race the first new connection. */
		if (!err && vm->virtio[i]->ops->device_id == VIRTIO_ID_VSOCK)
			fb_vsock_restored(vm->virtio[i]->priv);
		if (!err && vm->virtio[i]->ops->device_id == VIRTIO_ID_VSOCK &&
		    (vio->device_flags & FB_VSOCK_STATE_HAD_CONNS))
			err = fb_vsock_transport_reset(vm->virtio[i]->priv);
	}
	return err;
}
