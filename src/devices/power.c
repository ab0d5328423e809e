#include <string.h>

#include "arch/x86/layout.h"
#include "devices/power.h"
#include "vmm/vm.h"

#define SLP_EN 0x20
#define SLP_TYP(v) (((v) >> 2) & 0x7)
#define I8042_CMD_RESET 0xfe

/* Offsets from FB_PORT_ACPI_SLEEP_CTL. */
#define OFF_SLEEP_CTL 0
#define OFF_SLEEP_STS 1
#define OFF_RESET 2

static void acpi_read(void *dev, uint64_t offset, uint8_t *data, unsigned len)
{
	/* Sleep status: never "woken"; the VM is gone before anyone asks. */
	memset(data, 0, len);
}

static void acpi_write(void *dev, uint64_t offset, const uint8_t *data,
		       unsigned len)
{
	struct fb_power *p = dev;

	if (offset == OFF_SLEEP_CTL && (data[0] & SLP_EN) &&
	    SLP_TYP(data[0]) == FB_ACPI_S5_TYPE)
		fb_vm_request_stop(p->vm, FB_VM_EXIT_POWEROFF,
				   "guest powered off");
	else if (offset == OFF_RESET && data[0] == FB_ACPI_RESET_VALUE)
		fb_vm_request_stop(p->vm, FB_VM_EXIT_REBOOT,
				   "guest rebooted (ACPI reset)");
}

static void i8042_read(void *dev, uint64_t offset, uint8_t *data, unsigned len)
{
	/* Status: input buffer empty, so a reset command is never held up. */
	memset(data, 0, len);
}

static void i8042_write(void *dev, uint64_t offset, const uint8_t *data,
			unsigned len)
{
	struct fb_power *p = dev;

	if (data[0] == I8042_CMD_RESET)
		fb_vm_request_stop(p->vm, FB_VM_EXIT_REBOOT,
				   "guest rebooted (i8042 reset)");
}

const struct fb_io_ops fb_power_acpi_ops = {
	.read = acpi_read,
	.write = acpi_write,
};

const struct fb_io_ops fb_power_i8042_ops = {
	.read = i8042_read,
	.write = i8042_write,
};
