/* Port I/O and MMIO dispatch. A device registers a range with an ops
 * struct before the vCPUs start; lookups then need no lock, and each device
 * locks its own state. Accesses nobody claims read as all ones and writes
 * vanish, as on real hardware with nothing at that address. */
#ifndef FB_VMM_BUS_H
#define FB_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct fb_io_ops {
	/* offset is relative to the registered base; len is 1, 2, 4 or 8. */
	void (*read)(void *dev, uint64_t offset, uint8_t *data, unsigned len);
	void (*write)(void *dev, uint64_t offset, const uint8_t *data,
		      unsigned len);
};

#define FB_BUS_MAX_RANGES 32

struct fb_bus_range {
	uint64_t base;
	uint64_t len;
	const struct fb_io_ops *ops;
	void *dev;
};

struct fb_bus {
	const char *name; /* "pio" or "mmio", for messages */
	struct fb_bus_range ranges[FB_BUS_MAX_RANGES];
	int nr_ranges;
	bool trace; /* log every access to stderr (FORKBOX_TRACE_IO=1) */
};

int fb_bus_register(struct fb_bus *bus, uint64_t base, uint64_t len,
		    const struct fb_io_ops *ops, void *dev);

/* Returns false when no device claims the access (reads get all ones). */
bool fb_bus_access(struct fb_bus *bus, uint64_t addr, uint8_t *data,
		   unsigned len, bool is_write);

#endif
