/* A VM's state as snapshot sections (src/snapshot/format.h), and a VM
 * rebuilt from them. Memory is not here: the caller saves it with
 * src/snapshot/memory.h and hands the restored mapping to fb_vm_create
 * through fb_vm_config.restore. */
#ifndef FB_VMM_VM_SNAPSHOT_H
#define FB_VMM_VM_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot/format.h"
#include "vmm/vm.h"

#define FB_VM_SNAP_CONFIG_VERSION 1
#define FB_VM_SNAP_DEVICE_VERSION 1

/* What it takes to build a VM the snapshot's state fits: plain data. */
struct fb_vm_snap_config {
	uint32_t cpus;
	uint32_t rng;         /* bool */
	uint64_t mem_mib;
	uint32_t vsock;       /* bool */
	uint32_t nr_virtio;
	uint64_t vsock_cid;
	uint32_t virtio_ids[FB_VM_MAX_VIRTIO];
};

/* Adds the VM's config, vCPU, VM-wide and device sections to w. The VM
 * must be paused (fb_vm_pause). */
int fb_vm_snapshot_write(struct fb_vm *vm, struct fb_snap_writer *w);

/* Reads and checks the config section of a snapshot. */
int fb_vm_snapshot_config(const struct fb_snap *snap,
			  struct fb_vm_snap_config *cfg);

/* Restores the vCPU, VM-wide and device state of snap into vm, a VM
 * created with fb_vm_config.restore (its memory already the snapshot's),
 * before it runs. */
int fb_vm_snapshot_apply(struct fb_vm *vm, const struct fb_snap *snap);

#endif
