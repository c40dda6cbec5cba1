/* main.c — the command line (SPEC §2): parse, dispatch, map failures to sysexits codes. */
#include "buffer.h"
#include "chain.h"
#include "checkpoint.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "daemon.h"
#include "flushcmd.h"
#include "log.h"
#include "metrics.h"
#include "modbus.h"
#include "owner.h"
#include "report.h"
#include "scan.h"
#include "status.h"
#include "timeutil.h"
#include "uploader.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/labshare-agent/agent.json"

static const char usage_text[] =
	"usage: labshare-agent [-c FILE] [-v] COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  run                      run the daemon in the foreground (what systemd starts)\n"
	"  check                    validate the configuration; print ok or every error\n"
	"  poll                     read every Modbus source once and print the values\n"
	"  flush                    upload everything pending and wait for the acknowledgement\n"
	"                           (beside a running daemon, the daemon does it)\n"
	"  status [--json]          sources, buffer and upload state\n"
	"  report --from DATE --to DATE [--format csv|json|html] [-o FILE] [--instrument ID]\n"
	"                           the auditors' report over local days FROM..TO\n"
	"  verify [--remote]        re-hash the whole local chain; --remote: and hold it against\n"
	"                           the platform's acknowledged copy\n"
	"  record --instrument ID --start T --end T --user U --org O [--samples N]\n"
	"         [--external yes|no] [--note TEXT]\n"
	"                           seal a manual session (a paper log entered late)\n"
	"  profiles                 list the built-in meter profiles and their sources\n"
	"  scan BUS [--units A-B]   probe units on a configured bus (read-only): which answer,\n"
	"                           which profiles fit\n"
	"\n"
	"options:\n"
	"  -c, --config FILE        configuration (default $LABSHARE_CONFIG, then " DEFAULT_CONFIG ")\n"
	"  -v, --verbose            debug messages\n"
	"  -h, --help               this help\n"
	"  -V, --version            the version\n";

static int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int usage_error(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_error("%s", msg);
	fputs("try 'labshare-agent --help'\n", stderr);
	return EX_USAGE;
}

/* Loads the config for commands that need it; prints every problem. */
static int load_config(const char *path, struct config **cfg)
{
	struct config_errors errs = { 0 };
	int r = config_load(path, cfg, &errs);
	if (r == 0) {
		/* Every command speaks the lab's local time. */
		timeutil_set_zone((*cfg)->agent.timezone);
		/* Run as root, act as the state folder's owner: SQLite's -wal and -shm, a repaired
		 * buffer, must stay the service's. */
		if ((r = owner_become_state_user((*cfg)->agent.state_dir)) < 0) {
			cli_error("%s: cannot act as its owner: %s", (*cfg)->agent.state_dir, strerror(-r));
			config_free(*cfg);
			*cfg = NULL;
			return EX_NOPERM;
		}
		return 0;
	}
	size_t n = errs.n;
	for (size_t i = 0; i < errs.n; i++)
		cli_error("%s", errs.msg[i]);
	config_errors_clear(&errs);
	if (r == -EINVAL)
		return EX_CONFIG;
	if (n == 0) /* a file that can't be read is already one of errs: said once */
		cli_error("%s: %s", path, strerror(-r));
	return r == -ENOENT || r == -EACCES ? EX_NOINPUT : EX_CONFIG;
}

static int cmd_check(const char *path)
{
	struct config *cfg = NULL;
	int code = load_config(path, &cfg);
	if (code == 0)
		puts("ok");
	config_free(cfg);
	return code;
}

static int open_buffer_ro(const struct config *cfg, struct buffer **b)
{
	int r = buffer_open(cfg->agent.state_dir, BUFFER_READONLY, b, NULL);
	if (r == -ENOENT)
		return 1; /* no buffer yet: nothing sealed */
	if (r < 0) {
		cli_error("%s/%s: %s", cfg->agent.state_dir, BUFFER_FILE, strerror(-r));
		return -1;
	}
	return 0;
}

/* Options of a command that takes one flag and --help: -1 to go on, else the exit code. */
static int one_flag_options(int argc, char **argv, const char *cmd, const char *flag, bool *set)
{
	const struct option opts[] = {
		{ flag, no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'f') {
			*set = true;
		} else if (c == 'h') {
			printf("usage: labshare-agent %s [--%s]\n", cmd, flag);
			return 0;
		} else {
			return usage_error("%s: unknown option", cmd);
		}
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument \"%s\"", cmd, argv[optind]);
	return -1;
}

static int cmd_verify(const char *path, int argc, char **argv)
{
	bool remote = false;
	int code = one_flag_options(argc, argv, "verify", "remote", &remote);
	if (code >= 0)
		return code;

	struct config *cfg = NULL;
	code = load_config(path, &cfg);
	if (code)
		return code;
	struct buffer *b = NULL;
	struct checkpoint_local local = { 0 };
	memset(local.head.hash, '0', HASH_HEX_LEN);
	local.pruned = local.head;
	int r = open_buffer_ro(cfg, &b);
	if (r == 1) {
		printf("intact: no records sealed yet\n");
		code = remote ? checkpoint_verify(cfg, NULL, &local, stdout) : 0;
		config_free(cfg);
		return code;
	}
	if (r < 0) {
		config_free(cfg);
		return EX_NOINPUT;
	}
	struct chain_verify res;
	r = chain_verify(b, &res);
	if (r == 0) {
		if (res.records == 0)
			printf("intact: no records (head %" PRId64 ", hash %s)\n", res.last_seq, res.head_hash);
		else
			printf("intact: %" PRId64 " records, seq %" PRId64 "..%" PRId64 ", head hash %s\n",
			       res.records, res.first_seq, res.last_seq, res.head_hash);
		code = 0;
		if (remote) {
			/* Intact is only consistent: the platform's copy says whether it is what was sent. */
			local.head.seq = res.last_seq;
			memcpy(local.head.hash, res.head_hash, sizeof(local.head.hash));
			buffer_pruned(b, &local.pruned);
			fflush(stdout);
			code = checkpoint_verify(cfg, b, &local, stdout);
		}
	} else if (r == 1) {
		printf("broken: first bad seq %" PRId64 ": %s\n", res.bad_seq, res.why);
		cli_error("chain broken at seq %" PRId64 ": %s", res.bad_seq, res.why);
		code = 1;
	} else {
		cli_error("%s: %s", buffer_path(b), strerror(-r));
		code = EX_IOERR;
	}
	buffer_close(b);
	config_free(cfg);
	return code;
}

/* `status` at 5,000 instruments touches some 30 MB for a fraction of a second, and 4 KiB page
 * faults (8,000) were most of its time. For this short process the heap grows in one step, keeps
 * what one parse frees for the next (the configuration's tree, then status.json's), and asks for
 * transparent huge pages where the system gives them on request (THP "madvise" or "always"):
 * 2 MiB a fault. Nothing changes where it does not. */
static void status_heap(void)
{
	enum { MB = 1 << 20, HUGE = 2 * MB };
	mallopt(M_MMAP_THRESHOLD, 64 * MB);
	mallopt(M_TRIM_THRESHOLD, 512 * MB);
	mallopt(M_TOP_PAD, 64 * MB);
	char *p = malloc(MB);  /* more than the heap has left: it grows by the pad now */
	char *top = sbrk(0);
	if (p && top != (char *)-1 && p < top && top - p > HUGE) {
		uintptr_t lo = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
		uintptr_t hi = (uintptr_t)top & ~(uintptr_t)(HUGE - 1);
		if (hi > lo)
			madvise((void *)lo, hi - lo, MADV_HUGEPAGE);  /* EINVAL without THP: fine */
	}
	free(p);
}

static int cmd_status(const char *path, int argc, char **argv)
{
	bool json = false;
	int code = one_flag_options(argc, argv, "status", "json", &json);
	if (code >= 0)
		return code;
	status_heap();

	struct config *cfg = NULL;
	code = load_config(path, &cfg);
	if (code)
		return code;
	long pid = 0;
	bool running = daemon_running(cfg->agent.state_dir, &pid);
	struct buffer *b = NULL;
	if (open_buffer_ro(cfg, &b) < 0)
		b = NULL;
	struct status *st = status_new(cfg);
	if (!st) {
		cli_error("status: %s", strerror(ENOMEM));
		buffer_close(b);
		config_free(cfg);
		return EX_OSERR;
	}
	/* Beside a running daemon, the instruments' live parts are the daemon's (status.json);
	 * the buffer's and the sinks' come from the file, as fresh as it is. */
	struct metrics *mx = b ? metrics_new(b, cfg) : NULL;
	status_fill_buffer(st, cfg, b, running, pid);
	if (running)
		status_read_live(st, cfg->agent.state_dir);
	status_fill_idle(st, b, mx);
	status_fill_repeats(st, b, mx);
	metrics_free(mx);
	if (json) {
		char *text = status_json(st, NULL);
		if (text)
			puts(text);
		else
			cli_error("status: %s", strerror(ENOMEM));
		free(text);
	} else {
		status_text(st, stdout);
	}
	status_free(st);
	buffer_close(b);
	config_free(cfg);
	return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int cmd_record(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "instrument", required_argument, NULL, 'i' },
		{ "start", required_argument, NULL, 's' },
		{ "end", required_argument, NULL, 'e' },
		{ "user", required_argument, NULL, 'u' },
		{ "org", required_argument, NULL, 'o' },
		{ "samples", required_argument, NULL, 'n' },
		{ "external", required_argument, NULL, 'x' },
		{ "note", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *instrument = NULL, *start = NULL, *end = NULL, *user = NULL, *org = NULL;
	const char *samples = NULL, *external = NULL, *note = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': instrument = optarg; break;
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'u': user = optarg; break;
		case 'o': org = optarg; break;
		case 'n': samples = optarg; break;
		case 'x': external = optarg; break;
		case 'N': note = optarg; break;
		case 'h':
			fputs("usage: labshare-agent record --instrument ID --start T --end T --user U "
			      "--org O [--samples N] [--external yes|no] [--note TEXT]\n", stdout);
			return 0;
		default:
			return usage_error("record: unknown option");
		}
	}
	if (optind < argc)
		return usage_error("record: unexpected argument \"%s\"", argv[optind]);
	if (!instrument || !start || !end || !user || !org)
		return usage_error("record: --instrument, --start, --end, --user and --org are required");
	const char *op = getenv("SUDO_USER");
	if (!op || !*op)
		op = getenv("USER");
	if (!op || !*op)
		op = "unknown";

	/* Everything sealed is UTF-8 (SPEC §3): the text arguments come in the terminal's
	 * charset, so they are converted from the locale's, and refused when they are not
	 * valid in it. Only LC_CTYPE: numbers and times keep the C locale's reading. A locale
	 * that is named but not installed leaves C's ASCII: the message says so, or the charset
	 * in it would puzzle whoever typed in GBK. */
	const char *hint = setlocale(LC_CTYPE, "") ? "" :
			   " (the locale set by LC_ALL, LC_CTYPE or LANG is not installed)";
	const char *charset = nl_langinfo(CODESET);
	struct {
		const char *name, **arg;
		char *utf8;
	} text[] = {
		{ "--instrument", &instrument, NULL }, { "--user", &user, NULL }, { "--org", &org, NULL },
		{ "--note", &note, NULL }, { "the operator ($SUDO_USER or $USER)", &op, NULL },
	};
	size_t n_text = sizeof(text) / sizeof(text[0]);
	struct config *cfg = NULL;
	int code = EX_DATAERR;
	for (size_t i = 0; i < n_text; i++) {
		if (!*text[i].arg)
			continue;
		int r = utf8_from_charset(charset, *text[i].arg, &text[i].utf8);
		if (r == -EILSEQ) {
			cli_error("record: %s: not valid in the locale's charset \"%s\"%s", text[i].name, charset, hint);
			goto out;
		}
		if (r < 0) {
			cli_error("record: %s: cannot convert from the locale's charset \"%s\": %s", text[i].name,
				  charset, strerror(-r));
			goto out;
		}
		*text[i].arg = text[i].utf8;
	}

	if ((code = load_config(path, &cfg)) != 0)
		goto out;
	struct obs o = { .type = OBS_SESSION, .instrument = instrument };
	struct obs_session *s = &o.u.session;
	s->user = user;
	s->org = org;
	s->samples = -1;
	s->external = -1;
	s->manual = true;
	s->note = note;
	s->operator_name = op;
	code = EX_DATAERR;
	if (!config_instrument(cfg, instrument)) {
		cli_error("record: --instrument \"%s\": not an instrument of this agent", instrument);
		goto out;
	}
	if (time_parse_iso(start, &s->start) < 0) {
		cli_error("record: --start \"%s\": not a time (use 2026-11-02 08:00 or RFC 3339)", start);
		goto out;
	}
	if (time_parse_iso(end, &s->end) < 0) {
		cli_error("record: --end \"%s\": not a time (use 2026-11-02 10:30 or RFC 3339)", end);
		goto out;
	}
	if (s->end <= s->start) {
		cli_error("record: --end \"%s\" is not after --start \"%s\"", end, start);
		goto out;
	}
	if (s->end - s->start > 31 * 86400) {
		cli_error("record: session of %" PRId64 " h is longer than 31 days", (s->end - s->start) / 3600);
		goto out;
	}
	if (!*user || !*org) {
		cli_error("record: --user and --org must not be empty");
		goto out;
	}
	if (samples && (parse_i64(samples, &s->samples) < 0 || s->samples < 0 || s->samples > 1000000)) {
		cli_error("record: --samples \"%s\": must be a whole number 0..1000000", samples);
		goto out;
	}
	if (external) {
		if (strcmp(external, "yes") == 0)
			s->external = 1;
		else if (strcmp(external, "no") == 0)
			s->external = 0;
		else {
			cli_error("record: --external \"%s\": must be yes or no", external);
			goto out;
		}
	}
	/* The rules the core applies to every source (plausible.h), said before anything opens. */
	const char *why = NULL;
	if (core_session_check(cfg, instrument, s, clock_wall(), &why) < 0) {
		cli_error("record: session refused: %s", why);
		goto out;
	}
	struct buffer *b = NULL;
	if (buffer_open(cfg->agent.state_dir, 0, &b, NULL) < 0) {
		cli_error("record: cannot open the buffer in \"%s\"", cfg->agent.state_dir);
		code = EX_CANTCREAT;
		goto out;
	}
	struct core *core = core_new(cfg, b);
	/* A running daemon may seal meanwhile, so the repeat count says what happened, not the head. */
	int64_t repeats = core ? core_sessions_repeated(core, instrument) : 0;
	int r = core ? core_submit(core, &o, 1, NULL, NULL, 0) : -ENOMEM;
	struct chain_head head;
	buffer_head(b, &head);
	if (r < 0) {
		cli_error("record: cannot seal the session: %s", strerror(-r));
		code = r == -ENOSPC ? EX_TEMPFAIL : r == -EINVAL || r == -EILSEQ ? EX_DATAERR : EX_IOERR;
	} else if (core_sessions_repeated(core, instrument) > repeats) {
		/* SPEC §3: the same session twice is sealed once; status counts the repeat. */
		printf("not sealed: the same session (instrument, start, end, user) is already sealed; "
		       "counted as a repeat\n");
		code = 0;
	} else {
		printf("sealed as seq %" PRId64 "\n", head.seq);
		code = 0;
	}
	core_free(core);
	buffer_close(b);
out:
	config_free(cfg);
	for (size_t i = 0; i < n_text; i++)
		free(text[i].utf8);
	return code;
}

/* Why a command's earlier write to stdout failed, for close_stdout to say once. */
static int stdout_errno;

/* Where `report -o FILE` writes. A regular file (or a new one) is written beside it and
 * renamed, so a reader never sees half a report. A symlink is followed: the file it points
 * to is replaced that way and the link stays a link. Anything else that exists (a device,
 * a FIFO) is written directly: renaming over it would swap /dev/null or a pipe for a file.
 * *tmp and *target (caller frees) are set when a rename is due. 0 or -errno. */
static int open_report_output(const char *output, FILE **out, char **tmp, char **target)
{
	struct stat st;
	*tmp = *target = NULL;
	if (lstat(output, &st) == 0 && S_ISLNK(st.st_mode)) {
		*target = realpath(output, NULL);
		if (!*target && errno != ENOENT)
			return -errno;
		if (!*target) {
			/* A dangling link: the file it names is created through it. */
			*out = fopen(output, "w");
			return *out ? 0 : -errno;
		}
		if (stat(*target, &st) < 0) {
			int e = -errno;
			free(*target);
			*target = NULL;
			return e;
		}
	} else if (!(*target = strdup(output))) {
		return -ENOMEM;
	}
	if (stat(*target, &st) == 0 && !S_ISREG(st.st_mode)) {
		free(*target);
		*target = NULL;
		if (S_ISDIR(st.st_mode))
			return -EISDIR;
		*out = fopen(output, "w");
		return *out ? 0 : -errno;
	}
	if (asprintf(tmp, "%s.tmp.%ld", *target, (long)getpid()) < 0) {
		*tmp = NULL;
		free(*target);
		*target = NULL;
		return -ENOMEM;
	}
	if (!(*out = fopen(*tmp, "w"))) {
		int e = -errno;
		free(*tmp);
		free(*target);
		*tmp = *target = NULL;
		return e;
	}
	return 0;
}

static int cmd_report(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ "instrument", required_argument, NULL, 'i' },
		{ "bom", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = NULL, *to = NULL, *format = "csv", *output = NULL;
	struct report_opts o = { .format = REPORT_CSV };
	int c;
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'F': format = optarg; break;
		case 'o': output = optarg; break;
		case 'i': o.instrument = optarg; break;
		case 'b': o.bom = true; break;
		case 'h':
			fputs("usage: labshare-agent report --from DATE --to DATE [--format csv|json|html] "
			      "[-o FILE] [--instrument ID] [--bom]\n", stdout);
			return 0;
		default:
			return usage_error("report: unknown option");
		}
	}
	if (optind < argc)
		return usage_error("report: unexpected argument \"%s\"", argv[optind]);
	if (!from || !to)
		return usage_error("report: --from and --to are required (YYYY-MM-DD)");
	if (strcmp(format, "csv") == 0)
		o.format = REPORT_CSV;
	else if (strcmp(format, "json") == 0)
		o.format = REPORT_JSON;
	else if (strcmp(format, "html") == 0)
		o.format = REPORT_HTML;
	else
		return usage_error("report: --format \"%s\": must be csv, json or html", format);

	struct config *cfg = NULL;
	int code = load_config(path, &cfg);
	if (code)
		return code;
	code = EX_USAGE;
	if ((o.from_day = time_parse_date(from)) < 0) {
		cli_error("report: --from \"%s\": not a date (YYYY-MM-DD)", from);
		goto out;
	}
	if ((o.to_day = time_parse_date(to)) < 0) {
		cli_error("report: --to \"%s\": not a date (YYYY-MM-DD)", to);
		goto out;
	}
	if (o.to_day < o.from_day) {
		cli_error("report: --to %s is before --from %s", to, from);
		goto out;
	}
	if (o.instrument && !config_instrument(cfg, o.instrument)) {
		cli_error("report: --instrument \"%s\": not an instrument of this agent", o.instrument);
		code = EX_DATAERR;
		goto out;
	}
	struct buffer *b = NULL;
	int r;
	if (open_buffer_ro(cfg, &b) < 0) {
		code = EX_NOINPUT;
		goto out;
	}
	char *tmp = NULL, *target = NULL;
	FILE *out = stdout;
	if (output && strcmp(output, "-") != 0 && (r = open_report_output(output, &out, &tmp, &target)) < 0) {
		cli_error("report: cannot create \"%s\": %s", output, strerror(-r));
		buffer_close(b);
		code = EX_CANTCREAT;
		goto out;
	}
	r = report_write(b, cfg, &o, out);
	/* report_write says -EIO for a stream error; errno still holds why the write failed. */
	int write_errno = r < 0 && ferror(out) ? errno : 0;
	if (out == stdout && write_errno) {
		stdout_errno = write_errno; /* said once, by close_stdout */
		buffer_close(b);
		code = EX_IOERR;
		goto out;
	}
	if (out != stdout) {
		if (ferror(out) && r == 0)
			r = -EIO;
		if (write_errno)
			r = -write_errno;
		if (fclose(out) != 0 && r == 0)
			r = -errno;
		if (tmp && r == 0 && rename(tmp, target) < 0)
			r = -errno;
		if (tmp && r < 0)
			unlink(tmp);
		free(tmp);
		free(target);
	}
	buffer_close(b);
	if (r < 0) {
		cli_error("report: %s", strerror(-r));
		code = EX_IOERR;
	} else {
		code = 0;
	}
out:
	config_free(cfg);
	return code;
}

/* As gnulib's close_stdout: output that did not reach its file (a full disk, /dev/full, a
 * closed pipe) is an error the user must see, not a silent exit 0. Runs at exit, so every
 * command that prints is covered. */
static void close_stdout(void)
{
	bool failed = ferror(stdout) != 0;
	errno = 0;
	if (fclose(stdout) != 0)
		failed = true;
	if (!failed)
		return;
	int e = errno ? errno : stdout_errno;
	if (e)
		cli_error("write error: %s", strerror(e));
	else
		cli_error("write error");
	_exit(EX_IOERR);
}

static int run_command(int argc, char **argv);

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds only: glibc's setlocale keeps the split of LOCPATH in a static it never
 * frees (test_cli runs `record` in a GBK locale built at test time). Not ours to free. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:__argz_add_sep\n";
}
#endif

int main(int argc, char **argv)
{
	atexit(close_stdout);
	return run_command(argc, argv);
}

static int run_command(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = getenv("LABSHARE_CONFIG");
	int c;

	if (!config || !*config)
		config = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "+c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'v': log_set_level(LOG_PRI_DEBUG); break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("labshare-agent %s\n", LABSHARE_VERSION); return 0;
		default: return usage_error("unknown option");
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	const char *cmd = argv[optind];
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;
	optind = 1; /* subcommands parse their own options from here */

	if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "check") == 0 || strcmp(cmd, "run") == 0) {
		if (sub_argc > 1)
			return usage_error("unexpected argument \"%s\"", sub_argv[1]);
		if (strcmp(cmd, "check") == 0)
			return cmd_check(config);
		return daemon_run(config);
	}
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(config, sub_argc, sub_argv);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(config, sub_argc, sub_argv);
	if (strcmp(cmd, "record") == 0)
		return cmd_record(config, sub_argc, sub_argv);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(config, sub_argc, sub_argv);
	if (strcmp(cmd, "profiles") == 0) {
		if (sub_argc > 1)
			return usage_error("unexpected argument \"%s\"", sub_argv[1]);
		return profiles_list(stdout);
	}
	if (strcmp(cmd, "scan") == 0) {
		struct config *cfg = NULL;
		int code = load_config(config, &cfg);
		if (code)
			return code;
		code = scan_run(cfg, sub_argc, sub_argv, stdout);
		config_free(cfg);
		return code;
	}
	if (strcmp(cmd, "poll") == 0) {
		if (sub_argc > 1)
			return usage_error("unexpected argument \"%s\"", sub_argv[1]);
		struct config *cfg = NULL;
		int code = load_config(config, &cfg);
		if (code)
			return code;
		/* Beside a running daemon, its readings: it owns the buses (SPEC §2). */
		code = modbus_poll(cfg, stdout);
		config_free(cfg);
		return code;
	}
	if (strcmp(cmd, "flush") == 0) {
		if (sub_argc > 1)
			return usage_error("unexpected argument \"%s\"", sub_argv[1]);
		struct config *cfg = NULL;
		int code = load_config(config, &cfg);
		if (code)
			return code;
		code = flush_command(cfg);
		config_free(cfg);
		return code;
	}
	return usage_error("unknown command \"%s\"", cmd);
}
