/* x86 vCPU and VM state save/restore on this host's own KVM (KVM-PVM
 * included), with the tiny guest's counting mode (tests/guest/tiny.S,
 * 'z'): a guest saved mid-count and restored into a second VM over a copy
 * of its memory carries on with the next number; save, restore, save
 * gives the same state; a corrupted state is refused; a debug dump tells
 * a state the guest cannot have made. The test drives KVM_RUN itself, so
 * it stops the guest right after a chosen line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/kvm.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/vcpu_state.h"
#include "arch/x86/vm_state.h"
#include "util/error.h"
#include "vmm/vm.h"

#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define APIC_TMCCT 0x390 /* the LAPIC timer's current count: it runs */

static const char *tiny(void)
{
	const char *p = getenv("TINY_GUEST");

	return p ? p : "build/tests/tiny-guest.bin";
}

static struct fb_vm *create_with(const char *cmdline)
{
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 32, .kernel = tiny(), .cmdline = cmdline,
		.console_log_fd = -1, .console_live_fd = -1,
	};
	struct fb_vm *vm = NULL;

	if (fb_vm_create(&cfg, &vm) < 0)
		fail_msg("fb_vm_create: %s", fb_last_error());
	return vm;
}

static struct fb_vm *create(void)
{
	return create_with("z");
}

struct out {
	char buf[64 * 1024];
	size_t len;
};

/* Runs vCPU 0 until `lines` more lines came out on COM1, then re-enters
 * once with immediate_exit so KVM completes that last OUT: the vCPU then
 * sits on an instruction boundary, as after fb_vm_pause. An instruction
 * KVM could not run is -ENOTSUP with why in *why, if why is given. */
static int run_lines_try(struct fb_vm *vm, struct out *o, unsigned lines,
			 char *why, size_t why_len)
{
	struct fb_vcpu *v = &vm->vcpus[0];
	struct kvm_run *run = v->run;

	while (lines) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fail_msg("KVM_RUN: %s", strerror(errno));
		}
		if (run->exit_reason == KVM_EXIT_INTR)
			continue;
		if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR && why) {
			struct kvm_regs r;

			assert_int_equal(ioctl(v->fd, KVM_GET_REGS, &r), 0);
			snprintf(why, why_len, "KVM internal error (suberror "
				 "%u: %s) at guest rip 0x%llx",
				 run->internal.suberror,
				 run->internal.suberror ==
				 KVM_INTERNAL_ERROR_EMULATION ?
				 "could not emulate the instruction" : "?",
				 (unsigned long long)r.rip);
			return -ENOTSUP;
		}
		if (run->exit_reason != KVM_EXIT_IO ||
		    run->io.direction != KVM_EXIT_IO_OUT ||
		    run->io.port != 0x3f8 || run->io.size != 1)
			fail_msg("unexpected exit %u (port 0x%x) after %zu "
				 "bytes: %.*s", run->exit_reason,
				 run->io.port, o->len, (int)o->len, o->buf);
		for (uint32_t i = 0; i < run->io.count; i++) {
			char c = ((char *)run + run->io.data_offset)[i];

			assert_true(o->len < sizeof(o->buf) - 1);
			o->buf[o->len++] = c;
			if (c == '\n')
				lines--;
		}
	}
	run->immediate_exit = 1;
	assert_int_equal(ioctl(v->fd, KVM_RUN, 0), -1);
	assert_int_equal(errno, EINTR);
	run->immediate_exit = 0;
	o->buf[o->len] = '\0';
	return 0;
}

static void run_lines(struct fb_vm *vm, struct out *o, unsigned lines)
{
	assert_int_equal(run_lines_try(vm, o, lines, NULL, 0), 0);
}

/* Checks that text is the count's lines first..last, one each, in order. */
static void check_count(const char *text, uint64_t first, uint64_t last)
{
	char want[32];

	assert_null(strstr(text, "BAD"));
	for (uint64_t n = first; n <= last; n++) {
		snprintf(want, sizeof(want), "z%016" PRIx64 "\n", n);
		if (strncmp(text, want, strlen(want)) != 0)
			fail_msg("expected line %s got: %.40s", want, text);
		text += strlen(want);
	}
	assert_string_equal(text, "");
}

static struct fb_x86_vcpu_state *save_vcpu(struct fb_vm *vm)
{
	struct fb_x86_vcpu_state *st = malloc(sizeof(*st));

	assert_non_null(st);
	if (fb_x86_vcpu_state_save(vm->kvm_fd, vm->vcpus[0].fd, st) < 0)
		fail_msg("save: %s", fb_last_error());
	return st;
}

static void restore_vcpu(struct fb_vm *vm, const struct fb_x86_vcpu_state *st)
{
	if (fb_x86_vcpu_state_restore(vm->kvm_fd, vm->vcpus[0].fd, st) < 0)
		fail_msg("restore: %s", fb_last_error());
}

static uint64_t msr(const struct fb_x86_vcpu_state *st, uint32_t index,
		    int *at)
{
	for (uint32_t i = 0; i < st->nmsrs; i++)
		if (st->msrs[i].index == index) {
			if (at)
				*at = (int)i;
			return st->msrs[i].data;
		}
	if (at)
		*at = -1;
	return 0;
}

/* b was saved after a was restored: equal but for what runs on its own
 * (the TSC, the LAPIC timer's current count). */
static void assert_same_vcpu(const struct fb_x86_vcpu_state *a,
			     const struct fb_x86_vcpu_state *b)
{
	struct fb_x86_vcpu_state x = *a, y = *b;
	uint64_t ta = msr(a, MSR_IA32_TSC, NULL), tb = msr(b, MSR_IA32_TSC,
							    NULL);

	assert_int_equal(a->nmsrs, b->nmsrs);
	for (uint32_t i = 0; i < a->nmsrs; i++)
		if (a->msrs[i].index != b->msrs[i].index ||
		    (a->msrs[i].data != b->msrs[i].data &&
		     a->msrs[i].index != MSR_IA32_TSC))
			fail_msg("MSR 0x%x: 0x%llx then 0x%llx",
				 a->msrs[i].index,
				 (unsigned long long)a->msrs[i].data,
				 (unsigned long long)b->msrs[i].data);
	/* The TSC went on from the saved value: not back, not far. */
	assert_true(tb >= ta);
	assert_true(tb - ta < (uint64_t)a->tsc_khz * 1000 * 10);
	for (uint32_t i = 0; i < a->nmsrs; i++)
		if (a->msrs[i].index == MSR_IA32_TSC)
			x.msrs[i].data = y.msrs[i].data = 0;
	memset(&x.lapic.regs[APIC_TMCCT], 0, 4);
	memset(&y.lapic.regs[APIC_TMCCT], 0, 4);
#define SAME(f) do { if (memcmp(&x.f, &y.f, sizeof(x.f))) \
		fail_msg("%s differs after a round trip", #f); } while (0)
	SAME(version); SAME(xsave_size); SAME(tsc_khz); SAME(mp_state);
	SAME(regs); SAME(sregs); SAME(xcrs); SAME(debugregs); SAME(lapic);
	SAME(events); SAME(msrs);
#undef SAME
	assert_memory_equal(x.xsave, y.xsave, x.xsave_size);
}

static void assert_same_vm(const struct fb_x86_vm_state *a,
			   const struct fb_x86_vm_state *b)
{
	assert_memory_equal(&a->pic_master, &b->pic_master,
			    sizeof(a->pic_master));
	assert_memory_equal(&a->pic_slave, &b->pic_slave, sizeof(a->pic_slave));
	assert_memory_equal(&a->ioapic, &b->ioapic, sizeof(a->ioapic));
	assert_int_equal(a->pit.flags, b->pit.flags);
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state ca = a->pit.channels[i],
					     cb = b->pit.channels[i];

		/* A host timestamp of the counter's (re)load. */
		ca.count_load_time = cb.count_load_time = 0;
		assert_memory_equal(&ca, &cb, sizeof(ca));
	}
	/* kvmclock went on from the saved value (FB_X86_CLOCK_CONTINUE). */
	assert_true(b->clock.clock >= a->clock.clock);
	assert_true(b->clock.clock - a->clock.clock < 10ull * 1000000000);
}

static void test_fork_continues(void **state)
{
	static struct out a_out, b_out;
	struct fb_x86_vcpu_state *st, *again;
	struct fb_x86_vm_state vst, vagain;
	struct fb_vm *a = create_with("zf"), *b;
	const char *cmdline = "zf";
	char why[160];
	const char *count;

	/* The count in SSE and AVX registers too, so that a lost XSAVE or
	 * XCR0 shows; where this KVM cannot run them for this guest (KVM-PVM
	 * cannot), that part is skipped and the count stays in %r12 and
	 * memory. */
	a_out.len = 0;
	if (run_lines_try(a, &a_out, 2 + 40, why, sizeof(why)) < 0) {
		printf("SKIPPED the SSE/AVX part (zf): %s\n", why);
		fb_vm_destroy(a);
		a = create_with(cmdline = "z");
		a_out.len = 0;
		run_lines(a, &a_out, 2 + 40);
	}
	/* The echoed command line, "int", "sse" or "avx", then 1..40. */
	count = strchr(a_out.buf, '\n') + 1;
	printf("tiny guest \"%s\": %.3s\n", cmdline, count);
	assert_true(!strncmp(count, "int\n", 4) || !strncmp(count, "sse\n", 4) ||
		    !strncmp(count, "avx\n", 4));
	check_count(count + 4, 1, 40);

	st = save_vcpu(a);
	assert_int_equal(fb_x86_vm_state_save(a->kvm_fd, a->vm_fd, &vst), 0);

	/* A second VM, as a fork would make it: same configuration, the
	 * first one's memory, then its state (vCPUs, then the VM's). */
	b = create_with(cmdline);
	assert_int_equal(a->mem.mapping_size, b->mem.mapping_size);
	memcpy(b->mem.mapping, a->mem.mapping, a->mem.mapping_size);
	fb_vm_destroy(a);
	restore_vcpu(b, st);
	if (fb_x86_vm_state_restore(b->kvm_fd, b->vm_fd, &vst,
				    FB_X86_CLOCK_CONTINUE) < 0)
		fail_msg("VM restore: %s", fb_last_error());

	/* Restored means the same state, read back. */
	again = save_vcpu(b);
	assert_same_vcpu(st, again);
	assert_int_equal(fb_x86_vm_state_save(b->kvm_fd, b->vm_fd, &vagain), 0);
	assert_same_vm(&vst, &vagain);

	/* And it carries on at 41: no restart, no line lost or repeated. */
	b_out.len = 0;
	run_lines(b, &b_out, 40);
	check_count(b_out.buf, 41, 80);
	fb_vm_destroy(b);
	free(st);
	free(again);
}

static void test_round_trip_same_vcpu(void **state)
{
	static struct out o;
	struct fb_x86_vcpu_state *s1, *s2;
	struct fb_x86_vm_state v1, v2;
	struct fb_vm *vm = create();

	o.len = 0;
	run_lines(vm, &o, 2 + 5);
	s1 = save_vcpu(vm);
	assert_int_equal(fb_x86_vm_state_save(vm->kvm_fd, vm->vm_fd, &v1), 0);
	restore_vcpu(vm, s1);
	assert_int_equal(fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, &v1,
						 FB_X86_CLOCK_CONTINUE), 0);
	s2 = save_vcpu(vm);
	assert_int_equal(fb_x86_vm_state_save(vm->kvm_fd, vm->vm_fd, &v2), 0);
	assert_same_vcpu(s1, s2);
	assert_same_vm(&v1, &v2);
	o.len = 0;
	run_lines(vm, &o, 3);
	check_count(o.buf, 6, 8);
	fb_vm_destroy(vm);
	free(s1);
	free(s2);
}

/* What a restore writes is what a save then reads, for parts this guest
 * cannot change itself on every host: an XMM register and MXCSR in the
 * XSAVE image, an MSR, a debug register. */
static void test_edited_state_applies(void **state)
{
	const uint8_t xmm0[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7,
				   8, 9, 10, 11, 12 };
	struct fb_x86_vcpu_state *st, *back;
	struct fb_vm *vm = create();
	uint8_t *x;
	uint64_t bv;
	uint32_t mxcsr = 0x1f80 | 0x6000; /* round toward zero */
	int lstar;

	st = save_vcpu(vm);
	x = (uint8_t *)st->xsave;
	memcpy(x + 160, xmm0, sizeof(xmm0));   /* XMM0 in the legacy area */
	memcpy(x + 24, &mxcsr, 4);             /* MXCSR */
	memcpy(&bv, x + 512, 8);               /* XSTATE_BV: SSE present */
	bv |= 2;
	memcpy(x + 512, &bv, 8);
	msr(st, 0xc0000082, &lstar);
	assert_true(lstar >= 0);
	st->msrs[lstar].data = 0xffffffff81234560ull;
	st->debugregs.db[0] = 0x123000;
	restore_vcpu(vm, st);
	back = save_vcpu(vm);
	assert_memory_equal((uint8_t *)back->xsave + 160, xmm0, sizeof(xmm0));
	assert_memory_equal((uint8_t *)back->xsave + 24, &mxcsr, 4);
	assert_int_equal(back->msrs[lstar].data, 0xffffffff81234560ull);
	assert_int_equal(back->debugregs.db[0], 0x123000);
	fb_vm_destroy(vm);
	free(st);
	free(back);
}

/* The MSRs a save keeps: the essentials whenever KVM has them, the TSC
 * first and its deadline last; prints what KVM lists and a save leaves
 * out, for the record. */
static void test_msr_list(void **state)
{
	static const uint32_t essential[] = {
		0x10, 0x174, 0x175, 0x176, 0xc0000081, 0xc0000082,
		0xc0000083, 0xc0000084, 0xc0000102, 0x1a0, 0x277, 0x6e0,
		0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04,
	};
	struct { struct kvm_msr_list h; uint32_t idx[1024]; } kl;
	uint32_t list[FB_X86_MAX_MSRS];
	struct fb_vm *vm = create();
	int n, at;

	n = fb_x86_vcpu_msr_list(vm->kvm_fd, vm->vcpus[0].fd, list);
	if (n < 0)
		fail_msg("%s", fb_last_error());
	kl.h.nmsrs = 1024;
	assert_int_equal(ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &kl), 0);
	printf("saved MSRs (%d):", n);
	for (int i = 0; i < n; i++)
		printf(" %x", list[i]);
	printf("\nKVM lists, a save leaves out:");
	for (uint32_t i = 0; i < kl.h.nmsrs; i++) {
		bool kept = false;

		for (int j = 0; j < n; j++)
			kept |= list[j] == kl.idx[i];
		if (!kept)
			printf(" %x", kl.idx[i]);
	}
	printf("\n");
	for (size_t e = 0; e < sizeof(essential) / sizeof(essential[0]); e++) {
		bool in_kvm = false, kept = false;

		for (uint32_t i = 0; i < kl.h.nmsrs; i++)
			in_kvm |= kl.idx[i] == essential[e];
		for (int j = 0; j < n; j++)
			kept |= list[j] == essential[e];
		if (in_kvm && !kept)
			fail_msg("MSR 0x%x: KVM has it, a save drops it",
				 essential[e]);
		if (!in_kvm)
			printf("note: this KVM does not list MSR 0x%x\n",
			       essential[e]);
	}
	/* The MTRRs are never in KVM's list; the boot code sets DEF_TYPE. */
	for (int j = 0; j < n; j++)
		if (list[j] == 0x2ff)
			goto have_mtrr;
	printf("note: MTRR_DEF_TYPE not readable on this KVM\n");
have_mtrr:
	assert_int_equal(list[0], MSR_IA32_TSC);
	{
		struct fb_x86_vcpu_state *st = save_vcpu(vm);

		msr(st, MSR_IA32_TSC_DEADLINE, &at);
		if (at >= 0)
			assert_int_equal(at, (int)st->nmsrs - 1);
		free(st);
	}
	fb_vm_destroy(vm);
}

static void test_corrupt_state_refused(void **state)
{
	static struct out o;
	struct fb_x86_vcpu_state *st, *bad, *after;
	struct fb_x86_vm_state vst, vbad;
	struct fb_vm *vm = create();

	o.len = 0;
	run_lines(vm, &o, 2 + 3);
	st = save_vcpu(vm);
	bad = malloc(sizeof(*bad));
	assert_non_null(bad);

	*bad = *st;
	bad->nmsrs = FB_X86_MAX_MSRS + 1;
	assert_int_equal(fb_x86_vcpu_state_restore(vm->kvm_fd,
						   vm->vcpus[0].fd, bad),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "nmsrs 513"));

	*bad = *st;
	bad->version = FB_X86_VCPU_STATE_VERSION + 1;
	assert_int_equal(fb_x86_vcpu_state_restore(vm->kvm_fd,
						   vm->vcpus[0].fd, bad),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "version 2"));

	*bad = *st;
	bad->xsave_size = FB_X86_XSAVE_MAX + 64;
	assert_int_equal(fb_x86_vcpu_state_restore(vm->kvm_fd,
						   vm->vcpus[0].fd, bad),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "XSAVE size"));

	*bad = *st;
	bad->msrs[1].index = bad->msrs[0].index;
	bad->regs.rip = 0;
	assert_int_equal(fb_x86_vcpu_state_restore(vm->kvm_fd,
						   vm->vcpus[0].fd, bad),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "twice"));

	/* Each refused before any ioctl: the vCPU is as it was. */
	after = save_vcpu(vm);
	assert_same_vcpu(st, after);

	/* An MSR this KVM does not have: KVM_SET_MSRS stops there and the
	 * restore says which. */
	*bad = *st;
	assert_true(bad->nmsrs < FB_X86_MAX_MSRS);
	bad->msrs[bad->nmsrs++] = (struct kvm_msr_entry){ .index = 0xdeadbeef };
	assert_int_equal(fb_x86_vcpu_state_restore(vm->kvm_fd,
						   vm->vcpus[0].fd, bad),
			 -EIO);
	assert_non_null(strstr(fb_last_error(), "refused MSR 0xdeadbeef"));
	printf("refused as it should: %s\n", fb_last_error());

	assert_int_equal(fb_x86_vm_state_save(vm->kvm_fd, vm->vm_fd, &vst), 0);
	vbad = vst;
	vbad.ioapic.chip_id = KVM_IRQCHIP_PIC_MASTER;
	assert_int_equal(fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, &vbad,
						 FB_X86_CLOCK_CONTINUE),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "irqchip ids"));
	vbad = vst;
	vbad.version = 7;
	assert_int_equal(fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, &vbad,
						 FB_X86_CLOCK_CONTINUE),
			 -EINVAL);
	assert_non_null(strstr(fb_last_error(), "version 7"));
	fb_vm_destroy(vm);
	free(st);
	free(bad);
	free(after);
}

static uint64_t kvmclock(struct fb_vm *vm)
{
	struct kvm_clock_data c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(ioctl(vm->vm_fd, KVM_GET_CLOCK, &c), 0);
	return c.clock;
}

/* CONTINUE resumes kvmclock where it was saved; ADVANCE adds the time the
 * VM spent saved. */
static void test_clock_modes(void **state)
{
	const uint64_t gap = 300000000; /* 300 ms */
	struct timespec ts = { 0, (long)gap };
	struct fb_x86_vm_state vst;
	struct fb_vm *vm = create();
	uint64_t now;

	assert_int_equal(fb_x86_vm_state_save(vm->kvm_fd, vm->vm_fd, &vst), 0);
	if (vst.clock.flags & KVM_CLOCK_REALTIME)
		printf("KVM_GET_CLOCK gives KVM_CLOCK_REALTIME: KVM "
		       "advances the clock itself\n");
	else
		printf("KVM_GET_CLOCK gives no KVM_CLOCK_REALTIME (flags "
		       "0x%x; the host clocksource is not the TSC): "
		       "FB_X86_CLOCK_ADVANCE uses the VMM's own reading\n",
		       vst.clock.flags);
	nanosleep(&ts, NULL);
	assert_int_equal(fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, &vst,
						 FB_X86_CLOCK_CONTINUE), 0);
	now = kvmclock(vm);
	assert_true(now >= vst.clock.clock && now - vst.clock.clock < gap / 2);
	assert_int_equal(fb_x86_vm_state_restore(vm->kvm_fd, vm->vm_fd, &vst,
						 FB_X86_CLOCK_ADVANCE), 0);
	now = kvmclock(vm);
	assert_true(now - vst.clock.clock >= gap);
	assert_true(now - vst.clock.clock < gap + 5000000000ull);
	fb_vm_destroy(vm);
}

/* A dump of one vCPU's state (fb_vcpu_debug) flags a page table root
 * outside guest RAM as a state the guest cannot have made, with its rip
 * (restore.c puts that into an unanswered box's error), and only that:
 * paging off, or a root inside RAM, is the guest's own. */
static bool foreign_with(struct fb_vm *vm, uint64_t cr0, uint64_t cr3,
			 uint64_t rip, char *dump, size_t dump_len)
{
	struct fb_vcpu *vcpu = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct fb_vcpu_seen seen = { .foreign = !cr0, .rip = 1 };
	FILE *f = fmemopen(dump, dump_len, "w");

	assert_non_null(f);
	assert_int_equal(ioctl(vcpu->fd, KVM_GET_SREGS, &sregs), 0);
	assert_int_equal(ioctl(vcpu->fd, KVM_GET_REGS, &regs), 0);
	/* 64-bit long mode, as a Linux guest runs. */
	sregs.cr0 = cr0;
	sregs.cr3 = cr3;
	sregs.cr4 |= 1u << 5;			/* PAE */
	sregs.efer |= (1u << 8) | (1u << 10);	/* LME, LMA */
	sregs.cs.l = 1;
	sregs.cs.db = 0;
	regs.rip = rip;
	assert_int_equal(ioctl(vcpu->fd, KVM_SET_SREGS, &sregs), 0);
	assert_int_equal(ioctl(vcpu->fd, KVM_SET_REGS, &regs), 0);
	fb_vcpu_debug(vcpu, f, &seen);
	fclose(f);
	assert_int_equal(seen.rip, rip);
	return seen.foreign;
}

static void test_debug_flags_foreign_state(void **state)
{
	const uint64_t paged = 0x80000001ull; /* PG, PE */
	const uint64_t lab_rip = 0xffffffffc043a20cull;
	struct fb_vm *vm = create();
	static char dump[16384];

	/* 32 MiB of RAM: 1 GiB lies outside it. */
	assert_true(foreign_with(vm, paged, 1ull << 30, lab_rip, dump,
				 sizeof(dump)));
	assert_non_null(strstr(dump, "is outside guest RAM"));
	assert_false(foreign_with(vm, paged, 0x10000, lab_rip, dump,
				  sizeof(dump)));
	assert_null(strstr(dump, "is outside guest RAM"));
	fb_vm_destroy(vm);
}

/* How a VM ended, for an error that would otherwise say only that its
 * guest never answered (restore.c). */
static void test_vm_ended_says_how(void **state)
{
	struct fb_vm *vm = create();
	char why[320];

	assert_false(fb_vm_ended(vm, why, sizeof(why)));
	fb_vm_request_stop(vm, FB_VM_EXIT_REBOOT, "guest reset (triple fault "
			   "on vCPU %u)", 0u);
	assert_true(fb_vm_ended(vm, why, sizeof(why)));
	assert_non_null(strstr(why, "triple fault on vCPU 0"));
	assert_non_null(strstr(why, fb_vm_exit_reason_name(FB_VM_EXIT_REBOOT)));
	fb_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msr_list),
		cmocka_unit_test(test_fork_continues),
		cmocka_unit_test(test_round_trip_same_vcpu),
		cmocka_unit_test(test_edited_state_applies),
		cmocka_unit_test(test_corrupt_state_refused),
		cmocka_unit_test(test_clock_modes),
		cmocka_unit_test(test_debug_flags_foreign_state),
		cmocka_unit_test(test_vm_ended_says_how),
	};

	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("test_vcpu_state: no /dev/kvm here\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
