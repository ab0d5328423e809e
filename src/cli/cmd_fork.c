#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "box/box.h"
#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "cli/options.h"
#include "cli/via_daemon.h"
#include "host/ksm.h"

int cmd_fork(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "no-jail", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_box_spec spec = { .console_live_fd = -1 };
	struct fb_box_fork_result res;
	struct fb_box_info info;
	bool json = false;
	uint64_t n = 1;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (fb_cli_uint("fork", "-n", optarg, 1, 1024, &n))
				return 2;
			break;
		case 'j':
			json = true;
			break;
		case 'J':
			spec.no_jail = true;
			break;
		case 'h':
			printf("usage: forkbox fork BOX [-n N] [--json] "
			       "[--no-jail]\n\n"
			       "Forks a running box into N children (default 1, "
			       "at most 1024) that go on\nexactly where it is: "
			       "processes, memory, files. The parent is paused "
			       "only\nwhile its memory is frozen into sealed "
			       "layers, then runs on. Parent and\nchildren share "
			       "every page none of them writes. Each child gets "
			       "a new box\nid, hostname, entropy and clock before "
			       "it is reported ready.\n\n"
			       "Prints the children's ids, one a line; --json "
			       "prints them with the parent's\npause, the time "
			       "to the template, to the children's disks and to "
			       "all\nchildren ready (ms), and the layers and "
			       "mappings the children share."
			       "\n\nA parent's diff snapshots need a full "
			       "snapshot after a fork. A box restored\nwith "
			       "--memory uffd cannot fork.\n\n"
			       "When forkboxd runs, the fork goes through it "
			       "(POST /v1/boxes/BOX/fork),\nso that its "
			       "metrics and lifetimes see the children; not "
			       "with --no-jail\nor FORKBOX_KSM=1, which its "
			       "API cannot carry, nor with "
			       "FORKBOX_NO_DAEMON=1.\n"
			       "--json then has parent, children, pause_ms and "
			       "total_ms only.\n");
			return 0;
		default:
			fprintf(stderr, "forkbox fork: see forkbox fork "
				"--help\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "forkbox fork: usage: forkbox fork BOX [-n N] "
			"[--json]\n");
		return 2;
	}
	if (fb_box_find(argv[optind], &info) < 0) {
		fprintf(stderr, "forkbox fork: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (info.state != FB_BOX_RUNNING) {
		fprintf(stderr, "forkbox fork: box %s is %s\n", info.id,
			fb_box_state_name(info.state));
		return FB_EXIT_OWN_ERROR;
	}
	/* FORKBOX_KSM=1 here asks for KSM in the children, which the
	 * daemon's fork cannot be told. */
	if (!spec.no_jail && !fb_ksm_wanted(false) && fb_daemon_running())
		return fb_cli_daemon_fork(info.id, (unsigned)n, json);
	err = fb_box_fork(&info, (unsigned)n, &spec, &res);
	if (json) {
		printf("{\"parent\": \"%s\", \"children\": [", info.id);
		for (unsigned i = 0; i < res.nr; i++)
			printf("%s\"%s\"", i ? ", " : "", res.ids[i].id);
		printf("], \"pause_ms\": %.2f, \"template_ms\": %.1f, "
		       "\"disk_ms\": %.1f, \"total_ms\": %.1f, \"layers\": %u, "
		       "\"runs\": %llu}\n", res.pause_ms, res.template_ms,
		       res.disk_ms, res.total_ms, res.layers, res.runs);
	} else {
		for (unsigned i = 0; i < res.nr; i++)
			printf("%s\n", res.ids[i].id);
	}
	if (err < 0)
		fprintf(stderr, "forkbox fork: %s\n", fb_last_error());
	fb_box_fork_result_free(&res);
	return err < 0 ? FB_EXIT_OWN_ERROR : 0;
}
