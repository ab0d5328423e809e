/* A box's way to ready, phase by phase: what `forkbox run --trace` prints.
 *
 * Two processes and a guest see the boot. The CLI knows when it started;
 * the VMM process knows its own start, the steps of its launch, when
 * vCPU 0 first entered KVM_RUN and when the agent's HELLO arrived; the
 * guest's PID 1 knows its boot marks by its own CLOCK_BOOTTIME (HELLO and
 * BOOT_TIMES carry them, docs/agent-protocol.md). The VMM writes what it
 * knows to <boxdir>/trace just before it reports ready, so the CLI can
 * read it once fb_box_create() returned. The CLI and the VMM share
 * CLOCK_MONOTONIC (the jail has no time namespace): the VMM's start in
 * it aligns the two. The guest's clock is aligned by its hello: guest
 * time t is at hello_ms - (guest_hello_ms - t) on the VMM's timeline.
 *
 * The file: one key=value per line, written atomically (rename; no fsync:
 * a trace is worth nothing after a host crash). Readers ignore keys they
 * do not know, so a newer VMM may add some.
 *   vmm_start_ns=N    CLOCK_MONOTONIC ns when the VMM process started
 *   prepared_ns=N     ... when the box directory and root disk were
 *                     ready, just before the VMM was forked
 *   <mark>_ms=X       each host mark: ms since vmm_start_ns
 *   guest_<mark>_ms=X each guest mark: the guest's CLOCK_BOOTTIME, ms
 * A mark that was not recorded (a restore has no hello on the ready
 * port; a box without a root disk does not switch to one) is left out. */
#ifndef FB_BOX_TRACE_H
#define FB_BOX_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "box/boxvm.h"
#include "forkbox/agent_proto.h"

#define FB_BOX_TRACE_NAME "trace"

/* The VMM's marks, in the order they happen. */
enum fb_trace_host_mark {
	FB_TRACE_JAIL_PREPARED, /* cgroup and namespaces */
	FB_TRACE_VM_CREATED,    /* KVM VM, memory, devices, kernel loaded */
	FB_TRACE_STATE_SET,     /* a restore's snapshot state applied */
	FB_TRACE_JAIL_ENTERED,
	FB_TRACE_VCPU_RUN,      /* vCPU 0 first entered KVM_RUN */
	FB_TRACE_HELLO,         /* the agent's HELLO arrived */
	FB_TRACE_HOST_MARKS
};

struct fb_box_trace {
	uint64_t vmm_start_ns;   /* CLOCK_MONOTONIC */
	uint64_t prepared_ns;    /* CLOCK_MONOTONIC; 0: not recorded */
	double host_ms[FB_TRACE_HOST_MARKS];   /* from vmm_start_ns; < 0: not
						  recorded */
	double guest_ms[FB_AGENT_BOOT_MARKS];  /* guest CLOCK_BOOTTIME; < 0:
						  not recorded */
	double guest_hello_ms;   /* guest CLOCK_BOOTTIME at its hello; < 0:
				    no hello */
};

/* A trace with nothing recorded. */
void fb_box_trace_clear(struct fb_box_trace *t);

/* What the VMM knows once fb_box_vm_start() (or a restore) returned:
 * vmm_start_ns and prepared_ns are the VMM process's, the rest is b's. */
void fb_box_trace_collect(struct fb_box_trace *t, const struct fb_box_vm *b,
			  uint64_t vmm_start_ns, uint64_t prepared_ns);

/* <dir>/trace, written and read whole. */
int fb_box_trace_write(const char *dir, const struct fb_box_trace *t);
int fb_box_trace_read(const char *dir, struct fb_box_trace *t);

/* One line of the trace on a caller's timeline. */
struct fb_trace_phase {
	const char *what;
	double ms;   /* from the caller's origin */
	bool approx; /* an estimate (the guest kernel's entry) */
};
#define FB_TRACE_MAX_PHASES 16

/* The recorded phases in the order they happen, as ms from origin_ms (a
 * CLOCK_MONOTONIC time in ms, e.g. the CLI's start); returns how many
 * (at most max). The guest kernel's entry is the hello minus the guest's
 * boot clock then, but never before vCPU 0 ran: a guest clock that
 * started counting before that (at vCPU creation) says nothing finer. */
unsigned fb_box_trace_phases(const struct fb_box_trace *t, double origin_ms,
			     struct fb_trace_phase *out, unsigned max);

#endif
