#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "forkbox/forkbox.h"

int cmd_host_check(int argc, char **argv)
{
	int json = argc > 1 && !strcmp(argv[1], "--json");
	int err;

	if (argc > 1 && !json) {
		printf("usage: forkbox host-check [--json]\n\nTells whether "
		       "this host's KVM can run an unmodified Linux guest.\n"
		       "Exit status 0 if it can, 1 if not.\n");
		return strcmp(argv[1], "--help") ? 2 : 0;
	}
	err = fb_host_check();
	if (json) {
		/* The reason is our own text: no quotes or backslashes. */
		printf("{\"linux_guests\": %s, \"reason\": \"%s\"}\n",
		       err ? "false" : "true", err ? fb_last_error() : "");
	} else if (err) {
		printf("no: %s\n", fb_last_error());
	} else {
		printf("yes: KVM with hardware virtualization\n");
	}
	return err ? 1 : 0;
}
