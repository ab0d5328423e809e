/* Flag parsing shared by the commands: numbers with bounds and a clear
 * one-line error naming the flag. */
#ifndef FB_CLI_OPTIONS_H
#define FB_CLI_OPTIONS_H

#include <stdint.h>

/* Parses a decimal in [min, max]; prints "forkbox CMD: --flag: ..." and
 * returns -1 on bad input. */
int fb_cli_uint(const char *cmd, const char *flag, const char *s,
		uint64_t min, uint64_t max, uint64_t *out);

#endif
