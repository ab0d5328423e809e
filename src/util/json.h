/* JSON state files: dumped and written whole (util/file.h's atomic write),
 * so a reader sees the old file or the new one. */
#ifndef FB_UTIL_JSON_H
#define FB_UTIL_JSON_H

#include <stddef.h>

#include <jansson.h>

/* Dumps j (taken, also on failure; NULL is an out-of-memory from the
 * caller's json_pack) with jansson's flags and writes it to path
 * atomically with mode. */
int fb_json_write_atomic(const char *path, json_t *j, size_t flags,
			 unsigned mode);

#endif
