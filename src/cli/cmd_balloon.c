/* forkbox balloon: set a running box's balloon target. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/box.h"
#include "box/stats.h"
#include "cli/commands.h"
#include "util/error.h"

static void help(void)
{
	printf("usage: forkbox balloon BOX --target MiB\n\n"
	       "Sets the size of the box's memory balloon: the guest gives "
	       "that much of its RAM\nback to the host (inflating), or takes "
	       "it back (--target 0 deflates it all).\nThe guest gets there in "
	       "its own time; forkbox stats shows the balloon's actual\nsize. "
	       "Memory the guest frees is given back anyway (free page "
	       "reporting).\n");
}

static int fail(void)
{
	fprintf(stderr, "forkbox balloon: %s\n", fb_last_error());
	return FB_EXIT_OWN_ERROR;
}

static int parse_mib(const char *s, uint64_t *mib)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	*mib = strtoull(s, &end, 10);
	return *end || errno ? -1 : 0;
}

int cmd_balloon(int argc, char **argv)
{
	struct fb_box_info info;
	const char *box = NULL, *target = NULL;
	uint64_t mib;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help();
			return 0;
		}
		if (!strcmp(argv[i], "--target") && i + 1 < argc)
			target = argv[++i];
		else if (!strncmp(argv[i], "--target=", 9))
			target = argv[i] + 9;
		else if (!box && argv[i][0] != '-')
			box = argv[i];
		else {
			fprintf(stderr, "forkbox balloon: unexpected argument "
				"'%s' (usage: forkbox balloon BOX --target "
				"MiB)\n", argv[i]);
			return 2;
		}
	}
	if (!box || !target) {
		fprintf(stderr, "forkbox balloon: usage: forkbox balloon BOX "
			"--target MiB\n");
		return 2;
	}
	if (parse_mib(target, &mib) < 0) {
		fprintf(stderr, "forkbox balloon: --target: '%s' is not a "
			"size in MiB\n", target);
		return 2;
	}
	if (fb_box_find(box, &info) < 0)
		return fail();
	if (info.state != FB_BOX_RUNNING) {
		fprintf(stderr, "forkbox balloon: box %s is %s\n", info.id,
			fb_box_state_name(info.state));
		return FB_EXIT_OWN_ERROR;
	}
	return fb_box_balloon(&info, mib) < 0 ? fail() : 0;
}
