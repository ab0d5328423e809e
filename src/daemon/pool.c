/* Warm pools: a template box per pool, booted once, and idle forks of it
 * kept ready (min_idle, at most max out of the pool, idle ones replaced
 * after idle_ttl_s). Acquiring hands out an idle child, re-stamped when it
 * was forked; when none is idle it forks one then and there.
 *
 * One manager thread does the slow work (boots, forks, removals) with the
 * lock dropped; requests only take and give under the lock. A pool's
 * config and template are in $FORKBOX_HOME/pools/NAME.json; which boxes
 * are its idle ones is in their lifetime.json, so a restarted daemon
 * finds them again. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "forkbox/forkbox.h"
#include "image/store.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

#define POOL_NAME_MAX 63
#define TEMPLATE_RETRY_S 30
#define ACQUIRE_WAIT_S 300

enum pool_state { POOL_STARTING, POOL_READY, POOL_FAILED };

struct idle_box {
	char id[FB_BOX_ID_LEN + 1];
	double born;      /* CLOCK_MONOTONIC s */
};

struct pool {
	char name[POOL_NAME_MAX + 1];
	char image[FB_IMAGE_NAME_MAX + 1];  /* "none": the initramfs */
	unsigned cpus, min_idle, max, idle_ttl_s;
	uint64_t mem_mib;
	char template_id[FB_BOX_ID_LEN + 1];
	enum pool_state state;
	char error[256];
	double failed_at;
	struct idle_box *idle;
	unsigned nr_idle, cap_idle;
	unsigned out;     /* handed out and alive, as last counted, plus
			     pending */
	unsigned pending; /* being handed out now (an idle box re-stamped,
			     a fork on demand): out before its lifetime.json
			     says so */
	bool deleted;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct pool **pools;
static unsigned nr_pools;
static bool loaded;        /* fbd_pools_load ran: pools[] is whole */
static pthread_t manager_thread;
static bool manager_started;

static int pools_dir(char *buf, size_t len)
{
	char home[PATH_MAX];
	int err = fb_home_dir(home, sizeof(home));

	if (err < 0)
		return err;
	err = fb_fmt(buf, len, "%s/pools", home);
	if (!err && mkdir(buf, 0700) < 0 && errno != EEXIST)
		err = fb_errorf(-errno, "mkdir %s: %s", buf, strerror(errno));
	return err;
}

static struct pool *find(const char *name)
{
	for (unsigned i = 0; i < nr_pools; i++)
		if (!pools[i]->deleted && !strcmp(pools[i]->name, name))
			return pools[i];
	return NULL;
}

/* Takes the lock once the pools are loaded: the sockets listen before
 * (main.c), and a request must not see a pool missing, or make one of a
 * name that is about to be read back. */
static void lock_loaded(void)
{
	pthread_mutex_lock(&lock);
	while (!loaded)
		pthread_cond_wait(&changed, &lock);
}

static const char *state_name(enum pool_state s)
{
	return s == POOL_READY ? "ready" : s == POOL_FAILED ? "failed" :
	       "starting";
}

/* Under the lock: the pool's config and template, what its file keeps. */
static json_t *pool_config_json(const struct pool *p)
{
	return json_pack("{s:s,s:s,s:i,s:I,s:i,s:i,s:i,s:s}", "name", p->name,
			 "image", p->image, "cpus", (int)p->cpus,
			 "mem_mib", (json_int_t)p->mem_mib,
			 "min_idle", (int)p->min_idle, "max", (int)p->max,
			 "idle_ttl_s", (int)p->idle_ttl_s,
			 "template", p->template_id);
}

/* Under the lock: the config, and how the pool is doing. */
static json_t *pool_json(const struct pool *p)
{
	json_t *j = pool_config_json(p), *idle = json_array();

	for (unsigned i = 0; i < p->nr_idle; i++)
		json_array_append_new(idle, json_string(p->idle[i].id));
	if (!j) {
		json_decref(idle);
		return NULL;
	}
	if (json_object_update_new(j, json_pack(
		    "{s:s,s:s,s:o,s:i}", "state", state_name(p->state),
		    "error", p->error, "idle", idle, "handed_out",
		    (int)p->out)) == 0)
		return j;
	json_decref(j);
	return NULL;
}

/* Under the lock: written atomically. */
static int save(const struct pool *p)
{
	char dir[PATH_MAX], path[PATH_MAX + 80];
	int err = pools_dir(dir, sizeof(dir));

	if (err < 0)
		return err;
	snprintf(path, sizeof(path), "%s/%s.json", dir, p->name);
	return fb_json_write_atomic(path, pool_config_json(p), JSON_COMPACT,
				    0600);
}

static int add_idle(struct pool *p, const char *id, double born)
{
	if (p->nr_idle == p->cap_idle) {
		unsigned cap = p->cap_idle ? 2 * p->cap_idle : 8;
		struct idle_box *n = realloc(p->idle, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->idle = n;
		p->cap_idle = cap;
	}
	snprintf(p->idle[p->nr_idle].id, sizeof(p->idle[0].id), "%s", id);
	p->idle[p->nr_idle++].born = born;
	return 0;
}

static void drop_idle(struct pool *p, unsigned i)
{
	memmove(&p->idle[i], &p->idle[i + 1],
		(p->nr_idle - i - 1) * sizeof(p->idle[0]));
	p->nr_idle--;
}

static void remove_box(const char *id, const char *why)
{
	struct fb_box_info info;

	if (fb_box_find(id, &info) < 0)
		return;
	fprintf(stderr, "forkboxd: removing box %s: %s\n", id, why);
	if (fbd_box_delete(&info) < 0)
		fprintf(stderr, "forkboxd: removing box %s: %s\n", id,
			fb_last_error());
}

/* ---- loading: pools/NAME.json, and the boxes that are theirs ---------- */

struct census {
	const char *pool; /* its name: fixed, read without the lock */
	unsigned out;
};

static int count_pool_box(const struct fb_box_info *info, void *opaque)
{
	struct census *c = opaque;
	struct fbd_lifetime lt;

	if (info->state == FB_BOX_DEAD || fbd_lifetime_load(info->dir, &lt) ||
	    strcmp(lt.pool, c->pool))
		return 0;
	if (!lt.pool_idle && !lt.pool_template)
		c->out++;
	return 0;
}

static int find_idle(const struct fb_box_info *info, void *opaque)
{
	struct pool *p = opaque;
	struct fbd_lifetime lt;
	double age;

	if (info->state != FB_BOX_RUNNING ||
	    fbd_lifetime_load(info->dir, &lt) || strcmp(lt.pool, p->name) ||
	    !lt.pool_idle)
		return 0;
	age = (double)(fbd_realtime_ns() - lt.created_ns) / 1e9;
	add_idle(p, info->id, fbd_mono_s() - (age > 0 ? age : 0));
	return 0;
}

/* A pool's config from the API, or (from_disk) from pools/NAME.json,
 * which alone may name its template: a client could otherwise make any
 * box a pool's template, and DELETE of the pool remove it. */
static struct pool *pool_from_json(json_t *j, bool from_disk, char *err,
				   size_t err_len)
{
	const char *name = "", *image = "base", *tmpl = "";
	json_int_t cpus = 1, mem = 256, min_idle = 1, max = 16, ttl = 0;
	struct pool *p;

	if (json_unpack(j, "{s:s,s?s,s?I,s?I,s?I,s?I,s?I,s?s}", "name", &name,
			"image", &image, "cpus", &cpus, "mem_mib", &mem,
			"min_idle", &min_idle, "max", &max, "idle_ttl_s", &ttl,
			"template", &tmpl) < 0) {
		snprintf(err, err_len, "a pool needs 'name' (a string); image "
			 "a string; cpus, mem_mib, min_idle, max, idle_ttl_s "
			 "whole numbers");
		return NULL;
	}
	if (!name[0] || strlen(name) > POOL_NAME_MAX ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789._-") != strlen(name) || name[0] == '.') {
		snprintf(err, err_len, "pool name '%.80s': 1 to 63 of "
			 "A-Z a-z 0-9 . _ -, not starting with '.'", name);
		return NULL;
	}
	if (cpus < 1 || cpus > 255 || mem < 64 || mem > 65536 ||
	    min_idle < 0 || max < 1 || max > 1024 || min_idle > max ||
	    ttl < 0 || ttl > 365LL * 86400) {
		snprintf(err, err_len, "pool '%s': cpus 1..255, mem_mib "
			 "64..65536, 0 <= min_idle <= max <= 1024, idle_ttl_s "
			 ">= 0", name);
		return NULL;
	}
	if (strlen(image) > FB_IMAGE_NAME_MAX ||
	    (strcmp(image, "none") && fb_image_check_name(image) < 0)) {
		snprintf(err, err_len, "pool '%s': bad image name '%.80s'",
			 name, image);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->image, sizeof(p->image), "%s", image);
	if (from_disk && strlen(tmpl) == FB_BOX_ID_LEN)
		snprintf(p->template_id, sizeof(p->template_id), "%s", tmpl);
	p->cpus = (unsigned)cpus;
	p->mem_mib = (uint64_t)mem;
	p->min_idle = (unsigned)min_idle;
	p->max = (unsigned)max;
	p->idle_ttl_s = (unsigned)ttl;
	return p;
}

static int add_pool(struct pool *p)
{
	struct pool **n = realloc(pools, (nr_pools + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	pools = n;
	pools[nr_pools++] = p;
	return 0;
}

static bool is_template(const struct pool *p, struct fb_box_info *info)
{
	struct fbd_lifetime lt;

	return fb_box_find(p->template_id, info) == 0 &&
	       !strcmp(info->id, p->template_id) &&
	       info->state == FB_BOX_RUNNING &&
	       fbd_lifetime_load(info->dir, &lt) == 0 && lt.pool_template &&
	       !strcmp(lt.pool, p->name);
}

static int load_pools(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], msg[256];
	struct dirent *e;
	DIR *d;
	int err = pools_dir(dir, sizeof(dir));

	if (err < 0)
		return err;
	d = opendir(dir);
	if (!d)
		return fb_errorf(-errno, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct fb_box_info info;
		json_error_t jerr;
		struct pool *p;
		json_t *j;

		if (len < 6 || e->d_name[0] == '.' ||
		    strcmp(e->d_name + len - 5, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		j = json_load_file(path, 0, &jerr);
		p = j ? pool_from_json(j, true, msg, sizeof(msg)) : NULL;
		json_decref(j);
		if (!p) {
			fprintf(stderr, "forkboxd: ignoring pool file %s: %s\n",
				path, j ? msg : jerr.text);
			continue;
		}
		/* A template that lives on, and that its lifetime.json
		 * says is this pool's, is the pool's again; else the
		 * manager boots a new one. */
		if (p->template_id[0] && is_template(p, &info))
			p->state = POOL_READY;
		else
			p->template_id[0] = '\0';
		fb_box_list(find_idle, p);
		if (add_pool(p) < 0) {
			free(p);
			break;
		}
	}
	closedir(d);
	return 0;
}

int fbd_pools_load(void)
{
	int err;

	/* Under the lock, and loaded set even on failure: a request that
	 * waits in lock_loaded() must not wait for ever. */
	pthread_mutex_lock(&lock);
	err = load_pools();
	loaded = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	return err;
}

/* ---- the manager -------------------------------------------------------- */

static int boot_template(struct pool *p, char id[FB_BOX_ID_LEN + 1])
{
	struct fb_box_spec spec = { .cpus = p->cpus, .mem_mib = p->mem_mib,
				    .console_live_fd = -1,
				    .image = strcmp(p->image, "none") ?
					     p->image : NULL };
	struct fbd_lifetime lt = { .created_ns = fbd_realtime_ns(),
				   .pool_template = true };
	struct fb_box_info info;
	int err;

	snprintf(lt.pool, sizeof(lt.pool), "%s", p->name);
	err = fb_host_check();
	if (!err)
		err = fbd_box_create(&spec, NULL, id);
	if (!err && fb_box_find(id, &info) == 0)
		fbd_lifetime_save(info.dir, &lt);
	return err;
}

/* Forks n children of the template, marked idle (or handed out when
 * handed is not NULL: one child, with its lifetimes). */
static int fork_children(const char *pool, const char *template_id,
			 unsigned n, const struct fbd_lifetime *handed,
			 struct fb_box_fork_result *res)
{
	struct fb_box_spec spec = { .console_live_fd = -1 };
	struct fb_box_info parent, child;
	struct fbd_lifetime lt = { .created_ns = fbd_realtime_ns(),
				   .pool_idle = true };
	int err;

	memset(res, 0, sizeof(*res));
	if (handed)
		lt = *handed;
	snprintf(lt.pool, sizeof(lt.pool), "%s", pool);
	if (fb_box_find(template_id, &parent) < 0)
		return -ENOENT;
	if (parent.state != FB_BOX_RUNNING)
		return fb_errorf(-ESRCH, "pool %s: its template %s is %s", pool,
				 template_id, fb_box_state_name(parent.state));
	err = fbd_box_fork(&parent, n, &spec, res);
	for (unsigned i = 0; i < res->nr; i++)
		if (fb_box_find(res->ids[i].id, &child) == 0)
			fbd_lifetime_save(child.dir, &lt);
	return err;
}

/* Under the lock, which it drops while it reads the idle boxes' files
 * (fb_box_find), so that acquires do not wait on a scan: the first idle
 * box that died or waited past idle_ttl_s and is idle still, taken out of
 * the list into id. */
static bool take_gone_idle(struct pool *p, double now,
			   char id[FB_BOX_ID_LEN + 1], const char **why)
{
	struct idle_box *seen;
	struct fb_box_info info;
	unsigned n = p->nr_idle, i;
	bool found = false;

	if (!n)
		return false;
	seen = malloc(n * sizeof(*seen));
	if (!seen)
		return false;
	memcpy(seen, p->idle, n * sizeof(*seen));
	pthread_mutex_unlock(&lock);
	for (i = 0; i < n && !found; i++) {
		bool dead = fb_box_find(seen[i].id, &info) < 0 ||
			    info.state != FB_BOX_RUNNING;

		found = dead || (p->idle_ttl_s &&
				 now - seen[i].born > p->idle_ttl_s);
		*why = dead ? "an idle pool box that died" :
			      "an idle pool box older than idle_ttl_s";
	}
	pthread_mutex_lock(&lock);
	if (found) {
		/* Handed out meanwhile: not idle, not ours to remove. */
		found = false;
		for (unsigned j = 0; j < p->nr_idle && !found; j++) {
			if (strcmp(p->idle[j].id, seen[i - 1].id))
				continue;
			snprintf(id, FB_BOX_ID_LEN + 1, "%s", p->idle[j].id);
			drop_idle(p, j);
			found = true;
		}
	}
	free(seen);
	return found;
}

/* One step for one pool: called with the lock held; drops it for the
 * slow work. Returns whether it did some (then the manager looks again
 * at once). */
static bool tend(struct pool *p)
{
	char id[FB_BOX_ID_LEN + 1], tmpl[FB_BOX_ID_LEN + 1];
	struct census c = { .pool = p->name };
	const char *why = NULL;
	struct fb_box_fork_result res;
	struct fb_box_info info;
	double now = fbd_mono_s();
	unsigned want, room;
	int err;

	if (p->state == POOL_FAILED && now - p->failed_at < TEMPLATE_RETRY_S)
		return false;
	if (p->state != POOL_READY) {
		pthread_mutex_unlock(&lock);
		err = boot_template(p, id);
		pthread_mutex_lock(&lock);
		if (p->deleted) {
			if (!err) {
				pthread_mutex_unlock(&lock);
				remove_box(id, "its pool was deleted");
				pthread_mutex_lock(&lock);
			}
			return true;
		}
		if (err < 0) {
			p->state = POOL_FAILED;
			p->failed_at = fbd_mono_s();
			snprintf(p->error, sizeof(p->error), "template: %s",
				 fb_last_error());
			fprintf(stderr, "forkboxd: pool %s: %s\n", p->name,
				p->error);
		} else {
			snprintf(p->template_id, sizeof(p->template_id), "%s",
				 id);
			p->state = POOL_READY;
			p->error[0] = '\0';
			save(p);
		}
		pthread_cond_broadcast(&changed);
		return true;
	}
	/* Idle boxes that died or waited past idle_ttl_s go. */
	if (take_gone_idle(p, now, id, &why)) {
		pthread_mutex_unlock(&lock);
		remove_box(id, why);
		pthread_mutex_lock(&lock);
		return true; /* the pool may have changed meanwhile */
	}
	pthread_mutex_unlock(&lock);
	fb_box_list(count_pool_box, &c);
	pthread_mutex_lock(&lock);
	p->out = c.out + p->pending;
	want = p->min_idle > p->nr_idle ? p->min_idle - p->nr_idle : 0;
	room = p->max > p->nr_idle + p->out ? p->max - p->nr_idle - p->out : 0;
	if (want > room)
		want = room;
	/* After a failed fork, the next try waits as a template's would. */
	if (!want || p->deleted ||
	    (p->error[0] && now - p->failed_at < TEMPLATE_RETRY_S))
		return false;
	snprintf(tmpl, sizeof(tmpl), "%s", p->template_id);
	pthread_mutex_unlock(&lock);
	err = fork_children(p->name, tmpl, want, NULL, &res);
	pthread_mutex_lock(&lock);
	if (err < 0) {
		snprintf(p->error, sizeof(p->error), "fork: %s", fb_last_error());
		p->failed_at = fbd_mono_s();
		fprintf(stderr, "forkboxd: pool %s: %s\n", p->name, p->error);
		/* A template that died is booted again. */
		if (fb_box_find(tmpl, &info) < 0 ||
		    info.state != FB_BOX_RUNNING) {
			p->state = POOL_STARTING;
			p->template_id[0] = '\0';
		}
	}
	else
		p->error[0] = '\0';
	for (unsigned i = 0; i < res.nr; i++) {
		if (p->deleted) {
			pthread_mutex_unlock(&lock);
			remove_box(res.ids[i].id, "its pool was deleted");
			pthread_mutex_lock(&lock);
		} else {
			add_idle(p, res.ids[i].id, fbd_mono_s());
		}
	}
	fb_box_fork_result_free(&res);
	pthread_cond_broadcast(&changed);
	/* A fork that failed is not tried again before the next look. */
	return err == 0;
}

static bool wants_work(const struct pool *p)
{
	return !p->deleted && (p->state != POOL_READY ||
			       p->nr_idle < p->min_idle || p->idle_ttl_s);
}

static void *manager(void *arg)
{
	pthread_mutex_lock(&lock);
	while (!fbd_stopping()) {
		struct timespec until;
		bool worked = false;

		for (unsigned i = 0; i < nr_pools && !fbd_stopping(); i++)
			if (wants_work(pools[i]) && tend(pools[i]))
				worked = true;
		if (worked)
			continue;
		/* Woken by an acquire or a new pool; else a look a second
		 * (idle boxes may die or age). */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&changed, &lock, &until);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int fbd_pools_start(void)
{
	int e = pthread_create(&manager_thread, NULL, manager, NULL);

	if (e)
		return fb_errorf(-e, "pthread_create: %s", strerror(e));
	manager_started = true;
	return 0;
}

void fbd_pools_stop(void)
{
	if (!manager_started)
		return;
	/* It sees fbd_stopping() at its next look; wake it for that. */
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	pthread_join(manager_thread, NULL);
	manager_started = false;
}

/* ---- acquire -------------------------------------------------------------- */

/* Under the lock: a box being handed out is out for good, or (failed)
 * not at all. */
static void hand_out_done(struct pool *p, bool failed)
{
	p->pending--;
	if (failed && p->out)
		p->out--;
	pthread_cond_broadcast(&changed);
}

int fbd_pool_acquire(const char *name, const struct fbd_lifetime *lt_in,
		     char id[FB_BOX_ID_LEN + 1])
{
	struct fbd_lifetime lt = *lt_in;
	struct census c = { .pool = name };
	struct fb_box_fork_result res;
	char tmpl[FB_BOX_ID_LEN + 1], msg[256];
	struct fb_box_info info;
	struct timespec until;
	bool counted = false, alive;
	struct pool *p;
	int err;

	snprintf(lt.pool, sizeof(lt.pool), "%s", name);
	lt.pool_idle = lt.pool_template = false;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ACQUIRE_WAIT_S;
	lock_loaded();
	for (;;) {
		p = find(name);
		if (!p) {
			pthread_mutex_unlock(&lock);
			return fb_errorf(-ENOENT, "no pool '%s'", name);
		}
		if (p->nr_idle) {
			snprintf(id, FB_BOX_ID_LEN + 1, "%s", p->idle[0].id);
			drop_idle(p, 0);
			p->out++;
			p->pending++;
			pthread_cond_broadcast(&changed);
			pthread_mutex_unlock(&lock);
			alive = fb_box_find(id, &info) == 0 &&
				info.state == FB_BOX_RUNNING;
			if (alive)
				fbd_lifetime_save(info.dir, &lt);
			else
				remove_box(id, "an idle pool box that died");
			pthread_mutex_lock(&lock);
			hand_out_done(p, !alive);
			if (!alive)
				continue;
			pthread_mutex_unlock(&lock);
			fbd_touch(id);
			return 0;
		}
		if (p->state == POOL_READY) {
			if (counted)
				break;
			/* out is counted again here, not only by the
			 * manager: it does not look at a pool that wants
			 * nothing (min_idle 0, no idle_ttl_s), and boxes
			 * handed out end. The lock is dropped for it, so
			 * everything is looked at again after. */
			pthread_mutex_unlock(&lock);
			c.out = 0;
			fb_box_list(count_pool_box, &c);
			pthread_mutex_lock(&lock);
			counted = true;
			continue;
		}
		if (p->state == POOL_FAILED) {
			err = fb_errorf(-EIO, "pool '%s' has no template: %s",
					name, p->error);
			pthread_mutex_unlock(&lock);
			return err;
		}
		/* Its template is booting: wait for it, or an idle box. */
		if (pthread_cond_timedwait(&changed, &lock, &until)) {
			pthread_mutex_unlock(&lock);
			return fb_errorf(-ETIMEDOUT, "pool '%s': no box ready "
					 "within %d s", name, ACQUIRE_WAIT_S);
		}
	}
	p->out = c.out + p->pending;
	if (p->nr_idle + p->out >= p->max) {
		err = fb_errorf(-EAGAIN, "pool '%s' has its max of %u boxes "
				"out and none idle", name, p->max);
		pthread_mutex_unlock(&lock);
		return err;
	}
	/* None idle: fork one now, counted as out meanwhile. */
	p->out++;
	p->pending++;
	snprintf(tmpl, sizeof(tmpl), "%s", p->template_id);
	pthread_mutex_unlock(&lock);
	err = fork_children(name, tmpl, 1, &lt, &res);
	if (!err && res.nr != 1)
		err = fb_errorf(-EIO, "pool '%s': its fork made %u boxes, not 1",
				name, res.nr);
	if (!err) {
		snprintf(id, FB_BOX_ID_LEN + 1, "%s", res.ids[0].id);
	} else {
		/* A child that started is nobody's: the caller gets the
		 * error. Removing it must not change the error's text. */
		snprintf(msg, sizeof(msg), "%s", fb_last_error());
		for (unsigned i = 0; i < res.nr; i++)
			remove_box(res.ids[i].id, "its hand-out failed");
		fb_errorf(err, "%s", msg);
	}
	fb_box_fork_result_free(&res);
	pthread_mutex_lock(&lock);
	hand_out_done(p, err < 0);
	/* A template that died is booted again, as tend() does: a pool
	 * with min_idle 0 would otherwise never get one. */
	if (err < 0 && !p->deleted && !strcmp(p->template_id, tmpl) &&
	    (fb_box_find(tmpl, &info) < 0 || info.state != FB_BOX_RUNNING)) {
		p->state = POOL_STARTING;
		p->template_id[0] = '\0';
	}
	pthread_mutex_unlock(&lock);
	if (!err)
		fbd_touch(id);
	return err;
}

/* ---- /v1/pools -------------------------------------------------------------- */

static enum MHD_Result create_pool(struct fbd_req *r)
{
	enum MHD_Result ret = MHD_NO;
	json_t *body = fbd_body_object(r, &ret);
	struct fb_image img;
	struct pool *p;
	char msg[256];
	int err;

	if (!body)
		return ret;
	p = pool_from_json(body, false, msg, sizeof(msg));
	json_decref(body);
	if (!p)
		return fbd_reply_error(r, 400, "%s", msg);
	if (strcmp(p->image, "none")) {
		if (fb_image_get(p->image, &img) < 0) {
			free(p);
			return fbd_reply_errno(r, -ENOENT);
		}
		fb_image_free(&img);
	}
	lock_loaded();
	if (find(p->name)) {
		pthread_mutex_unlock(&lock);
		ret = fbd_reply_error(r, 409, "pool '%s' exists", p->name);
		free(p);
		return ret;
	}
	err = save(p);
	if (!err)
		err = add_pool(p);
	if (err < 0) {
		pthread_mutex_unlock(&lock);
		free(p);
		return fbd_reply_errno(r, err);
	}
	pthread_cond_broadcast(&changed);
	ret = fbd_reply_json(r, 201, pool_json(p));
	pthread_mutex_unlock(&lock);
	return ret;
}

static enum MHD_Result delete_pool(struct fbd_req *r, const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX + 80], tmpl[FB_BOX_ID_LEN + 1];
	struct idle_box *idle;
	unsigned nr;
	struct pool *p;

	lock_loaded();
	p = find(name);
	if (!p) {
		pthread_mutex_unlock(&lock);
		return fbd_reply_error(r, 404, "no pool '%s'", name);
	}
	p->deleted = true;
	idle = p->idle;
	nr = p->nr_idle;
	p->idle = NULL;
	p->nr_idle = p->cap_idle = 0;
	snprintf(tmpl, sizeof(tmpl), "%s", p->template_id);
	if (pools_dir(dir, sizeof(dir)) == 0) {
		snprintf(path, sizeof(path), "%s/%s.json", dir, p->name);
		unlink(path);
	}
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	for (unsigned i = 0; i < nr; i++)
		remove_box(idle[i].id, "its pool was deleted");
	free(idle);
	if (tmpl[0])
		remove_box(tmpl, "its pool was deleted");
	return fbd_reply_empty(r, 204);
}

enum MHD_Result fbd_pools(struct fbd_req *r)
{
	enum MHD_Result ret;
	struct pool *p;

	if (r->nseg == 2 && !strcmp(r->method, "GET")) {
		json_t *arr = json_array();

		lock_loaded();
		for (unsigned i = 0; i < nr_pools; i++)
			if (!pools[i]->deleted)
				json_array_append_new(arr, pool_json(pools[i]));
		pthread_mutex_unlock(&lock);
		return fbd_reply_json(r, 200, json_pack("{s:o}", "pools", arr));
	}
	if (r->nseg == 2 && !strcmp(r->method, "POST"))
		return create_pool(r);
	if (r->nseg != 3)
		return fbd_reply_error(r, 404, "no such endpoint");
	if (!strcmp(r->method, "DELETE"))
		return delete_pool(r, r->seg[2]);
	if (strcmp(r->method, "GET"))
		return fbd_reply_error(r, 405, "use GET or DELETE on a pool");
	lock_loaded();
	p = find(r->seg[2]);
	ret = p ? fbd_reply_json(r, 200, pool_json(p)) :
		  fbd_reply_error(r, 404, "no pool '%s'", r->seg[2]);
	pthread_mutex_unlock(&lock);
	return ret;
}

void fbd_pools_metrics(void (*fn)(void *opaque, const char *pool,
				  unsigned idle, unsigned out), void *opaque)
{
	lock_loaded();
	for (unsigned i = 0; i < nr_pools; i++)
		if (!pools[i]->deleted)
			fn(opaque, pools[i]->name, pools[i]->nr_idle,
			   pools[i]->out);
	pthread_mutex_unlock(&lock);
}
