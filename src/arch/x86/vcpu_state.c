/* x86 vCPU state save and restore (see vcpu_state.h).
 *
 * The order of the ioctls matters in both directions; each call site says
 * why it sits where it does. In short, save: MP_STATE first, VCPU_EVENTS
 * last; restore: REGS before VCPU_EVENTS, SREGS before LAPIC, LAPIC before
 * the MSRs, and the TSC before TSC_DEADLINE. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/vcpu_state.h"
#include "util/error.h"

#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_MCG_CAP 0x179

#define APIC_LVTT 0x320
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_TIMER_MODE(v) (((v) >> 17) & 3u)
#define APIC_TIMER_TSC_DEADLINE 2u

/* KVM refuses more entries than this in one KVM_GET/SET_MSRS. */
#define MSR_CHUNK 64

/* ---- The MSR allow list ------------------------------------------------
 *
 * What a save keeps is KVM's own list (KVM_GET_MSR_INDEX_LIST) filtered by
 * this one: an MSR KVM lists but this table does not name is left out on
 * purpose (below), and one this table names but KVM does not list does not
 * exist on this host. Two groups KVM handles but never lists (the MTRRs,
 * the machine-check banks) are found by reading them instead (PROBE).
 *
 * The table's order is the order of the saved list, hence the order of
 * the writes on restore: the TSC first (KVM derives the vCPU's TSC offset
 * from that write), TSC_DEADLINE last (restore also enforces this).
 *
 * Left out on purpose:
 * - EFER, APIC_BASE, FS_BASE, GS_BASE: in kvm_sregs already.
 * - PLATFORM_INFO (0xce), ARCH_CAPABILITIES (0x10a), PERF_CAPABILITIES
 *   (0x345), UCODE_REV (0x8b), MCG_CAP (0x179), the VMX capability MSRs:
 *   read-only to the guest, they describe the virtual CPU like CPUID does
 *   and, like CPUID, the VMM sets them when it creates the vCPU.
 * - SMBASE (0x9e), SMI_COUNT (0x34): forkbox does not enable SMM.
 * - VM_HSAVE_PA (0xc0010117), nested state: no nested virtualisation.
 * - LBR records (0x1db-0x1de, 0x680...): KVM reads them as 0 and drops
 *   writes unless LBR virtualisation is on, which forkbox does not enable.
 * - Hyper-V (0x40000000...): forkbox does not enable the enlightenments.
 * - KVM_MIGRATION_CONTROL (0x4b564d08): SEV guests only. */

enum msr_source {
	LISTED, /* kept if KVM_GET_MSR_INDEX_LIST names it */
	PROBE,  /* never listed: kept if KVM_GET_MSRS can read it */
};

static const struct msr_range {
	uint32_t first, last;
	enum msr_source source;
} msr_allow[] = {
	/* The time stamp counter, first: see above. TSC_ADJUST follows the
	 * guest's own TSC writes; TSC_AUX is what RDTSCP and RDPID return
	 * (Linux keeps the CPU number there). */
	{ MSR_IA32_TSC, MSR_IA32_TSC, LISTED },
	{ 0x3b, 0x3b, LISTED },                 /* TSC_ADJUST */
	{ 0xc0000103, 0xc0000103, LISTED },     /* TSC_AUX */
	/* System call entry: SYSENTER_CS/ESP/EIP for 32-bit processes,
	 * STAR/LSTAR/CSTAR/SFMASK for SYSCALL. Lose them and the first
	 * system call after a restore jumps to 0. */
	{ 0x174, 0x176, LISTED },
	{ 0xc0000081, 0xc0000084, LISTED },
	/* SWAPGS's other half: the kernel's per-CPU base while user space
	 * runs (the live FS and GS bases are in sregs). */
	{ 0xc0000102, 0xc0000102, LISTED },     /* KERNEL_GS_BASE */
	/* Switches the guest kernel flipped: MISC_ENABLE (fast strings,
	 * MWAIT...), FEATURE_CONTROL (with its lock bit), CPUID faulting
	 * (MISC_FEATURES_ENABLES), POWER_CTL, AMD's HWCR. */
	{ 0x1a0, 0x1a0, LISTED },
	{ 0x3a, 0x3a, LISTED },
	{ 0x140, 0x140, LISTED },
	{ 0x1fc, 0x1fc, LISTED },
	{ 0xc0010015, 0xc0010015, LISTED },
	/* Memory types: PAT, and the MTRRs (variable pairs, fixed ranges,
	 * default type). KVM lists neither the MTRRs nor their count, so
	 * they are read to see which exist. */
	{ 0x277, 0x277, LISTED },               /* PAT */
	{ 0x200, 0x21f, PROBE },                /* PHYSBASE/PHYSMASK 0..15 */
	{ 0x250, 0x250, PROBE },                /* FIX64K_00000 */
	{ 0x258, 0x259, PROBE },                /* FIX16K_80000/A0000 */
	{ 0x268, 0x26f, PROBE },                /* FIX4K_C0000..F8000 */
	{ 0x2ff, 0x2ff, PROBE },                /* DEF_TYPE */
	/* Speculation controls the guest kernel chose for its mitigations
	 * (SPEC_CTRL, TSX_CTRL, AMD's VIRT_SPEC_CTRL). */
	{ 0x48, 0x48, LISTED },
	{ 0x122, 0x122, LISTED },
	{ 0xc001011f, 0xc001011f, LISTED },
	/* Extended state beyond XCR0 and what else the guest enabled:
	 * XSS (supervisor XSAVE components), XFD and XFD_ERR (AMX's first-
	 * use trap), UMWAIT_CONTROL, MPX's BNDCFGS, supervisor protection
	 * keys (PKRS), DEBUGCTL. */
	{ 0xda0, 0xda0, LISTED },
	{ 0x1c4, 0x1c5, LISTED },
	{ 0xe1, 0xe1, LISTED },
	{ 0xd90, 0xd90, LISTED },
	{ 0x6e1, 0x6e1, LISTED },
	{ 0x1d9, 0x1d9, LISTED },
	/* Machine check: global status and control, and the banks (CTL,
	 * STATUS, ADDR, MISC; CTL2), which KVM does not list; a read tells
	 * which banks MCG_CAP gives this vCPU. */
	{ 0x17a, 0x17b, LISTED },               /* MCG_STATUS, MCG_CTL */
	{ 0x4d0, 0x4d0, LISTED },               /* MCG_EXT_CTL */
	{ 0x400, 0x47f, PROBE },                /* MCi_CTL..MCi_MISC */
	{ 0x280, 0x29f, PROBE },                /* MCi_CTL2 */
	/* KVM paravirtual MSRs: guest-physical addresses of pages the guest
	 * shares with KVM (so guest memory goes back before these), each
	 * with its enable bit. Old and new kvmclock (wall clock, system
	 * time), async page faults (the interrupt vector before the enable
	 * bit, and the ack), steal time, PV EOI, halt-poll control. */
	{ 0x11, 0x12, LISTED },
	{ 0x4b564d00, 0x4b564d01, LISTED },
	{ 0x4b564d06, 0x4b564d06, LISTED },     /* ASYNC_PF_INT */
	{ 0x4b564d02, 0x4b564d02, LISTED },     /* ASYNC_PF_EN */
	{ 0x4b564d07, 0x4b564d07, LISTED },     /* ASYNC_PF_ACK */
	{ 0x4b564d03, 0x4b564d05, LISTED },     /* STEAL_TIME, PV_EOI, POLL */
	/* The virtual PMU, when KVM gives the guest one: counters and event
	 * selects first, the global enable after them. Intel: PMCs,
	 * PERFEVTSELs, fixed counters and their control, global status and
	 * overflow control, global control. AMD: legacy and F15h counters,
	 * PerfMonV2 global registers. */
	{ 0xc1, 0xc8, LISTED },
	{ 0x186, 0x18d, LISTED },
	{ 0x309, 0x30b, LISTED },
	{ 0x38d, 0x38e, LISTED },
	{ 0x390, 0x390, LISTED },
	{ 0x38f, 0x38f, LISTED },
	{ 0xc0010000, 0xc0010007, LISTED },
	{ 0xc0010200, 0xc001020b, LISTED },
	{ 0xc0000300, 0xc0000302, LISTED },
	/* Last: the LAPIC timer's deadline, a point on the TSC's scale. */
	{ MSR_IA32_TSC_DEADLINE, MSR_IA32_TSC_DEADLINE, LISTED },
};

static bool has_cap(int kvm_fd, long cap)
{
	return ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

/* KVM's list of the MSRs it saves and emulates; free() it. */
static int msr_index_list(int kvm_fd, struct kvm_msr_list **out)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 &&
	    errno != E2BIG)
		return fb_errorf(-errno, "KVM_GET_MSR_INDEX_LIST: %s",
				 strerror(errno));
	l = calloc(1, sizeof(*l) + (probe.nmsrs + 1) * sizeof(l->indices[0]));
	if (!l)
		return fb_errorf(-ENOMEM, "calloc for the MSR index list");
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int err = -errno;

		free(l);
		return fb_errorf(err, "KVM_GET_MSR_INDEX_LIST: %s",
				 strerror(-err));
	}
	*out = l;
	return 0;
}

static bool listed(const struct kvm_msr_list *l, uint32_t index)
{
	for (uint32_t i = 0; i < l->nmsrs; i++)
		if (l->indices[i] == index)
			return true;
	return false;
}

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[MSR_CHUNK];
};

/* Reads or writes n entries (n <= MSR_CHUNK); KVM stops at the first MSR
 * it refuses and returns how many it did. */
static int msr_io(int vcpu_fd, unsigned long req, struct kvm_msr_entry *e,
		  unsigned n)
{
	struct msr_buf b;
	int done;

	memset(&b, 0, sizeof(b));
	b.hdr.nmsrs = n;
	memcpy(b.e, e, n * sizeof(*e));
	done = ioctl(vcpu_fd, req, &b);
	if (done < 0)
		return -errno;
	memcpy(e, b.e, n * sizeof(*e));
	return done;
}

/* Appends the MSRs of [first, last] that KVM can read on this vCPU. */
static int probe_range(int vcpu_fd, uint32_t first, uint32_t last,
		       uint32_t *list, unsigned *n)
{
	struct kvm_msr_entry e[MSR_CHUNK];
	uint32_t next = first;

	while (next <= last) {
		unsigned want = last - next + 1 > MSR_CHUNK ? MSR_CHUNK :
				last - next + 1;
		int got;

		for (unsigned i = 0; i < want; i++)
			e[i] = (struct kvm_msr_entry){ .index = next + i };
		got = msr_io(vcpu_fd, KVM_GET_MSRS, e, want);
		if (got < 0)
			return fb_errorf(got, "KVM_GET_MSRS (probing MSR "
					 "0x%x): %s", next, strerror(-got));
		for (int i = 0; i < got; i++) {
			if (*n >= FB_X86_MAX_MSRS)
				return fb_errorf(-E2BIG, "more than %d MSRs "
						 "to save (raise "
						 "FB_X86_MAX_MSRS)",
						 FB_X86_MAX_MSRS);
			list[(*n)++] = e[i].index;
		}
		/* Skip the one KVM refused, if any, and go on. */
		next += (uint32_t)got + ((unsigned)got < want ? 1 : 0);
	}
	return 0;
}

int fb_x86_vcpu_msr_list(int kvm_fd, int vcpu_fd,
			 uint32_t list[FB_X86_MAX_MSRS])
{
	struct kvm_msr_list *kl = NULL;
	unsigned n = 0;
	int err;

	err = msr_index_list(kvm_fd, &kl);
	if (err < 0)
		return err;
	for (size_t r = 0; r < sizeof(msr_allow) / sizeof(msr_allow[0]) &&
			   !err; r++) {
		const struct msr_range *a = &msr_allow[r];

		if (a->source == PROBE) {
			err = probe_range(vcpu_fd, a->first, a->last, list,
					  &n);
			continue;
		}
		for (uint32_t i = a->first; i <= a->last && !err; i++) {
			if (!listed(kl, i))
				continue;
			if (n >= FB_X86_MAX_MSRS)
				err = fb_errorf(-E2BIG, "more than %d MSRs to "
						"save (raise FB_X86_MAX_MSRS)",
						FB_X86_MAX_MSRS);
			else
				list[n++] = i;
		}
	}
	free(kl);
	return err < 0 ? err : (int)n;
}

/* Reads or writes all n entries in chunks; a short count is an error
 * naming the MSR KVM stopped at. */
static int msrs_chunked(int vcpu_fd, unsigned long req, const char *name,
			struct kvm_msr_entry *e, unsigned n)
{
	for (unsigned at = 0; at < n; at += MSR_CHUNK) {
		unsigned want = n - at > MSR_CHUNK ? MSR_CHUNK : n - at;
		int got = msr_io(vcpu_fd, req, e + at, want);

		if (got < 0)
			return fb_errorf(got, "%s (MSRs %u..%u of %u): %s",
					 name, at, at + want - 1, n,
					 strerror(-got));
		if ((unsigned)got != want)
			return fb_errorf(-EIO, "%s: KVM refused MSR 0x%x "
					 "(entry %u of %u)", name,
					 e[at + (unsigned)got].index,
					 at + (unsigned)got, n);
	}
	return 0;
}

/* The XSAVE image's size on this host: KVM_CAP_XSAVE2 gives it when it
 * is more than struct kvm_xsave (AMX tiles, once the process has asked
 * for them with arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM)); 4096 otherwise. */
static int xsave_size(int kvm_fd)
{
	int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	if (size < (int)sizeof(struct kvm_xsave))
		size = sizeof(struct kvm_xsave);
	if (size > FB_X86_XSAVE_MAX)
		return fb_errorf(-E2BIG, "this host's XSAVE state is %d bytes, "
				 "more than the %d forkbox keeps (a new XSAVE "
				 "component?)", size, FB_X86_XSAVE_MAX);
	return size;
}

static int required_caps(int kvm_fd)
{
	static const struct { long cap; const char *name; } caps[] = {
		{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
		{ KVM_CAP_XSAVE, "KVM_CAP_XSAVE" },
		{ KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS" },
		{ KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
	};

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (!has_cap(kvm_fd, caps[i].cap))
			return fb_errorf(-ENOTSUP, "KVM lacks %s: this host "
					 "cannot save or restore a vCPU",
					 caps[i].name);
	return 0;
}

#define VCPU_GET(fd, req, arg)						\
	(ioctl((fd), (req), (arg)) < 0 ?				\
	 fb_errorf(-errno, #req ": %s", strerror(errno)) : 0)

int fb_x86_vcpu_state_save(int kvm_fd, int vcpu_fd,
			   struct fb_x86_vcpu_state *st)
{
	uint32_t list[FB_X86_MAX_MSRS];
	int err, n, size;

	/* Zeroed whole: unused space and padding are then the same bytes
	 * in every file. */
	memset(st, 0, sizeof(*st));
	st->version = FB_X86_VCPU_STATE_VERSION;
	err = required_caps(kvm_fd);
	if (err < 0)
		return err;
	size = xsave_size(kvm_fd);
	if (size < 0)
		return size;

	/* MP_STATE first: reading it makes KVM act on a pending INIT or
	 * SIPI (kvm_apic_accept_events), which changes the registers and
	 * the LAPIC; everything read after it is then consistent with it. */
	err = VCPU_GET(vcpu_fd, KVM_GET_MP_STATE, &st->mp_state);
	if (!err)
		err = VCPU_GET(vcpu_fd, KVM_GET_REGS, &st->regs);
	if (!err)
		err = VCPU_GET(vcpu_fd, KVM_GET_SREGS, &st->sregs);
	if (!err) {
		st->xsave_size = (uint32_t)size;
		if (size > (int)sizeof(struct kvm_xsave))
			err = VCPU_GET(vcpu_fd, KVM_GET_XSAVE2, st->xsave);
		else
			err = VCPU_GET(vcpu_fd, KVM_GET_XSAVE, st->xsave);
	}
	/* A CPU without XSAVE has no XCRs (nr_xcrs stays 0). */
	if (!err && has_cap(kvm_fd, KVM_CAP_XCRS))
		err = VCPU_GET(vcpu_fd, KVM_GET_XCRS, &st->xcrs);
	if (!err)
		err = VCPU_GET(vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs);
	/* The LAPIC read also folds posted interrupts into its IRR. */
	if (!err)
		err = VCPU_GET(vcpu_fd, KVM_GET_LAPIC, &st->lapic);
	if (err < 0)
		return err;
	if (has_cap(kvm_fd, KVM_CAP_GET_TSC_KHZ)) {
		int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

		if (khz <= 0)
			return fb_errorf(khz < 0 ? -errno : -EIO,
					 "KVM_GET_TSC_KHZ: %s", khz < 0 ?
					 strerror(errno) : "returned 0");
		st->tsc_khz = (uint32_t)khz;
	} /* else 0: the rate is unknown and restore cannot check it */

	n = fb_x86_vcpu_msr_list(kvm_fd, vcpu_fd, list);
	if (n < 0)
		return n;
	st->nmsrs = (uint32_t)n;
	for (int i = 0; i < n; i++)
		st->msrs[i].index = list[i];
	err = msrs_chunked(vcpu_fd, KVM_GET_MSRS, "KVM_GET_MSRS", st->msrs,
			   st->nmsrs);
	if (err < 0)
		return err;

	/* VCPU_EVENTS last: the pending exception, interrupt, NMI and the
	 * interrupt shadow are what the reads above may still settle, so
	 * they are taken when nothing else will be read. */
	return VCPU_GET(vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events);
}

int fb_x86_vcpu_state_check(const struct fb_x86_vcpu_state *st)
{
	if (st->version != FB_X86_VCPU_STATE_VERSION)
		return fb_errorf(-EINVAL, "vCPU state version %u: this forkbox "
				 "reads version %u only", st->version,
				 FB_X86_VCPU_STATE_VERSION);
	if (st->xsave_size < sizeof(struct kvm_xsave) ||
	    st->xsave_size > FB_X86_XSAVE_MAX)
		return fb_errorf(-EINVAL, "vCPU state: XSAVE size %u is not in "
				 "%zu..%d", st->xsave_size,
				 sizeof(struct kvm_xsave), FB_X86_XSAVE_MAX);
	if (st->nmsrs > FB_X86_MAX_MSRS)
		return fb_errorf(-EINVAL, "vCPU state: nmsrs %u is over the "
				 "cap of %d", st->nmsrs, FB_X86_MAX_MSRS);
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return fb_errorf(-EINVAL, "vCPU state: nr_xcrs %u is over %d",
				 st->xcrs.nr_xcrs, KVM_MAX_XCRS);
	if (st->reserved0)
		return fb_errorf(-EINVAL, "vCPU state: reserved field is not "
				 "zero");
	for (uint32_t i = 0; i < st->nmsrs; i++) {
		if (st->msrs[i].reserved)
			return fb_errorf(-EINVAL, "vCPU state: MSR entry %u "
					 "(0x%x) has reserved bits set", i,
					 st->msrs[i].index);
		for (uint32_t j = 0; j < i; j++)
			if (st->msrs[j].index == st->msrs[i].index)
				return fb_errorf(-EINVAL, "vCPU state: MSR 0x%x "
						 "twice", st->msrs[i].index);
	}
	return 0;
}

#define VCPU_SET(fd, req, arg)						\
	(ioctl((fd), (req), (arg)) < 0 ?				\
	 fb_errorf(-errno, #req ": %s", strerror(errno)) : 0)

/* The TSC rate the guest calibrated against: kept if this host's differs
 * and KVM can scale, else the restore fails (the guest's clocks would run
 * at the wrong speed). Before the TSC itself is written. */
static int restore_tsc_khz(int kvm_fd, int vcpu_fd, uint32_t khz)
{
	int now;

	if (!khz || !has_cap(kvm_fd, KVM_CAP_GET_TSC_KHZ))
		return 0;
	now = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (now < 0)
		return fb_errorf(-errno, "KVM_GET_TSC_KHZ: %s",
				 strerror(errno));
	if ((uint32_t)now == khz)
		return 0;
	if (ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0)
		return fb_errorf(-ENOTSUP, "the snapshot's TSC ran at %u kHz, "
				 "this vCPU's at %d kHz, and KVM_SET_TSC_KHZ "
				 "failed: %s", khz, now, strerror(errno));
	return 0;
}

/* The MSRs in the saved order but TSC_DEADLINE after everything else: a
 * deadline is a TSC value, and KVM arms the LAPIC timer against the TSC
 * it has when the deadline is written (before the TSC write that would
 * be the old or the boot TSC: the timer fires at the wrong time, or in
 * effect never). */
static int restore_msrs(int vcpu_fd, const struct fb_x86_vcpu_state *st)
{
	struct kvm_msr_entry *e;
	uint32_t lvtt;
	unsigned n = 0, ndeferred = 0;
	uint64_t tsc = 0;
	bool have_tsc = false;
	int err;

	e = malloc(st->nmsrs * sizeof(*e) + 1);
	if (!e)
		return fb_errorf(-ENOMEM, "malloc for %u MSRs", st->nmsrs);
	for (uint32_t i = 0; i < st->nmsrs; i++) {
		if (st->msrs[i].index == MSR_IA32_TSC) {
			tsc = st->msrs[i].data;
			have_tsc = true;
		}
		if (st->msrs[i].index != MSR_IA32_TSC_DEADLINE)
			e[n++] = st->msrs[i];
	}
	for (uint32_t i = 0; i < st->nmsrs; i++) {
		if (st->msrs[i].index != MSR_IA32_TSC_DEADLINE)
			continue;
		e[n + ndeferred] = st->msrs[i];
		/* A deadline of 0 with the timer in TSC-deadline mode means
		 * it fired. Firecracker reports saves where it read 0 yet
		 * the guest never saw that tick (it sat somewhere KVM does
		 * not report), leaving a tickless guest waiting for ever.
		 * Re-arming at the saved TSC fires it right after the
		 * restore; if the tick had arrived, the guest gets one
		 * early extra tick, which Linux's clockevents code takes
		 * in its stride (it looks for expired timers, reprograms). */
		memcpy(&lvtt, &st->lapic.regs[APIC_LVTT], sizeof(lvtt));
		if (e[n + ndeferred].data == 0 && have_tsc &&
		    APIC_LVT_TIMER_MODE(lvtt) == APIC_TIMER_TSC_DEADLINE &&
		    !(lvtt & APIC_LVT_MASKED))
			e[n + ndeferred].data = tsc;
		ndeferred++;
	}
	err = msrs_chunked(vcpu_fd, KVM_SET_MSRS, "KVM_SET_MSRS", e,
			   n + ndeferred);
	free(e);
	return err;
}

int fb_x86_vcpu_state_restore(int kvm_fd, int vcpu_fd,
			      const struct fb_x86_vcpu_state *st)
{
	uint32_t *xsave;
	int err, size;

	err = fb_x86_vcpu_state_check(st);
	if (!err)
		err = required_caps(kvm_fd);
	if (err < 0)
		return err;
	size = xsave_size(kvm_fd);
	if (size < 0)
		return size;

	/* The TSC rate before any TSC value is written. */
	err = restore_tsc_khz(kvm_fd, vcpu_fd, st->tsc_khz);
	/* REGS early, before VCPU_EVENTS: KVM_SET_REGS drops any pending
	 * exception, which VCPU_EVENTS then puts back. */
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_REGS, &st->regs);
	/* SREGS before LAPIC: it carries APIC_BASE, and a change of LAPIC
	 * mode (off, xAPIC, x2APIC) resets LAPIC registers; it also sets
	 * CR0/CR4/EFER, which the rest is read under. */
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_SREGS, &st->sregs);
	/* KVM_SET_XSAVE reads this host's XSAVE size, which may exceed what
	 * was saved: the rest is zero (and ignored: components the saved
	 * XSTATE_BV leaves out go to their initial state). */
	if (!err) {
		xsave = calloc(1, FB_X86_XSAVE_MAX);
		if (!xsave)
			return fb_errorf(-ENOMEM, "calloc for XSAVE");
		memcpy(xsave, st->xsave, st->xsave_size);
		if (ioctl(vcpu_fd, KVM_SET_XSAVE, xsave) < 0)
			err = fb_errorf(-errno, "KVM_SET_XSAVE (%u bytes saved, "
					"%d here): %s", st->xsave_size, size,
					strerror(errno));
		free(xsave);
	}
	if (!err)
		err = st->xcrs.nr_xcrs ?
		      VCPU_SET(vcpu_fd, KVM_SET_XCRS, &st->xcrs) : 0;
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_DEBUGREGS, &st->debugregs);
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_LAPIC, &st->lapic);
	/* MP_STATE after SREGS (KVM_SET_SREGS may make a vCPU at the reset
	 * vector runnable) and after LAPIC (a pending SIPI is a LAPIC
	 * event); before VCPU_EVENTS, which holds the latched INIT. */
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_MP_STATE, &st->mp_state);
	/* MSRs after LAPIC: KVM takes a TSC_DEADLINE write only when the
	 * LAPIC timer is in TSC-deadline mode. Inside, the TSC before the
	 * deadline (restore_msrs). */
	if (!err)
		err = restore_msrs(vcpu_fd, st);
	/* VCPU_EVENTS last: the pending exception, interrupt and NMI go
	 * back after everything that could clear or re-derive them. */
	if (!err)
		err = VCPU_SET(vcpu_fd, KVM_SET_VCPU_EVENTS, &st->events);
	if (err < 0)
		return err;
	/* Tell a kvmclock guest that it was stopped, so its watchdogs do not
	 * take the gap for a lock-up. EINVAL: the guest has no kvmclock. */
	if (has_cap(kvm_fd, KVM_CAP_KVMCLOCK_CTRL) &&
	    ioctl(vcpu_fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		return fb_errorf(-errno, "KVM_KVMCLOCK_CTRL: %s",
				 strerror(errno));
	return 0;
}
