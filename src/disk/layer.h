/* Copy-on-write disk layers (docs/disk-format.md).
 *
 * A layer file holds the clusters of a virtual disk that were written
 * while it was the top of a chain; every other cluster comes from its
 * parent: another layer, a raw base image, or nothing (zeroes). A chain
 * disk is a writable top layer over frozen layers over an optional raw
 * base. Freezing the top and putting a new empty layer over it is O(1),
 * so a fork's children each get their own top over the shared frozen
 * layers.
 *
 * Layers and bases are named by plain file names (no '/'), looked up in
 * a list of directories, in order. */
#ifndef FB_DISK_LAYER_H
#define FB_DISK_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "disk/disk.h"

#define FB_LAYER_MAGIC "FBLAYER" /* 8 bytes with its NUL */
#define FB_LAYER_VERSION 1u
#define FB_LAYER_HEADER_SIZE 512u
#define FB_LAYER_CLUSTER_MIN (4u << 10)
#define FB_LAYER_CLUSTER_MAX (2u << 20)
#define FB_LAYER_CLUSTER_DEFAULT (64u << 10)
#define FB_LAYER_NAME_MAX 127u
/* Layers in one chain, the top included (the raw base not counted). */
#define FB_LAYER_MAX_DEPTH 64u
/* 16 TiB, and at most 2^28 clusters: a bitmap is at most 32 MiB. */
#define FB_LAYER_MAX_SIZE (1ull << 44)
#define FB_LAYER_MAX_CLUSTERS (1ull << 28)

/* Header flags. A frozen layer never changes again: children rely on it. */
#define FB_LAYER_F_FROZEN 1u

enum fb_layer_parent_kind {
	FB_LAYER_PARENT_NONE = 0,  /* clusters not in the layer read as 0 */
	FB_LAYER_PARENT_RAW = 1,   /* a raw base image file */
	FB_LAYER_PARENT_LAYER = 2, /* another (frozen) layer */
};

struct fb_layer_parent {
	uint32_t kind;                     /* enum fb_layer_parent_kind */
	char name[FB_LAYER_NAME_MAX + 1];  /* "" for NONE */
	uint8_t uuid[16];                  /* the parent layer's; 0 unless LAYER */
	uint64_t size;                     /* the virtual size; 0 for NONE */
};

/* A layer's header, checked. */
struct fb_layer_info {
	uint32_t version;
	uint32_t header_size;
	uint32_t cluster_size;
	uint32_t flags;
	uint64_t virtual_size;
	uint8_t uuid[16];
	struct fb_layer_parent parent;
	uint64_t bitmap_offset;
	uint64_t bitmap_length;
	uint64_t data_offset;
	uint64_t clusters;		/* ceil(virtual_size / cluster_size) */
};

/* 0 if name is a plain file name usable as a layer or base name (not
 * empty, no '/', not "." or "..", at most FB_LAYER_NAME_MAX bytes), else
 * -EINVAL with a message. */
int fb_layer_name_ok(const char *name);

/* Creates the empty layer dirfd/name (mode 0600; an existing name is
 * refused with -EEXIST) for a disk of virtual_size bytes (a multiple of
 * 512). cluster_size 0 means FB_LAYER_CLUSTER_DEFAULT. parent NULL means
 * FB_LAYER_PARENT_NONE. The file appears whole or not at all (temporary
 * name, fsync, rename). The new layer's uuid goes to uuid_out (may be
 * NULL). */
int fb_layer_create(int dirfd, const char *name, uint64_t virtual_size,
		    uint32_t cluster_size, const struct fb_layer_parent *parent,
		    uint8_t uuid_out[16]);

/* Reads and checks the header of the layer file fd (every field, and that
 * the file is as long as its layout). */
int fb_layer_read_info(int fd, struct fb_layer_info *info);

/* Opens the chain whose top layer is top: each name is looked up in
 * dirfds[0..ndirs) in order, parents followed down to a raw base or a
 * layer without a parent, each parent checked against its child's
 * reference (uuid, size, cluster size, frozen). The top is opened for
 * writing unless read_only (a frozen top is then refused with -EROFS),
 * everything else read-only. serial: the disk's id (up to 20 bytes, may
 * be NULL). The dirfds stay the caller's. */
int fb_disk_open_chain(const int *dirfds, unsigned ndirs, const char *top,
		       bool read_only, const char *serial,
		       struct fb_disk **out);

/* Freezes the writable top of chain disk d (flushed, marked frozen) and
 * puts the new empty layer dirfd/new_name over it, with the old top as
 * its parent by name: the caller makes sure the old top's name resolves
 * to it in the directories a later open searches. d then writes to the
 * new layer. No data is copied. new_uuid (may be NULL) receives the new
 * layer's uuid. */
int fb_disk_chain_freeze(struct fb_disk *d, int dirfd, const char *new_name,
			 uint8_t new_uuid[16]);

/* The file name of chain disk d's writable top; NULL for another kind. */
const char *fb_disk_chain_top_name(const struct fb_disk *d);

/* Bytes allocated in the top layer of chain disk d: its written clusters
 * times the cluster size (0 for a disk of another kind). */
uint64_t fb_disk_chain_allocated(const struct fb_disk *d);

/* --- shared by the files of src/disk, not for callers --------------- */

/* Reads of a file that ends early fill zeroes instead of failing. */
#define FB_PIO_ZERO_EOF 1u

struct fb_iov_cursor {
	const struct iovec *iov;
	int cnt;
	int idx;	/* the current iovec */
	size_t off;	/* bytes of it already used */
};

void fb_iov_cursor_init(struct fb_iov_cursor *c, const struct iovec *iov,
			int iovcnt);
void fb_iov_cursor_advance(struct fb_iov_cursor *c, uint64_t len);
void fb_iov_cursor_zero(struct fb_iov_cursor *c, uint64_t len);
/* Copies len bytes from the cursor's buffers to buf, advancing it. */
void fb_iov_cursor_copy_out(struct fb_iov_cursor *c, void *buf,
			    uint64_t len);

/* Moves len bytes between the file fd at foff and the cursor (advanced),
 * through short transfers and EINTR. what names the file in messages. */
int fb_disk_pio(int fd, bool write, uint64_t foff, struct fb_iov_cursor *c,
		uint64_t len, unsigned flags, const char *what);
int fb_disk_pio_buf(int fd, bool write, uint64_t foff, void *buf,
		    uint64_t len, unsigned flags, const char *what);

void fb_disk_set_serial(struct fb_disk *d, const char *serial);

/* Layer files for chain.c: a header checked and named in messages; the
 * bitmap (checked: no bit past the last cluster), in a zeroed buffer of
 * bitmap_length rounded up to 8 bytes; the header rewritten from info
 * and fsynced. */
int fb_layer_load_info(int fd, const char *name, struct fb_layer_info *info);
int fb_layer_load_bitmap(int fd, const char *name,
			 const struct fb_layer_info *info, uint8_t **bitmap);
int fb_layer_write_info(int fd, const char *name,
			const struct fb_layer_info *info);

#endif
