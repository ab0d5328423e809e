/* The state file: header, typed sections, CRCs, caps. The layout is
 * docs/snapshot-format.md; every field is little-endian and written
 * through put_le*() so the in-memory structs never leak into the file. */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "snapshot/format.h"
#include "snapshot/snap_util.h"
#include "util/error.h"
#include "util/file.h"
#include "util/le.h"

/* Header offsets. */
#define H_MAGIC 0
#define H_VERSION 8
#define H_FLAGS 12
#define H_VENDOR 16
#define H_FAMILY 28
#define H_MODEL 32
#define H_STEPPING 36
#define H_NR_SECTIONS 40
#define H_CRC 44
#define H_CREATED 48
#define H_RESERVED 56

/* Section header offsets. */
#define S_TYPE 0
#define S_INDEX 4
#define S_VERSION 8
#define S_CRC 12
#define S_LENGTH 16

_Static_assert(sizeof(FB_SNAP_MAGIC) - 1 == 8, "magic is 8 bytes");

uint32_t fb_snap_crc32(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	/* zlib takes a uInt length: feed it in pieces. */
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

void fb_snap_host_cpu(struct fb_snap_cpu *cpu)
{
	unsigned a = 0, b = 0, c = 0, d = 0, fam, model;

	memset(cpu, 0, sizeof(*cpu));
	__cpuid(0, a, b, c, d);
	memcpy(cpu->vendor, &b, 4);
	memcpy(cpu->vendor + 4, &d, 4);
	memcpy(cpu->vendor + 8, &c, 4);
	__cpuid(1, a, b, c, d);
	fam = (a >> 8) & 0xf;
	model = (a >> 4) & 0xf;
	if (fam == 0xf)
		fam += (a >> 20) & 0xff;
	if (fam == 0x6 || fam >= 0xf)
		model |= ((a >> 16) & 0xf) << 4;
	cpu->family = fam;
	cpu->model = model;
	cpu->stepping = a & 0xf;
}

/* --- writer ---------------------------------------------------------- */

struct wsec {
	uint32_t type, index, version;
	uint64_t len;
	uint8_t *data;
};

struct fb_snap_writer {
	uint32_t flags;
	struct fb_snap_cpu cpu;
	uint64_t created;
	uint64_t total;		/* file size so far */
	uint32_t nr, cap;
	struct wsec *secs;
};

static uint64_t padded(uint64_t len)
{
	return (len + FB_SNAP_ALIGN - 1) & ~(uint64_t)(FB_SNAP_ALIGN - 1);
}

int fb_snap_writer_new(struct fb_snap_writer **out, uint32_t flags)
{
	struct fb_snap_writer *w;

	if (flags != FB_SNAP_F_FULL && flags != FB_SNAP_F_DIFF)
		return fb_errorf(-EINVAL, "snapshot flags 0x%x: one of full "
				 "and diff", flags);
	w = calloc(1, sizeof(*w));
	if (!w)
		return fb_errorf(-ENOMEM, "snapshot writer: out of memory");
	w->flags = flags;
	fb_snap_host_cpu(&w->cpu);
	w->created = (uint64_t)time(NULL);
	w->total = FB_SNAP_HEADER_SIZE;
	*out = w;
	return 0;
}

void fb_snap_writer_set_cpu(struct fb_snap_writer *w,
			    const struct fb_snap_cpu *cpu)
{
	w->cpu = *cpu;
	w->cpu.vendor[12] = '\0';
}

void fb_snap_writer_set_created(struct fb_snap_writer *w, uint64_t created)
{
	w->created = created;
}

int fb_snap_writer_add(struct fb_snap_writer *w, uint32_t type,
		       uint32_t version, const void *data, uint64_t len)
{
	struct wsec *s;
	uint32_t index = 0;
	uint64_t size;

	if (w->nr >= FB_SNAP_MAX_SECTIONS)
		return fb_errorf(-E2BIG, "snapshot: more than %u sections",
				 FB_SNAP_MAX_SECTIONS);
	if (len > FB_SNAP_MAX_SECTION)
		return fb_errorf(-EFBIG, "snapshot section type %u: %llu bytes,"
				 " over the %u MiB cap", type,
				 (unsigned long long)len,
				 FB_SNAP_MAX_SECTION >> 20);
	size = FB_SNAP_SECTION_HEADER_SIZE + padded(len);
	if (w->total + size > FB_SNAP_MAX_STATE)
		return fb_errorf(-EFBIG, "snapshot state over the %u MiB cap",
				 FB_SNAP_MAX_STATE >> 20);
	if (w->nr == w->cap) {
		uint32_t cap = w->cap ? 2 * w->cap : 16;
		struct wsec *n = realloc(w->secs, cap * sizeof(*n));

		if (!n)
			return fb_errorf(-ENOMEM, "snapshot writer: out of "
					 "memory");
		w->secs = n;
		w->cap = cap;
	}
	for (uint32_t i = 0; i < w->nr; i++)
		index += w->secs[i].type == type;
	s = &w->secs[w->nr];
	s->data = malloc(len ? len : 1);
	if (!s->data)
		return fb_errorf(-ENOMEM, "snapshot section type %u: out of "
				 "memory for %llu bytes", type,
				 (unsigned long long)len);
	if (len)
		memcpy(s->data, data, len);
	s->type = type;
	s->index = index;
	s->version = version;
	s->len = len;
	w->nr++;
	w->total += size;
	return 0;
}

void fb_snap_writer_free(struct fb_snap_writer *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->nr; i++)
		free(w->secs[i].data);
	free(w->secs);
	free(w);
}

static void encode_header(const struct fb_snap_writer *w,
			  uint8_t h[FB_SNAP_HEADER_SIZE])
{
	memset(h, 0, FB_SNAP_HEADER_SIZE);
	memcpy(h + H_MAGIC, FB_SNAP_MAGIC, 8);
	fb_put_le32(h + H_VERSION, FB_SNAPSHOT_VERSION);
	fb_put_le32(h + H_FLAGS, w->flags);
	memcpy(h + H_VENDOR, w->cpu.vendor, 12);
	fb_put_le32(h + H_FAMILY, w->cpu.family);
	fb_put_le32(h + H_MODEL, w->cpu.model);
	fb_put_le32(h + H_STEPPING, w->cpu.stepping);
	fb_put_le32(h + H_NR_SECTIONS, w->nr);
	fb_put_le64(h + H_CREATED, w->created);
	fb_put_le32(h + H_CRC, fb_snap_crc32(0, h, FB_SNAP_HEADER_SIZE));
}

static void encode_section(const struct wsec *s,
			   uint8_t h[FB_SNAP_SECTION_HEADER_SIZE])
{
	uint32_t crc;

	memset(h, 0, FB_SNAP_SECTION_HEADER_SIZE);
	fb_put_le32(h + S_TYPE, s->type);
	fb_put_le32(h + S_INDEX, s->index);
	fb_put_le32(h + S_VERSION, s->version);
	fb_put_le64(h + S_LENGTH, s->len);
	crc = fb_snap_crc32(0, h, FB_SNAP_SECTION_HEADER_SIZE);
	crc = fb_snap_crc32(crc, s->data, s->len);
	fb_put_le32(h + S_CRC, crc);
}

int fb_snap_writer_write_fd(struct fb_snap_writer *w, int fd)
{
	static const uint8_t zero[FB_SNAP_ALIGN];
	uint8_t h[FB_SNAP_HEADER_SIZE], sh[FB_SNAP_SECTION_HEADER_SIZE];
	int err;

	encode_header(w, h);
	err = fb_write_full(fd, h, sizeof(h));
	for (uint32_t i = 0; !err && i < w->nr; i++) {
		const struct wsec *s = &w->secs[i];

		encode_section(s, sh);
		err = fb_write_full(fd, sh, sizeof(sh));
		if (!err)
			err = fb_write_full(fd, s->data, s->len);
		if (!err && padded(s->len) != s->len)
			err = fb_write_full(fd, zero, padded(s->len) - s->len);
	}
	return err;
}

int fb_snap_writer_write(struct fb_snap_writer *w, const char *path)
{
	char tmp[PATH_MAX];
	int fd, err;

	err = fb_fmt(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
	if (err < 0)
		return err;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-errno, "create %s: %s", tmp, strerror(errno));
	err = fb_snap_writer_write_fd(w, fd);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return fb_errorf(err, "write %s: %s", path, strerror(-err));
	}
	return fb_fsync_parent(path);
}

/* --- reader ---------------------------------------------------------- */

static const char *type_name(uint32_t type)
{
	switch (type) {
	case FB_SNAP_SEC_VM_CONFIG: return "vm-config";
	case FB_SNAP_SEC_MEMORY_MAP: return "memory-map";
	case FB_SNAP_SEC_VM_STATE: return "vm-state";
	case FB_SNAP_SEC_VCPU: return "vcpu";
	case FB_SNAP_SEC_DEVICE: return "device";
	default: return "unknown";
	}
}

static int check_header(const char *path, const uint8_t *h, uint64_t size,
			unsigned flags, struct fb_snap *snap)
{
	uint8_t copy[FB_SNAP_HEADER_SIZE];
	struct fb_snap_cpu host;
	uint32_t crc;

	if (memcmp(h + H_MAGIC, FB_SNAP_MAGIC, 8))
		return fb_errorf(-EINVAL, "%s is not a forkbox snapshot state "
				 "file (bad magic)", path);
	snap->version = fb_le32(h + H_VERSION);
	if (snap->version > FB_SNAPSHOT_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s: snapshot version %u is "
				 "newer than this forkbox understands (%u)",
				 path, snap->version, FB_SNAPSHOT_VERSION);
	if (snap->version != FB_SNAPSHOT_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s: snapshot version %u is "
				 "not supported (this forkbox reads %u)",
				 path, snap->version, FB_SNAPSHOT_VERSION);
	memcpy(copy, h, sizeof(copy));
	fb_put_le32(copy + H_CRC, 0);
	crc = fb_snap_crc32(0, copy, sizeof(copy));
	if (crc != fb_le32(h + H_CRC))
		return fb_errorf(-EBADMSG, "%s: snapshot header is corrupt "
				 "(CRC 0x%08x, expected 0x%08x)", path, crc,
				 fb_le32(h + H_CRC));
	snap->flags = fb_le32(h + H_FLAGS);
	if (snap->flags != FB_SNAP_F_FULL && snap->flags != FB_SNAP_F_DIFF)
		return fb_errorf(-EINVAL, "%s: unknown snapshot flags 0x%x",
				 path, snap->flags);
	if (fb_le64(h + H_RESERVED))
		return fb_errorf(-EINVAL, "%s: reserved header field is not "
				 "zero", path);
	memcpy(snap->cpu.vendor, h + H_VENDOR, 12);
	snap->cpu.vendor[12] = '\0';
	for (int i = 0; i < 12; i++)
		if (snap->cpu.vendor[i] < 0x20 || snap->cpu.vendor[i] > 0x7e)
			return fb_errorf(-EINVAL, "%s: CPU vendor is not text",
					 path);
	snap->cpu.family = fb_le32(h + H_FAMILY);
	snap->cpu.model = fb_le32(h + H_MODEL);
	snap->cpu.stepping = fb_le32(h + H_STEPPING);
	snap->created = fb_le64(h + H_CREATED);
	snap->nr_sections = fb_le32(h + H_NR_SECTIONS);
	if (snap->nr_sections > FB_SNAP_MAX_SECTIONS)
		return fb_errorf(-E2BIG, "%s: %u sections, over the cap of %u",
				 path, snap->nr_sections, FB_SNAP_MAX_SECTIONS);
	if ((uint64_t)snap->nr_sections * FB_SNAP_SECTION_HEADER_SIZE >
	    size - FB_SNAP_HEADER_SIZE)
		return fb_errorf(-EINVAL, "%s is truncated: %u sections cannot "
				 "fit in %llu bytes", path, snap->nr_sections,
				 (unsigned long long)size);
	if (flags & FB_SNAP_READ_ANY_CPU)
		return 0;
	fb_snap_host_cpu(&host);
	if (strcmp(host.vendor, snap->cpu.vendor))
		return fb_errorf(-ENOEXEC, "%s was taken on a %s CPU, this "
				 "host's is %s: restore refused", path,
				 snap->cpu.vendor, host.vendor);
	if (host.family != snap->cpu.family || host.model != snap->cpu.model)
		return fb_errorf(-ENOEXEC, "%s was taken on a %s CPU family %u "
				 "model %u, this host's is family %u model %u: "
				 "restore refused", path, snap->cpu.vendor,
				 snap->cpu.family, snap->cpu.model,
				 host.family, host.model);
	return 0;
}

static int parse_sections(const char *path, struct fb_snap *snap)
{
	const uint8_t *buf = snap->buf;
	uint64_t off = FB_SNAP_HEADER_SIZE, size = snap->buf_len;

	for (uint32_t i = 0; i < snap->nr_sections; i++) {
		struct fb_snap_section *s = &snap->sections[i];
		uint8_t h[FB_SNAP_SECTION_HEADER_SIZE];
		uint32_t crc, index = 0;
		uint64_t pad;

		if (size - off < FB_SNAP_SECTION_HEADER_SIZE)
			return fb_errorf(-EINVAL, "%s is truncated: section %u "
					 "header at offset %llu is past the end "
					 "(%llu bytes)", path, i,
					 (unsigned long long)off,
					 (unsigned long long)size);
		memcpy(h, buf + off, sizeof(h));
		s->type = fb_le32(h + S_TYPE);
		s->index = fb_le32(h + S_INDEX);
		s->version = fb_le32(h + S_VERSION);
		s->len = fb_le64(h + S_LENGTH);
		off += FB_SNAP_SECTION_HEADER_SIZE;
		if (s->len > FB_SNAP_MAX_SECTION)
			return fb_errorf(-EFBIG, "%s: section %u (%s) claims "
					 "%llu bytes, over the %u MiB cap", path,
					 i, type_name(s->type),
					 (unsigned long long)s->len,
					 FB_SNAP_MAX_SECTION >> 20);
		if (padded(s->len) > size - off)
			return fb_errorf(-EINVAL, "%s is truncated: section %u "
					 "(%s) needs %llu bytes at offset %llu, "
					 "the file has %llu", path, i,
					 type_name(s->type),
					 (unsigned long long)padded(s->len),
					 (unsigned long long)off,
					 (unsigned long long)size);
		s->data = buf + off;
		fb_put_le32(h + S_CRC, 0);
		crc = fb_snap_crc32(0, h, sizeof(h));
		crc = fb_snap_crc32(crc, s->data, s->len);
		if (crc != fb_le32(buf + off - FB_SNAP_SECTION_HEADER_SIZE +
				   S_CRC))
			return fb_errorf(-EBADMSG, "%s: section %u (%s) is "
					 "corrupt (CRC mismatch)", path, i,
					 type_name(s->type));
		for (pad = s->len; pad < padded(s->len); pad++)
			if (s->data[pad])
				return fb_errorf(-EINVAL, "%s: section %u "
						 "padding is not zero", path,
						 i);
		for (uint32_t j = 0; j < i; j++)
			index += snap->sections[j].type == s->type;
		if (s->index != index)
			return fb_errorf(-EINVAL, "%s: section %u (%s) has index"
					 " %u, expected %u", path, i,
					 type_name(s->type), s->index, index);
		off += padded(s->len);
	}
	if (off != size)
		return fb_errorf(-EINVAL, "%s: %llu bytes of trailing data "
				 "after the last section", path,
				 (unsigned long long)(size - off));
	return 0;
}

int fb_snap_read_fd(int fd, const char *path, unsigned flags,
		    struct fb_snap **out)
{
	uint8_t h[FB_SNAP_HEADER_SIZE];
	struct fb_snap *snap;
	struct stat st;
	uint64_t size;
	int err;

	*out = NULL;
	if (fstat(fd, &st) < 0) {
		err = fb_errorf(-errno, "stat %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fb_errorf(-EINVAL, "%s is not a regular file", path);
		goto out_close;
	}
	size = (uint64_t)st.st_size;
	if (size < FB_SNAP_HEADER_SIZE) {
		err = fb_errorf(-EINVAL, "%s is truncated: %llu bytes, the "
				"header alone is %d", path,
				(unsigned long long)size, FB_SNAP_HEADER_SIZE);
		goto out_close;
	}
	if (size > FB_SNAP_MAX_STATE) {
		err = fb_errorf(-EFBIG, "%s is %llu bytes, over the %u MiB cap "
				"for a state file", path,
				(unsigned long long)size,
				FB_SNAP_MAX_STATE >> 20);
		goto out_close;
	}
	snap = calloc(1, sizeof(*snap));
	if (!snap) {
		err = fb_errorf(-ENOMEM, "reading %s: out of memory", path);
		goto out_close;
	}
	/* The header first: nothing else is allocated until it is valid. */
	err = fb_read_full(fd, h, sizeof(h), path);
	if (!err)
		err = check_header(path, h, size, flags, snap);
	if (err)
		goto out_free;
	snap->buf = malloc(size);
	snap->sections = calloc(snap->nr_sections ? snap->nr_sections : 1,
				sizeof(*snap->sections));
	if (!snap->buf || !snap->sections) {
		err = fb_errorf(-ENOMEM, "reading %s: out of memory", path);
		goto out_free;
	}
	memcpy(snap->buf, h, sizeof(h));
	snap->buf_len = size;
	err = fb_read_full(fd, snap->buf + sizeof(h), size - sizeof(h), path);
	if (!err)
		err = parse_sections(path, snap);
	if (err)
		goto out_free;
	*out = snap;
	return 0;
out_free:
	fb_snap_free(snap);
out_close:
	return err;
}

int fb_snap_read_flags(const char *path, unsigned flags, struct fb_snap **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	*out = NULL;
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", path, strerror(errno));
	err = fb_snap_read_fd(fd, path, flags, out);
	close(fd);
	return err;
}

int fb_snap_read(const char *path, struct fb_snap **out)
{
	return fb_snap_read_flags(path, 0, out);
}

int fb_snap_section_at(const struct fb_snap *snap, uint32_t type,
		       uint32_t index, uint32_t *version, const void **data,
		       uint64_t *len)
{
	for (uint32_t i = 0; i < snap->nr_sections; i++) {
		const struct fb_snap_section *s = &snap->sections[i];

		if (s->type != type || s->index != index)
			continue;
		if (version)
			*version = s->version;
		*data = s->data;
		*len = s->len;
		return 0;
	}
	return -ENOENT;
}

int fb_snap_section(const struct fb_snap *snap, uint32_t type,
		    const void **data, uint64_t *len)
{
	return fb_snap_section_at(snap, type, 0, NULL, data, len);
}

uint32_t fb_snap_section_count(const struct fb_snap *snap, uint32_t type)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < snap->nr_sections; i++)
		n += snap->sections[i].type == type;
	return n;
}

void fb_snap_free(struct fb_snap *snap)
{
	if (!snap)
		return;
	free(snap->sections);
	free(snap->buf);
	free(snap);
}
