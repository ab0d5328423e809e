/* UFFD-mode restore: guest memory is anonymous and empty; a handler
 * thread answers each missing-page fault with the page from the newest
 * layer of the chain that has it (UFFDIO_COPY), or the zero page
 * (UFFDIO_ZEROPAGE) when that page is all zeros.
 *
 * Only MISSING-mode registration on anonymous memory and no UFFD_FEATURE_*
 * bits are used (Linux >= 4.3). The descriptor must handle faults taken in
 * the kernel too (KVM touches guest memory from there), so it is not
 * UFFD_USER_MODE_ONLY: that needs CAP_SYS_PTRACE or
 * vm.unprivileged_userfaultfd=1 for the syscall, or access to
 * /dev/userfaultfd (Linux >= 6.1), which is tried second. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snapshot/chain.h"
#include "snapshot/memory.h"
#include "util/error.h"
#include "vmm/guest_mem.h"

#define PAGE FB_SNAP_PAGE_SIZE

static int open_uffd(void)
{
	int fd, dev;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	if (errno != EPERM && errno != ENOSYS)
		return fb_errorf(-errno, "userfaultfd: %s", strerror(errno));
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return fb_errorf(-EPERM, "userfaultfd: not permitted (needs "
				 "CAP_SYS_PTRACE, vm.unprivileged_userfaultfd"
				 "=1 or access to /dev/userfaultfd: %s)",
				 strerror(errno));
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = fb_errorf(-errno, "USERFAULTFD_IOC_NEW: %s",
			       strerror(errno));
	close(dev);
	return fd;
}

static void handler_fail(struct fb_snap_mem *m, int err, const char *what)
{
	snprintf(m->msg, sizeof(m->msg), "uffd handler: %.400s: %s", what,
		 strerror(-err));
	__atomic_store_n(&m->err, err, __ATOMIC_RELEASE);
}

/* Reads page `page` of the restored memory from the chain into buf. */
static int read_page(struct fb_snap_chain *c, uint64_t page, uint8_t *buf,
		     const char **what)
{
	const struct fb_snap_layer *l = &c->layers[c->nr - 1];
	uint64_t off = page * PAGE;
	size_t done = 0;

	for (int i = 0; i < c->nr - 1; i++) {
		if (fb_snap_layer_has(&c->layers[i], page)) {
			l = &c->layers[i];
			off = fb_snap_layer_off(l, page);
			break;
		}
	}
	*what = l->dir;
	while (done < PAGE) {
		ssize_t n = pread(l->fd, buf + done, PAGE - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;

	for (unsigned i = 0; i < PAGE / 8; i++)
		acc |= w[i];
	return acc == 0;
}

static int serve(struct fb_snap_mem *m, uint64_t addr, uint8_t *buf)
{
	uint64_t page = (addr - (uint64_t)(uintptr_t)m->host) / PAGE;
	uint64_t dst = (uint64_t)(uintptr_t)m->host + page * PAGE;
	const char *what;
	int err, tries = 0;

	if (addr < (uint64_t)(uintptr_t)m->host || page >= m->size / PAGE)
		return 0;	/* not ours */
	err = read_page(m->chain, page, buf, &what);
	if (err) {
		handler_fail(m, err, what);
		return err;
	}
	/* Counted before the ioctl wakes the faulting thread, so that a
	 * thread that touched a page sees it counted. */
	__atomic_add_fetch(&m->faults, 1, __ATOMIC_RELAXED);
	for (;;) {
		int r;

		if (page_is_zero(buf)) {
			struct uffdio_zeropage z = {
				.range = { .start = dst, .len = PAGE },
			};
			r = ioctl(m->uffd, UFFDIO_ZEROPAGE, &z);
		} else {
			struct uffdio_copy cp = {
				.dst = dst, .src = (uint64_t)(uintptr_t)buf,
				.len = PAGE,
			};
			r = ioctl(m->uffd, UFFDIO_COPY, &cp);
		}
		/* EEXIST: another fault on the page was served first. */
		if (r == 0 || errno == EEXIST)
			break;
		if (errno == EAGAIN && ++tries < 100)
			continue;
		err = -errno;
		handler_fail(m, err, page_is_zero(buf) ? "UFFDIO_ZEROPAGE" :
					 "UFFDIO_COPY");
		return err;
	}
	return 0;
}

static void *handler(void *arg)
{
	struct fb_snap_mem *m = arg;
	struct uffd_msg msgs[16];
	uint8_t *buf;

	buf = aligned_alloc(PAGE, PAGE);
	if (!buf) {
		handler_fail(m, -ENOMEM, "malloc");
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = m->uffd, .events = POLLIN },
			{ .fd = m->stop_fd, .events = POLLIN },
		};
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			handler_fail(m, -errno, "poll");
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN)) {
			if (p[0].revents & (POLLERR | POLLHUP)) {
				handler_fail(m, -EIO, "userfaultfd hung up");
				break;
			}
			continue;
		}
		n = read(m->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			handler_fail(m, -errno, "read userfaultfd");
			break;
		}
		/* After a failure, stop serving: the faulting thread waits
		 * until the VMM, told by fb_snap_mem_status(), stops it. */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
			    serve(m, msgs[i].arg.pagefault.address, buf))
				goto out;
	}
out:
	free(buf);
	return NULL;
}

int fb_snap_uffd_map(struct fb_snap_chain *c, struct fb_snap_mem **out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg;
	const uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE);
	struct fb_snap_mem *m;
	int err;

	m = calloc(1, sizeof(*m));
	if (!m) {
		fb_snap_chain_free(c);
		return fb_errorf(-ENOMEM, "snapshot restore: out of memory");
	}
	m->mode = FB_SNAP_MEM_UFFD;
	m->chain = c;
	m->size = c->ram_size;
	m->stop_fd = -1;
	m->host = MAP_FAILED;
	m->uffd = open_uffd();
	if (m->uffd < 0) {
		err = m->uffd;
		goto fail;
	}
	if (ioctl(m->uffd, UFFDIO_API, &api) < 0) {
		err = fb_errorf(-errno, "UFFDIO_API: %s", strerror(errno));
		goto fail;
	}
	m->host = fb_guest_mem_map(m->size, MAP_PRIVATE | MAP_ANONYMOUS |
				   MAP_NORESERVE, -1);
	if (m->host == MAP_FAILED) {
		err = fb_errorf(-errno, "mmap of %llu MiB guest memory: %s",
				(unsigned long long)(m->size >> 20),
				strerror(errno));
		goto fail;
	}
	reg = (struct uffdio_register){
		.range = { .start = (uint64_t)(uintptr_t)m->host,
			   .len = m->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(m->uffd, UFFDIO_REGISTER, &reg) < 0) {
		err = fb_errorf(-errno, "UFFDIO_REGISTER: %s", strerror(errno));
		goto fail;
	}
	if ((reg.ioctls & need) != need) {
		err = fb_errorf(-EOPNOTSUPP, "userfaultfd: UFFDIO_COPY or "
				"UFFDIO_ZEROPAGE not offered for anonymous "
				"memory");
		goto fail;
	}
	m->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (m->stop_fd < 0) {
		err = fb_errorf(-errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	err = pthread_create(&m->thread, NULL, handler, m);
	if (err) {
		err = fb_errorf(-err, "pthread_create (uffd handler): %s",
				strerror(err));
		goto fail;
	}
	m->thread_started = 1;
	*out = m;
	return 0;
fail:
	fb_snap_mem_release(m);
	return err;
}

int fb_snap_mem_status(const struct fb_snap_mem *m)
{
	int err = __atomic_load_n(&m->err, __ATOMIC_ACQUIRE);

	if (err)
		return fb_errorf(err, "%s", m->msg);
	return 0;
}

uint8_t *fb_snap_mem_take_host(struct fb_snap_mem *m)
{
	m->host_taken = 1;
	return m->host;
}

uint64_t fb_snap_mem_faults(const struct fb_snap_mem *m)
{
	return __atomic_load_n(&m->faults, __ATOMIC_RELAXED);
}

void fb_snap_mem_release(struct fb_snap_mem *m)
{
	if (!m)
		return;
	if (m->thread_started) {
		uint64_t one = 1;

		if (write(m->stop_fd, &one, sizeof(one)) != sizeof(one))
			abort();	/* an eventfd write cannot fail here */
		pthread_join(m->thread, NULL);
	}
	/* Closing the userfaultfd unregisters the range and wakes any
	 * thread still waiting on a fault. */
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->stop_fd >= 0)
		close(m->stop_fd);
	if (m->host && m->host != MAP_FAILED && !m->host_taken)
		munmap(m->host, m->size);
	fb_snap_chain_free(m->chain);
	free(m);
}
