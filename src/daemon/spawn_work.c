/* The spawner's wire (spawner.c): a box spec and a request as JSON, and a
 * worker's side, which turns a request into the library call and its
 * outcome into the reply. Both ends are this binary, so the format is
 * free to change with it; fields are checked all the same, as a reply
 * that is not what it seems would put a wrong id in a daemon's answer.
 *
 *   request  {"op":"create","spec":SPEC,"name":NAME}  (name optional)
 *            {"op":"fork","spec":SPEC,"parent":ID,"n":N}
 *   SPEC     {"cpus","mem_mib","ready_timeout_ms","restore_mem_mode":
 *             numbers, "no_jail","ksm": booleans, "kernel","initrd",
 *             "image","restore_from": strings, absent when NULL}
 *   reply    {"err":0 or a negative errno, "error":MESSAGE when err < 0,
 *             create: "id":ID;
 *             fork: "ids":[ID...] when the library allocated them (the
 *             children made, even before an error), "pause_ms",
 *             "template_ms", "disk_ms", "total_ms", "layers", "runs"} */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "forkbox/forkbox.h"
#include "util/error.h"

int fbd_spec_json(const struct fb_box_spec *s, json_t **out)
{
	/* A daemon's spec holds none of these: fds and pointers into the
	 * caller's memory do not cross a process, and attached would tie
	 * the VMM to a worker that exits at once. */
	if (s->console_live_fd != -1 || s->attached || s->nr_disks ||
	    s->fork_state || s->fork_layers || s->fork_disk_dir ||
	    s->fork_disk_frozen || s->preset_id)
		return fb_errorf(-EINVAL, "forkboxd's spawner carries no console "
				 "fd, attached box, extra disk, fork state or "
				 "preset id");
	*out = json_pack("{s:I,s:I,s:I,s:i,s:b,s:b,s:s*,s:s*,s:s*,s:s*}",
			 "cpus", (json_int_t)s->cpus,
			 "mem_mib", (json_int_t)s->mem_mib,
			 "ready_timeout_ms", (json_int_t)s->ready_timeout_ms,
			 "restore_mem_mode", s->restore_mem_mode,
			 "no_jail", (int)s->no_jail, "ksm", (int)s->ksm,
			 "kernel", s->kernel, "initrd", s->initrd,
			 "image", s->image, "restore_from", s->restore_from);
	if (!*out)
		return fb_errorf(-EINVAL, "json_pack of a box spec failed (a "
				 "path or image name that is not UTF-8?)");
	return 0;
}

/* The strings point into j, which must outlive the spec's use. */
static int spec_from_json(json_t *j, struct fb_box_spec *s)
{
	json_int_t cpus, mem, timeout;
	int mode, no_jail, ksm;
	json_error_t jerr;

	memset(s, 0, sizeof(*s));
	s->console_live_fd = -1;
	if (json_unpack_ex(j, &jerr, JSON_STRICT,
			   "{s:I,s:I,s:I,s:i,s:b,s:b,s?s,s?s,s?s,s?s}",
			   "cpus", &cpus, "mem_mib", &mem,
			   "ready_timeout_ms", &timeout,
			   "restore_mem_mode", &mode,
			   "no_jail", &no_jail, "ksm", &ksm,
			   "kernel", &s->kernel, "initrd", &s->initrd,
			   "image", &s->image,
			   "restore_from", &s->restore_from) < 0)
		return fb_errorf(-EPROTO, "forkboxd's spawner: the request's "
				 "spec: %s", jerr.text);
	if (cpus < 0 || cpus > UINT_MAX || mem < 0 || timeout < 0 ||
	    timeout > UINT_MAX)
		return fb_errorf(-EPROTO, "forkboxd's spawner: the request's "
				 "spec has a number out of range");
	s->cpus = (unsigned)cpus;
	s->mem_mib = (uint64_t)mem;
	s->ready_timeout_ms = (unsigned)timeout;
	s->restore_mem_mode = mode;
	s->no_jail = no_jail;
	s->ksm = ksm;
	return 0;
}

static json_t *error_reply(int err)
{
	char msg[512];

	/* The message may name a path in any bytes; jansson takes UTF-8. */
	snprintf(msg, sizeof(msg), "%s", fb_last_error());
	fbd_utf8_fix(msg);
	return json_pack("{s:i,s:s}", "err", err, "error", msg);
}

static json_t *serve_create(const struct fb_box_spec *spec, const char *name)
{
	char id[FB_BOX_ID_LEN + 1];
	int err = fb_box_create(spec, name, id);

	if (err < 0)
		return error_reply(err);
	return json_pack("{s:i,s:s}", "err", 0, "id", id);
}

static json_t *serve_fork(const struct fb_box_spec *spec, const char *ref,
			  json_int_t n)
{
	struct fb_box_fork_result res;
	struct fb_box_info parent;
	json_t *reply, *ids;
	int err;

	if (n < 0 || n > UINT_MAX)
		return error_reply(fb_errorf(-EPROTO, "forkboxd's spawner: "
					     "fork n %lld", (long long)n));
	/* The parent as its directory says it is now: the daemon's copy
	 * of its info stayed in the daemon. */
	err = fb_box_find(ref, &parent);
	if (err < 0)
		return error_reply(err);
	err = fb_box_fork(&parent, (unsigned)n, spec, &res);
	reply = err < 0 ? error_reply(err) : json_pack("{s:i}", "err", 0);
	if (reply && res.ids) {
		ids = json_array();
		for (unsigned i = 0; ids && i < res.nr; i++)
			json_array_append_new(ids, json_string(res.ids[i].id));
		json_object_set_new(reply, "ids", ids);
	}
	if (reply) {
		json_object_set_new(reply, "pause_ms", json_real(res.pause_ms));
		json_object_set_new(reply, "template_ms",
				    json_real(res.template_ms));
		json_object_set_new(reply, "disk_ms", json_real(res.disk_ms));
		json_object_set_new(reply, "total_ms", json_real(res.total_ms));
		json_object_set_new(reply, "layers", json_integer(res.layers));
		json_object_set_new(reply, "runs",
				    json_integer((json_int_t)res.runs));
	}
	fb_box_fork_result_free(&res);
	return reply;
}

json_t *fbd_spawn_serve(const char *text, size_t len)
{
	const char *op = NULL, *name = NULL, *parent = NULL;
	struct fb_box_spec spec;
	json_t *req = json_loadb(text, len, 0, NULL), *spec_j = NULL, *reply;
	json_int_t n = 0;
	json_error_t jerr;
	int err;

	if (!req)
		err = fb_errorf(-EPROTO, "forkboxd's spawner: a request that "
				"is not JSON");
	else if (json_unpack_ex(req, &jerr, JSON_STRICT,
				"{s:s,s:o,s?s,s?s,s?I}", "op", &op,
				"spec", &spec_j, "name", &name,
				"parent", &parent, "n", &n) < 0)
		err = fb_errorf(-EPROTO, "forkboxd's spawner: the request: %s",
				jerr.text);
	else
		err = spec_from_json(spec_j, &spec);
	if (err < 0)
		reply = error_reply(err);
	else if (!strcmp(op, "create"))
		reply = serve_create(&spec, name);
	else if (!strcmp(op, "fork") && parent)
		reply = serve_fork(&spec, parent, n);
	else
		reply = error_reply(fb_errorf(-EPROTO, "forkboxd's spawner: "
					      "no request '%.40s'", op));
	json_decref(req);
	return reply;
}
