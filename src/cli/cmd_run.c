#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "box/trace.h"
#include "jail/jail.h"
#include "cli/commands.h"
#include "cli/exec_opts.h"
#include "image/oci.h"
#include "forkbox/forkbox.h"
#include "util/clock.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox run [OPTIONS] -- CMD [ARG...]\n"
"\n"
"Boots a fresh box (a Linux microVM), runs CMD in it through the guest\n"
"agent with stdin from /dev/null, relays its stdout and stderr, exits with\n"
"its status and removes the box.\n"
"\n"
"options:\n"
"  --cpus N          vCPUs (1..255, default 1)\n"
"  --mem MiB         guest memory (64..65536, default 256)\n"
"  --env NAME=VALUE  set a variable for CMD (repeatable)\n"
"  --workdir DIR     run CMD in DIR (default /)\n"
"  --timeout S       kill CMD after S seconds (exit 124)\n"
"  --kernel FILE     guest kernel, a vmlinux (PVH entry) or a bzImage (default\n"
"                    $FORKBOX_HOME/kernels/default/vmlinux, else vmlinuz)\n"
"  --initrd FILE     initramfs (default: the one beside forkbox)\n"
"  --image NAME      the root disk: a copy-on-write view of image NAME\n"
"                    (default base; built-in base and python are built on\n"
"                    first use); none: the initramfs is the root\n"
"  --disk FILE[,ro]  an extra disk (/dev/vdb, ...), the file used in place;\n"
"                    ,ro: read-only (repeatable)\n"
"  --ksm             the box's memory is mergeable by KSM: pages equal to\n"
"                    other boxes' are shared once found (forkbox host ksm on\n"
"                    starts the host's scanner); FORKBOX_KSM=1 means the same\n"
"  --console         copy the guest console to stderr as it boots\n"
"  --keep-log        keep the box's directory (console log) afterwards\n"
"  --stats           print boot-to-ready and command times to stderr\n"
"  --trace           print each phase of the way to a ready box and CMD's\n"
"                    exit to stderr, with its time (ms from forkbox run's\n"
"                    start, + the phase's own); guest times are aligned on\n"
"                    the agent's hello by the guest's boot clock\n"
"  --no-jail         run the VMM without its jail (seccomp, namespaces,\n"
"                    cgroup, own uid): for debugging only\n"
"\n"
"exit status: CMD's; 125 forkbox failed (the console log is kept and\n"
"named); 126 CMD cannot execute; 127 not found; 128+N killed by signal N;\n"
"124 timeout. Needs a host whose KVM runs Linux (see forkbox host-check).\n");
}

/* What --trace prints: the CLI's own phases around the VMM's and the
 * guest's (box/trace.h, read from the box's directory), all as ms from
 * the command's start. */
struct run_trace {
	double t0, checked, created, exec_done; /* CLOCK_MONOTONIC ms */
};

static void trace_line(const struct fb_trace_phase *ph, const double *prev)
{
	char at[32], plus[32] = "";

	snprintf(at, sizeof(at), "%s%.1f", ph->approx ? "~" : "", ph->ms);
	if (prev)
		snprintf(plus, sizeof(plus), "%+.1f", ph->ms - *prev);
	fprintf(stderr, "%10s %8s  %s\n", at, plus, ph->what);
}

static void print_trace(const struct run_trace *rt, const char *dir)
{
	struct fb_trace_phase ph[FB_TRACE_MAX_PHASES + 4];
	struct fb_box_trace box;
	char why[256] = "";
	unsigned n = 0;

	if (fb_box_trace_read(dir, &box) < 0)
		snprintf(why, sizeof(why), "%s", fb_last_error());
	ph[n++] = (struct fb_trace_phase){ "forkbox run started", 0, false };
	ph[n++] = (struct fb_trace_phase){ "host checked (KVM usable)",
					   rt->checked - rt->t0, false };
	if (!why[0])
		n += fb_box_trace_phases(&box, rt->t0, ph + n,
					 FB_TRACE_MAX_PHASES);
	ph[n++] = (struct fb_trace_phase){ "box ready (the VMM said ok)",
					   rt->created - rt->t0, false };
	ph[n++] = (struct fb_trace_phase){ "first exec finished (CMD's exit)",
					   rt->exec_done - rt->t0, false };
	fprintf(stderr, "forkbox run: trace (ms from the command's start; + "
		"the phase's own time)\n");
	for (unsigned i = 0; i < n; i++)
		trace_line(&ph[i], i ? &ph[i - 1].ms : NULL);
	if (why[0])
		fprintf(stderr, "forkbox run: no trace from the VMM: %s\n", why);
}

/* What runs, as docker has it: the image's Entrypoint, then the command
 * given (or else the image's Cmd). */
static int image_argv(const struct fb_image_config *img, char **given,
		      int nr_given, char ***out)
{
	size_t n = 0, nr_cmd = nr_given ? (size_t)nr_given : img->n_cmd;
	char **argv = calloc(img->n_entrypoint + nr_cmd + 1, sizeof(*argv));

	if (!argv) {
		fprintf(stderr, "forkbox run: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < img->n_entrypoint; i++)
		argv[n++] = img->entrypoint[i];
	for (size_t i = 0; i < nr_cmd; i++)
		argv[n++] = nr_given ? given[i] : img->cmd[i];
	if (!n) {
		fprintf(stderr, "forkbox run: no command given, and the image "
			"has no Entrypoint or Cmd (forkbox run -- CMD ...)\n");
		free(argv);
		return -1;
	}
	*out = argv;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "image", required_argument, NULL, 'I' },
		{ "disk", required_argument, NULL, 'D' },
		{ "ksm", no_argument, NULL, FB_CLI_OPT_KSM },
		{ "console", no_argument, NULL, 'C' },
		{ "keep-log", no_argument, NULL, 'K' },
		{ "stats", no_argument, NULL, 'S' },
		{ "trace", no_argument, NULL, 'T' },
		{ "no-jail", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* The VMM is a child process (jailed unless --no-jail) that dies
	 * with this one; this process stays unjailed and runs the client. */
	struct fb_box_spec spec = { .cpus = 1, .mem_mib = 256,
				    .console_live_fd = -1, .attached = true,
				    .image = FB_DEFAULT_IMAGE };
	struct fb_exec_opts o = { 0 };
	char id[FB_BOX_ID_LEN + 1], uds[PATH_MAX + 32];
	bool keep = false, stats = false, trace = false;
	struct run_trace rt = { 0 };
	struct fb_box_info b;
	struct fb_image_config defaults;
	char **cmd = NULL;
	double t0 = fb_now_ms(), t_ready;
	int c, r, status;

	rt.t0 = t0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'C': spec.console_live_fd = STDERR_FILENO; continue;
		case 'K': keep = true; continue;
		case 'S': stats = true; continue;
		case 'T': trace = true; continue;
		case 'J': spec.no_jail = true; continue;
		case 'h': usage(stdout); return 0;
		}
		r = fb_cli_box_option("run", c, optarg, &spec);
		if (r == 0)
			r = fb_exec_opt("run", c, optarg, &o);
		if (r < 0)
			return 2;
		if (r == 0) {
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc && !spec.image) {
		fprintf(stderr, "forkbox run: no command given (forkbox run "
			"-- CMD ...)\n");
		return 2;
	}
	if (spec.no_jail)
		fprintf(stderr, "forkbox run: --no-jail: the VMM runs without "
			"its jail (no seccomp, namespaces, cgroup or uid of its "
			"own): for debugging only\n");
	/* Fail at once, with the reason, where Linux cannot boot. */
	if (fb_host_check() < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	rt.checked = fb_now_ms();
	fb_cli_ksm_notice("run", &spec);
	if (fb_box_create(&spec, NULL, id) < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	rt.created = fb_now_ms();
	if (fb_box_find(id, &b) < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	t_ready = fb_now_ms();
	snprintf(uds, sizeof(uds), "%s/%s", b.dir, FB_BOX_VSOCK_NAME);
	if (fb_exec_image_defaults("run", b.dir, &o, &defaults) < 0 ||
	    image_argv(&defaults, argv + optind, argc - optind, &cmd) < 0)
		status = FB_EXIT_OWN_ERROR;
	else
		status = fb_exec_in_box("run", uds, &o, cmd);
	rt.exec_done = fb_now_ms();
	free(cmd);
	fb_image_config_free(&defaults);
	if (trace)
		print_trace(&rt, b.dir);
	if (stats)
		fprintf(stderr, "forkbox run: boot to ready %.1f ms, command "
			"%.1f ms, total %.1f ms\n", b.ready_ms,
			fb_now_ms() - t_ready, fb_now_ms() - t0);
	if (keep || status == FB_EXIT_OWN_ERROR) {
		fb_box_stop(&b, 10000);
		fb_jail_cleanup(b.id);
		fprintf(stderr, "forkbox run: box directory kept: %s\n", b.dir);
	} else if (fb_box_remove(&b, true) < 0) {
		fprintf(stderr, "forkbox run: %s\n", fb_last_error());
	}
	return status;
}
