/* Stand-ins for the VM that the fuzz targets never create: the virtio
 * transport (mmio.c) names these, but a device set up with
 * fb_virtio_device_init has no VM, so they are never called. If one ever
 * is, that is a harness bug: abort, loudly. */
#include <stdio.h>
#include <stdlib.h>

#include "vmm/bus.h"
#include "vmm/vm.h"

void fb_vm_request_stop(struct fb_vm *vm, enum fb_vm_exit_reason reason,
			const char *fmt, ...)
{
	fprintf(stderr, "fuzz stub: fb_vm_request_stop called\n");
	abort();
}

int fb_bus_register(struct fb_bus *bus, uint64_t base, uint64_t len,
		    const struct fb_io_ops *ops, void *dev)
{
	fprintf(stderr, "fuzz stub: fb_bus_register called\n");
	abort();
}
