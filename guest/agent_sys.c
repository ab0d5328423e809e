/* The real versions of agent_sys.h, for the guest only: they change the
 * machine they run on (a host test links recording stand-ins instead). */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_sys.h"

int fbg_sys_sethostname(const char *name, size_t len)
{
	return sethostname(name, len) < 0 ? -errno : 0;
}

static int random_ioctl(unsigned long req, void *arg)
{
	int fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, req, arg) < 0)
		err = -errno;
	close(fd);
	return err;
}

int fbg_sys_add_entropy(const uint8_t *buf, size_t len)
{
	struct {
		struct rand_pool_info info;
		uint8_t data[FB_AGENT_MAX_ENTROPY];
	} pool;

	if (len > sizeof(pool.data))
		return -EINVAL;
	/* The host drew these from its own CSPRNG: credit them in full. */
	pool.info.entropy_count = (int)(len * 8);
	pool.info.buf_size = (int)len;
	memcpy(pool.info.buf, buf, len);
	return random_ioctl(RNDADDENTROPY, &pool);
}

int fbg_sys_reseed_crng(void)
{
#ifdef RNDRESEEDCRNG
	return random_ioctl(RNDRESEEDCRNG, NULL);
#else
	return -ENOTTY;
#endif
}

int fbg_sys_set_realtime(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u),
	};

	return clock_settime(CLOCK_REALTIME, &ts) < 0 ? -errno : 0;
}

/* Temp file, fsync, rename: a reader sees the old id or the new one. */
int fbg_sys_store_box_id(const char *id, size_t len)
{
	char tmp[sizeof(FB_AGENT_BOX_ID_PATH) + 32];
	int fd, err = 0;

	/* Per process: two REINJECTs at once must not share a temp file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", FB_AGENT_BOX_ID_PATH, (int)getpid());

	if ((mkdir("/run", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(FB_AGENT_BOX_ID_DIR, 0755) < 0 && errno != EEXIST))
		return -errno;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, id, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0)
		err = errno ? -errno : -EIO;
	close(fd);
	if (!err && rename(tmp, FB_AGENT_BOX_ID_PATH) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
