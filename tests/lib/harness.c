/* harness.c — test helpers: folders, files, child processes by PID, deadlines. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <iconv.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *h_build_dir(void)
{
	const char *b = getenv("BUILD");
	return b && *b ? b : "build";
}

const char *h_build_path(const char *name)
{
	static char buf[4096];
	int n = snprintf(buf, sizeof(buf), "%s/%s", h_build_dir(), name);
	if (n < 0 || (size_t)n >= sizeof(buf))
		abort();
	return buf;
}

char *h_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

char *h_mkdtemp(const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	char *tpl = h_strdupf("%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix ? prefix : "labshare");
	if (!mkdtemp(tpl)) {
		free(tpl);
		return NULL;
	}
	return tpl;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

int h_rmtree(const char *path)
{
	if (!path)
		return 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *h_path(const char *dir, const char *name)
{
	return h_strdupf("%s/%s", dir, name);
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

int h_write_file(const char *path, const char *data, size_t len, int mode)
{
	if (len == (size_t)-1)
		len = strlen(data);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
	if (fd < 0)
		return -errno;
	fchmod(fd, (mode_t)(mode ? mode : 0644));
	int r = write_all(fd, data, len);
	close(fd);
	return r;
}

int h_append_file(const char *path, const char *data, size_t len)
{
	if (len == (size_t)-1)
		len = strlen(data);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len);
	close(fd);
	return r;
}

char *h_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static char **merge_env(char *const extra[])
{
	size_t n = 0, m = 0;
	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **env = calloc(n + m + 1, sizeof(*env));
	size_t k = 0;
	for (size_t i = 0; i < m; i++)
		env[k++] = extra[i];
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool overridden = false;
		for (size_t j = 0; j < m; j++)
			if (strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=')
				overridden = true;
		if (!overridden)
			env[k++] = environ[i];
	}
	return env;
}

struct h_proc *h_spawn(char *const argv[], char *const env[], bool pipe_stdin, bool pipe_stdout,
		       const char *out_path)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	if (pipe_stdin && pipe2(in, O_CLOEXEC) < 0)
		return NULL;
	if (pipe_stdout && pipe2(out, O_CLOEXEC) < 0)
		return NULL;
	char **envp = merge_env(env);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return NULL;
	if (pid == 0) {
		/* A test that crashes must not leave its servers behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pipe_stdin)
			dup2(in[0], 0);
		else {
			int nul = open("/dev/null", O_RDONLY);
			dup2(nul, 0);
		}
		if (pipe_stdout)
			dup2(out[1], 1);
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				if (!pipe_stdout)
					dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execve(argv[0], argv, envp);
		_exit(127);
	}
	free(envp);
	h_trace("h_spawn %s: pid %d", argv[0], (int)pid);
	struct h_proc *p = calloc(1, sizeof(*p));
	p->pid = pid;
	p->stdin_fd = -1;
	p->stdout_fd = -1;
	if (pipe_stdin) {
		close(in[0]);
		p->stdin_fd = in[1];
	}
	if (pipe_stdout) {
		close(out[1]);
		p->stdout_fd = out[0];
	}
	p->out_path = out_path ? strdup(out_path) : NULL;
	return p;
}

/* The index of the last argument (what h_trace names a run by). */
static int argc_last(char *const argv[])
{
	int n = 0;
	while (argv[n + 1])
		n++;
	return n;
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int h_wait(struct h_proc *p, int timeout_ms)
{
	if (!p)
		return -1;
	if (p->reaped)
		return decode_status(p->status);
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			if (now_ms() - (deadline - timeout_ms) > 100)
				h_trace("h_wait: pid %d exited after %lld ms", (int)p->pid,
					now_ms() - (deadline - timeout_ms));
			return decode_status(p->status);
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return -1;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int h_kill(struct h_proc *p, int sig)
{
	if (!p || p->reaped)
		return -ESRCH;
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

int h_stop(struct h_proc *p, int timeout_ms)
{
	if (!p)
		return -1;
	if (!p->reaped) {
		kill(p->pid, SIGTERM);
		if (h_wait(p, timeout_ms) < 0) {
			kill(p->pid, SIGKILL);
			h_wait(p, 5000);
		}
	}
	return decode_status(p->status);
}

void h_proc_free(struct h_proc *p)
{
	if (!p)
		return;
	if (!p->reaped)
		h_stop(p, 5000);
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	if (p->stdout_fd >= 0)
		close(p->stdout_fd);
	free(p->out_path);
	free(p);
}

char *h_read_line(struct h_proc *p, int timeout_ms)
{
	if (!p || p->stdout_fd < 0)
		return NULL;
	long long deadline = now_ms() + timeout_ms;
	size_t cap = 256, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { p->stdout_fd, POLLIN, 0 };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		char c;
		ssize_t got = read(p->stdout_fd, &c, 1); /* byte by byte: never read past the line */
		if (got <= 0)
			break;
		if (c == '\n') {
			buf[n] = '\0';
			return buf;
		}
		if (n + 2 >= cap)
			buf = realloc(buf, cap *= 2);
		buf[n++] = c;
	}
	free(buf);
	return NULL;
}

char *h_request(struct h_proc *p, const char *line, int timeout_ms)
{
	if (!p || p->stdin_fd < 0)
		return NULL;
	size_t len = strlen(line);
	if (write_all(p->stdin_fd, line, len) < 0)
		return NULL;
	if ((len == 0 || line[len - 1] != '\n') && write_all(p->stdin_fd, "\n", 1) < 0)
		return NULL;
	return h_read_line(p, timeout_ms);
}

static void drain(int fd, char **dst)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (dst)
		*dst = buf;
	else
		free(buf);
}

int h_run(char *const argv[], char *const env[], char **out, char **err, int timeout_ms)
{
	char *tmp = h_mkdtemp("h_run");
	char *opath = h_path(tmp, "out"), *epath = h_path(tmp, "err");
	char **envp = merge_env(env);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(o, 1);
		dup2(e, 2);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	free(envp);
	struct h_proc p = { .pid = pid, .stdin_fd = -1, .stdout_fd = -1 };
	long long t0 = now_ms();
	int rc = h_wait(&p, timeout_ms);
	h_trace("h_run %s ... %s: exit %d after %lld ms", argv[0], argv[argc_last(argv)],
		rc, now_ms() - t0);
	if (rc < 0) {
		kill(pid, SIGKILL);
		h_wait(&p, 5000);
		rc = -1;
	}
	int fd = open(opath, O_RDONLY);
	if (fd >= 0) {
		drain(fd, out);
		close(fd);
	} else if (out) {
		*out = strdup("");
	}
	fd = open(epath, O_RDONLY);
	if (fd >= 0) {
		drain(fd, err);
		close(fd);
	} else if (err) {
		*err = strdup("");
	}
	h_rmtree(tmp);
	free(tmp);
	free(opath);
	free(epath);
	return rc;
}

bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	long long t0 = now_ms(), deadline = t0 + timeout_ms;
	for (;;) {
		if (cond(arg)) {
			h_trace("h_wait_for: met after %lld ms", now_ms() - t0);
			return true;
		}
		if (now_ms() >= deadline) {
			h_trace("h_wait_for: not met in %d ms", timeout_ms);
			return false;
		}
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static bool file_nonempty(void *arg)
{
	struct stat st;
	return stat((const char *)arg, &st) == 0 && st.st_size > 0;
}

bool h_wait_file(const char *path, int timeout_ms)
{
	return h_wait_for(file_nonempty, (void *)path, timeout_ms);
}

/* The PKI of this process: made once (openssl takes a few hundred ms), copied for each test. */
static char *certs_cache;

static void certs_cache_remove(void)
{
	h_rmtree(certs_cache);
	free(certs_cache);
	certs_cache = NULL;
}

static int copy_file(const char *from, const char *to)
{
	struct stat st;
	size_t len;
	char *data = stat(from, &st) == 0 ? h_read_file(from, &len) : NULL;
	int r = data ? h_write_file(to, data, len, (int)(st.st_mode & 07777)) : -1;
	free(data);
	return r;
}

char *h_make_certs(const char *dir)
{
	static const char *const files[] = { "ca.pem", "ca.key", "server.pem", "server.key", "client.pem",
					     "client.key", "rogue.pem", "rogue.key" };
	if (!certs_cache) {
		char *tmp = h_mkdtemp("h_certs");
		char *made = tmp ? h_path(tmp, "certs") : NULL;
		char *argv[] = { (char *)"/bin/sh", (char *)"tests/refplat/mkcerts.sh", made, NULL };
		char *out = NULL, *err = NULL;
		int rc = made ? h_run(argv, NULL, &out, &err, 60000) : -1;
		if (rc != 0) {
			fprintf(stderr, "mkcerts: %s", err ? err : "failed\n");
			h_rmtree(tmp);
			free(tmp);
			free(made);
			free(out);
			free(err);
			return NULL;
		}
		free(out);
		free(err);
		free(made);
		certs_cache = tmp;
		atexit(certs_cache_remove);
	}
	char *certs = h_path(dir, "certs");
	mkdir(certs, 0700);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *from = h_strdupf("%s/certs/%s", certs_cache, files[i]), *to = h_path(certs, files[i]);
		int r = copy_file(from, to);
		free(from);
		free(to);
		if (r < 0) {
			fprintf(stderr, "h_make_certs: cannot copy %s into %s\n", files[i], certs);
			free(certs);
			return NULL;
		}
	}
	return certs;
}

int h_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	socklen_t sl = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

void h_trace(const char *fmt, ...)
{
	static long long t0;
	if (!getenv("H_TRACE"))
		return;
	if (!t0)
		t0 = now_ms();
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%8.3f s] ", (double)(now_ms() - t0) / 1000.0);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* The first column of the first row, read by take; *out is left as it was without one. */
static void sql_first(const char *path, const char *sql, void (*take)(sqlite3_stmt *q, void *out), void *out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW)
				take(q, out);
			sqlite3_finalize(q);
		}
	}
	sqlite3_close(db);
}

static void take_int(sqlite3_stmt *q, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(q, 0);
}

static void take_text(sqlite3_stmt *q, void *out)
{
	const unsigned char *t = sqlite3_column_text(q, 0);
	*(char **)out = t ? strdup((const char *)t) : NULL;
}

int64_t h_sql_int(const char *path, const char *sql)
{
	int64_t v = -1;
	sql_first(path, sql, take_int, &v);
	return v;
}

char *h_sql_text(const char *path, const char *sql)
{
	char *v = NULL;
	sql_first(path, sql, take_text, &v);
	return v;
}

void h_done_dir(char *dir)
{
	if (!dir)
		return;
	if (getenv("KEEP_TMP"))
		fprintf(stderr, "kept %s\n", dir);
	else
		h_rmtree(dir);
	free(dir);
}

size_t h_to_gbk(const char *utf8, char *out, size_t cap)
{
	iconv_t cd = iconv_open("GB18030", "UTF-8");
	char *in = (char *)utf8, *o = out;
	size_t il = strlen(utf8), ol = cap;
	if (cd == (iconv_t)-1 || iconv(cd, &in, &il, &o, &ol) == (size_t)-1) {
		fprintf(stderr, "h_to_gbk: cannot convert \"%s\": %s\n", utf8, strerror(errno));
		abort();
	}
	iconv_close(cd);
	return cap - ol;
}
