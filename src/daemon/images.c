/* /v1/images: list, build (built-in or from a host directory), import
 * (a docker save or OCI layout tarball on the daemon's host). */
#include <errno.h>
#include <string.h>

#include "daemon/daemon.h"
#include "image/store.h"
#include "util/error.h"

static json_t *image_json(const struct fb_image *img)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "name", img->name,
			 "digest", img->digest, "file", img->path,
			 "size_bytes", (json_int_t)img->size,
			 "used_bytes", (json_int_t)img->used,
			 "created", (json_int_t)img->created,
			 "source", img->source);
}

static int add_image(const struct fb_image *img, void *opaque)
{
	json_array_append_new(opaque, image_json(img));
	return 0;
}

static enum MHD_Result made(struct fbd_req *r, int err, struct fb_image *img)
{
	enum MHD_Result ret;

	if (err < 0)
		return fbd_reply_errno(r, err);
	ret = fbd_reply_json(r, 201, image_json(img));
	fb_image_free(img);
	return ret;
}

static enum MHD_Result build(struct fbd_req *r, bool import)
{
	enum MHD_Result ret = MHD_NO;
	json_t *body = fbd_body_object(r, &ret);
	const char *name = NULL, *from = NULL, *path = NULL;
	bool builtin = false;
	struct fb_image img;

	if (!body)
		return ret;
	if (fbd_json_str(r, body, "name", &name, &ret) < 0 ||
	    fbd_json_str(r, body, "from_dir", &from, &ret) < 0 ||
	    fbd_json_str(r, body, "path", &path, &ret) < 0)
		goto out;
	if (fbd_json_bool(r, body, "builtin", &builtin, &ret) < 0)
		goto out;
	if (!name) {
		ret = fbd_reply_error(r, 400, "'name' is needed");
	} else if (import) {
		ret = !path || path[0] != '/' ?
		      fbd_reply_error(r, 400, "'path' must name a tarball by "
				      "its absolute path on the daemon's host") :
		      made(r, fb_image_import(name, path, &img), &img);
	} else if (builtin == !!from) {
		ret = fbd_reply_error(r, 400, "give 'builtin': true or "
				      "'from_dir', one of them");
	} else if (from) {
		ret = from[0] != '/' ?
		      fbd_reply_error(r, 400, "'from_dir' must be absolute") :
		      made(r, fb_image_build_dir(name, from, NULL, from, 0,
						 &img), &img);
	} else {
		ret = made(r, fb_image_build_builtin(name, &img), &img);
	}
out:
	json_decref(body);
	return ret;
}

enum MHD_Result fbd_images(struct fbd_req *r)
{
	if (r->nseg == 2 && !strcmp(r->method, "GET")) {
		json_t *arr = json_array();
		int err = fb_image_list(add_image, arr);

		if (err < 0) {
			json_decref(arr);
			return fbd_reply_errno(r, err);
		}
		return fbd_reply_json(r, 200, json_pack("{s:o}", "images",
							arr));
	}
	if (r->nseg == 2 && !strcmp(r->method, "POST"))
		return build(r, false);
	if (r->nseg == 3 && !strcmp(r->seg[2], "import") &&
	    !strcmp(r->method, "POST"))
		return build(r, true);
	return fbd_reply_error(r, 404, "no such endpoint (images: GET, POST; "
			       "images/import: POST)");
}
