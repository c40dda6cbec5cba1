/* log.c — one place that writes diagnostics; thread-safe, one write(2) per line. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_level = LOG_PRI_INFO;
static const char *progname = "labshare-agent";

void log_set_level(int pri) { log_level = pri; }
int log_get_level(void) { return log_level; }
void log_set_progname(const char *name) { progname = name; }

/* Formats the whole line first so concurrent threads never interleave. */
static void emit(int pri, int with_errno, int saved_errno, const char *fmt, va_list ap) PRINTF_LIKE(4, 0);
static void emit(int pri, int with_errno, int saved_errno, const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0;

	if (pri >= 0)
		n = snprintf(line, sizeof(line), "<%d>", pri);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* cut, but keep the newline */
	if (with_errno) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved_errno));
		if (m > 0)
			n += m;
		if ((size_t)n >= sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void log_vmsg(int pri, const char *fmt, va_list ap)
{
	if (pri > log_level)
		return;
	emit(pri, 0, 0, fmt, ap);
}

#define DEFINE_LOG(fn, pri, with_errno)                 \
	void fn(const char *fmt, ...)                   \
	{                                               \
		int saved = errno;                      \
		if ((pri) > log_level)                  \
			return;                         \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		emit((pri), (with_errno), saved, fmt, ap); \
		va_end(ap);                             \
		errno = saved;                          \
	}

DEFINE_LOG(log_err, LOG_PRI_ERR, 1)
DEFINE_LOG(log_errx, LOG_PRI_ERR, 0)
DEFINE_LOG(log_warn, LOG_PRI_WARNING, 1)
DEFINE_LOG(log_warnx, LOG_PRI_WARNING, 0)
DEFINE_LOG(log_notice, LOG_PRI_NOTICE, 0)
DEFINE_LOG(log_info, LOG_PRI_INFO, 0)
DEFINE_LOG(log_debug, LOG_PRI_DEBUG, 0)

void cli_error(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s: ", progname);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void log_fatalx(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(LOG_PRI_ERR, 0, 0, fmt, ap);
	va_end(ap);
	exit(code);
}
