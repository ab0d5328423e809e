/* /metrics in Prometheus text format: boxes by state, latency histograms
 * of creates, forks and pool acquires, responses by status, the host's
 * MemAvailable and what KSM saves, and each pool's idle and out. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "host/ksm.h"

static const double bounds[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
				 60, 120 };
#define NR_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

static const char *const hist_names[FBD_H_NR] = {
	[FBD_H_CREATE] = "forkbox_box_create_seconds",
	[FBD_H_FORK] = "forkbox_fork_seconds",
	[FBD_H_ACQUIRE] = "forkbox_pool_acquire_seconds",
};
static const char *const hist_help[FBD_H_NR] = {
	[FBD_H_CREATE] = "Request to ready of boxes booted or restored",
	[FBD_H_FORK] = "Request to every child ready, per fork request",
	[FBD_H_ACQUIRE] = "Request to a box handed out of a pool",
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned long long bucket[NR_BOUNDS];
	unsigned long long count;
	double sum;
} hist[FBD_H_NR];
static unsigned long long responses[6]; /* by status / 100 */

void fbd_observe(enum fbd_hist h, double seconds)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < NR_BOUNDS; i++)
		if (seconds <= bounds[i])
			hist[h].bucket[i]++;
	hist[h].count++;
	hist[h].sum += seconds;
	pthread_mutex_unlock(&lock);
}

void fbd_count_response(unsigned status)
{
	pthread_mutex_lock(&lock);
	responses[status / 100 < 6 ? status / 100 : 0]++;
	pthread_mutex_unlock(&lock);
}

static int count_state(const struct fb_box_info *info, void *opaque)
{
	((unsigned *)opaque)[info->state]++;
	return 0;
}

static void pool_line(void *opaque, const char *pool, unsigned idle,
		      unsigned out)
{
	fprintf(opaque, "forkbox_pool_idle_boxes{pool=\"%s\"} %u\n"
		"forkbox_pool_out_boxes{pool=\"%s\"} %u\n", pool, idle, pool,
		out);
}

static long long mem_available_bytes(void)
{
	char line[256];
	long long kib = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib * 1024;
}

enum MHD_Result fbd_metrics(struct fbd_req *r)
{
	static const enum fb_box_state states[] = {
		FB_BOX_STARTING, FB_BOX_RUNNING, FB_BOX_PAUSED, FB_BOX_DEAD };
	unsigned by_state[FB_BOX_DEAD + 1] = { 0 };
	struct fb_ksm_status ksm;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	long long avail;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return MHD_NO;
	fb_box_list(count_state, by_state);
	fprintf(f, "# HELP forkbox_boxes Boxes on this host by state\n"
		"# TYPE forkbox_boxes gauge\n");
	for (unsigned i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		fprintf(f, "forkbox_boxes{state=\"%s\"} %u\n",
			fb_box_state_name(states[i]), by_state[states[i]]);
	pthread_mutex_lock(&lock);
	for (unsigned h = 0; h < FBD_H_NR; h++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", hist_names[h],
			hist_help[h], hist_names[h]);
		for (unsigned i = 0; i < NR_BOUNDS; i++)
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", hist_names[h],
				bounds[i], hist[h].bucket[i]);
		fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n"
			"%s_count %llu\n", hist_names[h], hist[h].count,
			hist_names[h], hist[h].sum, hist_names[h],
			hist[h].count);
	}
	fprintf(f, "# HELP forkbox_http_responses_total Responses by status "
		"class\n# TYPE forkbox_http_responses_total counter\n");
	for (unsigned i = 1; i < 6; i++)
		fprintf(f, "forkbox_http_responses_total{code=\"%uxx\"} %llu\n",
			i, responses[i]);
	pthread_mutex_unlock(&lock);
	avail = mem_available_bytes();
	if (avail >= 0)
		fprintf(f, "# HELP forkbox_host_mem_available_bytes The host's "
			"MemAvailable\n# TYPE forkbox_host_mem_available_bytes "
			"gauge\nforkbox_host_mem_available_bytes %lld\n", avail);
	if (fb_ksm_status_read(fb_ksm_sysfs_dir(), &ksm) == 0)
		fprintf(f, "# HELP forkbox_ksm_pages_sharing KSM's "
			"pages_sharing (host-wide)\n# TYPE "
			"forkbox_ksm_pages_sharing gauge\n"
			"forkbox_ksm_pages_sharing %lld\n"
			"# HELP forkbox_ksm_saved_bytes Memory KSM saves "
			"(pages_sharing times the page size)\n# TYPE "
			"forkbox_ksm_saved_bytes gauge\n"
			"forkbox_ksm_saved_bytes %lld\n",
			(long long)ksm.pages_sharing,
			(long long)ksm.pages_sharing * ksm.page_size);
	fprintf(f, "# HELP forkbox_pool_idle_boxes Ready boxes waiting in a "
		"pool\n# TYPE forkbox_pool_idle_boxes gauge\n"
		"# HELP forkbox_pool_out_boxes Boxes handed out of a pool, "
		"alive\n# TYPE forkbox_pool_out_boxes gauge\n");
	fbd_pools_metrics(pool_line, f);
	if (fclose(f) != 0) {
		free(buf);
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; version=0.0.4");
	fbd_count_response(200);
	ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
