/* The guest agent's per-connection server (guest/agent_serve*.c, compiled
 * for the host) against the real client (src/agent/), over socketpairs:
 * each test forks a server process the way the guest's PID 1 does for a
 * vsock connection. REINJECT's calls that would change this machine go to
 * the recording stand-ins below, never to the real syscalls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../guest/agent.h"
#include "../../guest/agent_sys.h"
#include "agent/client.h"
#include "agent/wire.h"
#include "forkbox/forkbox.h"

#define HELLO_MS 5000

/* ---- recording stand-ins for agent_sys.h ------------------------------ */

/* Shared with the forked servers, which make the calls. */
struct sys_record {
	char hostname[FB_AGENT_MAX_HOSTNAME + 1];
	uint8_t entropy[FB_AGENT_MAX_ENTROPY];
	size_t entropy_len;
	int reseeds;
	int reseed_result;
	uint64_t realtime_ns;
	char box_id[FB_AGENT_MAX_BOX_ID + 1];
};

static struct sys_record *rec;

int fbg_sys_sethostname(const char *name, size_t len)
{
	snprintf(rec->hostname, sizeof(rec->hostname), "%.*s", (int)len, name);
	return 0;
}

int fbg_sys_add_entropy(const uint8_t *buf, size_t len)
{
	memcpy(rec->entropy, buf, len);
	rec->entropy_len = len;
	return 0;
}

int fbg_sys_reseed_crng(void)
{
	rec->reseeds++;
	return rec->reseed_result;
}

int fbg_sys_set_realtime(uint64_t ns)
{
	rec->realtime_ns = ns;
	return 0;
}

int fbg_sys_store_box_id(const char *id, size_t len)
{
	snprintf(rec->box_id, sizeof(rec->box_id), "%.*s", (int)len, id);
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

struct server {
	pid_t pid;
	int fd;
	struct fb_agent_hello hello;
};

/* The next servers are PID 1's re-stamp server, not a forked one. */
static bool serve_restamp;
/* >= 0: the next servers are PID 1's spare (fb_agent_serve_hooked), and
 * say here when their request is under way: 'R' once the re-stamp was
 * done, else '-'. */
static int hook_fd = -1;

static void hook_under_way(void *opaque)
{
	char c = rec->box_id[0] ? 'R' : '-';

	(void)opaque;
	if (write(hook_fd, &c, 1) != 1)
		exit(9);
}

/* A server process on one end of a socketpair; with handshake, the HELLO
 * is read on the other end before returning. */
static void start_server_raw(struct server *s)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		int ret;

		/* Only the socket, as in the guest: an inherited end of a
		 * test's stdin pipe would keep it from ever reaching EOF. */
		/* (and the hook's pipe) */
		if (hook_fd >= 0) {
			assert_int_equal(dup2(hook_fd, sv[1] + 1), sv[1] + 1);
			hook_fd = sv[1] + 1;
		}
		close_range(3, (unsigned)sv[1] - 1, 0);
		close_range((unsigned)sv[1] + (hook_fd >= 0 ? 2 : 1), ~0u, 0);
		if (serve_restamp) { /* as PID 1 sets them, but shorter */
			struct timeval tv = { .tv_usec = 200000 };

			setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
			setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
		}
		if (serve_restamp) {
			ret = fb_agent_serve_restamp(sv[1]);
		} else if (hook_fd >= 0) {
			struct fbg_serve_hook hook = {
				.under_way = hook_under_way,
			};

			ret = fb_agent_serve_hooked(sv[1], &hook);
		} else {
			ret = fb_agent_serve(sv[1]);
		}
		close(sv[1]);
		exit(ret < 0 ? 1 : 0); /* exit, not _exit: LSan checks the server */
	}
	close(sv[1]);
	s->fd = sv[0];
}

static void start_server(struct server *s)
{
	int err;

	start_server_raw(s);
	err = fb_agent_handshake(s->fd, HELLO_MS, &s->hello);
	if (err)
		fail_msg("handshake: %s", fb_last_error());
}

/* Closes our end and reaps the server: it must never die of a signal. */
static int stop_server(struct server *s)
{
	int st;

	close(s->fd);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	if (WIFSIGNALED(st))
		fail_msg("server died of signal %d", WTERMSIG(st));
	return WEXITSTATUS(st);
}

static int memfd(void)
{
	int fd = memfd_create("test_agent", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* The contents of fd, NUL-terminated, malloc'd. */
static char *slurp(int fd, size_t *len_out)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf;

	assert_true(len >= 0);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	buf[len] = '\0';
	if (len_out)
		*len_out = (size_t)len;
	return buf;
}

struct run {
	int status, ret;
	char *out, *err;
	int64_t ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs req on a fresh server, capturing stdout and stderr. */
static void run_exec(const struct fb_agent_exec_req *req, int stdin_fd,
		     struct run *r)
{
	struct server s;
	int out = memfd(), err = memfd();
	int64_t t0 = now_ms();

	start_server(&s);
	r->ret = fb_agent_exec(s.fd, req, stdin_fd, out, err, &r->status);
	r->ms = now_ms() - t0;
	assert_int_equal(stop_server(&s), 0);
	r->out = slurp(out, NULL);
	r->err = slurp(err, NULL);
	close(out);
	close(err);
}

static void free_run(struct run *r)
{
	free(r->out);
	free(r->err);
}

static struct fb_agent_exec_req sh_req(const char *script)
{
	static const char *argv[4];

	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	return (struct fb_agent_exec_req){ .argv = argv, .signal_fd = -1 };
}

/* ---- exec ------------------------------------------------------------- */

static void test_exec_output_and_status(void **state)
{
	struct fb_agent_exec_req req = sh_req("echo out; echo err >&2; exit 7");
	struct run r;
	struct server s;

	start_server(&s);
	assert_int_equal(s.hello.version, FB_AGENT_VERSION);
	assert_int_equal(s.hello.pid, (uint32_t)s.pid);
	assert_true(s.hello.boottime_ns > 0);
	stop_server(&s);

	run_exec(&req, -1, &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 7);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.err, "err\n");
	free_run(&r);
}

struct feeder {
	int fd;
	int lines;
};

static void *feed_lines(void *arg)
{
	struct feeder *f = arg;
	char line[32];
	int i;

	for (i = 0; i < f->lines; i++) {
		int n = snprintf(line, sizeof(line), "line %d\n", i);

		if (write(f->fd, line, (size_t)n) != n)
			break;
	}
	close(f->fd);
	return NULL;
}

static void test_exec_stdin_streaming(void **state)
{
	static const char *argv[] = { "wc", "-l", NULL };
	struct fb_agent_exec_req req = { .argv = argv, .signal_fd = -1 };
	struct feeder f = { .lines = 100000 };
	pthread_t t;
	int p[2];
	struct run r;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f.fd = p[1];
	assert_int_equal(pthread_create(&t, NULL, feed_lines, &f), 0);
	run_exec(&req, p[0], &r);
	pthread_join(t, NULL);
	close(p[0]);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(atoi(r.out), 100000);
	free_run(&r);
}

struct blob_feeder {
	int fd;
	const uint8_t *data;
	size_t len;
};

static void *feed_blob(void *arg)
{
	struct blob_feeder *f = arg;
	size_t off = 0;

	while (off < f->len) {
		ssize_t n = write(f->fd, f->data + off, f->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(f->fd);
	return NULL;
}

/* Stdin and stdout both streaming at once (cat): neither side may block
 * the other, and every byte comes back in order. */
static void test_exec_two_way_stream(void **state)
{
	static const char *argv[] = { "cat", NULL };
	struct fb_agent_exec_req req = { .argv = argv, .signal_fd = -1 };
	const size_t len = 10u << 20;
	uint8_t *data = malloc(len);
	struct blob_feeder f = { .data = data, .len = len };
	struct server s;
	pthread_t t;
	int p[2], out = memfd(), status;
	size_t i, got;
	char *back;

	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 12));
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f.fd = p[1];
	assert_int_equal(pthread_create(&t, NULL, feed_blob, &f), 0);
	start_server(&s);
	assert_int_equal(fb_agent_exec(s.fd, &req, p[0], out, -1, &status), 0);
	assert_int_equal(stop_server(&s), 0);
	pthread_join(t, NULL);
	close(p[0]);
	assert_int_equal(status, 0);
	back = slurp(out, &got);
	assert_int_equal(got, len);
	assert_memory_equal(back, data, len);
	free(back);
	free(data);
	close(out);
}

static void test_exec_not_found(void **state)
{
	static const char *argv[] = { "no-such-command-forkbox", NULL };
	static const char *argv2[] = { "/dev/null", NULL };
	struct fb_agent_exec_req req = { .argv = argv, .signal_fd = -1 };
	struct run r;

	run_exec(&req, -1, &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 127);
	assert_non_null(strstr(r.err, "no-such-command-forkbox: command not found"));
	assert_non_null(strstr(fb_last_error(), "command not found"));
	free_run(&r);

	req.argv = argv2; /* exists, cannot be executed */
	run_exec(&req, -1, &r);
	assert_int_equal(r.status, 126);
	assert_non_null(strstr(r.err, "cannot execute"));
	free_run(&r);
}

static void test_exec_killed_by_signal(void **state)
{
	struct fb_agent_exec_req req = sh_req("kill -9 $$");
	struct run r;

	run_exec(&req, -1, &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 137);
	free_run(&r);
}

static void test_exec_timeout(void **state)
{
	struct fb_agent_exec_req req = sh_req("echo started; sleep 30; echo never");
	struct run r;

	req.timeout_ms = 300;
	run_exec(&req, -1, &r);
	assert_int_equal(r.ret, -ETIMEDOUT);
	assert_int_equal(r.status, 137);
	assert_string_equal(r.out, "started\n");
	assert_true(r.ms >= 250 && r.ms < 10000);
	free_run(&r);
}

static void test_exec_signal_forwarded(void **state)
{
	struct fb_agent_exec_req req = sh_req("exec sleep 30");
	int p[2];
	struct run r;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	req.signal_fd = p[0];
	/* Queued before the exec starts: the client forwards it once the
	 * request is out, the agent delivers it once the command runs. */
	assert_int_equal(fb_agent_signal(p[1], SIGTERM), 0);
	run_exec(&req, -1, &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 128 + SIGTERM);
	free_run(&r);
	close(p[0]);
	close(p[1]);
}

static void test_exec_env_cwd(void **state)
{
	static const char *env[] = { "FOO=bar", "FOO=baz", "EMPTY=", NULL };
	struct fb_agent_exec_req req = sh_req("echo \"$FOO/$EMPTY/\"; pwd; "
					      "test -n \"$PATH\" && echo path");
	struct run r;

	req.env = env;
	req.cwd = "/tmp";
	run_exec(&req, -1, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "baz//\n/tmp\npath\n");
	free_run(&r);

	req.cwd = "/no/such/dir";
	run_exec(&req, -1, &r);
	assert_int_equal(r.status, 126);
	assert_non_null(strstr(r.err, "chdir /no/such/dir"));
	free_run(&r);
}

static void test_exec_tty(void **state)
{
	struct fb_agent_exec_req req =
		sh_req("test -t 0 && test -t 1 && test -t 2 && echo tty; "
		       "stty size; read x; echo \"got $x\"");
	int p[2];
	struct run r;

	req.tty = true;
	req.tty_rows = 30;
	req.tty_cols = 100;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "hello\n", 6), 6);
	close(p[1]);
	run_exec(&req, p[0], &r);
	close(p[0]);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "tty"));
	assert_non_null(strstr(r.out, "30 100"));
	assert_non_null(strstr(r.out, "got hello"));
	assert_string_equal(r.err, "");
	free_run(&r);
}

#define NCONC 20

struct conc {
	struct server s;
	int id;
	int out;
	int status, ret;
};

static void *conc_exec(void *arg)
{
	struct conc *c = arg;
	char id[16];
	const char *argv[] = { "/bin/sh", "-c", "sleep 0.5; echo \"$0\"", id, NULL };
	struct fb_agent_exec_req req = { .argv = argv, .signal_fd = -1 };

	snprintf(id, sizeof(id), "job%d", c->id);
	c->ret = fb_agent_exec(c->s.fd, &req, -1, c->out, -1, &c->status);
	return NULL;
}

static void test_exec_concurrent(void **state)
{
	static struct conc c[NCONC];
	pthread_t t[NCONC];
	char want[16];
	int64_t t0;
	int i;

	/* Every server forked before any thread exists. */
	for (i = 0; i < NCONC; i++) {
		start_server(&c[i].s);
		c[i].id = i;
		c[i].out = memfd();
	}
	t0 = now_ms();
	for (i = 0; i < NCONC; i++)
		assert_int_equal(pthread_create(&t[i], NULL, conc_exec, &c[i]), 0);
	for (i = 0; i < NCONC; i++)
		pthread_join(t[i], NULL);
	/* Serially it would take 20 x 0.5 s. */
	assert_true(now_ms() - t0 < 6000);
	for (i = 0; i < NCONC; i++) {
		char *out = slurp(c[i].out, NULL);

		assert_int_equal(c[i].ret, 0);
		assert_int_equal(c[i].status, 0);
		snprintf(want, sizeof(want), "job%d\n", i);
		assert_string_equal(out, want);
		free(out);
		close(c[i].out);
		assert_int_equal(stop_server(&c[i].s), 0);
	}
}

/* ---- files ------------------------------------------------------------ */

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fb-agent-test-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

#define BIG (50u << 20)

struct watcher {
	const char *path;
	size_t old_len, new_len;
	volatile int stop;
	int bad, seen_new;
};

/* A reader during the write: the file is always the old one or the whole
 * new one. */
static void *watch(void *arg)
{
	struct watcher *w = arg;
	struct stat st;

	while (!w->stop) {
		int fd = open(w->path, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			w->bad++;
			continue;
		}
		if (fstat(fd, &st) == 0 && (size_t)st.st_size != w->old_len &&
		    (size_t)st.st_size != w->new_len)
			w->bad++;
		if ((size_t)st.st_size == w->new_len)
			w->seen_new = 1;
		close(fd);
	}
	return NULL;
}

static void test_file_write_read_big(void **state)
{
	char path[128], tmpl[128];
	uint8_t *data = malloc(BIG);
	struct watcher w = { .path = path, .old_len = 3, .new_len = BIG };
	struct fb_agent_dirent *ents;
	struct server s;
	size_t i, n, len;
	pthread_t t;
	char *back;
	int src, dst, fd;

	assert_non_null(data);
	for (i = 0; i < BIG; i += (size_t)n)
		assert_true((n = (size_t)getrandom(data + i, BIG - i, 0)) > 0);
	snprintf(path, sizeof(path), "%s/big.bin", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);

	/* From a file (a memfd: size announced). */
	src = memfd();
	assert_int_equal(write(src, data, BIG), (ssize_t)BIG);
	assert_int_equal(lseek(src, 0, SEEK_SET), 0);
	assert_int_equal(pthread_create(&t, NULL, watch, &w), 0);
	start_server(&s);
	if (fb_agent_write_file(s.fd, path, 0640, src, NULL, 0) != 0)
		fail_msg("write_file: %s", fb_last_error());
	stop_server(&s);
	w.stop = 1;
	pthread_join(t, NULL);
	close(src);
	assert_int_equal(w.bad, 0);

	/* Back through FILE_READ, byte for byte. */
	dst = memfd();
	start_server(&s);
	if (fb_agent_read_file(s.fd, path, dst, 0) != 0)
		fail_msg("read_file: %s", fb_last_error());
	stop_server(&s);
	back = slurp(dst, &len);
	assert_int_equal(len, BIG);
	assert_memory_equal(back, data, BIG);
	free(back);
	close(dst);

	/* A cap one byte short: refused, the bytes past it never written. */
	dst = memfd();
	start_server(&s);
	assert_int_equal(fb_agent_read_file(s.fd, path, dst, BIG - 1), -EFBIG);
	stop_server(&s);
	back = slurp(dst, &len);
	assert_true(len <= BIG - 1);
	free(back);
	close(dst);

	/* No temporary file left beside it; mode exact. */
	start_server(&s);
	assert_int_equal(fb_agent_list(s.fd, tmpdir, &ents, &n, NULL, HELLO_MS), 0);
	stop_server(&s);
	assert_int_equal(n, 1);
	assert_string_equal(ents[0].name, "big.bin");
	assert_int_equal(ents[0].size, BIG);
	assert_int_equal(ents[0].mode, 0640);
	free(ents);

	/* From a buffer, over it. */
	start_server(&s);
	assert_int_equal(fb_agent_write_file(s.fd, path, 0600, -1, data, 1000), 0);
	stop_server(&s);
	snprintf(tmpl, sizeof(tmpl), "%s", path);
	fd = open(tmpl, O_RDONLY | O_CLOEXEC);
	back = slurp(fd, &len);
	close(fd);
	assert_int_equal(len, 1000);
	assert_memory_equal(back, data, 1000);
	free(back);
	free(data);
}

static void test_file_write_from_pipe(void **state)
{
	char path[128];
	struct fb_agent_stat st;
	struct server s;
	int p[2];

	snprintf(path, sizeof(path), "%s/piped", tmpdir);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "hello pipe\n", 11), 11);
	close(p[1]);
	start_server(&s);
	assert_int_equal(fb_agent_write_file(s.fd, path, 0755, p[0], NULL, 0), 0);
	stop_server(&s);
	close(p[0]);
	start_server(&s);
	assert_int_equal(fb_agent_stat(s.fd, path, &st, HELLO_MS), 0);
	stop_server(&s);
	assert_int_equal(st.type, FB_AGENT_FT_REG);
	assert_int_equal(st.mode, 0755);
	assert_int_equal(st.size, 11);
	assert_true(st.mtime_ns > 0);
}

static void test_stat_list(void **state)
{
	char dir[128], path[160];
	struct fb_agent_dirent *ents;
	struct fb_agent_stat st;
	struct server s;
	bool trunc = true;
	size_t n, i;
	int fd, seen = 0;

	snprintf(dir, sizeof(dir), "%s/tree", tmpdir);
	assert_int_equal(mkdir(dir, 0750), 0);
	snprintf(path, sizeof(path), "%s/a", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "12345", 5), 5);
	close(fd);
	snprintf(path, sizeof(path), "%s/b", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/c", dir);
	assert_int_equal(symlink("a", path), 0);

	start_server(&s);
	assert_int_equal(fb_agent_stat(s.fd, dir, &st, HELLO_MS), 0);
	stop_server(&s);
	assert_int_equal(st.type, FB_AGENT_FT_DIR);
	assert_int_equal(st.mode, 0750);

	start_server(&s);
	assert_int_equal(fb_agent_list(s.fd, dir, &ents, &n, &trunc, HELLO_MS), 0);
	stop_server(&s);
	assert_int_equal(n, 3);
	assert_false(trunc);
	for (i = 0; i < n; i++) {
		if (!strcmp(ents[i].name, "a")) {
			assert_int_equal(ents[i].type, FB_AGENT_FT_REG);
			assert_int_equal(ents[i].size, 5);
			assert_int_equal(ents[i].mode, 0600);
			seen |= 1;
		} else if (!strcmp(ents[i].name, "b")) {
			assert_int_equal(ents[i].type, FB_AGENT_FT_DIR);
			seen |= 2;
		} else if (!strcmp(ents[i].name, "c")) {
			assert_int_equal(ents[i].type, FB_AGENT_FT_LNK);
			seen |= 4;
		}
	}
	assert_int_equal(seen, 7);
	free(ents);
}

static void test_path_errors(void **state)
{
	char missing[128], file[128], nodir[160];
	struct fb_agent_dirent *ents;
	struct fb_agent_stat st;
	struct server s;
	size_t n;
	int dst = memfd(), fd;

	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	snprintf(file, sizeof(file), "%s/plain", tmpdir);
	snprintf(nodir, sizeof(nodir), "%s/missing/file", tmpdir);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);

	start_server(&s);
	assert_int_equal(fb_agent_read_file(s.fd, missing, dst, 0), -ENOENT);
	assert_non_null(strstr(fb_last_error(), "No such file"));
	stop_server(&s);
	start_server(&s);
	assert_int_equal(fb_agent_read_file(s.fd, tmpdir, dst, 0), -EISDIR);
	stop_server(&s);
	start_server(&s);
	assert_int_equal(fb_agent_write_file(s.fd, nodir, 0644, -1, "x", 1), -ENOENT);
	stop_server(&s);
	start_server(&s);
	assert_int_equal(fb_agent_write_file(s.fd, tmpdir, 0644, -1, "x", 1), -EISDIR);
	stop_server(&s);
	start_server(&s);
	assert_int_equal(fb_agent_stat(s.fd, missing, &st, HELLO_MS), -ENOENT);
	stop_server(&s);
	start_server(&s);
	assert_int_equal(fb_agent_list(s.fd, file, &ents, &n, NULL, HELLO_MS), -ENOTDIR);
	stop_server(&s);
	/* Refused before anything is sent. */
	assert_int_equal(fb_agent_stat(-1, "relative", &st, HELLO_MS), -EINVAL);
	close(dst);
}

/* ---- hostile frames --------------------------------------------------- */

static void send_raw(int fd, uint32_t type, uint32_t len, const void *p, size_t n)
{
	uint8_t hdr[FB_AGENT_HDR_LEN];

	fb_agent_hdr_put(hdr, type, len);
	assert_int_equal(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
	if (n)
		assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The server's answer: an ERROR with this errno, then the end. */
static void expect_error(int fd, int err)
{
	struct fba_msg m;

	assert_int_equal(fba_recv(fd, &m, FB_AGENT_MAX_PAYLOAD,
				  fba_deadline(HELLO_MS), "t"), 0);
	assert_int_equal(m.type, FB_AGENT_ERROR);
	assert_int_equal(fba_agent_error(&m, "t"), -err);
	fba_msg_free(&m);
}

static void test_hostile_frames(void **state)
{
	uint8_t buf[64];
	struct fb_agent_enc e;
	struct server s;

	/* Length over the cap: ERROR, and no 4 GiB allocation. */
	start_server(&s);
	send_raw(s.fd, FB_AGENT_EXEC, 0xffffffffu, NULL, 0);
	expect_error(s.fd, EMSGSIZE);
	assert_int_equal(stop_server(&s), 0);

	/* Unknown type. */
	start_server(&s);
	send_raw(s.fd, 0x99, 0, NULL, 0);
	expect_error(s.fd, EPROTO);
	assert_int_equal(stop_server(&s), 0);

	/* Not a request. */
	start_server(&s);
	send_raw(s.fd, FB_AGENT_STDOUT, 3, "abc", 3);
	expect_error(s.fd, EPROTO);
	assert_int_equal(stop_server(&s), 0);

	/* Truncated: the header promises 100 bytes, 10 come, then EOF. */
	start_server(&s);
	send_raw(s.fd, FB_AGENT_EXEC, 100, "0123456789", 10);
	shutdown(s.fd, SHUT_WR);
	stop_server(&s); /* any exit but a crash */

	/* EXEC with an argc far beyond what the payload holds. */
	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_str(&e, "", 0);
	fb_enc_u32(&e, 0xffffffffu);
	send_raw(s.fd, FB_AGENT_EXEC, e.len, buf, e.len);
	expect_error(s.fd, E2BIG);
	assert_int_equal(stop_server(&s), 0);

	/* A string whose length runs past the payload. */
	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0x7fffffffu); /* cwd length */
	send_raw(s.fd, FB_AGENT_EXEC, e.len, buf, e.len);
	expect_error(s.fd, EINVAL);
	assert_int_equal(stop_server(&s), 0);

	/* Trailing garbage after a well-formed STAT. */
	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_str(&e, "/", 1);
	fb_enc_u32(&e, 42);
	send_raw(s.fd, FB_AGENT_STAT, e.len, buf, e.len);
	expect_error(s.fd, EINVAL);
	assert_int_equal(stop_server(&s), 0);

	/* A relative path, straight to the server. */
	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_str(&e, "etc", 3);
	send_raw(s.fd, FB_AGENT_FILE_READ, e.len, buf, e.len);
	expect_error(s.fd, EINVAL);
	assert_int_equal(stop_server(&s), 0);
}

/* More DATA than FILE_WRITE announced: EFBIG, and no file. */
static void test_hostile_file_write(void **state)
{
	char path[128];
	uint8_t buf[160];
	struct fb_agent_enc e;
	struct server s;
	struct stat st;

	snprintf(path, sizeof(path), "%s/overflow", tmpdir);
	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, 0644);
	fb_enc_u64(&e, 4);
	fb_enc_str(&e, path, strlen(path));
	send_raw(s.fd, FB_AGENT_FILE_WRITE, e.len, buf, e.len);
	send_raw(s.fd, FB_AGENT_DATA, 8, "12345678", 8);
	send_raw(s.fd, FB_AGENT_END, 0, NULL, 0);
	expect_error(s.fd, EFBIG);
	assert_int_equal(stop_server(&s), 0);
	assert_int_equal(stat(path, &st), -1);
}

/* During an exec: an over-cap frame ends the command; an unknown signal
 * number is refused but the command goes on. */
static void test_hostile_exec_stream(void **state)
{
	static const char *argv[] = { "cat", NULL };
	uint8_t buf[128];
	struct fb_agent_enc e;
	struct fba_msg m;
	struct server s;
	bool error = false, exited = false;

	start_server(&s);
	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, FB_AGENT_EXEC_STDIN);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_u32(&e, 0);
	fb_enc_str(&e, "", 0);
	fb_enc_u32(&e, 1);
	fb_enc_str(&e, argv[0], 3);
	fb_enc_u32(&e, 0);
	send_raw(s.fd, FB_AGENT_EXEC, e.len, buf, e.len);
	fb_put_le32(buf, 999);
	send_raw(s.fd, FB_AGENT_SIGNAL, 4, buf, 4);
	send_raw(s.fd, FB_AGENT_STDIN, FB_AGENT_MAX_PAYLOAD + 1, NULL, 0);
	while (!exited) {
		assert_int_equal(fba_recv(s.fd, &m, FB_AGENT_MAX_PAYLOAD, fba_deadline(HELLO_MS),
					  "t"), 0);
		if (m.type == FB_AGENT_ERROR)
			error = true;
		if (m.type == FB_AGENT_EXIT) {
			exited = true;
			assert_int_equal(fb_le32(m.data), FB_AGENT_SIGNALED);
			assert_int_equal(fb_le32(m.data + 4), SIGKILL);
		}
		fba_msg_free(&m);
	}
	assert_true(error);
	assert_int_equal(stop_server(&s), 0);
}

/* ---- reinject --------------------------------------------------------- */

static void test_reinject(void **state)
{
	uint8_t entropy[FB_AGENT_MAX_ENTROPY + 1];
	struct fb_agent_reinject ri = {
		.box_id = "box-42", .hostname = "child-1", .entropy = entropy,
		.entropy_len = 32, .realtime_ns = 1700000000123456789ull,
	};
	char host_before[65], host_after[65];
	struct server s;
	uint32_t done = 0;
	size_t i;

	for (i = 0; i < sizeof(entropy); i++)
		entropy[i] = (uint8_t)(i * 7 + 1);
	memset(rec, 0, sizeof(*rec));
	gethostname(host_before, sizeof(host_before));
	start_server(&s);
	if (fb_agent_reinject(s.fd, &ri, &done, HELLO_MS) != 0)
		fail_msg("reinject: %s", fb_last_error());
	stop_server(&s);
	assert_int_equal(done, FB_AGENT_RI_HOSTNAME | FB_AGENT_RI_ENTROPY |
			 FB_AGENT_RI_RESEED | FB_AGENT_RI_CLOCK | FB_AGENT_RI_BOX_ID);
	assert_string_equal(rec->hostname, "child-1");
	assert_string_equal(rec->box_id, "box-42");
	assert_int_equal(rec->entropy_len, 32);
	assert_memory_equal(rec->entropy, entropy, 32);
	assert_int_equal(rec->reseeds, 1);
	assert_int_equal(rec->realtime_ns, 1700000000123456789ull);
	gethostname(host_after, sizeof(host_after));
	assert_string_equal(host_before, host_after); /* the stand-ins ran */

	/* An old kernel without RNDRESEEDCRNG: fine, just not reported. */
	memset(rec, 0, sizeof(*rec));
	rec->reseed_result = -ENOTTY;
	ri.hostname = NULL;
	ri.realtime_ns = 0;
	start_server(&s);
	assert_int_equal(fb_agent_reinject(s.fd, &ri, &done, HELLO_MS), 0);
	stop_server(&s);
	assert_int_equal(done, FB_AGENT_RI_ENTROPY | FB_AGENT_RI_BOX_ID);
	assert_string_equal(rec->hostname, "");

	/* Caps and names. */
	ri.entropy_len = FB_AGENT_MAX_ENTROPY + 1;
	assert_int_equal(fb_agent_reinject(-1, &ri, &done, HELLO_MS), -EINVAL);
	ri.entropy_len = 0;
	ri.hostname = "bad name";
	start_server(&s);
	assert_int_equal(fb_agent_reinject(s.fd, &ri, &done, HELLO_MS), -EINVAL);
	stop_server(&s);
	ri.hostname = "ok";
	ri.box_id = "../etc/passwd";
	start_server(&s);
	assert_int_equal(fb_agent_reinject(s.fd, &ri, &done, HELLO_MS), -EINVAL);
	stop_server(&s);

	/* The re-stamp port's server: REINJECT, and nothing else. */
	serve_restamp = true;
	memset(rec, 0, sizeof(*rec));
	ri.box_id = "box-43";
	start_server(&s);
	assert_int_equal(fb_agent_reinject(s.fd, &ri, &done, HELLO_MS), 0);
	assert_int_equal(stop_server(&s), 0);
	assert_string_equal(rec->box_id, "box-43");
	start_server(&s);
	assert_int_equal(fb_agent_stat(s.fd, "/", &(struct fb_agent_stat){ 0 },
				       HELLO_MS), -EPROTO);
	assert_non_null(strstr(fb_last_error(), "only REINJECT"));
	assert_int_equal(stop_server(&s), 0);
	/* A peer that connects and says nothing does not hold PID 1: the
	 * server gives up at its socket's timeout and closes. */
	start_server(&s);
	{
		struct pollfd p = { .fd = s.fd, .events = POLLIN };
		char c;

		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_int_equal(read(s.fd, &c, 1), 0);
	}
	assert_int_equal(stop_server(&s), 1);
	serve_restamp = false;
}

/* What the hook wrote to p (non-blocking) since the last call. */
static size_t hook_said(int p, char *buf, size_t len)
{
	ssize_t n = read(p, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

/* PID 1's spare says when its request is under way (agent_main.c forks
 * the next spare then): once per connection; for a re-stamp after the
 * work, so that fork does not slow a fork child's way to ready; for an
 * exec while the command still runs. */
static void test_serve_hook(void **state)
{
	const char *argv[] = { "cat", NULL };
	struct fb_agent_exec_req req = { .argv = argv, .signal_fd = -1 };
	struct fb_agent_reinject ri = { .box_id = "box-7" };
	int hp[2], in[2], out = memfd(), status = -1;
	struct server s;
	char said[16];
	pid_t helper;

	(void)state;
	assert_int_equal(pipe2(hp, O_NONBLOCK | O_CLOEXEC), 0);
	hook_fd = hp[1];

	memset(rec, 0, sizeof(*rec));
	start_server(&s);
	assert_int_equal(hook_said(hp[0], said, sizeof(said)), 0);
	assert_int_equal(fb_agent_reinject(s.fd, &ri, NULL, HELLO_MS), 0);
	assert_int_equal(stop_server(&s), 0);
	hook_said(hp[0], said, sizeof(said));
	assert_string_equal(said, "R");

	/* A HELLO-only connection still says it once. */
	memset(rec, 0, sizeof(*rec));
	start_server(&s);
	assert_int_equal(stop_server(&s), 0);
	hook_said(hp[0], said, sizeof(said));
	assert_string_equal(said, "-");

	/* cat ends when its stdin does, which the helper closes only once
	 * the hook spoke (or after 10 s, with "late" as the output). */
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		struct pollfd p = { .fd = hp[0], .events = POLLIN };
		bool spoke = poll(&p, 1, 10000) == 1;

		exit(write(in[1], spoke ? "x" : "late", spoke ? 1 : 4) < 0);
	}
	close(in[1]);
	start_server(&s);
	assert_int_equal(fb_agent_exec(s.fd, &req, in[0], out, -1, &status), 0);
	assert_int_equal(stop_server(&s), 0);
	close(in[0]);
	assert_int_equal(waitpid(helper, NULL, 0), helper);
	{
		char *got = slurp(out, NULL);

		assert_string_equal(got, "x");
		free(got);
	}
	assert_int_equal(status, 0);
	hook_said(hp[0], said, sizeof(said));
	assert_string_equal(said, "-");
	hook_fd = -1;
	close(hp[0]);
	close(hp[1]);
	close(out);
}

/* ---- dialing ---------------------------------------------------------- */

/* A stand-in for the VMM's hybrid vsock socket: answers CONNECT, then
 * hands the stream to a server. */
static void test_dial_and_ready(void **state)
{
	char uds[96], ready[96];
	struct fb_agent_hello h;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int lfd, rfd, fd, c;
	pid_t pid;
	char line[32];
	size_t n = 0;
	int st;

	snprintf(uds, sizeof(uds), "%s/vsock.sock", tmpdir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", uds);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		c = accept(lfd, NULL, NULL);
		while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 &&
		       line[n] != '\n')
			n++;
		line[n] = '\0';
		if (strcmp(line, "CONNECT 1024") != 0)
			exit(2);
		if (write(c, "OK 1073741824\n", 14) != 14)
			exit(3);
		exit(fb_agent_serve(c) < 0);
	}
	fd = fb_agent_dial(uds, FB_AGENT_PORT, HELLO_MS, &h);
	if (fd < 0)
		fail_msg("dial: %s", fb_last_error());
	assert_int_equal(h.pid, (uint32_t)pid);
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(lfd);

	/* A re-stamp dial: to the agent's port, timed step by step. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", uds);
	unlink(uds);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		c = accept(lfd, NULL, NULL);
		n = 0;
		while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 &&
		       line[n] != '\n')
			n++;
		line[n] = '\0';
		if (strcmp(line, "CONNECT 1024") ||
		    write(c, "OK 1073741824\n", 14) != 14)
			exit(2);
		exit(fb_agent_serve(c) < 0);
	}
	{
		struct fb_agent_reinject ri = { .box_id = "box-44" };
		struct fb_agent_dial_times t = { 0 };

		memset(rec, 0, sizeof(*rec));
		if (fb_agent_dial_reinject(uds, &ri, NULL, &t, HELLO_MS) != 0)
			fail_msg("dial_reinject: %s", fb_last_error());
		assert_true(t.connected_ms <= t.hello_ms &&
			    t.hello_ms <= t.done_ms);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(rec->box_id, "box-44");
	close(lfd);

	/* Nothing listening behind the socket: a clear refusal. */
	snprintf(ready, sizeof(ready), "%s/vsock.sock_%u", tmpdir, FB_AGENT_READY_PORT);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", ready);
	rfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(rfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(rfd, 4), 0);
	/* The ready connection: the agent dials us and says hello. */
	pid = fork();
	if (pid == 0) {
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
			exit(2);
		exit(fbg_send_hello(c) < 0);
	}
	memset(&h, 0, sizeof(h));
	if (fb_agent_accept_hello(rfd, HELLO_MS, &h) != 0)
		fail_msg("accept_hello: %s", fb_last_error());
	assert_int_equal(h.pid, (uint32_t)pid);
	assert_int_equal(h.version, FB_AGENT_VERSION);
	waitpid(pid, &st, 0);
	/* And nobody: the deadline, not a hang. */
	assert_int_equal(fb_agent_accept_hello(rfd, 100, &h), -ETIMEDOUT);
	close(rfd);
}


/* ---- the ready connection's BOOT_TIMES -------------------------------- */

/* What a fake agent sends on the ready connection. */
enum ready_kind {
	READY_NEW,        /* HELLO + BOOT_TIMES, as the agent does now */
	READY_NEWER,      /* ... with more marks than this host knows */
	READY_OLD,        /* HELLO only, then close: an agent from before */
	READY_SHORT,      /* BOOT_TIMES counting more marks than it holds */
	READY_TRAILING,   /* BOOT_TIMES with a byte past its marks */
	READY_OVER_CAP,   /* BOOT_TIMES counting past FB_AGENT_MAX_BOOT_MARKS */
	READY_OTHER_TYPE, /* something else after the HELLO */
};

static const uint64_t boot_marks[6] = { 40000000, 41500000, 55000000,
					60750000, 61000000, 62000000 };

static int send_boot_times(int c, uint32_t count, uint32_t marks, bool extra)
{
	uint8_t buf[4 + 8 * 8 + 1];
	struct fb_agent_enc e;

	fb_enc_init(&e, buf, sizeof(buf));
	fb_enc_u32(&e, count);
	for (uint32_t i = 0; i < marks; i++)
		fb_enc_u64(&e, boot_marks[i]);
	if (extra)
		fb_enc_raw(&e, "x", 1);
	return fbg_send(c, FB_AGENT_BOOT_TIMES, buf, e.len);
}

static int fake_ready_agent(const struct sockaddr_un *a, enum ready_kind kind)
{
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (connect(c, (const struct sockaddr *)a, sizeof(*a)) < 0)
		return 2;
	switch (kind) {
	case READY_NEW:
		return fbg_send_ready_hello(c, boot_marks, FB_AGENT_BOOT_MARKS) < 0;
	case READY_NEWER:
		return fbg_send_ready_hello(c, boot_marks, 6) < 0;
	case READY_OLD:
		return fbg_send_hello(c) < 0;
	case READY_SHORT:
		return fbg_send_hello(c) < 0 || send_boot_times(c, 3, 2, false) < 0;
	case READY_TRAILING:
		return fbg_send_hello(c) < 0 || send_boot_times(c, 2, 2, true) < 0;
	case READY_OVER_CAP:
		return fbg_send_hello(c) < 0 ||
		       send_boot_times(c, FB_AGENT_MAX_BOOT_MARKS + 1, 4, false) < 0;
	case READY_OTHER_TYPE:
		return fbg_send_hello(c) < 0 || fbg_send_ok(c, 0, "hi") < 0;
	}
	return 3;
}

/* One ready connection from a fake agent of that kind, read by
 * fb_agent_accept_ready (or, without boot, fb_agent_accept_hello). */
static int accept_from(enum ready_kind kind, struct fb_agent_hello *h,
		       struct fb_agent_boot *boot)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int rfd, err, st;
	pid_t pid;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s/ready.sock", tmpdir);
	unlink(a.sun_path);
	rfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(rfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(rfd, 4), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		exit(fake_ready_agent(&a, kind));
	memset(h, 0, sizeof(*h));
	err = boot ? fb_agent_accept_ready(rfd, HELLO_MS, h, boot) :
		     fb_agent_accept_hello(rfd, HELLO_MS, h);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* The agent's sends may fail once we closed: only a crash counts. */
	assert_true(WIFEXITED(st));
	close(rfd);
	if (!err)
		assert_int_equal(h->pid, (uint32_t)pid);
	return err;
}

static void test_ready_boot_times(void **state)
{
	struct fb_agent_hello h;
	struct fb_agent_boot boot;

	/* HELLO as always, then the marks. */
	memset(&boot, 0xff, sizeof(boot));
	if (accept_from(READY_NEW, &h, &boot) != 0)
		fail_msg("accept_ready: %s", fb_last_error());
	assert_int_equal(h.version, FB_AGENT_VERSION);
	assert_true(h.boottime_ns > 0);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		assert_int_equal(boot.ns[i], boot_marks[i]);

	/* A newer agent's extra marks are read and left. */
	memset(&boot, 0xff, sizeof(boot));
	assert_int_equal(accept_from(READY_NEWER, &h, &boot), 0);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		assert_int_equal(boot.ns[i], boot_marks[i]);

	/* An older agent closes after its HELLO: ready, no marks. */
	memset(&boot, 0xff, sizeof(boot));
	assert_int_equal(accept_from(READY_OLD, &h, &boot), 0);
	for (unsigned i = 0; i < FB_AGENT_BOOT_MARKS; i++)
		assert_int_equal(boot.ns[i], 0);

	/* An older host reads the HELLO and closes: the new agent's HELLO
	 * is what it always was. */
	assert_int_equal(accept_from(READY_NEW, &h, NULL), 0);
	assert_int_equal(h.version, FB_AGENT_VERSION);

	/* Malformed marks are a protocol error, not a guess. */
	assert_int_equal(accept_from(READY_SHORT, &h, &boot), -EPROTO);
	assert_int_equal(accept_from(READY_TRAILING, &h, &boot), -EPROTO);
	assert_int_equal(accept_from(READY_OVER_CAP, &h, &boot), -EPROTO);
	assert_int_equal(accept_from(READY_OTHER_TYPE, &h, &boot), -EPROTO);
	assert_non_null(strstr(fb_last_error(), "BOOT_TIMES"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_output_and_status),
		cmocka_unit_test(test_exec_stdin_streaming),
		cmocka_unit_test(test_exec_two_way_stream),
		cmocka_unit_test(test_exec_not_found),
		cmocka_unit_test(test_exec_killed_by_signal),
		cmocka_unit_test(test_exec_timeout),
		cmocka_unit_test(test_exec_signal_forwarded),
		cmocka_unit_test(test_exec_env_cwd),
		cmocka_unit_test(test_exec_tty),
		cmocka_unit_test(test_exec_concurrent),
		cmocka_unit_test(test_file_write_read_big),
		cmocka_unit_test(test_file_write_from_pipe),
		cmocka_unit_test(test_stat_list),
		cmocka_unit_test(test_path_errors),
		cmocka_unit_test(test_hostile_frames),
		cmocka_unit_test(test_hostile_file_write),
		cmocka_unit_test(test_hostile_exec_stream),
		cmocka_unit_test(test_reinject),
		cmocka_unit_test(test_serve_hook),
		cmocka_unit_test(test_dial_and_ready),
		cmocka_unit_test(test_ready_boot_times),
	};

	rec = mmap(NULL, sizeof(*rec), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rec == MAP_FAILED)
		return 1;
	/* A server that dies must not take the test with it via SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
