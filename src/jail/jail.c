/* The jail's two steps (see jail.h for why two, and where they run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/error.h"

uid_t fb_jail_box_uid(const char *box_id)
{
	char hex[8];

	snprintf(hex, sizeof(hex), "%.7s", box_id);
	return (uid_t)(FB_JAIL_ID_BASE + strtoul(hex, NULL, 16));
}

void fb_jail_config_for(struct fb_jail_config *cfg, const char *box_id,
			const char *box_dir, uint64_t mem_mib, unsigned cpus)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->box_dir = box_dir;
	cfg->box_id = box_id;
	cfg->uid = fb_jail_box_uid(box_id);
	cfg->gid = (gid_t)cfg->uid;
	cfg->mem_max = (FB_JAIL_MEM_RAM_TIMES * mem_mib +
			FB_JAIL_MEM_OVERHEAD_MIB) << 20;
	cfg->cpu_quota_us = (uint64_t)cpus * FB_JAIL_CPU_PERIOD_US +
			    FB_JAIL_IO_QUOTA_US;
	cfg->pids_max = cpus + FB_JAIL_PIDS_SPARE;
}

int fb_jail_prepare(const struct fb_jail_config *cfg)
{
	int err;

	if (geteuid() != 0)
		return fb_errorf(-EPERM, "the jail needs root (a cgroup, "
				 "namespaces, a uid of the box's own); run as "
				 "root, or pass --no-jail (no jail: for "
				 "debugging only)");
	err = fb_jail_cgroup_setup(cfg);
	if (!err)
		err = fb_jail_unshare();
	return err;
}

/* The box's uid owns its directory (it writes "ready" and "exit" there
 * and removes its sockets at the end) and the sockets in it that the VMM
 * connects to for the guest (<boxdir>/vsock.sock_<port>). The files it
 * already holds open (logs, lock) stay root's. */
static int give_box_dir(const struct fb_jail_config *cfg)
{
	DIR *d;
	struct dirent *e;

	if (chown(cfg->box_dir, cfg->uid, cfg->gid) < 0)
		return fb_errorf(-errno, "chown %s: %s", cfg->box_dir,
				 strerror(errno));
	d = opendir(cfg->box_dir);
	if (!d)
		return fb_errorf(-errno, "opendir %s: %s", cfg->box_dir,
				 strerror(errno));
	while ((e = readdir(d))) {
		struct stat st;

		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISSOCK(st.st_mode))
			(void)fchownat(dirfd(d), e->d_name, cfg->uid, cfg->gid,
				       AT_SYMLINK_NOFOLLOW);
	}
	closedir(d);
	return 0;
}

int fb_jail_enter(const struct fb_jail_config *cfg)
{
	int err = give_box_dir(cfg);

	if (!err)
		err = fb_jail_pivot(cfg->box_dir);
	if (!err)
		err = fb_jail_drop_privileges(cfg->uid, cfg->gid);
	if (!err)
		err = fb_jail_seccomp();
	if (err < 0)
		return fb_errorf(err, "jail: %s", fb_last_error());
	return 0;
}
