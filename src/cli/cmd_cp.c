#include <stdio.h>
#include <string.h>

#include "box/box.h"
#include "box/boxio.h"
#include "cli/commands.h"

/* "BOX:PATH" → the box and the path; a plain host path → 0. */
static int split_box_path(const char *arg, char *box, size_t box_len,
			  const char **path)
{
	const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');

	if (!colon || colon == arg || (slash && slash < colon))
		return 0;
	if ((size_t)(colon - arg) >= box_len)
		return -1;
	memcpy(box, arg, (size_t)(colon - arg));
	box[colon - arg] = '\0';
	*path = colon + 1;
	return **path ? 1 : -1;
}

int cmd_cp(int argc, char **argv)
{
	char src_box[80], dst_box[80], uds[PATH_MAX + 32];
	const char *src_path = argv[1], *dst_path = argv[2];
	struct fb_box_info info;
	int in_src, in_dst, err;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("usage: forkbox cp SRC DST\n\nCopies one file into or "
		       "out of a running box: one of SRC and DST is\nBOX:PATH "
		       "(PATH absolute in the box). A directory as DST gets "
		       "SRC's name.\nThe file lands whole or not at all.\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "forkbox cp: usage: forkbox cp SRC DST (one "
			"of them BOX:PATH)\n");
		return 2;
	}
	in_src = split_box_path(argv[1], src_box, sizeof(src_box), &src_path);
	in_dst = split_box_path(argv[2], dst_box, sizeof(dst_box), &dst_path);
	if (in_src < 0 || in_dst < 0 || in_src == in_dst) {
		fprintf(stderr, "forkbox cp: exactly one of SRC and DST must be "
			"BOX:PATH\n");
		return 2;
	}
	if (fb_box_find(in_src ? src_box : dst_box, &info) < 0) {
		fprintf(stderr, "forkbox cp: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	if (info.state != FB_BOX_RUNNING) {
		fprintf(stderr, "forkbox cp: box %s is %s\n", info.id,
			fb_box_state_name(info.state));
		return FB_EXIT_OWN_ERROR;
	}
	snprintf(uds, sizeof(uds), "%s/%s", info.dir, FB_BOX_VSOCK_NAME);
	err = in_src ? fb_box_copy_out(uds, src_path, dst_path) :
		       fb_box_copy_in(uds, src_path, dst_path);
	if (err < 0) {
		fprintf(stderr, "forkbox cp: %s\n", fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	return 0;
}
