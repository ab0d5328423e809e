#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "image/archive_lib.h"
#include "image/oci.h"
#include "image/sha256.h"
#include "util/error.h"
#include "util/file.h"

#define READ_BLOCK (64u * 1024u)
#define TAR_BLOCK 512
#define MAX_LINK_HOPS 16
#define MAX_INDEX_DEPTH 4
#define BLOB_DIR "blobs/sha256/"

/* A member of the outer archive: a file copied to the temporary
 * directory, or a link to another member. */
struct member {
	char *name;  /* canonical: "a/b", no "./", no leading "/" */
	char *link;  /* symlink or hardlink: the canonical target; else NULL */
	unsigned file;                  /* temporary file "m<file>" */
	uint64_t size;
	char sha[FB_SHA256_HEX_LEN + 1]; /* of the content */
	bool compressed;                /* starts like gzip, zstd, xz, bzip2 */
};

struct import {
	const struct fb_archive *A;
	const char *tar; /* names the archive in messages */
	char dir[PATH_MAX];
	int dirfd;
	unsigned n_files; /* temporary files made, all removed at the end */
	struct member *m;
	size_t n, cap;
};

/* The image picked from the archive, its members checked. */
struct image {
	const struct member *config;
	const struct member *layers[FB_IMAGE_MAX_LAYERS];
	size_t n_layers;
	json_t *config_json;
	/* From the config's rootfs.diff_ids; "" where it lists none. */
	char diff_id[FB_IMAGE_MAX_LAYERS][FB_SHA256_HEX_LEN + 1];
};

struct fb_oci_archive {
	struct import im;
	struct image img;
	char *tar;
};

/* ---- names --------------------------------------------------------- */

/* rel (relative to the member directory dir, or to the top if it starts
 * with "/") as a canonical member name: "." and empty components dropped,
 * ".." applied. -EINVAL if ".." leaves the archive or the name is empty. */
static int canon(const char *dir, const char *rel, char *out, size_t size)
{
	char joined[PATH_MAX];
	const char *p = joined;
	size_t n = 0;

	if (rel[0] == '/')
		dir = "";
	if (fb_fmt(joined, sizeof(joined), "%s/%s", dir, rel) < 0)
		return -ENAMETOOLONG;
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (!n)
				return -EINVAL;
			while (n && out[n - 1] != '/')
				n--;
			if (n)
				n--;
		} else if (len && !(len == 1 && p[0] == '.')) {
			if (n + !!n + len >= size)
				return -ENAMETOOLONG;
			if (n)
				out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p = *end ? end + 1 : end;
	}
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

static bool is_hex_digest(const char *s, size_t len)
{
	if (len != FB_SHA256_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The digest a member's name claims for its content, if any:
 * "blobs/sha256/<hex>" (OCI, docker 25+) or "<hex>.json" (a docker or
 * podman config, named by its digest). */
static const char *digest_in_name(const char *name)
{
	size_t len = strlen(name);

	if (!strncmp(name, BLOB_DIR, strlen(BLOB_DIR)) &&
	    is_hex_digest(name + strlen(BLOB_DIR), len - strlen(BLOB_DIR)))
		return name + strlen(BLOB_DIR);
	if (len == FB_SHA256_HEX_LEN + 5 && !strcmp(name + len - 5, ".json") &&
	    is_hex_digest(name, FB_SHA256_HEX_LEN))
		return name;
	return NULL;
}

/* ---- copying the outer archive's members out ----------------------- */

static int archive_fail(struct import *im, struct archive *a)
{
	const char *msg = im->A->error_string(a);

	return fb_errorf(-EIO, "%s: %s", im->tar,
			 msg ? msg : "unreadable archive");
}

static struct member *add_member(struct import *im, const char *name)
{
	struct member *m;

	if (im->n == FB_IMAGE_MAX_MEMBERS) {
		fb_errorf(-E2BIG, "%s: more than %u members", im->tar,
			  FB_IMAGE_MAX_MEMBERS);
		return NULL;
	}
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 32;

		m = reallocarray(im->m, cap, sizeof(*m));
		if (!m)
			goto oom;
		im->m = m;
		im->cap = cap;
	}
	m = &im->m[im->n];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	if (!m->name)
		goto oom;
	im->n++;
	return m;
oom:
	fb_errorf(-ENOMEM, "%s: out of memory", im->tar);
	return NULL;
}

static void hash_zeros(struct fb_sha256 *h, uint64_t len)
{
	static const uint8_t zeros[4096];

	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		fb_sha256_update(h, zeros, n);
		len -= n;
	}
}

static bool looks_compressed(const uint8_t *p, size_t len)
{
	static const struct { uint8_t len, magic[6]; } known[] = {
		{ 2, { 0x1f, 0x8b } },                         /* gzip */
		{ 4, { 0x28, 0xb5, 0x2f, 0xfd } },             /* zstd */
		{ 6, { 0xfd, '7', 'z', 'X', 'Z', 0x00 } },     /* xz */
		{ 3, { 'B', 'Z', 'h' } },                      /* bzip2 */
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (len >= known[i].len && !memcmp(p, known[i].magic, known[i].len))
			return true;
	return false;
}

/* Copies the current member's data to a new temporary file, hashing it
 * as it goes (holes of a sparse member hash as the zeros they read as). */
static int copy_member(struct import *im, struct archive *a,
		       struct archive_entry *e, struct member *m)
{
	uint8_t digest[FB_SHA256_LEN];
	struct fb_sha256 h;
	uint64_t pos = 0;
	char fname[16];
	const void *buf;
	size_t len;
	la_int64_t off;
	int fd, r, err = 0;

	m->file = im->n_files;
	snprintf(fname, sizeof(fname), "m%u", m->file);
	fd = openat(im->dirfd, fname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return fb_errorf(-errno, "create %s/%s: %s", im->dir, fname,
				 strerror(errno));
	im->n_files++;
	fb_sha256_init(&h);
	while (!err) {
		r = im->A->read_data_block(a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = archive_fail(im, a);
			break;
		}
		if (off < 0 || (uint64_t)off < pos) {
			err = fb_errorf(-EINVAL, "%s: member %s: data blocks "
					"out of order", im->tar, m->name);
			break;
		}
		if (off == 0 && len)
			m->compressed = looks_compressed(buf, len);
		hash_zeros(&h, (uint64_t)off - pos);
		fb_sha256_update(&h, buf, len);
		pos = (uint64_t)off + len;
		err = fb_pwrite_full(fd, buf, len, (uint64_t)off, fname);
		if (err)
			err = fb_errorf(err, "write %s/%s: %s", im->dir, fname,
					strerror(-err));
	}
	if (!err && im->A->entry_size_is_set(e) &&
	    (uint64_t)im->A->entry_size(e) > pos) {
		hash_zeros(&h, (uint64_t)im->A->entry_size(e) - pos);
		pos = (uint64_t)im->A->entry_size(e);
		if (ftruncate(fd, (off_t)pos) < 0)
			err = fb_errorf(-errno, "truncate %s/%s: %s", im->dir,
					fname, strerror(errno));
	}
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close %s/%s: %s", im->dir, fname,
				strerror(errno));
	fb_sha256_final(&h, digest);
	fb_sha256_to_hex(digest, m->sha);
	m->size = pos;
	return err;
}

static int add_link(struct import *im, const char *name, const char *dir,
		    const char *target)
{
	char canonical[PATH_MAX];
	struct member *m;

	/* A link out of the archive can never be a blob; lookups of it
	 * fail as for any missing member. */
	if (canon(dir, target, canonical, sizeof(canonical)) < 0)
		return 0;
	m = add_member(im, name);
	if (!m)
		return -ENOMEM;
	m->link = strdup(canonical);
	return m->link ? 0 : fb_errorf(-ENOMEM, "%s: out of memory", im->tar);
}

static int take_member(struct import *im, struct archive *a,
		       struct archive_entry *e)
{
	const char *raw = im->A->entry_pathname(e);
	const char *hard = im->A->entry_hardlink(e);
	char name[PATH_MAX], dir[PATH_MAX];
	struct member *m;
	char *slash;

	if (!raw)
		raw = im->A->entry_pathname_utf8(e);
	if (!hard)
		hard = im->A->entry_hardlink_utf8(e);
	/* Nothing here is written by name, so an odd one (".." and the
	 * like) can only be left out; lookups of it then fail. */
	if (!raw || canon("", raw, name, sizeof(name)) < 0)
		return 0;
	if (hard)
		return add_link(im, name, "", hard);
	switch (im->A->entry_filetype(e)) {
	case AE_IFLNK:
		if (!im->A->entry_symlink(e))
			return 0;
		snprintf(dir, sizeof(dir), "%s", name);
		slash = strrchr(dir, '/');
		*(slash ? slash : dir) = '\0';
		return add_link(im, name, dir, im->A->entry_symlink(e));
	case AE_IFREG:
		m = add_member(im, name);
		return m ? copy_member(im, a, e, m) : -ENOMEM;
	default:
		return 0;
	}
}

static int extract(struct import *im, int fd)
{
	struct archive *a;
	struct archive_entry *e;
	la_int64_t end = 0;
	int r, err = 0;

	im->A = fb_archive();
	if (!im->A)
		return -ELIBACC;
	a = fb_archive_reader(im->A, false);
	if (!a)
		return fb_errorf(-ENOMEM, "%s: archive_read_new failed", im->tar);
	if (im->A->read_open_fd(a, fd, READ_BLOCK) != ARCHIVE_OK) {
		err = archive_fail(im, a);
		goto out;
	}
	for (;;) {
		r = im->A->read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = archive_fail(im, a);
			goto out;
		}
		err = take_member(im, a, e);
		if (err)
			goto out;
		if (im->A->read_data_skip(a) < ARCHIVE_WARN) {
			err = archive_fail(im, a);
			goto out;
		}
		end = im->A->filter_bytes(a, 0);
	}
	/* An input that ends right after a member lacks tar's closing zero
	 * blocks: cut short, not finished (see unpack.c). */
	if (im->A->filter_bytes(a, 0) - end < TAR_BLOCK)
		err = fb_errorf(-EIO, "%s: truncated archive (no end-of-archive "
				"marker)", im->tar);
out:
	im->A->read_free(a);
	return err;
}

/* ---- finding and checking members ---------------------------------- */

static const struct member *find(const struct import *im, const char *name)
{
	/* The last of several same-named members wins, as in tar. */
	for (size_t i = im->n; i-- > 0;)
		if (!strcmp(im->m[i].name, name))
			return &im->m[i];
	return NULL;
}

/* The file member that ref (a name as the manifest writes it) leads to,
 * following links; what names the referrer in messages. */
static int lookup(struct import *im, const char *ref, const char *what,
		  const struct member **out)
{
	const struct member *m;
	char name[PATH_MAX];
	int hops;

	if (canon("", ref, name, sizeof(name)) < 0)
		return fb_errorf(-EINVAL, "%s: %s names %.200s, not a member "
				 "name", im->tar, what, ref);
	for (hops = 0; hops < MAX_LINK_HOPS; hops++) {
		m = find(im, name);
		if (!m)
			return fb_errorf(-ENOENT, "%s: %s names %.200s, which "
					 "the archive does not hold", im->tar,
					 what, ref);
		if (!m->link) {
			*out = m;
			return 0;
		}
		snprintf(name, sizeof(name), "%s", m->link);
	}
	return fb_errorf(-ELOOP, "%s: %s names %.200s, a loop of links",
			 im->tar, what, ref);
}

/* want: 64 hex digits, perhaps followed by more (".json"). */
static int check_digest(struct import *im, const struct member *m,
			const char *want, const char *what)
{
	if (!strncmp(m->sha, want, FB_SHA256_HEX_LEN))
		return 0;
	return fb_errorf(-EBADMSG, "%s: %s (%s) does not match its digest "
			 "sha256:%.64s: its content hashes to sha256:%s", im->tar,
			 what, m->name, want, m->sha);
}

/* Whatever digest the reference or the member's own name claims. */
static int check_named(struct import *im, const char *ref,
		       const struct member *m, const char *what)
{
	char name[PATH_MAX];
	const char *want;
	int err = 0;

	if (canon("", ref, name, sizeof(name)) == 0 &&
	    (want = digest_in_name(name)))
		err = check_digest(im, m, want, what);
	if (!err && (want = digest_in_name(m->name)))
		err = check_digest(im, m, want, what);
	return err;
}

static int path_of(const struct import *im, const struct member *m, char *buf,
		   size_t len)
{
	return fb_fmt(buf, len, "%s/m%u", im->dir, m->file);
}

static int load_json(struct import *im, const struct member *m,
		     const char *what, json_t **out)
{
	char path[PATH_MAX];
	json_error_t jerr;
	uint8_t *data;
	size_t len;
	int err;

	if (m->size > FB_IMAGE_MAX_JSON)
		return fb_errorf(-EFBIG, "%s: %s (%s) is %llu bytes, more than "
				 "the %u allowed", im->tar, what, m->name,
				 (unsigned long long)m->size, FB_IMAGE_MAX_JSON);
	err = path_of(im, m, path, sizeof(path));
	if (!err)
		err = fb_read_file(path, FB_IMAGE_MAX_JSON, &data, &len);
	if (err)
		return err;
	/* Duplicate keys read differently by different parsers are a
	 * classic way to show a verifier one image and a runtime another. */
	*out = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (!*out)
		return fb_errorf(-EINVAL, "%s: %s (%s): bad JSON at line %d: %s",
				 im->tar, what, m->name, jerr.line, jerr.text);
	if (!json_is_object(*out) && !json_is_array(*out)) {
		json_decref(*out);
		return fb_errorf(-EINVAL, "%s: %s (%s) is not a JSON object",
				 im->tar, what, m->name);
	}
	return 0;
}

/* An OCI descriptor's blob, its digest and size checked. */
static int blob(struct import *im, json_t *desc, const char *what,
		const struct member **out)
{
	const char *digest = json_string_value(json_object_get(desc, "digest"));
	json_t *size = json_object_get(desc, "size");
	char name[sizeof(BLOB_DIR) + FB_SHA256_HEX_LEN];
	const struct member *m;
	int err;

	if (!json_is_object(desc) || !digest)
		return fb_errorf(-EINVAL, "%s: %s: descriptor without a "
				 "digest", im->tar, what);
	if (strncmp(digest, "sha256:", 7) ||
	    !is_hex_digest(digest + 7, strlen(digest + 7)))
		return fb_errorf(-EINVAL, "%s: %s: digest %.100s is not "
				 "sha256:<64 hex digits>", im->tar, what,
				 digest);
	snprintf(name, sizeof(name), BLOB_DIR "%s", digest + 7);
	err = lookup(im, name, what, &m);
	if (err)
		return err;
	err = check_digest(im, m, digest + 7, what);
	if (err)
		return err;
	if (!json_is_integer(size) || json_integer_value(size) < 0 ||
	    (uint64_t)json_integer_value(size) != m->size)
		return fb_errorf(-EBADMSG, "%s: %s (%s) is %llu bytes, its "
				 "descriptor says otherwise", im->tar, what,
				 m->name, (unsigned long long)m->size);
	*out = m;
	return 0;
}

static int blob_json(struct import *im, json_t *desc, const char *what,
		     json_t **out, const struct member **member)
{
	const struct member *m;
	int err = blob(im, desc, what, &m);

	if (!err)
		err = load_json(im, m, what, out);
	if (!err && member)
		*member = m;
	return err;
}

/* ---- picking the image --------------------------------------------- */

static bool wanted_platform(json_t *desc)
{
	json_t *p = json_object_get(desc, "platform");
	const char *os = json_string_value(json_object_get(p, "os"));
	const char *arch = json_string_value(json_object_get(p, "architecture"));

	/* No platform: a single-image index, as docker and skopeo write. */
	if (!p)
		return true;
	return os && arch && !strcmp(os, "linux") && !strcmp(arch, "amd64");
}

static bool is_index(json_t *j)
{
	return json_is_array(json_object_get(j, "manifests"));
}

/* From an index, the first linux/amd64 image manifest, through nested
 * indexes (multi-platform images saved by buildx). */
static int pick_manifest(struct import *im, json_t *index, const char *what,
			 unsigned depth, json_t **manifest,
			 struct fb_image_config *cfg)
{
	json_t *list = json_object_get(index, "manifests"), *desc, *j;
	size_t i, n = json_array_size(list);
	int err;

	for (i = 0; i < n; i++)
		if (wanted_platform(json_array_get(list, i)))
			break;
	if (i == n)
		return fb_errorf(-ENOENT, "%s: %s lists no linux/amd64 image",
				 im->tar, what);
	if (n > 1 && !cfg->note[0])
		snprintf(cfg->note, sizeof(cfg->note), "%s lists %zu "
			 "manifests; imported #%zu, the first for linux/amd64",
			 what, n, i + 1);
	desc = json_array_get(list, i);
	err = blob_json(im, desc, "image manifest", &j, NULL);
	if (err)
		return err;
	if (!is_index(j)) {
		*manifest = j;
		return 0;
	}
	if (depth >= MAX_INDEX_DEPTH)
		err = fb_errorf(-ELOOP, "%s: indexes nested more than %u deep",
				im->tar, MAX_INDEX_DEPTH);
	else
		err = pick_manifest(im, j, "a nested index", depth + 1,
				    manifest, cfg);
	json_decref(j);
	return err;
}

static bool is_layer_type(const char *t)
{
	return t && (!strncmp(t, "application/vnd.oci.image.layer.", 32) ||
		     !strncmp(t, "application/vnd.docker.image.rootfs.", 36)) &&
	       !strstr(t, "+encrypted");
}

static bool is_config_type(const char *t)
{
	return t && (!strcmp(t, "application/vnd.oci.image.config.v1+json") ||
		     !strcmp(t, "application/vnd.docker.container.image.v1+json"));
}

static int oci_image(struct import *im, struct image *img,
		     struct fb_image_config *cfg)
{
	const struct member *m;
	json_t *index, *manifest = NULL, *layers, *cdesc;
	const char *type;
	char what[64];
	int err;

	err = lookup(im, "index.json", "the OCI layout", &m);
	if (!err)
		err = load_json(im, m, "index.json", &index);
	if (err)
		return err;
	err = is_index(index) ? pick_manifest(im, index, "index.json", 0,
					      &manifest, cfg)
			      : fb_errorf(-EINVAL, "%s: index.json has no "
					  "manifests list", im->tar);
	json_decref(index);
	if (err)
		return err;
	cdesc = json_object_get(manifest, "config");
	type = json_string_value(json_object_get(cdesc, "mediaType"));
	layers = json_object_get(manifest, "layers");
	if (!is_config_type(type)) {
		err = fb_errorf(-EINVAL, "%s: not a container image: its config "
				"is of type %.100s", im->tar,
				type ? type : "(none)");
		goto out;
	}
	if (!json_is_array(layers) ||
	    json_array_size(layers) > FB_IMAGE_MAX_LAYERS) {
		err = fb_errorf(-EINVAL, "%s: the manifest must list at most "
				"%u layers", im->tar, FB_IMAGE_MAX_LAYERS);
		goto out;
	}
	err = blob_json(im, cdesc, "image config", &img->config_json,
			&img->config);
	for (size_t i = 0; !err && i < json_array_size(layers); i++) {
		json_t *desc = json_array_get(layers, i);

		type = json_string_value(json_object_get(desc, "mediaType"));
		snprintf(what, sizeof(what), "layer %zu", i + 1);
		if (!is_layer_type(type))
			err = fb_errorf(-EINVAL, "%s: %s is of type %.100s, not "
					"an image layer", im->tar, what,
					type ? type : "(none)");
		else
			err = blob(im, desc, what, &img->layers[i]);
		img->n_layers = i + 1;
	}
out:
	json_decref(manifest);
	return err;
}

static int docker_image(struct import *im, struct image *img,
			struct fb_image_config *cfg)
{
	const struct member *m;
	json_t *list, *entry, *layers;
	const char *config;
	char what[64];
	int err;

	err = lookup(im, "manifest.json", "the docker archive", &m);
	if (!err)
		err = load_json(im, m, "manifest.json", &list);
	if (err)
		return err;
	entry = json_array_get(list, 0);
	config = json_string_value(json_object_get(entry, "Config"));
	layers = json_object_get(entry, "Layers");
	if (!json_is_array(list) || !config || !json_is_array(layers)) {
		err = fb_errorf(-EINVAL, "%s: manifest.json is not a list of "
				"images with Config and Layers", im->tar);
		goto out;
	}
	if (json_array_size(layers) > FB_IMAGE_MAX_LAYERS) {
		err = fb_errorf(-E2BIG, "%s: %zu layers, more than the %u "
				"allowed", im->tar, json_array_size(layers),
				FB_IMAGE_MAX_LAYERS);
		goto out;
	}
	if (json_array_size(list) > 1)
		snprintf(cfg->note, sizeof(cfg->note), "manifest.json lists "
			 "%zu images; imported the first", json_array_size(list));
	err = lookup(im, config, "manifest.json", &img->config);
	if (!err)
		err = check_named(im, config, img->config, "the image config");
	if (!err)
		err = load_json(im, img->config, "the image config",
				&img->config_json);
	for (size_t i = 0; !err && i < json_array_size(layers); i++) {
		const char *ref = json_string_value(json_array_get(layers, i));

		snprintf(what, sizeof(what), "layer %zu", i + 1);
		if (!ref)
			err = fb_errorf(-EINVAL, "%s: manifest.json: %s is not "
					"a string", im->tar, what);
		else
			err = lookup(im, ref, "manifest.json", &img->layers[i]);
		if (!err)
			err = check_named(im, ref, img->layers[i], what);
		img->n_layers = i + 1;
	}
out:
	json_decref(list);
	return err;
}

/* The config's diff_ids are the digests of the uncompressed layers; where
 * a layer sits uncompressed in the archive (always, for docker save) they
 * check it. */
static int check_diff_ids(struct import *im, struct image *img)
{
	json_t *ids = json_object_get(json_object_get(img->config_json,
						      "rootfs"), "diff_ids");

	if (!ids)
		return 0;
	if (!json_is_array(ids) || json_array_size(ids) != img->n_layers)
		return fb_errorf(-EINVAL, "%s: the config lists %zu diff_ids "
				 "for %zu layers", im->tar,
				 json_array_size(ids), img->n_layers);
	for (size_t i = 0; i < img->n_layers; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		char what[64];
		int err;

		if (!id || strncmp(id, "sha256:", 7) ||
		    !is_hex_digest(id + 7, strlen(id + 7)))
			return fb_errorf(-EINVAL, "%s: the config's diff_ids[%zu] "
					 "is not sha256:<64 hex digits>",
					 im->tar, i);
		memcpy(img->diff_id[i], id + 7, FB_SHA256_HEX_LEN + 1);
		if (img->layers[i]->compressed)
			continue;
		snprintf(what, sizeof(what), "layer %zu (by the config's "
			 "diff_ids)", i + 1);
		err = check_digest(im, img->layers[i], id + 7, what);
		if (err)
			return err;
	}
	return 0;
}

/* ---- the config ---------------------------------------------------- */

static void free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

static int dup_string(struct import *im, json_t *j, const char *what,
		      char **out)
{
	size_t len = json_string_length(j);

	if (!json_is_string(j))
		return fb_errorf(-EINVAL, "%s: config %s is not a string",
				 im->tar, what);
	if (len > FB_IMAGE_MAX_STRING)
		return fb_errorf(-E2BIG, "%s: config %s is %zu bytes, more than "
				 "the %u allowed", im->tar, what, len,
				 FB_IMAGE_MAX_STRING);
	/* jansson refuses \u0000 unless asked, so the string is all of it. */
	*out = strdup(json_string_value(j));
	return *out ? 0 : fb_errorf(-ENOMEM, "%s: out of memory", im->tar);
}

/* An optional list of strings: absent or null is an empty list. */
static int str_list(struct import *im, json_t *obj, const char *key,
		    char ***out, size_t *n)
{
	json_t *arr = json_object_get(obj, key);
	size_t count = json_array_size(arr), i;
	char what[64];
	int err = 0;

	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return fb_errorf(-EINVAL, "%s: config %s is not a list",
				 im->tar, key);
	if (count > FB_IMAGE_MAX_LIST)
		return fb_errorf(-E2BIG, "%s: config %s has %zu entries, more "
				 "than the %u allowed", im->tar, key, count,
				 FB_IMAGE_MAX_LIST);
	*out = calloc(count + 1, sizeof(char *));
	if (!*out)
		return fb_errorf(-ENOMEM, "%s: out of memory", im->tar);
	for (i = 0; !err && i < count; i++) {
		snprintf(what, sizeof(what), "%s[%zu]", key, i);
		err = dup_string(im, json_array_get(arr, i), what, &(*out)[i]);
	}
	*n = count;
	return err;
}

static int opt_string(struct import *im, json_t *obj, const char *key,
		      char **out)
{
	json_t *j = json_object_get(obj, key);

	if (!j || json_is_null(j) || (json_is_string(j) && !json_string_length(j)))
		return 0;
	return dup_string(im, j, key, out);
}

static int read_config(struct import *im, json_t *config,
		       struct fb_image_config *cfg)
{
	json_t *c = json_object_get(config, "config");
	int err;

	if (!c || json_is_null(c))
		return 0;
	if (!json_is_object(c))
		return fb_errorf(-EINVAL, "%s: the image config's \"config\" is "
				 "not an object", im->tar);
	err = str_list(im, c, "Env", &cfg->env, &cfg->n_env);
	for (size_t i = 0; !err && i < cfg->n_env; i++) {
		const char *eq = strchr(cfg->env[i], '=');

		if (!eq || eq == cfg->env[i])
			err = fb_errorf(-EINVAL, "%s: config Env[%zu] %.60s is "
					"not KEY=VALUE", im->tar, i,
					cfg->env[i]);
	}
	if (!err)
		err = str_list(im, c, "Entrypoint", &cfg->entrypoint,
			       &cfg->n_entrypoint);
	if (!err)
		err = str_list(im, c, "Cmd", &cfg->cmd, &cfg->n_cmd);
	if (!err)
		err = opt_string(im, c, "WorkingDir", &cfg->workdir);
	if (!err)
		err = opt_string(im, c, "User", &cfg->user);
	return err;
}

/* ---- import -------------------------------------------------------- */

static int make_tmpdir(struct import *im)
{
	const char *base = secure_getenv("TMPDIR");
	int err;

	if (!base || !*base)
		base = "/var/tmp";
	err = fb_fmt(im->dir, sizeof(im->dir), "%s/forkbox-import.XXXXXX", base);
	if (err)
		return err;
	if (!mkdtemp(im->dir))
		return fb_errorf(-errno, "mkdtemp %s: %s", im->dir,
				 strerror(errno));
	im->dirfd = open(im->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->dirfd < 0) {
		err = fb_errorf(-errno, "open %s: %s", im->dir, strerror(errno));
		rmdir(im->dir);
		im->dir[0] = '\0';
	}
	return err;
}

static void cleanup(struct import *im)
{
	char fname[16];

	for (unsigned i = 0; i < im->n_files; i++) {
		snprintf(fname, sizeof(fname), "m%u", i);
		unlinkat(im->dirfd, fname, 0);
	}
	if (im->dirfd >= 0)
		close(im->dirfd);
	if (im->dir[0])
		rmdir(im->dir);
	for (size_t i = 0; i < im->n; i++) {
		free(im->m[i].name);
		free(im->m[i].link);
	}
	free(im->m);
}

int fb_oci_open(const char *tar_path, struct fb_oci_archive **out,
		struct fb_image_config *cfg)
{
	struct fb_oci_archive *arc = calloc(1, sizeof(*arc));
	struct import *im;
	int fd, err;

	memset(cfg, 0, sizeof(*cfg));
	*out = NULL;
	if (!arc || !(arc->tar = strdup(tar_path))) {
		free(arc);
		return fb_errorf(-ENOMEM, "%s: out of memory", tar_path);
	}
	im = &arc->im;
	im->tar = arc->tar;
	im->dirfd = -1;
	fd = open(tar_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = fb_errorf(-errno, "open %s: %s", tar_path, strerror(errno));
		goto out;
	}
	err = make_tmpdir(im);
	if (!err)
		err = extract(im, fd);
	close(fd);
	if (err)
		goto out;
	if (find(im, "oci-layout") && find(im, "index.json"))
		err = oci_image(im, &arc->img, cfg);
	else if (find(im, "manifest.json"))
		err = docker_image(im, &arc->img, cfg);
	else
		err = fb_errorf(-EINVAL, "%s: neither a docker archive "
				"(manifest.json) nor an OCI layout (oci-layout, "
				"index.json)", tar_path);
	if (!err)
		err = check_diff_ids(im, &arc->img);
	if (!err)
		err = read_config(im, arc->img.config_json, cfg);
out:
	if (err) {
		fb_oci_close(arc);
		fb_image_config_free(cfg);
		return err;
	}
	*out = arc;
	return 0;
}

const char *fb_oci_image_digest(const struct fb_oci_archive *arc)
{
	return arc->img.config->sha;
}

size_t fb_oci_layer_count(const struct fb_oci_archive *arc)
{
	return arc->img.n_layers;
}

int fb_oci_get_layer(const struct fb_oci_archive *arc, size_t i,
		     struct fb_oci_layer *out)
{
	const struct member *m = arc->img.layers[i];
	const char *id = arc->img.diff_id[i];

	memset(out, 0, sizeof(*out));
	out->label = m->name;
	out->tar = arc->tar;
	out->index = i;
	memcpy(out->key, id[0] ? id : m->sha, FB_SHA256_HEX_LEN + 1);
	/* check_diff_ids compared the uncompressed ones already. */
	out->key_checked = !id[0] || !m->compressed;
	return path_of(&arc->im, m, out->path,
		       sizeof(out->path));
}

int fb_oci_layer_check(const struct fb_oci_layer *l)
{
	const struct fb_archive *A;
	struct archive *a;
	struct archive_entry *e;
	uint8_t digest[FB_SHA256_LEN];
	char hex[FB_SHA256_HEX_LEN + 1];
	struct fb_sha256 h;
	const void *buf;
	size_t len;
	la_int64_t off;
	int r, err = 0;

	if (l->key_checked)
		return 0;
	A = fb_archive();
	if (!A)
		return -ELIBACC;
	/* The decompressed bytes as one entry: what a diff_id hashes. */
	a = fb_archive_reader(A, true);
	if (!a)
		return fb_errorf(-ENOMEM, "%s: archive_read_new failed", l->tar);
	fb_sha256_init(&h);
	if (A->read_open_filename(a, l->path, READ_BLOCK) != ARCHIVE_OK ||
	    A->read_next_header(a, &e) != ARCHIVE_OK)
		goto bad;
	while ((r = A->read_data_block(a, &buf, &len, &off)) != ARCHIVE_EOF) {
		if (r < ARCHIVE_WARN)
			goto bad;
		fb_sha256_update(&h, buf, len);
	}
	fb_sha256_final(&h, digest);
	fb_sha256_to_hex(digest, hex);
	if (strcmp(hex, l->key))
		err = fb_errorf(-EBADMSG, "%s: layer %zu (%s, by the config's "
				"diff_ids) does not match its digest sha256:%s: "
				"it decompresses to sha256:%s", l->tar,
				l->index + 1, l->label, l->key, hex);
	A->read_free(a);
	return err;
bad:
	err = fb_errorf(-EIO, "%s: layer %zu (%s): %s", l->tar, l->index + 1,
			l->label, A->error_string(a) ?
			A->error_string(a) : "unreadable");
	A->read_free(a);
	return err;
}

void fb_oci_close(struct fb_oci_archive *arc)
{
	if (!arc)
		return;
	json_decref(arc->img.config_json);
	cleanup(&arc->im);
	free(arc->tar);
	free(arc);
}

int fb_oci_import(const char *tar_path, int rootfd,
		  struct fb_image_config *cfg)
{
	struct fb_oci_archive *arc;
	struct fb_oci_layer l;
	int err = fb_oci_open(tar_path, &arc, cfg);

	for (size_t i = 0; !err && i < fb_oci_layer_count(arc); i++) {
		err = fb_oci_get_layer(arc, i, &l);
		if (!err) {
			int fd = open(l.path, O_RDONLY | O_CLOEXEC);

			if (fd < 0)
				err = fb_errorf(-errno, "open %s: %s", l.path,
						strerror(errno));
			else
				err = fb_unpack_layer(rootfd, fd, l.label,
						      &cfg->stats);
			if (fd >= 0)
				close(fd);
		}
	}
	fb_oci_close(arc);
	if (err)
		fb_image_config_free(cfg);
	return err;
}

void fb_image_config_free(struct fb_image_config *cfg)
{
	free_list(cfg->env);
	free_list(cfg->entrypoint);
	free_list(cfg->cmd);
	free(cfg->workdir);
	free(cfg->user);
	memset(cfg, 0, sizeof(*cfg));
}
