/* Can this host's KVM run an unmodified Linux guest? It needs hardware
 * virtualization (VMX or SVM) under KVM. KVM-PVM, a software KVM that runs
 * only PVM-aware guests, has /dev/kvm but cannot: Linux dies early in the
 * emulator. Tell that apart at once instead of hanging in it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "forkbox/forkbox.h"
#include "util/error.h"

static int cpu_has_hw_virt(void)
{
	char line[4096];
	int found = 0;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	return found;
}

int fb_host_check(void)
{
	const char *way_out = "run it in the lab (scripts/lab -- forkbox ...), "
			      "or on a host with VMX/SVM";
	int fd, hw;

	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return fb_errorf(-ENOTSUP, "this host's KVM is KVM-PVM, which "
				 "cannot run an unmodified Linux guest: %s",
				 way_out);
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fb_errorf(-ENODEV, "open /dev/kvm: %s: this host cannot "
				 "run VMs; %s", strerror(errno), way_out);
	close(fd);
	hw = cpu_has_hw_virt();
	if (hw == 0)
		return fb_errorf(-ENOTSUP, "this CPU has no VMX or SVM, so KVM "
				 "cannot run an unmodified Linux guest: %s",
				 way_out);
	return 0;
}
