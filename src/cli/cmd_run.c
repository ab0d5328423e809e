#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "box/boxdir.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "forkbox/forkbox.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox run [OPTIONS] -- CMD [ARG...]\n"
"\n"
"Boots a fresh box (a Linux microVM), runs CMD in it with stdin from\n"
"/dev/null, relays its stdout and stderr, and exits with its status.\n"
"\n"
"options:\n"
"  --cpus N          vCPUs (1..255, default 1)\n"
"  --mem MiB         guest memory (32..65536, default 256)\n"
"  --timeout S       stop the box after S seconds (exit 124; default none)\n"
"  --kernel FILE     guest bzImage (default $FORKBOX_HOME/kernels/default/vmlinuz)\n"
"  --initrd FILE     initramfs (default: the one beside forkbox)\n"
"  --console         copy the guest console to stderr as it boots\n"
"  --keep-log        keep the box's console log even when all went well\n"
"  --stats           print boot and run times to stderr when done\n"
"\n"
"exit status: CMD's; 125 when forkbox itself fails (the guest's console\n"
"log is kept and named); 126 CMD cannot execute; 127 CMD not found;\n"
"124 timeout. Needs a host whose KVM runs Linux (see forkbox host-check).\n");
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "console", no_argument, NULL, 'C' },
		{ "keep-log", no_argument, NULL, 'K' },
		{ "stats", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_run_config cfg = {
		.cpus = 1, .mem_mib = 256, .console_live_fd = -1,
		.stdout_fd = STDOUT_FILENO, .stderr_fd = STDERR_FILENO,
	};
	char id[FB_BOX_ID_LEN + 1], dir[PATH_MAX], log[PATH_MAX + 16];
	struct fb_run_result res;
	uint64_t v;
	bool keep_log = false, stats = false;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (fb_cli_uint("run", "--cpus", optarg, 1, 255, &v))
				return 2;
			cfg.cpus = (unsigned)v;
			break;
		case 'm':
			if (fb_cli_uint("run", "--mem", optarg, 32, 65536, &v))
				return 2;
			cfg.mem_mib = v;
			break;
		case 't':
			if (fb_cli_uint("run", "--timeout", optarg, 1, 86400,
					&v))
				return 2;
			cfg.timeout_ms = (unsigned)v * 1000;
			break;
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'C':
			cfg.console_live_fd = STDERR_FILENO;
			break;
		case 'K':
			keep_log = true;
			break;
		case 'S':
			stats = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "forkbox run: no command given (forkbox run "
			"-- CMD ...)\n");
		return 2;
	}
	cfg.argv = (const char *const *)argv + optind;

	/* Fail at once, with the reason, where Linux cannot boot. */
	if (fb_host_check() < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (fb_box_new_id(id) < 0 || fb_box_dir_create(id, dir, sizeof(dir)) < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	snprintf(log, sizeof(log), "%s/console.log", dir);
	cfg.console_log = log;

	err = fb_run(&cfg, &res);
	if (err < 0) {
		if (res.vm_exit.reason == FB_VM_EXIT_TIMEOUT) {
			fprintf(stderr, "forkbox run: %s\n",
				res.vm_exit.message);
			fb_box_dir_remove(dir);
			return 124;
		}
		fprintf(stderr, "forkbox run: %s (console log: %s)\n",
			fb_last_error(), log);
		return FB_EXIT_OWN_ERROR;
	}
	if (stats)
		fprintf(stderr, "forkbox run: VMM start to guest init %.1f ms, "
			"to command done %.1f ms\n", res.boot_to_init_ms,
			res.total_ms);
	if (keep_log)
		fprintf(stderr, "forkbox run: console log: %s\n", log);
	else
		fb_box_dir_remove(dir);
	return res.exit_status;
}
