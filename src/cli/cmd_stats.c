/* forkbox stats: a running box's memory, readable or as JSON. */
#include <jansson.h>
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
	printf("usage: forkbox stats BOX [--json]\n\n"
	       "Shows a running box's memory: its balloon's target and actual "
	       "size, what it gave\nback to the host (by inflating and by "
	       "free page reporting), the guest's own\nstatistics (fresh, or "
	       "with their age when the guest is slow to answer), and\nthe "
	       "host's cost of the box: its VMM process's RSS and PSS (needs "
	       "root). --json\nprints one object; sizes in bytes, absent "
	       "values null.\n");
}

static json_t *int_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *to_json(const struct fb_box_info *info,
		       const struct fb_box_stats *st)
{
	json_t *guest = json_object(), *o = json_object();

	for (unsigned t = 0; t < FB_BALLOON_S_NR; t++)
		if (st->guest_valid & (1u << t))
			json_object_set_new(guest, fb_balloon_stat_key(t),
					    json_integer((json_int_t)
							 st->guest[t]));
	json_object_set_new(o, "id", json_string(info->id));
	json_object_set_new(o, "balloon", json_boolean(st->balloon));
	json_object_set_new(o, "driver", json_boolean(st->driver));
	json_object_set_new(o, "target_mib",
			    json_integer((json_int_t)st->target_mib));
	json_object_set_new(o, "actual_mib",
			    json_integer((json_int_t)st->actual_mib));
	json_object_set_new(o, "inflated_bytes",
			    json_integer((json_int_t)st->inflated_bytes));
	json_object_set_new(o, "reported_bytes",
			    json_integer((json_int_t)st->reported_bytes));
	json_object_set_new(o, "given_back_bytes",
			    json_integer((json_int_t)st->given_back_bytes));
	json_object_set_new(o, "ignored", json_integer((json_int_t)st->ignored));
	json_object_set_new(o, "host_rss_bytes",
			    int_or_null(st->host_rss_bytes));
	json_object_set_new(o, "host_pss_bytes",
			    int_or_null(st->host_pss_bytes));
	json_object_set_new(o, "stats_age_ms", int_or_null(st->stats_age_ms));
	json_object_set_new(o, "guest", guest);
	return o;
}

static int print_json(const struct fb_box_info *info,
		      const struct fb_box_stats *st)
{
	json_t *o = to_json(info, st);
	char *text = json_dumps(o, JSON_INDENT(2));

	json_decref(o);
	if (!text) {
		fprintf(stderr, "forkbox stats: json_dumps failed\n");
		return FB_EXIT_OWN_ERROR;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

/* 123.4 MiB, 5.0 GiB, 512 B. */
static const char *size(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1ull << 30));
	else if (bytes >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)bytes / (1ull << 20));
	else if (bytes >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)bytes / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	return buf;
}

static const char *host_size(int64_t bytes, char *buf, size_t len)
{
	return bytes < 0 ? "?" : size((uint64_t)bytes, buf, len);
}

static void print_guest(const struct fb_box_stats *st)
{
	char a[32];

	if (st->stats_age_ms < 0) {
		printf("guest       no statistics yet\n");
		return;
	}
	printf("guest       statistics %.1f s old\n",
	       (double)st->stats_age_ms / 1000);
	for (unsigned t = 0; t < FB_BALLOON_S_NR; t++) {
		const char *key = fb_balloon_stat_key(t);

		if (!(st->guest_valid & (1u << t)))
			continue;
		if (strstr(key, "_bytes"))
			printf("  %-26s %s\n", fb_balloon_stat_label(t),
			       size(st->guest[t], a, sizeof(a)));
		else
			printf("  %-26s %llu\n", fb_balloon_stat_label(t),
			       (unsigned long long)st->guest[t]);
	}
}

static void print_text(const struct fb_box_info *info,
		       const struct fb_box_stats *st)
{
	char a[32], b[32], c[32];

	printf("box         %s\n", info->id);
	printf("host cost   RSS %s, PSS %s\n",
	       host_size(st->host_rss_bytes, a, sizeof(a)),
	       host_size(st->host_pss_bytes, b, sizeof(b)));
	if (!st->balloon) {
		printf("balloon     none (restored from a snapshot made before "
		       "boxes had one)\n");
		return;
	}
	printf("balloon     target %llu MiB, actual %llu MiB%s\n",
	       (unsigned long long)st->target_mib,
	       (unsigned long long)st->actual_mib,
	       st->driver ? "" : " (no guest driver)");
	printf("given back  %s (inflating %s, free page reporting %s)\n",
	       size(st->given_back_bytes, a, sizeof(a)),
	       size(st->inflated_bytes, b, sizeof(b)),
	       size(st->reported_bytes, c, sizeof(c)));
	if (st->ignored)
		printf("refused     %llu bad page numbers or ranges from the "
		       "guest\n", (unsigned long long)st->ignored);
	print_guest(st);
}

int cmd_stats(int argc, char **argv)
{
	struct fb_box_info info;
	struct fb_box_stats st;
	const char *box = NULL;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help();
			return 0;
		}
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!box && argv[i][0] != '-')
			box = argv[i];
		else {
			fprintf(stderr, "forkbox stats: unexpected argument "
				"'%s' (usage: forkbox stats BOX [--json])\n",
				argv[i]);
			return 2;
		}
	}
	if (!box) {
		fprintf(stderr, "forkbox stats: which box? (see forkbox ps)\n");
		return 2;
	}
	if (fb_box_find(box, &info) < 0) {
		fprintf(stderr, "forkbox stats: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (info.state != FB_BOX_RUNNING) {
		fprintf(stderr, "forkbox stats: box %s is %s\n", info.id,
			fb_box_state_name(info.state));
		return FB_EXIT_OWN_ERROR;
	}
	if (fb_box_stats(&info, &st) < 0) {
		fprintf(stderr, "forkbox stats: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (json)
		return print_json(&info, &st);
	print_text(&info, &st);
	return 0;
}
