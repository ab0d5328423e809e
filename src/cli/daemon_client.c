#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/curl_lib.h"
#include "cli/daemon_client.h"
#include "forkbox/forkbox.h"
#include "util/buf.h"
#include "util/error.h"

#define HEALTH_TIMEOUT_MS 2000L
#define CONNECT_TIMEOUT_MS 2000L
/* Far above any answer the CLI asks for; a runaway body is an error, not
 * an out-of-memory. */
#define MAX_RESPONSE (16u << 20)

int fb_daemon_socket(char *buf, size_t len)
{
	const char *env = getenv("FORKBOX_SOCKET");
	char home[PATH_MAX];
	int err;

	if (env && env[0])
		return fb_fmt(buf, len, "%s", env);
	err = fb_home_dir(home, sizeof(home));
	if (err < 0)
		return err;
	return fb_fmt(buf, len, "%s/" FB_DAEMON_SOCKET_NAME, home);
}

int fb_daemon_escape(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || strchr("-._~", c);

		if (o + (plain ? 1 : 3) >= len)
			return fb_errorf(-ENAMETOOLONG, "'%.64s...' is too "
					 "long for a URL", s);
		if (plain) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (o >= len)
		return fb_errorf(-ENAMETOOLONG, "no room for a URL segment");
	buf[o] = '\0';
	return 0;
}

struct response_buf {
	struct fb_buf buf;
	bool too_big;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct response_buf *rb = opaque;
	size_t n = size * nmemb;

	if (rb->buf.len + n + 1 > MAX_RESPONSE) {
		rb->too_big = true;
		return 0;
	}
	if (fb_buf_append(&rb->buf, ptr, n) < 0)
		return 0;
	return n;
}

static int status_errno(long status)
{
	switch (status) {
	case 400: case 413:   return -EINVAL;
	case 401: case 403:   return -EACCES;
	case 404:             return -ENOENT;
	case 409:             return -EBUSY;
	case 429:             return -EAGAIN;
	case 504:             return -ETIMEDOUT;
	case 507:             return -ENOSPC;
	default:              return -EIO;
	}
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:    return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:      return -ENOMEM;
	default:                       return -EIO;
	}
}

/* The body's "error", or a line naming the status when there is none. */
static int daemon_error(const char *method, const char *path, long status,
			json_t *response)
{
	const char *msg = json_string_value(json_object_get(response,
							    "error"));

	if (msg && msg[0])
		return fb_errorf(status_errno(status), "%s", msg);
	return fb_errorf(status_errno(status), "forkboxd answered %s %s with "
			 "HTTP %ld", method, path, status);
}

/* timeout_ms 0: none, only the connect's. */
static int request(const char *method, const char *path, json_t *body,
		   long timeout_ms, long *status, json_t **response)
{
	char sock[PATH_MAX], url[PATH_MAX], errbuf[CURL_ERROR_SIZE] = "";
	struct response_buf rb = { 0 };
	struct curl_slist *headers = NULL;
	char *text = NULL;
	const struct fb_curl *cl;
	CURLcode rc;
	CURL *c;
	int err;

	*status = 0;
	*response = NULL;
	err = fb_daemon_socket(sock, sizeof(sock));
	if (err < 0)
		return err;
	err = fb_fmt(url, sizeof(url), "http://forkboxd%s", path);
	if (err < 0)
		return err;
	cl = fb_curl();
	if (!cl)
		return -ENOENT;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return fb_errorf(-ENOMEM, "json_dumps of the request "
					 "to %s", path);
	}
	c = cl->easy_init();
	if (!c) {
		free(text);
		return fb_errorf(-ENOMEM, "curl_easy_init failed");
	}
	cl->easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	cl->easy_setopt(c, CURLOPT_URL, url);
	cl->easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	/* An http_proxy in the environment is for the network, not for a
	 * socket on this host. */
	cl->easy_setopt(c, CURLOPT_PROXY, "");
	cl->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cl->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cl->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	/* A boot or a fork of many children takes as long as it takes; the
	 * daemon bounds its own waits. */
	cl->easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	cl->easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	cl->easy_setopt(c, CURLOPT_WRITEDATA, &rb);
	if (text || !strcmp(method, "POST")) {
		headers = cl->slist_append(headers, "Content-Type: "
					    "application/json");
		/* No 100-continue round trip on a local socket. */
		headers = cl->slist_append(headers, "Expect:");
		cl->easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		cl->easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "");
		cl->easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)(text ? strlen(text) : 0));
	}
	rc = cl->easy_perform(c);
	cl->easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	cl->easy_cleanup(c);
	cl->slist_free_all(headers);
	free(text);
	if (rc != CURLE_OK) {
		err = rb.too_big ?
		      fb_errorf(-EMSGSIZE, "forkboxd's answer to %s %s is over "
				"%u MiB", method, path, MAX_RESPONSE >> 20) :
		      fb_errorf(curl_errno(rc), "forkboxd on %s: %s", sock,
				errbuf[0] ? errbuf : cl->easy_strerror(rc));
		free(rb.buf.data);
		return err;
	}
	if (rb.buf.len) {
		json_error_t jerr;

		*response = json_loadb(rb.buf.data, rb.buf.len, 0, &jerr);
		if (!*response && *status >= 200 && *status < 300) {
			err = fb_errorf(-EPROTO, "forkboxd's answer to %s %s "
					"is not JSON: %s", method, path,
					jerr.text);
			free(rb.buf.data);
			return err;
		}
	}
	free(rb.buf.data);
	if (*status < 200 || *status >= 300)
		return daemon_error(method, path, *status, *response);
	return 0;
}

int fb_daemon_call(const char *method, const char *path, json_t *body,
		   long *status, json_t **response)
{
	return request(method, path, body, 0, status, response);
}

bool fb_daemon_running(void)
{
	const char *off = getenv("FORKBOX_NO_DAEMON");
	char sock[PATH_MAX];
	json_t *health;
	struct stat st;
	long status;
	int err;

	if (off && !strcmp(off, "1")) {
		fb_errorf(-ENOTCONN, "FORKBOX_NO_DAEMON=1 turns it off");
		return false;
	}
	if (fb_daemon_socket(sock, sizeof(sock)) < 0)
		return false;
	if (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fb_errorf(-ENOTCONN, "no forkboxd socket at %s", sock);
		return false;
	}
	err = request("GET", "/v1/health", NULL, HEALTH_TIMEOUT_MS, &status,
		      &health);
	json_decref(health);
	if (err == 0 && status != 200)
		fb_errorf(-EPROTO, "forkboxd on %s answered /v1/health with "
			  "HTTP %ld", sock, status);
	return err == 0 && status == 200;
}

int fb_daemon_required(const char *cmd, const char *what)
{
	const char *off = getenv("FORKBOX_NO_DAEMON");

	if (off && !strcmp(off, "1"))
		fprintf(stderr, "forkbox %s: %s%sneeds forkboxd, and "
			"FORKBOX_NO_DAEMON=1 turns it off\n", cmd,
			what ? what : "", what ? ": " : "");
	else
		fprintf(stderr, "forkbox %s: %s%sneeds forkboxd, which does "
			"not answer (%s): start forkboxd\n", cmd,
			what ? what : "", what ? ": " : "", fb_last_error());
	return FB_EXIT_OWN_ERROR;
}
