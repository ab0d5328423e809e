/* The snapshot state file and snapshot directories (docs/snapshot-format.md).
 *
 * A state file is a header (magic, version, flags, the host CPU that wrote
 * it) and typed sections, each with its own CRC. The reader trusts nothing:
 * every size is checked against a cap and against the file before anything
 * is allocated, and the whole file is validated before fb_snap_read()
 * returns, so a caller never sees half a snapshot.
 *
 * A snapshot directory is built under a temporary name next to its final
 * path and renamed into place once every file in it is on disk. */
#ifndef FB_SNAPSHOT_FORMAT_H
#define FB_SNAPSHOT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define FB_SNAPSHOT_VERSION 1
#define FB_SNAP_MAGIC "FBXSTATE"	/* 8 bytes, no NUL in the file */

#define FB_SNAP_HEADER_SIZE 64
#define FB_SNAP_SECTION_HEADER_SIZE 24
#define FB_SNAP_ALIGN 8			/* payloads are padded to this */

/* Caps: a parser allocates nothing bigger, whatever a file claims. */
#define FB_SNAP_MAX_SECTIONS 4096
#define FB_SNAP_MAX_SECTION (64u << 20)	/* one payload */
#define FB_SNAP_MAX_STATE (256u << 20)	/* the whole state file */

/* Header flags: exactly one of FULL and DIFF. */
#define FB_SNAP_F_FULL 0x1u
#define FB_SNAP_F_DIFF 0x2u

/* Section types. Payloads are opaque here; each owner versions its own
 * (the section's version field). Numbers are spaced so that related
 * sections can be added next to each other; a number, once used, is
 * never reused for something else. */
enum fb_snap_section_type {
	FB_SNAP_SEC_VM_CONFIG = 1,	/* the VM's configuration */
	FB_SNAP_SEC_MEMORY_MAP = 2,	/* guest RAM regions */
	FB_SNAP_SEC_VM_STATE = 16,	/* VM-wide KVM state (clock, irqchip,
					   PIT) */
	FB_SNAP_SEC_VCPU = 32,		/* one per vCPU, index = vCPU id */
	FB_SNAP_SEC_DEVICE = 64,	/* one per device, index = ordinal */
	FB_SNAP_SEC_USER = 0x10000,	/* from here on: experiments */
};

/* The host CPU a snapshot was taken on (CPUID 0 and 1). */
struct fb_snap_cpu {
	char vendor[13];	/* "GenuineIntel", NUL-terminated */
	uint32_t family, model, stepping; /* display values */
};

void fb_snap_host_cpu(struct fb_snap_cpu *cpu);

/* CRC-32 (zlib's, the IEEE polynomial), chainable from crc 0. */
uint32_t fb_snap_crc32(uint32_t crc, const void *data, size_t len);

/* --- writing --------------------------------------------------------- */

struct fb_snap_writer;

/* flags: FB_SNAP_F_FULL or FB_SNAP_F_DIFF. The CPU is this host's and the
 * creation time now, unless set below. */
int fb_snap_writer_new(struct fb_snap_writer **w, uint32_t flags);

/* Appends a section (the data is copied). Sections of one type are
 * numbered 0, 1, 2... in the order they are added: the index that
 * fb_snap_section_at() takes. len may be 0. */
int fb_snap_writer_add(struct fb_snap_writer *w, uint32_t type,
		       uint32_t version, const void *data, uint64_t len);

/* For merges (keep the original's) and tests (a fake vendor). */
void fb_snap_writer_set_cpu(struct fb_snap_writer *w,
			    const struct fb_snap_cpu *cpu);
void fb_snap_writer_set_created(struct fb_snap_writer *w, uint64_t created);

/* Writes the file atomically: a temporary name next to path (mode 0600),
 * fsync, rename over path, fsync of the directory. */
int fb_snap_writer_write(struct fb_snap_writer *w, const char *path);
/* Writes the same bytes at fd's offset, nothing more (no fsync). */
int fb_snap_writer_write_fd(struct fb_snap_writer *w, int fd);

void fb_snap_writer_free(struct fb_snap_writer *w);

/* --- reading --------------------------------------------------------- */

struct fb_snap_section {
	uint32_t type, index, version;
	uint64_t len;
	const uint8_t *data;	/* into the snapshot's buffer, 8-aligned */
};

struct fb_snap {
	uint32_t version, flags;
	struct fb_snap_cpu cpu;
	uint64_t created;	/* seconds since the epoch */
	uint32_t nr_sections;
	struct fb_snap_section *sections;
	uint8_t *buf;		/* the whole file */
	size_t buf_len;
};

/* Skip the CPU check (merges, inspection: nothing will run). */
#define FB_SNAP_READ_ANY_CPU 0x1u

/* Reads and validates a whole state file: magic, version (a newer one is
 * refused), header CRC, flags, the CPU (vendor, family and model must be
 * this host's), the section count and every section's length against the
 * caps and the file, each section's CRC, zero padding, no trailing bytes.
 * On failure nothing is returned and fb_last_error() has one line. */
int fb_snap_read(const char *path, struct fb_snap **out);
int fb_snap_read_flags(const char *path, unsigned flags, struct fb_snap **out);
/* The same from fd, read from its offset to its end; path only names it
 * in messages. */
int fb_snap_read_fd(int fd, const char *path, unsigned flags,
		    struct fb_snap **out);

/* The index-th section of a type (-ENOENT, without a message, if there is
 * none). version may be NULL. */
int fb_snap_section_at(const struct fb_snap *snap, uint32_t type,
		       uint32_t index, uint32_t *version, const void **data,
		       uint64_t *len);
/* The first section of a type. */
int fb_snap_section(const struct fb_snap *snap, uint32_t type,
		    const void **data, uint64_t *len);
/* How many sections of a type. */
uint32_t fb_snap_section_count(const struct fb_snap *snap, uint32_t type);

void fb_snap_free(struct fb_snap *snap);

/* --- snapshot directories -------------------------------------------- */

/* Creates "<final_path>.tmp-XXXXXX" (mode 0700) next to final_path, so
 * the rename stays on one filesystem; *tmp is malloc'd, the caller frees
 * it after commit or abort. */
int fb_snap_dir_begin(const char *final_path, char **tmp);

#define FB_SNAP_DIR_REPLACE 0x1u

/* fsyncs every file in tmp and tmp itself, renames tmp to final_path
 * (an existing final_path is refused with -EEXIST unless
 * FB_SNAP_DIR_REPLACE: then the two are exchanged atomically and the old
 * one removed), and fsyncs the parent directory. On failure tmp is left
 * for the caller to abort. */
int fb_snap_dir_commit(const char *tmp, const char *final_path,
		       unsigned flags);

/* Removes tmp and everything in it. */
int fb_snap_dir_abort(const char *tmp);

/* Removes a directory tree (snapshot dirs are flat; used by abort and
 * by replace). */
int fb_snap_remove_tree(const char *path);

#endif
