/* fb_image_import: an image archive through the layer cache and the root
 * tree assembly to an ext4 blob named by the image's digest. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/layercache.h"
#include "image/oci.h"
#include "image/rootfs.h"
#include "image/store.h"
#include "image/store_int.h"
#include "util/error.h"

/* Appends "; " and the formatted text to note, cut to fit: a note is
 * for people, never parsed. */
__attribute__((format(printf, 3, 4)))
static void note_add(char *note, size_t len, const char *fmt, ...)
{
	size_t used = strlen(note);
	va_list ap;

	if (used && used + 2 < len) {
		memcpy(note + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(note + used, len - used, fmt, ap);
	va_end(ap);
}

/* Each layer from the cache or into it: dirs[i] its directory. */
static int cache_layers(struct fb_oci_archive *arc, char (*dirs)[PATH_MAX],
			struct fb_image_config *cfg, size_t *unpacked)
{
	struct fb_oci_layer l;
	bool fresh;
	int err = 0;

	*unpacked = 0;
	for (size_t i = 0; !err && i < fb_oci_layer_count(arc); i++) {
		err = fb_oci_get_layer(arc, i, &l);
		if (!err)
			err = fb_layer_cache_get(&l, dirs[i], PATH_MAX, &fresh,
						 &cfg->stats);
		*unpacked += !err && fresh;
	}
	return err;
}

/* Layers to blob; img->size and used set, the blob in tmp. */
static int build(struct fb_oci_archive **arc, struct fb_image_config *cfg,
		 struct fb_image *img, char *tmp, size_t tmp_len)
{
	size_t n = fb_oci_layer_count(*arc), unpacked;
	char (*dirs)[PATH_MAX] = calloc(n ? n : 1, PATH_MAX);
	char **list = calloc(n ? n : 1, sizeof(char *));
	struct fb_rootfs rf = { 0 };
	char what[96];
	int err, rel;

	snprintf(what, sizeof(what), "image %s", img->name);
	if (!dirs || !list) {
		err = fb_errorf(-ENOMEM, "%s: out of memory", what);
		goto out;
	}
	err = cache_layers(*arc, dirs, cfg, &unpacked);
	if (err)
		goto out;
	/* The archive's copies are not needed any more: free the space
	 * before mkfs takes its own. */
	fb_oci_close(*arc);
	*arc = NULL;
	for (size_t i = 0; i < n; i++)
		list[i] = dirs[i];
	note_add(img->note, sizeof(img->note), "%zu of %zu layers unpacked, "
		 "%zu from the cache", unpacked, n, n - unpacked);
	err = fb_rootfs_assemble(list, n, &rf);
	if (err)
		goto out;
	if (rf.note[0])
		note_add(img->note, sizeof(img->note), "%s", rf.note);
	err = fb_image_make_blob(rf.dir, 0, what, tmp, tmp_len, &img->size,
				 &img->used);
	rel = fb_rootfs_release(&rf);
	if (!err && rel) {
		unlink(tmp);
		err = rel;
	}
out:
	free(dirs);
	free(list);
	return err;
}

int fb_image_import(const char *name, const char *tar, struct fb_image *out)
{
	struct fb_oci_archive *arc = NULL;
	struct fb_image_config cfg = { 0 };
	struct fb_image img = { 0 };
	char blobs[PATH_MAX], tmp[PATH_MAX];
	const char *hex;
	int err = fb_image_check_name(name);

	if (!err)
		err = fb_image_blob_dir(blobs, sizeof(blobs));
	if (!err)
		err = fb_oci_open(tar, &arc, &cfg);
	if (err)
		return err;
	hex = fb_oci_image_digest(arc);
	snprintf(img.name, sizeof(img.name), "%s", name);
	snprintf(img.source, sizeof(img.source), "import %s", tar);
	snprintf(img.digest, sizeof(img.digest), "sha256:%s", hex);
	err = fb_fmt(img.blob, sizeof(img.blob), "sha256-%s.ext4", hex);
	if (!err)
		err = fb_fmt(img.path, sizeof(img.path), "%s/%s", blobs,
			     img.blob);
	if (err)
		goto out;
	if (cfg.note[0])
		note_add(img.note, sizeof(img.note), "%s", cfg.note);
	img.created = (long long)time(NULL);
	img.cfg = cfg; /* borrowed for the description only */
	err = fb_image_install(&img, NULL);
	if (!err) {
		note_add(img.note, sizeof(img.note), "image sha256:%.12s was "
			 "imported before: its ext4 file reused", hex);
	} else if (err == -ENOENT) {
		err = build(&arc, &cfg, &img, tmp, sizeof(tmp));
		if (!err)
			err = fb_image_install(&img, tmp);
	}
	img.cfg = (struct fb_image_config){ 0 };
	if (!err && out) {
		err = fb_image_get(name, out);
		if (!err)
			memcpy(out->note, img.note, sizeof(out->note));
	}
out:
	fb_oci_close(arc);
	fb_image_config_free(&cfg);
	return err;
}
