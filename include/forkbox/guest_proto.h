/* The host <-> guest channel used by `forkbox run` until the vsock agent
 * lands: the command travels on the kernel command line, the guest's PID 1
 * sends framed output back on the second UART (COM2, ttyS1).
 *
 * Shared by the host (src/box/) and the guest (guest/init.c), so it holds
 * only fixed-width types and no host headers beyond <stdint.h>. */
#ifndef FORKBOX_GUEST_PROTO_H
#define FORKBOX_GUEST_PROTO_H

#include <stdint.h>

/* Every box's kernel command line starts with this. Measured in the lab
 * (docs/BENCHMARKS.md, boot floor): cryptomgr.notests skips the crypto
 * self-tests (~300 ms of a lab boot), random.trust_cpu=on lets RDRAND
 * seed the CRNG at once (~280 ms; virtio-rng and a fork's re-stamp add
 * entropy besides). Tried and left out: tsc=reliable and no_timer_check
 * (no gain), i8042.nopnp and friends (probing the controller is slower
 * than PnP saying there is none), apparmor=0 audit=0 (no gain). */
#define FB_CMDLINE_BASE "console=ttyS0 quiet panic=-1 pci=off " \
			"cryptomgr.notests random.trust_cpu=on"

/* Kernel command line keys read by the guest's PID 1 from /proc/cmdline.
 * The kernel leaves dotted unknown keys alone (they look like module
 * parameters), so they never reach init's argv or environment. */
#define FB_CMDLINE_CMD "forkbox.cmd="   /* hex of argv, each arg NUL-ended */
#define FB_CMDLINE_OUT "forkbox.out="   /* tty for frames, e.g. ttyS1 */
/* The box's root disk (agent mode): a virtio-blk device name such as
 * "vda", holding an ext4 filesystem that PID 1 switches root into once
 * the modules are loaded. Absent: the initramfs stays the root. */
#define FB_CMDLINE_ROOT "forkbox.root="

/* A frame: 1 type byte, 4 bytes little-endian payload length, payload. */
#define FB_FRAME_HDR_LEN 5u
#define FB_FRAME_MAX_PAYLOAD 4096u

enum fb_frame_type {
	FB_FRAME_INIT = 'I',   /* PID 1 started; empty payload */
	FB_FRAME_STDOUT = 'O', /* bytes of the command's stdout */
	FB_FRAME_STDERR = 'E', /* bytes of the command's stderr */
	FB_FRAME_EXIT = 'X',   /* 4 bytes LE: exit status, docker style:
				  126 cannot execute, 127 not found,
				  128+N killed by signal N */
};

#endif
