/* The flags of a command run in a box, shared by run and exec:
 * --env K=V (repeatable), --workdir DIR, --timeout S, and for exec -i/-t. */
#ifndef FB_CLI_EXEC_OPTS_H
#define FB_CLI_EXEC_OPTS_H

#include <stdbool.h>

#include "agent/client.h"

#define FB_CLI_MAX_ENV 256

struct fb_exec_opts {
	const char *env[FB_CLI_MAX_ENV + 1];
	unsigned nr_env;
	const char *workdir;
	unsigned timeout_s;
	bool interactive;
	bool tty;
};

/* Handles one of the flags (getopt codes 'e', 'w', 't'); returns 1 if it
 * was one, 0 if not, -1 on a bad value (message printed). */
int fb_exec_opt(const char *cmd, int c, const char *arg,
		struct fb_exec_opts *o);

/* Runs argv in the box behind uds with o, the CLI's stdio and signal
 * forwarding (SIGINT, SIGTERM, SIGHUP go to the command); returns the
 * process exit status: the command's, 124 on timeout, 125 on our error. */
int fb_exec_in_box(const char *cmd, const char *uds,
		   const struct fb_exec_opts *o, char **argv);

struct fb_image_config;
/* The defaults of the image the box in box_dir was made from (if any):
 * its Env before --env's (so --env wins), its WorkingDir unless
 * --workdir. o then points into cfg: free it after the exec. -1 (message
 * printed) on a bad defaults file. */
int fb_exec_image_defaults(const char *cmd, const char *box_dir,
			   struct fb_exec_opts *o, struct fb_image_config *cfg);

#endif
