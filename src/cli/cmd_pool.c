/* forkbox pool: warm pools, which only forkboxd keeps (/v1/pools). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "cli/options.h"
#include "util/error.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkbox pool create NAME [--image IMG] [--min-idle N] [--max N]\n"
"                   [--idle-ttl S] [--cpus N] [--mem MiB] [--json]\n"
"       forkbox pool ls [--json]\n"
"       forkbox pool rm NAME\n"
"\n"
"Warm pools, kept by forkboxd (it must be running: its socket is\n"
"$FORKBOX_SOCKET, else $FORKBOX_HOME/forkboxd.sock). A pool boots a template\n"
"box in the background and keeps forks of it ready, each re-stamped;\n"
"forkbox create --pool NAME takes one.\n"
"\n"
"  create NAME     makes the pool and prints its name; --json prints the\n"
"                  pool as forkboxd answered\n"
"  --image IMG     the boxes' image (default base; none: the initramfs)\n"
"  --min-idle N    ready boxes kept waiting (default 1)\n"
"  --max N         boxes out of the pool, handed out and idle, at most\n"
"                  (default 16, at most 1024)\n"
"  --idle-ttl S    an idle box older than S seconds is replaced by a fresh\n"
"                  fork (default 0: never)\n"
"  --cpus N, --mem MiB  each box's (default 1 and 256)\n"
"  ls              the pools: name, image, state (starting, ready, failed),\n"
"                  idle boxes, boxes handed out, min_idle, max, template box,\n"
"                  and why a failed one failed; --json prints forkboxd's\n"
"                  answer as it is\n"
"  rm NAME         removes the pool, its template and its idle boxes (boxes\n"
"                  handed out stay)\n");
}

static int fail(const char *sub)
{
	fprintf(stderr, "forkbox pool %s: %s\n", sub, fb_last_error());
	return FB_EXIT_OWN_ERROR;
}

static int need_daemon(const char *sub)
{
	char cmd[32];

	if (fb_daemon_running())
		return 0;
	snprintf(cmd, sizeof(cmd), "pool %s", sub);
	return fb_daemon_required(cmd, NULL);
}

static int print_json(const char *sub, json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (!text) {
		fprintf(stderr, "forkbox pool %s: json_dumps failed\n", sub);
		return FB_EXIT_OWN_ERROR;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

/* --cpus and the like, each sent only when given: the defaults are the
 * daemon's. */
static int number_flag(json_t *body, int c, const char *arg)
{
	static const struct {
		int c;
		const char *flag, *key;
		uint64_t min, max;
	} flags[] = {
		{ 'c', "--cpus", "cpus", 1, 255 },
		{ 'm', "--mem", "mem_mib", 64, 65536 },
		{ 'n', "--min-idle", "min_idle", 0, 1024 },
		{ 'x', "--max", "max", 1, 1024 },
		{ 't', "--idle-ttl", "idle_ttl_s", 0, 365ull * 86400 },
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flags[i].c != c)
			continue;
		if (fb_cli_uint("pool create", flags[i].flag, arg, flags[i].min,
				flags[i].max, &v))
			return -1;
		json_object_set_new(body, flags[i].key,
				    json_integer((json_int_t)v));
		return 1;
	}
	return 0;
}

static int create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "image", required_argument, NULL, 'I' },
		{ "min-idle", required_argument, NULL, 'n' },
		{ "max", required_argument, NULL, 'x' },
		{ "idle-ttl", required_argument, NULL, 't' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *body = json_object(), *pool = NULL, *s;
	bool json = false;
	long status;
	int c, r, ret = 2;

	if (!body)
		return FB_EXIT_OWN_ERROR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			ret = 0;
			goto out;
		}
		if (c == 'j') {
			json = true;
			continue;
		}
		if (c == 'I') {
			s = json_string(optarg);
			if (!s) {
				fprintf(stderr, "forkbox pool create: --image "
					"'%s' is not UTF-8\n", optarg);
				goto out;
			}
			json_object_set_new(body, "image", s);
			continue;
		}
		r = number_flag(body, c, optarg);
		if (r < 0)
			goto out;
		if (r == 0) {
			fprintf(stderr, "forkbox pool create: see forkbox pool "
				"--help\n");
			goto out;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "forkbox pool create: give one NAME\n");
		goto out;
	}
	s = json_string(argv[optind]);
	if (!s) {
		fprintf(stderr, "forkbox pool create: the name '%s' is not "
			"UTF-8\n", argv[optind]);
		goto out;
	}
	json_object_set_new(body, "name", s);
	ret = need_daemon("create");
	if (ret)
		goto out;
	if (fb_daemon_call("POST", "/v1/pools", body, &status, &pool) < 0) {
		ret = fail("create");
		goto out;
	}
	if (json)
		ret = print_json("create", pool);
	else
		printf("%s\n", argv[optind]);
out:
	json_decref(pool);
	json_decref(body);
	return ret;
}

static const char *str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && s[0] ? s : "-";
}

static void print_table(json_t *pools)
{
	size_t i;
	json_t *p;

	printf("%-20s  %-16s  %-8s  %4s  %4s  %8s  %4s  %-12s  %s\n", "NAME",
	       "IMAGE", "STATE", "IDLE", "OUT", "MIN_IDLE", "MAX", "TEMPLATE",
	       "ERROR");
	json_array_foreach(pools, i, p) {
		const char *error = json_string_value(json_object_get(p,
								      "error"));

		printf("%-20s  %-16s  %-8s  %4zu  %4lld  %8lld  %4lld  %-12s  "
		       "%s\n", str(p, "name"), str(p, "image"), str(p, "state"),
		       json_array_size(json_object_get(p, "idle")),
		       (long long)json_integer_value(json_object_get(
				p, "handed_out")),
		       (long long)json_integer_value(json_object_get(
				p, "min_idle")),
		       (long long)json_integer_value(json_object_get(p, "max")),
		       str(p, "template"), error ? error : "");
	}
}

static int list(int argc, char **argv)
{
	bool json = argc == 2 && !strcmp(argv[1], "--json");
	json_t *res = NULL, *pools;
	long status;
	int ret;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 || (argc == 2 && !json)) {
		fprintf(stderr, "forkbox pool ls: the only flag is --json\n");
		return 2;
	}
	ret = need_daemon("ls");
	if (ret)
		return ret;
	if (fb_daemon_call("GET", "/v1/pools", NULL, &status, &res) < 0) {
		json_decref(res);
		return fail("ls");
	}
	pools = json_object_get(res, "pools");
	if (!json_is_array(pools)) {
		json_decref(res);
		fb_errorf(-EPROTO, "forkboxd's answer has no 'pools' list");
		return fail("ls");
	}
	if (json)
		ret = print_json("ls", res);
	else
		print_table(pools);
	json_decref(res);
	return ret;
}

static int remove_pool(int argc, char **argv)
{
	char seg[256], path[300];
	json_t *res = NULL;
	long status;
	int ret, err;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "forkbox pool rm: give one NAME\n");
		return 2;
	}
	/* The daemon unescapes the path before it splits it at '/'. */
	if (strchr(argv[1], '/')) {
		fprintf(stderr, "forkbox pool rm: no pool '%s' (a pool's name "
			"has no '/')\n", argv[1]);
		return FB_EXIT_OWN_ERROR;
	}
	ret = need_daemon("rm");
	if (ret)
		return ret;
	err = fb_daemon_escape(argv[1], seg, sizeof(seg));
	if (!err)
		err = fb_fmt(path, sizeof(path), "/v1/pools/%s", seg);
	if (!err)
		err = fb_daemon_call("DELETE", path, NULL, &status, &res);
	json_decref(res);
	return err < 0 ? fail("rm") : 0;
}

int cmd_pool(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "create"))
		return create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm"))
		return remove_pool(argc - 1, argv + 1);
	fprintf(stderr, "forkbox pool: unknown subcommand '%s' (create, ls, "
		"rm)\n", argv[1]);
	return 2;
}
