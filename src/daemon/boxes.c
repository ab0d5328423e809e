/* /v1/boxes: create (boot, restore, or from a pool), list, get, delete,
 * pause, resume, snapshot, fork; exec and files are in their own files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "box/control.h"
#include "daemon/daemon.h"
#include "forkbox/forkbox.h"
#include "snapshot/memory.h"
#include "util/error.h"

#define DEFAULT_IMAGE "base"
#define CONTROL_TIMEOUT_MS 120000 /* a snapshot writes all guest RAM */

/* Milliseconds to a tenth: more digits would be noise. */
static double round_01(double ms)
{
	return (double)(long long)(ms * 10 + 0.5) / 10;
}

int64_t fbd_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

json_t *fbd_box_json(const struct fb_box_info *info)
{
	struct fbd_lifetime lt;
	json_t *j = json_pack("{s:s,s:s,s:s,s:i}", "id", info->id,
			      "name", info->name,
			      "state", fb_box_state_name(info->state),
			      "pid", (int)info->pid);

	if (!j)
		return NULL;
	if (info->ready_ms >= 0)
		json_object_set_new(j, "ready_ms",
				    json_real(round_01(info->ready_ms)));
	if (info->state == FB_BOX_DEAD)
		json_object_set_new(j, "exit", json_string(info->exit));
	if (fbd_lifetime_load(info->dir, &lt) == 0) {
		json_object_set_new(j, "timeout_s",
				    json_integer(lt.timeout_s));
		json_object_set_new(j, "idle_timeout_s",
				    json_integer(lt.idle_timeout_s));
		json_object_set_new(j, "created_ns",
				    json_integer(lt.created_ns));
		if (lt.pool[0])
			json_object_set_new(j, "pool", json_string(lt.pool));
	}
	return j;
}

int fbd_count_box(const struct fb_box_info *info, void *opaque)
{
	(*(unsigned *)opaque)++;
	return 0;
}

bool fbd_find_box(struct fbd_req *r, const char *ref,
		  struct fb_box_info *info, enum MHD_Result *ret)
{
	if (fb_box_find(ref, info) < 0) {
		*ret = fbd_reply_error(r, 404, "%s", fb_last_error());
		return false;
	}
	return true;
}

bool fbd_find_running_box(struct fbd_req *r, const char *ref,
			  struct fb_box_info *info, enum MHD_Result *ret)
{
	if (!fbd_find_box(r, ref, info, ret))
		return false;
	if (info->state != FB_BOX_RUNNING) {
		*ret = fbd_reply_error(r, 409, "box %s is %s%s%s", info->id,
				       fb_box_state_name(info->state),
				       info->state == FB_BOX_DEAD ? ": " : "",
				       info->state == FB_BOX_DEAD ?
				       info->exit : "");
		return false;
	}
	fbd_touch(info->id);
	return true;
}

static int add_box(const struct fb_box_info *info, void *opaque)
{
	json_array_append_new(opaque, fbd_box_json(info));
	return 0;
}

static enum MHD_Result list_boxes(struct fbd_req *r)
{
	json_t *arr = json_array();
	int err = fb_box_list(add_box, arr);

	if (err < 0) {
		json_decref(arr);
		return fbd_reply_errno(r, err);
	}
	return fbd_reply_json(r, 200, json_pack("{s:o}", "boxes", arr));
}

/* timeout_s and idle_timeout_s of a request body. */
static int lifetimes(struct fbd_req *r, json_t *body, struct fbd_lifetime *lt,
		     enum MHD_Result *ret)
{
	uint64_t v;
	int got;

	memset(lt, 0, sizeof(*lt));
	lt->created_ns = fbd_realtime_ns();
	got = fbd_json_uint(r, body, "timeout_s", 0, 365ull * 86400, &v, ret);
	if (got < 0)
		return -1;
	if (got)
		lt->timeout_s = (unsigned)v;
	got = fbd_json_uint(r, body, "idle_timeout_s", 0, 365ull * 86400, &v,
			    ret);
	if (got < 0)
		return -1;
	if (got)
		lt->idle_timeout_s = (unsigned)v;
	return 0;
}

static enum MHD_Result reply_box(struct fbd_req *r, unsigned status,
				 const char *id)
{
	struct fb_box_info info;

	if (fb_box_find(id, &info) < 0)
		return fbd_reply_errno(r, -ENOENT);
	return fbd_reply_json(r, status, fbd_box_json(&info));
}

static enum MHD_Result create_box(struct fbd_req *r)
{
	struct fb_box_spec spec = { .cpus = 1, .mem_mib = 256,
				    .console_live_fd = -1,
				    .image = DEFAULT_IMAGE,
				    .restore_mem_mode = FB_SNAP_MEM_FILE };
	const char *name = NULL, *pool = NULL, *snapshot = NULL;
	char id[FB_BOX_ID_LEN + 1];
	enum MHD_Result ret = MHD_NO;
	struct fbd_lifetime lt;
	json_t *body = fbd_body_object(r, &ret);
	uint64_t n;
	double t0 = fbd_mono_s();
	int err, got;

	if (!body)
		return ret;
	if (fbd_json_str(r, body, "image", &spec.image, &ret) < 0 ||
	    fbd_json_str(r, body, "pool", &pool, &ret) < 0 ||
	    fbd_json_str(r, body, "snapshot", &snapshot, &ret) < 0 ||
	    fbd_json_str(r, body, "name", &name, &ret) < 0 ||
	    lifetimes(r, body, &lt, &ret) < 0)
		goto out;
	/* Assigned only when there (1): absent and null leave the
	 * defaults, and n unset. */
	got = fbd_json_uint(r, body, "cpus", 1, 255, &n, &ret);
	if (got < 0)
		goto out;
	if (got)
		spec.cpus = (unsigned)n;
	got = fbd_json_uint(r, body, "mem_mib", 64, 65536, &n, &ret);
	if (got < 0)
		goto out;
	if (got)
		spec.mem_mib = n;
	if (fbd_json_bool(r, body, "ksm", &spec.ksm, &ret) < 0)
		goto out;
	if (!strcmp(spec.image, "none"))
		spec.image = NULL;
	if (pool && snapshot) {
		ret = fbd_reply_error(r, 400, "give 'pool' or 'snapshot', not "
				      "both");
		goto out;
	}
	/* A pool's boxes were made before anyone asked for them. */
	if (pool && name) {
		ret = fbd_reply_error(r, 400, "a box from a pool has no name: "
				      "drop 'name' or 'pool'");
		goto out;
	}
	if (pool) {
		err = fbd_pool_acquire(pool, &lt, id);
		if (err < 0) {
			ret = fbd_reply_errno(r, err);
			goto out;
		}
		fbd_observe(FBD_H_ACQUIRE, fbd_mono_s() - t0);
		ret = reply_box(r, 201, id);
		goto out;
	}
	if (snapshot) {
		if (snapshot[0] != '/') {
			ret = fbd_reply_error(r, 400, "'snapshot' must be an "
					      "absolute path");
			goto out;
		}
		spec.restore_from = snapshot;
	}
	err = fb_host_check();
	if (!err)
		err = fbd_box_create(&spec, name, id);
	if (err < 0) {
		ret = fbd_reply_errno(r, err);
		goto out;
	}
	fbd_observe(FBD_H_CREATE, fbd_mono_s() - t0);
	{
		struct fb_box_info info;

		if (fb_box_find(id, &info) == 0)
			fbd_lifetime_save(info.dir, &lt);
	}
	fbd_touch(id);
	ret = reply_box(r, 201, id);
out:
	json_decref(body);
	return ret;
}

static enum MHD_Result control(struct fbd_req *r, const struct fb_box_info *info,
			       const char *request)
{
	char reply[FB_BOX_CONTROL_MAX_LINE];
	int err;

	if (info->state != FB_BOX_RUNNING && info->state != FB_BOX_PAUSED)
		return fbd_reply_error(r, 409, "box %s is %s", info->id,
				       fb_box_state_name(info->state));
	/* A second pause never reaches the VMM: its answer would not say
	 * "already paused" (an error there comes back as -EIO with the
	 * VMM's text), and pausing a paused VM quiesces its devices again
	 * (virtio-blk takes a lock it holds). Two pauses at once still
	 * race past this check. Resuming a running box is harmless. */
	if (!strcmp(request, "pause") && info->state == FB_BOX_PAUSED)
		return fbd_reply_error(r, 409, "box %s is paused already",
				       info->id);
	/* The library's errno: a box gone meanwhile is ENOENT (404), a
	 * VMM that died ECONNREFUSED (409), one that hangs ETIMEDOUT. */
	err = fb_box_control_call(info->dir, request, reply, sizeof(reply),
				  CONTROL_TIMEOUT_MS);
	if (err < 0)
		return fbd_reply_errno(r, err);
	return reply_box(r, 200, info->id);
}

static enum MHD_Result snapshot_box(struct fbd_req *r,
				    const struct fb_box_info *info)
{
	enum MHD_Result ret = MHD_NO;
	json_t *body = fbd_body_object(r, &ret);
	const char *path = NULL;
	char dir[PATH_MAX], detail[256] = "";
	bool diff = false;
	int err;

	if (!body)
		return ret;
	if (fbd_json_str(r, body, "path", &path, &ret) < 0 ||
	    fbd_json_bool(r, body, "diff", &diff, &ret) < 0)
		goto out;
	if (path && path[0] != '/') {
		ret = fbd_reply_error(r, 400, "'path' must be absolute");
		goto out;
	}
	if (!path) {
		char home[PATH_MAX];

		err = fb_home_dir(home, sizeof(home));
		if (err < 0) {
			ret = fbd_reply_errno(r, err);
			goto out;
		}
		if (fb_fmt(dir, sizeof(dir), "%s/snapshots", home) == 0)
			mkdir(dir, 0700);
		if (fb_fmt(dir, sizeof(dir), "%s/snapshots/%s-%lld", home,
			   info->id, (long long)fbd_realtime_ns()) < 0) {
			ret = fbd_reply_errno(r, -ENAMETOOLONG);
			goto out;
		}
		path = dir;
	}
	err = fb_box_snapshot(info, path, diff, detail, sizeof(detail));
	if (err < 0) {
		ret = fbd_reply_errno(r, err);
		goto out;
	}
	ret = fbd_reply_json(r, 201, json_pack("{s:s,s:s}", "path", path,
					       "detail", detail));
out:
	json_decref(body);
	return ret;
}

static enum MHD_Result fork_box(struct fbd_req *r,
				const struct fb_box_info *info)
{
	struct fb_box_spec spec = { .console_live_fd = -1 };
	struct fb_box_fork_result res;
	enum MHD_Result ret = MHD_NO;
	json_t *body = fbd_body_object(r, &ret), *kids;
	struct fbd_lifetime lt;
	uint64_t n = 1;
	double t0 = fbd_mono_s();
	int err;

	if (!body)
		return ret;
	if (fbd_json_uint(r, body, "n", 1, 1024, &n, &ret) < 0 ||
	    lifetimes(r, body, &lt, &ret) < 0)
		goto out;
	err = fbd_box_fork(info, (unsigned)n, &spec, &res);
	kids = json_array();
	for (unsigned i = 0; i < res.nr; i++) {
		struct fb_box_info child;

		if (fb_box_find(res.ids[i].id, &child) < 0)
			continue;
		fbd_lifetime_save(child.dir, &lt);
		fbd_touch(child.id);
		json_array_append_new(kids, fbd_box_json(&child));
	}
	if (err < 0) {
		/* The children that did start are the caller's to see and
		 * delete: say which they are along with why. */
		char msg[512];
		json_t *e;

		snprintf(msg, sizeof(msg), "%s", fb_last_error());
		fbd_utf8_fix(msg);
		e = json_pack("{s:s,s:o}", "error", msg, "children", kids);

		ret = fbd_reply_json(r, 500, e);
	} else {
		fbd_observe(FBD_H_FORK, fbd_mono_s() - t0);
		ret = fbd_reply_json(r, 201, json_pack(
			"{s:o,s:f,s:f}", "children", kids,
			"pause_ms", round_01(res.pause_ms),
			"total_ms", round_01(res.total_ms)));
	}
	fb_box_fork_result_free(&res);
out:
	json_decref(body);
	return ret;
}

enum MHD_Result fbd_boxes(struct fbd_req *r)
{
	const char *m = r->method, *op = r->nseg > 3 ? r->seg[3] : NULL;
	struct fb_box_info info;
	enum MHD_Result ret = MHD_NO;
	int err;

	if (r->nseg == 2) {
		if (!strcmp(m, "GET"))
			return list_boxes(r);
		if (!strcmp(m, "POST"))
			return create_box(r);
		return fbd_reply_error(r, 405, "use GET or POST on /v1/boxes");
	}
	if (r->nseg == 3) {
		if (!strcmp(m, "GET"))
			return fbd_find_box(r, r->seg[2], &info, &ret) ?
			       fbd_reply_json(r, 200, fbd_box_json(&info)) : ret;
		if (!strcmp(m, "DELETE")) {
			if (!fbd_find_box(r, r->seg[2], &info, &ret))
				return ret;
			err = fbd_box_delete(&info);
			if (err < 0)
				return fbd_reply_errno(r, err);
			return fbd_reply_empty(r, 204);
		}
		return fbd_reply_error(r, 405, "use GET or DELETE on a box");
	}
	if (!strcmp(op, "files") && r->nseg <= 5) {
		bool list = r->nseg == 5 && !strcmp(r->seg[4], "list");

		if (r->nseg == 5 && !list)
			return fbd_reply_error(r, 404, "no such endpoint");
		if (!fbd_find_running_box(r, r->seg[2], &info, &ret))
			return ret;
		return fbd_files(r, &info, list);
	}
	if (r->nseg != 4)
		return fbd_reply_error(r, 404, "no such endpoint");
	if (strcmp(m, "POST"))
		return fbd_reply_error(r, 405, "use POST on /v1/boxes/BOX/%s",
				       op);
	if (!strcmp(op, "pause") || !strcmp(op, "resume")) {
		if (!fbd_find_box(r, r->seg[2], &info, &ret))
			return ret;
		return control(r, &info, op);
	}
	if (!fbd_find_running_box(r, r->seg[2], &info, &ret))
		return ret;
	if (!strcmp(op, "exec"))
		return fbd_exec(r, &info);
	if (!strcmp(op, "snapshot"))
		return snapshot_box(r, &info);
	if (!strcmp(op, "fork"))
		return fork_box(r, &info);
	return fbd_reply_error(r, 404, "no such endpoint /v1/boxes/BOX/%s", op);
}
