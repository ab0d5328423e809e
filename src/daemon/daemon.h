/* forkboxd: libforkbox served over HTTP/1.1 + JSON (docs/api.yaml).
 *
 * libmicrohttpd parses HTTP and runs one thread per connection, so a
 * request may block (a boot, a fork, a streamed exec) without holding up
 * the others; jansson builds and parses the JSON. The daemon keeps no
 * state the boxes do not: a box is its directory (src/box/box.h), a
 * daemon-made box has its lifetimes in lifetime.json there, a pool its
 * config in $FORKBOX_HOME/pools/. A restarted daemon reads them back. */
#ifndef FB_DAEMON_DAEMON_H
#define FB_DAEMON_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "box/box.h"
#include "util/buf.h"

#define FBD_VERSION "1"
#define FBD_SOCKET_NAME "forkboxd.sock"
#define FBD_MAX_JSON_BODY (1u << 20)
#define FBD_MAX_FILE_BODY (256u << 20)

struct fbd_config {
	char socket_path[PATH_MAX];
	char tcp_addr[128];   /* HOST:PORT, or "" */
	char token[256];      /* bearer token for TCP */
};

/* One request, as the access handler collects it. */
struct fbd_req {
	struct MHD_Connection *conn;
	const char *method;
	struct fb_buf body;
	bool too_big;
	bool allowed;         /* the peer or the token passed */
	const char *seg[8];   /* the URL path, split at '/' */
	unsigned nseg;
	char *path_copy;
};

/* ---- http.c: responses --------------------------------------------- */

/* Each queues a response and returns MHD's verdict. fbd_reply_json
 * takes body NULL (a json_pack that failed) as a fixed 500 error body. */
enum MHD_Result fbd_reply_json(struct fbd_req *r, unsigned status,
			       json_t *body);
/* The message made valid UTF-8 first (bad bytes become '?'). */
enum MHD_Result fbd_reply_error(struct fbd_req *r, unsigned status,
				const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Replaces each byte of s that is not part of valid UTF-8 with '?', in
 * place: what jansson would refuse. */
void fbd_utf8_fix(char *s);
/* A library failure: status from the errno, message fb_last_error(). */
enum MHD_Result fbd_reply_errno(struct fbd_req *r, int err);
enum MHD_Result fbd_reply_empty(struct fbd_req *r, unsigned status);
/* The request body as a JSON object ({} when empty), or NULL after an
 * error reply was queued (*ret holds MHD's verdict). */
json_t *fbd_body_object(struct fbd_req *r, enum MHD_Result *ret);
const char *fbd_query(struct fbd_req *r, const char *key);
/* An optional whole number field in [min, max]: 1 and *out set, 0 when
 * absent or null (*out left as it was: callers assign only on 1), -1
 * (an error reply queued in *ret) when it is there but wrong. */
int fbd_json_uint(struct fbd_req *r, json_t *obj, const char *key,
		  uint64_t min, uint64_t max, uint64_t *out,
		  enum MHD_Result *ret);
/* An optional string field: 1 and *out set, 0 when absent (*out left
 * as it was), -1 (an error reply queued in *ret) when not a string. */
int fbd_json_str(struct fbd_req *r, json_t *obj, const char *key,
		 const char **out, enum MHD_Result *ret);
/* An optional boolean field, the same way (null is absent). */
int fbd_json_bool(struct fbd_req *r, json_t *obj, const char *key, bool *out,
		  enum MHD_Result *ret);

/* ---- boxes.c ------------------------------------------------------- */

enum MHD_Result fbd_boxes(struct fbd_req *r);
/* fb_box_list's callback that counts (opaque: unsigned *). */
int fbd_count_box(const struct fb_box_info *info, void *opaque);
int64_t fbd_realtime_ns(void);
/* A box's JSON (with the daemon's lifetimes if it has any). */
json_t *fbd_box_json(const struct fb_box_info *info);
/* Finds a box for a request; replies 404 itself (NULL return). */
bool fbd_find_box(struct fbd_req *r, const char *ref,
		  struct fb_box_info *info, enum MHD_Result *ret);
/* ... and replies 409 unless it is running. */
bool fbd_find_running_box(struct fbd_req *r, const char *ref,
			  struct fb_box_info *info, enum MHD_Result *ret);

/* ---- exec.c, files.c, images.c ------------------------------------- */

enum MHD_Result fbd_exec(struct fbd_req *r, const struct fb_box_info *info);
enum MHD_Result fbd_files(struct fbd_req *r, const struct fb_box_info *info,
			  bool list);
enum MHD_Result fbd_images(struct fbd_req *r);

/* ---- lifetime.c: per-box timeouts and reaping ---------------------- */

struct fbd_lifetime {
	unsigned timeout_s, idle_timeout_s; /* 0: none */
	int64_t created_ns;                 /* CLOCK_REALTIME */
	char pool[64];                      /* "" unless from a pool */
	bool pool_idle;                     /* waiting in its pool */
	bool pool_template;                 /* its pool's template */
};

/* lifetime.json in the box's directory, written atomically. */
int fbd_lifetime_save(const char *box_dir, const struct fbd_lifetime *lt);
/* -ENOENT: not a box the daemon manages. */
int fbd_lifetime_load(const char *box_dir, struct fbd_lifetime *lt);
/* An API request touched the box: its idle clock starts again. */
void fbd_touch(const char *id);
void fbd_forget(const char *id);
/* Stops and removes a box (the daemon's delete). */
int fbd_box_delete(const struct fb_box_info *info);
/* The reaper: removes daemon-made boxes that died or outlived a timeout,
 * once a second, until fbd_stop_threads(). */
int fbd_reaper_start(void);

/* ---- pool.c -------------------------------------------------------- */

/* Reads $FORKBOX_HOME/pools/; requests on pools wait until it is done. */
int fbd_pools_load(void);
/* The manager thread; fbd_pools_stop() joins it once fbd_stopping()
 * (it ends what it was doing first: a template boot, a fork). */
int fbd_pools_start(void);
void fbd_pools_stop(void);
enum MHD_Result fbd_pools(struct fbd_req *r);
/* Hands out a ready box of the pool; its id in id. -EAGAIN: at max. */
int fbd_pool_acquire(const char *pool, const struct fbd_lifetime *lt,
		     char id[FB_BOX_ID_LEN + 1]);
/* Pool figures for /metrics, under the pools' lock. */
void fbd_pools_metrics(void (*fn)(void *opaque, const char *pool,
				  unsigned idle, unsigned out), void *opaque);

/* ---- spawner.c, spawn_work.c: the process VMMs are forked from ------- */

/* Forks the spawner, which every box's VMM is then forked from (a VMM
 * forked from the daemon would carry the daemon's heap and threads'
 * memory). Call it before any thread starts, while the daemon is small. */
int fbd_spawner_start(void);
/* Closes the daemon's end (the spawner exits) and reaps it. */
void fbd_spawner_stop(void);
/* fb_box_create and fb_box_fork, run in a worker of the spawner: the
 * same returns, fb_last_error() and *res (children made before an error
 * included; free it with fb_box_fork_result_free). The spec holds only
 * what a daemon's does: no console fd, attached box, extra disks, fork
 * fields or preset id (-EINVAL). A dead spawner is -EPIPE, at once. */
int fbd_box_create(const struct fb_box_spec *spec, const char *name,
		   char id[FB_BOX_ID_LEN + 1]);
int fbd_box_fork(const struct fb_box_info *parent, unsigned n,
		 const struct fb_box_spec *spec,
		 struct fb_box_fork_result *res);
/* The wire (spawn_work.c): a spec as a request's JSON, and a request
 * served in a worker, its reply (NULL only without memory). */
int fbd_spec_json(const struct fb_box_spec *spec, json_t **out);
json_t *fbd_spawn_serve(const char *text, size_t len);

/* ---- metrics.c ----------------------------------------------------- */

enum fbd_hist { FBD_H_CREATE, FBD_H_FORK, FBD_H_ACQUIRE, FBD_H_NR };
void fbd_observe(enum fbd_hist h, double seconds);
void fbd_count_response(unsigned status);
enum MHD_Result fbd_metrics(struct fbd_req *r);

/* ---- main.c -------------------------------------------------------- */

/* CLOCK_MONOTONIC in seconds: timeouts, ages, latencies. */
double fbd_mono_s(void);
/* Set once the daemon is stopping: background threads end. */
bool fbd_stopping(void);
/* Sleeps up to ms, less if the daemon is stopping; false then. */
bool fbd_wait_ms(unsigned ms);

#endif
