#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

int fb_json_write_atomic(const char *path, json_t *j, size_t flags,
			 unsigned mode)
{
	char *text = j ? json_dumps(j, flags) : NULL;
	int err;

	json_decref(j);
	if (!text)
		return fb_errorf(-ENOMEM, "%s: JSON out of memory", path);
	err = fb_write_file_atomic(path, text, strlen(text), mode);
	free(text);
	return err;
}
