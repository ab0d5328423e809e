#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "image/store.h"
#include "util/error.h"

#define MIB (1ull << 20)

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox image build NAME (--from-dir DIR | --builtin) [--size MiB]\n"
"       forkbox image import NAME FILE.tar\n"
"       forkbox image ls [--json]\n"
"       forkbox image rm NAME\n"
"\n"
"Root disk images, in $FORKBOX_HOME/images. A box made with --image NAME\n"
"gets a copy-on-write view of one: it costs nothing until the box writes.\n"
"\n"
"  build --from-dir DIR  an ext4 image of the tree at DIR (mkfs.ext4 -d)\n"
"  build --builtin       the built-in image NAME: base (busybox) or python\n"
"                        (Debian minbase and python3, by debootstrap); both\n"
"                        are also built on first use\n"
"  --size MiB            the disk's size (default: the tree + 1 GiB free)\n"
"  import                a `docker save` / `podman save` archive or an OCI\n"
"                        image-layout tarball (gzip or plain layers); its\n"
"                        Env, WorkingDir, Entrypoint and Cmd are kept\n"
"  ls [--json]           the images: name, size, source\n"
"  rm NAME               removes it (boxes made from it keep working)\n");
}

static int fail(const char *what)
{
	fprintf(stderr, "forkbox image %s: %s\n", what, fb_last_error());
	return 1;
}

static void print_built(const struct fb_image *img)
{
	printf("%s\t%llu MiB disk, %llu MiB used\n", img->name,
	       (unsigned long long)(img->size / MIB),
	       (unsigned long long)((img->used + MIB - 1) / MIB));
}

static int build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-dir", required_argument, NULL, 'd' },
		{ "builtin", no_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	bool builtin = false;
	uint64_t size = 0;
	struct fb_image img;
	char source[PATH_MAX + 8];
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'b': builtin = true; break;
		case 's':
			if (fb_cli_uint("image build", "--size", optarg, 16,
					1u << 24, &size))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || (!dir == !builtin)) {
		fprintf(stderr, "forkbox image build: give NAME and one of "
			"--from-dir DIR or --builtin\n");
		return 2;
	}
	if (builtin && size) {
		fprintf(stderr, "forkbox image build: --size is for "
			"--from-dir\n");
		return 2;
	}
	snprintf(source, sizeof(source), "dir %s", dir ? dir : "");
	err = builtin ? fb_image_build_builtin(argv[optind], &img) :
		fb_image_build_dir(argv[optind], dir, NULL, source, size, &img);
	if (err < 0)
		return fail("build");
	print_built(&img);
	fb_image_free(&img);
	return 0;
}

static int import(int argc, char **argv)
{
	struct fb_image img;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "forkbox image import: give NAME and FILE.tar\n");
		return 2;
	}
	if (fb_image_import(argv[1], argv[2], &img) < 0)
		return fail("import");
	if (img.note[0])
		fprintf(stderr, "forkbox image import: %s\n", img.note);
	print_built(&img);
	fb_image_free(&img);
	return 0;
}

static int list_text(const struct fb_image *img, void *opaque)
{
	char when[32];
	time_t t = (time_t)img->created;
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M",
		 localtime_r(&t, &tm));
	printf("%-20s %8llu %8llu  %s  %s\n", img->name,
	       (unsigned long long)(img->size / MIB),
	       (unsigned long long)((img->used + MIB - 1) / MIB), when,
	       img->source);
	return 0;
}

static int list_json(const struct fb_image *img, void *opaque)
{
	json_array_append_new(opaque, json_pack(
		"{s:s, s:I, s:I, s:I, s:s, s:s, s:s?}", "name", img->name,
		"size_bytes", (json_int_t)img->size,
		"used_bytes", (json_int_t)img->used,
		"created", (json_int_t)img->created, "source", img->source,
		"file", img->path, "digest",
		img->digest[0] ? img->digest : NULL));
	return 0;
}

static int list(int argc, char **argv)
{
	bool json = argc == 2 && !strcmp(argv[1], "--json");
	json_t *all = json_array();
	int err;

	if (argc > 2 || (argc == 2 && !json)) {
		fprintf(stderr, "forkbox image ls: the only flag is --json\n");
		return 2;
	}
	if (!json)
		printf("%-20s %8s %8s  %-16s  %s\n", "NAME", "DISK_MIB",
		       "USED_MIB", "CREATED", "SOURCE");
	err = fb_image_list(json ? list_json : list_text, all);
	if (err < 0) {
		json_decref(all);
		return fail("ls");
	}
	if (json) {
		char *text = json_dumps(all, JSON_INDENT(2));

		printf("%s\n", text ? text : "[]");
		free(text);
	}
	json_decref(all);
	return 0;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "build"))
		return build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "import"))
		return import(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm")) {
		if (argc != 3) {
			fprintf(stderr, "forkbox image rm: give one NAME\n");
			return 2;
		}
		return fb_image_remove(argv[2]) < 0 ? fail("rm") : 0;
	}
	fprintf(stderr, "forkbox image: unknown subcommand '%s' (build, "
		"import, ls, rm)\n", argv[1]);
	return 2;
}
