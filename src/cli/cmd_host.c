/* forkbox host: settings of the host that serve every box. For now one
 * subcommand, ksm: the kernel's samepage merging scanner (src/host/ksm.h).
 * `forkbox host-check` stays a command of its own. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "host/ksm.h"
#include "util/error.h"

struct ksm_args {
	const char *sub;        /* on, off, status */
	uint64_t pages_to_scan;
	uint64_t sleep_ms;
	bool pages_given, sleep_given, unmerge, json;
};

static void ksm_usage(FILE *f)
{
	fprintf(f,
"usage: forkbox host ksm on [--pages-to-scan N] [--sleep-ms N]\n"
"       forkbox host ksm off [--unmerge]\n"
"       forkbox host ksm status [--json]\n"
"\n"
"KSM (kernel samepage merging) lets boxes made with --ksm share the pages\n"
"they hold alike (kernel, libraries, zeroed memory). Setting it needs root.\n"
"\n"
"  on       start the host's scanner: each wake-up scans --pages-to-scan\n"
"           pages (default %d), then sleeps --sleep-ms ms (default %d)\n"
"  off      stop the scanner; merged pages stay merged. --unmerge also\n"
"           splits every merged page again (run=2: memory use grows back)\n"
"  status   run, scan settings, pages shared, sharing (the pages saved),\n"
"           unshared, full scans, general_profit (Linux >= 6.7) and the\n"
"           MiB saved; --json: one JSON object\n"
"\n"
"FORKBOX_KSM_SYSFS names the sysfs directory (default %s).\n",
		FB_KSM_DEFAULT_PAGES_TO_SCAN, FB_KSM_DEFAULT_SLEEP_MS,
		FB_KSM_SYSFS_DEFAULT);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: forkbox host ksm on|off|status [OPTIONS]\n\n"
		"Host settings that serve every box. forkbox host ksm --help "
		"tells more;\nforkbox host-check tells whether this host's KVM "
		"runs Linux guests.\n");
}

/* Returns 0 when parsed, -1 after printing why (exit 2), 1 for --help. */
static int ksm_parse(int argc, char **argv, struct ksm_args *a)
{
	static const struct option opts[] = {
		{ "pages-to-scan", required_argument, NULL, 'p' },
		{ "sleep-ms", required_argument, NULL, 's' },
		{ "unmerge", no_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct ksm_args){
		.pages_to_scan = FB_KSM_DEFAULT_PAGES_TO_SCAN,
		.sleep_ms = FB_KSM_DEFAULT_SLEEP_MS,
	};
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (fb_cli_uint("host ksm", "--pages-to-scan", optarg,
					1, 1000000, &a->pages_to_scan))
				return -1;
			a->pages_given = true;
			break;
		case 's':
			if (fb_cli_uint("host ksm", "--sleep-ms", optarg, 0,
					60000, &a->sleep_ms))
				return -1;
			a->sleep_given = true;
			break;
		case 'u': a->unmerge = true; break;
		case 'j': a->json = true; break;
		case 'h': return 1;
		default:
			fprintf(stderr, "forkbox host ksm: see forkbox host ksm "
				"--help\n");
			return -1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "forkbox host ksm: %s (see forkbox host ksm "
			"--help)\n", optind >= argc ? "on, off or status?" :
			"one subcommand: on, off or status");
		return -1;
	}
	a->sub = argv[optind];
	return 0;
}

/* Each option belongs to one subcommand: a misplaced one is a mistake. */
static int ksm_check(const struct ksm_args *a)
{
	const char *bad = NULL;
	bool on = !strcmp(a->sub, "on"), off = !strcmp(a->sub, "off");

	if (!on && !off && strcmp(a->sub, "status")) {
		fprintf(stderr, "forkbox host ksm: unknown subcommand '%s' "
			"(on, off or status)\n", a->sub);
		return -1;
	}
	if (!on && (a->pages_given || a->sleep_given))
		bad = a->pages_given ? "--pages-to-scan" : "--sleep-ms";
	else if (!off && a->unmerge)
		bad = "--unmerge";
	else if (a->json && (on || off))
		bad = "--json";
	if (bad) {
		fprintf(stderr, "forkbox host ksm %s: %s belongs to %s\n",
			a->sub, bad, !strcmp(bad, "--unmerge") ? "off" :
			!strcmp(bad, "--json") ? "status" : "on");
		return -1;
	}
	return 0;
}

static const char *run_name(int64_t run)
{
	return run == 0 ? "stopped" : run == 1 ? "running" :
	       run == 2 ? "stopped, pages unmerged" : "unknown";
}

static int print_json(const char *dir, const struct fb_ksm_status *st)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
			      "s:i}",
			      "sysfs", dir, "run", (json_int_t)st->run,
			      "state", run_name(st->run),
			      "pages_to_scan", (json_int_t)st->pages_to_scan,
			      "sleep_millisecs",
			      (json_int_t)st->sleep_millisecs,
			      "pages_shared", (json_int_t)st->pages_shared,
			      "pages_sharing", (json_int_t)st->pages_sharing,
			      "pages_unshared", (json_int_t)st->pages_unshared,
			      "full_scans", (json_int_t)st->full_scans,
			      "page_size", (int)st->page_size);
	char *text;

	if (!o)
		return fb_errorf(-ENOMEM, "json_pack of the KSM status");
	/* null where the kernel has no such counter (before 6.7). */
	json_object_set_new(o, "general_profit", st->has_general_profit ?
			    json_integer(st->general_profit) : json_null());
	json_object_set_new(o, "saved_mib", json_real(fb_ksm_saved_mib(st)));
	text = json_dumps(o, 0);
	json_decref(o);
	if (!text)
		return fb_errorf(-ENOMEM, "json_dumps of the KSM status");
	printf("%s\n", text);
	free(text);
	return 0;
}

static void print_text(const char *dir, const struct fb_ksm_status *st)
{
	printf("KSM (%s): %s (run %" PRId64 ")\n", dir, run_name(st->run),
	       st->run);
	printf("  pages_to_scan    %" PRId64 "\n", st->pages_to_scan);
	printf("  sleep_millisecs  %" PRId64 "\n", st->sleep_millisecs);
	printf("  pages_shared     %" PRId64 "\n", st->pages_shared);
	printf("  pages_sharing    %" PRId64 "\n", st->pages_sharing);
	printf("  pages_unshared   %" PRId64 "\n", st->pages_unshared);
	printf("  full_scans       %" PRId64 "\n", st->full_scans);
	if (st->has_general_profit)
		printf("  general_profit   %" PRId64 " bytes (%.1f MiB)\n",
		       st->general_profit,
		       (double)st->general_profit / (1 << 20));
	printf("  saved            %.1f MiB (pages_sharing x %ld bytes)\n",
	       fb_ksm_saved_mib(st), st->page_size);
}

static int ksm_status(const char *dir, bool json)
{
	struct fb_ksm_status st;
	int err = fb_ksm_status_read(dir, &st);

	if (!err && json)
		err = print_json(dir, &st);
	else if (!err)
		print_text(dir, &st);
	return err;
}

static int ksm_run(const struct ksm_args *a)
{
	const char *dir = fb_ksm_sysfs_dir();
	int err;

	if (!strcmp(a->sub, "status"))
		return ksm_status(dir, a->json);
	if (!strcmp(a->sub, "on")) {
		err = fb_ksm_on(dir, a->pages_to_scan, a->sleep_ms);
		if (!err)
			printf("KSM on: %" PRIu64 " pages a scan, every %" PRIu64
			       " ms (forkbox host ksm status shows what it "
			       "merged)\n", a->pages_to_scan, a->sleep_ms);
		return err;
	}
	err = fb_ksm_off(dir, a->unmerge);
	if (!err)
		printf("KSM off: %s\n", a->unmerge ?
		       "the scanner stopped and every merged page was split" :
		       "the scanner stopped; merged pages stay merged "
		       "(--unmerge splits them)");
	return err;
}

static int cmd_host_ksm(int argc, char **argv)
{
	struct ksm_args a;
	int r = ksm_parse(argc, argv, &a);

	if (r > 0) {
		ksm_usage(stdout);
		return 0;
	}
	if (r < 0 || ksm_check(&a) < 0)
		return 2;
	if (ksm_run(&a) < 0) {
		fprintf(stderr, "forkbox host ksm %s: %s\n", a.sub,
			fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	return 0;
}

int cmd_host(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "ksm"))
		return cmd_host_ksm(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "--help") ||
			 !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1)
		fprintf(stderr, "forkbox host: unknown subcommand '%s'\n",
			argv[1]);
	usage(stderr);
	return 2;
}
