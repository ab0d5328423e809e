#include <errno.h>
#include <string.h>

#include "devices/serial.h"

#define REG_DATA 0   /* RBR / THR, or DLL with DLAB */
#define REG_IER 1    /* or DLM with DLAB */
#define REG_IIR 2    /* read; FCR on write */
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RCVR 0x02
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void fb_serial_init(struct fb_serial *s, unsigned irq, fb_serial_sink sink,
		    void *sink_opaque, fb_serial_irq set_irq, void *irq_opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->irq = irq;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->mcr = MCR_OUT2;
	s->dll = 12; /* 9600 baud, for a guest that reads it back */
	s->sink = sink;
	s->sink_opaque = sink_opaque;
	s->set_irq = set_irq;
	s->irq_opaque = irq_opaque;
}

void fb_serial_release(struct fb_serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* The interrupt being signalled, highest priority first. */
static uint8_t pending_iir(const struct fb_serial *s)
{
	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_irq_pending)
		return IIR_THRI;
	return IIR_NO_INT;
}

static void update_irq(struct fb_serial *s)
{
	int level = pending_iir(s) != IIR_NO_INT;

	if (level != s->irq_level && s->set_irq) {
		s->irq_level = level;
		s->set_irq(s->irq_opaque, s->irq, level);
	}
}

static bool rx_push(struct fb_serial *s, uint8_t v)
{
	if (s->rx_count == FB_SERIAL_RX_FIFO)
		return false;
	s->rx[(s->rx_head + s->rx_count) % FB_SERIAL_RX_FIFO] = v;
	s->rx_count++;
	return true;
}

static uint8_t loopback_msr(uint8_t mcr)
{
	return (uint8_t)(((mcr & MCR_RTS) ? MSR_CTS : 0) |
			 ((mcr & MCR_DTR) ? MSR_DSR : 0) |
			 ((mcr & MCR_OUT1) ? MSR_RI : 0) |
			 ((mcr & MCR_OUT2) ? MSR_DCD : 0));
}

static uint8_t read_reg(struct fb_serial *s, unsigned reg)
{
	uint8_t v, iir;

	switch (reg) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % FB_SERIAL_RX_FIFO;
		s->rx_count--;
		return v;
	case REG_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case REG_IIR:
		iir = pending_iir(s);
		/* Reading IIR acknowledges a THRE interrupt. */
		if (iir == IIR_THRI)
			s->thr_irq_pending = false;
		if (s->fcr & FCR_ENABLE_FIFO)
			iir |= IIR_FIFO_ENABLED;
		return iir;
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		return (uint8_t)(s->lsr | (s->rx_count ? LSR_DR : 0));
	case REG_MSR:
		return (s->mcr & MCR_LOOP) ? loopback_msr(s->mcr) : s->msr;
	default:
		return s->scr;
	}
}

static void write_reg(struct fb_serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		if (s->mcr & MCR_LOOP)
			rx_push(s, v);
		else if (s->sink)
			s->sink(s->sink_opaque, v);
		s->thr_irq_pending = true;
		return;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling THRI while the transmitter is empty raises it. */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thr_irq_pending = true;
		s->ier = v & 0x0f;
		return;
	case REG_IIR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RCVR)
			s->rx_count = 0;
		return;
	case REG_LCR:
		s->lcr = v;
		return;
	case REG_MCR:
		s->mcr = v & 0x1f;
		return;
	case REG_SCR:
		s->scr = v;
		return;
	default: /* LSR and MSR are read-only */
		return;
	}
}

static void serial_read(void *dev, uint64_t offset, uint8_t *data,
			unsigned len)
{
	struct fb_serial *s = dev;

	memset(data, 0xff, len);
	if (offset > REG_SCR)
		return;
	pthread_mutex_lock(&s->lock);
	data[0] = read_reg(s, (unsigned)offset);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *dev, uint64_t offset, const uint8_t *data,
			 unsigned len)
{
	struct fb_serial *s = dev;

	if (offset > REG_SCR)
		return;
	pthread_mutex_lock(&s->lock);
	write_reg(s, (unsigned)offset, data[0]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

const struct fb_io_ops fb_serial_ops = {
	.read = serial_read,
	.write = serial_write,
};

size_t fb_serial_input(struct fb_serial *s, const uint8_t *data, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && rx_push(s, data[n]))
		n++;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void fb_serial_save(struct fb_serial *s, struct fb_serial_state *st)
{
	pthread_mutex_lock(&s->lock);
	*st = (struct fb_serial_state){
		.ier = s->ier, .lcr = s->lcr, .mcr = s->mcr, .lsr = s->lsr,
		.msr = s->msr, .scr = s->scr, .dll = s->dll, .dlm = s->dlm,
		.fcr = s->fcr, .thr_irq_pending = s->thr_irq_pending,
		.rx_head = s->rx_head, .rx_count = s->rx_count,
		.irq_level = s->irq_level,
	};
	memcpy(st->rx, s->rx, sizeof(st->rx));
	pthread_mutex_unlock(&s->lock);
}

int fb_serial_restore(struct fb_serial *s, const struct fb_serial_state *st)
{
	if (st->rx_head >= FB_SERIAL_RX_FIFO || st->rx_count > FB_SERIAL_RX_FIFO)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->lsr = st->lsr;
	s->msr = st->msr;
	s->scr = st->scr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->fcr = st->fcr;
	s->thr_irq_pending = st->thr_irq_pending;
	memcpy(s->rx, st->rx, sizeof(s->rx));
	s->rx_head = st->rx_head;
	s->rx_count = st->rx_count;
	/* The irqchip's state comes back separately; recompute ours. */
	s->irq_level = 0;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
