/* lab-init: PID 1 of the lab VM (see scripts/lab and docs/ARCHITECTURE.md).
 *
 * The lab is a QEMU TCG VM whose emulated CPU has SVM, booted with Debian's
 * generic kernel (it has 9p). This init:
 *   1. mounts devtmpfs, proc, sysfs and loads the modules in /mods (virtio,
 *      9p, overlay, then kvm and kvm-amd so /dev/kvm appears);
 *   2. mounts the host's "/" (9p tag "host", read-only) under a tmpfs
 *      overlay, so the command sees the host's tree at the same paths and
 *      its writes stay in the VM's RAM;
 *   3. mounts the job directory (9p tag "labout", writable) at /out and reads
 *      the job the host wrote there: "cmd" (argv, each NUL-terminated),
 *      "cwd" (one path) and "env" (K=V, each NUL-terminated);
 *   4. runs the command chrooted in the overlay, with stdout and stderr on
 *      /out/stdout and /out/stderr (9p without caching, so the host can
 *      relay them while the command runs), and stdin on /dev/null;
 *   5. writes the command's exit status (128+N for signal N) to /out/status
 *      (via a temporary name and rename), syncs and powers off.
 * Anything that goes wrong before the command runs is a lab failure: it is
 * written to /out/lab-error (one line) when /out is mounted, and always to
 * the console, and the VM powers off. The host script tells the two apart.
 *
 * Nothing here sleeps: each step either succeeds synchronously (module init
 * probes devices before finit_module returns; devtmpfs nodes exist when the
 * device is added) or fails with an error that is reported. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_DIR   "/out"
#define LOWER_DIR "/host"
#define RW_DIR    "/rw"
#define ROOT_DIR  "/root"
#define JOB_MAX   (4u << 20) /* cap on cmd and env files */
#define HEARTBEAT_S 5        /* scripts/lab: LAB_HEARTBEAT_MAX_S */

static const char *const modules[] = {
	"virtio_ring", "virtio", "virtio_pci_modern_dev",
	"virtio_pci_legacy_dev", "virtio_pci", "netfs", "fscache", "9pnet",
	"9pnet_virtio", "9p", "overlay", "irqbypass", "kvm", "ccp",
	"kvm-amd",
};

static int out_mounted;

static void console_open(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* nowhere else to say it */
	}
}

static __attribute__((noreturn)) void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

/* Write a whole buffer to a new file in /out, atomically (tmp + rename). */
static int out_write(const char *name, const char *data, size_t len)
{
	char tmp[64], dst[64];
	int fd;

	snprintf(tmp, sizeof(tmp), OUT_DIR "/.%s.tmp", name);
	snprintf(dst, sizeof(dst), OUT_DIR "/%s", name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, data, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		data += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0 && errno != EINVAL) {
		int e = -errno;
		close(fd);
		return e;
	}
	close(fd);
	if (rename(tmp, dst) < 0)
		return -errno;
	return 0;
}

static __attribute__((noreturn, format(printf, 1, 2)))
void lab_fail(const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n] = '\0';
	say("lab-init: %s", msg);
	if (out_mounted) {
		msg[n++] = '\n';
		out_write("lab-error", msg, (size_t)n);
	}
	power_off();
}

static int load_module(const char *name)
{
	char path[128];
	int fd;
	long r;

	snprintf(path, sizeof(path), "/mods/%s.ko", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* absent: built in */
	r = syscall(SYS_finit_module, fd, "", 0);
	int e = errno;
	close(fd);
	if (r < 0 && e != EEXIST)
		return -e;
	return 0;
}

static void mkdir_p(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		lab_fail("mkdir %s: %s", path, strerror(errno));
}

static void do_mount(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *opts)
{
	mkdir_p(dst);
	if (mount(src, dst, type, flags, opts) < 0)
		lab_fail("mount %s (%s) on %s: %s", src, type ? type : "bind",
			 dst, strerror(errno));
}

/* Bring up loopback: cheap, and tools inside the lab expect it. */
static void loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			say("lab-init: loopback up: %s", strerror(errno));
	}
	close(s);
}

/* Read a job file from /out; always NUL-terminated (an extra NUL after the
 * data). Returns its length, or lab_fail()s. */
static char *read_job(const char *name, size_t *lenp)
{
	char path[64];
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd;

	snprintf(path, sizeof(path), OUT_DIR "/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		lab_fail("open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		lab_fail("stat %s: %s", path, strerror(errno));
	if (st.st_size < 0 || (unsigned long long)st.st_size > JOB_MAX)
		lab_fail("%s: size %lld over the cap of %u", path,
			 (long long)st.st_size, JOB_MAX);
	buf = malloc((size_t)st.st_size + 2);
	if (!buf)
		lab_fail("%s: out of memory", path);
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			lab_fail("read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	buf[len + 1] = '\0';
	*lenp = len;
	return buf;
}

/* Split a buffer of NUL-terminated strings into a NULL-ended vector. */
static char **split_nul(char *buf, size_t len, size_t *countp)
{
	size_t n = 0, i = 0;
	char **v;

	for (size_t k = 0; k < len; k++)
		if (buf[k] == '\0')
			n++;
	if (len && buf[len - 1] != '\0')
		n++; /* last string without its NUL: read_job added one */
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		lab_fail("out of memory");
	for (size_t k = 0; k < len && i < n; i++) {
		v[i] = buf + k;
		k += strlen(buf + k) + 1;
	}
	v[i] = NULL;
	*countp = i;
	return v;
}

static void setup_root(void)
{
	/* The host's tree, read-only, with RAM for writes on top. */
	do_mount("host", LOWER_DIR, "9p", MS_RDONLY,
		 "trans=virtio,version=9p2000.L,msize=512000,cache=loose");
	do_mount("tmpfs", RW_DIR, "tmpfs", 0, "mode=0755");
	mkdir_p(RW_DIR "/upper");
	mkdir_p(RW_DIR "/work");
	do_mount("overlay", ROOT_DIR, "overlay", 0,
		 "lowerdir=" LOWER_DIR ",upperdir=" RW_DIR "/upper,workdir="
		 RW_DIR "/work");
	do_mount("/dev", ROOT_DIR "/dev", NULL, MS_BIND | MS_REC, NULL);
	do_mount("proc", ROOT_DIR "/proc", "proc", MS_NOSUID | MS_NODEV |
		 MS_NOEXEC, NULL);
	do_mount("sysfs", ROOT_DIR "/sys", "sysfs", MS_NOSUID | MS_NODEV |
		 MS_NOEXEC, NULL);
	/* /tmp stays the overlay's: the host's /tmp is visible (a caller
	 * often works in a mktemp dir) and writes land in RAM. A fresh
	 * tmpfs on /run hides the host's daemons' sockets and pid files. */
	do_mount("tmpfs", ROOT_DIR "/run", "tmpfs", MS_NOSUID | MS_NODEV,
		 "mode=0755");
}

/* What the child reports on the CLOEXEC pipe when it fails before exec. */
struct child_err {
	int stage; /* 1: chroot/chdir (lab failure), 2: exec */
	int err;
};

static void child(char **argv, char **envp, const char *cwd, int out_fd,
		  int err_fd, int pipe_fd)
{
	struct child_err ce = { 0, 0 };
	int null_fd;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (chroot(ROOT_DIR) < 0 || chdir("/") < 0 || chdir(cwd) < 0) {
		ce.stage = 1;
		ce.err = errno;
		goto fail;
	}
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
	    dup2(err_fd, 2) < 0) {
		ce.stage = 1;
		ce.err = errno;
		goto fail;
	}
	if (null_fd > 2)
		close(null_fd);
	/* execvp searches the PATH of environ: use the job's. */
	environ = envp;
	execvp(argv[0], argv);
	ce.stage = 2;
	ce.err = errno;
	dprintf(2, "lab: %s: %s\n", argv[0], strerror(ce.err));
fail:
	if (write(pipe_fd, &ce, sizeof(ce)) < 0) {
		/* the parent sees EOF and an odd exit status */
	}
	_exit(ce.err == ENOENT ? 127 : 126);
}

/* The host cannot tell a quiet command from a lab that froze whole (seen
 * now and then: TCG with nested SVM on a 2-core host, the kernel too
 * stuck to report it): the job share's heartbeat file is rewritten every
 * HEARTBEAT_S seconds, and scripts/lab stops a lab that stops beating. */
static void start_heartbeat(void)
{
	pid_t pid = fork();

	if (pid != 0) {
		if (pid < 0)
			say("lab-init: fork for the heartbeat: %s",
			    strerror(errno));
		return;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Busy boxes must not starve it into a false alarm. */
	setpriority(PRIO_PROCESS, 0, -20);
	for (unsigned long beat = 0;; beat++) {
		char text[32];
		int n = snprintf(text, sizeof(text), "%lu\n", beat);

		(void)out_write("heartbeat", text, (size_t)n);
		sleep(HEARTBEAT_S);
	}
}

int main(void)
{
	size_t cmd_len, env_len, cwd_len, argc, envc;
	char *cmd, *env, *cwd, **argv, **envp;
	struct child_err ce;
	int out_fd, err_fd, pfd[2], st = 0, code;
	char status[32];
	pid_t pid, w;
	ssize_t r;

	/* devtmpfs first: the console lives there (the initramfs has no
	 * /dev/console node, so the kernel gave us no stdio). */
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	console_open();
	do_mount("proc", "/proc", "proc", 0, NULL);
	do_mount("sysfs", "/sys", "sysfs", 0, NULL);
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "gid=5,mode=620,ptmxmode=666");
	do_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		 "mode=1777");

	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		int e = load_module(modules[i]);

		if (e < 0)
			say("lab-init: load %s: %s", modules[i], strerror(-e));
	}
	loopback_up();
	if (sethostname("lab", 3) < 0)
		say("lab-init: sethostname: %s", strerror(errno));

	/* The job directory first, so later failures can be reported there. */
	do_mount("labout", OUT_DIR, "9p", MS_NOSUID | MS_NODEV,
		 "trans=virtio,version=9p2000.L,msize=512000,cache=none");
	out_mounted = 1;
	start_heartbeat();

	cmd = read_job("cmd", &cmd_len);
	env = read_job("env", &env_len);
	cwd = read_job("cwd", &cwd_len);
	argv = split_nul(cmd, cmd_len, &argc);
	envp = split_nul(env, env_len, &envc);
	if (argc == 0)
		lab_fail("empty command in " OUT_DIR "/cmd");
	while (cwd_len && cwd[cwd_len - 1] == '\n')
		cwd[--cwd_len] = '\0';
	if (cwd[0] != '/')
		lab_fail("cwd \"%s\" is not absolute", cwd);

	setup_root();

	out_fd = open(OUT_DIR "/stdout", O_WRONLY | O_CREAT | O_APPEND |
		      O_CLOEXEC, 0644);
	err_fd = open(OUT_DIR "/stderr", O_WRONLY | O_CREAT | O_APPEND |
		      O_CLOEXEC, 0644);
	if (out_fd < 0 || err_fd < 0)
		lab_fail("open " OUT_DIR "/stdout or stderr: %s",
			 strerror(errno));
	if (pipe2(pfd, O_CLOEXEC) < 0)
		lab_fail("pipe2: %s", strerror(errno));

	pid = fork();
	if (pid < 0)
		lab_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		child(argv, envp, cwd, out_fd, err_fd, pfd[1]);
	}
	close(pfd[1]);
	do
		r = read(pfd[0], &ce, sizeof(ce));
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof(ce) && ce.stage == 1)
		lab_fail("chroot/chdir to \"%s\": %s", cwd, strerror(ce.err));

	/* PID 1 inherits orphans: reap everything until our child is done. */
	for (;;) {
		w = waitpid(-1, &st, 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			lab_fail("waitpid: %s", strerror(errno));
	}
	if (WIFEXITED(st))
		code = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		code = 128 + WTERMSIG(st);
	else
		code = 125;
	fsync(out_fd);
	fsync(err_fd);
	close(out_fd);
	close(err_fd);
	int n = snprintf(status, sizeof(status), "%d\n", code);
	int e = out_write("status", status, (size_t)n);
	if (e < 0)
		lab_fail("write " OUT_DIR "/status: %s", strerror(-e));
	power_off();
}
