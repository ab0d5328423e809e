/* Layer files: the header, its checks, creation. The layout is
 * docs/disk-format.md; every field is little-endian and goes through
 * fb_put_le*() so the in-memory struct never leaks into the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "disk/layer.h"
#include "util/error.h"
#include "util/le.h"

/* Header offsets. */
#define H_MAGIC 0
#define H_VERSION 8
#define H_HEADER_SIZE 12
#define H_CRC 16
#define H_FLAGS 20
#define H_CLUSTER_SIZE 24
#define H_PARENT_KIND 28
#define H_VIRTUAL_SIZE 32
#define H_UUID 40
#define H_BITMAP_OFFSET 56
#define H_BITMAP_LENGTH 64
#define H_DATA_OFFSET 72
#define H_PARENT_SIZE 80
#define H_PARENT_UUID 88
#define H_PARENT_NAME 104
#define H_RESERVED 232

_Static_assert(sizeof(FB_LAYER_MAGIC) == 8, "magic is 8 bytes");
_Static_assert(H_PARENT_NAME + FB_LAYER_NAME_MAX + 1 == H_RESERVED,
	       "the name field is 128 bytes");

static uint32_t header_crc(const uint8_t h[FB_LAYER_HEADER_SIZE])
{
	uint8_t copy[FB_LAYER_HEADER_SIZE];

	memcpy(copy, h, sizeof(copy));
	fb_put_le32(copy + H_CRC, 0);
	return (uint32_t)crc32(0, copy, sizeof(copy));
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

int fb_layer_name_ok(const char *name)
{
	size_t len;

	if (!name || !*name)
		return fb_errorf(-EINVAL, "layer name is empty");
	len = strlen(name);
	if (len > FB_LAYER_NAME_MAX)
		return fb_errorf(-EINVAL, "layer name %.40s... is %zu bytes, "
				 "over %u", name, len, FB_LAYER_NAME_MAX);
	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return fb_errorf(-EINVAL, "layer name \"%s\" is not a plain "
				 "file name", name);
	return 0;
}

static bool cluster_size_ok(uint32_t cs)
{
	return cs >= FB_LAYER_CLUSTER_MIN && cs <= FB_LAYER_CLUSTER_MAX &&
	       !(cs & (cs - 1));
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

/* Size and cluster size give everything else of a canonical layout. */
static int check_geometry(const char *name, uint64_t size, uint32_t cs,
			  uint64_t *clusters)
{
	if (!cluster_size_ok(cs))
		return fb_errorf(-EINVAL, "%s: cluster size %u is not a power "
				 "of two from %u to %u", name, cs,
				 FB_LAYER_CLUSTER_MIN, FB_LAYER_CLUSTER_MAX);
	if (!size || size % FB_DISK_SECTOR || size > FB_LAYER_MAX_SIZE)
		return fb_errorf(-EINVAL, "%s: virtual size %llu is not a "
				 "multiple of %u from %u to %llu", name,
				 (unsigned long long)size, FB_DISK_SECTOR,
				 FB_DISK_SECTOR,
				 (unsigned long long)FB_LAYER_MAX_SIZE);
	*clusters = (size + cs - 1) / cs;
	if (*clusters > FB_LAYER_MAX_CLUSTERS)
		return fb_errorf(-EINVAL, "%s: %llu clusters of %u bytes, over "
				 "the cap of %llu (use bigger clusters)", name,
				 (unsigned long long)*clusters, cs,
				 (unsigned long long)FB_LAYER_MAX_CLUSTERS);
	return 0;
}

static int check_parent(const char *name, const struct fb_layer_parent *p,
			uint64_t size)
{
	static const uint8_t zero_uuid[16];
	int err;

	switch (p->kind) {
	case FB_LAYER_PARENT_NONE:
		if (p->name[0] || p->size || memcmp(p->uuid, zero_uuid, 16))
			return fb_errorf(-EINVAL, "%s: no parent, but a parent "
					 "name, uuid or size is set", name);
		return 0;
	case FB_LAYER_PARENT_RAW:
	case FB_LAYER_PARENT_LAYER:
		break;
	default:
		return fb_errorf(-EINVAL, "%s: unknown parent kind %u", name,
				 p->kind);
	}
	if (memchr(p->name, '\0', sizeof(p->name)) == NULL)
		return fb_errorf(-EINVAL, "%s: parent name is not terminated",
				 name);
	err = fb_layer_name_ok(p->name);
	if (err)
		return fb_errorf(err, "%s: parent: %s", name, fb_last_error());
	if (p->kind == FB_LAYER_PARENT_RAW && memcmp(p->uuid, zero_uuid, 16))
		return fb_errorf(-EINVAL, "%s: a raw parent has no uuid", name);
	if (p->kind == FB_LAYER_PARENT_LAYER && !memcmp(p->uuid, zero_uuid, 16))
		return fb_errorf(-EINVAL, "%s: parent layer uuid is zero", name);
	if (p->size != size)
		return fb_errorf(-EINVAL, "%s: parent size %llu differs from the"
				 " virtual size %llu", name,
				 (unsigned long long)p->size,
				 (unsigned long long)size);
	return 0;
}

static void encode_header(const struct fb_layer_info *in,
			  uint8_t h[FB_LAYER_HEADER_SIZE])
{
	memset(h, 0, FB_LAYER_HEADER_SIZE);
	memcpy(h + H_MAGIC, FB_LAYER_MAGIC, 8);
	fb_put_le32(h + H_VERSION, in->version);
	fb_put_le32(h + H_HEADER_SIZE, in->header_size);
	fb_put_le32(h + H_FLAGS, in->flags);
	fb_put_le32(h + H_CLUSTER_SIZE, in->cluster_size);
	fb_put_le32(h + H_PARENT_KIND, in->parent.kind);
	fb_put_le64(h + H_VIRTUAL_SIZE, in->virtual_size);
	memcpy(h + H_UUID, in->uuid, 16);
	fb_put_le64(h + H_BITMAP_OFFSET, in->bitmap_offset);
	fb_put_le64(h + H_BITMAP_LENGTH, in->bitmap_length);
	fb_put_le64(h + H_DATA_OFFSET, in->data_offset);
	fb_put_le64(h + H_PARENT_SIZE, in->parent.size);
	memcpy(h + H_PARENT_UUID, in->parent.uuid, 16);
	/* strncpy's padding is the point: the name field is NUL-padded. */
	strncpy((char *)h + H_PARENT_NAME, in->parent.name,
		FB_LAYER_NAME_MAX + 1);
	fb_put_le32(h + H_CRC, header_crc(h));
}

/* Magic, version and CRC: whether the rest can be read at all. A newer
 * header may be laid out differently, so the version comes first. */
static int check_envelope(const char *name, const uint8_t *h)
{
	uint32_t version, crc;

	if (memcmp(h + H_MAGIC, FB_LAYER_MAGIC, 8))
		return fb_errorf(-EINVAL, "%s is not a forkbox disk layer (bad "
				 "magic)", name);
	version = fb_le32(h + H_VERSION);
	if (version > FB_LAYER_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s: layer version %u is "
				 "newer than this forkbox understands (%u)",
				 name, version, FB_LAYER_VERSION);
	if (version != FB_LAYER_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s: layer version %u is not"
				 " supported (this forkbox reads %u)", name,
				 version, FB_LAYER_VERSION);
	if (fb_le32(h + H_HEADER_SIZE) != FB_LAYER_HEADER_SIZE)
		return fb_errorf(-EINVAL, "%s: header size %u, version 1 has "
				 "%u", name, fb_le32(h + H_HEADER_SIZE),
				 FB_LAYER_HEADER_SIZE);
	crc = header_crc(h);
	if (crc != fb_le32(h + H_CRC))
		return fb_errorf(-EBADMSG, "%s: layer header is corrupt (CRC "
				 "0x%08x, expected 0x%08x)", name, crc,
				 fb_le32(h + H_CRC));
	return 0;
}

static void decode_header(const uint8_t *h, struct fb_layer_info *info)
{
	memset(info, 0, sizeof(*info));
	info->version = fb_le32(h + H_VERSION);
	info->header_size = fb_le32(h + H_HEADER_SIZE);
	info->flags = fb_le32(h + H_FLAGS);
	info->cluster_size = fb_le32(h + H_CLUSTER_SIZE);
	info->virtual_size = fb_le64(h + H_VIRTUAL_SIZE);
	memcpy(info->uuid, h + H_UUID, 16);
	info->bitmap_offset = fb_le64(h + H_BITMAP_OFFSET);
	info->bitmap_length = fb_le64(h + H_BITMAP_LENGTH);
	info->data_offset = fb_le64(h + H_DATA_OFFSET);
	info->parent.kind = fb_le32(h + H_PARENT_KIND);
	info->parent.size = fb_le64(h + H_PARENT_SIZE);
	memcpy(info->parent.uuid, h + H_PARENT_UUID, 16);
	/* The last byte stays 0 from the memset; check_name_field looks at
	 * the whole field. */
	memcpy(info->parent.name, h + H_PARENT_NAME, FB_LAYER_NAME_MAX);
}

/* The name field: NUL-terminated within its 128 bytes, zero after. */
static int check_name_field(const char *name, const uint8_t *h)
{
	const uint8_t *f = h + H_PARENT_NAME;
	const uint8_t *nul = memchr(f, '\0', FB_LAYER_NAME_MAX + 1);

	if (!nul)
		return fb_errorf(-EINVAL, "%s: parent name is not terminated",
				 name);
	if (!all_zero(nul, (size_t)(f + FB_LAYER_NAME_MAX + 1 - nul)))
		return fb_errorf(-EINVAL, "%s: parent name field has bytes "
				 "after its end", name);
	return 0;
}

static int check_layout(const char *name, const struct fb_layer_info *in,
			uint64_t file_size)
{
	uint64_t end;

	if (in->bitmap_length != (in->clusters + 7) / 8)
		return fb_errorf(-EINVAL, "%s: bitmap length %llu, %llu "
				 "clusters need %llu", name,
				 (unsigned long long)in->bitmap_length,
				 (unsigned long long)in->clusters,
				 (unsigned long long)((in->clusters + 7) / 8));
	if (in->bitmap_offset < in->header_size || in->bitmap_offset % 8)
		return fb_errorf(-EINVAL, "%s: bitmap offset %llu is inside the"
				 " header or not 8-byte aligned", name,
				 (unsigned long long)in->bitmap_offset);
	if (in->data_offset % in->cluster_size ||
	    in->data_offset > FB_LAYER_MAX_SIZE ||
	    in->bitmap_length > in->data_offset ||
	    in->bitmap_offset > in->data_offset - in->bitmap_length)
		return fb_errorf(-EINVAL, "%s: data offset %llu is not "
				 "cluster-aligned after the bitmap (%llu + "
				 "%llu)", name,
				 (unsigned long long)in->data_offset,
				 (unsigned long long)in->bitmap_offset,
				 (unsigned long long)in->bitmap_length);
	end = in->data_offset + in->clusters * in->cluster_size;
	if (file_size < end)
		return fb_errorf(-EINVAL, "%s is truncated: %llu bytes, its "
				 "layout needs %llu", name,
				 (unsigned long long)file_size,
				 (unsigned long long)end);
	return 0;
}

static int check_header(const char *name, const uint8_t *h,
			uint64_t file_size, struct fb_layer_info *info)
{
	static const uint8_t zero_uuid[16];
	int err;

	err = check_envelope(name, h);
	if (err)
		return err;
	decode_header(h, info);
	if (info->flags & ~FB_LAYER_F_FROZEN)
		return fb_errorf(-EINVAL, "%s: unknown layer flags 0x%x", name,
				 info->flags);
	if (!all_zero(h + H_RESERVED, FB_LAYER_HEADER_SIZE - H_RESERVED))
		return fb_errorf(-EINVAL, "%s: reserved header bytes are not "
				 "zero", name);
	if (!memcmp(info->uuid, zero_uuid, 16))
		return fb_errorf(-EINVAL, "%s: layer uuid is zero", name);
	err = check_geometry(name, info->virtual_size, info->cluster_size,
			     &info->clusters);
	if (!err)
		err = check_name_field(name, h);
	if (!err)
		err = check_parent(name, &info->parent, info->virtual_size);
	if (!err)
		err = check_layout(name, info, file_size);
	return err;
}

int fb_layer_load_info(int fd, const char *name, struct fb_layer_info *info)
{
	uint8_t h[FB_LAYER_HEADER_SIZE];
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0)
		return fb_errorf(-errno, "fstat %s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fb_errorf(-EINVAL, "%s is not a regular file", name);
	if ((uint64_t)st.st_size < FB_LAYER_HEADER_SIZE)
		return fb_errorf(-EINVAL, "%s is truncated: %lld bytes, the "
				 "header alone is %u", name,
				 (long long)st.st_size, FB_LAYER_HEADER_SIZE);
	err = fb_disk_pio_buf(fd, false, 0, h, sizeof(h), 0, name);
	if (err)
		return err;
	return check_header(name, h, (uint64_t)st.st_size, info);
}

int fb_layer_read_info(int fd, struct fb_layer_info *info)
{
	return fb_layer_load_info(fd, "layer", info);
}

int fb_layer_load_bitmap(int fd, const char *name,
			 const struct fb_layer_info *info, uint8_t **bitmap)
{
	uint64_t tail = info->clusters % 8;
	uint8_t *bm;
	int err;

	bm = calloc(1, round_up(info->bitmap_length, 8));
	if (!bm)
		return fb_errorf(-ENOMEM, "%s: out of memory for a %llu-byte "
				 "bitmap", name,
				 (unsigned long long)info->bitmap_length);
	err = fb_disk_pio_buf(fd, false, info->bitmap_offset, bm,
			      info->bitmap_length, 0, name);
	if (!err && tail && bm[info->bitmap_length - 1] >> tail) {
		err = fb_errorf(-EINVAL, "%s: bitmap has bits past the last "
				"cluster", name);
	}
	if (err) {
		free(bm);
		return err;
	}
	*bitmap = bm;
	return 0;
}

int fb_layer_write_info(int fd, const char *name,
			const struct fb_layer_info *info)
{
	uint8_t h[FB_LAYER_HEADER_SIZE];
	int err;

	encode_header(info, h);
	err = fb_disk_pio_buf(fd, true, 0, h, sizeof(h), 0, name);
	if (err)
		return err;
	if (fsync(fd) < 0)
		return fb_errorf(-errno, "fsync %s: %s", name, strerror(errno));
	return 0;
}

/* --- creation -------------------------------------------------------- */

static int random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fb_errorf(-errno, "getrandom: %s",
					 strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int new_info(const char *name, uint64_t size, uint32_t cs,
		    const struct fb_layer_parent *parent,
		    struct fb_layer_info *info)
{
	static const uint8_t zero_uuid[16];
	int err;

	memset(info, 0, sizeof(*info));
	info->version = FB_LAYER_VERSION;
	info->header_size = FB_LAYER_HEADER_SIZE;
	info->cluster_size = cs ? cs : FB_LAYER_CLUSTER_DEFAULT;
	info->virtual_size = size;
	err = check_geometry(name, size, info->cluster_size, &info->clusters);
	if (err)
		return err;
	if (parent) {
		info->parent = *parent;
		err = check_parent(name, &info->parent, size);
		if (err)
			return err;
	}
	info->bitmap_offset = FB_LAYER_HEADER_SIZE;
	info->bitmap_length = (info->clusters + 7) / 8;
	info->data_offset = round_up(info->bitmap_offset +
				     info->bitmap_length, info->cluster_size);
	do {
		err = random_bytes(info->uuid, sizeof(info->uuid));
	} while (!err && !memcmp(info->uuid, zero_uuid, 16));
	return err;
}

static int fsync_dir(int dirfd)
{
	/* Through "." so that an O_PATH dirfd or AT_FDCWD works too. */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return fb_errorf(-errno, "open layer directory: %s",
				 strerror(errno));
	if (fsync(fd) < 0)
		err = fb_errorf(-errno, "fsync layer directory: %s",
				strerror(errno));
	close(fd);
	return err;
}

/* Moves tmp to name unless name exists. */
static int rename_noreplace(int dirfd, const char *tmp, const char *name)
{
	struct stat st;

	if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: check, then rename. */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(dirfd, tmp, dirfd, name) < 0 ? -errno : 0;
}

static int write_new(int fd, const char *name,
		     const struct fb_layer_info *info)
{
	uint64_t len = info->data_offset +
		       info->clusters * info->cluster_size;
	uint8_t h[FB_LAYER_HEADER_SIZE];
	int err;

	encode_header(info, h);
	err = fb_disk_pio_buf(fd, true, 0, h, sizeof(h), 0, name);
	if (err)
		return err;
	/* The whole layout as a hole: the bitmap reads as zeroes and the
	 * file costs only the clusters that get written. */
	if (ftruncate(fd, (off_t)len) < 0)
		return fb_errorf(-errno, "ftruncate %s to %llu: %s", name,
				 (unsigned long long)len, strerror(errno));
	if (fsync(fd) < 0)
		return fb_errorf(-errno, "fsync %s: %s", name, strerror(errno));
	return 0;
}

int fb_layer_create(int dirfd, const char *name, uint64_t virtual_size,
		    uint32_t cluster_size, const struct fb_layer_parent *parent,
		    uint8_t uuid_out[16])
{
	struct fb_layer_info info;
	char tmp[FB_LAYER_NAME_MAX + 32];
	uint32_t tag;
	int fd, err;

	err = fb_layer_name_ok(name);
	if (!err)
		err = new_info(name, virtual_size, cluster_size, parent, &info);
	if (!err)
		err = random_bytes(&tag, sizeof(tag));
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), ".%s.tmp-%08x", name, tag);
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return fb_errorf(-errno, "create %s: %s", tmp, strerror(errno));
	err = write_new(fd, tmp, &info);
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close %s: %s", tmp, strerror(errno));
	if (!err) {
		err = rename_noreplace(dirfd, tmp, name);
		if (err == -EEXIST)
			fb_errorf(err, "layer %s already exists: not "
				  "overwritten", name);
		else if (err)
			fb_errorf(err, "rename %s to %s: %s", tmp, name,
				  strerror(-err));
	}
	if (err) {
		unlinkat(dirfd, tmp, 0);
		return err;
	}
	if (uuid_out)
		memcpy(uuid_out, info.uuid, 16);
	return fsync_dir(dirfd);
}
