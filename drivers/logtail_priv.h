/* logtail_priv.h — the log tail's own state, shared by its parts and seen by no one else:
 * logtail.c (the thread, status, the driver ops), logtail_follow.c (finding and following files
 * across rotation), logtail_batch.c (reading records into the batch, committing it) and
 * logtail_cursor.c (the cursor: where every file was read to, as committed with the batch). */
#ifndef LABSHARE_LOGTAIL_PRIV_H
#define LABSHARE_LOGTAIL_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "logtail.h"
#include "source_conf.h"
#include "submit.h"
#include "logparse.h"
#include "ownfiles.h"

#define CURSOR_VERSION 1
#define FP_BYTES 256                        /* a file is known by its first bytes of data */
#define FP_MAX (LP_LINE_MAX + FP_BYTES)     /* … counted after a CSV header, which is the same in every file */
#define READ_BUF (4 * LP_LINE_MAX)
#define OPEN_MAX 128                        /* descriptors kept open per log beyond rotation */
#define MISSING_MAX 256                     /* vanished files remembered per log … */
#define MISSING_KEEP_S (31 * 86400)         /* … for this long, in case they come back */
#define WARN_PER_MIN 10                     /* malformed lines logged per log and minute */
#define RETRY_MAX_MS 30000
#define RING_MAX 32                         /* records remembered per file for lt_resync (< 64) */

#define HASH_INIT 0xcbf29ce484222325ULL

/* One file followed: where it was read to and how it is recognised. */
struct tfile {
	char *path;                 /* where it was last seen */
	uint64_t dev, ino;
	uint64_t fp;                /* hash of the first fp_len bytes */
	uint32_t fp_len;
	uint64_t sum;               /* hash of every byte before off: finds copies of it */
	int64_t off;                /* the next byte to read: always a record boundary */
	int64_t line;               /* physical lines before off */
	int64_t hdr_end;            /* csv: where the header row ends (0: not read yet) */
	struct lp_csv_cols cols;
	bool skip_nl;               /* inside an over-long line that was cut: skip to its end */
	bool gone;                  /* no configured path leads here any more: drain it */
	int64_t missing_since;      /* wall time it vanished (0: present): remembered, not read, so
				     * that a share coming back (maybe on another device) isn't
				     * read again from its first byte */
	int fd;                     /* -1: closed (reopened by path when it changes) */
	int64_t size, mtime_ns;     /* at the last look; size -1: not looked at since loading */
	int64_t quiet_since_ms;     /* last change seen (clock_mono_ms) */
	uint64_t order;             /* when it was found: ties in reading order */
	/* scratch of one round */
	bool seen;
	int64_t st_size, st_mtime_ns;
	bool header_warned;
	bool read_err_logged;
	/* In memory only: the last records read, to recognise a file rewritten in place that
	 * keeps its last lines (lost on a restart; the core's de-duplication covers that). */
	uint64_t ring[RING_MAX];    /* record hashes, ring[(ring_next - 1) % RING_MAX] the newest */
	uint32_t ring_n, ring_next;
	uint64_t hdr_hash;          /* csv: the header record's hash (0: none seen) */
	bool resync;                /* restarted from byte 0: skip what is the old tail first */
	/* What the committed base cursor says of it (logtail_cursor.c): a commit writes only the
	 * files that differ from it. in_base false: not in the base (new since). */
	bool in_base;
	struct tsaved {
		char *path;
		const char *path_ptr;   /* f->path then: unchanged while equal (NULLed when replaced) */
		uint64_t dev, ino, fp, sum;
		uint32_t fp_len;
		int64_t off, line, hdr_end, missing_since;
		struct lp_csv_cols cols;
		bool skip_nl, gone;
	} base;
};

struct logtail;

/* One configured log of one instrument, with every file its path or glob leads to. */
struct tail {
	struct logtail *lt;
	const char *instrument;
	const struct log_cfg *cfg;
	char *key;
	bool is_glob, broken;
	struct lp_parser *parser;
	struct lp_pairs *pairs;     /* events logs: open logins */
	struct tfile **files;
	size_t n_files, cap_files;
	struct tfile **index;       /* files by device and inode during lt_discover() */
	size_t n_index, cap_index;
	struct tfile **dropped;     /* forgotten in this batch: closed once it is committed */
	size_t n_dropped, cap_dropped;
	uint64_t next_order;
	int64_t lines, malformed;   /* totals since the log was first followed */
	/* The cursor in two parts (logtail_cursor.c): under key every file as of generation gen
	 * (rewritten when the other part grows), under dkey what changed since, with each batch. */
	char *dkey;
	char *committed_base;       /* as last committed; NULL: none yet */
	char *committed;            /* the changes as last committed; NULL: none since the base */
	int64_t gen;
	uint64_t *drops;            /* orders of files of the base dropped since */
	size_t n_drops, cap_drops, n_delta, delta_sum;
	bool dirty;                 /* state changed beyond what the batch's records show */

	/* the batch being built */
	struct obs *obs;
	size_t n_obs, cap_obs;
	struct lp_arena *arena;
	size_t batch_bytes;

	int64_t retry_at_ms;
	int fails;
	int64_t warn_window_ms;
	unsigned warned, suppressed;
	char *open_err_path;        /* the last path that could not be opened, logged once */
	char **refused;             /* paths refused (a link, a secret): each logged once */
	size_t n_refused, cap_refused;
	bool paused;
	bool glob_err_logged, missing_logged;
	struct {                    /* logtail_look.c: the folder as the last full look found it */
		char *dir;          /* NULL: wildcards before the last '/', every look is full */
		bool dir_known, valid;
		uint64_t dev, ino;
		int64_t mtime_ns, ctime_ns, full_ms;
		size_t next;        /* the quiet files' turn */
	} look;

	/* what status() shows, under lt->mu */
	char *st_file;
	int64_t st_off, st_lines, st_malformed;
	size_t st_files, st_open;
	bool st_paused, st_broken;
};

struct logtail {
	struct core *core;
	struct tail **tails;
	size_t n_tails;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;         /* stop flag and status */
	pthread_cond_t cv;
	bool stop;
	atomic_bool stopping;       /* looked at between batches of a long read */
	atomic_uint_fast64_t rounds;
	atomic_uint_fast64_t quick_looks;
	_Atomic int64_t beat_ms;    /* monotonic: a round ended or a batch was committed */
	char *rbuf;
	unsigned char *fpbuf;
	struct own_files *own;      /* the agent's secrets and state: never read as a log */
};

/* logtail.c */
void lt_publish(struct tail *t);

/* logtail_follow.c */
uint64_t lt_hash_more(uint64_t h, const void *data, size_t n);
int64_t lt_mtime_ns(const struct stat *st);
bool lt_fp_complete(const struct tail *t, const struct tfile *f);
void lt_file_free(struct tfile *f);
struct tfile *lt_file_new(const char *path);
int lt_push(void **arr, size_t *n, size_t *cap, void *item);
int lt_rotated(struct tail *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lt_fingerprint(struct tail *t, struct tfile *f);
uint64_t lt_rec_hash(const char *rec, size_t len);
void lt_ring_push(struct tfile *f, uint64_t h);
bool lt_resync(struct tail *t, struct tfile *f, bool final);
void lt_drop(struct tail *t, size_t i);
int lt_discover(struct tail *t);
int lt_check_file(struct tail *t, struct tfile *f);

/* logtail_look.c */
int lt_look(struct tail *t);
void lt_look_free(struct tail *t);

/* logtail_batch.c */
int lt_add_event(struct tail *t, const char *type, const char *detail);
int lt_commit(struct tail *t);
int lt_record(struct tail *t, struct tfile *f, const char *rec, const struct lp_frame *fr,
	      int64_t at);
void lt_poll_tail(struct tail *t);

/* logtail_cursor.c */
/* The changes since the base, to commit with a batch under t->dkey. */
char *lt_cursor_text(struct tail *t, size_t *len);
/* After a commit: a new base under t->key when the changes have grown. */
void lt_cursor_rebase(struct tail *t);
void lt_files_free(struct tfile **v, size_t n);
/* Replace the in-memory state with the committed base and changes (either NULL: none). */
int lt_state_load(struct tail *t, const char *base, const char *delta);

#endif
