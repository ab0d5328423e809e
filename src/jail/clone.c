/* A VMM's process tree born in its box's cgroup: clone3 with
 * CLONE_INTO_CGROUP puts the child there as it is created, where a move
 * afterwards (cgroup.procs) takes the cgroup threadgroup lock for
 * writing and waits for an RCU grace period (~20 ms a box in the lab). */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/jail.h"

pid_t fb_jail_fork_into_cgroup(int cgroup_fd)
{
	struct clone_args args;
	long pid;

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cgroup_fd;
	pid = syscall(SYS_clone3, &args, sizeof(args));
	/* Kernels before 5.7 (no CLONE_INTO_CGROUP, or no clone3): the
	 * VMM moves itself in, as fb_jail_cgroup_setup does then. */
	if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL))
		return fork();
	return (pid_t)pid;
}
