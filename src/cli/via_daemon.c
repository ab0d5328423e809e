#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "cli/via_daemon.h"
#include "host/ksm.h"
#include "util/error.h"

static int fail(const char *cmd)
{
	fprintf(stderr, "forkbox %s: %s\n", cmd, fb_last_error());
	return FB_EXIT_OWN_ERROR;
}

/* json_string() is NULL for a string that is not UTF-8: say so rather
 * than send a request without the field. */
static int put(const char *cmd, json_t *obj, const char *key, json_t *v)
{
	if (v && json_object_set_new(obj, key, v) == 0)
		return 0;
	fprintf(stderr, "forkbox %s: cannot send '%s' to forkboxd (not "
		"UTF-8?)\n", cmd, key);
	return -1;
}

static int put_str(const char *cmd, json_t *obj, const char *key,
		   const char *s)
{
	return put(cmd, obj, key, json_string(s));
}

static json_t *create_body(const struct fb_cli_daemon_create *req)
{
	const struct fb_box_spec *spec = req->spec;
	json_t *body = json_object();
	int err = 0;

	if (!body)
		return NULL;
	if (req->pool) {
		err = put_str("create", body, "pool", req->pool);
	} else {
		/* FORKBOX_KSM=1 here asks for KSM too: the daemon's
		 * environment is not ours. */
		err = put_str("create", body, "image",
			      spec->image ? spec->image : "none") ||
		      put("create", body, "cpus", json_integer(spec->cpus)) ||
		      put("create", body, "mem_mib",
			  json_integer((json_int_t)spec->mem_mib)) ||
		      put("create", body, "ksm",
			  json_boolean(fb_ksm_wanted(spec->ksm)));
	}
	if (!err && req->name)
		err = put_str("create", body, "name", req->name);
	if (!err && req->timeout_s >= 0)
		err = put("create", body, "timeout_s",
			  json_integer(req->timeout_s));
	if (!err && req->idle_timeout_s >= 0)
		err = put("create", body, "idle_timeout_s",
			  json_integer(req->idle_timeout_s));
	if (err) {
		json_decref(body);
		return NULL;
	}
	return body;
}

int fb_cli_daemon_create(const struct fb_cli_daemon_create *req)
{
	json_t *body = create_body(req), *box = NULL;
	const char *id;
	long status;
	int err;

	if (!body)
		return FB_EXIT_OWN_ERROR;
	err = fb_daemon_call("POST", "/v1/boxes", body, &status, &box);
	json_decref(body);
	id = json_string_value(json_object_get(box, "id"));
	if (!err && !id)
		err = fb_errorf(-EPROTO, "forkboxd made a box but named no id");
	if (err < 0) {
		json_decref(box);
		return fail("create");
	}
	printf("%s\n", id);
	json_decref(box);
	return 0;
}

static int box_path(char *buf, size_t len, const char *id, const char *op)
{
	char seg[3 * FB_BOX_ID_LEN + 1];
	int err = fb_daemon_escape(id, seg, sizeof(seg));

	if (err < 0)
		return err;
	return fb_fmt(buf, len, "/v1/boxes/%s%s", seg, op);
}

int fb_cli_daemon_fork(const char *parent_id, unsigned n, bool json)
{
	json_t *body = json_pack("{s:i}", "n", (int)n), *res = NULL, *kids;
	json_t *pause_ms, *total_ms;
	char path[128];
	unsigned printed = 0;
	size_t i;
	long status;
	int err;

	if (!body) {
		fb_errorf(-ENOMEM, "json_pack of the fork request");
		return fail("fork");
	}
	err = box_path(path, sizeof(path), parent_id, "/fork");
	if (!err)
		err = fb_daemon_call("POST", path, body, &status, &res);
	json_decref(body);
	/* A fork that failed part way names the children that did start
	 * (they are the caller's to remove), as the direct fork does. */
	kids = json_object_get(res, "children");
	pause_ms = json_object_get(res, "pause_ms");
	total_ms = json_object_get(res, "total_ms");
	if (json)
		printf("{\"parent\": \"%s\", \"children\": [", parent_id);
	for (i = 0; i < json_array_size(kids); i++) {
		const char *id = json_string_value(
			json_object_get(json_array_get(kids, i), "id"));

		if (!id)
			continue;
		if (json)
			printf("%s\"%s\"", printed ? ", " : "", id);
		else
			printf("%s\n", id);
		printed++;
	}
	if (json) {
		printf("]");
		if (json_is_number(pause_ms))
			printf(", \"pause_ms\": %.2f",
			       json_number_value(pause_ms));
		if (json_is_number(total_ms))
			printf(", \"total_ms\": %.1f",
			       json_number_value(total_ms));
		printf("}\n");
	}
	json_decref(res);
	return err < 0 ? fail("fork") : 0;
}

int fb_cli_daemon_rm(const char *id)
{
	json_t *res = NULL;
	char path[128];
	long status;
	int err = box_path(path, sizeof(path), id, "");

	if (!err)
		err = fb_daemon_call("DELETE", path, NULL, &status, &res);
	json_decref(res);
	return err < 0 ? fail("rm") : 0;
}
