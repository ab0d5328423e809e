#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cmd_run, "boot a box, run a command in it, exit with its "
			  "status" },
	{ "create", cmd_create, "boot a box that runs on in the background" },
	{ "exec", cmd_exec, "run a command in a running box" },
	{ "cp", cmd_cp, "copy files into or out of a box (BOX:PATH)" },
	{ "ps", cmd_ps, "list boxes" },
	{ "logs", cmd_logs, "print a box's console log" },
	{ "stop", cmd_stop, "stop a box" },
	{ "rm", cmd_rm, "remove a box" },
	{ "pause", cmd_pause, "pause a running box" },
	{ "resume", cmd_resume, "resume a paused box" },
	{ "snapshot", cmd_snapshot, "snapshot a running box (full or diff); "
				    "merge diffs" },
	{ "restore", cmd_restore, "start a new box from a snapshot" },
	{ "fork", cmd_fork, "fork a running box into N children" },
	{ "balloon", cmd_balloon, "set a running box's memory balloon "
				  "target" },
	{ "stats", cmd_stats, "a running box's memory: balloon, guest, host "
			      "cost" },
	{ "debug", cmd_debug, "write a box's device and interrupt state to "
			      "its vmm.log" },
	{ "pool", cmd_pool, "warm pools of ready boxes (needs forkboxd)" },
	{ "image", cmd_image, "build, import, list and remove root disk images" },
	{ "vm", cmd_vm, "boot a kernel with the console attached (low level)" },
	{ "host-check", cmd_host_check, "tell whether this host's KVM can run "
					"Linux guests" },
	{ "host", cmd_host, "host settings for every box: host ksm on|off|"
			    "status" },
	{ "initramfs", cmd_initramfs, "build forkbox's guest initramfs" },
	{ "kernel", cmd_kernel, "unpack a bzImage into a vmlinux that boots "
				"faster (PVH); kernel info" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: forkbox COMMAND [ARGS...]\n\n"
		"forkbox runs commands in hardware-isolated microVMs on its "
		"own KVM VMM.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n`forkbox COMMAND --help` tells more. Environment: "
		"FORKBOX_HOME (default ~/.local/share/forkbox),\n"
		"FORKBOX_KERNEL and FORKBOX_INITRD override the guest kernel "
		"and initramfs.\n"
		"When forkboxd runs (on $FORKBOX_SOCKET, else "
		"$FORKBOX_HOME/forkboxd.sock),\n"
		"create, fork and rm go through it; FORKBOX_NO_DAEMON=1 keeps "
		"them here.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "forkbox: unknown command '%s' (see forkbox --help)\n",
		argv[1]);
	return 2;
}
