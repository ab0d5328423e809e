#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "box/trace.h"
#include "util/error.h"
#include "util/file.h"
#include "vmm/vm.h"

#define TRACE_MAX_BYTES 4096 /* what a VMM writes is well under 1 KiB */

static const char *const host_keys[] = {
	[FB_TRACE_JAIL_PREPARED] = "jail_prepared_ms",
	[FB_TRACE_VM_CREATED] = "vm_created_ms",
	[FB_TRACE_STATE_SET] = "state_set_ms",
	[FB_TRACE_JAIL_ENTERED] = "jail_entered_ms",
	[FB_TRACE_VCPU_RUN] = "vcpu_run_ms",
	[FB_TRACE_HELLO] = "hello_ms",
};
_Static_assert(sizeof(host_keys) / sizeof(host_keys[0]) == FB_TRACE_HOST_MARKS,
	       "a key for every host mark");

static const char *const guest_keys[] = {
	[FB_AGENT_BOOT_INIT] = "guest_init_ms",
	[FB_AGENT_BOOT_MOUNTED] = "guest_mounted_ms",
	[FB_AGENT_BOOT_MODULES] = "guest_modules_ms",
	[FB_AGENT_BOOT_ROOT] = "guest_root_ms",
};
_Static_assert(sizeof(guest_keys) / sizeof(guest_keys[0]) == FB_AGENT_BOOT_MARKS,
	       "a key for every guest mark");

/* Which launch step ends each of the first host marks. */
static const enum fb_launch_step launch_step[] = {
	[FB_TRACE_JAIL_PREPARED] = FB_LAUNCH_JAIL_PREPARE,
	[FB_TRACE_VM_CREATED] = FB_LAUNCH_VM_CREATE,
	[FB_TRACE_STATE_SET] = FB_LAUNCH_STATE,
	[FB_TRACE_JAIL_ENTERED] = FB_LAUNCH_JAIL_ENTER,
};

void fb_box_trace_clear(struct fb_box_trace *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < FB_TRACE_HOST_MARKS; i++)
		t->host_ms[i] = -1;
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		t->guest_ms[i] = -1;
	t->guest_hello_ms = -1;
}

void fb_box_trace_collect(struct fb_box_trace *t, const struct fb_box_vm *b,
			  uint64_t vmm_start_ns, uint64_t prepared_ns)
{
	double start_ms = (double)vmm_start_ns / 1e6;
	uint64_t run_ns = b->vm ? fb_vm_first_run_ns(b->vm) : 0;

	fb_box_trace_clear(t);
	t->vmm_start_ns = vmm_start_ns;
	t->prepared_ns = prepared_ns;
	if (b->launch_at_ms > 0)
		for (unsigned i = 0; i < sizeof(launch_step) /
					 sizeof(launch_step[0]); i++)
			t->host_ms[i] = b->launch_at_ms +
					b->launch_ms[launch_step[i]] - start_ms;
	if (run_ns)
		t->host_ms[FB_TRACE_VCPU_RUN] = (double)run_ns / 1e6 - start_ms;
	if (b->hello_at_ms > 0)
		t->host_ms[FB_TRACE_HELLO] = b->hello_at_ms - start_ms;
	if (!b->guest_hello_ns)
		return;
	t->guest_hello_ms = (double)b->guest_hello_ns / 1e6;
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		if (b->guest_boot_ns[i])
			t->guest_ms[i] = (double)b->guest_boot_ns[i] / 1e6;
}

/* ---- the file --------------------------------------------------------- */

struct text {
	char buf[1024];
	size_t len;
};

static void add_line(struct text *x, const char *key, const char *fmt_value)
{
	int n = snprintf(x->buf + x->len, sizeof(x->buf) - x->len, "%s=%s\n",
			 key, fmt_value);

	/* The buffer fits every key; a cut would only lose the last lines. */
	if (n > 0 && (size_t)n < sizeof(x->buf) - x->len)
		x->len += (size_t)n;
}

static void add_ms(struct text *x, const char *key, double ms)
{
	char v[32];

	if (ms < 0)
		return; /* not recorded */
	snprintf(v, sizeof(v), "%.3f", ms);
	add_line(x, key, v);
}

static void add_ns(struct text *x, const char *key, uint64_t ns)
{
	char v[32];

	snprintf(v, sizeof(v), "%llu", (unsigned long long)ns);
	add_line(x, key, v);
}

int fb_box_trace_write(const char *dir, const struct fb_box_trace *t)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct text x = { .len = 0 };
	int fd, err;

	add_ns(&x, "vmm_start_ns", t->vmm_start_ns);
	if (t->prepared_ns)
		add_ns(&x, "prepared_ns", t->prepared_ns);
	for (unsigned i = 0; i < FB_TRACE_HOST_MARKS; i++)
		add_ms(&x, host_keys[i], t->host_ms[i]);
	add_ms(&x, "guest_hello_ms", t->guest_hello_ms);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		add_ms(&x, guest_keys[i], t->guest_ms[i]);

	err = fb_fmt(path, sizeof(path), "%s/%s", dir, FB_BOX_TRACE_NAME);
	if (!err)
		err = fb_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	if (err < 0)
		return err;
	/* Written whole under a temporary name, then renamed: a reader sees
	 * no trace or all of it. No fsync: it is for now, not for a crash,
	 * and it sits on the way to ready. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fb_errorf(-errno, "open %s: %s", tmp, strerror(errno));
	err = fb_write_full(fd, x.buf, x.len);
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return fb_errorf(err, "write %s: %s", path, strerror(-err));
	}
	return 0;
}

/* Finds key in keys[0..n): its index, or -1. */
static int key_index(const char *const *keys, unsigned n, const char *key,
		     size_t len)
{
	for (unsigned i = 0; i < n; i++)
		if (strlen(keys[i]) == len && !strncmp(keys[i], key, len))
			return (int)i;
	return -1;
}

static int parse_ns(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *end || *v == '-')
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_ms(const char *v, double *out)
{
	char *end;
	double ms;

	errno = 0;
	ms = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(ms) || ms < 0)
		return -EINVAL;
	*out = ms;
	return 0;
}

/* One "key=value" line (NUL-terminated, no newline) into t. */
static int parse_line(struct fb_box_trace *t, char *line, bool *have_start)
{
	char *eq = strchr(line, '=');
	const char *v;
	size_t klen;
	int i;

	if (!eq)
		return -EINVAL;
	klen = (size_t)(eq - line);
	v = eq + 1;
	if (klen == strlen("vmm_start_ns") && !strncmp(line, "vmm_start_ns", klen)) {
		*have_start = true;
		return parse_ns(v, &t->vmm_start_ns);
	}
	if (klen == strlen("prepared_ns") && !strncmp(line, "prepared_ns", klen))
		return parse_ns(v, &t->prepared_ns);
	if (klen == strlen("guest_hello_ms") &&
	    !strncmp(line, "guest_hello_ms", klen))
		return parse_ms(v, &t->guest_hello_ms);
	i = key_index(host_keys, FB_TRACE_HOST_MARKS, line, klen);
	if (i >= 0)
		return parse_ms(v, &t->host_ms[i]);
	i = key_index(guest_keys, FB_AGENT_BOOT_MARKS, line, klen);
	if (i >= 0)
		return parse_ms(v, &t->guest_ms[i]);
	return 0; /* a newer VMM's key */
}

static int parse_trace(struct fb_box_trace *t, char *text, const char *path)
{
	bool have_start = false;
	unsigned nr = 0;
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		nr++;
		if (parse_line(t, line, &have_start) < 0)
			return fb_errorf(-EINVAL, "%s: line %u: bad \"%.60s\"",
					 path, nr, line);
	}
	if (!have_start)
		return fb_errorf(-EINVAL, "%s: no vmm_start_ns", path);
	return 0;
}

int fb_box_trace_read(const char *dir, struct fb_box_trace *t)
{
	char path[PATH_MAX];
	struct fb_box_trace got;
	uint8_t *data;
	char *text;
	size_t len;
	int err;

	err = fb_fmt(path, sizeof(path), "%s/%s", dir, FB_BOX_TRACE_NAME);
	if (!err)
		err = fb_read_file(path, TRACE_MAX_BYTES, &data, &len);
	if (err < 0)
		return err;
	text = malloc(len + 1);
	if (!text) {
		free(data);
		return fb_errorf(-ENOMEM, "malloc for %s", path);
	}
	memcpy(text, data, len);
	text[len] = '\0';
	free(data);
	if (strlen(text) != len) {
		free(text);
		return fb_errorf(-EINVAL, "%s: a NUL byte in a text file", path);
	}
	fb_box_trace_clear(&got);
	err = parse_trace(&got, text, path);
	free(text);
	if (!err)
		*t = got;
	return err;
}

/* ---- phases ----------------------------------------------------------- */

struct phases {
	struct fb_trace_phase *out;
	unsigned n, max;
};

static void add_phase(struct phases *p, const char *what, double ms,
		      bool approx)
{
	if (p->n < p->max)
		p->out[p->n++] = (struct fb_trace_phase){ what, ms, approx };
}

/* A host mark, if recorded, as ms from the origin. */
static void add_host(struct phases *p, const struct fb_box_trace *t,
		     double vmm_ms, enum fb_trace_host_mark m, const char *what)
{
	if (t->host_ms[m] >= 0)
		add_phase(p, what, vmm_ms + t->host_ms[m], false);
}

static void add_guest(struct phases *p, const struct fb_box_trace *t,
		      double hello_ms, enum fb_agent_boot_mark m, const char *what)
{
	if (t->guest_ms[m] >= 0)
		add_phase(p, what, hello_ms - (t->guest_hello_ms - t->guest_ms[m]),
			  false);
}

/* The guest's side, aligned on its hello (hello_ms, from the origin). */
static void add_guest_phases(struct phases *p, const struct fb_box_trace *t,
			     double vmm_ms, double hello_ms)
{
	double entry = hello_ms - t->guest_hello_ms;
	double run = t->host_ms[FB_TRACE_VCPU_RUN];

	if (run >= 0 && entry < vmm_ms + run)
		entry = vmm_ms + run;
	add_phase(p, "guest kernel entry (~, from the guest's boot clock)",
		  entry, true);
	add_guest(p, t, hello_ms, FB_AGENT_BOOT_INIT, "guest PID 1 started");
	add_guest(p, t, hello_ms, FB_AGENT_BOOT_MOUNTED,
		  "basic filesystems mounted (/proc, /sys, /dev, /tmp)");
	add_guest(p, t, hello_ms, FB_AGENT_BOOT_MODULES, "modules loaded");
	add_guest(p, t, hello_ms, FB_AGENT_BOOT_ROOT,
		  "root disk mounted and switched to");
}

unsigned fb_box_trace_phases(const struct fb_box_trace *t, double origin_ms,
			     struct fb_trace_phase *out, unsigned max)
{
	struct phases p = { .out = out, .max = max };
	double vmm_ms = (double)t->vmm_start_ns / 1e6 - origin_ms;
	double hello_ms = vmm_ms + t->host_ms[FB_TRACE_HELLO];

	if (t->prepared_ns)
		add_phase(&p, "box directory and root disk ready",
			  (double)t->prepared_ns / 1e6 - origin_ms, false);
	add_phase(&p, "VMM process started", vmm_ms, false);
	add_host(&p, t, vmm_ms, FB_TRACE_JAIL_PREPARED,
		 "jail prepared (cgroup, namespaces)");
	add_host(&p, t, vmm_ms, FB_TRACE_VM_CREATED,
		 "VM created (KVM, memory, devices, kernel loaded)");
	/* No FB_TRACE_STATE_SET: a boot sets no state, and a restore's
	 * shows in the step to "jail entered". */
	add_host(&p, t, vmm_ms, FB_TRACE_JAIL_ENTERED, "jail entered");
	add_host(&p, t, vmm_ms, FB_TRACE_VCPU_RUN,
		 "vCPUs started (vCPU 0 in KVM_RUN)");
	if (t->host_ms[FB_TRACE_HELLO] >= 0 && t->guest_hello_ms >= 0)
		add_guest_phases(&p, t, vmm_ms, hello_ms);
	add_host(&p, t, vmm_ms, FB_TRACE_HELLO, "agent ready (HELLO)");
	return p.n;
}
