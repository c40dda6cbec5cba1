/* harness.h — what tests share: temporary folders, files, child processes stopped by PID,
 * and waiting for a condition with a deadline (never sleeping "to give it time"). */
#ifndef LABSHARE_HARNESS_H
#define LABSHARE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Build folder (env BUILD, default "build") and paths to built programs: "build/labshare-agent". */
const char *h_build_dir(void);
/* Returns a static string valid until the next call: "<build>/<name>". */
const char *h_build_path(const char *name);

/* A fresh folder under $TMPDIR (or /tmp); removed recursively by h_rmtree. Caller frees. */
char *h_mkdtemp(const char *prefix);
int h_rmtree(const char *path);

/* "dir/name", caller frees. */
char *h_path(const char *dir, const char *name);
/* Write len bytes (len == (size_t)-1: strlen) with the given mode; 0 or -errno. */
int h_write_file(const char *path, const char *data, size_t len, int mode);
int h_append_file(const char *path, const char *data, size_t len);
/* Whole file, NUL-terminated; NULL on error. *len may be NULL. Caller frees. */
char *h_read_file(const char *path, size_t *len);
/* printf into a new string; caller frees. */
char *h_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A child process. argv[0] is a path. Output goes to files in the harness's folder
 * (or the test's own choice) so a test can read it afterwards. */
struct h_proc {
	pid_t pid;
	int stdin_fd;        /* write end of the child's stdin, or -1 */
	int stdout_fd;       /* read end of the child's stdout, or -1 (when out_path given) */
	char *out_path;      /* child's stdout+stderr when captured to a file */
	int status;          /* wait status once reaped */
	bool reaped;
};

/* Start argv with extra environment entries (NAME=value, NULL-terminated, may be NULL).
 * pipe_stdin: give the child a pipe as stdin (else /dev/null). pipe_stdout: give a pipe
 * as stdout (else stdout and stderr go to out_path if non-NULL, else inherit). */
struct h_proc *h_spawn(char *const argv[], char *const env[], bool pipe_stdin, bool pipe_stdout,
		       const char *out_path);
/* SIGTERM, then SIGKILL after timeout_ms; reaps. Returns the wait status. NULL-safe. */
int h_stop(struct h_proc *p, int timeout_ms);
/* Send a signal to the child by PID. */
int h_kill(struct h_proc *p, int sig);
/* Wait for exit up to timeout_ms; returns exit code (0..255), 128+sig when killed, -1 on timeout. */
int h_wait(struct h_proc *p, int timeout_ms);
void h_proc_free(struct h_proc *p);
/* Write a line to the child's stdin pipe and read one reply line from its stdout pipe,
 * with a deadline; returns the reply (caller frees) or NULL. */
char *h_request(struct h_proc *p, const char *line, int timeout_ms);
/* Read one line from the child's stdout pipe with a deadline; caller frees; NULL on timeout/EOF. */
char *h_read_line(struct h_proc *p, int timeout_ms);

/* Run a command to completion and capture its stdout and stderr separately.
 * Returns the exit code (as h_wait) and fills *out / *err (caller frees; may be NULL). */
int h_run(char *const argv[], char *const env[], char **out, char **err, int timeout_ms);

/* Poll cond(arg) every few milliseconds until it returns true or timeout_ms passes. */
bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);
/* Wait until the file exists and is non-empty; true when it does. */
bool h_wait_file(const char *path, int timeout_ms);

/* A throw-away PKI made with tests/refplat/mkcerts.sh, in "<dir>/certs" (CA, server and
 * client certificates); returns that folder (caller frees) or NULL with the reason on stderr.
 * Made once per process and copied: every call in one test program gets the same CA. */
char *h_make_certs(const char *dir);

/* With H_TRACE set in the environment: "[   1.234 s] what" on stderr, seconds since the first
 * call, to find where a test spends its time. Silent otherwise. */
void h_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One integer from a SQLite file opened read-only (the platform's db, or an agent's buffer):
 * the first column of the first row, or -1. */
int64_t h_sql_int(const char *path, const char *sql);
/* The same, as text (a JSON column, a row joined with ||): caller frees; NULL without one. */
char *h_sql_text(const char *path, const char *sql);
/* A test folder done with: kept (and said on stderr) with KEEP_TMP set, else removed; freed. */
void h_done_dir(char *dir);

/* utf8 in GB18030 (a Chinese lab's logs) into out: the bytes written. Tests convert text of
 * their own, so a failure (no GB18030 in iconv, out too small) aborts, with the reason. */
size_t h_to_gbk(const char *utf8, char *out, size_t cap);

/* An unused TCP port on 127.0.0.1 (bind to 0, read it back, close). */
int h_free_port(void);

#endif
