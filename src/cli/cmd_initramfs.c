#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "image/initramfs.h"
#include "util/error.h"

#define USAGE_ERROR 2

static const char usage_text[] =
	"Usage: forkbox initramfs --init PATH --busybox PATH [--module FILE.ko]... -o OUT\n"
	"\n"
	"Build the guest's initramfs (a cpio archive) at OUT.\n"
	"\n"
	"  --init PATH       static guest PID 1, installed as /init\n"
	"  --busybox PATH    static busybox, installed as /bin/busybox with a\n"
	"                    /bin symlink for each of its applets\n"
	"  --module FILE.ko  kernel module for /lib/modules (repeatable)\n"
	"  -o, --output OUT  where to write the archive\n"
	"  -h, --help        show this help\n";

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "forkbox initramfs: %s%s (see --help)\n", msg,
		arg ? arg : "");
	return USAGE_ERROR;
}

int cmd_initramfs(int argc, char **argv)
{
	static const struct option options[] = {
		{ "init", required_argument, NULL, 'i' },
		{ "busybox", required_argument, NULL, 'b' },
		{ "module", required_argument, NULL, 'm' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fb_initramfs_spec spec = { 0 };
	const char **modules;
	const char *out = NULL;
	int opt, err;

	/* At most one module per argument. */
	modules = calloc((size_t)argc + 1, sizeof(*modules));
	if (!modules) {
		fprintf(stderr, "forkbox initramfs: out of memory\n");
		return FB_EXIT_OWN_ERROR;
	}
	spec.module_paths = modules;
	/* The dispatcher may have run getopt on the global argv already. */
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":o:h", options, NULL)) != -1) {
		switch (opt) {
		case 'i':
			spec.init_path = optarg;
			break;
		case 'b':
			spec.busybox_path = optarg;
			break;
		case 'm':
			modules[spec.n_modules++] = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			free(modules);
			return 0;
		case ':':
			free(modules);
			return usage_error("missing value for ", argv[optind - 1]);
		default:
			free(modules);
			if (optopt) {
				char short_opt[3] = { '-', (char)optopt, '\0' };

				return usage_error("unknown option ", short_opt);
			}
			return usage_error("unknown option ", argv[optind - 1]);
		}
	}
	if (optind < argc)
		err = usage_error("unexpected argument ", argv[optind]);
	else if (!spec.init_path)
		err = usage_error("--init PATH is required", NULL);
	else if (!spec.busybox_path)
		err = usage_error("--busybox PATH is required", NULL);
	else if (!out)
		err = usage_error("-o OUT is required", NULL);
	else if (fb_initramfs_build(&spec, out) < 0) {
		fprintf(stderr, "forkbox initramfs: %s\n", fb_last_error());
		err = FB_EXIT_OWN_ERROR;
	} else
		err = 0;
	free(modules);
	return err;
}
