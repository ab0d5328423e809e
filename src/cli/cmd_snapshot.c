/* forkbox pause, resume, snapshot, restore: a running box's state. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "box/box.h"
#include "box/control.h"
#include "cli/commands.h"
#include "snapshot/memory.h"
#include "util/error.h"

#define CONTROL_TIMEOUT_MS 120000 /* a snapshot writes all guest RAM */

static int call(const char *cmd, const char *ref, const char *request,
		char *reply, size_t len)
{
	struct fb_box_info info;

	if (fb_box_find(ref, &info) < 0) {
		fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (info.state != FB_BOX_RUNNING &&
	    !(info.state == FB_BOX_PAUSED && (!strcmp(request, "pause") ||
					      !strcmp(request, "resume") ||
					      !strcmp(request, "debug")))) {
		fprintf(stderr, "forkbox %s: box %s is %s\n", cmd, info.id,
			fb_box_state_name(info.state));
		return FB_EXIT_OWN_ERROR;
	}
	if (fb_box_control_call(info.dir, request, reply, len,
				CONTROL_TIMEOUT_MS) < 0) {
		fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	return 0;
}

static int simple(const char *cmd, int argc, char **argv, const char *help)
{
	char reply[FB_BOX_CONTROL_MAX_LINE];

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox %s BOX\n\n%s\n", cmd, help);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "forkbox %s: usage: forkbox %s BOX\n", cmd, cmd);
		return 2;
	}
	return call(cmd, argv[1], cmd, reply, sizeof(reply));
}

int cmd_pause(int argc, char **argv)
{
	return simple("pause", argc, argv, "Stops the box's vCPUs (and its "
		      "devices' work) until forkbox resume.");
}

int cmd_resume(int argc, char **argv)
{
	return simple("resume", argc, argv, "Lets a paused box run on.");
}

int cmd_debug(int argc, char **argv)
{
	char path[PATH_MAX + 16];
	struct fb_box_info info;
	int r;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox debug BOX\n\nWrites the box's VMM state "
		       "into its vmm.log, for a bug report on a guest that\n"
		       "stopped answering: whether a pause is in force; each "
		       "vCPU's last exit, registers,\npending events, LAPIC "
		       "vectors and the code at its rip (or that its thread "
		       "is\nnot in KVM_RUN); the IOAPIC pins of its virtio "
		       "devices; and every virtio\ndevice's registers and "
		       "queue indices (vsock: its connections).\nThe box "
		       "runs on; prints the log's path.\n");
		return 0;
	}
	r = simple("debug", argc, argv, "");
	if (r == 0 && fb_box_find(argv[1], &info) == 0) {
		snprintf(path, sizeof(path), "%s/vmm.log", info.dir);
		printf("%s\n", path);
	}
	return r;
}

static int merge(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "forkbox snapshot merge: usage: forkbox "
			"snapshot merge DIR\n");
		return 2;
	}
	if (fb_snap_merge(argv[2]) < 0) {
		fprintf(stderr, "forkbox snapshot merge: %s\n",
			fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	char reply[FB_BOX_CONTROL_MAX_LINE];
	char dir[PATH_MAX];
	const char *box = NULL, *target = NULL;
	bool diff = false;
	if (argc >= 2 && !strcmp(argv[1], "merge"))
		return merge(argc, argv);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			printf("usage: forkbox snapshot BOX DIR [--diff]\n"
			       "       forkbox snapshot merge DIR\n\n"
			       "Writes a snapshot of the running box to DIR (a "
			       "new directory, which appears whole\nor not at "
			       "all); the box runs on. --diff saves only the "
			       "pages written since\nthe box's last snapshot "
			       "(or the snapshot it was restored from) and "
			       "names that\nas its parent. merge flattens a "
			       "diff chain into a full snapshot in place.\n");
			return 0;
		}
		if (!strcmp(argv[i], "--diff"))
			diff = true;
		else if (!box)
			box = argv[i];
		else if (!target)
			target = argv[i];
		else {
			fprintf(stderr, "forkbox snapshot: unexpected argument "
				"'%s'\n", argv[i]);
			return 2;
		}
	}
	if (!box || !target) {
		fprintf(stderr, "forkbox snapshot: usage: forkbox snapshot BOX "
			"DIR [--diff]\n");
		return 2;
	}
	/* The VMM resolves nothing relative to our working directory. */
	if (target[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(dir, sizeof(dir), "%s/%s", cwd, target) >=
		    (int)sizeof(dir)) {
			fprintf(stderr, "forkbox snapshot: path too long\n");
			return FB_EXIT_OWN_ERROR;
		}
		target = dir;
	}
	{
		struct fb_box_info info;

		if (fb_box_find(box, &info) < 0 ||
		    (info.state != FB_BOX_RUNNING &&
		     fb_errorf(-ESRCH, "box %s is %s", info.id,
			       fb_box_state_name(info.state)) < 0) ||
		    fb_box_snapshot(&info, target, diff, reply,
				    sizeof(reply)) < 0) {
			fprintf(stderr, "forkbox snapshot: %s\n",
				fb_last_error());
			return FB_EXIT_OWN_ERROR;
		}
	}
	fprintf(stderr, "forkbox snapshot: %s: %s\n", target, reply);
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "memory", required_argument, NULL, 'M' },
		{ "no-jail", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_box_spec spec = { .console_live_fd = -1,
				    .restore_mem_mode = FB_SNAP_MEM_FILE };
	char id[FB_BOX_ID_LEN + 1], dir[PATH_MAX];
	const char *name = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'M':
			if (!strcmp(optarg, "file")) {
				spec.restore_mem_mode = FB_SNAP_MEM_FILE;
			} else if (!strcmp(optarg, "uffd")) {
				spec.restore_mem_mode = FB_SNAP_MEM_UFFD;
			} else {
				fprintf(stderr, "forkbox restore: --memory "
					"'%s': expected file or uffd\n", optarg);
				return 2;
			}
			break;
		case 'J':
			spec.no_jail = true;
			break;
		case 'h':
			printf("usage: forkbox restore DIR [--name NAME] "
			       "[--memory file|uffd] [--no-jail]\n\n"
			       "Starts a new box from the snapshot in DIR (a "
			       "full snapshot or the newest of a\ndiff chain) "
			       "and prints its id. It goes on exactly where "
			       "the snapshot was taken;\nits vsock connections "
			       "are reset, its clock is set to now, it gets a "
			       "new box id.\n--memory file (default) maps the "
			       "snapshot's memory MAP_PRIVATE, so restores of\n"
			       "one snapshot share the pages they only read; "
			       "uffd serves pages on first touch.\n");
			return 0;
		default:
			fprintf(stderr, "forkbox restore: see forkbox restore "
				"--help\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "forkbox restore: usage: forkbox restore DIR "
			"[--name NAME] [--memory file|uffd]\n");
		return 2;
	}
	if (!realpath(argv[optind], dir)) {
		fprintf(stderr, "forkbox restore: %s: %s\n", argv[optind],
			strerror(errno));
		return FB_EXIT_OWN_ERROR;
	}
	spec.restore_from = dir;
	if (fb_host_check() < 0 || fb_box_create(&spec, name, id) < 0) {
		fprintf(stderr, "forkbox restore: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	printf("%s\n", id);
	return 0;
}
