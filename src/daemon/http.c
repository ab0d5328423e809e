/* forkboxd's responses and request-body helpers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "forkbox/forkbox.h"

static enum MHD_Result queue(struct fbd_req *r, unsigned status,
			     struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	fbd_count_response(status);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result fbd_reply_json(struct fbd_req *r, unsigned status,
			       json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	struct MHD_Response *resp;
	size_t len;

	json_decref(body);
	if (!text)
		return MHD_NO;
	len = strlen(text);
	text[len] = '\0';
	/* One trailing newline, so curl's output ends a line. */
	text = realloc(text, len + 2);
	if (!text)
		return MHD_NO;
	text[len] = '\n';
	text[len + 1] = '\0';
	resp = MHD_create_response_from_buffer(len + 1, text,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return queue(r, status, resp);
}

enum MHD_Result fbd_reply_error(struct fbd_req *r, unsigned status,
				const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fbd_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

enum MHD_Result fbd_reply_errno(struct fbd_req *r, int err)
{
	unsigned status;

	switch (-err) {
	case ENOENT: case ESRCH:            status = 404; break;
	case EINVAL: case ENAMETOOLONG:
	case E2BIG: case ERANGE:            status = 400; break;
	case EEXIST: case EBUSY:
	case EALREADY: case ENOTCONN:       status = 409; break;
	case EAGAIN:                        status = 429; break;
	case ETIMEDOUT:                     status = 504; break;
	case EACCES: case EPERM:            status = 403; break;
	case EISDIR: case ENOTDIR:          status = 400; break;
	case ENOSPC: case ENOMEM:           status = 507; break;
	default:                            status = 500; break;
	}
	return fbd_reply_error(r, status, "%s", fb_last_error());
}

enum MHD_Result fbd_reply_empty(struct fbd_req *r, unsigned status)
{
	return queue(r, status, MHD_create_response_from_buffer(
				 0, NULL, MHD_RESPMEM_PERSISTENT));
}

json_t *fbd_body_object(struct fbd_req *r, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *j;

	if (r->too_big) {
		*ret = fbd_reply_error(r, 413, "request body over %u bytes",
				       FBD_MAX_JSON_BODY);
		return NULL;
	}
	if (!r->len)
		return json_object();
	j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		*ret = fbd_reply_error(r, 400, "request body is not JSON: %s "
				       "(line %d, column %d)", jerr.text,
				       jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*ret = fbd_reply_error(r, 400, "request body must be a JSON "
				       "object");
		return NULL;
	}
	return j;
}

const char *fbd_query(struct fbd_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int fbd_json_uint(struct fbd_req *r, json_t *obj, const char *key,
		  uint64_t min, uint64_t max, uint64_t *out,
		  enum MHD_Result *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min ||
	    (uint64_t)json_integer_value(v) > max) {
		*ret = fbd_reply_error(r, 400, "'%s' must be a whole number "
				       "from %llu to %llu", key,
				       (unsigned long long)min,
				       (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

int fbd_json_str(struct fbd_req *r, json_t *obj, const char *key,
		 const char **out, enum MHD_Result *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		*ret = fbd_reply_error(r, 400, "'%s' must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}
