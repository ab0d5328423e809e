/* /v1/boxes/BOX/files: read (GET), write (PUT, atomic in the guest) and
 * list (GET .../files/list) through the box's agent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box/boxio.h"
#include "daemon/daemon.h"
#include "util/error.h"

static int dial(const struct fb_box_info *info)
{
	char uds[PATH_MAX + 32];

	snprintf(uds, sizeof(uds), "%s/%s", info->dir, FB_BOX_VSOCK_NAME);
	return fb_agent_dial(uds, FB_AGENT_PORT, FB_BOX_DIAL_TIMEOUT_MS, NULL);
}

static enum MHD_Result read_file(struct fbd_req *r,
				 const struct fb_box_info *info,
				 const char *path)
{
	struct MHD_Response *resp;
	struct stat st;
	int mfd, fd, err;

	mfd = memfd_create("forkboxd-read", MFD_CLOEXEC);
	if (mfd < 0)
		return fbd_reply_errno(r, fb_errorf(-errno, "memfd_create: %s",
						    strerror(errno)));
	fd = dial(info);
	err = fd < 0 ? fd : fb_agent_read_file(fd, path, mfd,
							 FBD_MAX_FILE_BODY);
	if (fd >= 0)
		close(fd);
	if (err < 0 || fstat(mfd, &st) < 0) {
		close(mfd);
		return fbd_reply_errno(r, err < 0 ? err : -EIO);
	}
	resp = MHD_create_response_from_fd((uint64_t)st.st_size, mfd);
	if (!resp) {
		close(mfd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type",
				"application/octet-stream");
	fbd_count_response(200);
	{
		enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);

		MHD_destroy_response(resp);
		return ret;
	}
}

static enum MHD_Result write_file(struct fbd_req *r,
				  const struct fb_box_info *info,
				  const char *path)
{
	const char *mode_s = fbd_query(r, "mode");
	unsigned long mode = 0644;
	char *end;
	int fd, err;

	if (r->too_big)
		return fbd_reply_error(r, 413, "a file over %u MiB cannot be "
				       "written in one request",
				       FBD_MAX_FILE_BODY >> 20);
	if (mode_s) {
		errno = 0;
		mode = strtoul(mode_s, &end, 8);
		if (errno || !*mode_s || *end || mode > 07777)
			return fbd_reply_error(r, 400, "mode must be octal "
					       "permission bits (0 to 7777), "
					       "not '%s'", mode_s);
	}
	fd = dial(info);
	err = fd < 0 ? fd : fb_agent_write_file(fd, path, (uint32_t)mode, -1,
						r->body.data ? r->body.data : "", r->body.len);
	if (fd >= 0)
		close(fd);
	if (err < 0)
		return fbd_reply_errno(r, err);
	return fbd_reply_empty(r, 204);
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case FB_AGENT_FT_REG: return "file";
	case FB_AGENT_FT_DIR: return "dir";
	case FB_AGENT_FT_LNK: return "symlink";
	}
	return "other";
}

static enum MHD_Result list_dir(struct fbd_req *r,
				const struct fb_box_info *info,
				const char *path)
{
	struct fb_agent_dirent *ents = NULL;
	size_t n = 0;
	bool truncated = false;
	json_t *arr;
	int fd, err;

	fd = dial(info);
	err = fd < 0 ? fd : fb_agent_list(fd, path, &ents, &n, &truncated,
					  FB_BOX_DIAL_TIMEOUT_MS);
	if (fd >= 0)
		close(fd);
	if (err < 0)
		return fbd_reply_errno(r, err);
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack(
			"{s:s,s:s,s:i,s:I}", "name", ents[i].name,
			"type", type_name(ents[i].type),
			"mode", (int)ents[i].mode,
			"size", (json_int_t)ents[i].size));
	free(ents);
	return fbd_reply_json(r, 200, json_pack("{s:o,s:b}", "entries", arr,
						"truncated", truncated));
}

enum MHD_Result fbd_files(struct fbd_req *r, const struct fb_box_info *info,
			  bool list)
{
	const char *path = fbd_query(r, "path");

	if (!path || path[0] != '/')
		return fbd_reply_error(r, 400, "give ?path=ABSOLUTE_PATH in the "
				       "guest");
	if (list) {
		if (strcmp(r->method, "GET"))
			return fbd_reply_error(r, 405, "use GET on files/list");
		return list_dir(r, info, path);
	}
	if (!strcmp(r->method, "GET"))
		return read_file(r, info, path);
	if (!strcmp(r->method, "PUT"))
		return write_file(r, info, path);
	return fbd_reply_error(r, 405, "use GET or PUT on files");
}
