/* The CLI is a thin layer over libforkbox: one file per command, each a
 * function that parses its flags, calls the library and returns the process
 * exit status. */
#ifndef FB_CLI_COMMANDS_H
#define FB_CLI_COMMANDS_H

/* Exit statuses as docker has them: forkbox's own error, cannot execute,
 * not found; any other status is the command's. */
#define FB_EXIT_OWN_ERROR 125
#define FB_EXIT_CANNOT_EXEC 126
#define FB_EXIT_NOT_FOUND 127

int cmd_run(int argc, char **argv);
int cmd_vm(int argc, char **argv);
int cmd_initramfs(int argc, char **argv);
int cmd_host_check(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_balloon(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_debug(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_kernel(int argc, char **argv);
int cmd_pool(int argc, char **argv);

/* The image a box's root disk comes from unless --image says otherwise. */
#define FB_DEFAULT_IMAGE "base"

struct fb_box_spec;
/* --ksm has no short letter (K is run's --keep-log). */
#define FB_CLI_OPT_KSM 0x100
/* Handles --cpus (c), --mem (m), --kernel (k), --initrd (i), --image (I),
 * --disk (D), --ksm (FB_CLI_OPT_KSM): 1 if it was
 * one of them, 0 if not, -1 on a bad value (message printed). */
int fb_cli_box_option(const char *cmd, int c, const char *arg,
		      struct fb_box_spec *spec);
/* With --ksm (or FORKBOX_KSM=1), says on stderr when nothing will merge:
 * no KSM in the kernel, or its scanner is off. Never fails. */
void fb_cli_ksm_notice(const char *cmd, const struct fb_box_spec *spec);

#endif
