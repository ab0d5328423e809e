/* Lifetimes of the boxes the daemon made: lifetime.json in each box's
 * directory (so a restarted daemon knows them), last-request times in
 * memory (a restart starts every idle clock again), and the reaper. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/daemon.h"
#include "forkbox/forkbox.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

#define LIFETIME_NAME "lifetime.json"

static pthread_mutex_t touch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct touched {
	char id[FB_BOX_ID_LEN + 1];
	double at;
} *touched;
static size_t nr_touched, cap_touched;
static double started_at;

int fbd_lifetime_save(const char *box_dir, const struct fbd_lifetime *lt)
{
	char path[PATH_MAX + 32];

	if (fb_fmt(path, sizeof(path), "%s/" LIFETIME_NAME, box_dir) < 0)
		return -ENAMETOOLONG;
	return fb_json_write_atomic(path, json_pack(
		"{s:i,s:i,s:I,s:s,s:b,s:b}", "timeout_s", (int)lt->timeout_s,
		"idle_timeout_s", (int)lt->idle_timeout_s, "created_ns",
		(json_int_t)lt->created_ns, "pool", lt->pool, "pool_idle",
		lt->pool_idle, "pool_template", lt->pool_template),
		JSON_COMPACT, 0600);
}

int fbd_lifetime_load(const char *box_dir, struct fbd_lifetime *lt)
{
	char path[PATH_MAX + 32];
	json_int_t t = 0, idle = 0, created = 0;
	const char *pool = "";
	int pool_idle = 0, tmpl = 0;
	json_error_t jerr;
	json_t *j;

	memset(lt, 0, sizeof(*lt));
	if (fb_fmt(path, sizeof(path), "%s/" LIFETIME_NAME, box_dir) < 0)
		return -ENAMETOOLONG;
	j = json_load_file(path, 0, &jerr);
	if (!j)
		return -ENOENT;
	if (json_unpack(j, "{s?I,s?I,s?I,s?s,s?b,s?b}", "timeout_s", &t,
			"idle_timeout_s", &idle, "created_ns", &created,
			"pool", &pool, "pool_idle", &pool_idle,
			"pool_template", &tmpl) < 0 || t < 0 || idle < 0) {
		json_decref(j);
		return -EINVAL;
	}
	lt->timeout_s = (unsigned)t;
	lt->idle_timeout_s = (unsigned)idle;
	lt->created_ns = created;
	snprintf(lt->pool, sizeof(lt->pool), "%s", pool);
	lt->pool_idle = pool_idle;
	lt->pool_template = tmpl;
	json_decref(j);
	return 0;
}

void fbd_touch(const char *id)
{
	double now = fbd_mono_s();

	pthread_mutex_lock(&touch_lock);
	for (size_t i = 0; i < nr_touched; i++)
		if (!strcmp(touched[i].id, id)) {
			touched[i].at = now;
			pthread_mutex_unlock(&touch_lock);
			return;
		}
	if (nr_touched == cap_touched) {
		size_t cap = cap_touched ? 2 * cap_touched : 64;
		struct touched *t = realloc(touched, cap * sizeof(*t));

		if (!t) {
			pthread_mutex_unlock(&touch_lock);
			return;
		}
		touched = t;
		cap_touched = cap;
	}
	snprintf(touched[nr_touched].id, sizeof(touched[0].id), "%s", id);
	touched[nr_touched++].at = now;
	pthread_mutex_unlock(&touch_lock);
}

void fbd_forget(const char *id)
{
	pthread_mutex_lock(&touch_lock);
	for (size_t i = 0; i < nr_touched; i++)
		if (!strcmp(touched[i].id, id)) {
			touched[i] = touched[--nr_touched];
			break;
		}
	pthread_mutex_unlock(&touch_lock);
}

/* When the box was last used; the daemon's start for a box it has not
 * seen a request for since. */
static double last_touch(const char *id)
{
	double at = started_at;

	pthread_mutex_lock(&touch_lock);
	for (size_t i = 0; i < nr_touched; i++)
		if (!strcmp(touched[i].id, id))
			at = touched[i].at;
	pthread_mutex_unlock(&touch_lock);
	return at;
}

int fbd_box_delete(const struct fb_box_info *info)
{
	int err = fb_box_remove(info, true);

	if (!err)
		fbd_forget(info->id);
	return err;
}

static int reap_one(const struct fb_box_info *info, void *opaque)
{
	struct fbd_lifetime lt;
	const char *why = NULL;
	double age;

	if (fbd_lifetime_load(info->dir, &lt) < 0)
		return 0; /* not the daemon's */
	age = (double)(fbd_realtime_ns() - lt.created_ns) / 1e9;
	if (info->state == FB_BOX_DEAD)
		why = "its VMM ended";
	else if (lt.pool_idle || lt.pool_template)
		return 0; /* its pool's to manage */
	else if (lt.timeout_s && age > lt.timeout_s)
		why = "its timeout_s passed";
	else if (lt.idle_timeout_s &&
		 fbd_mono_s() - last_touch(info->id) > lt.idle_timeout_s)
		why = "its idle_timeout_s passed";
	if (!why)
		return 0;
	fprintf(stderr, "forkboxd: removing box %s: %s\n", info->id, why);
	if (fbd_box_delete(info) < 0)
		fprintf(stderr, "forkboxd: removing box %s: %s\n", info->id,
			fb_last_error());
	return 0;
}

static void *reaper(void *arg)
{
	do
		fb_box_list(reap_one, NULL);
	while (fbd_wait_ms(1000));
	return NULL;
}

int fbd_reaper_start(void)
{
	pthread_t t;
	int e;

	started_at = fbd_mono_s();
	e = pthread_create(&t, NULL, reaper, NULL);
	if (e)
		return fb_errorf(-e, "pthread_create: %s", strerror(e));
	pthread_detach(t);
	return 0;
}
