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

/* What a reply whose JSON could not be made says instead: a fixed body,
 * so the client still gets a status and one line, not an empty reply. */
static const char no_json[] =
	"{\"error\":\"forkboxd could not build its JSON reply\"}\n";

static enum MHD_Result reply_no_json(struct fbd_req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		sizeof(no_json) - 1, (void *)no_json, MHD_RESPMEM_PERSISTENT);

	if (resp)
		MHD_add_response_header(resp, "Content-Type",
					"application/json");
	return queue(r, 500, resp);
}

enum MHD_Result fbd_reply_json(struct fbd_req *r, unsigned status,
			       json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *nl;
	struct MHD_Response *resp;
	size_t len;

	json_decref(body);
	/* A json_pack that failed (a string not UTF-8, no memory) gave
	 * NULL: the caller's reply is lost, but not the reply. */
	if (!text)
		return reply_no_json(r);
	len = strlen(text);
	/* One trailing newline, so curl's output ends a line. */
	nl = realloc(text, len + 2);
	if (!nl) {
		free(text);
		return reply_no_json(r);
	}
	text = nl;
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

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF, as jansson checks), or 0.
 * The NUL that ends s is no continuation byte, so no read goes past it. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void fbd_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_seq(p);

		if (n) {
			p += n;
			continue;
		}
		*p++ = '?';
	}
}

enum MHD_Result fbd_reply_error(struct fbd_req *r, unsigned status,
				const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A message may quote what the client sent (a box or pool name
	 * from the URL), or be cut mid-character by a precision or by
	 * msg's size: jansson takes only UTF-8. */
	fbd_utf8_fix(msg);
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
	case EALREADY: case ENOTCONN:
	case ECONNREFUSED:                  status = 409; break;
	case EAGAIN:                        status = 429; break;
	case ETIMEDOUT:                     status = 504; break;
	case EACCES: case EPERM:            status = 403; break;
	case EISDIR: case ENOTDIR:          status = 400; break;
	case ENOSPC: case ENOMEM:           status = 507; break;
	case EFBIG:                         status = 413; break;
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
	if (!r->body.len)
		return json_object();
	j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
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

int fbd_json_bool(struct fbd_req *r, json_t *obj, const char *key, bool *out,
		  enum MHD_Result *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		*ret = fbd_reply_error(r, 400, "'%s' must be true or false",
				       key);
		return -1;
	}
	*out = json_is_true(v);
	return 1;
}
