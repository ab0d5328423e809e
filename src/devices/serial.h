/* A 16550A UART: enough of it for Linux's 8250 driver to find it, use its
 * FIFO and run on THRE and receive interrupts. Transmission is instant:
 * each byte goes to the sink as the guest writes it. */
#ifndef FB_DEVICES_SERIAL_H
#define FB_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"

/* Where transmitted bytes go; called with the UART's lock held. */
typedef void (*fb_serial_sink)(void *opaque, uint8_t byte);
/* How the UART drives its interrupt line. */
typedef void (*fb_serial_irq)(void *opaque, unsigned irq, int level);

#define FB_SERIAL_RX_FIFO 64

struct fb_serial {
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_irq_pending;
	uint8_t rx[FB_SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
	int irq_level;
	unsigned irq;
	fb_serial_sink sink;
	void *sink_opaque;
	fb_serial_irq set_irq;
	void *irq_opaque;
};

extern const struct fb_io_ops fb_serial_ops;

/* The UART's plain-data state, for snapshots. */
struct fb_serial_state {
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t thr_irq_pending;
	uint8_t rx[FB_SERIAL_RX_FIFO];
	uint32_t rx_head, rx_count;
	int32_t irq_level;
};

void fb_serial_save(struct fb_serial *s, struct fb_serial_state *st);
/* Refuses a state whose FIFO indexes are out of range. */
int fb_serial_restore(struct fb_serial *s, const struct fb_serial_state *st);

void fb_serial_init(struct fb_serial *s, unsigned irq, fb_serial_sink sink,
		    void *sink_opaque, fb_serial_irq set_irq, void *irq_opaque);
void fb_serial_release(struct fb_serial *s);

/* Queues bytes the guest will read; returns how many fit. */
size_t fb_serial_input(struct fb_serial *s, const uint8_t *data, size_t len);

#endif
