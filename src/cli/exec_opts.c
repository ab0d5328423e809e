#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "box/box.h"
#include "box/boxio.h"
#include "cli/commands.h"
#include "cli/exec_opts.h"
#include "cli/options.h"
#include "forkbox/forkbox.h"
#include "image/store.h"
#include "util/error.h"

int fb_exec_opt(const char *cmd, int c, const char *arg,
		struct fb_exec_opts *o)
{
	uint64_t v;

	switch (c) {
	case 'e':
		if (!strchr(arg, '=') || arg[0] == '=') {
			fprintf(stderr, "forkbox %s: --env '%s': expected "
				"NAME=VALUE\n", cmd, arg);
			return -1;
		}
		if (o->nr_env == FB_CLI_MAX_ENV) {
			fprintf(stderr, "forkbox %s: more than %d --env\n",
				cmd, FB_CLI_MAX_ENV);
			return -1;
		}
		o->env[o->nr_env++] = arg;
		return 1;
	case 'w':
		o->workdir = arg;
		return 1;
	case 't':
		if (fb_cli_uint(cmd, "--timeout", arg, 1, 86400, &v))
			return -1;
		o->timeout_s = (unsigned)v;
		return 1;
	}
	return 0;
}

static int signal_wfd = -1;

static void forward_signal(int sig)
{
	if (signal_wfd >= 0)
		fb_agent_signal(signal_wfd, sig);
}

int fb_exec_in_box(const char *cmd, const char *uds,
		   const struct fb_exec_opts *o, char **argv)
{
	struct fb_agent_exec_req req = {
		.argv = (const char *const *)argv,
		.env = o->nr_env ? o->env : NULL,
		.cwd = o->workdir,
		.tty = o->tty,
		.timeout_ms = o->timeout_s * 1000,
		.signal_fd = -1,
	};
	struct sigaction sa = { .sa_handler = forward_signal };
	int pipefd[2], status = -1, err;

	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0) {
		req.signal_fd = pipefd[0];
		signal_wfd = pipefd[1];
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	err = fb_box_exec(uds, &req, o->interactive ? STDIN_FILENO : -1,
			  STDOUT_FILENO, STDERR_FILENO, &status);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (req.signal_fd >= 0) {
		signal_wfd = -1;
		close(pipefd[0]);
		close(pipefd[1]);
	}
	/* 124 only for the agent's kill at --timeout (which sets a status):
	 * a dial or HELLO that timed out is an error of ours. */
	if (err == -ETIMEDOUT && o->timeout_s && status >= 0) {
		fprintf(stderr, "forkbox %s: the command ran past --timeout "
			"%u s and was killed\n", cmd, o->timeout_s);
		return 124;
	}
	if (err < 0) {
		fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
		return FB_EXIT_OWN_ERROR;
	}
	return status;
}

int fb_exec_image_defaults(const char *cmd, const char *box_dir,
			   struct fb_exec_opts *o, struct fb_image_config *cfg)
{
	const char *user[FB_CLI_MAX_ENV];
	char path[PATH_MAX];
	unsigned n = 0;
	int err;

	memset(cfg, 0, sizeof(*cfg));
	if (fb_fmt(path, sizeof(path), "%s/" FB_BOX_IMAGE_CONFIG, box_dir) < 0)
		return 0;
	err = fb_image_config_load(path, cfg);
	if (err == -ENOENT)
		return 0; /* a box without an image */
	if (err < 0) {
		fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
		return -1;
	}
	if (cfg->n_env + o->nr_env > FB_CLI_MAX_ENV) {
		fprintf(stderr, "forkbox %s: the image's %zu variables and "
			"--env's %u are more than %u\n", cmd, cfg->n_env,
			o->nr_env, FB_CLI_MAX_ENV);
		return -1;
	}
	/* The image's first: the agent lets a later KEY win. */
	memcpy(user, o->env, o->nr_env * sizeof(*user));
	for (size_t i = 0; i < cfg->n_env; i++)
		o->env[n++] = cfg->env[i];
	for (unsigned i = 0; i < o->nr_env; i++)
		o->env[n++] = user[i];
	o->env[n] = NULL;
	o->nr_env = n;
	if (!o->workdir)
		o->workdir = cfg->workdir;
	return 0;
}
