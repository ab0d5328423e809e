#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "box/box.h"
#include "cli/commands.h"
#include "cli/exec_opts.h"
#include "image/oci.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox exec [OPTIONS] BOX -- CMD [ARG...]\n"
"\n"
"Runs CMD in a running box (see forkbox create) through its agent, relays\n"
"stdout and stderr, and exits with CMD's status.\n"
"\n"
"options:\n"
"  -i, --interactive  send our stdin to CMD (else it reads /dev/null)\n"
"  -t, --tty          run CMD on a terminal (output all on stdout)\n"
"  --env NAME=VALUE   set a variable (repeatable)\n"
"  --workdir DIR      run in DIR (default /)\n"
"  --timeout S        kill CMD after S seconds (exit 124)\n"
"\n"
"exit status: CMD's; 125 forkbox failed; 126 CMD cannot execute; 127 not\n"
"found; 128+N killed by signal N. SIGINT, SIGTERM and SIGHUP are passed on.\n");
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interactive", no_argument, NULL, 'i' },
		{ "tty", no_argument, NULL, 'T' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_exec_opts o = { 0 };
	struct fb_box_info info;
	struct fb_image_config defaults;
	char uds[PATH_MAX + 32];
	int status;
	const char *box;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+itTh", opts, NULL)) != -1) {
		if (c == 'i') {
			o.interactive = true;
		} else if (c == 'T' || (c == 't' && !optarg)) {
			o.tty = true;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			r = fb_exec_opt("exec", c, optarg, &o);
			if (r < 0)
				return 2;
			if (r == 0) {
				usage(stderr);
				return 2;
			}
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "forkbox exec: which box? (forkbox exec BOX "
			"-- CMD ...)\n");
		return 2;
	}
	box = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		fprintf(stderr, "forkbox exec: no command given (forkbox exec "
			"BOX -- CMD ...)\n");
		return 2;
	}
	if (fb_box_find(box, &info) < 0) {
		fprintf(stderr, "forkbox exec: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (info.state != FB_BOX_RUNNING) {
		fprintf(stderr, "forkbox exec: box %s is %s%s%s\n", info.id,
			fb_box_state_name(info.state),
			info.state == FB_BOX_DEAD ? ": " : "",
			info.state == FB_BOX_DEAD ? info.exit : "");
		return FB_EXIT_OWN_ERROR;
	}
	if (fb_exec_image_defaults("exec", info.dir, &o, &defaults) < 0)
		return FB_EXIT_OWN_ERROR;
	snprintf(uds, sizeof(uds), "%s/%s", info.dir, FB_BOX_VSOCK_NAME);
	status = fb_exec_in_box("exec", uds, &o, argv + optind);
	fb_image_config_free(&defaults);
	return status;
}
