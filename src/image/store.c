#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkbox/forkbox.h"
#include "image/store.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

#define MIB (1ull << 20)
#define JSON_MAX (1u << 20)

extern char **environ;

int fb_image_dir(char *buf, size_t len)
{
	char home[PATH_MAX];
	int err = fb_home_dir(home, sizeof(home));

	if (!err)
		err = fb_fmt(buf, len, "%s/images", home);
	if (!err && mkdir(home, 0755) < 0 && errno != EEXIST)
		err = fb_errorf(-errno, "mkdir %s: %s", home, strerror(errno));
	if (!err && mkdir(buf, 0755) < 0 && errno != EEXIST)
		err = fb_errorf(-errno, "mkdir %s: %s", buf, strerror(errno));
	return err;
}

int fb_image_subdir(const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX];
	int err = fb_image_dir(dir, sizeof(dir));

	if (!err)
		err = fb_fmt(buf, len, "%s/%s", dir, name);
	if (!err && mkdir(buf, 0700) < 0 && errno != EEXIST)
		err = fb_errorf(-errno, "mkdir %s: %s", buf, strerror(errno));
	return err;
}

int fb_image_blob_dir(char *buf, size_t len)
{
	return fb_image_subdir("blobs", buf, len);
}

int fb_image_check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FB_IMAGE_NAME_MAX)
		return fb_errorf(-EINVAL, "image name \"%s\": 1 to %u "
				 "characters", name, FB_IMAGE_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '.' || c == '_' || c == '-'));

		if (!ok)
			return fb_errorf(-EINVAL, "image name \"%s\": only "
					 "a-z, 0-9 and (after the first) . _ "
					 "-", name);
	}
	return 0;
}

static int json_path(const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX];
	int err = fb_image_check_name(name);

	if (!err)
		err = fb_image_dir(dir, sizeof(dir));
	if (!err)
		err = fb_fmt(buf, len, "%s/%s.json", dir, name);
	return err;
}

/* ---- the description file --------------------------------------------- */

static json_t *strv_json(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int strv_from_json(json_t *a, char ***out, size_t *n)
{
	size_t i, len = json_is_array(a) ? json_array_size(a) : 0;

	*out = NULL;
	*n = 0;
	if (!len)
		return 0;
	*out = calloc(len + 1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		(*out)[i] = strdup(s ? s : "");
		if (!(*out)[i])
			return -ENOMEM;
		*n = i + 1;
	}
	return 0;
}

static json_t *config_json(const struct fb_image_config *c)
{
	return json_pack("{s:o, s:s?, s:o, s:o, s:s?}",
			 "env", strv_json(c->env, c->n_env),
			 "workdir", c->workdir,
			 "entrypoint", strv_json(c->entrypoint,
						 c->n_entrypoint),
			 "cmd", strv_json(c->cmd, c->n_cmd),
			 "user", c->user);
}

static int config_from_json(json_t *cfg, struct fb_image_config *c)
{
	const char *s;

	if (!json_is_object(cfg))
		return 0;
	if (strv_from_json(json_object_get(cfg, "env"), &c->env,
			   &c->n_env) < 0 ||
	    strv_from_json(json_object_get(cfg, "entrypoint"), &c->entrypoint,
			   &c->n_entrypoint) < 0 ||
	    strv_from_json(json_object_get(cfg, "cmd"), &c->cmd,
			   &c->n_cmd) < 0)
		return -ENOMEM;
	s = json_string_value(json_object_get(cfg, "workdir"));
	if (s && !(c->workdir = strdup(s)))
		return -ENOMEM;
	s = json_string_value(json_object_get(cfg, "user"));
	if (s && !(c->user = strdup(s)))
		return -ENOMEM;
	return 0;
}

static int write_json(const struct fb_image *img)
{
	char path[PATH_MAX];
	json_t *cfg, *root;
	int err = json_path(img->name, path, sizeof(path));

	if (err)
		return err;
	cfg = config_json(&img->cfg);
	root = cfg ? json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:o}",
			       "name", img->name, "blob", img->blob,
			       "size", (json_int_t)img->size,
			       "used", (json_int_t)img->used,
			       "created", (json_int_t)img->created,
			       "source", img->source, "config", cfg) : NULL;
	if (root && img->digest[0] &&
	    json_object_set_new(root, "digest", json_string(img->digest)) < 0) {
		json_decref(root);
		root = NULL;
	}
	return fb_json_write_atomic(path, root, JSON_INDENT(2), 0644);
}

int fb_image_config_save(const struct fb_image_config *cfg, const char *path)
{
	return fb_json_write_atomic(path, config_json(cfg), JSON_INDENT(2),
				    0644);
}

int fb_image_config_load(const char *path, struct fb_image_config *cfg)
{
	json_error_t jerr;
	uint8_t *text;
	size_t len;
	json_t *j;
	int err;

	memset(cfg, 0, sizeof(*cfg));
	err = fb_read_file(path, JSON_MAX, &text, &len);
	if (err)
		return err;
	j = json_loadb((const char *)text, len, 0, &jerr);
	free(text);
	if (!j)
		return fb_errorf(-EINVAL, "%s: %s", path, jerr.text);
	err = config_from_json(j, cfg);
	json_decref(j);
	if (err) {
		fb_image_config_free(cfg);
		return fb_errorf(err, "%s: out of memory", path);
	}
	return 0;
}

static int parse_json(const char *name, const uint8_t *text, size_t len,
		      struct fb_image *img)
{
	json_error_t jerr;
	json_t *root = json_loadb((const char *)text, len, 0, &jerr), *cfg;
	const char *blob = NULL, *source = "", *digest = "";
	json_int_t size = 0, used = 0, created = 0;
	char dir[PATH_MAX];
	int err = 0;

	/* No digest in descriptions older than the layer cache, nor in
	 * images built from a directory. */
	if (!root || json_unpack_ex(root, &jerr, 0,
				    "{s:s, s:I, s?I, s?I, s?s, s?s}", "blob",
				    &blob, "size", &size, "used", &used,
				    "created", &created, "source", &source,
				    "digest", &digest) < 0) {
		json_decref(root);
		return fb_errorf(-EINVAL, "image %s: bad description: %s",
				 name, jerr.text);
	}
	if (strchr(blob, '/') || !blob[0] || blob[0] == '.' || size <= 0 ||
	    size % 512) {
		json_decref(root);
		return fb_errorf(-EINVAL, "image %s: bad blob name or size",
				 name);
	}
	snprintf(img->name, sizeof(img->name), "%s", name);
	err = fb_fmt(img->blob, sizeof(img->blob), "%s", blob);
	if (!err)
		err = fb_image_blob_dir(dir, sizeof(dir));
	if (!err)
		err = fb_fmt(img->path, sizeof(img->path), "%s/%s", dir, blob);
	img->size = (uint64_t)size;
	img->used = (uint64_t)used;
	img->created = created;
	snprintf(img->source, sizeof(img->source), "%s", source);
	if (!err && fb_fmt(img->digest, sizeof(img->digest), "%s", digest) < 0)
		err = fb_errorf(-EINVAL, "image %s: bad digest", name);
	cfg = json_object_get(root, "config");
	if (!err && config_from_json(cfg, &img->cfg) < 0)
		err = fb_errorf(-ENOMEM, "image %s: out of memory", name);
	json_decref(root);
	return err;
}

int fb_image_get(const char *name, struct fb_image *img)
{
	char path[PATH_MAX];
	uint8_t *text;
	size_t len;
	int err;

	memset(img, 0, sizeof(*img));
	err = json_path(name, path, sizeof(path));
	if (err)
		return err;
	err = fb_read_file(path, JSON_MAX, &text, &len);
	if (err == -ENOENT)
		return fb_errorf(-ENOENT, "no image named %s (forkbox image "
				 "ls lists them; forkbox image build or "
				 "import makes one)", name);
	if (err)
		return err;
	err = parse_json(name, text, len, img);
	free(text);
	if (err)
		fb_image_free(img);
	return err;
}

void fb_image_free(struct fb_image *img)
{
	fb_image_config_free(&img->cfg);
}

/* ---- building ------------------------------------------------------------ */

static uint64_t tree_bytes;

static int count(const char *path, const struct stat *st, int type,
		 struct FTW *ftw)
{
	/* Blocks for data, and an inode's worth for every entry. */
	tree_bytes += (uint64_t)st->st_blocks * 512 + 256;
	return 0;
}

int fb_run_tool(char *const argv[], const char *what, bool show)
{
	posix_spawn_file_actions_t fa;
	char out[512] = "";
	int p[2], status, err = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return fb_errorf(-errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	if (show) {
		posix_spawn_file_actions_adddup2(&fa, 2, 1);
	} else {
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	}
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (err) {
		close(p[0]);
		return fb_errorf(-err, "%s: cannot run %s: %s", what, argv[0],
				 strerror(err));
	}
	while ((n = read(p[0], out + got, sizeof(out) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
		if (got == sizeof(out) - 1) {
			char sink[512];

			while (read(p[0], sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	close(p[0]);
	out[got] = '\0';
	while (got && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fb_errorf(-EIO, "%s: %s failed: %s", what, argv[0],
				 got ? out : "(no output)");
	return 0;
}

static int mkfs(const char *dir, const char *file, uint64_t size,
		const char *what)
{
	char blocks[32];
	/* No journal: a box's disk dies with its box, and a snapshot or
	 * fork freezes memory and disk together, never a half-written
	 * filesystem the guest would have to replay. */
	char *argv[] = { "mkfs.ext4", "-q", "-F", "-b", "4096",
			 "-O", "^has_journal", "-E",
			 "root_owner=0:0,nodiscard", "-L", "forkbox", "-d",
			 (char *)dir, (char *)file, blocks, NULL };

	snprintf(blocks, sizeof(blocks), "%llu",
		 (unsigned long long)(size / 4096));
	return fb_run_tool(argv, what, false);
}

static int random_hex(char *buf, size_t nbytes)
{
	uint8_t r[16];

	if (nbytes > sizeof(r) ||
	    getrandom(r, nbytes, 0) != (ssize_t)nbytes)
		return fb_errorf(-EIO, "getrandom failed");
	for (size_t i = 0; i < nbytes; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
	return 0;
}

int fb_image_make_blob(const char *dir, uint64_t size_mib, const char *what,
		       char *tmp, size_t tmp_len, uint64_t *size,
		       uint64_t *used)
{
	char blobs[PATH_MAX], hex[17];
	struct stat st;
	int err, fd;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return fb_errorf(-ENOTDIR, "%s: %s is not a directory", what,
				 dir);
	tree_bytes = 0;
	if (nftw(dir, count, 64, FTW_PHYS) < 0)
		return fb_errorf(-errno, "%s: reading %s: %s", what, dir,
				 strerror(errno));
	*used = tree_bytes;
	*size = size_mib ? size_mib * MIB :
		(tree_bytes + tree_bytes / 4 + FB_IMAGE_FREE_MIB * MIB +
		 MIB - 1) / MIB * MIB;
	if (*size < tree_bytes + tree_bytes / 8)
		return fb_errorf(-ENOSPC, "%s: %llu MiB is too small for the "
				 "%llu MiB in %s", what,
				 (unsigned long long)(*size / MIB),
				 (unsigned long long)(tree_bytes / MIB), dir);
	err = fb_image_blob_dir(blobs, sizeof(blobs));
	if (!err)
		err = random_hex(hex, 8);
	if (!err)
		err = fb_fmt(tmp, tmp_len, "%s/.tmp-%s.ext4", blobs, hex);
	if (err)
		return err;
	/* A sparse file of the disk's size: mkfs writes only metadata. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return fb_errorf(-errno, "create %s: %s", tmp,
				 strerror(errno));
	if (ftruncate(fd, (off_t)*size) < 0)
		err = fb_errorf(-errno, "ftruncate %s: %s", tmp,
				strerror(errno));
	close(fd);
	if (!err)
		err = mkfs(dir, tmp, *size, what);
	if (!err && ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) < 0 ||
		     fsync(fd) < 0))
		err = fb_errorf(-errno, "fsync %s: %s", tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (!err && chmod(tmp, 0444) < 0)
		err = fb_errorf(-errno, "chmod %s: %s", tmp, strerror(errno));
	if (err)
		unlink(tmp);
	return err;
}

/* The store's lock, around every change to descriptions and blobs: an
 * import taking a blob must not race a removal that finds it unused. */
static int lock_store(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd, err = fb_image_dir(dir, sizeof(dir));

	if (!err)
		err = fb_fmt(path, sizeof(path), "%s/.lock", dir);
	if (err)
		return err;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			err = fb_errorf(-errno, "flock %s: %s", path,
					strerror(errno));
			close(fd);
			return err;
		}
	}
	return fd;
}

static void unlock_store(int fd)
{
	close(fd); /* drops the flock */
}

struct blob_user {
	const char *blob;
	uint64_t size, used;
};

static int names_blob(const struct fb_image *img, void *opaque)
{
	struct blob_user *u = opaque;

	if (strcmp(img->blob, u->blob))
		return 0;
	u->size = img->size;
	u->used = img->used;
	return 1;
}

/* 1 if a description names blob (its sizes in *u), 0 if none, or an
 * error. Descriptions that cannot be read name nothing: no image can be
 * used through them either. */
static int blob_used(const char *blob, struct blob_user *u)
{
	u->blob = blob;
	return fb_image_list(names_blob, u);
}

/* The blob at img->path, placed there by someone else: its sizes. */
static int take_blob(struct fb_image *img)
{
	struct blob_user u;
	struct stat st;
	int r;

	if (lstat(img->path, &st) < 0)
		return errno == ENOENT ? -ENOENT :
			fb_errorf(-errno, "stat %s: %s", img->path,
				  strerror(errno));
	r = blob_used(img->blob, &u);
	if (r < 0)
		return r;
	if (r) {
		img->size = u.size;
		img->used = u.used;
	} else {
		/* Left by an import that died before its description was
		 * written: whole (it was renamed into place after mkfs and
		 * fsync), only the tree's size is lost. */
		img->size = (uint64_t)st.st_size;
		img->used = (uint64_t)st.st_blocks * 512;
	}
	return 0;
}

/* No rename that replaces: a blob named by its digest may be there. */
static int place_blob(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: link fails the same way. */
	if (link(tmp, path) < 0)
		return -errno;
	unlink(tmp);
	return 0;
}

int fb_image_install(struct fb_image *img, const char *tmp)
{
	struct fb_image old;
	struct blob_user u;
	bool had_old, placed = false;
	int lock = lock_store(), err = 0;

	if (lock < 0) {
		if (tmp)
			unlink(tmp);
		return lock;
	}
	if (tmp) {
		err = place_blob(tmp, img->path);
		if (err == -EEXIST) {
			unlink(tmp);
			err = take_blob(img);
		} else if (err) {
			err = fb_errorf(err, "install %s: %s", img->path,
					strerror(-err));
			unlink(tmp);
		} else {
			placed = true;
		}
	} else {
		err = take_blob(img);
	}
	if (err)
		goto out;
	had_old = fb_image_get(img->name, &old) == 0;
	err = write_json(img);
	if (err) {
		if (placed && blob_used(img->blob, &u) == 0)
			unlink(img->path);
	} else if (had_old && strcmp(old.blob, img->blob) &&
		   blob_used(old.blob, &u) == 0) {
		unlink(old.path); /* running boxes hold it open */
	}
	if (had_old)
		fb_image_free(&old);
out:
	unlock_store(lock);
	return err;
}

int fb_image_build_dir(const char *name, const char *dir,
		       const struct fb_image_config *cfg, const char *source,
		       uint64_t size_mib, struct fb_image *out)
{
	char blobs[PATH_MAX], tmp[PATH_MAX], hex[17], what[96];
	struct fb_image img = { 0 };
	int err = fb_image_check_name(name);

	if (err)
		return err;
	snprintf(what, sizeof(what), "image %s", name);
	snprintf(img.name, sizeof(img.name), "%s", name);
	snprintf(img.source, sizeof(img.source), "%s", source);
	err = fb_image_blob_dir(blobs, sizeof(blobs));
	if (!err)
		err = random_hex(hex, 8);
	if (!err)
		err = fb_fmt(img.blob, sizeof(img.blob), "%s-%s.ext4", name,
			     hex);
	if (!err)
		err = fb_fmt(img.path, sizeof(img.path), "%s/%s", blobs,
			     img.blob);
	if (!err)
		err = fb_image_make_blob(dir, size_mib, what, tmp, sizeof(tmp),
					 &img.size, &img.used);
	if (err)
		return err;
	img.created = (long long)time(NULL);
	if (cfg)
		img.cfg = *cfg; /* borrowed for write_json only */
	err = fb_image_install(&img, tmp);
	if (!err && out)
		err = fb_image_get(name, out);
	return err;
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	if (type == FTW_DP ? rmdir(path) : unlink(path))
		return errno == ENOENT ? 0 : -1;
	return 0;
}

int fb_rm_tree(const char *path)
{
	if (nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS) < 0 &&
	    errno != ENOENT)
		return fb_errorf(-errno, "remove %s: %s", path,
				 strerror(errno));
	return 0;
}

/* ---- listing and removing --------------------------------------------- */

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int fb_image_list(int (*fn)(const struct fb_image *img, void *opaque),
		  void *opaque)
{
	struct dirent **names;
	char dir[PATH_MAX];
	int n, r = 0, err = fb_image_dir(dir, sizeof(dir));

	if (err)
		return err;
	n = scandir(dir, &names, NULL, by_name);
	if (n < 0)
		return fb_errorf(-errno, "scandir %s: %s", dir,
				 strerror(errno));
	for (int i = 0; i < n; i++) {
		char name[FB_IMAGE_NAME_MAX + 1];
		size_t len = strlen(names[i]->d_name);
		struct fb_image img;

		if (!r && len > 5 && len - 5 <= FB_IMAGE_NAME_MAX &&
		    !strcmp(names[i]->d_name + len - 5, ".json")) {
			memcpy(name, names[i]->d_name, len - 5);
			name[len - 5] = '\0';
			if (fb_image_get(name, &img) == 0) {
				r = fn(&img, opaque);
				fb_image_free(&img);
			}
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int fb_image_remove(const char *name)
{
	char path[PATH_MAX];
	struct blob_user u;
	struct fb_image img;
	int lock, err = json_path(name, path, sizeof(path));

	if (err)
		return err;
	lock = lock_store();
	if (lock < 0)
		return lock;
	err = fb_image_get(name, &img);
	if (!err && unlink(path) < 0)
		err = fb_errorf(-errno, "unlink %s: %s", path,
				strerror(errno));
	/* An imported image's blob may be another name's too. */
	if (!err)
		err = blob_used(img.blob, &u);
	if (err == 0 && unlink(img.path) < 0 && errno != ENOENT)
		err = fb_errorf(-errno, "unlink %s: %s", img.path,
				strerror(errno));
	if (err > 0)
		err = 0;
	fb_image_free(&img); /* zeroed by a failed get: still safe */
	unlock_store(lock);
	return err;
}
