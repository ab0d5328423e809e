/* fb_run: boot a box, run one command in it, relay its output, return its
 * exit status. Until the vsock agent lands, the command travels on the
 * kernel command line and comes back as frames on COM2. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "box/frames.h"
#include "forkbox/forkbox.h"
#include "util/error.h"
#include "util/file.h"
#include "util/le.h"
#include "vmm/vm.h"

/* Kept short: every byte of it is parsed on the way to ready. */
#define BASE_CMDLINE FB_CMDLINE_BASE " " FB_CMDLINE_OUT "ttyS1 "
#define CMDLINE_LIMIT 2047 /* the kernel's COMMAND_LINE_SIZE less NUL */

struct run_state {
	const struct fb_run_config *cfg;
	struct fb_frame_parser parser;
	struct fb_vm *vm;
	struct timespec start;
	double init_ms;
	int exit_status;
	bool have_status;
	bool output_failed;
};

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void on_frame(void *opaque, uint8_t type, const uint8_t *payload,
		     uint32_t len)
{
	struct run_state *st = opaque;

	switch (type) {
	case FB_FRAME_INIT:
		st->init_ms = ms_since(&st->start);
		break;
	case FB_FRAME_STDOUT:
	case FB_FRAME_STDERR:
		if (fb_write_full(type == FB_FRAME_STDOUT ? st->cfg->stdout_fd :
				  st->cfg->stderr_fd, payload, len) < 0)
			st->output_failed = true;
		break;
	case FB_FRAME_EXIT:
		if (len == 4 && !st->have_status) {
			st->exit_status = (int)fb_le32(payload);
			if (st->exit_status < 0 || st->exit_status > 255)
				st->exit_status = 255;
			st->have_status = true;
		}
		break;
	}
}

static void channel_byte(void *opaque, uint8_t byte)
{
	struct run_state *st = opaque;

	if (!fb_frame_parser_feed(&st->parser, byte) && st->vm)
		fb_vm_request_stop(st->vm, FB_VM_EXIT_CRASH, "run channel: %s",
				   st->parser.error);
}

/* argv as hex, each argument followed by NUL, after FB_CMDLINE_CMD. */
static int build_cmdline(const char *const *argv, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = (size_t)snprintf(buf, len, "%s%s", BASE_CMDLINE,
				    FB_CMDLINE_CMD);

	if (!argv || !argv[0])
		return fb_errorf(-EINVAL, "no command given");
	for (const char *const *a = argv; *a; a++) {
		for (const char *c = *a;; c++) {
			if (n + 2 >= len)
				return fb_errorf(-E2BIG, "the command is too "
						 "long for the kernel command "
						 "line: at most about %zu bytes "
						 "of arguments fit",
						 (len - sizeof(BASE_CMDLINE) -
						  sizeof(FB_CMDLINE_CMD)) / 2);
			buf[n++] = hex[(uint8_t)*c >> 4];
			buf[n++] = hex[(uint8_t)*c & 0xf];
			if (!*c)
				break;
		}
	}
	buf[n] = '\0';
	return 0;
}

int fb_run(const struct fb_run_config *cfg, struct fb_run_result *result)
{
	char kernel[PATH_MAX], initrd[PATH_MAX], cmdline[CMDLINE_LIMIT + 1];
	struct fb_vm_config vmc;
	struct run_state *st;
	FILE *log = NULL;
	int err;

	memset(result, 0, sizeof(*result));
	st = calloc(1, sizeof(*st));
	if (!st)
		return fb_errorf(-ENOMEM, "calloc for the run");
	st->cfg = cfg;
	clock_gettime(CLOCK_MONOTONIC, &st->start);
	fb_frame_parser_init(&st->parser, on_frame, st);

	err = build_cmdline(cfg->argv, cmdline, sizeof(cmdline));
	if (!err && !cfg->kernel)
		err = fb_default_kernel(kernel, sizeof(kernel));
	if (!err && !cfg->initrd)
		err = fb_default_initrd(initrd, sizeof(initrd));
	if (!err && cfg->console_log) {
		log = fopen(cfg->console_log, "we");
		if (!log)
			err = fb_errorf(-errno, "open console log %s: %s",
					cfg->console_log, strerror(errno));
	}
	if (err < 0)
		goto out;

	vmc = (struct fb_vm_config){
		.cpus = cfg->cpus,
		.mem_mib = cfg->mem_mib,
		.kernel = cfg->kernel ? cfg->kernel : kernel,
		.initrd = cfg->initrd ? cfg->initrd : initrd,
		.cmdline = cmdline,
		.console_log_fd = log ? fileno(log) : -1,
		.console_live_fd = cfg->console_live_fd,
		.channel = channel_byte,
		.channel_opaque = st,
		.timeout_ms = cfg->timeout_ms,
		.rng = true,
	};
	err = fb_vm_create(&vmc, &st->vm);
	if (err < 0)
		goto out;
	err = fb_vm_run(st->vm, &result->vm_exit);
	if (err < 0)
		goto out;
	result->boot_to_init_ms = st->init_ms;
	result->total_ms = ms_since(&st->start);
	if (st->parser.broken) {
		err = fb_errorf(-EPROTO, "%s", st->parser.error);
	} else if (!st->have_status) {
		err = fb_errorf(-EIO, "the box ended (%s: %s) before the "
				"command's exit status came back",
				fb_vm_exit_reason_name(result->vm_exit.reason),
				result->vm_exit.message);
	} else {
		result->exit_status = st->exit_status;
		if (st->output_failed)
			err = fb_errorf(-EIO, "writing the command's output "
					"failed");
	}
out:
	fb_vm_destroy(st->vm);
	if (log)
		fclose(log);
	free(st);
	return err;
}
