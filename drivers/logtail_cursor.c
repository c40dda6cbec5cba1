/* logtail_cursor.c — the log tail's cursor: every file's position and fingerprint as JSON,
 * committed with the batch that read up to it, and loaded back after a restart or a failure.
 * In two parts, so that a batch does not rewrite every file of a large glob (SPEC §3: a
 * round's cost does not grow with files that no longer change): the base, every file as of
 * a generation, under the log's key; and the changes since that base — files that differ
 * from it or are new, the base's files dropped, the totals — under key "#delta", with each
 * batch. Once the changes written since the base add up to as many files as the base holds,
 * or they are an eighth of the files, a new base is written alone (it says what is committed already) and the changes start again empty; a delta of another
 * generation than its base is one a new base replaced, and is ignored. */
#include "logtail_priv.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the cursor ---- */

static cJSON *file_json(const struct tfile *f)
{
	char num[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "path", f->path);
	cJSON_AddNumberToObject(o, "order", (double)f->order);
	snprintf(num, sizeof(num), "%" PRIu64, f->dev);
	cJSON_AddStringToObject(o, "dev", num); /* strings: a 64-bit inode does not fit a double */
	snprintf(num, sizeof(num), "%" PRIu64, f->ino);
	cJSON_AddStringToObject(o, "ino", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->fp);
	cJSON_AddStringToObject(o, "fp", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->sum);
	cJSON_AddStringToObject(o, "sum", num);
	cJSON_AddNumberToObject(o, "fp_len", f->fp_len);
	cJSON_AddNumberToObject(o, "off", (double)f->off);
	cJSON_AddNumberToObject(o, "line", (double)f->line);
	if (f->cols.have_header) {
		cJSON_AddNumberToObject(o, "hdr_end", (double)f->hdr_end);
		cJSON *cols = cJSON_AddArrayToObject(o, "cols");
		for (int i = 0; i < SF__COUNT; i++)
			cJSON_AddItemToArray(cols, cJSON_CreateNumber(f->cols.col[i]));
	}
	if (f->skip_nl)
		cJSON_AddTrueToObject(o, "skip_nl");
	if (f->gone)
		cJSON_AddTrueToObject(o, "gone");
	if (f->missing_since)
		cJSON_AddNumberToObject(o, "missing_since", (double)f->missing_since);
	return o;
}

#define REBASE_MIN 64            /* changes kept apart at least up to this many files */

static void set_base(struct tfile *f)
{
	free(f->base.path);
	f->base = (struct tsaved){ .path = strdup(f->path), .path_ptr = f->path, .dev = f->dev, .ino = f->ino, .fp = f->fp,
				   .sum = f->sum, .fp_len = f->fp_len, .off = f->off, .line = f->line,
				   .hdr_end = f->hdr_end, .missing_since = f->missing_since, .cols = f->cols,
				   .skip_nl = f->skip_nl, .gone = f->gone };
	f->in_base = f->base.path != NULL;
}

static bool same_as_base(const struct tfile *f)
{
	const struct tsaved *b = &f->base;
	return f->in_base && b->dev == f->dev && b->ino == f->ino && b->fp == f->fp && b->sum == f->sum &&
	       b->fp_len == f->fp_len && b->off == f->off && b->line == f->line && b->hdr_end == f->hdr_end &&
	       b->missing_since == f->missing_since && b->skip_nl == f->skip_nl && b->gone == f->gone &&
	       b->cols.have_header == f->cols.have_header &&
	       memcmp(b->cols.col, f->cols.col, sizeof(b->cols.col)) == 0 &&
	       (b->path_ptr == f->path || strcmp(b->path, f->path) == 0);
}

static cJSON *cursor_head(struct tail *t, int64_t gen)
{
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON_AddNumberToObject(root, "v", CURSOR_VERSION);
	cJSON_AddNumberToObject(root, "gen", (double)gen);
	cJSON_AddNumberToObject(root, "lines", (double)t->lines);
	cJSON_AddNumberToObject(root, "malformed", (double)t->malformed);
	return root;
}

static char *cursor_print(struct tail *t, cJSON *root, size_t *len)
{
	if (t->pairs)
		cJSON_AddItemToObject(root, "open", lp_pairs_to_json(t->pairs));
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text)
		*len = strlen(text);
	return text;
}

char *lt_cursor_text(struct tail *t, size_t *len)
{
	/* The base's files dropped in this batch join those dropped since the base. */
	for (size_t i = 0; i < t->n_dropped; i++) {
		struct tfile *f = t->dropped[i];
		if (!f->in_base)
			continue;
		if (t->n_drops == t->cap_drops) {
			size_t cap = t->cap_drops ? 2 * t->cap_drops : 16;
			uint64_t *d = realloc(t->drops, cap * sizeof(*d));
			if (!d)
				return NULL;
			t->drops = d;
			t->cap_drops = cap;
		}
		t->drops[t->n_drops++] = f->order;
		f->in_base = false;
	}
	cJSON *root = cursor_head(t, t->gen);
	if (!root)
		return NULL;
	cJSON *files = cJSON_AddArrayToObject(root, "files");
	size_t n = 0;
	for (size_t i = 0; i < t->n_files; i++) {
		if (same_as_base(t->files[i]))
			continue;
		cJSON_AddItemToArray(files, file_json(t->files[i]));
		n++;
	}
	cJSON *drops = cJSON_AddArrayToObject(root, "drop");
	for (size_t i = 0; i < t->n_drops; i++)
		cJSON_AddItemToArray(drops, cJSON_CreateNumber((double)t->drops[i]));
	t->n_delta = n + t->n_drops;
	return cursor_print(t, root, len);
}

void lt_cursor_rebase(struct tail *t)
{
	/* Each batch rewrites the changes whole: once that has cost as much as a base would,
	 * a base (amortised: at most twice the least a commit must write). */
	t->delta_sum += t->n_delta;
	bool large = t->n_delta > REBASE_MIN && t->n_delta * 8 > t->n_files;
	if (t->n_delta == 0 || (!large && t->delta_sum < t->n_files + REBASE_MIN))
		return;
	cJSON *root = cursor_head(t, t->gen + 1);
	cJSON *files = root ? cJSON_AddArrayToObject(root, "files") : NULL;
	for (size_t i = 0; files && i < t->n_files; i++)
		cJSON_AddItemToArray(files, file_json(t->files[i]));
	size_t len = 0;
	char *text = root ? cursor_print(t, root, &len) : NULL;
	/* Alone in its transaction: it says what the last batch committed, nothing more. */
	if (!text || core_submit(t->lt->core, NULL, 0, t->key, text, len) < 0) {
		free(text); /* the base and changes committed still hold */
		return;
	}
	t->gen++;
	free(t->committed_base);
	t->committed_base = text;
	free(t->committed);
	t->committed = NULL;
	t->n_drops = 0;
	t->n_delta = 0;
	t->delta_sum = 0;
	for (size_t i = 0; i < t->n_files; i++)
		set_base(t->files[i]);
}

static bool u64_of(const cJSON *o, const char *k, int base, uint64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(it) || !*it->valuestring)
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(it->valuestring, &end, base);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static bool num_of(const cJSON *o, const char *k, int64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	/* Range before the cast: "1e400" parses as inf, and casting it is undefined. */
	if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 9e15))
		return false;
	*out = (int64_t)it->valuedouble;
	return true;
}

static struct tfile *file_from_json(const cJSON *o)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	if (!cJSON_IsString(path))
		return NULL;
	struct tfile *f = lt_file_new(path->valuestring);
	int64_t fp_len = 0;
	if (!f || !u64_of(o, "dev", 10, &f->dev) || !u64_of(o, "ino", 10, &f->ino) ||
	    !u64_of(o, "fp", 16, &f->fp) || !u64_of(o, "sum", 16, &f->sum) || !num_of(o, "fp_len", &fp_len) || fp_len > FP_MAX ||
	    !num_of(o, "off", &f->off) || !num_of(o, "line", &f->line))
		goto fail;
	f->fp_len = (uint32_t)fp_len;
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(o, "cols");
	if (cols) {
		if (!cJSON_IsArray(cols) || cJSON_GetArraySize(cols) != SF__COUNT ||
		    !num_of(o, "hdr_end", &f->hdr_end))
			goto fail;
		f->cols.have_header = true;
		for (int i = 0; i < SF__COUNT; i++) {
			const cJSON *c = cJSON_GetArrayItem(cols, i);
			if (!cJSON_IsNumber(c) || c->valueint < -1 || c->valueint >= LP_CSV_MAX_COLS)
				goto fail;
			f->cols.col[i] = c->valueint;
		}
	}
	f->skip_nl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "skip_nl"));
	f->gone = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "gone"));
	if (cJSON_GetObjectItemCaseSensitive(o, "missing_since") && !num_of(o, "missing_since", &f->missing_since))
		goto fail;
	int64_t order = -1; /* absent from cursors before the changes were kept apart */
	if (cJSON_GetObjectItemCaseSensitive(o, "order") && !num_of(o, "order", &order))
		goto fail;
	f->order = (uint64_t)order;
	return f;
fail:
	lt_file_free(f);
	return NULL;
}

void lt_files_free(struct tfile **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lt_file_free(v[i]);
	free(v);
}

/* One part of the cursor parsed: its files added to (or replacing, by order) *files. */
static int load_part(const char *text, bool delta, int64_t *gen, struct tfile ***files, size_t *n, size_t *cap,
		     struct tail *t, cJSON **root_out)
{
	cJSON *root = cJSON_Parse(text);
	*root_out = root;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "files");
	int64_t g = 0;
	if (!cJSON_IsNumber(v) || v->valueint != CURSOR_VERSION || !cJSON_IsArray(arr) ||
	    !num_of(root, "lines", &t->lines) || !num_of(root, "malformed", &t->malformed) ||
	    (cJSON_GetObjectItemCaseSensitive(root, "gen") && !num_of(root, "gen", &g)))
		return -EINVAL;
	*gen = g;
	const cJSON *e;
	size_t base_n = *n;
	cJSON_ArrayForEach(e, arr) {
		struct tfile *f = file_from_json(e);
		if (!f)
			return -EINVAL;
		if (!delta && f->order == UINT64_MAX)
			f->order = *n; /* an older cursor: found in its order */
		size_t j = 0;
		while (delta && j < base_n && (*files)[j]->order != f->order)
			j++;
		if (delta && f->order == UINT64_MAX) {
			lt_file_free(f);
			return -EINVAL;
		}
		if (delta && j < base_n) {
			struct tfile *old = (*files)[j];
			f->base = old->base; /* still the base's file: dropped later, it must say so */
			f->base.path_ptr = NULL;
			f->in_base = old->in_base;
			old->base.path = NULL;
			lt_file_free(old);
			(*files)[j] = f;
		} else if (lt_push((void **)files, n, cap, f) < 0) {
			lt_file_free(f);
			return -ENOMEM;
		}
	}
	if (!delta)
		return 0;
	const cJSON *drops = cJSON_GetObjectItemCaseSensitive(root, "drop");
	cJSON_ArrayForEach(e, drops) {
		if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 9e15))
			return -EINVAL;
		uint64_t order = (uint64_t)e->valuedouble;
		if (t->n_drops == t->cap_drops) {
			size_t c = t->cap_drops ? 2 * t->cap_drops : 16;
			uint64_t *d = realloc(t->drops, c * sizeof(*d));
			if (!d)
				return -ENOMEM;
			t->drops = d;
			t->cap_drops = c;
		}
		t->drops[t->n_drops++] = order;
		for (size_t j = 0; j < *n; j++) {
			if ((*files)[j]->order != order)
				continue;
			lt_file_free((*files)[j]);
			memmove(&(*files)[j], &(*files)[j + 1], (*n - j - 1) * sizeof(**files));
			(*n)--;
			break;
		}
	}
	return 0;
}

/* Replace the in-memory state with the committed base and changes (NULL: none). Open
 * descriptors of files that are still followed are kept: an inode can't be reused while we
 * hold it open, so device and inode are enough to match them. */
int lt_state_load(struct tail *t, const char *base, const char *delta)
{
	struct tfile **files = NULL;
	size_t n = 0, cap = 0;
	int64_t gen = 0, dgen = -1;
	cJSON *root = NULL, *droot = NULL;
	const cJSON *open = NULL;
	t->lines = t->malformed = 0;
	t->n_drops = 0;
	if (base && load_part(base, false, &gen, &files, &n, &cap, t, &root) < 0)
		goto bad;
	for (size_t j = 0; j < n; j++)
		set_base(files[j]);
	open = cJSON_GetObjectItemCaseSensitive(root, "open");
	if (delta) {
		/* Only the changes made since this base: others were replaced by it. */
		cJSON *probe = cJSON_Parse(delta);
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(probe, "gen");
		dgen = cJSON_IsNumber(g) ? (int64_t)g->valuedouble : -1;
		cJSON_Delete(probe);
	}
	if (delta && dgen == gen) {
		int64_t lines = t->lines, malformed = t->malformed;
		if (load_part(delta, true, &dgen, &files, &n, &cap, t, &droot) < 0) {
			t->lines = lines;
			t->malformed = malformed;
			goto bad;
		}
		open = cJSON_GetObjectItemCaseSensitive(droot, "open");
	}
	if (t->pairs && lp_pairs_from_json(t->pairs, open) < 0)
		goto bad;
	cJSON_Delete(root);
	cJSON_Delete(droot);

	for (size_t k = 0; k < 2; k++) {
		struct tfile **old = k ? t->dropped : t->files;
		size_t n_old = k ? t->n_dropped : t->n_files;
		for (size_t i = 0; i < n_old; i++) {
			struct tfile *o = old[i];
			for (size_t j = 0; j < n && o->fd >= 0; j++) {
				struct tfile *f = files[j];
				if (f->fd < 0 && f->dev == o->dev && f->ino == o->ino) {
					f->fd = o->fd;
					o->fd = -1;
				}
			}
		}
		lt_files_free(old, n_old);
	}
	uint64_t next = 0;
	for (size_t j = 0; j < n; j++)
		next = files[j]->order >= next ? files[j]->order + 1 : next;
	t->files = files;
	t->n_files = n;
	t->cap_files = cap;
	t->dropped = NULL;
	t->n_dropped = t->cap_dropped = 0;
	t->next_order = next;
	t->gen = gen;
	t->delta_sum = 0;
	t->dirty = false;
	return 0;
bad:
	cJSON_Delete(root);
	cJSON_Delete(droot);
	lt_files_free(files, n);
	t->n_drops = 0;
	return -EINVAL;
}
