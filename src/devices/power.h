/* Power and reset: the ACPI hardware-reduced sleep control register (S5 is
 * power-off), the FADT reset register, and the i8042 reset command (0xfe
 * to port 0x64) that Linux also tries. Each ends the VM with its reason. */
#ifndef FB_DEVICES_POWER_H
#define FB_DEVICES_POWER_H

#include "vmm/bus.h"

struct fb_vm;

struct fb_power {
	struct fb_vm *vm;
};

extern const struct fb_io_ops fb_power_acpi_ops; /* sleep ctl/sts, reset */
extern const struct fb_io_ops fb_power_i8042_ops; /* port 0x64 */

#endif
