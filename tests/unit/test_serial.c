/* The 16550A UART as the guest sees it through fb_serial_ops: registers,
 * DLAB, loopback as Linux's 8250 autoconfig probes it, the THRE and
 * receive interrupts and the receive FIFO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/serial.h"

#define IRQ 4

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct rig {
	struct fb_serial s;
	uint8_t out[256];
	unsigned nout;
	int levels[64]; /* each set_irq call's level */
	unsigned nirq;
	unsigned bad_irq; /* calls with another irq number */
};

static void sink(void *opaque, uint8_t byte)
{
	struct rig *r = opaque;

	assert_true(r->nout < sizeof(r->out));
	r->out[r->nout++] = byte;
}

static void set_irq(void *opaque, unsigned irq, int level)
{
	struct rig *r = opaque;

	if (irq != IRQ)
		r->bad_irq++;
	assert_true(r->nirq < 64);
	r->levels[r->nirq++] = level;
}

static struct rig rig;

static int setup(void **state)
{
	memset(&rig, 0, sizeof(rig));
	fb_serial_init(&rig.s, IRQ, sink, &rig, set_irq, &rig);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(rig.bad_irq, 0);
	fb_serial_release(&rig.s);
	return 0;
}

static uint8_t in(unsigned off)
{
	uint8_t v = 0x5a;

	fb_serial_ops.read(&rig.s, off, &v, 1);
	return v;
}

static void out(unsigned off, uint8_t v)
{
	fb_serial_ops.write(&rig.s, off, &v, 1);
}

/* The last level set on the line, or -1 if never set. */
static int line(void)
{
	return rig.nirq ? rig.levels[rig.nirq - 1] : -1;
}

static void test_reset_state(void **state)
{
	assert_int_equal(in(LSR), 0x60); /* THRE | TEMT, no data */
	assert_int_equal(in(IIR), 0x01); /* nothing pending, no FIFO */
	assert_int_equal(in(IER), 0);
	assert_int_equal(in(LCR), 0);
	assert_int_equal(in(MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS */
	assert_int_equal(in(RBR), 0);
	assert_int_equal(rig.nirq, 0);
}

static void test_thr_to_sink(void **state)
{
	static const char msg[] = "Linux version\r\n";

	for (size_t i = 0; i < sizeof(msg) - 1; i++)
		out(THR, (uint8_t)msg[i]);
	assert_int_equal(rig.nout, sizeof(msg) - 1);
	assert_memory_equal(rig.out, msg, sizeof(msg) - 1);
	/* Transmission is instant: the transmitter is always empty. */
	assert_int_equal(in(LSR) & 0x60, 0x60);
	/* Nothing of it comes back on the receive side. */
	assert_int_equal(in(LSR) & 0x01, 0);
	/* No THRI enabled: no interrupt. */
	assert_int_equal(rig.nirq, 0);
}

static void test_scratch(void **state)
{
	out(SCR, 0xa5);
	assert_int_equal(in(SCR), 0xa5);
	out(SCR, 0x5a);
	assert_int_equal(in(SCR), 0x5a);
	/* Linux's autoconfig: IER reads back 0 and then 0x0f (and only the
	 * low nibble is kept). */
	out(IER, 0x00);
	assert_int_equal(in(IER) & 0x0f, 0x00);
	out(IER, 0x0f);
	assert_int_equal(in(IER), 0x0f);
	out(IER, 0xff);
	assert_int_equal(in(IER), 0x0f);
	out(IER, 0x00);
}

static void test_dlab(void **state)
{
	out(IER, 0x05);
	out(LCR, 0x83); /* DLAB, 8N1 */
	assert_int_equal(in(LCR), 0x83);
	assert_int_equal(in(DLL), 12); /* 9600 baud after reset */
	out(DLL, 0x01);                /* 115200 */
	out(DLM, 0x02);
	assert_int_equal(in(DLL), 0x01);
	assert_int_equal(in(DLM), 0x02);
	/* Divisor writes are not data and not the IER. */
	assert_int_equal(rig.nout, 0);
	out(LCR, 0x03);
	assert_int_equal(in(IER), 0x05);
	assert_int_equal(in(RBR), 0);
	out(THR, 'x');
	assert_int_equal(rig.nout, 1);
	assert_int_equal(rig.out[0], 'x');
	/* The divisor survives DLAB going off and on. */
	out(LCR, 0x80);
	assert_int_equal(in(DLL), 0x01);
	assert_int_equal(in(DLM), 0x02);
	out(LCR, 0x03);
}

/* Linux's autoconfig: MCR = LOOP | 0x0a (OUT2 | RTS) must read back MSR
 * with DCD and CTS, i.e. (MSR & 0xf0) == 0x90; plain LOOP gives 0. */
static void test_loopback_msr(void **state)
{
	out(MCR, 0x10);
	assert_int_equal(in(MSR) & 0xf0, 0x00);
	out(MCR, 0x1a);
	assert_int_equal(in(MSR) & 0xf0, 0x90);
	out(MCR, 0x1f); /* DTR RTS OUT1 OUT2 */
	assert_int_equal(in(MSR) & 0xf0, 0xf0);
	out(MCR, 0x11); /* DTR -> DSR */
	assert_int_equal(in(MSR) & 0xf0, 0x20);
	out(MCR, 0x14); /* OUT1 -> RI */
	assert_int_equal(in(MSR) & 0xf0, 0x40);
	/* Out of loopback the modem lines are back. */
	out(MCR, 0x0b);
	assert_int_equal(in(MCR), 0x0b);
	assert_int_equal(in(MSR) & 0xf0, 0xb0);
}

static void test_loopback_data(void **state)
{
	out(MCR, 0x1a);
	out(THR, 'L');
	out(THR, 'B');
	/* Looped back, not sent. */
	assert_int_equal(rig.nout, 0);
	assert_int_equal(in(LSR) & 0x01, 0x01);
	assert_int_equal(in(RBR), 'L');
	assert_int_equal(in(RBR), 'B');
	assert_int_equal(in(LSR) & 0x01, 0);
	out(MCR, 0x0b);
	out(THR, 'S');
	assert_int_equal(rig.nout, 1);
	assert_int_equal(in(LSR) & 0x01, 0);
}

static void test_thri(void **state)
{
	out(IER, 0x02);
	/* The transmitter is empty: THRE fires at once. */
	assert_int_equal(rig.nirq, 1);
	assert_int_equal(line(), 1);
	assert_int_equal(in(IIR), 0x02);
	/* Reading IIR acknowledged it and lowered the line. */
	assert_int_equal(rig.nirq, 2);
	assert_int_equal(line(), 0);
	assert_int_equal(in(IIR), 0x01);
	assert_int_equal(rig.nirq, 2);

	/* Each byte sent leaves the transmitter empty again. */
	out(THR, 'a');
	assert_int_equal(line(), 1);
	assert_int_equal(in(IIR), 0x02);
	assert_int_equal(line(), 0);

	/* Disabling THRI lowers a pending interrupt. */
	out(THR, 'b');
	assert_int_equal(line(), 1);
	out(IER, 0x00);
	assert_int_equal(line(), 0);
	assert_int_equal(in(IIR), 0x01);

	/* Re-enabling it raises THRE again (the transmitter is empty). */
	out(IER, 0x02);
	assert_int_equal(line(), 1);
	/* Writing IER with THRI still set does not re-raise it. */
	assert_int_equal(in(IIR), 0x02);
	assert_int_equal(line(), 0);
	out(IER, 0x02);
	assert_int_equal(line(), 0);
	assert_int_equal(in(IIR), 0x01);
}

static void test_fifo_iir(void **state)
{
	out(FCR, 0x01);
	assert_int_equal(in(IIR), 0xc1);
	out(IER, 0x02);
	assert_int_equal(in(IIR), 0xc2);
	assert_int_equal(in(IIR), 0xc1);
	out(FCR, 0x00);
	assert_int_equal(in(IIR), 0x01);
}

static void test_input(void **state)
{
	static const uint8_t data[] = { 'l', 's', '\r' };

	assert_int_equal(fb_serial_input(&rig.s, data, sizeof(data)), 3);
	/* RDI not enabled: no interrupt. */
	assert_int_equal(rig.nirq, 0);
	assert_int_equal(in(LSR), 0x61);
	assert_int_equal(in(RBR), 'l');
	assert_int_equal(in(LSR) & 0x01, 1);
	assert_int_equal(in(RBR), 's');
	assert_int_equal(in(RBR), '\r');
	assert_int_equal(in(LSR), 0x60);
	assert_int_equal(in(RBR), 0);
}

static void test_input_irq(void **state)
{
	static const uint8_t data[] = { 'a', 'b' };

	out(IER, 0x01);
	assert_int_equal(rig.nirq, 0);
	assert_int_equal(fb_serial_input(&rig.s, data, 2), 2);
	assert_int_equal(line(), 1);
	assert_int_equal(in(IIR), 0x04);
	/* Reading IIR does not acknowledge received data. */
	assert_int_equal(line(), 1);
	assert_int_equal(in(IIR), 0x04);
	assert_int_equal(in(RBR), 'a');
	assert_int_equal(line(), 1);
	assert_int_equal(in(RBR), 'b');
	/* The FIFO drained: the line drops. */
	assert_int_equal(line(), 0);
	assert_int_equal(in(IIR), 0x01);

	/* Received data outranks THRE. */
	out(IER, 0x03);
	assert_int_equal(line(), 1);
	assert_int_equal(fb_serial_input(&rig.s, data, 1), 1);
	out(FCR, 0x01);
	assert_int_equal(in(IIR), 0xc4);
	assert_int_equal(in(RBR), 'a');
	assert_int_equal(in(IIR), 0xc2);
	assert_int_equal(in(IIR), 0xc1);
	assert_int_equal(line(), 0);
}

static void test_rx_overflow(void **state)
{
	uint8_t data[FB_SERIAL_RX_FIFO + 36];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i + 1);
	assert_int_equal(fb_serial_input(&rig.s, data, sizeof(data)),
			 FB_SERIAL_RX_FIFO);
	assert_int_equal(fb_serial_input(&rig.s, data, 1), 0);
	for (unsigned i = 0; i < FB_SERIAL_RX_FIFO; i++) {
		assert_int_equal(in(LSR) & 0x01, 1);
		assert_int_equal(in(RBR), (uint8_t)(i + 1));
	}
	assert_int_equal(in(LSR) & 0x01, 0);
	/* Room again, and order kept across the ring's wrap. */
	assert_int_equal(fb_serial_input(&rig.s, data, 10), 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(in(RBR), (uint8_t)(i + 1));
	assert_int_equal(in(LSR) & 0x01, 0);
}

static void test_fifo_clear(void **state)
{
	static const uint8_t data[] = { 1, 2, 3 };

	out(IER, 0x01);
	fb_serial_input(&rig.s, data, 3);
	assert_int_equal(line(), 1);
	out(FCR, 0x03); /* enable, clear receive FIFO */
	assert_int_equal(in(LSR) & 0x01, 0);
	assert_int_equal(line(), 0);
	assert_int_equal(in(IIR), 0xc1);
}

static void test_beyond_registers(void **state)
{
	uint8_t v[4];

	out(SCR, 0x12);
	assert_int_equal(in(8), 0xff);
	assert_int_equal(in(9), 0xff);
	assert_int_equal(in(0x100), 0xff);
	memset(v, 0, sizeof(v));
	fb_serial_ops.read(&rig.s, 8, v, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(v[i], 0xff);
	/* Writes there go nowhere. */
	out(8, 'z');
	out(15, 0x80);
	assert_int_equal(rig.nout, 0);
	assert_int_equal(in(SCR), 0x12);
	assert_int_equal(in(LCR), 0);
	/* LSR and MSR are read-only. */
	out(LSR, 0x00);
	assert_int_equal(in(LSR), 0x60);
	out(MSR, 0x00);
	assert_int_equal(in(MSR) & 0xf0, 0xb0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reset_state),
		T(test_thr_to_sink),
		T(test_scratch),
		T(test_dlab),
		T(test_loopback_msr),
		T(test_loopback_data),
		T(test_thri),
		T(test_fifo_iir),
		T(test_input),
		T(test_input_irq),
		T(test_rx_overflow),
		T(test_fifo_clear),
		T(test_beyond_registers),
	};

	return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
