/* The VMM's seccomp allow list, installed on every thread (TSYNC) once the
 * VM is built. The list is what a running box's VMM calls, measured with
 * `strace -f -c` on a box doing exec, cp and 20 concurrent execs (see
 * docs/SECURITY.md), plus the calls of its error and teardown paths. A
 * call off the list stops the VMM: SIGSYS, whose handler logs the call's
 * number to vmm.log and ends the process (the guest dies with it). */
#include <errno.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/error.h"

static const int allowed[] = {
	/* I/O on fds it holds: KVM, eventfds, epoll, sockets, the logs */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(lseek),
	SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(fcntl),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	/* the box directory: "ready" and "exit" (written atomically), the
	 * sockets it removes when it ends */
	SCMP_SYS(openat), SCMP_SYS(fsync), SCMP_SYS(fdatasync),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
	SCMP_SYS(unlink), SCMP_SYS(unlinkat),
	/* vsock's host side: Unix sockets by path (socket() is AF_UNIX
	 * only, below) */
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(connect),
	SCMP_SYS(sendmsg), SCMP_SYS(sendto), SCMP_SYS(recvmsg),
	SCMP_SYS(recvfrom), SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	/* threads (clone() only with CLONE_THREAD, below) and memory (no
	 * executable mappings, below) */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap),
	SCMP_SYS(sched_yield), SCMP_SYS(getpid), SCMP_SYS(gettid),
	/* time, signals (the vCPU kick), randomness (virtio-rng), the end */
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
	SCMP_SYS(getrandom), SCMP_SYS(exit), SCMP_SYS(exit_group),
	/* a vCPU eats the kick that ended its KVM_RUN (vcpu.c) */
	SCMP_SYS(rt_sigtimedwait),
	/* harmless questions and signal set-up that runtimes ask for at any
	 * time (glibc, and the sanitizers' runtime in make test-asan) */
	SCMP_SYS(sched_getaffinity), SCMP_SYS(sigaltstack),
	SCMP_SYS(rt_sigaction), SCMP_SYS(getrlimit),
	/* snapshots: state and memory files in a directory made for it
	 * inside the box directory (sparse: holes by ftruncate); forks:
	 * memfds for the state and the frozen memory layers (sealed with
	 * fcntl), sent to the caller with sendmsg; the guest's touched
	 * pages by mincore, unless sysinfo shows swap */
	SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(memfd_create),
	SCMP_SYS(mincore), SCMP_SYS(sysinfo),
};

static void put_str(char **p, const char *s)
{
	while (*s)
		*(*p)++ = *s++;
}

/* Async-signal-safe: formats by hand, writes, exits. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char buf[160], digits[12], *p = buf;
	unsigned n = (unsigned)si->si_syscall, i = 0;

	(void)sig;
	(void)uc;
	do {
		digits[i++] = (char)('0' + n % 10);
		n /= 10;
	} while (n && i < sizeof(digits));
	put_str(&p, "forkbox vmm: seccomp: the jail stopped the VMM at "
		    "syscall ");
	while (i)
		*p++ = digits[--i];
	put_str(&p, " (x86_64; scmp_sys_resolver names it), which is not "
		    "on its allow list\n");
	(void)!write(STDERR_FILENO, buf, (size_t)(p - buf));
	syscall(SYS_exit_group, 128 + SIGSYS);
}

static int rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
		const struct scmp_arg_cmp *args)
{
	int err = seccomp_rule_add_array(ctx, action, nr, n, args);

	if (err < 0) {
		char *name = seccomp_syscall_resolve_num_arch(
			SCMP_ARCH_NATIVE, nr);

		err = fb_errorf(err, "seccomp rule for %s: %s",
				name ? name : "?", strerror(-err));
		free(name);
	}
	return err;
}

int fb_jail_seccomp(void)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	int err = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return fb_errorf(-errno, "sigaction(SIGSYS): %s",
				 strerror(errno));
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return fb_errorf(-ENOMEM, "seccomp_init failed");
	/* Every thread, the vsock I/O thread included; later ones inherit. */
	err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (err < 0) {
		fb_errorf(err, "seccomp TSYNC: %s", strerror(-err));
		goto out;
	}
	for (size_t i = 0; !err && i < sizeof(allowed) / sizeof(allowed[0]);
	     i++)
		err = rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL);
	{
		/* KVM's ioctls (type KVMIO) only; stdio's tty probe gets
		 * ENOTTY. */
		struct scmp_arg_cmp kvm = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00,
						  (uint64_t)KVMIO << 8);
		struct scmp_arg_cmp tty = SCMP_A1(SCMP_CMP_EQ, TCGETS);
		/* Threads, never processes. */
		struct scmp_arg_cmp thr = SCMP_A0(SCMP_CMP_MASKED_EQ,
						  CLONE_THREAD, CLONE_THREAD);
		/* Nothing executable is ever mapped again. */
		struct scmp_arg_cmp mmap_nx = SCMP_A2(SCMP_CMP_MASKED_EQ,
						      PROT_EXEC, 0);
		struct scmp_arg_cmp unix_only = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
		/* Signals to our own threads only (the kick). */
		struct scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ,
						   (uint64_t)getpid());

		/* A restore's userfaultfd handler (type 0xAA). */
		struct scmp_arg_cmp uffd = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00,
						   (uint64_t)0xAA << 8);

		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &kvm);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &uffd);
		if (!err)
			err = rule(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl),
				   1, &tty);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thr);
		/* glibc falls back to clone() when clone3 is missing; its
		 * flags sit in memory, where seccomp cannot look. */
		if (!err)
			err = rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
				   0, NULL);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				   &mmap_nx);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				   &mmap_nx);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				   &unix_only);
		if (!err)
			err = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				   &self);
	}
	if (!err) {
		err = seccomp_load(ctx);
		if (err < 0)
			fb_errorf(err, "seccomp_load: %s", strerror(-err));
	}
out:
	seccomp_release(ctx);
	return err;
}
