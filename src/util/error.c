#include <stdarg.h>
#include <stdio.h>

#include "util/error.h"

static __thread char last_error[512];

int fb_errorf(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *fb_last_error(void)
{
	return last_error;
}
