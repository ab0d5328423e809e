#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "vmm/bus.h"

static bool fb_bus_dispatch(struct fb_bus *bus, uint64_t addr, uint8_t *data,
			    unsigned len, bool is_write);

int fb_bus_register(struct fb_bus *bus, uint64_t base, uint64_t len,
		    const struct fb_io_ops *ops, void *dev)
{
	if (len == 0 || base + len < base)
		return fb_errorf(-EINVAL, "%s range 0x%llx+0x%llx is invalid",
				 bus->name, (unsigned long long)base,
				 (unsigned long long)len);
	for (int i = 0; i < bus->nr_ranges; i++) {
		struct fb_bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return fb_errorf(-EEXIST, "%s range 0x%llx+0x%llx "
					 "overlaps 0x%llx+0x%llx", bus->name,
					 (unsigned long long)base,
					 (unsigned long long)len,
					 (unsigned long long)r->base,
					 (unsigned long long)r->len);
	}
	if (bus->nr_ranges == FB_BUS_MAX_RANGES)
		return fb_errorf(-ENOSPC, "%s bus is full", bus->name);
	bus->ranges[bus->nr_ranges++] =
		(struct fb_bus_range){ base, len, ops, dev };
	return 0;
}

static void trace(const struct fb_bus *bus, uint64_t addr,
		  const uint8_t *data, unsigned len, bool is_write, bool claimed)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	fprintf(stderr, "forkbox: %s %s 0x%llx/%u = 0x%llx%s\n", bus->name,
		is_write ? "write" : "read", (unsigned long long)addr, len,
		(unsigned long long)v, claimed ? "" : " (unclaimed)");
}

bool fb_bus_access(struct fb_bus *bus, uint64_t addr, uint8_t *data,
		   unsigned len, bool is_write)
{
	bool claimed = fb_bus_dispatch(bus, addr, data, len, is_write);

	if (bus->trace)
		trace(bus, addr, data, len, is_write, claimed);
	return claimed;
}

static bool fb_bus_dispatch(struct fb_bus *bus, uint64_t addr, uint8_t *data,
			    unsigned len, bool is_write)
{
	for (int i = 0; i < bus->nr_ranges; i++) {
		struct fb_bus_range *r = &bus->ranges[i];

		/* The whole access must fall inside the range. */
		if (addr < r->base || addr - r->base >= r->len ||
		    len > r->len - (addr - r->base))
			continue;
		if (is_write) {
			if (r->ops->write)
				r->ops->write(r->dev, addr - r->base, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->dev, addr - r->base, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
