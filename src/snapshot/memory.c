/* Guest memory in snapshots: full and diff images, the chain of diffs
 * down to a full snapshot, FILE-mode restore (MAP_PRIVATE, shared page
 * cache) and merge. UFFD mode is uffd.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/chain.h"
#include "snapshot/format.h"
#include "snapshot/memory.h"
#include "snapshot/pages.h"
#include "snapshot/snap_util.h"
#include "util/error.h"
#include "util/le.h"
#include "vmm/guest_mem.h"

#define PAGE FB_SNAP_PAGE_SIZE

/* memory.diff header offsets (the first 64 bytes of its first page). */
#define D_MAGIC 0
#define D_VERSION 8
#define D_PAGE_SIZE 12
#define D_TOTAL 16
#define D_PRESENT 24
#define D_BITMAP_CRC 32
#define D_HEADER_CRC 36
#define D_BITMAP_OFF 40
#define D_DATA_OFF 48
#define D_RESERVED 56

/* Pages a diff may cover: 4 PiB of guest RAM; keeps every sum below in
 * 64 bits. */
#define MAX_DIFF_PAGES (1ull << 40)

/* FILE mode maps each run of a diff's pages with its own MAP_FIXED; past
 * this many runs in a chain (vm.max_map_count is 65530 by default) the
 * rest are copied into the private mapping instead. */
#define MAX_FIXED_RUNS 16384

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Writes npages pages from src to fd at off, leaving all-zero pages as
 * holes (the file was sized with ftruncate first). */
static int write_sparse(int fd, const uint8_t *src, uint64_t npages,
			uint64_t off, const char *what)
{
	uint64_t i = 0;

	while (i < npages) {
		uint64_t start, n;
		int err;

		while (i < npages && fb_page_is_zero(src + i * PAGE))
			i++;
		start = i;
		/* Runs of at most 16 MiB per write. */
		while (i < npages && i - start < 4096 &&
		       !fb_page_is_zero(src + i * PAGE))
			i++;
		n = i - start;
		if (!n)
			break;
		err = fb_pwrite_full(fd, src + start * PAGE, n * PAGE,
				  off + start * PAGE, what);
		if (err)
			return err;
	}
	return 0;
}

/* The guest memory must be one host mapping, regions back to back. */
static int check_mem(const struct fb_guest_mem *mem)
{
	uint64_t off = 0;

	if (!mem->mapping || !mem->ram_size || mem->ram_size % PAGE ||
	    mem->mapping_size < mem->ram_size)
		return fb_errorf(-EINVAL, "snapshot: guest memory of %llu bytes "
				 "is not a whole number of pages",
				 (unsigned long long)mem->ram_size);
	for (int i = 0; i < mem->nr_regions; i++) {
		if (mem->regions[i].host != mem->mapping + off)
			return fb_errorf(-EINVAL, "snapshot: guest memory "
					 "region %d is not where the mapping "
					 "puts it", i);
		off += mem->regions[i].size;
	}
	if (off != mem->ram_size)
		return fb_errorf(-EINVAL, "snapshot: guest memory regions do "
				 "not add up to its size");
	return 0;
}

static int create_at(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0600);

	if (fd < 0)
		return fb_errorf(-errno, "create snapshot file %s: %s", name,
				 strerror(errno));
	return fd;
}

static int write_full_image(int fd, const uint8_t *host, uint64_t size)
{
	if (ftruncate(fd, (off_t)size) < 0)
		return fb_errorf(-errno, "ftruncate memory to %llu bytes: %s",
				 (unsigned long long)size, strerror(errno));
	return write_sparse(fd, host, size / PAGE, 0, "snapshot memory");
}

int fb_snap_mem_save_full(const struct fb_guest_mem *mem, int dir_fd)
{
	int fd, err;

	err = check_mem(mem);
	if (err)
		return err;
	fd = create_at(dir_fd, FB_SNAP_FILE_MEMORY);
	if (fd < 0)
		return fd;
	err = write_full_image(fd, mem->mapping, mem->ram_size);
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close snapshot memory: %s",
				strerror(errno));
	if (err)
		unlinkat(dir_fd, FB_SNAP_FILE_MEMORY, 0);
	return err;
}

static int write_parent(int dir_fd, const char *parent_path)
{
	size_t len = strlen(parent_path);
	int fd, err;

	if (!len || len >= PATH_MAX || strchr(parent_path, '\n'))
		return fb_errorf(-EINVAL, "snapshot parent path \"%.80s\" must "
				 "be one line of 1 to %d bytes", parent_path,
				 PATH_MAX - 1);
	fd = create_at(dir_fd, FB_SNAP_FILE_PARENT);
	if (fd < 0)
		return fd;
	err = fb_pwrite_full(fd, parent_path, len, 0, "snapshot parent");
	if (!err)
		err = fb_pwrite_full(fd, "\n", 1, len, "snapshot parent");
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close snapshot parent: %s",
				strerror(errno));
	return err;
}

int fb_snap_mem_save_diff(const struct fb_guest_mem *mem,
			  const uint64_t *dirty_bitmap, int dir_fd,
			  const char *parent_path)
{
	uint64_t pages, words, bm_bytes, data_off, present = 0, k, p;
	uint8_t head[PAGE];
	uint64_t *bm;
	int fd, err;

	err = check_mem(mem);
	if (err)
		return err;
	pages = mem->ram_size / PAGE;
	words = (pages + 63) / 64;
	bm_bytes = words * 8;
	data_off = PAGE + round_up(bm_bytes, PAGE);
	bm = malloc(bm_bytes);
	if (!bm)
		return fb_errorf(-ENOMEM, "snapshot diff: out of memory for a "
				 "%llu-byte bitmap",
				 (unsigned long long)bm_bytes);
	memcpy(bm, dirty_bitmap, bm_bytes);
	if (pages % 64)
		bm[words - 1] &= (1ull << (pages % 64)) - 1;
	for (uint64_t i = 0; i < words; i++)
		present += (uint64_t)__builtin_popcountll(bm[i]);

	memset(head, 0, sizeof(head));
	memcpy(head + D_MAGIC, FB_SNAP_DIFF_MAGIC, 8);
	fb_put_le32(head + D_VERSION, FB_SNAP_DIFF_VERSION);
	fb_put_le32(head + D_PAGE_SIZE, PAGE);
	fb_put_le64(head + D_TOTAL, pages);
	fb_put_le64(head + D_PRESENT, present);
	fb_put_le32(head + D_BITMAP_CRC, fb_snap_crc32(0, bm, bm_bytes));
	fb_put_le64(head + D_BITMAP_OFF, PAGE);
	fb_put_le64(head + D_DATA_OFF, data_off);
	fb_put_le32(head + D_HEADER_CRC,
		    fb_snap_crc32(0, head, FB_SNAP_DIFF_HEADER_SIZE));

	fd = create_at(dir_fd, FB_SNAP_FILE_DIFF);
	if (fd < 0) {
		free(bm);
		return fd;
	}
	if (ftruncate(fd, (off_t)(data_off + present * PAGE)) < 0)
		err = fb_errorf(-errno, "ftruncate memory.diff: %s",
				strerror(errno));
	if (!err)
		err = fb_pwrite_full(fd, head, sizeof(head), 0, "memory.diff");
	if (!err)
		err = fb_pwrite_full(fd, bm, bm_bytes, PAGE, "memory.diff");
	/* The k-th present page goes to data_off + k pages; runs of dirty
	 * pages are runs in the file too. */
	for (p = 0, k = 0; !err && p < pages;) {
		uint64_t start = fb_next_bit(bm, pages, p, 1);
		uint64_t end = fb_next_bit(bm, pages, start, 0);

		if (start == pages)
			break;
		err = write_sparse(fd, mem->mapping + start * PAGE,
				   end - start, data_off + k * PAGE,
				   "memory.diff");
		k += end - start;
		p = end;
	}
	if (close(fd) < 0 && !err)
		err = fb_errorf(-errno, "close memory.diff: %s",
				strerror(errno));
	free(bm);
	if (!err)
		err = write_parent(dir_fd, parent_path);
	if (err) {
		unlinkat(dir_fd, FB_SNAP_FILE_DIFF, 0);
		unlinkat(dir_fd, FB_SNAP_FILE_PARENT, 0);
	}
	return err;
}

/* --- the chain ------------------------------------------------------- */

static int load_diff(struct fb_snap_layer *l)
{
	const char *d = l->dir;
	uint8_t head[PAGE], copy[FB_SNAP_DIFF_HEADER_SIZE];
	uint64_t size, words, bm_bytes, present = 0, want;
	uint32_t version, crc;
	struct stat st;
	int err;

	if (fstat(l->fd, &st) < 0)
		return fb_errorf(-errno, "stat %s/memory.diff: %s", d,
				 strerror(errno));
	size = (uint64_t)st.st_size;
	if (size < PAGE)
		return fb_errorf(-EINVAL, "%s/memory.diff is truncated (%llu "
				 "bytes, the header page is %u)", d,
				 (unsigned long long)size, PAGE);
	err = fb_pread_full(l->fd, head, PAGE, 0, "memory.diff");
	if (err)
		return err;
	if (memcmp(head + D_MAGIC, FB_SNAP_DIFF_MAGIC, 8))
		return fb_errorf(-EINVAL, "%s/memory.diff is not a forkbox "
				 "memory diff (bad magic)", d);
	version = fb_le32(head + D_VERSION);
	if (version > FB_SNAP_DIFF_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s/memory.diff: version %u "
				 "is newer than this forkbox understands (%u)",
				 d, version, FB_SNAP_DIFF_VERSION);
	if (version != FB_SNAP_DIFF_VERSION)
		return fb_errorf(-EPROTONOSUPPORT, "%s/memory.diff: version %u "
				 "is not supported", d, version);
	memcpy(copy, head, sizeof(copy));
	fb_put_le32(copy + D_HEADER_CRC, 0);
	crc = fb_snap_crc32(0, copy, sizeof(copy));
	if (crc != fb_le32(head + D_HEADER_CRC))
		return fb_errorf(-EBADMSG, "%s/memory.diff: header is corrupt "
				 "(CRC mismatch)", d);
	for (unsigned i = FB_SNAP_DIFF_HEADER_SIZE; i < PAGE; i++)
		if (head[i])
			return fb_errorf(-EINVAL, "%s/memory.diff: header page "
					 "padding is not zero", d);
	if (fb_le32(head + D_PAGE_SIZE) != PAGE || fb_le64(head + D_RESERVED))
		return fb_errorf(-EINVAL, "%s/memory.diff: page size %u, only "
				 "%u is supported", d,
				 fb_le32(head + D_PAGE_SIZE), PAGE);
	l->total_pages = fb_le64(head + D_TOTAL);
	l->present = fb_le64(head + D_PRESENT);
	if (!l->total_pages || l->total_pages > MAX_DIFF_PAGES ||
	    l->present > l->total_pages)
		return fb_errorf(-EINVAL, "%s/memory.diff: %llu of %llu pages "
				 "present is not possible", d,
				 (unsigned long long)l->present,
				 (unsigned long long)l->total_pages);
	words = (l->total_pages + 63) / 64;
	bm_bytes = words * 8;
	l->data_off = PAGE + round_up(bm_bytes, PAGE);
	if (fb_le64(head + D_BITMAP_OFF) != PAGE ||
	    fb_le64(head + D_DATA_OFF) != l->data_off)
		return fb_errorf(-EINVAL, "%s/memory.diff: bitmap or data "
				 "offset is not where the format puts it", d);
	/* The file must hold exactly what the header says, before the
	 * bitmap (which the file then holds) is allocated. */
	want = l->data_off + l->present * PAGE;
	if (size < want)
		return fb_errorf(-EINVAL, "%s/memory.diff is truncated (%llu "
				 "bytes, %llu expected)", d,
				 (unsigned long long)size,
				 (unsigned long long)want);
	if (size > want)
		return fb_errorf(-EINVAL, "%s/memory.diff has %llu bytes of "
				 "trailing data", d,
				 (unsigned long long)(size - want));
	l->bitmap = malloc(bm_bytes);
	l->rank = malloc(words * sizeof(*l->rank));
	if (!l->bitmap || !l->rank)
		return fb_errorf(-ENOMEM, "%s/memory.diff: out of memory for "
				 "its bitmap", d);
	err = fb_pread_full(l->fd, l->bitmap, bm_bytes, PAGE, "memory.diff");
	if (err)
		return err;
	if (fb_snap_crc32(0, l->bitmap, bm_bytes) !=
	    fb_le32(head + D_BITMAP_CRC))
		return fb_errorf(-EBADMSG, "%s/memory.diff: page bitmap is "
				 "corrupt (CRC mismatch)", d);
	if (l->total_pages % 64 &&
	    l->bitmap[words - 1] >> (l->total_pages % 64))
		return fb_errorf(-EINVAL, "%s/memory.diff: bits set past the "
				 "last page", d);
	for (uint64_t i = 0; i < words; i++) {
		l->rank[i] = present;
		present += (uint64_t)__builtin_popcountll(l->bitmap[i]);
	}
	if (present != l->present)
		return fb_errorf(-EINVAL, "%s/memory.diff: the bitmap has %llu "
				 "pages, the header says %llu", d,
				 (unsigned long long)present,
				 (unsigned long long)l->present);
	return 0;
}

/* Reads dir_fd/parent into buf: one line, not empty. */
static int read_parent(int dir_fd, const char *dir, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = openat(dir_fd, FB_SNAP_FILE_PARENT, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return fb_errorf(-ENOENT, "snapshot %s has memory.diff but no "
				 "parent file", dir);
	if (fd < 0)
		return fb_errorf(-errno, "open %s/parent: %s", dir,
				 strerror(errno));
	n = read(fd, buf, len);
	close(fd);
	if (n < 0)
		return fb_errorf(-errno, "read %s/parent: %s", dir,
				 strerror(errno));
	if ((size_t)n == len)
		return fb_errorf(-ENAMETOOLONG, "%s/parent is too long", dir);
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (!n || strlen(buf) != (size_t)n || strchr(buf, '\n'))
		return fb_errorf(-EINVAL, "%s/parent must be one line: the "
				 "parent snapshot's path", dir);
	return 0;
}

void fb_snap_chain_free(struct fb_snap_chain *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nr; i++) {
		if (c->layers[i].fd >= 0)
			close(c->layers[i].fd);
		free(c->layers[i].bitmap);
		free(c->layers[i].rank);
	}
	free(c);
}

static int chain_walk(struct fb_snap_chain *c, const char *snap_dir)
{
	char cur[PATH_MAX], real[PATH_MAX], parent[PATH_MAX];
	const char *child = NULL;
	int err, dfd, fd;

	err = fb_fmt(cur, sizeof(cur), "%s", snap_dir);
	if (err)
		return err;
	for (;;) {
		struct fb_snap_layer *l = &c->layers[c->nr];

		if (!realpath(cur, real)) {
			if (errno == ENOENT && child)
				return fb_errorf(-ENOENT, "snapshot %s names "
						 "parent %s, which is missing",
						 child, parent);
			return fb_errorf(-errno, "snapshot %s: %s", cur,
					 strerror(errno));
		}
		for (int i = 0; i < c->nr; i++)
			if (!strcmp(c->layers[i].dir, real))
				return fb_errorf(-ELOOP, "snapshot %s: its "
						 "chain of parents loops back "
						 "to %s", snap_dir, real);
		dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return fb_errorf(-errno, "open snapshot %s: %s", real,
					 strerror(errno));
		snprintf(l->dir, sizeof(l->dir), "%s", real);
		l->fd = -1;
		fd = openat(dfd, FB_SNAP_FILE_MEMORY, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			l->fd = fd;
			l->is_base = 1;
			c->nr++;
			err = 0;
			if (faccessat(dfd, FB_SNAP_FILE_DIFF, F_OK, 0) == 0)
				err = fb_errorf(-EINVAL, "snapshot %s has both "
						"memory and memory.diff", real);
			close(dfd);
			return err;
		}
		if (errno != ENOENT) {
			err = fb_errorf(-errno, "open %s/memory: %s", real,
					strerror(errno));
			close(dfd);
			return err;
		}
		fd = openat(dfd, FB_SNAP_FILE_DIFF, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = errno == ENOENT ?
			      fb_errorf(-ENOENT, "snapshot %s has no memory "
					"file (memory or memory.diff)", real) :
			      fb_errorf(-errno, "open %s/memory.diff: %s", real,
					strerror(errno));
			close(dfd);
			return err;
		}
		if (c->nr == FB_SNAP_MAX_CHAIN) {
			close(fd);
			close(dfd);
			return fb_errorf(-ELOOP, "snapshot %s: more than %d "
					 "diffs above its full snapshot (merge "
					 "it)", snap_dir, FB_SNAP_MAX_CHAIN);
		}
		l->fd = fd;
		c->nr++;
		err = load_diff(l);
		if (!err)
			err = read_parent(dfd, real, parent, sizeof(parent));
		close(dfd);
		if (err)
			return err;
		if (parent[0] == '/')
			err = fb_fmt(cur, sizeof(cur), "%s", parent);
		else
			err = fb_fmt(cur, sizeof(cur), "%s/%s", real, parent);
		if (err)
			return err;
		child = l->dir;
	}
}

int fb_snap_chain_load(const char *snap_dir, uint64_t ram_size,
		       struct fb_snap_chain **out)
{
	struct fb_snap_chain *c;
	struct fb_snap_layer *base;
	struct stat st;
	int err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return fb_errorf(-ENOMEM, "snapshot chain: out of memory");
	err = chain_walk(c, snap_dir);
	if (err)
		goto fail;
	base = &c->layers[c->nr - 1];
	if (fstat(base->fd, &st) < 0) {
		err = fb_errorf(-errno, "stat %s/memory: %s", base->dir,
				strerror(errno));
		goto fail;
	}
	if (!ram_size)
		ram_size = (uint64_t)st.st_size;
	if (!ram_size || ram_size % PAGE) {
		err = fb_errorf(-EINVAL, "%s/memory: %llu bytes is not a whole "
				"number of pages", base->dir,
				(unsigned long long)ram_size);
		goto fail;
	}
	/* A shorter file would SIGBUS the guest on its missing pages. */
	if ((uint64_t)st.st_size != ram_size) {
		err = fb_errorf(-EINVAL, "%s/memory is %llu bytes, the VM has "
				"%llu (truncated, or another VM's)", base->dir,
				(unsigned long long)st.st_size,
				(unsigned long long)ram_size);
		goto fail;
	}
	c->ram_size = ram_size;
	c->pages = ram_size / PAGE;
	c->words = (c->pages + 63) / 64;
	for (int i = 0; i < c->nr - 1; i++) {
		if (c->layers[i].total_pages != c->pages) {
			err = fb_errorf(-EINVAL, "%s/memory.diff covers %llu "
					"pages, the VM has %llu",
					c->layers[i].dir,
					(unsigned long long)
					c->layers[i].total_pages,
					(unsigned long long)c->pages);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	fb_snap_chain_free(c);
	return err;
}

/* --- FILE mode ------------------------------------------------------- */

static uint64_t count_runs(const struct fb_snap_layer *l, uint64_t pages)
{
	uint64_t runs = 0, p = 0;

	while ((p = fb_next_bit(l->bitmap, pages, p, 1)) < pages) {
		runs++;
		p = fb_next_bit(l->bitmap, pages, p, 0);
	}
	return runs;
}

/* Puts one diff's pages over the mapping: mapped MAP_FIXED (shared page
 * cache) or, past the run budget, copied. */
static int apply_diff(uint8_t *host, const struct fb_snap_layer *l,
		      uint64_t pages, int copy)
{
	uint64_t p = 0, k = 0;

	while ((p = fb_next_bit(l->bitmap, pages, p, 1)) < pages) {
		uint64_t end = fb_next_bit(l->bitmap, pages, p, 0);
		uint64_t len = (end - p) * PAGE, off = l->data_off + k * PAGE;
		int err;

		if (copy) {
			err = fb_pread_full(l->fd, host + p * PAGE, len, off,
					 "memory.diff");
			if (err)
				return err;
		} else if (mmap(host + p * PAGE, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, l->fd,
				(off_t)off) == MAP_FAILED) {
			return fb_errorf(-errno, "mmap %s/memory.diff: %s",
					 l->dir, strerror(errno));
		}
		k += end - p;
		p = end;
	}
	return 0;
}

static int file_map(struct fb_snap_chain *c, struct fb_snap_mem **out)
{
	struct fb_snap_mem *m;
	uint64_t runs = 0;
	int err = 0;

	m = calloc(1, sizeof(*m));
	if (!m)
		return fb_errorf(-ENOMEM, "snapshot restore: out of memory");
	m->mode = FB_SNAP_MEM_FILE;
	m->uffd = m->stop_fd = -1;
	m->size = c->ram_size;
	m->host = fb_guest_mem_map(c->ram_size, MAP_PRIVATE | MAP_NORESERVE,
				   c->layers[c->nr - 1].fd);
	if (m->host == MAP_FAILED) {
		err = fb_errorf(-errno, "mmap %s/memory (%llu MiB): %s",
				c->layers[c->nr - 1].dir,
				(unsigned long long)(c->ram_size >> 20),
				strerror(errno));
		free(m);
		return err;
	}
	/* Oldest diff first: a newer one's pages land over an older one's. */
	for (int i = c->nr - 2; i >= 0 && !err; i--) {
		uint64_t r = count_runs(&c->layers[i], c->pages);
		int copy = runs + r > MAX_FIXED_RUNS;

		if (!copy)
			runs += r;
		err = apply_diff(m->host, &c->layers[i], c->pages, copy);
	}
	if (err) {
		munmap(m->host, m->size);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

int fb_snap_mem_map(const char *snap_dir, uint64_t ram_size,
		    enum fb_snap_mem_mode mode, struct fb_snap_mem **out)
{
	struct fb_snap_chain *c;
	int err;

	*out = NULL;
	if (!ram_size || ram_size % PAGE)
		return fb_errorf(-EINVAL, "snapshot restore: %llu bytes of "
				 "RAM is not a whole number of pages",
				 (unsigned long long)ram_size);
	if (mode != FB_SNAP_MEM_FILE && mode != FB_SNAP_MEM_UFFD)
		return fb_errorf(-EINVAL, "snapshot restore: unknown memory "
				 "mode %d", (int)mode);
	err = fb_snap_chain_load(snap_dir, ram_size, &c);
	if (err)
		return err;
	if (mode == FB_SNAP_MEM_UFFD)
		return fb_snap_uffd_map(c, out);
	err = file_map(c, out);
	fb_snap_chain_free(c);	/* the mappings hold the files */
	return err;
}

uint8_t *fb_snap_mem_host(const struct fb_snap_mem *m)
{
	return m->host;
}

uint64_t fb_snap_mem_size(const struct fb_snap_mem *m)
{
	return m->size;
}

/* --- merge ----------------------------------------------------------- */

static int write_full_state(const char *newest, const char *tmp)
{
	char path[PATH_MAX];
	struct fb_snap_writer *w = NULL;
	struct fb_snap *snap;
	int err;

	err = fb_fmt(path, sizeof(path), "%s/%s", newest, FB_SNAP_FILE_STATE);
	if (err)
		return err;
	/* Merging runs nothing: any host may flatten a chain. */
	err = fb_snap_read_flags(path, FB_SNAP_READ_ANY_CPU, &snap);
	if (err)
		return err;
	err = fb_snap_writer_new(&w, FB_SNAP_F_FULL);
	if (err)
		goto out;
	fb_snap_writer_set_cpu(w, &snap->cpu);
	fb_snap_writer_set_created(w, snap->created);
	for (uint32_t i = 0; !err && i < snap->nr_sections; i++) {
		const struct fb_snap_section *s = &snap->sections[i];

		err = fb_snap_writer_add(w, s->type, s->version, s->data,
					 s->len);
	}
	if (!err)
		err = fb_fmt(path, sizeof(path), "%s/%s", tmp,
			     FB_SNAP_FILE_STATE);
	if (!err)
		err = fb_snap_writer_write(w, path);
out:
	fb_snap_writer_free(w);
	fb_snap_free(snap);
	return err;
}

/* Hard-links the newest snapshot's other files (disk layers, configs
 * that others add) into the merged one. */
static int link_others(const char *from, const char *to)
{
	static const char *const ours[] = {
		FB_SNAP_FILE_STATE, FB_SNAP_FILE_MEMORY, FB_SNAP_FILE_DIFF,
		FB_SNAP_FILE_PARENT,
	};
	struct dirent *de;
	DIR *d;
	int err = 0;

	d = opendir(from);
	if (!d)
		return fb_errorf(-errno, "opendir %s: %s", from,
				 strerror(errno));
	while (!err && (de = readdir(d))) {
		char src[PATH_MAX], dst[PATH_MAX];
		int skip = de->d_name[0] == '.';
		struct stat st;

		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
			skip |= !strcmp(de->d_name, ours[i]);
		if (skip)
			continue;
		err = fb_fmt(src, sizeof(src), "%s/%s", from, de->d_name);
		if (!err)
			err = fb_fmt(dst, sizeof(dst), "%s/%s", to, de->d_name);
		if (err)
			break;
		if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (link(src, dst) < 0)
			err = fb_errorf(-errno, "link %s to %s: %s", src, dst,
					strerror(errno));
	}
	closedir(d);
	return err;
}

int fb_snap_merge(const char *snap_dir)
{
	struct fb_snap_chain *c;
	struct fb_snap_mem *m = NULL;
	char *tmp = NULL;
	int err, dfd = -1, fd;

	err = fb_snap_chain_load(snap_dir, 0, &c);
	if (err)
		return err;
	if (c->nr == 1) {
		fb_snap_chain_free(c);
		return 0;
	}
	err = file_map(c, &m);
	if (!err)
		err = fb_snap_dir_begin(c->layers[0].dir, &tmp);
	if (!err) {
		dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			err = fb_errorf(-errno, "open %s: %s", tmp,
					strerror(errno));
	}
	if (!err) {
		fd = create_at(dfd, FB_SNAP_FILE_MEMORY);
		if (fd < 0) {
			err = fd;
		} else {
			err = write_full_image(fd, m->host, m->size);
			if (close(fd) < 0 && !err)
				err = fb_errorf(-errno, "close %s/memory: %s",
						tmp, strerror(errno));
		}
	}
	if (!err)
		err = write_full_state(c->layers[0].dir, tmp);
	if (!err)
		err = link_others(c->layers[0].dir, tmp);
	if (!err)
		err = fb_snap_dir_commit(tmp, c->layers[0].dir,
					 FB_SNAP_DIR_REPLACE);
	if (err && tmp) {
		char msg[512];

		/* Keep the first error's message, not the cleanup's. */
		snprintf(msg, sizeof(msg), "%s", fb_last_error());
		fb_snap_dir_abort(tmp);
		fb_errorf(err, "%s", msg);
	}
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	if (m)
		fb_snap_mem_release(m);
	fb_snap_chain_free(c);
	return err;
}
