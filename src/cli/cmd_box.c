/* forkbox create, ps, logs, stop, rm: detached boxes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "box/box.h"
#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "cli/options.h"
#include "cli/via_daemon.h"
#include "host/ksm.h"
#include "util/file.h"

static int fail(const char *cmd)
{
	fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
	return FB_EXIT_OWN_ERROR;
}

/* --cpus and --mem, shared by create and run. */
/* --disk FILE[,ro]: the suffix is cut off in place (arg is argv's). */
static int disk_option(const char *cmd, const char *arg,
		       struct fb_box_spec *spec)
{
	struct fb_box_disk *d = &spec->disks[spec->nr_disks];
	char *comma = strrchr(arg, ',');

	if (spec->nr_disks >= FB_BOX_MAX_EXTRA_DISKS) {
		fprintf(stderr, "forkbox %s: --disk: at most %u extra disks\n",
			cmd, FB_BOX_MAX_EXTRA_DISKS);
		return -1;
	}
	d->read_only = false;
	if (comma && !strcmp(comma, ",ro")) {
		*comma = '\0';
		d->read_only = true;
	} else if (comma && !strcmp(comma, ",rw")) {
		*comma = '\0';
	}
	if (!arg[0]) {
		fprintf(stderr, "forkbox %s: --disk: no file given (--disk "
			"FILE[,ro])\n", cmd);
		return -1;
	}
	d->path = arg;
	spec->nr_disks++;
	return 1;
}

int fb_cli_box_option(const char *cmd, int c, const char *arg,
		      struct fb_box_spec *spec)
{
	uint64_t v;

	switch (c) {
	case 'c':
		if (fb_cli_uint(cmd, "--cpus", arg, 1, 255, &v))
			return -1;
		spec->cpus = (unsigned)v;
		return 1;
	case 'm':
		if (fb_cli_uint(cmd, "--mem", arg, 64, 65536, &v))
			return -1;
		spec->mem_mib = v;
		return 1;
	case 'k':
		spec->kernel = arg;
		return 1;
	case 'i':
		spec->initrd = arg;
		return 1;
	case 'I':
		/* "none": the initramfs is the root, as before images. */
		spec->image = strcmp(arg, "none") ? arg : NULL;
		return 1;
	case 'D':
		return disk_option(cmd, arg, spec);
	case FB_CLI_OPT_KSM:
		spec->ksm = true;
		return 1;
	}
	return 0;
}

/* The VMM's own notice about --ksm lands in the box's vmm.log, out of the
 * user's sight: what the user can act on is said here, before booting. */
void fb_cli_ksm_notice(const char *cmd, const struct fb_box_spec *spec)
{
	struct fb_ksm_status st;

	if (!fb_ksm_wanted(spec->ksm))
		return;
	if (fb_ksm_status_read(fb_ksm_sysfs_dir(), &st) < 0)
		fprintf(stderr, "forkbox %s: --ksm: %s; the box runs without\n",
			cmd, fb_last_error());
	else if (st.run != 1)
		fprintf(stderr, "forkbox %s: --ksm: KSM is not running on this "
			"host (run %lld): the box's memory is marked mergeable, "
			"but nothing merges until `forkbox host ksm on`\n", cmd,
			(long long)st.run);
}

static void create_help(void)
{
	printf("usage: forkbox create [--name NAME] [--cpus N] [--mem MiB] "
	       "[--image NAME]\n"
	       "                      [--disk FILE[,ro]]... [--ksm] "
	       "[--no-jail]\n"
	       "                      [--timeout S] [--idle-timeout S]\n"
	       "       forkbox create --pool NAME [--timeout S] "
	       "[--idle-timeout S]\n\n"
	       "Boots a box that runs on in the background, waits until its "
	       "agent is\nready and prints its id. Use it with forkbox exec, "
	       "cp, logs, stop and rm.\n"
	       "Defaults: 1 vCPU, 256 MiB, image base.\n"
	       "--image NAME: the root disk, a copy-on-write view of image "
	       "NAME\n"
	       "(forkbox image ls; base and python are built on first use); "
	       "none: the initramfs is the root.\n"
	       "--disk FILE[,ro]: an extra disk, the file used in place "
	       "(repeatable).\n"
	       "--ksm: the box's memory is mergeable by KSM (pages equal to "
	       "other boxes'\n"
	       "shared once they are found; forkbox host ksm on starts the "
	       "host's scanner).\n"
	       "FORKBOX_KSM=1 means --ksm for every box (restored and forked "
	       "ones too).\n"
	       "Its VMM runs jailed (docs/SECURITY.md); --no-jail is for "
	       "debugging only.\n\n"
	       "When forkboxd runs (on $FORKBOX_SOCKET, else "
	       "$FORKBOX_HOME/forkboxd.sock), the\n"
	       "box is made through it, so that its metrics and lifetimes "
	       "see the box. Not\n"
	       "with --kernel, --initrd, --disk, --no-jail, FORKBOX_KERNEL or "
	       "FORKBOX_INITRD,\n"
	       "which its API cannot carry, nor with FORKBOX_NO_DAEMON=1: the "
	       "box is then made\nhere, as without the daemon. These need "
	       "forkboxd:\n"
	       "--pool NAME: a ready box from the warm pool NAME (forkbox "
	       "pool), a fork of its\n"
	       "template; its image, cpus and mem are the pool's.\n"
	       "--timeout S: forkboxd removes the box S seconds after it was "
	       "made (0: never);\n"
	       "--idle-timeout S: ... or S seconds after its last request to "
	       "forkboxd (forkbox\n"
	       "exec and cp go to the box directly: they do not count). A box "
	       "made with them\n"
	       "boots on forkboxd's kernel and initramfs, whatever "
	       "FORKBOX_KERNEL and\nFORKBOX_INITRD say here.\n");
}

/* The long name of a flag, for messages. */
static const char *flag_name(const struct option *opts, int c)
{
	for (; opts->name; opts++)
		if (opts->val == c)
			return opts->name;
	return "?";
}

/* A flag for which forkboxd's API has no field: the box is made here. */
static const char *direct_flag(const struct fb_box_spec *spec)
{
	if (spec->kernel)
		return "--kernel";
	if (spec->initrd)
		return "--initrd";
	if (spec->nr_disks)
		return "--disk";
	if (spec->no_jail)
		return "--no-jail";
	return NULL;
}

/* The daemon boots on its own kernel and initramfs, whatever ours say. */
static bool direct_env(void)
{
	const char *kernel = getenv("FORKBOX_KERNEL");
	const char *initrd = getenv("FORKBOX_INITRD");

	return (kernel && kernel[0]) || (initrd && initrd[0]);
}

static int create_here(const struct fb_box_spec *spec, const char *name)
{
	char id[FB_BOX_ID_LEN + 1];

	if (fb_host_check() < 0)
		return fail("create");
	fb_cli_ksm_notice("create", spec);
	if (fb_box_create(spec, name, id) < 0)
		return fail("create");
	printf("%s\n", id);
	return 0;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "image", required_argument, NULL, 'I' },
		{ "disk", required_argument, NULL, 'D' },
		{ "ksm", no_argument, NULL, FB_CLI_OPT_KSM },
		{ "no-jail", no_argument, NULL, 'J' },
		{ "pool", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "idle-timeout", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_box_spec spec = { .cpus = 1, .mem_mib = 256,
				    .console_live_fd = -1,
				    .image = FB_DEFAULT_IMAGE };
	struct fb_cli_daemon_create req = { .spec = &spec, .timeout_s = -1,
					    .idle_timeout_s = -1 };
	/* The first flag that sets the box up itself (a pool's box is the
	 * pool's), and the first that only forkboxd can do. */
	const char *box_flag = NULL, *daemon_flag = NULL;
	uint64_t v;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'P' || c == 'T' || c == 'L') {
			if (!daemon_flag)
				daemon_flag = flag_name(opts, c);
			if (c == 'P') {
				req.pool = optarg;
				continue;
			}
			if (fb_cli_uint("create", c == 'T' ? "--timeout" :
					"--idle-timeout", optarg, 0,
					365ull * 86400, &v))
				return 2;
			if (c == 'T')
				req.timeout_s = (long)v;
			else
				req.idle_timeout_s = (long)v;
			continue;
		}
		if (c != 'h' && c != '?' && !box_flag)
			box_flag = flag_name(opts, c);
		if (c == 'n') {
			req.name = optarg;
			continue;
		}
		if (c == 'J') {
			spec.no_jail = true;
			fprintf(stderr, "forkbox create: --no-jail: the box's VMM "
				"runs without its jail (no seccomp, namespaces, "
				"cgroup or uid of its own): for debugging "
				"only\n");
			continue;
		}
		if (c == 'h') {
			create_help();
			return 0;
		}
		r = fb_cli_box_option("create", c, optarg, &spec);
		if (r < 0)
			return 2;
		if (r == 0) {
			fprintf(stderr, "forkbox create: see forkbox create "
				"--help\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "forkbox create: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (req.pool && box_flag) {
		fprintf(stderr, "forkbox create: --pool: a pool's box comes as "
			"the pool made it; --%s cannot go with it\n", box_flag);
		return 2;
	}
	if (daemon_flag && direct_flag(&spec)) {
		fprintf(stderr, "forkbox create: --%s needs forkboxd, whose "
			"API has no %s\n", daemon_flag, direct_flag(&spec));
		return 2;
	}
	if (daemon_flag) {
		char what[32];

		snprintf(what, sizeof(what), "--%s", daemon_flag);
		if (!fb_daemon_running())
			return fb_daemon_required("create", what);
	} else if (direct_flag(&spec) || direct_env() ||
		   !fb_daemon_running()) {
		return create_here(&spec, req.name);
	}
	if (!req.pool)
		fb_cli_ksm_notice("create", &spec);
	return fb_cli_daemon_create(&req);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

struct ps_state {
	bool json;
	int count;
};

static int ps_one(const struct fb_box_info *info, void *opaque)
{
	struct ps_state *ps = opaque;

	if (ps->json) {
		printf("%s{\"id\": \"%s\", \"name\": ", ps->count ? ", " : "",
		       info->id);
		json_string(info->name);
		printf(", \"state\": \"%s\", \"pid\": %d, \"ready_ms\": ",
		       fb_box_state_name(info->state), (int)info->pid);
		if (info->ready_ms >= 0)
			printf("%.1f", info->ready_ms);
		else
			printf("null");
		printf(", \"dir\": ");
		json_string(info->dir);
		printf(", \"exit\": ");
		json_string(info->state == FB_BOX_DEAD ? info->exit : "");
		printf("}");
	} else {
		printf("%-12s  %-16s  %-8s  %7d  ", info->id,
		       info->name[0] ? info->name : "-",
		       fb_box_state_name(info->state), (int)info->pid);
		if (info->ready_ms >= 0)
			printf("%9.0f", info->ready_ms);
		else
			printf("%9s", "-");
		printf("  %s\n", info->state == FB_BOX_DEAD ? info->exit : "");
	}
	ps->count++;
	return 0;
}

int cmd_ps(int argc, char **argv)
{
	struct ps_state ps = { 0 };

	if (argc > 1 && !strcmp(argv[1], "--json")) {
		ps.json = true;
	} else if (argc > 1) {
		printf("usage: forkbox ps [--json]\n\nLists boxes: id, name, "
		       "state (starting, running, dead), VMM pid,\nboot to "
		       "ready in ms, and how a dead box ended.\n");
		return strcmp(argv[1], "--help") ? 2 : 0;
	}
	if (ps.json)
		printf("[");
	else
		printf("%-12s  %-16s  %-8s  %7s  %9s  %s\n", "ID", "NAME",
		       "STATE", "PID", "READY_MS", "EXIT");
	if (fb_box_list(ps_one, &ps) < 0)
		return fail("ps");
	if (ps.json)
		printf("]\n");
	return 0;
}

/* The one BOX argument of logs, stop and rm. */
static int one_box(const char *cmd, int argc, char **argv, int first,
		   struct fb_box_info *info)
{
	if (first >= argc) {
		fprintf(stderr, "forkbox %s: which box? (see forkbox ps)\n",
			cmd);
		return 2;
	}
	if (fb_box_find(argv[first], info) < 0)
		return fail(cmd);
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	struct fb_box_info info;
	char path[PATH_MAX + 32], buf[65536];
	ssize_t n;
	int fd, r;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox logs BOX\n\nPrints the box's guest "
		       "console log.\n");
		return 0;
	}
	r = one_box("logs", argc, argv, 1, &info);
	if (r)
		return r;
	snprintf(path, sizeof(path), "%s/%s", info.dir, FB_BOX_CONSOLE_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "forkbox logs: open %s: %s\n", path,
			strerror(errno));
		return FB_EXIT_OWN_ERROR;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fb_write_full(STDOUT_FILENO, buf, (size_t)n) < 0)
			break;
	close(fd);
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	struct fb_box_info info;
	int r;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox stop BOX\n\nStops the box's VM (its "
		       "VMM gets SIGTERM, then SIGKILL after 10 s).\nThe box "
		       "stays listed as dead until forkbox rm.\n");
		return 0;
	}
	r = one_box("stop", argc, argv, 1, &info);
	if (r)
		return r;
	if (fb_box_stop(&info, 10000) < 0)
		return fail("stop");
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	struct fb_box_info info;
	bool force = false;
	int first = 1, r;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox rm [-f] BOX\n\nRemoves a stopped or "
		       "dead box and its files; -f stops a running one "
		       "first.\nWhen forkboxd runs (and FORKBOX_NO_DAEMON is "
		       "not 1), the box is removed\nthrough it (DELETE "
		       "/v1/boxes/BOX), so that it forgets the box too.\n");
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "-f")) {
		force = true;
		first = 2;
	}
	r = one_box("rm", argc, argv, first, &info);
	if (r)
		return r;
	/* The daemon's delete stops a live box: only rm -f may ask for it.
	 * A live box without -f is refused here, by the library. */
	if ((force || info.state == FB_BOX_DEAD) && fb_daemon_running())
		return fb_cli_daemon_rm(info.id);
	if (fb_box_remove(&info, force) < 0)
		return fail("rm");
	return 0;
}
