/* forkboxd: the daemon's command line, start and stop. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/server.h"
#include "forkbox/forkbox.h"
#include "util/clock.h"
#include "util/error.h"

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static bool stopping;

double fbd_mono_s(void)
{
	return fb_now_ms() / 1e3;
}

bool fbd_stopping(void)
{
	bool s;

	pthread_mutex_lock(&stop_lock);
	s = stopping;
	pthread_mutex_unlock(&stop_lock);
	return s;
}

bool fbd_wait_ms(unsigned ms)
{
	struct timespec until;
	bool s;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&stop_lock);
	while (!stopping &&
	       pthread_cond_timedwait(&stop_cond, &stop_lock, &until) == 0)
		;
	s = stopping;
	pthread_mutex_unlock(&stop_lock);
	return !s;
}

static void set_stopping(void)
{
	pthread_mutex_lock(&stop_lock);
	stopping = true;
	pthread_cond_broadcast(&stop_cond);
	pthread_mutex_unlock(&stop_lock);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: forkboxd [--socket PATH] [--tcp HOST:PORT --token-file FILE]\n"
"\n"
"Serves forkbox over HTTP/1.1 + JSON (docs/api.yaml): boxes, exec with\n"
"streamed output, files, images, warm pools, /metrics. Runs in the\n"
"foreground; prints \"forkboxd: ready on PATH\" on stdout once it\n"
"listens. SIGTERM or SIGINT stop it; the boxes run on, and a daemon\n"
"started again finds them (and its pools) where they were.\n"
"\n"
"options:\n"
"  --socket PATH      the Unix socket (default $FORKBOX_SOCKET, else\n"
"                     $FORKBOX_HOME/" FBD_SOCKET_NAME "); mode 0600, and a peer\n"
"                     whose uid is neither ours nor root is refused\n"
"  --tcp HOST:PORT    listen on TCP too; every request there needs\n"
"                     'Authorization: Bearer TOKEN'\n"
"  --token-file FILE  the token (its first line); needed with --tcp\n");
}

static int read_token(const char *path, char *buf, size_t len)
{
	struct stat st;
	FILE *f = fopen(path, "re");

	if (!f)
		return fb_errorf(-errno, "--token-file %s: %s", path,
				 strerror(errno));
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "forkboxd: warning: %s is readable by others "
			"(chmod 600 it)\n", path);
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) < 16)
		return fb_errorf(-EINVAL, "--token-file %s: the token must be "
				 "16 characters or more", path);
	return 0;
}

/* $FORKBOX_HOME and its parents, as the CLI would make them. */
static int make_home(char *home, size_t len)
{
	int err = fb_home_dir(home, len);

	if (err < 0)
		return err;
	for (char *p = home + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(home, 0700) < 0 && errno != EEXIST)
			err = fb_errorf(-errno, "mkdir %s: %s", home,
					strerror(errno));
		*p = c;
		if (err < 0 || !c)
			return err;
	}
}

static int default_socket(const char *home, char *buf, size_t len)
{
	const char *env = getenv("FORKBOX_SOCKET");

	if (env && env[0])
		return fb_fmt(buf, len, "%s", env);
	return fb_fmt(buf, len, "%s/" FBD_SOCKET_NAME, home);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "tcp", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fbd_config cfg;
	const char *token_file = NULL;
	char home[PATH_MAX];
	sigset_t sigs;
	int c, sig;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s",
				 optarg);
			break;
		case 't':
			snprintf(cfg.tcp_addr, sizeof(cfg.tcp_addr), "%s",
				 optarg);
			break;
		case 'k':
			token_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "forkboxd: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (cfg.tcp_addr[0] && !token_file) {
		fprintf(stderr, "forkboxd: --tcp needs --token-file\n");
		return 2;
	}
	if ((token_file && read_token(token_file, cfg.token,
				      sizeof(cfg.token)) < 0) ||
	    make_home(home, sizeof(home)) < 0 ||
	    (!cfg.socket_path[0] && default_socket(home, cfg.socket_path,
						   sizeof(cfg.socket_path)) < 0)) {
		fprintf(stderr, "forkboxd: %s\n", fb_last_error());
		return 1;
	}
	/* A client gone mid-response is an error on a write, not a death. */
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread: only sigwait below sees these. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* The spawner before anything else: boxes' VMMs are forked from it,
	 * and it must be a copy of the daemon while the daemon is one thread
	 * with a small heap (spawner.c). It keeps the signals blocked above
	 * (a daemon being stopped lets a boot under way finish), and it does
	 * nothing until asked: a daemon refused below has begun nothing. */
	if (fbd_spawner_start() < 0) {
		fprintf(stderr, "forkboxd: %s\n", fb_last_error());
		return 1;
	}
	/* The sockets first: a daemon refused because another listens must
	 * not have begun anything (booting a pool's template, reaping). A
	 * request that comes before the pools are loaded waits for them
	 * (pool.c); the ready line comes once all runs. */
	if (fbd_server_start(&cfg) < 0) {
		fprintf(stderr, "forkboxd: %s\n", fb_last_error());
		fbd_spawner_stop();
		return 1;
	}
	if (fbd_pools_load() < 0 || fbd_reaper_start() < 0 ||
	    fbd_pools_start() < 0) {
		fprintf(stderr, "forkboxd: %s\n", fb_last_error());
		set_stopping();
		fbd_server_stop(&cfg);
		fbd_pools_stop();
		fbd_spawner_stop();
		return 1;
	}
	printf("forkboxd: ready on %s%s%s\n", cfg.socket_path,
	       cfg.tcp_addr[0] ? " and tcp " : "", cfg.tcp_addr);
	fflush(stdout);
	do
		sig = 0;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP);
	fprintf(stderr, "forkboxd: %s: stopping (the boxes run on)\n",
		strsignal(sig));
	set_stopping();
	fbd_server_stop(&cfg);
	/* A pool's template may be booting or its children forking: they
	 * end first (a boot may take up to a minute). */
	fbd_pools_stop();
	/* Last: whatever stopped above may have been making a box. */
	fbd_spawner_stop();
	return 0;
}
