#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/options.h"

int fb_cli_uint(const char *cmd, const char *flag, const char *s,
		uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "forkbox %s: %s '%s': expected a whole number "
			"from %llu to %llu\n", cmd, flag, s,
			(unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}
