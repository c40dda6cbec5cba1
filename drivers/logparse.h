/* logparse.h — instrument log records to sessions, without files: record framing (CSV quotes
 * may span lines), CSV with a header row, JSON Lines, a line regex, and login/logout events
 * paired into sessions. Pure functions over bytes, so every rule is testable and fuzzable. */
#ifndef LABSHARE_LOGPARSE_H
#define LABSHARE_LOGPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source_conf.h"
#include "plausible.h"
#include "source.h"

struct cJSON;

#define LP_LINE_MAX     65536  /* a record longer than this is cut and malformed */
#define LP_CSV_MAX_COLS 256    /* columns past this in one record make it malformed */
#define LP_CSV_MAX_SPAN 16     /* physical lines one quoted CSV field may span */
#define LP_TEXT_MAX     256    /* bytes of a bad line shown in the journal (never sealed) */
#define LP_MAX_SESSION_S PLAUSIBLE_SPAN_S /* longer is a typo in a date, not a session */
#define LP_OPEN_MAX     1024   /* open starts kept per events log */

/* A bump allocator whose strings stay put until reset: what one batch of observations
 * borrows until core_submit has sealed it. */
struct lp_arena;
struct lp_arena *lp_arena_new(void);
void lp_arena_reset(struct lp_arena *a);
void lp_arena_free(struct lp_arena *a);
/* A NUL-terminated copy; NULL when out of memory. */
char *lp_arena_strndup(struct lp_arena *a, const char *s, size_t n);

/* Where the next record of buf[0..n) ends. */
struct lp_frame {
	size_t len;        /* the record's bytes, without its line end (CR LF or LF) */
	size_t consumed;   /* bytes to step over, line end included */
	unsigned lines;    /* physical lines it covers (1, or more for quoted CSV newlines) */
	bool bad_quote;    /* CSV: a quote left open past LP_CSV_MAX_SPAN lines: the first line alone */
};
/* Returns 1 with *f filled, 0 when more bytes are needed. eof: no more bytes will come, so a
 * last record without a line end is taken as it is. csv: a quoted field may hold newlines. */
int lp_frame(bool csv, const char *buf, size_t n, bool eof, struct lp_frame *f);

/* CSV columns of the mapped fields, learnt from a file's header row (kept per file). */
struct lp_csv_cols {
	bool have_header;
	int col[SF__COUNT];   /* -1: not mapped, or not in the header */
};
void lp_csv_cols_reset(struct lp_csv_cols *c);

enum lp_kind {
	LP_SKIP,        /* blank line, or a line a regex/events log doesn't describe */
	LP_HEADER,      /* a CSV header row: columns learnt (why: columns missing, if any) */
	LP_SESSION,     /* a whole session */
	LP_START,       /* events: a login (s.start is its time) */
	LP_END,         /* events: a logout (s.start is its time) */
	LP_MALFORMED,   /* why says what is wrong */
};

struct lp_result {
	enum lp_kind kind;
	struct obs_session s;  /* strings live in the arena given to lp_parse */
	bool keyed;            /* events: the line's pattern has a user group */
	char why[192];
};

struct lp_parser;
/* A parser for one configured log; NULL with errno set (iconv lacks the encoding). */
struct lp_parser *lp_parser_new(const struct log_cfg *cfg);
void lp_parser_free(struct lp_parser *p);

/* One record (raw bytes in the log's encoding, no line end); a byte-order mark where it
 * begins is dropped. cols: the file's CSV columns (csv only; may be NULL otherwise). Times,
 * samples and durations are checked with plausible_session() at clock_wall(); out->why never
 * quotes the record (it is sealed in a log_malformed event). */
void lp_parse(struct lp_parser *p, struct lp_csv_cols *cols, const char *rec, size_t len,
	      struct lp_arena *a, struct lp_result *out);

/* A record as printable UTF-8 for a message: converted when it can be, \xNN for bytes that
 * can't, cut to LP_TEXT_MAX bytes with "…". In a; NULL when out of memory. */
const char *lp_text(struct lp_parser *p, const char *rec, size_t len, struct lp_arena *a);

/* A time per a strptime(3) format (local time, DST decided by the zone; %z honoured), or
 * ISO 8601 / RFC 3339 when fmt is NULL. Surrounding blanks are ignored. 0 or -EINVAL. */
int lp_parse_time(const char *fmt, const char *s, int64_t *out);
/* An "external" column: 1 (yes, true, 1, 是, 外部 …), 0 (no, false, 0, 否, 内部 …), -1 unknown. */
int lp_parse_external(const char *s);

/* Events logs: open starts keyed by user (or one key for the instrument), closed by the
 * next end of the same key, by the next start of the same key, or at max_session_h. */
struct lp_pairs;
struct lp_pairs *lp_pairs_new(double max_session_h);
void lp_pairs_free(struct lp_pairs *pp);
void lp_pairs_clear(struct lp_pairs *pp);
size_t lp_pairs_count(const struct lp_pairs *pp);

/* Receives each session that closes; its strings are valid during the call only.
 * Returns 0, or a negative errno that stops the feed (the pairs are then as before). */
typedef int (*lp_emit_fn)(void *arg, const struct obs_session *s);

/* Feed one LP_START or LP_END. Returns 0, 1 when the mark can't be paired (why says so;
 * nothing changed), or the emitter's negative errno. */
int lp_pairs_feed(struct lp_pairs *pp, const struct lp_result *mark, lp_emit_fn emit, void *arg,
		  char *why, size_t whylen);
/* Close the starts older than max_session_h at now (their start + the limit). */
int lp_pairs_expire(struct lp_pairs *pp, int64_t now, lp_emit_fn emit, void *arg);

/* The open starts as JSON (for a driver's cursor) and back. from_json replaces what is open;
 * -EINVAL when arr is not what to_json makes. */
struct cJSON *lp_pairs_to_json(const struct lp_pairs *pp);
int lp_pairs_from_json(struct lp_pairs *pp, const struct cJSON *arr);

#endif
