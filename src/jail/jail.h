/* The jail around a box's VMM process (docs/SECURITY.md): its own cgroup
 * with memory, CPU and task limits; new mount, network, IPC and UTS
 * namespaces (and a PID namespace, entered by the process that forks the
 * VMM); a root that holds nothing but the box's directory; a uid and gid
 * of its own with no capabilities; and a seccomp allow list on every
 * thread.
 *
 * Two steps, because privilege is needed to build the VM and the mount
 * namespace must be entered before any thread exists (namespaces belong
 * to threads; threads created later inherit the creator's):
 *
 *   fb_jail_prepare()  while the process has one thread, before
 *                      fb_vm_create(): cgroup (so that guest memory is
 *                      charged to the box from its first page), unshare
 *                      the namespaces, make every mount private.
 *   fb_jail_enter()    after fb_vm_create() (/dev/kvm open, VM, memory,
 *                      vCPU fds, sockets bound, kernel read) and before
 *                      any vCPU runs: pivot_root, drop to the box's uid,
 *                      seccomp with TSYNC (covers the vsock I/O thread
 *                      that fb_vm_create started; later threads inherit).
 */
#ifndef FB_JAIL_JAIL_H
#define FB_JAIL_JAIL_H

#include <stdint.h>
#include <sys/types.h>

/* A box's uid and gid: FB_JAIL_ID_BASE plus the first 7 hex digits of its
 * id (28 bits). No passwd entry; far above the ranges distributions hand
 * out (< 60000 for users, 100000 + 65536 n for subordinate ids in
 * practice). */
#define FB_JAIL_ID_BASE 1000000000u

/* Memory the VMM needs beyond guest RAM (its own heap and stacks, KVM's
 * page tables and vCPU state, socket buffers, the page cache of the files
 * it writes): added to memory.max. */
#define FB_JAIL_MEM_OVERHEAD_MIB 64
/* ... and guest RAM counts twice: pages a fork froze into layers stay
 * charged to the box that froze them, beside the copies its guest writes
 * afterwards, and a restored box's snapshot file fills page cache that is
 * charged to it. memory.max = 2 x RAM + the overhead. */
#define FB_JAIL_MEM_RAM_TIMES 2
/* cpu.max: the vCPUs' share plus half a CPU for the device threads. */
#define FB_JAIL_CPU_PERIOD_US 100000
#define FB_JAIL_IO_QUOTA_US 50000
/* pids.max: threads the VMM may have beyond one per vCPU. */
#define FB_JAIL_PIDS_SPARE 32

#define FB_JAIL_CGROUP_ROOT "/sys/fs/cgroup"
#define FB_JAIL_CGROUP_PARENT "forkbox"

struct fb_jail_config {
	const char *box_dir;   /* the only host directory the VMM sees */
	const char *box_id;    /* names its cgroup */
	uid_t uid;             /* fb_jail_box_uid(box_id) */
	gid_t gid;
	uint64_t mem_max;      /* bytes, memory.max */
	uint64_t cpu_quota_us; /* per FB_JAIL_CPU_PERIOD_US, cpu.max */
	uint64_t pids_max;
};

/* The config for a box with this id, dir, RAM and vCPU count. */
void fb_jail_config_for(struct fb_jail_config *cfg, const char *box_id,
			const char *box_dir, uint64_t mem_mib, unsigned cpus);
uid_t fb_jail_box_uid(const char *box_id);

int fb_jail_prepare(const struct fb_jail_config *cfg);
int fb_jail_enter(const struct fb_jail_config *cfg);

/* For the process that forks the VMM: its next child starts a new PID
 * namespace (the VMM is its PID 1 and sees no other process). */
int fb_jail_new_pid_ns(void);
/* The box's cgroup (made now, with its controllers; limits come with
 * fb_jail_prepare), open for fb_jail_fork_into_cgroup. An fd (O_CLOEXEC)
 * or a negative errno. */
int fb_jail_cgroup_open(const char *box_id);
/* fork(), with the child born in the cgroup cgroup_fd names (clone3,
 * CLONE_INTO_CGROUP); plain fork() on a kernel without it. A raw clone3
 * leaves glibc's cached thread id in the child its parent's: the child
 * may make plain system calls and fork() again (fork() sets it right in
 * its own child), nothing that signals or locks by thread id. */
pid_t fb_jail_fork_into_cgroup(int cgroup_fd);
/* This process's pid as the host sees it (in a new PID namespace getpid()
 * says 1; /proc, still the host's, knows better). */
pid_t fb_jail_host_pid(void);

/* Removes a dead box's cgroup, waiting (an event, with a deadline) for its
 * last task to leave. Nothing to remove is not an error. */
int fb_jail_cleanup(const char *box_id);

/* Pieces (ns.c, cgroup.c, seccomp.c). */
int fb_jail_cgroup_setup(const struct fb_jail_config *cfg);
int fb_jail_unshare(void);
int fb_jail_pivot(const char *box_dir);
int fb_jail_drop_privileges(uid_t uid, gid_t gid);
int fb_jail_seccomp(void);

#endif
