#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "forkbox/forkbox.h"

/* Exit statuses of `forkbox vm`, one per way a guest ends. */
enum {
	VM_STATUS_POWEROFF = 0,
	VM_STATUS_REBOOT = 2,
	VM_STATUS_PANIC = 3,
	VM_STATUS_CRASH = 4,
	VM_STATUS_TIMEOUT = 124,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox vm --kernel FILE [OPTIONS]\n"
"\n"
"Boots a kernel in a VM with its console (COM1) on stdout, and runs until\n"
"the guest ends. For debugging and tests; `forkbox run` is the everyday way.\n"
"\n"
"options:\n"
"  --kernel FILE       kernel to boot: a vmlinux with a PVH entry, or a\n"
"                      bzImage (required)\n"
"  --initrd FILE       initramfs\n"
"  --cmdline STRING    kernel command line (default: console=ttyS0 panic=-1)\n"
"  --cpus N            vCPUs (1..255, default 1)\n"
"  --mem MiB           guest memory (16..65536, default 256)\n"
"  --timeout S         stop after S seconds\n"
"  --console-log FILE  also write the console to FILE\n"
"  --quiet             do not copy the console to stdout\n"
"  --rng               add a virtio-rng device\n"
"  --channel-log FILE  write what the guest sends on COM2 (ttyS1) to FILE\n"
"  --skip-host-check   boot even where KVM cannot run Linux (KVM-PVM):\n"
"                      for tiny test guests, not for Linux\n"
"\n"
"exit status: 0 the guest powered off, 2 it rebooted, 3 its kernel\n"
"panicked, 4 KVM could not go on (crash), 124 timeout, 125 forkbox failed.\n");
}

static int status_of(enum fb_vm_exit_reason reason)
{
	switch (reason) {
	case FB_VM_EXIT_POWEROFF: return VM_STATUS_POWEROFF;
	case FB_VM_EXIT_REBOOT: return VM_STATUS_REBOOT;
	case FB_VM_EXIT_PANIC: return VM_STATUS_PANIC;
	case FB_VM_EXIT_TIMEOUT: return VM_STATUS_TIMEOUT;
	default: return VM_STATUS_CRASH;
	}
}

static void channel_byte(void *opaque, uint8_t byte)
{
	fputc(byte, opaque);
}

int cmd_vm(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'l' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "console-log", required_argument, NULL, 'L' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "channel-log", required_argument, NULL, 'O' },
		{ "rng", no_argument, NULL, 'r' },
		{ "skip-host-check", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_vm_config cfg = {
		.cpus = 1, .mem_mib = 256, .console_log_fd = -1,
		.console_live_fd = STDOUT_FILENO,
		.cmdline = "console=ttyS0 panic=-1",
	};
	const char *log_path = NULL, *channel_path = NULL;
	FILE *channel = NULL;
	bool skip_check = false;
	struct fb_vm_exit ex;
	struct fb_vm *vm;
	uint64_t v;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'i': cfg.initrd = optarg; break;
		case 'l': cfg.cmdline = optarg; break;
		case 'c':
			if (fb_cli_uint("vm", "--cpus", optarg, 1, 255, &v))
				return 2;
			cfg.cpus = (unsigned)v;
			break;
		case 'm':
			if (fb_cli_uint("vm", "--mem", optarg, 16, 65536, &v))
				return 2;
			cfg.mem_mib = v;
			break;
		case 't':
			if (fb_cli_uint("vm", "--timeout", optarg, 1, 86400, &v))
				return 2;
			cfg.timeout_ms = (unsigned)v * 1000;
			break;
		case 'L': log_path = optarg; break;
		case 'q': cfg.console_live_fd = -1; break;
		case 'O': channel_path = optarg; break;
		case 'r': cfg.rng = true; break;
		case 's': skip_check = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !cfg.kernel) {
		fprintf(stderr, "forkbox vm: %s (see forkbox vm --help)\n",
			cfg.kernel ? "unexpected argument" : "--kernel is "
			"required");
		return 2;
	}
	if (!skip_check && fb_host_check() < 0) {
		fprintf(stderr, "forkbox vm: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (log_path) {
		cfg.console_log_fd = open(log_path, O_WRONLY | O_CREAT |
					  O_TRUNC | O_CLOEXEC, 0644);
		if (cfg.console_log_fd < 0) {
			perror("forkbox vm: open console log");
			return FB_EXIT_OWN_ERROR;
		}
	}
	if (channel_path) {
		channel = fopen(channel_path, "we");
		if (!channel) {
			perror("forkbox vm: open channel log");
			return FB_EXIT_OWN_ERROR;
		}
		cfg.channel = channel_byte;
		cfg.channel_opaque = channel;
	}
	err = fb_vm_create(&cfg, &vm);
	if (!err) {
		err = fb_vm_run(vm, &ex);
		fb_vm_destroy(vm);
	}
	if (cfg.console_log_fd >= 0)
		close(cfg.console_log_fd);
	if (channel)
		fclose(channel);
	if (err < 0) {
		fprintf(stderr, "forkbox vm: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	fprintf(stderr, "forkbox vm: %s: %s\n",
		fb_vm_exit_reason_name(ex.reason), ex.message);
	return status_of(ex.reason);
}
