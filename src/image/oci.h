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

#include <stddef.h>

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

/* Frees what cfg holds and zeroes it; safe on a zeroed cfg. */
void fb_image_config_free(struct fb_image_config *cfg);

#endif
