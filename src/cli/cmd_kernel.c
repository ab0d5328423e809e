#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/kernel.h"
#include "cli/commands.h"
#include "forkbox/forkbox.h"
#include "util/error.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox kernel extract [--kernel BZIMAGE -o VMLINUX]\n"
"       forkbox kernel info FILE\n"
"\n"
"extract  makes an ELF vmlinux from a bzImage's LZ4 payload. The vmlinux\n"
"         boots through its PVH entry and skips the kernel's own\n"
"         decompression in every guest (seconds under emulation). Without\n"
"         options: $FORKBOX_HOME/kernels/default/vmlinuz into vmlinux\n"
"         beside it, which forkbox then boots by default. The result must\n"
"         be an ELF kernel with a PVH entry note (CONFIG_PVH=y), else\n"
"         nothing is written and the bzImage stays in use.\n"
"info     tells whether FILE is a bzImage (and its payload's compression)\n"
"         or an ELF vmlinux (and its PVH entry).\n");
}

static void print_desc(const char *path, const struct fb_kernel_desc *d)
{
	if (d->kind == FB_KERNEL_BZIMAGE && !d->payload_size) {
		printf("%s: bzImage, boot protocol %u.%02u, no payload\n", path,
		       d->boot_version >> 8, d->boot_version & 0xff);
		return;
	}
	if (d->kind == FB_KERNEL_BZIMAGE) {
		printf("%s: bzImage, boot protocol %u.%02u, %s payload of %u "
		       "bytes\n", path, d->boot_version >> 8,
		       d->boot_version & 0xff, d->payload_format,
		       d->payload_size);
		return;
	}
	printf("%s: ELF vmlinux, %.1f MiB, PVH entry 0x%x, loads at "
	       "0x%llx-0x%llx\n", path, (double)d->file_size / (1 << 20),
	       d->pvh_entry, (unsigned long long)d->load_start,
	       (unsigned long long)d->load_end);
}

static int extract(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char home[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
	const char *kernel = NULL, *output = NULL;
	struct fb_kernel_desc d;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kernel = optarg; break;
		case 'o': output = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* A bzImage named by hand gets its output named by hand too: no
	 * file appears beside it unasked. */
	if (optind < argc || (kernel && !output) || (!kernel && output)) {
		fprintf(stderr, "forkbox kernel extract: --kernel and -o go "
			"together (see forkbox kernel --help)\n");
		return 2;
	}
	if (!kernel) {
		err = fb_home_dir(home, sizeof(home));
		if (!err)
			err = fb_fmt(in, sizeof(in), "%s/kernels/default/"
				     "vmlinuz", home);
		if (!err)
			err = fb_fmt(out, sizeof(out), "%s/kernels/default/"
				     "vmlinux", home);
		if (err < 0) {
			fprintf(stderr, "forkbox kernel extract: %s\n",
				fb_last_error());
			return FB_EXIT_OWN_ERROR;
		}
		kernel = in;
		output = out;
	}
	err = fb_kernel_extract(kernel, output, &d);
	if (err < 0) {
		fprintf(stderr, "forkbox kernel extract: %s\n",
			fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	print_desc(output, &d);
	return 0;
}

int cmd_kernel(int argc, char **argv)
{
	struct fb_kernel_desc d;

	if (argc >= 2 && !strcmp(argv[1], "extract"))
		return extract(argc - 1, argv + 1);
	if (argc == 3 && !strcmp(argv[1], "info")) {
		if (fb_kernel_describe(argv[2], &d) < 0) {
			fprintf(stderr, "forkbox kernel info: %s\n",
				fb_last_error());
			return FB_EXIT_OWN_ERROR;
		}
		print_desc(argv[2], &d);
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
