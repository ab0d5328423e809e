/* POST /v1/boxes/BOX/exec: the command runs on a thread of its own
 * (fb_box_exec), writing to two pipes; the response is read from them as
 * output comes and sent as NDJSON frames, chunked. A client that goes
 * away gets its command killed.
 *
 * The job is shared by the thread and the response, each holding a
 * reference; the last to let go frees it. The thread is detached, never
 * joined: fb_box_exec may wait for ever (a paused box does not act on
 * SIGKILL), and a wait in MHD's free callback would hang the connection's
 * thread and MHD_stop_daemon with it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "box/box.h"
#include "box/boxio.h"
#include "daemon/daemon.h"
#include "image/store.h"
#include "util/error.h"
#include "util/file.h"

#define MAX_ARGS 4096
#define MAX_ENV 512
#define READ_CHUNK 16384

struct exec_job {
	unsigned refs;                /* the thread's and the response's */
	char uds[PATH_MAX + 32];
	char box_id[FB_BOX_ID_LEN + 1];
	char **argv, **env, *cwd;
	unsigned timeout_s;
	int stdin_fd;                 /* a memfd with the stdin bytes, or -1 */
	int out_r, out_w, err_r, err_w;
	int sig_r, sig_w;
	/* Set by the thread under the lock before it closes its pipe ends;
	 * read by the response once both are at EOF. */
	pthread_mutex_t lock;
	int err, status;
	char errmsg[512];
	/* The response side: a frame being sent, and where. */
	char *pending;
	size_t pending_len, pending_off;
	bool exit_sent;
	double touched_at;            /* CLOCK_MONOTONIC s */
	struct fb_image_config defaults;
};

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void job_free(struct exec_job *j)
{
	int *fds[] = { &j->stdin_fd, &j->out_r, &j->out_w, &j->err_r,
		       &j->err_w, &j->sig_r, &j->sig_w };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	pthread_mutex_destroy(&j->lock);
	free_strv(j->argv);
	free_strv(j->env);
	free(j->cwd);
	free(j->pending);
	fb_image_config_free(&j->defaults);
	free(j);
}

static void job_put(struct exec_job *j)
{
	if (j && __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0)
		job_free(j);
}

/* The response is done with the job (sent, failed, or the client went
 * away): a command still running is killed, and its output has nowhere
 * to go (a write to a full pipe nobody reads would block the thread). */
static void job_release(struct exec_job *j)
{
	if (!j->exit_sent && j->sig_w >= 0)
		fb_agent_signal(j->sig_w, SIGKILL);
	if (j->out_r >= 0)
		close(j->out_r);
	if (j->err_r >= 0)
		close(j->err_r);
	j->out_r = j->err_r = -1;
	job_put(j);
}

static void *run_job(void *arg)
{
	struct exec_job *j = arg;
	struct fb_agent_exec_req req = {
		.argv = (const char *const *)j->argv,
		.env = (const char *const *)j->env,
		.cwd = j->cwd,
		.timeout_ms = j->timeout_s * 1000,
		.signal_fd = j->sig_r,
	};
	int status = -1, err;

	err = fb_box_exec(j->uds, &req, j->stdin_fd, j->out_w, j->err_w,
			  &status);
	pthread_mutex_lock(&j->lock);
	j->err = err;
	j->status = status;
	if (err < 0) {
		snprintf(j->errmsg, sizeof(j->errmsg), "%s", fb_last_error());
		/* So that its frame can be made: jansson takes only UTF-8. */
		fbd_utf8_fix(j->errmsg);
	}
	pthread_mutex_unlock(&j->lock);
	/* EOF on both pipes tells the response the command is over. */
	close(j->out_w);
	close(j->err_w);
	j->out_w = j->err_w = -1;
	job_put(j);
	return NULL;
}

/* A frame line: {"stdout": "text"} when the bytes are UTF-8, else
 * {"stdout_b64": ...} (jansson refuses strings that are not UTF-8). */
static char *frame(const char *stream, const char *data, size_t len)
{
	char key[16];
	json_t *o, *s = json_stringn(data, len);
	char *text;

	if (s) {
		o = json_pack("{s:o}", stream, s);
	} else {
		static const char b64[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789+/";
		size_t out_len = 4 * ((len + 2) / 3);
		char *enc = malloc(out_len + 1), *p = enc;

		if (!enc)
			return NULL;
		for (size_t i = 0; i < len; i += 3) {
			uint32_t v = (uint32_t)(uint8_t)data[i] << 16;

			if (i + 1 < len)
				v |= (uint32_t)(uint8_t)data[i + 1] << 8;
			if (i + 2 < len)
				v |= (uint8_t)data[i + 2];
			*p++ = b64[v >> 18 & 63];
			*p++ = b64[v >> 12 & 63];
			*p++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
			*p++ = i + 2 < len ? b64[v & 63] : '=';
		}
		*p = '\0';
		snprintf(key, sizeof(key), "%s_b64", stream);
		o = json_pack("{s:s}", key, enc);
		free(enc);
	}
	if (!o)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void set_pending(struct exec_job *j, char *line)
{
	size_t n;

	free(j->pending);
	j->pending = NULL;
	j->pending_len = j->pending_off = 0;
	if (!line)
		return;
	n = strlen(line);
	j->pending = realloc(line, n + 2);
	if (!j->pending) {
		free(line);
		return;
	}
	j->pending[n] = '\n';
	j->pending[n + 1] = '\0';
	j->pending_len = n + 1;
}

/* Makes the next frame: output if some is there within a second, the
 * exit frame once both pipes are at EOF. Returns false while there is
 * nothing yet. */
static bool next_frame(struct exec_job *j)
{
	struct pollfd p[2] = { { .fd = j->out_r, .events = POLLIN },
			       { .fd = j->err_r, .events = POLLIN } };
	char buf[READ_CHUNK];

	if (j->out_r < 0 && j->err_r < 0) {
		json_t *o;

		pthread_mutex_lock(&j->lock);
		/* 124 only for the agent's kill at timeout_s (which sets a
		 * status): a dial or HELLO that timed out is an error. */
		if (j->err == -ETIMEDOUT && j->timeout_s && j->status >= 0)
			o = json_pack("{s:i}", "exit_code", 124);
		else if (j->err < 0)
			o = json_pack("{s:s}", "error", j->errmsg);
		else
			o = json_pack("{s:i}", "exit_code", j->status);
		pthread_mutex_unlock(&j->lock);
		set_pending(j, o ? json_dumps(o, JSON_COMPACT) : NULL);
		json_decref(o);
		j->exit_sent = true;
		return true;
	}
	if (poll(p, 2, 1000) <= 0)
		return false;
	for (int i = 0; i < 2; i++) {
		int *fd = i ? &j->err_r : &j->out_r;
		ssize_t n;

		if (!p[i].revents)
			continue;
		n = read(*fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return false;
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			return false;
		}
		set_pending(j, frame(i ? "stderr" : "stdout", buf, (size_t)n));
		return true;
	}
	return false;
}

/* A command running is the box in use: its idle clock starts again,
 * output or not (MHD calls here at least once a second meanwhile), at
 * most once a second, and once more at the end. */
static void touch_box(struct exec_job *j, bool end)
{
	double now = fbd_mono_s();

	if (!end && now - j->touched_at < 1)
		return;
	j->touched_at = now;
	fbd_touch(j->box_id);
}

static ssize_t read_response(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct exec_job *j = cls;
	size_t n;

	touch_box(j, j->exit_sent);
	while (j->pending_off == j->pending_len) {
		if (j->exit_sent)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (fbd_stopping())
			return MHD_CONTENT_READER_END_WITH_ERROR;
		/* Nothing yet: MHD calls again, after we waited a second. */
		if (!next_frame(j))
			return 0;
	}
	n = j->pending_len - j->pending_off;
	if (n > max)
		n = max;
	memcpy(buf, j->pending + j->pending_off, n);
	j->pending_off += n;
	return (ssize_t)n;
}

static void free_response(void *cls)
{
	job_release(cls);
}

static char **string_array(json_t *arr, size_t max)
{
	size_t n = json_array_size(arr);
	char **v;

	if (n > max)
		return NULL;
	v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		json_t *s = json_array_get(arr, i);

		if (!json_is_string(s) ||
		    !(v[i] = strdup(json_string_value(s)))) {
			free_strv(v);
			return NULL;
		}
	}
	return v;
}

/* env: the image's defaults first, the request's after (the agent lets
 * a later KEY win). */
static int build_env(struct exec_job *j, json_t *env)
{
	size_t n = 0, cap = j->defaults.n_env + json_object_size(env) + 1;
	const char *key;
	json_t *val;

	if (cap > MAX_ENV)
		return -E2BIG;
	j->env = calloc(cap, sizeof(*j->env));
	if (!j->env)
		return -ENOMEM;
	for (size_t i = 0; i < j->defaults.n_env; i++)
		if (!(j->env[n++] = strdup(j->defaults.env[i])))
			return -ENOMEM;
	json_object_foreach(env, key, val) {
		if (!json_is_string(val) || !key[0] || strchr(key, '='))
			return -EINVAL;
		if (asprintf(&j->env[n++], "%s=%s", key,
			     json_string_value(val)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int stdin_memfd(const char *data, size_t len)
{
	int fd = memfd_create("forkboxd-stdin", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fb_write_full(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static int make_pipes(struct exec_job *j)
{
	int p[3][2];

	for (int i = 0; i < 3; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			int err = -errno;

			while (i--) {
				close(p[i][0]);
				close(p[i][1]);
			}
			return err;
		}
	j->out_r = p[0][0]; j->out_w = p[0][1];
	j->err_r = p[1][0]; j->err_w = p[1][1];
	j->sig_r = p[2][0]; j->sig_w = p[2][1];
	fcntl(j->sig_w, F_SETFL, O_NONBLOCK);
	return 0;
}

static enum MHD_Result bad(struct fbd_req *r, json_t *body,
			   struct exec_job *j, unsigned status,
			   const char *msg)
{
	json_decref(body);
	job_put(j);
	return fbd_reply_error(r, status, "%s", msg);
}

enum MHD_Result fbd_exec(struct fbd_req *r, const struct fb_box_info *info)
{
	enum MHD_Result ret = MHD_NO;
	json_t *body = fbd_body_object(r, &ret), *cmd, *env, *v;
	struct MHD_Response *resp;
	struct exec_job *j;
	char path[PATH_MAX + 32];
	const char *cwd = NULL;
	pthread_t thread;
	uint64_t t = 0;

	if (!body)
		return ret;
	j = calloc(1, sizeof(*j));
	if (!j)
		return bad(r, body, NULL, 500, "out of memory");
	j->refs = 1;
	pthread_mutex_init(&j->lock, NULL);
	j->stdin_fd = j->out_r = j->out_w = j->err_r = j->err_w = -1;
	j->sig_r = j->sig_w = -1;
	snprintf(j->box_id, sizeof(j->box_id), "%s", info->id);
	cmd = json_object_get(body, "cmd");
	if (json_is_string(cmd)) {
		j->argv = calloc(4, sizeof(*j->argv));
		if (j->argv && (!(j->argv[0] = strdup("/bin/sh")) ||
				!(j->argv[1] = strdup("-c")) ||
				!(j->argv[2] = strdup(json_string_value(cmd)))))
			return bad(r, body, j, 500, "out of memory");
	} else if (json_is_array(cmd) && json_array_size(cmd)) {
		j->argv = string_array(cmd, MAX_ARGS);
	} else {
		return bad(r, body, j, 400, "'cmd' must be a string (run by "
			   "/bin/sh -c) or a non-empty array of strings");
	}
	if (!j->argv)
		return bad(r, body, j, 400, "'cmd' must hold strings only, at "
			   "most 4096");
	/* A box made from an image runs commands with its defaults. */
	if (fb_fmt(path, sizeof(path), "%s/" FB_BOX_IMAGE_CONFIG,
		   info->dir) == 0 &&
	    fb_image_config_load(path, &j->defaults) < 0)
		memset(&j->defaults, 0, sizeof(j->defaults));
	/* null is absent, as for the fields read by fbd_json_*(). */
	env = json_object_get(body, "env");
	if (json_is_null(env))
		env = NULL;
	if (env && !json_is_object(env))
		return bad(r, body, j, 400, "'env' must be an object of "
			   "strings");
	if (build_env(j, env) < 0)
		return bad(r, body, j, 400, "'env' must map names (no '=') to "
			   "strings, at most 512 with the image's");
	if (fbd_json_str(r, body, "cwd", &cwd, &ret) < 0 ||
	    fbd_json_uint(r, body, "timeout_s", 0, 86400 * 30, &t, &ret) < 0) {
		json_decref(body);
		job_put(j);
		return ret;
	}
	if (!cwd)
		cwd = j->defaults.workdir;
	if (cwd && !(j->cwd = strdup(cwd)))
		return bad(r, body, j, 500, "out of memory");
	j->timeout_s = (unsigned)t;
	v = json_object_get(body, "stdin");
	if (json_is_null(v))
		v = NULL;
	if (v && !json_is_string(v))
		return bad(r, body, j, 400, "'stdin' must be a string");
	if (v && (j->stdin_fd = stdin_memfd(json_string_value(v),
					    json_string_length(v))) < 0)
		return bad(r, body, j, 500, "memfd for stdin failed");
	json_decref(body);
	snprintf(j->uds, sizeof(j->uds), "%s/%s", info->dir, FB_BOX_VSOCK_NAME);
	if (make_pipes(j) < 0)
		return bad(r, NULL, j, 500, "pipes for exec failed");
	j->refs = 2;
	if (pthread_create(&thread, NULL, run_job, j) != 0) {
		j->refs = 1;
		return bad(r, NULL, j, 500, "a thread for exec failed");
	}
	pthread_detach(thread);
	j->touched_at = fbd_mono_s();
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, READ_CHUNK,
						 read_response, j,
						 free_response);
	if (!resp) {
		job_release(j);
		return fbd_reply_error(r, 500, "a response for exec failed");
	}
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	fbd_count_response(200);
	ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
