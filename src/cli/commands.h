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

#endif
