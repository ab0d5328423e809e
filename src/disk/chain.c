/* A chain disk: a writable top layer over frozen layers over an optional
 * raw base (docs/disk-format.md). Every layer's bitmap is in memory; a
 * cluster is read from the topmost layer that has it, else from the
 * base, else it is zeroes. Writes go to the top only, a cluster at a
 * time the first time (copy-up), in place after. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/layer.h"
#include "util/error.h"

struct layer {
	int fd;
	char name[FB_LAYER_NAME_MAX + 1];
	struct fb_layer_info info;
	uint8_t *bitmap;	/* bitmap_length rounded up to 8 bytes */
};

struct chain_disk {
	struct fb_disk d;
	struct layer *layers;	/* [0] the top, then down; FB_LAYER_MAX_DEPTH */
	unsigned n;
	int base_fd;		/* -1: no raw base */
	char base_name[FB_LAYER_NAME_MAX + 1];
	uint64_t cs;		/* cluster size, the same in every layer */
	uint8_t *cbuf;		/* one cluster, for copy-up (writable only) */
	/* Bytes [lo, hi) of the top's bitmap set in memory, not yet in the
	 * file: they are written at flush, after the data they describe is
	 * durable, so a crash never leaves a bit over a cluster that did
	 * not reach the disk. */
	uint64_t dirty_lo, dirty_hi;
};

/* Sources of a cluster other than a layer index. */
#define SRC_BASE (-1)
#define SRC_ZERO (-2)

static const struct fb_disk_ops chain_ops;

static struct chain_disk *to_chain(struct fb_disk *d)
{
	return (struct chain_disk *)d;
}

static bool has_cluster(const struct layer *l, uint64_t cl)
{
	return (l->bitmap[cl / 8] >> (cl % 8)) & 1;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Valid bytes of cluster cl: the last one may end early. */
static uint64_t cluster_len(const struct chain_disk *c, uint64_t cl)
{
	return min64(c->cs, c->d.size - cl * c->cs);
}

static uint64_t iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

/* --- reads ----------------------------------------------------------- */

/* Where cluster cl comes from, looking from layer `from` down. */
static int cluster_source(const struct chain_disk *c, unsigned from,
			  uint64_t cl)
{
	for (unsigned k = from; k < c->n; k++)
		if (has_cluster(&c->layers[k], cl))
			return (int)k;
	return c->base_fd >= 0 ? SRC_BASE : SRC_ZERO;
}

static int read_run(struct chain_disk *c, int src, uint64_t off,
		    struct fb_iov_cursor *cur, uint64_t len)
{
	const struct layer *l;

	if (src == SRC_ZERO) {
		fb_iov_cursor_zero(cur, len);
		return 0;
	}
	if (src == SRC_BASE)
		/* A base image may end before the disk does (its last
		 * sector, say): the rest reads as zeroes. */
		return fb_disk_pio(c->base_fd, false, off, cur, len,
				   FB_PIO_ZERO_EOF, c->base_name);
	l = &c->layers[src];
	return fb_disk_pio(l->fd, false, l->info.data_offset + off, cur, len,
			   0, l->name);
}

/* Reads [off, off + len) as seen from layer `from` down, a run of
 * clusters with the same source at a time. */
static int read_from(struct chain_disk *c, unsigned from, uint64_t off,
		     struct fb_iov_cursor *cur, uint64_t len)
{
	while (len) {
		uint64_t cl = off / c->cs;
		int src = cluster_source(c, from, cl);
		uint64_t run = min64(len, (cl + 1) * c->cs - off);
		int err;

		while (run < len &&
		       cluster_source(c, from, (off + run) / c->cs) == src)
			run += min64(len - run, c->cs);
		err = read_run(c, src, off, cur, run);
		if (err)
			return err;
		off += run;
		len -= run;
	}
	return 0;
}

static int chain_readv(struct fb_disk *d, uint64_t off,
		       const struct iovec *iov, int iovcnt)
{
	struct fb_iov_cursor cur;

	fb_iov_cursor_init(&cur, iov, iovcnt);
	return read_from(to_chain(d), 0, off, &cur, iov_len(iov, iovcnt));
}

/* --- writes ---------------------------------------------------------- */

static void mark_allocated(struct chain_disk *c, uint64_t cl)
{
	uint64_t byte = cl / 8;

	c->layers[0].bitmap[byte] |= (uint8_t)(1u << (cl % 8));
	if (c->dirty_lo >= c->dirty_hi) {
		c->dirty_lo = byte;
		c->dirty_hi = byte + 1;
		return;
	}
	c->dirty_lo = min64(c->dirty_lo, byte);
	if (byte + 1 > c->dirty_hi)
		c->dirty_hi = byte + 1;
}

static int write_top(struct chain_disk *c, uint64_t off,
		     struct fb_iov_cursor *cur, uint64_t len)
{
	const struct layer *top = &c->layers[0];

	return fb_disk_pio(top->fd, true, top->info.data_offset + off, cur,
			   len, 0, top->name);
}

/* From off (in an allocated cluster), the bytes up to len that lie in
 * clusters the top already has. */
static uint64_t allocated_run(const struct chain_disk *c, uint64_t off,
			      uint64_t len)
{
	uint64_t run = min64(len, (off / c->cs + 1) * c->cs - off);

	while (run < len && has_cluster(&c->layers[0], (off + run) / c->cs))
		run += min64(len - run, c->cs);
	return run;
}

/* From a cluster-aligned off, the bytes up to len that cover whole
 * clusters the top does not have yet. */
static uint64_t whole_run(const struct chain_disk *c, uint64_t off,
			  uint64_t len)
{
	uint64_t run = 0;

	while (run < len) {
		uint64_t cl = (off + run) / c->cs, n = cluster_len(c, cl);

		if (n > len - run || has_cluster(&c->layers[0], cl))
			break;
		run += n;
	}
	return run;
}

/* The first write to cluster cl covers only part of it: the rest comes
 * from below, and the whole cluster goes to the top. */
static int copy_up(struct chain_disk *c, uint64_t cl, uint64_t off,
		   struct fb_iov_cursor *cur, uint64_t len)
{
	uint64_t start = cl * c->cs, n = cluster_len(c, cl);
	struct iovec v = { .iov_base = c->cbuf, .iov_len = (size_t)n };
	struct fb_iov_cursor below;
	int err;

	fb_iov_cursor_init(&below, &v, 1);
	err = read_from(c, 1, start, &below, n);
	if (err)
		return err;
	fb_iov_cursor_copy_out(cur, c->cbuf + (off - start), len);
	err = fb_disk_pio_buf(c->layers[0].fd, true,
			      c->layers[0].info.data_offset + start, c->cbuf,
			      n, 0, c->layers[0].name);
	if (err)
		return err;
	mark_allocated(c, cl);
	return 0;
}

/* Writes the first piece of [off, off + len) that one strategy covers;
 * *run says how much that was. */
static int write_step(struct chain_disk *c, uint64_t off,
		      struct fb_iov_cursor *cur, uint64_t len, uint64_t *run)
{
	uint64_t cl = off / c->cs;
	int err;

	if (has_cluster(&c->layers[0], cl)) {
		*run = allocated_run(c, off, len);
		return write_top(c, off, cur, *run);
	}
	*run = off % c->cs ? 0 : whole_run(c, off, len);
	if (*run) {
		/* Bits set only once the data is written: a bit never
		 * covers a cluster that failed to reach the file. */
		err = write_top(c, off, cur, *run);
		for (uint64_t i = 0; !err && i * c->cs < *run; i++)
			mark_allocated(c, cl + i);
		return err;
	}
	*run = min64(len, cluster_len(c, cl) - (off - cl * c->cs));
	return copy_up(c, cl, off, cur, *run);
}

static int chain_writev(struct fb_disk *d, uint64_t off,
			const struct iovec *iov, int iovcnt)
{
	uint64_t len = iov_len(iov, iovcnt), run;
	struct fb_iov_cursor cur;
	int err = 0;

	fb_iov_cursor_init(&cur, iov, iovcnt);
	while (len && !err) {
		err = write_step(to_chain(d), off, &cur, len, &run);
		off += run;
		len -= run;
	}
	return err;
}

/* --- flush, close ---------------------------------------------------- */

static int chain_flush(struct fb_disk *d)
{
	struct chain_disk *c = to_chain(d);
	struct layer *top = &c->layers[0];
	uint64_t lo, hi;
	int err;

	if (d->read_only && c->dirty_lo >= c->dirty_hi)
		return 0;
	if (fdatasync(top->fd) < 0)
		return fb_errorf(-errno, "fdatasync %s: %s", top->name,
				 strerror(errno));
	if (c->dirty_lo >= c->dirty_hi)
		return 0;
	/* Whole 8-byte words: the in-memory bitmap is padded to them. */
	lo = c->dirty_lo & ~7ull;
	hi = min64((c->dirty_hi + 7) & ~7ull, top->info.bitmap_length);
	err = fb_disk_pio_buf(top->fd, true, top->info.bitmap_offset + lo,
			      top->bitmap + lo, hi - lo, 0, top->name);
	if (err)
		return err;
	if (fdatasync(top->fd) < 0)
		return fb_errorf(-errno, "fdatasync %s: %s", top->name,
				 strerror(errno));
	c->dirty_lo = c->dirty_hi = 0;
	return 0;
}

static void free_chain(struct chain_disk *c)
{
	for (unsigned k = 0; k < c->n; k++) {
		if (c->layers[k].fd >= 0)
			close(c->layers[k].fd);
		free(c->layers[k].bitmap);
	}
	if (c->base_fd >= 0)
		close(c->base_fd);
	free(c->layers);
	free(c->cbuf);
	free(c);
}

static void chain_close(struct fb_disk *d)
{
	struct chain_disk *c = to_chain(d);

	/* No one to report to: the message stays for whoever looks. */
	if (c->dirty_lo < c->dirty_hi)
		chain_flush(d);
	free_chain(c);
}

static const struct fb_disk_ops chain_ops = {
	.kind = "chain",
	.readv = chain_readv,
	.writev = chain_writev,
	.flush = chain_flush,
	.close = chain_close,
};

/* --- opening --------------------------------------------------------- */

/* name in the first of the directories that has it. */
static int find_open(const int *dirfds, unsigned ndirs, const char *name,
		     int flags)
{
	int err = fb_layer_name_ok(name);

	if (err)
		return err;
	/* O_NONBLOCK: a FIFO under a layer's name must not hang the open;
	 * it is then refused as not a regular file. */
	flags |= O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
	for (unsigned i = 0; i < ndirs; i++) {
		int fd = openat(dirfds[i], name, flags);

		if (fd >= 0)
			return fd;
		if (errno == ENOENT)
			continue;
		if (errno == ELOOP)
			return fb_errorf(-ELOOP, "%s is a symbolic link: "
					 "refused", name);
		return fb_errorf(-errno, "open %s: %s", name, strerror(errno));
	}
	return fb_errorf(-ENOENT, "%s is in none of the %u disk layer "
			 "directories", name, ndirs);
}

static int load_layer(struct layer *l, int fd, const char *name)
{
	int err;

	l->fd = fd;
	snprintf(l->name, sizeof(l->name), "%s", name);
	err = fb_layer_load_info(fd, name, &l->info);
	if (!err)
		err = fb_layer_load_bitmap(fd, name, &l->info, &l->bitmap);
	return err;
}

/* Is parent p the layer that child ch was made over? */
static int check_link(const struct chain_disk *c, const struct layer *ch,
		      const struct layer *p)
{
	if (memcmp(p->info.uuid, ch->info.parent.uuid, 16))
		return fb_errorf(-ESTALE, "%s: parent %s has another uuid: not"
				 " the layer it was made over", ch->name,
				 p->name);
	for (unsigned k = 0; k + 1 < c->n; k++)
		if (!memcmp(c->layers[k].info.uuid, p->info.uuid, 16))
			return fb_errorf(-ELOOP, "%s: the layer chain loops "
					 "back to %s", ch->name, p->name);
	if (p->info.virtual_size != ch->info.parent.size)
		return fb_errorf(-ESTALE, "%s: parent %s is %llu bytes, "
				 "expected %llu", ch->name, p->name,
				 (unsigned long long)p->info.virtual_size,
				 (unsigned long long)ch->info.parent.size);
	if (p->info.cluster_size != ch->info.cluster_size)
		return fb_errorf(-EINVAL, "%s: parent %s has %u-byte clusters,"
				 " it has %u", ch->name, p->name,
				 p->info.cluster_size, ch->info.cluster_size);
	if (!(p->info.flags & FB_LAYER_F_FROZEN))
		return fb_errorf(-EINVAL, "%s: parent %s is not frozen: it "
				 "could still change", ch->name, p->name);
	return 0;
}

static int open_parent_layer(struct chain_disk *c, const int *dirfds,
			     unsigned ndirs)
{
	const struct layer *ch = &c->layers[c->n - 1];
	struct layer *p = &c->layers[c->n];
	int fd, err;

	if (c->n == FB_LAYER_MAX_DEPTH)
		return fb_errorf(-ELOOP, "%s: the layer chain is deeper than %u"
				 " layers", c->layers[0].name,
				 FB_LAYER_MAX_DEPTH);
	fd = find_open(dirfds, ndirs, ch->info.parent.name, O_RDONLY);
	if (fd < 0)
		return fd;
	c->n++;
	err = load_layer(p, fd, ch->info.parent.name);
	return err ? err : check_link(c, ch, p);
}

static int open_base(struct chain_disk *c, const int *dirfds,
		     unsigned ndirs)
{
	const struct layer *ch = &c->layers[c->n - 1];
	const char *name = ch->info.parent.name;
	uint64_t size;
	struct stat st;

	c->base_fd = find_open(dirfds, ndirs, name, O_RDONLY);
	if (c->base_fd < 0)
		return c->base_fd;
	snprintf(c->base_name, sizeof(c->base_name), "%s", name);
	if (fstat(c->base_fd, &st) < 0)
		return fb_errorf(-errno, "fstat %s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fb_errorf(-EINVAL, "raw base %s is not a regular file",
				 name);
	/* A base that ends mid-sector still fills its last sector. */
	size = ((uint64_t)st.st_size + FB_DISK_SECTOR - 1) &
	       ~(uint64_t)(FB_DISK_SECTOR - 1);
	if (size != ch->info.parent.size)
		return fb_errorf(-ESTALE, "%s: raw base %s is %lld bytes, "
				 "expected %llu", ch->name, name,
				 (long long)st.st_size,
				 (unsigned long long)ch->info.parent.size);
	return 0;
}

static int open_top(struct chain_disk *c, const int *dirfds, unsigned ndirs,
		    const char *top, bool read_only)
{
	int fd = find_open(dirfds, ndirs, top, read_only ? O_RDONLY : O_RDWR);
	int err;

	if (fd < 0)
		return fd;
	c->n = 1;
	err = load_layer(&c->layers[0], fd, top);
	if (err)
		return err;
	if (!read_only && (c->layers[0].info.flags & FB_LAYER_F_FROZEN))
		return fb_errorf(-EROFS, "layer %s is frozen: open it "
				 "read-only, or put a new layer over it", top);
	return 0;
}

static struct chain_disk *new_chain(void)
{
	struct chain_disk *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->layers = calloc(FB_LAYER_MAX_DEPTH, sizeof(*c->layers));
	if (!c->layers) {
		free(c);
		return NULL;
	}
	for (unsigned k = 0; k < FB_LAYER_MAX_DEPTH; k++)
		c->layers[k].fd = -1;
	c->base_fd = -1;
	c->d.ops = &chain_ops;
	return c;
}

int fb_disk_open_chain(const int *dirfds, unsigned ndirs, const char *top,
		       bool read_only, const char *serial,
		       struct fb_disk **out)
{
	struct chain_disk *c;
	int err;

	*out = NULL;
	if (!dirfds || !ndirs)
		return fb_errorf(-EINVAL, "chain disk %s: no layer directories",
				 top ? top : "");
	c = new_chain();
	if (!c)
		return fb_errorf(-ENOMEM, "chain disk: out of memory");
	err = open_top(c, dirfds, ndirs, top, read_only);
	while (!err && c->layers[c->n - 1].info.parent.kind ==
		       FB_LAYER_PARENT_LAYER)
		err = open_parent_layer(c, dirfds, ndirs);
	if (!err && c->layers[c->n - 1].info.parent.kind == FB_LAYER_PARENT_RAW)
		err = open_base(c, dirfds, ndirs);
	if (err)
		goto out_free;
	c->cs = c->layers[0].info.cluster_size;
	if (!read_only && !(c->cbuf = malloc(c->cs))) {
		err = fb_errorf(-ENOMEM, "chain disk: out of memory");
		goto out_free;
	}
	c->d.size = c->layers[0].info.virtual_size;
	c->d.read_only = read_only;
	fb_disk_set_serial(&c->d, serial);
	*out = &c->d;
	return 0;
out_free:
	free_chain(c);
	return err;
}

/* --- freezing -------------------------------------------------------- */

static int set_frozen(struct layer *l, bool frozen)
{
	struct fb_layer_info info = l->info;
	int err;

	if (frozen)
		info.flags |= FB_LAYER_F_FROZEN;
	else
		info.flags &= ~FB_LAYER_F_FROZEN;
	err = fb_layer_write_info(l->fd, l->name, &info);
	if (!err)
		l->info.flags = info.flags;
	return err;
}

/* The old top as a read-only fd. Only for tidiness (nothing ever writes
 * below the top), so without /proc the writable fd simply stays. */
static void reopen_read_only(struct layer *l)
{
	char path[64];
	struct stat a, b;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", l->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &a) == 0 && fstat(l->fd, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		close(l->fd);
		l->fd = fd;
		return;
	}
	close(fd);
}

static int open_new_top(int dirfd, const char *name, const uint8_t uuid[16],
			struct layer *l)
{
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW |
			O_NONBLOCK);
	int err;

	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", name, strerror(errno));
	err = load_layer(l, fd, name);
	if (!err && memcmp(l->info.uuid, uuid, 16))
		err = fb_errorf(-ESTALE, "%s was replaced while being created",
				name);
	return err;
}

/* Undoes a freeze that could not finish; a disk whose top cannot be
 * thawed takes no more writes. */
static void undo_freeze(struct chain_disk *c, int dirfd, const char *name,
			bool created)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", fb_last_error());
	if (created)
		unlinkat(dirfd, name, 0);
	if (set_frozen(&c->layers[0], false))
		c->d.read_only = true;
	fb_errorf(0, "%s", msg);
}

int fb_disk_chain_freeze(struct fb_disk *d, int dirfd, const char *new_name,
			 uint8_t new_uuid[16])
{
	struct chain_disk *c = to_chain(d);
	struct fb_layer_parent parent = { .kind = FB_LAYER_PARENT_LAYER };
	struct layer nl = { .fd = -1 };
	uint8_t uuid[16];
	struct stat st;
	int err;

	if (d->ops != &chain_ops)
		return fb_errorf(-EINVAL, "freeze: a %s disk has no layers",
				 d->ops->kind);
	if (d->read_only)
		return fb_errorf(-EROFS, "freeze: the disk is read-only");
	if (c->n == FB_LAYER_MAX_DEPTH)
		return fb_errorf(-E2BIG, "freeze: the chain is already %u "
				 "layers deep", FB_LAYER_MAX_DEPTH);
	err = fb_layer_name_ok(new_name);
	if (err)
		return err;
	/* A name clash is the likely failure: find it before freezing. */
	if (fstatat(dirfd, new_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return fb_errorf(-EEXIST, "layer %s already exists: not "
				 "overwritten", new_name);
	err = chain_flush(d);
	if (!err)
		err = set_frozen(&c->layers[0], true);
	if (err)
		return err;
	snprintf(parent.name, sizeof(parent.name), "%s", c->layers[0].name);
	memcpy(parent.uuid, c->layers[0].info.uuid, 16);
	parent.size = d->size;
	err = fb_layer_create(dirfd, new_name, d->size, (uint32_t)c->cs,
			      &parent, uuid);
	if (err) {
		undo_freeze(c, dirfd, new_name, false);
		return err;
	}
	err = open_new_top(dirfd, new_name, uuid, &nl);
	if (err) {
		if (nl.fd >= 0)
			close(nl.fd);
		free(nl.bitmap);
		undo_freeze(c, dirfd, new_name, true);
		return err;
	}
	reopen_read_only(&c->layers[0]);
	memmove(&c->layers[1], &c->layers[0], c->n * sizeof(c->layers[0]));
	c->layers[0] = nl;
	c->n++;
	if (new_uuid)
		memcpy(new_uuid, uuid, 16);
	return 0;
}

const char *fb_disk_chain_top_name(const struct fb_disk *d)
{
	return d->ops == &chain_ops ? to_chain((struct fb_disk *)d)->layers[0].name :
	       NULL;
}

uint64_t fb_disk_chain_allocated(const struct fb_disk *d)
{
	const struct chain_disk *c = (const struct chain_disk *)d;
	const struct layer *top;
	uint64_t bits = 0, w;

	if (d->ops != &chain_ops)
		return 0;
	top = &c->layers[0];
	for (uint64_t i = 0; i < top->info.bitmap_length; i += 8) {
		memcpy(&w, top->bitmap + i, 8);
		bits += (uint64_t)__builtin_popcountll(w);
	}
	return bits * c->cs;
}
