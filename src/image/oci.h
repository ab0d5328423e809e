/* Importing a container image from an archive into a directory tree: a
 * `docker save` / `podman save` archive (manifest.json naming the config
 * and the layers) or an OCI image layout in a tar (oci-layout, index.json,
 * blobs/sha256/). The layers are unpacked in order with fb_unpack_layer()
 * and the parts of the image config a box needs are returned.
 *
 * Every blob the format names by digest (OCI blobs, docker's
 * blobs/sha256/ and <digest>.json names, the config's diff_ids for
 * uncompressed layers) is checked before the first layer is unpacked, so
 * a corrupt archive fails with the tree untouched. */
#ifndef FB_IMAGE_OCI_H
#define FB_IMAGE_OCI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "image/sha256.h"
#include "image/unpack.h"

#define FB_IMAGE_MAX_JSON (4u << 20)   /* manifest, index or config */
#define FB_IMAGE_MAX_LAYERS 128u
#define FB_IMAGE_MAX_MEMBERS 4096u     /* members of the outer archive */
#define FB_IMAGE_MAX_LIST 1024u        /* entries of Env, Entrypoint, Cmd */
#define FB_IMAGE_MAX_STRING (64u << 10) /* bytes of one of those entries */

/* The arrays end with a NULL too (after their n_ entries), ready for
 * execve. Absent or empty WorkingDir and User are NULL. */
struct fb_image_config {
	char **env;          /* "KEY=VALUE" */
	size_t n_env;
	char *workdir;
	char **entrypoint;
	size_t n_entrypoint;
	char **cmd;
	size_t n_cmd;
	char *user;
	char note[128];      /* "" or, e.g., which of several images was taken */
	struct fb_unpack_stats stats; /* summed over the layers */
};

/* Imports the image in the archive at tar_path (which may itself be
 * compressed) into the directory open as rootfd. With several images the
 * first is taken (for an OCI index, the first linux/amd64 one) and note
 * says so. The archive's members are copied to a temporary directory
 * under $TMPDIR (default /var/tmp), removed before returning. Returns 0 and
 * fills cfg (free it with fb_image_config_free()), or a negative errno
 * with a message in fb_last_error() and cfg zeroed; the tree may then hold
 * part of the image, for the caller to throw away. */
int fb_oci_import(const char *tar_path, int rootfd,
		  struct fb_image_config *cfg);

/* The same in steps, for the image store, which unpacks each layer into
 * a cache of its own and may need none of them: fb_oci_open does all of
 * fb_oci_import but the unpacking (the archive's members copied out,
 * the image picked, digests checked, cfg filled) and keeps the copies
 * until fb_oci_close. */
struct fb_oci_archive;

struct fb_oci_layer {
	char path[PATH_MAX]; /* the layer as the archive holds it (a copy) */
	const char *label;   /* its member name, for messages */
	const char *tar;     /* the archive, for messages */
	size_t index;        /* 0 for the bottom layer */
	/* The digest the layer cache files it under: the config's
	 * diff_id (the uncompressed tar's sha256, so one cache entry
	 * whatever compression an archive chose) where the config lists
	 * diff_ids, else the sha256 of the layer as stored. */
	char key[FB_SHA256_HEX_LEN + 1];
	/* Whether key is known to match the content: a compressed
	 * layer's diff_id is only checked by fb_oci_layer_check. */
	bool key_checked;
};

int fb_oci_open(const char *tar_path, struct fb_oci_archive **out,
		struct fb_image_config *cfg);

/* The image's digest, by which the store knows it whatever its name:
 * the sha256 of its config blob (docker's <hex>.json, OCI's config
 * descriptor), as hex. */
const char *fb_oci_image_digest(const struct fb_oci_archive *arc);

/* The layers, bottom first. */
size_t fb_oci_layer_count(const struct fb_oci_archive *arc);
int fb_oci_get_layer(const struct fb_oci_archive *arc, size_t i,
		     struct fb_oci_layer *out);

/* Decompresses a layer whose key is not checked and checks it: 0, or
 * -EBADMSG with a message naming the layer. Needed before the layer is
 * cached under its key, or a forged diff_id would poison the cache for
 * every image that really has that layer. */
int fb_oci_layer_check(const struct fb_oci_layer *l);

/* Removes the copies; safe on NULL. */
void fb_oci_close(struct fb_oci_archive *arc);

/* Frees what cfg holds and zeroes it; safe on a zeroed cfg. */
void fb_image_config_free(struct fb_image_config *cfg);

#endif
