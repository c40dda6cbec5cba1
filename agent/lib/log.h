/* log.h — logging to stderr with syslog priority prefixes, so journald keeps the levels. */
#ifndef LABSHARE_LOG_H
#define LABSHARE_LOG_H

#include <stdarg.h>

#define LOG_PRI_ERR     3
#define LOG_PRI_WARNING 4
#define LOG_PRI_NOTICE  5
#define LOG_PRI_INFO    6
#define LOG_PRI_DEBUG   7

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Messages above this priority are dropped (default: info). */
void log_set_level(int pri);
int  log_get_level(void);
/* Prefix for log_fatal and die(): "labshare-agent". */
void log_set_progname(const char *name);

/* _warn variants append ": strerror(errno)", _warnx ones don't. */
void log_err(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_errx(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_notice(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_vmsg(int pri, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

/* For the command line: "labshare-agent: <what>: <why>" without a priority prefix. */
void cli_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Only while starting up: log and exit with the given sysexits code. */
_Noreturn void log_fatalx(int code, const char *fmt, ...) PRINTF_LIKE(2, 3);

#endif
